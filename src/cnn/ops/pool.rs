//! Max pooling with kernel = stride: the forward and backward ops, and the first-maximum
//! window rules ([`window_argmax`], [`argmax4`]) that the fused ops share.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{check_f32, cpu_forward, F32In, Out};

/// Validates `(N, C, H, W)` for pooling with kernel = stride = k; returns (planes, H, W, OH, OW).
pub(super) fn pool_geom(dims: &[usize], k: usize) -> Result<(usize, usize, usize, usize, usize)> {
    let &[n, c, h, w] = dims else {
        bail!("max_pool2d: input must be (N, C, H, W), got {dims:?}");
    };
    if k == 0 || k > h || k > w {
        bail!("max_pool2d: kernel {k} invalid for input {h}x{w}");
    }
    Ok((n * c, h, w, h / k, w / k))
}

/// First maximal value of `t(v)` over the window at output (oy, ox) of a plane (kernel = stride
/// = k, plane width w), with its index in the plane. Ties keep the first element in row-major
/// order (strict `>`); a NaN counts as maximal and the first NaN wins, as in torch. `t` is the
/// identity for a plain max pool, or a folded batch norm ([`affine`](super::fused::affine)).
#[inline(always)]
pub(super) fn window_argmax(
    plane: &[f32],
    w: usize,
    k: usize,
    oy: usize,
    ox: usize,
    t: impl Fn(f32) -> f32,
) -> (usize, f32) {
    if k == 2 {
        let (b0, b1) = (2 * oy * w + 2 * ox, (2 * oy + 1) * w + 2 * ox);
        let mut best = (b0, t(plane[b0]));
        for idx in [b0 + 1, b1, b1 + 1] {
            let v = t(plane[idx]);
            if v > best.1 || (v.is_nan() && !best.1.is_nan()) {
                best = (idx, v);
            }
        }
        return best;
    }
    let mut best = (oy * k * w + ox * k, f32::NAN);
    let mut first = true;
    for dy in 0..k {
        let base = (oy * k + dy) * w + ox * k;
        for (dx, &v) in plane[base..base + k].iter().enumerate() {
            let v = t(v);
            if first || v > best.1 || (v.is_nan() && !best.1.is_nan()) {
                best = (base + dx, v);
                first = false;
            }
        }
    }
    best
}

/// First maximum of four values and its position (strict `>`, so ties keep the earlier value;
/// a NaN beats any number and the first NaN wins), written with selects instead of branches so
/// that a loop over windows vectorizes. Same rule as [`window_argmax`].
#[inline(always)]
pub(super) fn argmax4(v: [f32; 4]) -> (f32, u8) {
    let (mut best, mut idx) = (v[0], 0u8);
    for (j, &x) in v.iter().enumerate().skip(1) {
        let take = (x > best) | (x.is_nan() & !best.is_nan());
        best = if take { x } else { best };
        idx = if take { j as u8 } else { idx };
    }
    (best, idx)
}

/// Forward max pool op.
struct MaxPoolOp {
    k: usize,
}

impl MaxPoolOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l): F32In) -> Out {
        let k = self.k;
        let (planes, h, w, oh, ow) = pool_geom(l.dims(), k)?;
        let mut y = vec![0f32; planes * oh * ow];
        y.par_chunks_mut(oh * ow)
            .zip(x.par_chunks(h * w))
            .with_min_len(16)
            .for_each(|(yp, xp)| {
                for oy in 0..oh {
                    let out = &mut yp[oy * ow..][..ow];
                    if k == 2 {
                        // Common case, written so that it vectorizes reasonably.
                        let r0 = &xp[2 * oy * w..][..2 * ow];
                        let r1 = &xp[(2 * oy + 1) * w..][..2 * ow];
                        for ((o, a), b) in out
                            .iter_mut()
                            .zip(r0.chunks_exact(2))
                            .zip(r1.chunks_exact(2))
                        {
                            *o = argmax4([a[0], a[1], b[0], b[1]]).0;
                        }
                    } else {
                        for (ox, o) in out.iter_mut().enumerate() {
                            *o = window_argmax(xp, w, k, oy, ox, |v| v).1;
                        }
                    }
                }
            });
        pooled(y, l.dims(), oh, ow)
    }
}

