//! Fused ops for a block's tail and for the whole block, one graph node each:
//!
//! * max-pool → ReLU ([`max_pool2d_relu`]) and batch norm → max-pool → ReLU with batch or
//!   running statistics ([`batch_norm_train_pool_relu`], [`batch_norm_eval_pool_relu`]), with the
//!   per-window routing codes that their backward passes reuse;
//! * the whole training-mode block, convolution → batch norm → max-pool → ReLU
//!   ([`conv_bn_train_pool_relu`]), whose op keeps the convolution output itself and whose
//!   backward forms that output's gradient chunk by chunk, straight into the convolution GEMMs'
//!   layout.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Result, Shape, Tensor};
use rayon::prelude::*;

use super::batch_norm::{
    batch_norm_eval, batch_norm_train, batch_stats, bn_channel_sums, bn_geom, bn_scale_shift,
    check_bn_eval_args, check_bn_train_args, check_bn_train_params, invstd_of, running_stats,
    train_stats, xhat, BnDx,
};
use super::conv::{
    conv2d, conv_forward, conv_geom, im2col, input_grad_chunk, sum_partials, weight_grad_gemm,
};
use super::cpu::{check_f32, cpu_forward, f32_slice, with_scratch3, F32In, In, Out, DW_CHUNK};
use super::pool::{argmax4, max_pool2d, pool_geom, pooled, window_argmax};
use super::relu::relu;

/// Per-channel affine `v·a + b` applied before pooling (batch norm folded to a scale and shift),
/// or none (plain max-pool + ReLU).
#[derive(Clone)]
struct PoolBn {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// `a = invstd·gamma`, `b = beta − mean·a` per channel ([`bn_scale_shift`], as
    /// [`BnNormOp`](super::batch_norm::BnNormOp) computes them).
    a: Vec<f32>,
    b: Vec<f32>,
    /// Training mode (statistics depend on x) or eval mode (constants).
    train: bool,
}

impl PoolBn {
    /// Channel `ch`'s transform `v·a + b`.
    #[inline(always)]
    fn t(&self, ch: usize) -> impl Fn(f32) -> f32 + Copy {
        affine(self.a[ch], self.b[ch])
    }
}

/// The transform `v·a + b` (a batch norm folded to a scale and shift).
#[inline(always)]
pub(super) fn affine(a: f32, b: f32) -> impl Fn(f32) -> f32 + Copy {
    move |v| v * a + b
}

/// Routing code of a 2×2 window whose (pre-ReLU) maximum is not > 0 (≤ 0 or NaN): its gradient
/// is zero. Otherwise a window's code is the position of its first maximum, `2·row + col`.
const NOT_ROUTED: u8 = u8::MAX;

/// Where each window's gradient goes, computed by the forward pass of a fused pool op with
/// k = 2 (one [`NOT_ROUTED`] or `2·row + col` byte per output, NCHW order), so that the
/// backward passes need not recompute the window maxima. Shared between an op and its backward.
type Routes = std::sync::Arc<Vec<u8>>;

/// Forward of `relu(max_pool_k(t_c(x)))` over `(N, C, H, W)`, `t_c` the channel's affine (or the
/// identity): returns the pooled output, never materializing `t(x)`, and for k = 2 the routing
/// codes of every window (see [`Routes`]).
fn pool_relu_fwd(
    x: &[f32],
    dims: &[usize],
    k: usize,
    ab: Option<(&[f32], &[f32])>,
) -> Result<(Vec<f32>, Option<Vec<u8>>)> {
    let (planes, h, w, oh, ow) = pool_geom(dims, k)?;
    let c = dims[1];
    let mut y = vec![0f32; planes * oh * ow];
    // Codes only for k = 2 (the other sizes recompute the routing in the backward pass; they
    // get one unused byte per plane).
    let code_len = if k == 2 { oh * ow } else { 1 };
    let mut codes = vec![0u8; planes * code_len];
    y.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .zip(codes.par_chunks_mut(code_len))
        .enumerate()
        .with_min_len(16)
        .for_each(|(pl, ((yp, xp), cp))| match ab {
            None => pool_relu_plane(xp, yp, cp, (w, k, oh, ow), |v| v),
            Some((a, b)) => {
                pool_relu_plane(xp, yp, cp, (w, k, oh, ow), affine(a[pl % c], b[pl % c]))
            }
        });
    Ok((y, (k == 2).then_some(codes)))
}

/// One plane of [`pool_relu_fwd`] (monomorphized per transform so the k = 2 loop vectorizes);
/// `cp` receives the plane's routing codes (k = 2 only; empty otherwise).
#[inline(always)]
fn pool_relu_plane(
    xp: &[f32],
    yp: &mut [f32],
    cp: &mut [u8],
    (w, k, oh, ow): (usize, usize, usize, usize),
    t: impl Fn(f32) -> f32 + Copy,
) {
    for oy in 0..oh {
        let out = &mut yp[oy * ow..][..ow];
        if k == 2 {
            let r0 = &xp[2 * oy * w..][..2 * ow];
            let r1 = &xp[(2 * oy + 1) * w..][..2 * ow];
            let codes = &mut cp[oy * ow..][..ow];
            for (((o, code), a), b) in out
                .iter_mut()
                .zip(codes.iter_mut())
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                let (m, i) = argmax4([t(a[0]), t(a[1]), t(b[0]), t(b[1])]);
                *o = if m < 0.0 { 0.0 } else { m };
                *code = if m > 0.0 { i } else { NOT_ROUTED };
            }
        } else {
            for (ox, o) in out.iter_mut().enumerate() {
                let m = window_argmax(xp, w, k, oy, ox, t).1;
                *o = if m < 0.0 { 0.0 } else { m };
            }
        }
    }
}

