//! Convolution (stride 1, zero padding, no bias): im2col / col2im + GEMM kernels for the
//! forward pass, the weight gradient and the input gradient, shared with the fused block
//! ([`super::fused`]), and the ops built on them ([`conv2d`] and its direct gradients).

use candle_core::{bail, CpuStorage, CustomOp2, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{check_f32, conv_chunk, cpu_forward, sgemm, with_scratch, F32In, Out, DW_CHUNK};

/// Geometry of a stride-1, zero-padded 2-D convolution.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvGeom {
    pub(super) n: usize,
    pub(super) c_in: usize,
    h: usize,
    w: usize,
    pub(super) c_out: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pad: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
}

impl ConvGeom {
    /// Validates shapes `x: (N, C_in, H, W)` and kernel `(C_out, C_in, KH, KW)`.
    fn new(
        x: &[usize],
        c_out: usize,
        k_cin: usize,
        kh: usize,
        kw: usize,
        pad: usize,
    ) -> Result<Self> {
        let &[n, c_in, h, w] = x else {
            bail!("conv2d: input must be (N, C_in, H, W), got {x:?}");
        };
        if c_in != k_cin {
            bail!("conv2d: input has {c_in} channels but the kernel expects {k_cin}");
        }
        if c_in == 0 || c_out == 0 || kh == 0 || kw == 0 {
            bail!("conv2d: empty channels or kernel (C_in={c_in}, C_out={c_out}, {kh}x{kw})");
        }
        if h + 2 * pad < kh || w + 2 * pad < kw {
            bail!(
                "conv2d: kernel {kh}x{kw} larger than padded input {}x{}",
                h + 2 * pad,
                w + 2 * pad
            );
        }
        let (oh, ow) = (h + 2 * pad - kh + 1, w + 2 * pad - kw + 1);
        Ok(Self {
            n,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            pad,
            oh,
            ow,
        })
    }
    /// Rows of the im2col matrix: C_in·KH·KW.
    pub(super) fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    /// Output pixels per channel (columns of the im2col matrix of one image).
    pub(super) fn p(&self) -> usize {
        self.oh * self.ow
    }
    pub(super) fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }
    /// Range `[lo, hi)` of output columns `ox` whose input column `ox + kj - pad` is inside the
    /// image (the others read the zero padding).
    fn valid_cols(&self, kj: usize) -> (usize, usize) {
        let lo = self.pad.saturating_sub(kj).min(self.ow);
        let hi = (self.w + self.pad).saturating_sub(kj).min(self.ow).max(lo);
        (lo, hi)
    }
    /// Input row of output row `oy` for kernel row `ki`, or None if it is in the padding.
    fn in_row(&self, oy: usize, ki: usize) -> Option<usize> {
        (oy + ki).checked_sub(self.pad).filter(|&iy| iy < self.h)
    }
}

/// im2col of one image `x: (C_in, H, W)` into `col`, a (C_in·KH·KW) × (OH·OW) matrix with row
/// stride `ld` (≥ OH·OW). Row `(ci·KH + ki)·KW + kj`, column `oy·OW + ox` holds
/// `x[ci, oy + ki - pad, ox + kj - pad]`, or 0 in the padding.
pub(super) fn im2col(x: &[f32], g: &ConvGeom, col: &mut [f32], ld: usize) {
    let p = g.p();
    for ci in 0..g.c_in {
        let plane = &x[ci * g.h * g.w..][..g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let r = (ci * g.kh + ki) * g.kw + kj;
                let row = &mut col[r * ld..][..p];
                let (lo, hi) = g.valid_cols(kj);
                for oy in 0..g.oh {
                    let out = &mut row[oy * g.ow..][..g.ow];
                    match g.in_row(oy, ki) {
                        None => out.fill(0.0),
                        Some(iy) => {
                            out[..lo].fill(0.0);
                            out[hi..].fill(0.0);
                            // Input column of output column lo is lo + kj - pad (≥ 0 by lo's def).
                            let src = &plane[iy * g.w + lo + kj - g.pad..][..hi - lo];
                            out[lo..hi].copy_from_slice(src);
                        }
                    }
                }
            }
        }
    }
}