/// The output of a pooling op on an `(N, C, H, W)` input of dims `d`: `y` as `(N, C, OH, OW)`.
pub(super) fn pooled(y: Vec<f32>, d: &[usize], oh: usize, ow: usize) -> Out {
    Ok((CpuStorage::F32(y), Shape::from((d[0], d[1], oh, ow))))
}

impl CustomOp1 for MaxPoolOp {
    cpu_forward!("fast-max-pool2d", 1, f32 "max_pool2d");

    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &dy.contiguous()?,
            &MaxPoolBwdOp { k: self.k },
        )?))
    }
}

/// Max pool backward op: (x, dy) → dx, each window's gradient goes to its first maximum.
struct MaxPoolBwdOp {
    k: usize,
}

impl MaxPoolBwdOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l1): F32In, (dy, l2): F32In) -> Out {
        let k = self.k;
        let (planes, h, w, oh, ow) = pool_geom(l1.dims(), k)?;
        let d = l1.dims();
        if l2.dims() != [d[0], d[1], oh, ow] {
            bail!(
                "max_pool2d backward: dy {:?} does not match x {:?}",
                l2.dims(),
                d
            );
        }
        let mut dx = vec![0f32; planes * h * w];
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w))
            .zip(dy.par_chunks(oh * ow))
            .with_min_len(16)
            .for_each(|((dxp, xp), dyp)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (idx, _) = window_argmax(xp, w, k, oy, ox, |v| v);
                        dxp[idx] = dyp[oy * ow + ox];
                    }
                }
            });
        Ok((CpuStorage::F32(dx), Shape::from(d)))
    }
}

impl CustomOp2 for MaxPoolBwdOp {
    cpu_forward!("fast-max-pool2d-bwd", 2, f32 "max_pool2d backward");
}

/// Max pooling with kernel = stride = `k` (floor mode, like torch's default), NCHW f32 on CPU.
///
/// The backward pass routes each window's gradient to its first maximal element (row-major
/// order), as torch does. Note: candle 0.11.1's built-in `max_pool2d` backward scales the
/// gradient by (number of maxima in the window) / k², i.e. by 1/k² for a unique maximum, so its
/// gradients are k² times too small; this op gives the correct (torch) gradient. A NaN in a
/// window is its maximum.
///
/// On a non-CPU device this falls back to candle's `Tensor::max_pool2d`. Errors (no panic) on
/// non-f32 dtypes and bad shapes (rank ≠ 4, `k == 0`, `k` larger than H or W).
pub(crate) fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    check_f32(x, "input", "max_pool2d")?;
    pool_geom(x.dims(), k)?;
    if !x.device().is_cpu() {
        return x.max_pool2d(k);
    }
    x.contiguous()?.apply_op1(MaxPoolOp { k })
}

