//! Batch norm over `(N, C, ...)`: deterministic batch statistics, the training- and eval-mode
//! normalize + affine op with its analytic backward, the argument checks and per-channel
//! helpers that the fused ops share, and the generic-op fallback for other devices.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

use super::cpu::{check_f32, cpu_forward, f32_slice, F32In, In, Out, BN_ROWS};

/// Shape `(N, C, S)` of an `(N, C, ...)` tensor, S the product of the trailing dims.
pub(super) fn bn_geom(dims: &[usize]) -> Result<(usize, usize, usize)> {
    if dims.len() < 2 || dims[1] == 0 {
        bail!("batch_norm_train: input must be (N, C, ...) with C > 0, got {dims:?}");
    }
    let s = dims[2..].iter().product();
    if dims[0] * s == 0 {
        bail!("batch_norm_train: no elements per channel in {dims:?}");
    }
    Ok((dims[0], dims[1], s))
}

/// Sum of a slice with 8 independent accumulators (vectorizes; fixed order, so deterministic).
#[inline]
fn sum8(v: &[f32], f: impl Fn(usize, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = v.len() / 8;
    for c in 0..chunks {
        for (l, a) in acc.iter_mut().enumerate() {
            let i = c * 8 + l;
            *a += f(i, v[i]);
        }
    }
    let mut tail = 0f32;
    for (i, &x) in v.iter().enumerate().skip(chunks * 8) {
        tail += f(i, x);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Per-channel sums over (N, S) of `f(n, c, plane)`, deterministic: the N·C planes are cut into
/// fixed pieces of BN_ROWS images; each piece's per-channel sums (f64) are added in piece order.
pub(super) fn bn_channel_sums(
    n: usize,
    c: usize,
    f: impl Fn(usize, usize) -> [f64; 2] + Sync,
) -> Vec<[f64; 2]> {
    let pieces = n.div_ceil(BN_ROWS);
    let partial: Vec<Vec<[f64; 2]>> = (0..pieces)
        .into_par_iter()
        .map(|pc| {
            let mut acc = vec![[0f64; 2]; c];
            for i in pc * BN_ROWS..((pc + 1) * BN_ROWS).min(n) {
                for (ch, a) in acc.iter_mut().enumerate() {
                    let v = f(i, ch);
                    a[0] += v[0];
                    a[1] += v[1];
                }
            }
            acc
        })
        .collect();
    let mut out = vec![[0f64; 2]; c];
    for p in &partial {
        for (o, v) in out.iter_mut().zip(p) {
            o[0] += v[0];
            o[1] += v[1];
        }
    }
    out
}

/// Batch statistics op: x → (2, C) = [mean; biased variance] over (N, S).
struct BnStatsOp;

impl BnStatsOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l): F32In) -> Out {
        let (n, c, s) = bn_geom(l.dims())?;
        Ok((
            CpuStorage::F32(batch_stats(x, n, c, s)),
            Shape::from((2, c)),
        ))
    }
}

impl CustomOp1 for BnStatsOp {
    cpu_forward!("fast-bn-stats", 1, f32 "batch_norm_train");
}

/// `[mean; biased variance]` (2·C values) per channel of a contiguous `(N, C, S)` slice.
pub(super) fn batch_stats(x: &[f32], n: usize, c: usize, s: usize) -> Vec<f32> {
    let m = (n * s) as f64;
    let plane = |i: usize, ch: usize| &x[(i * c + ch) * s..][..s];
    let sums = bn_channel_sums(n, c, |i, ch| [sum8(plane(i, ch), |_, v| v) as f64, 0.0]);
    let mean: Vec<f64> = sums.iter().map(|v| v[0] / m).collect();
    // Second pass around the mean (numerically safer than E[x²] − E[x]²).
    let sq = bn_channel_sums(n, c, |i, ch| {
        let mu = mean[ch] as f32;
        [sum8(plane(i, ch), |_, v| (v - mu) * (v - mu)) as f64, 0.0]
    });
    let mut out = Vec::with_capacity(2 * c);
    out.extend(mean.iter().map(|&v| v as f32));
    out.extend(sq.iter().map(|v| (v[0] / m) as f32));
    out
}

/// One channel's batch norm folded to `y = x·a + b`: `a = invstd·gamma`, `b = beta − mean·a`.
#[inline(always)]
pub(super) fn bn_scale_shift(mean: f32, invstd: f32, gamma: f32, beta: f32) -> (f32, f32) {
    let a = invstd * gamma;
    (a, beta - mean * a)
}