/// col2im: the adjoint of [`im2col`]. Adds every entry of `col` (row stride `ld`) into the input
/// position it was read from; `dx: (C_in, H, W)` must be zeroed by the caller.
fn col2im(col: &[f32], g: &ConvGeom, dx: &mut [f32], ld: usize) {
    let p = g.p();
    for ci in 0..g.c_in {
        let plane = &mut dx[ci * g.h * g.w..][..g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let r = (ci * g.kh + ki) * g.kw + kj;
                let row = &col[r * ld..][..p];
                let (lo, hi) = g.valid_cols(kj);
                for oy in 0..g.oh {
                    if let Some(iy) = g.in_row(oy, ki) {
                        let src = &row[oy * g.ow + lo..][..hi - lo];
                        let dst = &mut plane[iy * g.w + lo + kj - g.pad..][..hi - lo];
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

/// [`im2col`] of `m` consecutive images of `xs` side by side: image `j` fills columns
/// `j·P .. (j+1)·P` of `col` (row stride `ld` ≥ m·P).
fn im2col_images(xs: &[f32], m: usize, g: &ConvGeom, col: &mut [f32], ld: usize) {
    let (p, in_len) = (g.p(), g.in_len());
    for j in 0..m {
        im2col(&xs[j * in_len..][..in_len], g, &mut col[j * p..], ld);
    }
}

/// Lays the `(C_out, P)` output gradients of `m` consecutive images of `dy` side by side in
/// `dyb`, a C_out × (m·P) matrix with row stride `ld`: the layout the GEMMs below read.
fn gather_images(dy: &[f32], m: usize, c_out: usize, p: usize, dyb: &mut [f32], ld: usize) {
    for j in 0..m {
        for o in 0..c_out {
            dyb[o * ld + j * p..][..p].copy_from_slice(&dy[(j * c_out + o) * p..][..p]);
        }
    }
}

/// Weight gradient of one chunk of images: `part (C_out × K) = dyb (C_out × ld) · colᵀ (ld × K)`,
/// `dyb` the chunk's output gradient (as [`gather_images`] lays it out) and `col` its
/// [`im2col_images`].
pub(super) fn weight_grad_gemm(
    g: &ConvGeom,
    part: &mut [f32],
    dyb: &[f32],
    col: &[f32],
    ld: usize,
) {
    let (co, k) = (g.c_out, g.k());
    sgemm((co, k, ld), part, (k, 1), false, dyb, (ld, 1), col, (1, ld));
}

/// Input gradient of one chunk of `ld / P` images: `dcol (K × ld) = Wᵀ (K × C_out) · dyb
/// (C_out × ld)`, then [`col2im`] of each image into `dx` (zeroed by the caller).
pub(super) fn input_grad_chunk(
    g: &ConvGeom,
    w: &[f32],
    dyb: &[f32],
    dcol: &mut [f32],
    dx: &mut [f32],
    ld: usize,
) {
    let (co, k, p, in_len) = (g.c_out, g.k(), g.p(), g.in_len());
    sgemm((k, ld, co), dcol, (ld, 1), false, w, (1, k), dyb, (ld, 1));
    for j in 0..ld / p.max(1) {
        col2im(&dcol[j * p..], g, &mut dx[j * in_len..][..in_len], ld);
    }
}

/// Validates `x: (N, C_in, H, W)` and the kernel's shape `w: (C_out, C_in, KH, KW)`.
pub(super) fn conv_geom(x: &[usize], w: &[usize], pad: usize) -> Result<ConvGeom> {
    let &[c_out, k_cin, kh, kw] = w else {
        bail!("conv2d: kernel must be (C_out, C_in, KH, KW), got {w:?}");
    };
    ConvGeom::new(x, c_out, k_cin, kh, kw, pad)
}

/// Forward convolution op: (x, w) → y.
struct Conv2dOp {
    pad: usize,
    need_input_grad: bool,
}

impl Conv2dOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l1): F32In, (w, l2): F32In) -> Out {
        let g = conv_geom(l1.dims(), l2.dims(), self.pad)?;
        let y = conv_forward(x, w, &g);
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.c_out, g.oh, g.ow))))
    }
}

impl CustomOp2 for Conv2dOp {
    cpu_forward!("fast-conv2d", 2, f32 "conv2d");

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        conv_backward(x, w, dy, self.pad, self.need_input_grad)
    }
}