/// Fused max-pool + ReLU op (no batch norm): x → relu(max_pool(x)).
struct PoolReluOp {
    k: usize,
    /// Routing codes of the forward pass (k = 2), for the backward.
    routes: RouteSlot,
}

/// Where a fused op's forward pass leaves its routing codes for its backward pass.
type RouteSlot = std::sync::Mutex<Option<Routes>>;

/// Stores the routing codes computed by a forward pass.
fn put_routes(slot: &RouteSlot, codes: Option<Vec<u8>>) {
    if let Ok(mut r) = slot.lock() {
        *r = codes.map(std::sync::Arc::new);
    }
}

/// The routing codes of a forward pass, if any.
fn get_routes(slot: &RouteSlot) -> Option<Routes> {
    slot.lock().ok().and_then(|r| r.clone())
}

impl PoolReluOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l): F32In) -> Out {
        let (y, codes) = pool_relu_fwd(x, l.dims(), self.k, None)?;
        put_routes(&self.routes, codes);
        let (_, _, _, oh, ow) = pool_geom(l.dims(), self.k)?;
        pooled(y, l.dims(), oh, ow)
    }
}

impl CustomOp1 for PoolReluOp {
    cpu_forward!("fast-max-pool2d-relu", 1, f32 "max_pool2d_relu");

    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &dy.contiguous()?,
            &PoolReluBwdOp {
                k: self.k,
                bn: None,
                sums: None,
                routes: get_routes(&self.routes),
            },
        )?))
    }
}

/// Backward of the fused ops: (x, dz) → dx. Without batch norm, each window's dz goes to its first
/// maximum when the (pre-ReLU) maximum is > 0. With batch norm, that sparse gradient `g` of the
/// normalized values is pushed through the batch norm:
/// `dx = gamma·invstd·(g − Σg/M − x̂·Σ(g·x̂)/M)` (train) or `gamma·invstd·g` (eval).
struct PoolReluBwdOp {
    k: usize,
    bn: Option<PoolBn>,
    /// `[Σg; Σg·x̂]` per channel (from [`PoolBnSumsOp`]), train-mode batch norm only.
    sums: Option<(Vec<f32>, Vec<f32>)>,
    /// The forward pass's routing codes (k = 2); recomputed from x when absent.
    routes: Option<Routes>,
}

/// The routing codes in `routes` if they fit `planes` planes of `oh·ow` windows with k = 2.
fn usable_routes(
    routes: &Option<Routes>,
    k: usize,
    planes: usize,
    oh: usize,
    ow: usize,
) -> Option<&[u8]> {
    routes
        .as_deref()
        .map(Vec::as_slice)
        .filter(|r| k == 2 && r.len() == planes * oh * ow)
}

/// Calls `f(index_in_plane, dz)`, in window order, for every window of the plane whose
/// (pre-ReLU) maximum is `> 0`, i.e. every place where the sparse gradient `g` is non-zero. With
/// the plane's routing codes (`codes`, k = 2) the maxima are not recomputed.
#[inline(always)]
fn for_each_routed(
    xp: &[f32],
    dzp: &[f32],
    codes: Option<&[u8]>,
    (w, k, oh, ow): (usize, usize, usize, usize),
    t: impl Fn(f32) -> f32 + Copy,
    mut f: impl FnMut(usize, f32),
) {
    if let (Some(cp), 2) = (codes, k) {
        for oy in 0..oh {
            let (cr, dr) = (&cp[oy * ow..][..ow], &dzp[oy * ow..][..ow]);
            for (ox, (&c, &g)) in cr.iter().zip(dr).enumerate() {
                if c != NOT_ROUTED {
                    let (r, col) = (usize::from(c >> 1), usize::from(c & 1));
                    f((2 * oy + r) * w + 2 * ox + col, g);
                }
            }
        }
        return;
    }
    for oy in 0..oh {
        for ox in 0..ow {
            let (idx, m) = window_argmax(xp, w, k, oy, ox, t);
            if m > 0.0 {
                f(idx, dzp[oy * ow + ox]);
            }
        }
    }
}

