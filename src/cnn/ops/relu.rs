//! ReLU as one pass forward and one pass backward.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Result, Tensor};
use rayon::prelude::*;

use super::cpu::{check_f32, cpu_forward, F32In, Out};

/// Elements per rayon task in the element-wise ops.
const ELEMWISE_CHUNK: usize = 1 << 15;

/// ReLU forward op.
struct ReluOp;

impl ReluOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l): F32In) -> Out {
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(ELEMWISE_CHUNK)
            .zip(x.par_chunks(ELEMWISE_CHUNK))
            .for_each(|(yc, xc)| {
                for (o, &v) in yc.iter_mut().zip(xc) {
                    // NaN propagates (NaN < 0 is false).
                    *o = if v < 0.0 { 0.0 } else { v };
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }
}

impl CustomOp1 for ReluOp {
    cpu_forward!("fast-relu", 1, f32 "relu");

    fn bwd(&self, _x: &Tensor, res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&dy.contiguous()?, &ReluBwdOp)?))
    }
}

/// ReLU backward op: (y, dy) → dy where y > 0, else 0.
struct ReluBwdOp;

impl ReluBwdOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (y, l1): F32In, (dy, l2): F32In) -> Out {
        if l1.dims() != l2.dims() {
            bail!(
                "relu backward: dy {:?} does not match y {:?}",
                l2.dims(),
                l1.dims()
            );
        }
        let mut dx = vec![0f32; y.len()];
        dx.par_chunks_mut(ELEMWISE_CHUNK)
            .zip(
                y.par_chunks(ELEMWISE_CHUNK)
                    .zip(dy.par_chunks(ELEMWISE_CHUNK)),
            )
            .for_each(|(dc, (yc, gc))| {
                for ((d, &v), &g) in dc.iter_mut().zip(yc).zip(gc) {
                    *d = if v > 0.0 { g } else { 0.0 };
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

impl CustomOp2 for ReluBwdOp {
    cpu_forward!("fast-relu-bwd", 2, f32 "relu backward");
}

/// ReLU, f32 on CPU, as one pass forward and one pass backward (candle's built-in backward is
/// about six passes). The gradient at exactly 0 is 0 (torch's convention; candle's built-in
/// uses 1). Any shape. Falls back to `Tensor::relu` on other devices; errors on non-f32.
///
/// Tip: max pooling commutes with ReLU, so `relu(max_pool2d(x))` equals `max_pool2d(relu(x))`
/// (values and gradients) at a quarter of the ReLU cost for k = 2.
pub(crate) fn relu(x: &Tensor) -> Result<Tensor> {
    check_f32(x, "input", "relu")?;
    if !x.device().is_cpu() {
        return x.relu();
    }
    x.contiguous()?.apply_op1(ReluOp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::ops::test_util::{assert_close, loss_grads, Rng};
    use candle_core::{DType, Var};

    #[test]
    fn relu_matches_candle() {
        let mut rng = Rng(61);
        let x = Var::from_tensor(&rng.tensor(&[3, 4, 5, 7])).unwrap();
        let ours = relu(&x).unwrap();
        let theirs = x.relu().unwrap();
        assert_close(&ours, &theirs, "relu fwd");
        let r = rng.tensor(&[3, 4, 5, 7]);
        let g1 = loss_grads(&ours, &r);
        let g2 = loss_grads(&theirs, &r);
        assert_close(g1.get(&x).unwrap(), g2.get(&x).unwrap(), "relu dx");
        assert!(relu(&x.to_dtype(DType::F64).unwrap()).is_err());
    }
}