/// Forward convolution of contiguous `x` (shape from `g`) with kernel `w` (C_out, C_in, KH, KW):
/// returns `y: (N, C_out, OH, OW)`.
pub(super) fn conv_forward(x: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let c_out = g.c_out;
    let (k, p) = (g.k(), g.p());
    let mut y = vec![0f32; g.n * c_out * p];
    let chunk = conv_chunk(p);
    y.par_chunks_mut(chunk * c_out * p)
        .zip(x.par_chunks((chunk * g.in_len()).max(1)))
        .for_each(|(yc, xc)| {
            let m = xc.len() / g.in_len().max(1);
            let ld = m * p;
            let out_len = if m == 1 { 0 } else { c_out * ld };
            with_scratch(k * ld, out_len, |col, ybuf| {
                im2col_images(xc, m, g, col, ld);
                if m == 1 {
                    // y_i (C_out × P) = W (C_out × K) · col (K × P)
                    sgemm((c_out, p, k), yc, (p, 1), false, w, (k, 1), col, (p, 1));
                } else {
                    // ybuf (C_out × mP) = W (C_out × K) · col (K × mP), then scatter the
                    // images' column blocks to their (C_out × P) outputs.
                    sgemm(
                        (c_out, ld, k),
                        ybuf,
                        (ld, 1),
                        false,
                        w,
                        (k, 1),
                        col,
                        (ld, 1),
                    );
                    for j in 0..m {
                        for o in 0..c_out {
                            yc[(j * c_out + o) * p..][..p]
                                .copy_from_slice(&ybuf[o * ld + j * p..][..p]);
                        }
                    }
                }
            })
        });
    y
}

/// Gradients `(dx, dw)` of a convolution with input `x` and kernel `w` from the output
/// gradient `dy`; `dx` only when `need_input_grad` and `x` tracks gradients, `dw` only when `w`
/// does.
fn conv_backward(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    pad: usize,
    need_input_grad: bool,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let dy = dy.contiguous()?;
    let (_, _, kh, kw) = w.dims4()?;
    let dw = if w.track_op() {
        Some(x.apply_op2_no_bwd(&dy, &ConvWeightGradOp { pad, kh, kw })?)
    } else {
        None
    };
    let dx = if need_input_grad && x.track_op() {
        let (_, _, h, wd) = x.dims4()?;
        Some(dy.apply_op2_no_bwd(w, &ConvInputGradOp { pad, h, w: wd })?)
    } else {
        None
    };
    Ok((dx, dw))
}

/// Weight gradient: (x, dy) → dW (C_out, C_in, KH, KW).
struct ConvWeightGradOp {
    pad: usize,
    kh: usize,
    kw: usize,
}

impl ConvWeightGradOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (x, l1): F32In, (dy, l2): F32In) -> Out {
        let (x_dims, dy_dims) = (l1.dims(), l2.dims());
        if x_dims.len() != 4 || dy_dims.len() != 4 {
            bail!("conv2d weight grad: rank-4 x and dy expected, got {x_dims:?}, {dy_dims:?}");
        }
        let g = ConvGeom::new(x_dims, dy_dims[1], x_dims[1], self.kh, self.kw, self.pad)?;
        if dy_dims != [g.n, g.c_out, g.oh, g.ow] {
            bail!("conv2d weight grad: dy {dy_dims:?} does not match x {x_dims:?}");
        }
        let (k, p, co) = (g.k(), g.p(), g.c_out);
        let wlen = co * k;
        // One partial dW per fixed chunk of DW_CHUNK images.
        let n_chunks = g.n.div_ceil(DW_CHUNK);
        let mut partial = vec![0f32; n_chunks * wlen];
        partial
            .par_chunks_mut(wlen)
            .enumerate()
            .for_each(|(c, part)| {
                let (i0, i1) = (c * DW_CHUNK, ((c + 1) * DW_CHUNK).min(g.n));
                // Lay the chunk's images side by side: col is K × (m·P), dyb is C_out × (m·P), so one
                // GEMM with inner dimension m·P computes the chunk's contribution.
                let (m, ld) = (i1 - i0, (i1 - i0) * p);
                with_scratch(k * ld, co * ld, |col, dyb| {
                    im2col_images(&x[i0 * g.in_len()..], m, &g, col, ld);
                    gather_images(&dy[i0 * co * p..], m, co, p, dyb, ld);
                    weight_grad_gemm(&g, part, dyb, col, ld);
                })
            });
        let dw = sum_partials(&partial, n_chunks, wlen);
        Ok((CpuStorage::F32(dw), Shape::from((co, g.c_in, g.kh, g.kw))))
    }
}

impl CustomOp2 for ConvWeightGradOp {
    cpu_forward!("fast-conv2d-dw", 2, f32 "conv2d weight grad");
}