impl PoolReluBwdOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l1): F32In, (dz, l2): F32In) -> Out {
        let k = self.k;
        let d = l1.dims();
        let (planes, h, w, oh, ow) = pool_geom(d, k)?;
        if l2.dims() != [d[0], d[1], oh, ow] {
            bail!(
                "max_pool2d_relu backward: dy {:?} does not match x {d:?}",
                l2.dims()
            );
        }
        let c = d[1];
        if let Some(bn) = &self.bn {
            if bn.mean.len() != c {
                bail!("max_pool2d_relu backward: {c} channels expected");
            }
        }
        let inv_m = 1.0 / (d[0] * h * w) as f32;
        let routes = usable_routes(&self.routes, k, planes, oh, ow);
        let mut dx = vec![0f32; planes * h * w];
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w))
            .zip(dz.par_chunks(oh * ow))
            .enumerate()
            .with_min_len(16)
            .for_each(|(pl, ((dxp, xp), dzp))| {
                let codes = routes.map(|r| &r[pl * oh * ow..][..oh * ow]);
                let geom = (w, k, oh, ow);
                match &self.bn {
                    None => for_each_routed(xp, dzp, codes, geom, |v| v, |i, g| dxp[i] = g),
                    Some(bn) => {
                        let ch = pl % c;
                        match (&self.sums, bn.train) {
                            (Some((sg, sgx)), true) => bn_pool_bwd_plane(
                                dxp,
                                xp,
                                dzp,
                                codes,
                                geom,
                                bn,
                                ch,
                                (sg[ch] * inv_m, sgx[ch] * inv_m),
                            ),
                            _ => {
                                // gamma·invstd = a (a was computed as invstd·gamma).
                                let scale = bn.a[ch];
                                for_each_routed(xp, dzp, codes, geom, bn.t(ch), |i, g| {
                                    dxp[i] = scale * g;
                                })
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(dx), Shape::from(d)))
    }
}

impl CustomOp2 for PoolReluBwdOp {
    cpu_forward!("fast-pool-relu-bwd", 2, f32 "max_pool2d_relu backward");
}

/// One plane of the train-mode input gradient of [`PoolReluBwdOp`]: `dxp` (H·W) from the plane's
/// input `xp`, pooled gradient `dzp` (OH·OW), routing `codes`, geometry `(W, k, OH, OW)`, the
/// channel `ch` of `bn`, and `(db, dg) = (Σg/M, Σg·x̂/M)`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bn_pool_bwd_plane(
    dxp: &mut [f32],
    xp: &[f32],
    dzp: &[f32],
    codes: Option<&[u8]>,
    (w, k, oh, ow): (usize, usize, usize, usize),
    bn: &PoolBn,
    ch: usize,
    (db, dg): (f32, f32),
) {
    let bd = BnDx {
        mean: bn.mean[ch],
        invstd: bn.invstd[ch],
        // gamma·invstd = a (a was computed as invstd·gamma).
        scale: bn.a[ch],
        db,
        dg,
    };
    for (o, &xv) in dxp.iter_mut().zip(xp) {
        *o = bd.at(0.0, xv);
    }
    for_each_routed(xp, dzp, codes, (w, k, oh, ow), bn.t(ch), |i, g| {
        dxp[i] = bd.at(g, xp[i]);
    });
}

/// Batch-norm parameter gradients of the fused op: (x, dz) → (2, C) = `[Σg; Σg·x̂]` =
/// `[dbeta; dgamma]`, `g` the sparse gradient of the normalized values (see [`PoolReluBwdOp`]).
struct PoolBnSumsOp {
    k: usize,
    bn: PoolBn,
    /// The forward pass's routing codes (k = 2); recomputed from x when absent.
    routes: Option<Routes>,
}

impl PoolBnSumsOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l1): F32In, (dz, l2): F32In) -> Out {
        let k = self.k;
        let d = l1.dims();
        let (_, _, _, oh, ow) = pool_geom(d, k)?;
        let (n, c) = (d[0], d[1]);
        if l2.dims() != [n, c, oh, ow] || self.bn.mean.len() != c {
            bail!(
                "batch norm + pool backward: dy {:?} does not match x {d:?}",
                l2.dims()
            );
        }
        Ok((
            CpuStorage::F32(pool_bn_sums(x, dz, d, k, &self.bn, &self.routes)),
            Shape::from((2, c)),
        ))
    }
}

impl CustomOp2 for PoolBnSumsOp {
    cpu_forward!("fast-bn-pool-relu-sums", 2, f32 "batch norm + pool backward");
}

/// `[Σg; Σg·x̂]` (2·C values) of [`PoolBnSumsOp`] for contiguous `x: dims` (N, C, H, W) and
/// `dz` (N, C, OH, OW); shapes must have been checked.
fn pool_bn_sums(
    x: &[f32],
    dz: &[f32],
    d: &[usize],
    k: usize,
    bn: &PoolBn,
    routes: &Option<Routes>,
) -> Vec<f32> {
    let (n, c, h, w) = (d[0], d[1], d[2], d[3]);
    let (oh, ow) = (h / k, w / k);
    let routes = usable_routes(routes, k, n * c, oh, ow);
    let sums = bn_channel_sums(n, c, |i, ch| {
        let xp = &x[(i * c + ch) * h * w..][..h * w];
        let dzp = &dz[(i * c + ch) * oh * ow..][..oh * ow];
        let codes = routes.map(|r| &r[(i * c + ch) * oh * ow..][..oh * ow]);
        let (mu, is) = (bn.mean[ch], bn.invstd[ch]);
        let (mut s0, mut s1) = (0f32, 0f32);
        for_each_routed(xp, dzp, codes, (w, k, oh, ow), bn.t(ch), |idx, g| {
            s0 += g;
            s1 += g * xhat(xp[idx], mu, is);
        });
        [s0 as f64, s1 as f64]
    });
    let mut out = Vec::with_capacity(2 * c);
    out.extend(sums.iter().map(|v| v[0] as f32));
    out.extend(sums.iter().map(|v| v[1] as f32));
    out
}

/// Fused batch norm (train or eval statistics) + max-pool + ReLU op: (x, gamma, beta) → z.
struct BnPoolReluOp {
    k: usize,
    bn: PoolBn,
    /// Routing codes of the forward pass (k = 2), for the backward.
    routes: RouteSlot,
}

impl BnPoolReluOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (s1, l1): In, (_s2, _l2): In, (_s3, _l3): In) -> Out {
        // gamma and beta are already folded into `bn.a` / `bn.b`; they are inputs only so that
        // the graph routes their gradients.
        let x = f32_slice(s1, l1, "batch norm + pool")?;
        let d = l1.dims();
        if d.len() != 4 || self.bn.a.len() != d[1] {
            bail!(
                "batch norm + pool: input must be (N, C, H, W) with C = {}, got {d:?}",
                self.bn.a.len()
            );
        }
        let (y, codes) = pool_relu_fwd(x, d, self.k, Some((&self.bn.a, &self.bn.b)))?;
        put_routes(&self.routes, codes);
        let (_, _, _, oh, ow) = pool_geom(d, self.k)?;
        Ok((CpuStorage::F32(y), Shape::from((d[0], d[1], oh, ow))))
    }
}