/// Gradient of [`max_pool2d`] with respect to its input, computed directly (no graph).
/// Training gets it through `backward()`; the tests check that op through this. CPU f32 only.
#[cfg(test)]
pub(crate) fn max_pool2d_backward(x: &Tensor, dy: &Tensor, k: usize) -> Result<Tensor> {
    let op = MaxPoolBwdOp { k };
    super::cpu::direct_op2(
        (x, dy),
        ["input", "output gradient"],
        "max_pool2d backward",
        &op,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::ops::test_util::{assert_close, loss_grads, values, Rng};
    use candle_core::{Device, Var};

    /// Max-pool input gradient by a plain loop: each window's dy goes to its first maximum.
    fn naive_pool_grad(x: &Tensor, dy: &Tensor, k: usize) -> Tensor {
        let (n, c, h, w) = x.dims4().unwrap();
        let (oh, ow) = (h / k, w / k);
        let xv = values(x);
        let gv = values(dy);
        let mut dx = vec![0f32; xv.len()];
        for pl in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = (0, f32::NEG_INFINITY);
                    for i in 0..k {
                        for j in 0..k {
                            let idx = pl * h * w + (oy * k + i) * w + ox * k + j;
                            if xv[idx] > best.1 {
                                best = (idx, xv[idx]);
                            }
                        }
                    }
                    dx[best.0] += gv[pl * oh * ow + oy * ow + ox];
                }
            }
        }
        Tensor::from_vec(dx, (n, c, h, w), &Device::Cpu).unwrap()
    }

    fn check_pool(seed: u64, dims: [usize; 4], k: usize) {
        let mut rng = Rng(seed);
        let x = Var::from_tensor(&rng.tensor(&dims)).unwrap();
        let ours = max_pool2d(&x, k).unwrap();
        let theirs = x.max_pool2d(k).unwrap();
        let what = format!("pool {dims:?} k={k}");
        assert_close(&ours, &theirs, &format!("{what} fwd"));
        let r = rng.tensor(ours.dims());
        let g1 = loss_grads(&ours, &r);
        let g2 = loss_grads(&theirs, &r);
        // candle 0.11.1's built-in max-pool backward multiplies the gradient by
        // avg_pool(mask) = (number of maxima) / k², i.e. by 1/k² for a unique maximum (the
        // correct factor is 1 / number of maxima). Random inputs have unique maxima, so the
        // correct gradient is candle's times k².
        // When H or W is not a multiple of k, candle's backward (nearest upsampling to H×W)
        // also misaligns windows, so the reference there is a naive loop.
        let dx = g1.get(&x).unwrap();
        assert_close(
            dx,
            &naive_pool_grad(x.as_tensor(), &r, k),
            &format!("{what} dx vs naive"),
        );
        if (dims[2] / k) * k == dims[2] && (dims[3] / k) * k == dims[3] {
            let g2x = (g2.get(&x).unwrap() * (k * k) as f64).unwrap();
            assert_close(dx, &g2x, &format!("{what} dx vs candle"));
        }
        // Every window routes its whole gradient somewhere: Σ dx = Σ dy.
        let (sx, sr) = (
            dx.sum_all().unwrap().to_scalar::<f32>().unwrap(),
            r.sum_all().unwrap().to_scalar::<f32>().unwrap(),
        );
        assert!(
            (sx - sr).abs() <= 1e-4 * sr.abs().max(1.0),
            "{what}: Σdx {sx} vs Σdy {sr}"
        );
    }

    #[test]
    fn pool_matches_candle() {
        check_pool(21, [2, 3, 8, 8], 2);
        check_pool(22, [2, 3, 7, 9], 2);
        check_pool(23, [3, 2, 9, 7], 3);
        check_pool(24, [1, 1, 11, 10], 3);
        check_pool(25, [2, 4, 5, 5], 1);
        check_pool(26, [1, 2, 3, 3], 3);
    }

    #[test]
    fn pool_ties_go_to_first_max() {
        let x = Var::from_tensor(
            &Tensor::from_vec(vec![1f32, 3., 3., 0.], (1, 1, 2, 2), &Device::Cpu).unwrap(),
        )
        .unwrap();
        let g = max_pool2d(&x, 2)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let dx = g
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(dx, vec![0., 1., 0., 0.]);
    }

    #[test]
    fn argmax4_matches_window_argmax() {
        // Every 2×2 window over values with ties, signed zeros and NaNs, against a naive rule:
        // the first NaN if there is one, else the first element equal to the maximum.
        let vals = [-1f32, -0.0, 0.0, 1.0, f32::NAN, 2.0];
        for i in 0..vals.len().pow(4) {
            let v = [0, 1, 2, 3].map(|j| vals[i / vals.len().pow(j) % vals.len()]);
            let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let want = v
                .iter()
                .position(|x| x.is_nan())
                .or_else(|| v.iter().position(|&x| x == max))
                .unwrap();
            let want = (v[want].to_bits(), want);
            let (m, c) = argmax4(v);
            assert_eq!((m.to_bits(), usize::from(c)), want, "argmax4 {v:?}");
            // k = 2 (its own path), and the general path: a 3×3 window whose first four
            // elements (row-major) are v and the rest −∞.
            let (idx, m) = window_argmax(&v, 2, 2, 0, 0, |v| v);
            assert_eq!((m.to_bits(), idx), want, "window_argmax k=2 {v:?}");
            let mut plane = [f32::NEG_INFINITY; 9];
            plane[..4].copy_from_slice(&v);
            let (idx, m) = window_argmax(&plane, 3, 3, 0, 0, |v| v);
            assert_eq!((m.to_bits(), idx), want, "window_argmax k=3 {v:?}");
        }
    }
}