/// Sum of `n_chunks` partial weight gradients of `wlen` values each, added in chunk order (fixed,
/// independent of the thread count).
pub(super) fn sum_partials(partial: &[f32], n_chunks: usize, wlen: usize) -> Vec<f32> {
    let mut dw = vec![0f32; wlen];
    dw.par_chunks_mut(1024).enumerate().for_each(|(b, out)| {
        for c in 0..n_chunks {
            let src = &partial[c * wlen + b * 1024..][..out.len()];
            for (o, s) in out.iter_mut().zip(src) {
                *o += s;
            }
        }
    });
    dw
}

/// Input gradient: (dy, w) → dX (N, C_in, H, W).
struct ConvInputGradOp {
    pad: usize,
    h: usize,
    w: usize,
}

impl ConvInputGradOp {
    /// The CPU forward pass (candle's `cpu_fwd`).
    fn forward(&self, (dy, l1): F32In, (w, l2): F32In) -> Out {
        let (dy_dims, w_dims) = (l1.dims(), l2.dims());
        let (&[n, c_out, oh, ow], &[wc_out, c_in, kh, kw]) = (dy_dims, w_dims) else {
            bail!("conv2d input grad: rank-4 dy and w expected, got {dy_dims:?}, {w_dims:?}");
        };
        let g = ConvGeom::new(&[n, c_in, self.h, self.w], wc_out, c_in, kh, kw, self.pad)?;
        if (c_out, oh, ow) != (g.c_out, g.oh, g.ow) {
            bail!("conv2d input grad: dy {dy_dims:?} does not match kernel {w_dims:?}");
        }
        let (k, p) = (g.k(), g.p());
        let mut dx = vec![0f32; n * g.in_len()];
        let chunk = conv_chunk(p);
        dx.par_chunks_mut((chunk * g.in_len()).max(1))
            .zip(dy.par_chunks(chunk * c_out * p))
            .for_each(|(dxc, dyc)| {
                let m = dyc.len() / (c_out * p).max(1);
                let ld = m * p;
                let in_len = if m == 1 { 0 } else { c_out * ld };
                with_scratch(k * ld, in_len, |dcol, dyb| {
                    // One image's dy (C_out × P) is already laid out for the GEMM; several are
                    // gathered side by side (C_out × mP) for one GEMM.
                    let dyb: &[f32] = if m == 1 {
                        dyc
                    } else {
                        gather_images(dyc, m, c_out, p, dyb, ld);
                        dyb
                    };
                    input_grad_chunk(&g, w, dyb, dcol, dxc, ld);
                })
            });
        Ok((CpuStorage::F32(dx), Shape::from((n, c_in, self.h, self.w))))
    }
}

impl CustomOp2 for ConvInputGradOp {
    cpu_forward!("fast-conv2d-dx", 2, f32 "conv2d input grad");
}

/// 2-D convolution, stride 1, zero padding `padding` on every side, NCHW f32 on CPU, no bias.
///
/// `x: (N, C_in, H, W)`, `w: (C_out, C_in, KH, KW)`; output
/// `(N, C_out, H+2p-KH+1, W+2p-KW+1)`. Forward and backward are im2col + GEMM, parallel across
/// the batch. When `need_input_grad` is false, the backward pass skips the input gradient (use it
/// for the first layer, whose input is the image); it is also skipped whenever `x` does not track
/// gradients. The weight gradient is skipped when `w` does not track gradients.
///
/// Non-contiguous inputs are made contiguous. On a non-CPU device this falls back to candle's
/// `Tensor::conv2d`. Errors (no panic) on non-f32 dtypes, mismatched devices and bad shapes.
pub(crate) fn conv2d(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    need_input_grad: bool,
) -> Result<Tensor> {
    if !x.device().same_device(w.device()) {
        bail!("conv2d: input and kernel are on different devices");
    }
    check_f32(x, "input", "conv2d")?;
    check_f32(w, "kernel", "conv2d")?;
    conv_geom(x.dims(), w.dims(), padding)?;
    if !x.device().is_cpu() {
        return x.conv2d(w, padding, 1, 1, 1);
    }
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        Conv2dOp {
            pad: padding,
            need_input_grad,
        },
    )
}

/// Gradient of [`conv2d`] with respect to the kernel, computed directly (no graph): `x` is the
/// convolution input, `dy` the output gradient; returns `(C_out, C_in, kh, kw)`. CPU f32 only.
/// Training gets it through `backward()`; the tests check that op through this.
#[cfg(test)]
pub(crate) fn conv2d_weight_grad(
    x: &Tensor,
    dy: &Tensor,
    kh: usize,
    kw: usize,
    padding: usize,
) -> Result<Tensor> {
    let op = ConvWeightGradOp {
        pad: padding,
        kh,
        kw,
    };
    super::cpu::direct_op2(
        (x, dy),
        ["input", "output gradient"],
        "conv2d weight grad",
        &op,
    )
}