impl CustomOp3 for BnPoolReluOp {
    cpu_forward!("fast-bn-pool-relu", 3);

    fn bwd(
        &self,
        x: &Tensor,
        _gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        dz: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dz = dz.contiguous()?;
        let sums = x.apply_op2_no_bwd(
            &dz,
            &PoolBnSumsOp {
                k: self.k,
                bn: self.bn.clone(),
                routes: get_routes(&self.routes),
            },
        )?;
        let dbeta = sums.get(0)?;
        let dgamma = sums.get(1)?;
        let dx = if x.track_op() {
            let op = PoolReluBwdOp {
                k: self.k,
                bn: Some(self.bn.clone()),
                sums: if self.bn.train {
                    Some((dbeta.to_vec1::<f32>()?, dgamma.to_vec1::<f32>()?))
                } else {
                    None
                },
                routes: get_routes(&self.routes),
            };
            Some(x.apply_op2_no_bwd(&dz, &op)?)
        } else {
            None
        };
        Ok((dx, Some(dgamma), Some(dbeta)))
    }
}

/// Folds batch-norm statistics and affine parameters into [`PoolBn`].
fn pool_bn(
    mean: Vec<f32>,
    invstd: Vec<f32>,
    gamma: &Tensor,
    beta: &Tensor,
    train: bool,
) -> Result<PoolBn> {
    let g = gamma.detach().to_vec1::<f32>()?;
    let bt = beta.detach().to_vec1::<f32>()?;
    Ok(fold_bn(mean, invstd, &g, &bt, train))
}

/// [`pool_bn`] from slices.
fn fold_bn(mean: Vec<f32>, invstd: Vec<f32>, g: &[f32], bt: &[f32], train: bool) -> PoolBn {
    let (a, b) = mean
        .iter()
        .zip(&invstd)
        .zip(g.iter().zip(bt))
        .map(|((&m, &is), (&g, &bt))| bn_scale_shift(m, is, g, bt))
        .unzip();
    PoolBn {
        mean,
        invstd,
        a,
        b,
        train,
    }
}

/// `relu(max_pool2d(x, k))` as one op: one pass forward (no intermediate tensor) and one pass
/// backward (each window's gradient goes to its first maximum when that maximum is > 0), so one
/// graph node instead of two. Same values and gradients as [`max_pool2d`] followed by [`relu`]
/// (or [`relu`] followed by [`max_pool2d`]). NCHW f32 on CPU; falls back to candle's ops on
/// other devices; errors on non-f32 dtypes and bad shapes.
#[allow(dead_code)] // only the tests call it
pub(crate) fn max_pool2d_relu(x: &Tensor, k: usize) -> Result<Tensor> {
    check_f32(x, "input", "max_pool2d_relu")?;
    pool_geom(x.dims(), k)?;
    if !x.device().is_cpu() {
        return x.max_pool2d(k)?.relu();
    }
    x.contiguous()?.apply_op1(PoolReluOp {
        k,
        routes: RouteSlot::default(),
    })
}

/// Training-mode batch norm, max-pool (kernel = stride = `k`) and ReLU fused into one op:
/// returns `(relu(max_pool2d(batch_norm_train(x).0, k)), batch_mean, batch_biased_var)`.
///
/// Same values as [`batch_norm_train`] → [`max_pool2d`] → [`relu`] (bit-identical forward;
/// gradients equal up to float summation order), but the full-size normalized tensor is never
/// stored and its gradient never formed: the backward pushes the pooled gradient straight
/// through the batch norm (one reduction pass and one pass writing dx). `x: (N, C, H, W)`,
/// `gamma`, `beta`: `(C,)`. On a non-CPU device this falls back to the unfused ops. Errors on
/// non-f32 dtypes and bad shapes.
pub(crate) fn batch_norm_train_pool_relu(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    k: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    pool_geom(x.dims(), k)?;
    if !x.device().is_cpu() {
        let (y, m, v) = batch_norm_train(x, gamma, beta, eps)?;
        return Ok((relu(&max_pool2d(&y, k)?)?, m, v));
    }
    check_bn_train_args(x, gamma, beta, eps)?;
    let x = x.contiguous()?;
    let (mean, var, invstd) = train_stats(&x, eps)?;
    let bn = pool_bn(mean.to_vec1::<f32>()?, invstd, gamma, beta, true)?;
    let z = x.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        BnPoolReluOp {
            k,
            bn,
            routes: RouteSlot::default(),
        },
    )?;
    Ok((z, mean, var))
}

/// Eval-mode batch norm (running statistics), max-pool (kernel = stride = `k`) and ReLU as one
/// op: `relu(max_pool2d(batch_norm_eval(x, ...), k))` in a single pass over `x`, without the
/// full-size intermediate. Differentiable (statistics are constants). Same arguments and errors
/// as [`batch_norm_eval`] plus `k`; falls back to the unfused ops on other devices.
pub(crate) fn batch_norm_eval_pool_relu(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f64,
    k: usize,
) -> Result<Tensor> {
    pool_geom(x.dims(), k)?;
    if !x.device().is_cpu() {
        let y = batch_norm_eval(x, gamma, beta, running_mean, running_var, eps)?;
        return relu(&max_pool2d(&y, k)?);
    }
    check_bn_eval_args(x, [gamma, beta, running_mean, running_var], eps)?;
    let (mean, invstd) = running_stats(running_mean, running_var, eps)?;
    let bn = pool_bn(mean, invstd, gamma, beta, false)?;
    x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        BnPoolReluOp {
            k,
            bn,
            routes: RouteSlot::default(),
        },
    )
}