/// The normalized value `x̂ = (x − mean)·invstd`.
#[inline(always)]
pub(super) fn xhat(x: f32, mean: f32, invstd: f32) -> f32 {
    (x - mean) * invstd
}

/// One channel's batch-norm input gradient, `dx = scale·(g − db − x̂·dg)` for an output gradient
/// `g` at input `x`: `scale = gamma·invstd`, and in training mode `db = Σg/M`, `dg = Σg·x̂/M`
/// (the statistics' share; 0 in eval mode).
#[derive(Clone, Copy)]
pub(super) struct BnDx {
    pub(super) mean: f32,
    pub(super) invstd: f32,
    pub(super) scale: f32,
    pub(super) db: f32,
    pub(super) dg: f32,
}

impl BnDx {
    #[inline(always)]
    pub(super) fn at(self, g: f32, x: f32) -> f32 {
        self.scale * (g - self.db - xhat(x, self.mean, self.invstd) * self.dg)
    }
}

/// Normalize + affine op: (x, gamma, beta) → y, with the batch statistics captured.
pub(super) struct BnNormOp {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// Training mode: the statistics are functions of x (and the backward accounts for it);
    /// otherwise they are constants (running statistics).
    train: bool,
}

impl BnNormOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l1): F32In, (gamma, _): F32In, (beta, _): F32In) -> Out {
        let (_, c, s) = bn_geom(l1.dims())?;
        if gamma.len() != c || beta.len() != c || self.mean.len() != c {
            bail!("batch_norm_train: gamma/beta must have {c} elements");
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(s)
            .zip(x.par_chunks(s))
            .enumerate()
            .with_min_len(8)
            .for_each(|(r, (yp, xp))| {
                let ch = r % c;
                // y = (x − mean)·invstd·gamma + beta = x·a + b
                let (a, b) = bn_scale_shift(self.mean[ch], self.invstd[ch], gamma[ch], beta[ch]);
                for (o, &v) in yp.iter_mut().zip(xp) {
                    *o = v * a + b;
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }
}

impl CustomOp3 for BnNormOp {
    cpu_forward!("fast-bn-train", 3, f32 "batch_norm_train");

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let sums_op = BnBwdSumsOp {
            mean: self.mean.clone(),
            invstd: self.invstd.clone(),
        };
        // sums: (2, C) = [Σ dy; Σ dy·x̂] = [dbeta; dgamma]
        let sums = x.apply_op2_no_bwd(&dy, &sums_op)?;
        let dbeta = sums.get(0)?;
        let dgamma = sums.get(1)?;
        let dx = if x.track_op() {
            let op = BnBwdDxOp {
                mean: self.mean.clone(),
                invstd: self.invstd.clone(),
                gamma: gamma.to_vec1::<f32>()?,
                // In eval mode the statistics are constants: dx = gamma·invstd·dy.
                dbeta: if self.train {
                    dbeta.to_vec1::<f32>()?
                } else {
                    vec![0.0; self.mean.len()]
                },
                dgamma: if self.train {
                    dgamma.to_vec1::<f32>()?
                } else {
                    vec![0.0; self.mean.len()]
                },
            };
            Some(x.apply_op2_no_bwd(&dy, &op)?)
        } else {
            None
        };
        Ok((dx, Some(dgamma), Some(dbeta)))
    }
}

/// The `(x, dy)` inputs of the batch-norm backward ops, with `(N, C, S)`: both f32 and of the
/// same `(N, C, ...)` shape, and every per-channel vector of the op `C` long.
#[allow(clippy::type_complexity)]
fn bn_bwd_inputs<'a>(
    (s1, l1): (&'a CpuStorage, &Layout),
    (s2, l2): (&'a CpuStorage, &Layout),
    per_channel: &[&[f32]],
) -> Result<(&'a [f32], &'a [f32], (usize, usize, usize))> {
    let x = f32_slice(s1, l1, "batch_norm backward")?;
    let dy = f32_slice(s2, l2, "batch_norm backward")?;
    let (n, c, s) = bn_geom(l1.dims())?;
    if l1.dims() != l2.dims() || per_channel.iter().any(|v| v.len() != c) {
        bail!(
            "batch_norm backward: dy {:?} does not match x {:?}",
            l2.dims(),
            l1.dims()
        );
    }
    Ok((x, dy, (n, c, s)))
}

/// Batch-norm backward reductions: (x, dy) → (2, C) = [Σ dy; Σ dy·x̂].
struct BnBwdSumsOp {
    mean: Vec<f32>,
    invstd: Vec<f32>,
}

impl BnBwdSumsOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (s1, l1): In, (s2, l2): In) -> Out {
        let (x, dy, (n, c, s)) = bn_bwd_inputs((s1, l1), (s2, l2), &[&self.mean, &self.invstd])?;
        let sums = bn_channel_sums(n, c, |i, ch| {
            let off = (i * c + ch) * s;
            let (xp, gp) = (&x[off..][..s], &dy[off..][..s]);
            let (mu, is) = (self.mean[ch], self.invstd[ch]);
            [
                sum8(gp, |_, g| g) as f64,
                sum8(gp, |j, g| g * xhat(xp[j], mu, is)) as f64,
            ]
        });
        let mut out = Vec::with_capacity(2 * c);
        out.extend(sums.iter().map(|v| v[0] as f32));
        out.extend(sums.iter().map(|v| v[1] as f32));
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

impl CustomOp2 for BnBwdSumsOp {
    cpu_forward!("fast-bn-bwd-sums", 2);
}

/// Batch-norm input gradient: (x, dy) → dx = gamma·invstd·(dy − dbeta/M − x̂·dgamma/M).
struct BnBwdDxOp {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    gamma: Vec<f32>,
    dbeta: Vec<f32>,
    dgamma: Vec<f32>,
}

impl BnBwdDxOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (s1, l1): In, (s2, l2): In) -> Out {
        let per_channel = [
            &self.mean[..],
            &self.invstd,
            &self.gamma,
            &self.dbeta,
            &self.dgamma,
        ];
        let (x, dy, (n, c, s)) = bn_bwd_inputs((s1, l1), (s2, l2), &per_channel)?;
        let inv_m = 1.0 / (n * s) as f32;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(s)
            .zip(x.par_chunks(s).zip(dy.par_chunks(s)))
            .enumerate()
            .with_min_len(8)
            .for_each(|(r, (dp, (xp, gp)))| {
                let ch = r % c;
                let is = self.invstd[ch];
                let bd = BnDx {
                    mean: self.mean[ch],
                    invstd: is,
                    scale: self.gamma[ch] * is,
                    db: self.dbeta[ch] * inv_m,
                    dg: self.dgamma[ch] * inv_m,
                };
                for ((d, &xv), &g) in dp.iter_mut().zip(xp).zip(gp) {
                    *d = bd.at(g, xv);
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

impl CustomOp2 for BnBwdDxOp {
    cpu_forward!("fast-bn-bwd-dx", 2);
}

/// Training-mode batch norm over `(N, C, ...)`: per-channel mean and biased variance over all
/// dimensions but C, normalize with `eps`, then `gamma · x̂ + beta` (`gamma`, `beta`: `(C,)`).
///
/// Returns `(y, batch_mean, batch_biased_var)`; the statistics are detached `(C,)` tensors. The
/// caller updates its running statistics from them (running var usually uses the unbiased
/// variance `var · M / (M − 1)`, M = N·H·W). The backward pass is analytic (gradients for x,
/// gamma and beta). On a non-CPU device this falls back to generic candle ops. Errors on
/// non-f32 dtypes and bad shapes.
pub(crate) fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    check_bn_train_args(x, gamma, beta, eps)?;
    if !x.device().is_cpu() {
        return batch_norm_train_generic(x, gamma, beta, eps);
    }
    let x = x.contiguous()?;
    let (mean, var, invstd) = train_stats(&x, eps)?;
    let y = x.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        BnNormOp {
            mean: mean.to_vec1::<f32>()?,
            invstd,
            train: true,
        },
    )?;
    Ok((y, mean, var))
}

/// Checks the arguments of the training-mode batch norms on `x: (N, C, ...)`.
pub(super) fn check_bn_train_args(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<()> {
    check_f32(x, "input", "batch_norm_train")?;
    let (_, c, _) = bn_geom(x.dims())?;
    check_bn_train_params(gamma, beta, c, eps)
}

/// Checks training-mode batch norm's `gamma` and `beta` (f32, `(C,)`) and `eps` (≥ 0).
pub(super) fn check_bn_train_params(
    gamma: &Tensor,
    beta: &Tensor,
    c: usize,
    eps: f64,
) -> Result<()> {
    check_f32(gamma, "gamma", "batch_norm_train")?;
    check_f32(beta, "beta", "batch_norm_train")?;
    if gamma.dims() != [c] || beta.dims() != [c] {
        bail!(
            "batch_norm_train: gamma {:?} and beta {:?} must be ({c},)",
            gamma.dims(),
            beta.dims()
        );
    }
    check_eps(eps, "batch_norm_train")
}

/// Checks a batch norm's `eps` (≥ 0, not NaN).
fn check_eps(eps: f64, op: &str) -> Result<()> {
    if eps.is_nan() || eps < 0.0 {
        bail!("{op}: eps must be ≥ 0, got {eps}");
    }
    Ok(())
}

/// Batch statistics of a contiguous CPU `x: (N, C, ...)`: `(mean, biased variance)` as detached
/// `(C,)` tensors, and `1/sqrt(var + eps)` per channel.
pub(super) fn train_stats(x: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Vec<f32>)> {
    let stats = x.apply_op1_no_bwd(&BnStatsOp)?;
    let mean = stats.get(0)?;
    let var = stats.get(1)?;
    let invstd = invstd_of(&var.to_vec1::<f32>()?, eps);
    Ok((mean, var, invstd))
}

/// Eval-mode batch norm over `(N, C, ...)` with running statistics: one fused pass
/// `y = (x − running_mean)/sqrt(running_var + eps) · gamma + beta` (all parameters `(C,)`).
///
/// Differentiable (the statistics are treated as constants). On a non-CPU device this falls
/// back to generic candle ops. Errors on non-f32 dtypes and bad shapes.
pub(crate) fn batch_norm_eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let c = check_bn_eval_args(x, [gamma, beta, running_mean, running_var], eps)?;
    if !x.device().is_cpu() {
        let mut shape = vec![1; x.rank()];
        shape[1] = c;
        let xhat = x
            .broadcast_sub(&running_mean.reshape(shape.as_slice())?)?
            .broadcast_div(&(running_var.reshape(shape.as_slice())? + eps)?.sqrt()?)?;
        return xhat
            .broadcast_mul(&gamma.reshape(shape.as_slice())?)?
            .broadcast_add(&beta.reshape(shape.as_slice())?);
    }
    let (mean, invstd) = running_stats(running_mean, running_var, eps)?;
    x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        BnNormOp {
            mean,
            invstd,
            train: false,
        },
    )
}

/// Checks the arguments of the eval-mode batch norms: `x: (N, C, ...)`, then gamma, beta, the
/// running mean and the running variance, all f32 `(C,)`, and `eps` ≥ 0. Returns C.
pub(super) fn check_bn_eval_args(x: &Tensor, params: [&Tensor; 4], eps: f64) -> Result<usize> {
    let (_, c, _) = bn_geom(x.dims())?;
    check_f32(x, "input", "batch_norm_eval")?;
    for (t, name) in params
        .into_iter()
        .zip(["gamma", "beta", "running_mean", "running_var"])
    {
        check_f32(t, name, "batch_norm_eval")?;
        if t.dims() != [c] {
            bail!("batch_norm_eval: {name} {:?} must be ({c},)", t.dims());
        }
    }
    check_eps(eps, "batch_norm_eval")?;
    Ok(c)
}

/// The running statistics as `(mean, 1/sqrt(var + eps))` per channel.
pub(super) fn running_stats(mean: &Tensor, var: &Tensor, eps: f64) -> Result<(Vec<f32>, Vec<f32>)> {
    let mean = mean.detach().to_vec1::<f32>()?;
    let invstd = invstd_of(&var.detach().to_vec1::<f32>()?, eps);
    Ok((mean, invstd))
}

/// `1/sqrt(var + eps)` per channel, as every batch-norm op here computes it.
pub(super) fn invstd_of(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
        .collect()
}

/// Device-agnostic fallback of [`batch_norm_train`] built from generic candle ops.
fn batch_norm_train_generic(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let dims = x.dims().to_vec();
    let (n, c, s) = bn_geom(&dims)?;
    // (N, C, S) → (C, N·S)
    let xc = x
        .reshape((n, c, s))?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((c, n * s))?;
    let mean = xc.mean_keepdim(D::Minus1)?;
    let centered = xc.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let xhat = centered.broadcast_div(&(&var + eps)?.sqrt()?)?;
    let y = xhat
        .broadcast_mul(&gamma.reshape((c, 1))?)?
        .broadcast_add(&beta.reshape((c, 1))?)?;
    let y = y
        .reshape((c, n, s))?
        .transpose(0, 1)?
        .contiguous()?
        .reshape(dims)?;
    Ok((y, mean.flatten_all()?.detach(), var.flatten_all()?.detach()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::ops::test_util::{assert_close, assert_close_abs, loss_grads, Rng};
    use candle_core::Var;

    /// Reference training-mode batch norm from candle ops (autodiff for the gradients).
    fn bn_reference(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Tensor {
        // Mean over N, H and W, keeping the dimensions.
        let mean_nhw = |t: &Tensor| {
            t.mean_keepdim(0)
                .unwrap()
                .mean_keepdim(2)
                .unwrap()
                .mean_keepdim(3)
                .unwrap()
        };
        let mean = mean_nhw(x);
        let xc = x.broadcast_sub(&mean).unwrap();
        let var = mean_nhw(&xc.sqr().unwrap());
        let c = x.dim(1).unwrap();
        let xhat = xc
            .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
            .unwrap();
        xhat.broadcast_mul(&gamma.reshape((1, c, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&beta.reshape((1, c, 1, 1)).unwrap())
            .unwrap()
    }

    #[test]
    fn batch_norm_matches_reference() {
        for (seed, dims) in [
            (31u64, [4usize, 3, 5, 7]),
            (32, [37, 2, 3, 3]),
            (33, [2, 5, 1, 1]),
        ] {
            let mut rng = Rng(seed);
            let x = Var::from_tensor(&(rng.tensor(&dims) * 3.0).unwrap().affine(1.0, 0.5).unwrap())
                .unwrap();
            let gamma = Var::from_tensor(&rng.tensor(&[dims[1]])).unwrap();
            let beta = Var::from_tensor(&rng.tensor(&[dims[1]])).unwrap();
            let (y, mean, var) = batch_norm_train(&x, &gamma, &beta, 1e-5).unwrap();
            let yr = bn_reference(&x, &gamma, &beta, 1e-5);
            assert_close(&y, &yr, "bn fwd");
            let xt = x.as_tensor();
            let mr = xt
                .transpose(0, 1)
                .unwrap()
                .flatten_from(1)
                .unwrap()
                .mean(1)
                .unwrap();
            assert_close(&mean, &mr, "bn mean");
            let vr = xt
                .transpose(0, 1)
                .unwrap()
                .flatten_from(1)
                .unwrap()
                .broadcast_sub(&mr.unsqueeze(1).unwrap())
                .unwrap()
                .sqr()
                .unwrap()
                .mean(1)
                .unwrap();
            assert_close(&var, &vr, "bn var");
            let r = rng.tensor(&dims);
            let g1 = loss_grads(&y, &r);
            let g2 = loss_grads(&yr, &r);
            // dx is a difference of O(1) terms, so compare with an absolute floor.
            for (v, name) in [
                (x.as_tensor(), "dx"),
                (gamma.as_tensor(), "dgamma"),
                (beta.as_tensor(), "dbeta"),
            ] {
                let what = format!("bn {name} {dims:?}");
                assert_close_abs(g1.get(v).unwrap(), g2.get(v).unwrap(), &what);
            }
            // The generic fallback agrees too.
            let (yg, mg, vg) = batch_norm_train_generic(&x, &gamma, &beta, 1e-5).unwrap();
            assert_close(&yg, &y, "bn generic y");
            assert_close(&mg, &mean, "bn generic mean");
            assert_close(&vg, &var, "bn generic var");
        }
    }

    #[test]
    fn batch_norm_eval_matches_reference() {
        let mut rng = Rng(71);
        let x = Var::from_tensor(&rng.tensor(&[5, 3, 4, 6])).unwrap();
        let gamma = Var::from_tensor(&rng.tensor(&[3])).unwrap();
        let beta = Var::from_tensor(&rng.tensor(&[3])).unwrap();
        let mean = rng.tensor(&[3]);
        let var = rng.tensor(&[3]).abs().unwrap().affine(1.0, 0.1).unwrap();
        let y = batch_norm_eval(&x, &gamma, &beta, &mean, &var, 1e-5).unwrap();
        let s = (1, 3, 1, 1);
        let yr = x
            .broadcast_sub(&mean.reshape(s).unwrap())
            .unwrap()
            .broadcast_div(&(var.reshape(s).unwrap() + 1e-5).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&gamma.reshape(s).unwrap())
            .unwrap()
            .broadcast_add(&beta.reshape(s).unwrap())
            .unwrap();
        assert_close(&y, &yr, "bn eval fwd");
        let r = rng.tensor(&[5, 3, 4, 6]);
        let g1 = loss_grads(&y, &r);
        let g2 = loss_grads(&yr, &r);
        for v in [x.as_tensor(), gamma.as_tensor(), beta.as_tensor()] {
            assert_close(g1.get(v).unwrap(), g2.get(v).unwrap(), "bn eval grad");
        }
        assert!(batch_norm_eval(&x, &gamma, &beta, &mean, &rng.tensor(&[4]), 1e-5).is_err());
    }
}