/// Gradient of [`conv2d`] with respect to its input, computed directly (no graph): `dy` is the
/// output gradient, `w` the kernel, `(h, w)` the input's spatial size; returns
/// `(N, C_in, h, w)`. CPU f32 only. Training gets it through `backward()`; the tests check that
/// op through this.
#[cfg(test)]
pub(crate) fn conv2d_input_grad(
    dy: &Tensor,
    w: &Tensor,
    padding: usize,
    (h, wd): (usize, usize),
) -> Result<Tensor> {
    let op = ConvInputGradOp {
        pad: padding,
        h,
        w: wd,
    };
    super::cpu::direct_op2(
        (dy, w),
        ["output gradient", "kernel"],
        "conv2d input grad",
        &op,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::ops::test_util::{assert_close, loss_grads, Rng};
    use candle_core::Var;

    /// Forward + gradients (dx, dw) of our conv vs candle's, with loss = Σ y·r.
    fn check_conv(
        seed: u64,
        (n, ci, h, w): (usize, usize, usize, usize),
        co: usize,
        k: usize,
        pad: usize,
    ) {
        let mut rng = Rng(seed);
        let x = Var::from_tensor(&rng.tensor(&[n, ci, h, w])).unwrap();
        let wt = Var::from_tensor(&rng.tensor(&[co, ci, k, k])).unwrap();
        let ours = conv2d(&x, &wt, pad, true).unwrap();
        let theirs = x.conv2d(&wt, pad, 1, 1, 1).unwrap();
        let what = format!("conv {n}x{ci}x{h}x{w} co={co} k={k} p={pad}");
        assert_close(&ours, &theirs, &format!("{what} fwd"));
        let r = rng.tensor(ours.dims());
        let g1 = loss_grads(&ours, &r);
        let g2 = loss_grads(&theirs, &r);
        assert_close(
            g1.get(&x).unwrap(),
            g2.get(&x).unwrap(),
            &format!("{what} dx"),
        );
        assert_close(
            g1.get(&wt).unwrap(),
            g2.get(&wt).unwrap(),
            &format!("{what} dw"),
        );
    }

    #[test]
    fn conv_matches_candle() {
        check_conv(1, (2, 3, 7, 9), 4, 3, 1);
        check_conv(2, (3, 1, 28, 28), 8, 3, 1);
        check_conv(3, (1, 5, 11, 6), 3, 5, 0);
        check_conv(4, (2, 2, 9, 7), 5, 5, 1);
        check_conv(5, (4, 3, 5, 5), 2, 3, 0);
        check_conv(6, (3, 4, 7, 7), 6, 3, 1);
        check_conv(7, (17, 2, 6, 5), 3, 3, 2); // more than DW_CHUNK images, pad 2
        check_conv(8, (1, 1, 1, 1), 1, 3, 1); // 1x1 image, kernel wider than the image
        check_conv(9, (2, 1, 4, 4), 1, 1, 0); // 1x1 kernel
    }

    #[test]
    fn conv_skips_input_grad() {
        let mut rng = Rng(11);
        let x = Var::from_tensor(&rng.tensor(&[3, 2, 8, 8])).unwrap();
        let wt = Var::from_tensor(&rng.tensor(&[4, 2, 3, 3])).unwrap();
        let y = conv2d(&x, &wt, 1, false).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(g.get(&x).is_none(), "dx must be skipped");
        let g2 = x
            .conv2d(&wt, 1, 1, 1, 1)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_close(
            g.get(&wt).unwrap(),
            g2.get(&wt).unwrap(),
            "dw with need_input_grad=false",
        );
        // A plain (non-variable) input is never differentiated even with need_input_grad=true.
        let xp = rng.tensor(&[3, 2, 8, 8]);
        let g = conv2d(&xp, &wt, 1, true)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&xp).is_none());
        assert!(g.get(&wt).is_some());
    }

    #[test]
    fn conv_chunked_matches_candle() {
        // Small maps so that several images share one GEMM (conv_chunk > 1), with a batch that
        // is not a multiple of the chunk.
        check_conv(12, (23, 3, 7, 7), 5, 3, 1);
        check_conv(13, (13, 2, 4, 5), 3, 3, 1);
        check_conv(14, (9, 4, 3, 3), 6, 3, 0);
        assert!(conv_chunk(49) > 1 && conv_chunk(784) == 1);
    }
}