/// What the forward pass of [`ConvBnPoolReluOp`] keeps for its backward pass and its caller.
struct ConvBnState {
    /// The convolution output (the batch norm's input), `(N, C, H, W)`.
    y: std::sync::Arc<Vec<f32>>,
    /// Batch statistics folded with gamma and beta.
    bn: PoolBn,
    /// `[mean; biased variance]`, `(2, C)`.
    stats: Vec<f32>,
    /// Routing codes of the pooling windows (k = 2).
    routes: Option<Routes>,
}

/// Convolution (stride 1, no bias) → training-mode batch norm → max-pool → ReLU as one graph
/// node: (x, w, [gamma; beta]) → z. The convolution output is held by the op (shared `state`),
/// not by the graph, so candle's backward never allocates, zeroes and adds a gradient of that
/// size: the backward ([`ConvBnBwdOp`]) forms it chunk by chunk, straight into the layout the
/// convolution's weight- and input-gradient GEMMs read.
struct ConvBnPoolReluOp {
    pad: usize,
    k: usize,
    eps: f64,
    need_input_grad: bool,
    state: std::sync::Arc<std::sync::Mutex<Option<ConvBnState>>>,
}

impl ConvBnPoolReluOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l1): F32In, (w, l2): F32In, (gb, _): F32In) -> Out {
        let g = conv_geom(l1.dims(), l2.dims(), self.pad)?;
        let c_out = g.c_out;
        if gb.len() != 2 * c_out {
            bail!("batch_norm_train: gamma and beta must have {c_out} elements each");
        }
        let dims = [g.n, c_out, g.oh, g.ow];
        let (_, _, _, oh, ow) = pool_geom(&dims, self.k)?;
        bn_geom(&dims)?;
        let y = conv_forward(x, w, &g);
        let stats = batch_stats(&y, g.n, c_out, g.p());
        let (mean, var) = stats.split_at(c_out);
        let bn = fold_bn(
            mean.to_vec(),
            invstd_of(var, self.eps),
            &gb[..c_out],
            &gb[c_out..],
            true,
        );
        let (z, codes) = pool_relu_fwd(&y, &dims, self.k, Some((&bn.a, &bn.b)))?;
        let state = ConvBnState {
            y: std::sync::Arc::new(y),
            bn,
            stats,
            routes: codes.map(std::sync::Arc::new),
        };
        match self.state.lock() {
            Ok(mut s) => *s = Some(state),
            Err(_) => bail!("conv + batch norm + pool: state lock poisoned"),
        }
        Ok((CpuStorage::F32(z), Shape::from((g.n, c_out, oh, ow))))
    }
}

impl CustomOp3 for ConvBnPoolReluOp {
    cpu_forward!("fast-conv-bn-pool-relu", 3, f32 "conv + batch norm + pool");

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        gb: &Tensor,
        _res: &Tensor,
        dz: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (y, bn, routes) = match self.state.lock() {
            Ok(s) => match &*s {
                Some(st) => (st.y.clone(), st.bn.clone(), st.routes.clone()),
                None => bail!("conv + batch norm + pool: backward before forward"),
            },
            Err(_) => bail!("conv + batch norm + pool: state lock poisoned"),
        };
        let dz = dz.contiguous()?;
        let need_dx = self.need_input_grad && x.track_op();
        let op = ConvBnBwdOp {
            pad: self.pad,
            k: self.k,
            y,
            bn,
            routes,
            need_dx,
            out: std::sync::Mutex::new(None),
        };
        let dw = x.apply_op3_no_bwd(w, &dz, &op)?;
        let Some((dx, sums)) = op.out.lock().ok().and_then(|mut o| o.take()) else {
            bail!("conv + batch norm + pool backward: no result");
        };
        let dx = match dx {
            Some(v) => Some(Tensor::from_vec(v, x.shape(), x.device())?),
            None => None,
        };
        let c = sums.len() / 2;
        // sums = [dbeta; dgamma]; the op's third input is [gamma; beta].
        let dgb = if gb.track_op() {
            let v: Vec<f32> = sums[c..].iter().chain(&sums[..c]).copied().collect();
            Some(Tensor::from_vec(v, 2 * c, gb.device())?)
        } else {
            None
        };
        Ok((dx, w.track_op().then_some(dw), dgb))
    }
}

/// Backward of [`ConvBnPoolReluOp`] in one pass over fixed chunks of [`DW_CHUNK`] images:
/// (x, w, dz) → dW, with dx and `[dbeta; dgamma]` left in `out`. Each chunk forms the
/// convolution output's gradient for its images directly in the channel-major layout the GEMMs
/// read (never the whole tensor), then its partial weight gradient and its input gradient.
struct ConvBnBwdOp {
    pad: usize,
    k: usize,
    /// The forward convolution output.
    y: std::sync::Arc<Vec<f32>>,
    bn: PoolBn,
    routes: Option<Routes>,
    need_dx: bool,
    /// `(dx, [dbeta; dgamma])` once computed.
    #[allow(clippy::type_complexity)]
    out: std::sync::Mutex<Option<(Option<Vec<f32>>, Vec<f32>)>>,
}

impl ConvBnBwdOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (s1, l1): In, (s2, l2): In, (s3, l3): In) -> Out {
        let what = "conv + batch norm + pool backward";
        let x = f32_slice(s1, l1, what)?;
        let w = f32_slice(s2, l2, what)?;
        let dz = f32_slice(s3, l3, what)?;
        let g = conv_geom(l1.dims(), l2.dims(), self.pad)?;
        let c_out = g.c_out;
        let ydims = [g.n, c_out, g.oh, g.ow];
        let (_, _, _, ph, pw) = pool_geom(&ydims, self.k)?;
        let y = self.y.as_slice();
        if l3.dims() != [g.n, c_out, ph, pw] || y.len() != g.n * c_out * g.p() {
            bail!("{what}: dz {:?} does not match {ydims:?}", l3.dims());
        }
        if self.bn.mean.len() != c_out {
            bail!("{what}: {c_out} channels expected");
        }
        let (k, p, co, in_len) = (g.k(), g.p(), c_out, g.in_len());
        let sums = pool_bn_sums(y, dz, &ydims, self.k, &self.bn, &self.routes);
        let inv_m = 1.0 / (g.n * p) as f32;
        let routes = usable_routes(&self.routes, self.k, g.n * co, ph, pw);
        let wlen = co * k;
        let n_chunks = g.n.div_ceil(DW_CHUNK);
        let mut partial = vec![0f32; n_chunks * wlen];
        // Without dx, one unused value per chunk keeps the zip below aligned.
        let dx_chunk = if self.need_dx { DW_CHUNK * in_len } else { 1 };
        let mut dx = vec![0f32; if self.need_dx { g.n * in_len } else { n_chunks }];
        partial
            .par_chunks_mut(wlen)
            .zip(dx.par_chunks_mut(dx_chunk.max(1)))
            .enumerate()
            .for_each(|(c, (part, dxc))| {
                let (i0, i1) = (c * DW_CHUNK, ((c + 1) * DW_CHUNK).min(g.n));
                let ld = (i1 - i0) * p;
                let dcol_len = if self.need_dx { k * ld } else { 0 };
                with_scratch3(k * ld, co * ld, dcol_len, |col, dyb, dcol| {
                    // dyb (C_out × mP): the chunk's gradient of the convolution output, in the
                    // layout of [`gather_images`]; col: the chunk's im2col, image by image in
                    // the same loop.
                    for (j, i) in (i0..i1).enumerate() {
                        for o in 0..co {
                            let pl = i * co + o;
                            bn_pool_bwd_plane(
                                &mut dyb[o * ld + j * p..][..p],
                                &y[pl * p..][..p],
                                &dz[pl * ph * pw..][..ph * pw],
                                routes.map(|r| &r[pl * ph * pw..][..ph * pw]),
                                (g.ow, self.k, ph, pw),
                                &self.bn,
                                o,
                                (sums[o] * inv_m, sums[co + o] * inv_m),
                            );
                        }
                        im2col(&x[i * in_len..][..in_len], &g, &mut col[j * p..], ld);
                    }
                    weight_grad_gemm(&g, part, dyb, col, ld);
                    if self.need_dx {
                        input_grad_chunk(&g, w, dyb, dcol, dxc, ld);
                    }
                })
            });
        let dw = sum_partials(&partial, n_chunks, wlen);
        let dx = self.need_dx.then_some(dx);
        match self.out.lock() {
            Ok(mut o) => *o = Some((dx, sums)),
            Err(_) => bail!("{what}: result lock poisoned"),
        }
        Ok((CpuStorage::F32(dw), Shape::from((co, g.c_in, g.kh, g.kw))))
    }
}

impl CustomOp3 for ConvBnBwdOp {
    cpu_forward!("fast-conv-bn-pool-relu-bwd", 3);
}

/// Convolution (3x3-style, stride 1, zero padding `padding`, no bias; see [`conv2d`]), then
/// training-mode batch norm, max-pool (kernel = stride = `k`) and ReLU, as one graph node:
/// returns `(z, batch_mean, batch_biased_var)` with
/// `z = relu(max_pool2d(batch_norm_train(conv2d(x, w)).0, k))`.
///
/// Same values as [`conv2d`] followed by [`batch_norm_train_pool_relu`] (bit-identical forward
/// and gradients), but the convolution output is not a graph node, so candle's backward does not
/// allocate, zero and accumulate a gradient of its size. `need_input_grad` as in [`conv2d`].
/// On a non-CPU device this falls back to the unfused ops. Errors on non-f32 dtypes and bad
/// shapes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_bn_train_pool_relu(
    x: &Tensor,
    w: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    padding: usize,
    need_input_grad: bool,
    eps: f64,
    k: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    if !x.device().is_cpu() || !w.device().is_cpu() {
        let h = conv2d(x, w, padding, need_input_grad)?;
        return batch_norm_train_pool_relu(&h, gamma, beta, eps, k);
    }
    check_f32(x, "input", "conv2d")?;
    check_f32(w, "kernel", "conv2d")?;
    let g = conv_geom(x.dims(), w.dims(), padding)?;
    let c_out = g.c_out;
    pool_geom(&[g.n, c_out, g.oh, g.ow], k)?;
    check_bn_train_params(gamma, beta, c_out, eps)?;
    let gb = Tensor::cat(&[gamma, beta], 0)?;
    let state = std::sync::Arc::new(std::sync::Mutex::new(None));
    let z = x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &gb,
        ConvBnPoolReluOp {
            pad: padding,
            k,
            eps,
            need_input_grad,
            state: state.clone(),
        },
    )?;
    let stats = match state.lock() {
        Ok(s) => s.as_ref().map(|st| st.stats.clone()),
        Err(_) => None,
    };
    let Some(stats) = stats else {
        bail!("conv + batch norm + pool: forward left no statistics");
    };
    let stats = Tensor::from_vec(stats, (2, c_out), x.device())?;
    Ok((z, stats.get(0)?, stats.get(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::ops::test_util::{
        assert_close, assert_close_abs, bits, loss_grads, values, Rng,
    };
    use candle_core::{DType, Device, Var};

    /// Loss Σ z·r and the gradients of x, gamma, beta for one z.
    fn grads3(z: &Tensor, r: &Tensor, vs: [&Var; 3]) -> Vec<Tensor> {
        let g = loss_grads(z, r);
        vs.iter().map(|v| g.get(v).unwrap().clone()).collect()
    }

    #[test]
    fn pool_relu_matches_unfused() {
        for (seed, dims, k) in [
            (81u64, [2usize, 3, 8, 8], 2usize),
            (82, [3, 2, 7, 9], 2),
            (83, [2, 2, 9, 7], 3),
            (84, [1, 3, 5, 5], 1),
        ] {
            let mut rng = Rng(seed);
            let x = Var::from_tensor(&rng.tensor(&dims)).unwrap();
            let ours = max_pool2d_relu(&x, k).unwrap();
            let theirs = relu(&max_pool2d(&x, k).unwrap()).unwrap();
            assert_eq!(bits(&ours), bits(&theirs), "pool+relu fwd {dims:?}");
            let r = rng.tensor(ours.dims());
            let g1 = loss_grads(&ours, &r);
            let g2 = loss_grads(&theirs, &r);
            assert_eq!(
                bits(g1.get(&x).unwrap()),
                bits(g2.get(&x).unwrap()),
                "pool+relu dx"
            );
        }
        // NaN propagates through the fused op like through the unfused ones.
        let x =
            Tensor::from_vec(vec![1f32, f32::NAN, -3., 0.5], (1, 1, 2, 2), &Device::Cpu).unwrap();
        assert!(max_pool2d_relu(&x, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0]
            .is_nan());
        assert!(max_pool2d_relu(&x, 0).is_err());
        assert!(max_pool2d_relu(&x.to_dtype(DType::F64).unwrap(), 2).is_err());
    }

    #[test]
    fn bn_pool_relu_matches_unfused() {
        for (seed, dims, k) in [
            (91u64, [5usize, 3, 8, 8], 2usize),
            (92, [19, 2, 7, 9], 2), // odd sizes: rows/cols outside every window
            (93, [4, 3, 9, 7], 3),
            (94, [3, 2, 4, 4], 1),
        ] {
            let mut rng = Rng(seed);
            let x = Var::from_tensor(&(rng.tensor(&dims) * 2.0).unwrap().affine(1.0, 0.3).unwrap())
                .unwrap();
            let c = dims[1];
            // Negative gammas flip which element of a window is maximal.
            let gamma = Var::from_tensor(&rng.tensor(&[c])).unwrap();
            let beta = Var::from_tensor(&rng.tensor(&[c])).unwrap();
            let (z, m, v) = batch_norm_train_pool_relu(&x, &gamma, &beta, 1e-5, k).unwrap();
            let (y, m2, v2) = batch_norm_train(&x, &gamma, &beta, 1e-5).unwrap();
            let zr = relu(&max_pool2d(&y, k).unwrap()).unwrap();
            assert_eq!(bits(&z), bits(&zr), "bn+pool+relu fwd {dims:?}");
            assert_eq!(bits(&m), bits(&m2));
            assert_eq!(bits(&v), bits(&v2));
            let r = rng.tensor(z.dims());
            let ga = grads3(&z, &r, [&x, &gamma, &beta]);
            let gb = grads3(&zr, &r, [&x, &gamma, &beta]);
            for (a, b) in ga.iter().zip(&gb) {
                assert_close_abs(a, b, &format!("bn+pool+relu grad {dims:?}"));
            }
            // Eval mode: bit-identical forward, gradients as the unfused composition.
            let rm = rng.tensor(&[c]);
            let rv = rng.tensor(&[c]).abs().unwrap().affine(1.0, 0.2).unwrap();
            let ze = batch_norm_eval_pool_relu(&x, &gamma, &beta, &rm, &rv, 1e-5, k).unwrap();
            let zer = relu(
                &max_pool2d(
                    &batch_norm_eval(&x, &gamma, &beta, &rm, &rv, 1e-5).unwrap(),
                    k,
                )
                .unwrap(),
            )
            .unwrap();
            assert_eq!(bits(&ze), bits(&zer), "bn eval+pool+relu fwd {dims:?}");
            let ga = grads3(&ze, &r, [&x, &gamma, &beta]);
            let gb = grads3(&zer, &r, [&x, &gamma, &beta]);
            for (a, b) in ga.iter().zip(&gb) {
                assert_close(a, b, "bn eval+pool+relu grad");
            }
        }
        let mut rng = Rng(95);
        let x = rng.tensor(&[2, 3, 4, 4]);
        let g = rng.tensor(&[3]);
        assert!(batch_norm_train_pool_relu(&x, &rng.tensor(&[4]), &g, 1e-5, 2).is_err());
        assert!(batch_norm_train_pool_relu(&x, &g, &g, 1e-5, 5).is_err());
        assert!(
            batch_norm_train_pool_relu(&x.to_dtype(DType::F64).unwrap(), &g, &g, 1e-5, 2).is_err()
        );
        assert!(batch_norm_eval_pool_relu(&x, &g, &g, &g, &rng.tensor(&[2]), 1e-5, 2).is_err());
    }

    #[test]
    fn routes_match_recomputed_maxima() {
        // Backward passes with the forward's routing codes vs recomputing the window maxima,
        // bit for bit, with many ties (values on a coarse grid) and a few NaNs.
        let mut rng = Rng(96);
        let dims = [6usize, 3, 9, 8];
        let n: usize = dims.iter().product();
        let mut xv: Vec<f32> = (0..n).map(|_| (rng.next() * 3.0).round()).collect();
        xv[7] = f32::NAN;
        xv[100] = f32::NAN;
        let x = Tensor::from_vec(xv, dims.as_slice(), &Device::Cpu).unwrap();
        let gamma = Tensor::new(&[1.5f32, -0.5, 0.0], &Device::Cpu).unwrap();
        let beta = Tensor::new(&[0.25f32, 0.0, -0.1], &Device::Cpu).unwrap();
        let bn = pool_bn(
            vec![0.1, -0.2, 0.3],
            vec![1.1, 0.9, 2.0],
            &gamma,
            &beta,
            true,
        )
        .unwrap();
        let xs = values(&x);
        let (_, codes) = pool_relu_fwd(&xs, &dims, 2, Some((&bn.a, &bn.b))).unwrap();
        let (_, plain_codes) = pool_relu_fwd(&xs, &dims, 2, None).unwrap();
        let routes = codes.map(std::sync::Arc::new);
        assert!(routes.is_some());
        let dz = rng.tensor(&[6, 3, 4, 4]);
        let sums = |routes: Option<Routes>| {
            let op = PoolBnSumsOp {
                k: 2,
                bn: bn.clone(),
                routes,
            };
            x.apply_op2_no_bwd(&dz, &op).unwrap()
        };
        let (s_codes, s_plain) = (sums(routes.clone()), sums(None));
        assert_eq!(bits(&s_codes), bits(&s_plain), "sums");
        let sv = s_plain.to_vec2::<f32>().unwrap();
        let dx = |routes: Option<Routes>, bn: Option<PoolBn>| {
            let op = PoolReluBwdOp {
                k: 2,
                sums: bn.as_ref().map(|_| (sv[0].clone(), sv[1].clone())),
                bn,
                routes,
            };
            x.apply_op2_no_bwd(&dz, &op).unwrap()
        };
        assert_eq!(
            bits(&dx(routes.clone(), Some(bn.clone()))),
            bits(&dx(None, Some(bn.clone()))),
            "bn dx"
        );
        let plain = plain_codes.map(std::sync::Arc::new);
        assert_eq!(bits(&dx(plain, None)), bits(&dx(None, None)), "dx");
        // Codes that do not fit the shape are ignored.
        let wrong = Some(std::sync::Arc::new(vec![0u8; 5]));
        assert_eq!(bits(&dx(wrong, None)), bits(&dx(None, None)), "bad codes");
    }

    #[test]
    fn conv_bn_pool_relu_matches_unfused() {
        for (seed, dims, c_out, k) in [
            (101u64, [5usize, 3, 8, 8], 4usize, 2usize),
            (102, [19, 2, 7, 9], 3, 2), // odd sizes; several images per GEMM
            (103, [4, 3, 9, 7], 2, 3),
        ] {
            let mut rng = Rng(seed);
            let x = Var::from_tensor(&rng.tensor(&dims)).unwrap();
            let w = Var::from_tensor(&rng.tensor(&[c_out, dims[1], 3, 3])).unwrap();
            let gamma = Var::from_tensor(&rng.tensor(&[c_out])).unwrap();
            let beta = Var::from_tensor(&rng.tensor(&[c_out])).unwrap();
            let (z, m, v) =
                conv_bn_train_pool_relu(&x, &w, &gamma, &beta, 1, true, 1e-5, k).unwrap();
            let h = conv2d(&x, &w, 1, true).unwrap();
            let (zr, mr, vr) = batch_norm_train_pool_relu(&h, &gamma, &beta, 1e-5, k).unwrap();
            assert_eq!(bits(&z), bits(&zr), "conv+bn+pool+relu fwd {dims:?}");
            assert_eq!(bits(&m), bits(&mr));
            assert_eq!(bits(&v), bits(&vr));
            let r = rng.tensor(z.dims());
            let vars = [&x, &w, &gamma, &beta];
            let grads = |z: &Tensor| {
                let g = loss_grads(z, &r);
                vars.map(|v| bits(g.get(v).unwrap()))
            };
            assert_eq!(grads(&z), grads(&zr), "conv+bn+pool+relu grads {dims:?}");
            // Without the input gradient (first layer): the others are unchanged.
            let (z2, _, _) =
                conv_bn_train_pool_relu(&x, &w, &gamma, &beta, 1, false, 1e-5, k).unwrap();
            let g = loss_grads(&z2, &r);
            assert!(g.get(&x).is_none());
            assert_eq!(bits(g.get(&w).unwrap()), grads(&zr)[1]);
        }
        let mut rng = Rng(104);
        let x = rng.tensor(&[2, 3, 6, 6]);
        let w = rng.tensor(&[4, 3, 3, 3]);
        let g = rng.tensor(&[4]);
        let f = |x: &Tensor, w: &Tensor, g: &Tensor, k| {
            conv_bn_train_pool_relu(x, w, g, g, 1, true, 1e-5, k).is_err()
        };
        assert!(!f(&x, &w, &g, 2));
        assert!(f(&x, &w, &rng.tensor(&[3]), 2));
        assert!(f(&x, &rng.tensor(&[4, 2, 3, 3]), &g, 2));
        assert!(f(&x, &w, &g, 7));
        assert!(f(&x.to_dtype(DType::F64).unwrap(), &w, &g, 2));
        assert!(conv_bn_train_pool_relu(&x, &w, &g, &g, 1, true, -1.0, 2).is_err());
    }
}
