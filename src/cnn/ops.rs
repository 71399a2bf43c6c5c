//! Fast CPU custom ops for the small CNN: convolution, max pooling and training-mode batch norm.
//!
//! # Why this exists
//!
//! Measured on candle 0.11.1 (CPU, 2 threads, batch 128 of 1×28×28, the three-block
//! conv3x3 → BN → ReLU → max-pool network): a training step was about 5x slower than PyTorch,
//! and about 85% of the step was the backward pass, because
//!
//! * candle's conv2d *input* gradient is a direct nested loop, not im2col + GEMM;
//! * candle's max-pool backward is assembled from ~7 generic ops (upsample, eq, to_dtype,
//!   avg-pool, mul, upsample, mul), each a full pass over the activations;
//! * the gradient with respect to the network input (the image) is computed although nothing
//!   consumes it;
//! * candle-nn's training-mode batch norm is a dozen generic ops with a transpose + copy, and its
//!   backward is the autodiff of all of them.
//!
//! # What it does
//!
//! [`conv2d`], [`max_pool2d`], [`batch_norm_train`], [`batch_norm_eval`] and [`relu`] are candle
//! custom ops (`CustomOp1/2/3`) with hand-written forward and backward kernels:
//!
//! * convolution forward, weight gradient and input gradient are all im2col (or col2im) + one
//!   `gemm` call per fixed chunk of images, parallel across chunks with rayon (weight gradient:
//!   [`DW_CHUNK`] images; forward and input gradient: enough images for about 256 GEMM columns,
//!   i.e. 5 images of 7×7 in the third block, 1 image of 14×14 or 28×28 — one 49-column GEMM per
//!   image was the slowest part of the step); the input gradient is skipped when the caller says
//!   it is not needed (`need_input_grad == false`) or when the input does not track gradients;
//! * max pooling (kernel = stride) forward and backward are single passes; the backward routes
//!   each window's gradient to the first maximal element of the window;
//! * batch norm computes per-channel batch statistics, normalizes and applies the affine in
//!   fused passes, with the analytic backward (two passes over the activations); the eval-mode
//!   variant is one pass;
//! * ReLU is one pass forward and one backward (candle's built-in backward is ~6 passes).
//!
//! * [`max_pool2d_relu`], [`batch_norm_train_pool_relu`] and [`batch_norm_eval_pool_relu`] fuse
//!   the block's tail (batch norm → max-pool → ReLU) into one graph node. candle's backward
//!   allocates a zeroed gradient for every node input and adds the node's gradient into it, so
//!   every full-size intermediate costs several passes in the backward; the fused ops never
//!   form the normalized tensor nor its gradient, and the forward writes only the pooled output.
//!   For k = 2 the forward also keeps one byte per window saying where the window's gradient
//!   goes (its first maximum, or nowhere when the ReLU cuts it), computed with branch-free
//!   selects, so the backward passes do not search the windows again.
//! * [`conv_bn_train_pool_relu`] goes one step further for training: the whole block
//!   (convolution → batch norm → max-pool → ReLU) is one graph node whose op keeps the
//!   convolution output itself, so candle never allocates, zeroes and accumulates a gradient of
//!   the convolution output's size (that bookkeeping was about a tenth of a training step).
//!   Its backward works on fixed chunks of [`DW_CHUNK`] images: each chunk forms its part of the
//!   convolution output's gradient in scratch memory and feeds it to the weight- and
//!   input-gradient GEMMs, so that full-size gradient is never allocated nor copied.
//!
//! The backward passes are themselves custom ops (applied without graph tracking, so they are
//! not differentiable a second time), so a `loss.backward()` never falls back to candle's slow
//! paths for these layers.
//!
//! # Determinism
//!
//! Every output and gradient is bit-identical whatever the rayon thread count: per-image work is
//! independent, GEMMs run single-threaded inside a task (`gemm::Parallelism::None`), and every
//! reduction over the batch (conv weight gradient, batch-norm statistics and parameter
//! gradients) sums in a fixed order over fixed-size pieces that do not depend on the number of
//! threads.
//!
//! # Devices and dtypes
//!
//! The fast paths are CPU + f32 only, on NCHW tensors. On any other device the public functions
//! fall back to candle's own ops (`Tensor::conv2d`, `Tensor::max_pool2d`, generic batch-norm
//! ops), so a CUDA build still works. Other dtypes and bad shapes give a candle error, never a
//! panic.
//!
//! Each rayon worker thread keeps a scratch buffer (the im2col matrix of one image, or of one
//! weight-gradient chunk) that is reused across calls; it grows to the largest size seen
//! (about 2 MB per thread for this network) and is never shrunk.

use std::cell::RefCell;

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

/// Number of images per partial sum in the convolution weight gradient. The partial sums are
/// added in chunk order, so the result does not depend on the rayon thread count. 8 keeps 16
/// parallel tasks at batch 128 and gives the GEMM an inner dimension of 8·OH·OW.
pub const DW_CHUNK: usize = 8;

/// Target GEMM width (output pixels) in convolution forward and input gradient: images are
/// batched [`conv_chunk`] at a time so that small feature maps (7×7 = 49 pixels) still give the
/// GEMM a wide matrix. Fixed (never derived from the thread count), so results stay
/// deterministic.
const CONV_COLS: usize = 256;

/// Images per GEMM in the convolution forward and input gradient for `p` output pixels per image.
fn conv_chunk(p: usize) -> usize {
    (CONV_COLS / p.max(1)).max(1)
}

/// Number of rows (images × channels planes) per partial sum in the batch-norm reductions.
const BN_ROWS: usize = 16;

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// Per-thread scratch buffers reused across calls (no allocation per image).
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

thread_local! {
    /// A third per-thread scratch buffer, for [`with_scratch3`].
    static SCRATCH3: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// As [`with_scratch`] with a third slice of length `c_len`.
fn with_scratch3<R>(
    a_len: usize,
    b_len: usize,
    c_len: usize,
    f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> R,
) -> R {
    with_scratch(a_len, b_len, |a, b| {
        SCRATCH3.with(|cell| match cell.try_borrow_mut() {
            Ok(mut c) => {
                if c.len() < c_len {
                    c.resize(c_len, 0.0);
                }
                f(a, b, &mut c[..c_len])
            }
            Err(_) => f(a, b, &mut vec![0.0; c_len]),
        })
    })
}

/// Runs `f` with two scratch slices of lengths `a_len` and `b_len` (contents unspecified).
/// Uses this thread's buffers; if they are already borrowed (re-entrant use), allocates.
fn with_scratch<R>(a_len: usize, b_len: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let (a, b) = &mut *bufs;
            if a.len() < a_len {
                a.resize(a_len, 0.0);
            }
            if b.len() < b_len {
                b.resize(b_len, 0.0);
            }
            f(&mut a[..a_len], &mut b[..b_len])
        }
        Err(_) => f(&mut vec![0.0; a_len], &mut vec![0.0; b_len]),
    })
}

/// The f32 data of a contiguous CPU storage, or an error.
fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        other => bail!("{op}: expects f32, got {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: expects a contiguous tensor, got layout {l:?}"),
    }
}

/// Checks the common preconditions of the CPU fast paths.
fn check_f32(t: &Tensor, what: &str, op: &str) -> Result<()> {
    if t.dtype() != DType::F32 {
        bail!("{op}: {what} must be f32, got {:?}", t.dtype());
    }
    Ok(())
}

/// Single-threaded f32 GEMM: `dst (m×n) = lhs (m×k) · rhs (k×n)`, or `dst += ...` when
/// `accumulate`. Every matrix is given as a slice plus (row stride, column stride).
#[allow(clippy::too_many_arguments)]
fn sgemm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // Bounds of the largest index touched in each matrix: these make the raw-pointer call safe.
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        last(m, n, dst_rs, dst_cs) < dst.len(),
        "sgemm: dst out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_rs + j * dst_cs] = 0.0;
                }
            }
        }
        return;
    }
    assert!(
        last(m, k, lhs_rs, lhs_cs) < lhs.len(),
        "sgemm: lhs out of bounds"
    );
    assert!(
        last(k, n, rhs_rs, rhs_cs) < rhs.len(),
        "sgemm: rhs out of bounds"
    );
    // SAFETY: the asserts above check that every element addressed by the strides is inside the
    // slices; dst is borrowed mutably and cannot alias lhs/rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0, // alpha: scales the old dst (only read when accumulate)
            1.0, // beta: scales lhs·rhs
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------------------------

/// Geometry of a stride-1, zero-padded 2-D convolution.
#[derive(Clone, Copy, Debug)]
struct ConvGeom {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    oh: usize,
    ow: usize,
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
    fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    /// Output pixels per channel (columns of the im2col matrix of one image).
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    fn in_len(&self) -> usize {
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
fn im2col(x: &[f32], g: &ConvGeom, col: &mut [f32], ld: usize) {
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
fn weight_grad_gemm(g: &ConvGeom, part: &mut [f32], dyb: &[f32], col: &[f32], ld: usize) {
    let (co, k) = (g.c_out, g.k());
    sgemm((co, k, ld), part, (k, 1), false, dyb, (ld, 1), col, (1, ld));
}

/// Input gradient of one chunk of `ld / P` images: `dcol (K × ld) = Wᵀ (K × C_out) · dyb
/// (C_out × ld)`, then [`col2im`] of each image into `dx` (zeroed by the caller).
fn input_grad_chunk(
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
fn conv_geom(x: &[usize], w: &[usize], pad: usize) -> Result<ConvGeom> {
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

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "fast-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "conv2d")?;
        let w = f32_slice(s2, l2, "conv2d")?;
        let g = conv_geom(l1.dims(), l2.dims(), self.pad)?;
        let y = conv_forward(x, w, &g);
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.c_out, g.oh, g.ow))))
    }

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
fn conv_forward(x: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
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

impl CustomOp2 for ConvWeightGradOp {
    fn name(&self) -> &'static str {
        "fast-conv2d-dw"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "conv2d weight grad")?;
        let dy = f32_slice(s2, l2, "conv2d weight grad")?;
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

/// Sum of `n_chunks` partial weight gradients of `wlen` values each, added in chunk order (fixed,
/// independent of the thread count).
fn sum_partials(partial: &[f32], n_chunks: usize, wlen: usize) -> Vec<f32> {
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

impl CustomOp2 for ConvInputGradOp {
    fn name(&self) -> &'static str {
        "fast-conv2d-dx"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dy = f32_slice(s1, l1, "conv2d input grad")?;
        let w = f32_slice(s2, l2, "conv2d input grad")?;
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
pub fn conv2d(x: &Tensor, w: &Tensor, padding: usize, need_input_grad: bool) -> Result<Tensor> {
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
/// Exposed for profiling; training code gets it through `backward()`.
pub fn conv2d_weight_grad(
    x: &Tensor,
    dy: &Tensor,
    kh: usize,
    kw: usize,
    padding: usize,
) -> Result<Tensor> {
    check_f32(x, "input", "conv2d weight grad")?;
    check_f32(dy, "output gradient", "conv2d weight grad")?;
    if !x.device().is_cpu() || !dy.device().is_cpu() {
        bail!("conv2d weight grad: CPU only");
    }
    x.contiguous()?.apply_op2_no_bwd(
        &dy.contiguous()?,
        &ConvWeightGradOp {
            pad: padding,
            kh,
            kw,
        },
    )
}

/// Gradient of [`conv2d`] with respect to its input, computed directly (no graph): `dy` is the
/// output gradient, `w` the kernel, `(h, w)` the input's spatial size; returns
/// `(N, C_in, h, w)`. CPU f32 only. Exposed for profiling; training code gets it through
/// `backward()`.
pub fn conv2d_input_grad(
    dy: &Tensor,
    w: &Tensor,
    padding: usize,
    (h, wd): (usize, usize),
) -> Result<Tensor> {
    check_f32(dy, "output gradient", "conv2d input grad")?;
    check_f32(w, "kernel", "conv2d input grad")?;
    if !dy.device().is_cpu() || !w.device().is_cpu() {
        bail!("conv2d input grad: CPU only");
    }
    dy.contiguous()?.apply_op2_no_bwd(
        &w.contiguous()?,
        &ConvInputGradOp {
            pad: padding,
            h,
            w: wd,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Max pooling
// ---------------------------------------------------------------------------------------------

/// Validates `(N, C, H, W)` for pooling with kernel = stride = k; returns (planes, H, W, OH, OW).
fn pool_geom(dims: &[usize], k: usize) -> Result<(usize, usize, usize, usize, usize)> {
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
/// identity for a plain max pool, or a folded batch norm ([`affine`]).
#[inline(always)]
fn window_argmax(
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
fn argmax4(v: [f32; 4]) -> (f32, u8) {
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

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "fast-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "max_pool2d")?;
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
        Ok((
            CpuStorage::F32(y),
            Shape::from((l.dims()[0], l.dims()[1], oh, ow)),
        ))
    }

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

impl CustomOp2 for MaxPoolBwdOp {
    fn name(&self) -> &'static str {
        "fast-max-pool2d-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "max_pool2d backward")?;
        let dy = f32_slice(s2, l2, "max_pool2d backward")?;
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
pub fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    check_f32(x, "input", "max_pool2d")?;
    pool_geom(x.dims(), k)?;
    if !x.device().is_cpu() {
        return x.max_pool2d(k);
    }
    x.contiguous()?.apply_op1(MaxPoolOp { k })
}

/// Gradient of [`max_pool2d`] with respect to its input, computed directly (no graph).
/// Exposed for profiling; training code gets it through `backward()`. CPU f32 only.
pub fn max_pool2d_backward(x: &Tensor, dy: &Tensor, k: usize) -> Result<Tensor> {
    check_f32(x, "input", "max_pool2d backward")?;
    check_f32(dy, "output gradient", "max_pool2d backward")?;
    if !x.device().is_cpu() || !dy.device().is_cpu() {
        bail!("max_pool2d backward: CPU only");
    }
    x.contiguous()?
        .apply_op2_no_bwd(&dy.contiguous()?, &MaxPoolBwdOp { k })
}

// ---------------------------------------------------------------------------------------------
// Batch norm (training mode)
// ---------------------------------------------------------------------------------------------

/// Shape `(N, C, S)` of an `(N, C, ...)` tensor, S the product of the trailing dims.
fn bn_geom(dims: &[usize]) -> Result<(usize, usize, usize)> {
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
fn bn_channel_sums(
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

impl CustomOp1 for BnStatsOp {
    fn name(&self) -> &'static str {
        "fast-bn-stats"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(st, l, "batch_norm_train")?;
        let (n, c, s) = bn_geom(l.dims())?;
        Ok((
            CpuStorage::F32(batch_stats(x, n, c, s)),
            Shape::from((2, c)),
        ))
    }
}

/// `[mean; biased variance]` (2·C values) per channel of a contiguous `(N, C, S)` slice.
fn batch_stats(x: &[f32], n: usize, c: usize, s: usize) -> Vec<f32> {
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
fn bn_scale_shift(mean: f32, invstd: f32, gamma: f32, beta: f32) -> (f32, f32) {
    let a = invstd * gamma;
    (a, beta - mean * a)
}

/// The normalized value `x̂ = (x − mean)·invstd`.
#[inline(always)]
fn xhat(x: f32, mean: f32, invstd: f32) -> f32 {
    (x - mean) * invstd
}

/// One channel's batch-norm input gradient, `dx = scale·(g − db − x̂·dg)` for an output gradient
/// `g` at input `x`: `scale = gamma·invstd`, and in training mode `db = Σg/M`, `dg = Σg·x̂/M`
/// (the statistics' share; 0 in eval mode).
#[derive(Clone, Copy)]
struct BnDx {
    mean: f32,
    invstd: f32,
    scale: f32,
    db: f32,
    dg: f32,
}

impl BnDx {
    #[inline(always)]
    fn at(self, g: f32, x: f32) -> f32 {
        self.scale * (g - self.db - xhat(x, self.mean, self.invstd) * self.dg)
    }
}

/// Normalize + affine op: (x, gamma, beta) → y, with the batch statistics captured.
struct BnNormOp {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// Training mode: the statistics are functions of x (and the backward accounts for it);
    /// otherwise they are constants (running statistics).
    train: bool,
}

impl CustomOp3 for BnNormOp {
    fn name(&self) -> &'static str {
        "fast-bn-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "batch_norm_train")?;
        let gamma = f32_slice(s2, l2, "batch_norm_train")?;
        let beta = f32_slice(s3, l3, "batch_norm_train")?;
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

impl CustomOp2 for BnBwdSumsOp {
    fn name(&self) -> &'static str {
        "fast-bn-bwd-sums"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
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

/// Batch-norm input gradient: (x, dy) → dx = gamma·invstd·(dy − dbeta/M − x̂·dgamma/M).
struct BnBwdDxOp {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    gamma: Vec<f32>,
    dbeta: Vec<f32>,
    dgamma: Vec<f32>,
}

impl CustomOp2 for BnBwdDxOp {
    fn name(&self) -> &'static str {
        "fast-bn-bwd-dx"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
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

/// Training-mode batch norm over `(N, C, ...)`: per-channel mean and biased variance over all
/// dimensions but C, normalize with `eps`, then `gamma · x̂ + beta` (`gamma`, `beta`: `(C,)`).
///
/// Returns `(y, batch_mean, batch_biased_var)`; the statistics are detached `(C,)` tensors. The
/// caller updates its running statistics from them (running var usually uses the unbiased
/// variance `var · M / (M − 1)`, M = N·H·W). The backward pass is analytic (gradients for x,
/// gamma and beta). On a non-CPU device this falls back to generic candle ops. Errors on
/// non-f32 dtypes and bad shapes.
pub fn batch_norm_train(
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
fn check_bn_train_args(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<()> {
    check_f32(x, "input", "batch_norm_train")?;
    let (_, c, _) = bn_geom(x.dims())?;
    check_bn_train_params(gamma, beta, c, eps)
}

/// Checks training-mode batch norm's `gamma` and `beta` (f32, `(C,)`) and `eps` (≥ 0).
fn check_bn_train_params(gamma: &Tensor, beta: &Tensor, c: usize, eps: f64) -> Result<()> {
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
fn train_stats(x: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Vec<f32>)> {
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
pub fn batch_norm_eval(
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
fn check_bn_eval_args(x: &Tensor, params: [&Tensor; 4], eps: f64) -> Result<usize> {
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
fn running_stats(mean: &Tensor, var: &Tensor, eps: f64) -> Result<(Vec<f32>, Vec<f32>)> {
    let mean = mean.detach().to_vec1::<f32>()?;
    let invstd = invstd_of(&var.detach().to_vec1::<f32>()?, eps);
    Ok((mean, invstd))
}

// ---------------------------------------------------------------------------------------------
// ReLU
// ---------------------------------------------------------------------------------------------

/// Elements per rayon task in the element-wise ops.
const ELEMWISE_CHUNK: usize = 1 << 15;

/// ReLU forward op.
struct ReluOp;

impl CustomOp1 for ReluOp {
    fn name(&self) -> &'static str {
        "fast-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "relu")?;
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

    fn bwd(&self, _x: &Tensor, res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&dy.contiguous()?, &ReluBwdOp)?))
    }
}

/// ReLU backward op: (y, dy) → dy where y > 0, else 0.
struct ReluBwdOp;

impl CustomOp2 for ReluBwdOp {
    fn name(&self) -> &'static str {
        "fast-relu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = f32_slice(s1, l1, "relu backward")?;
        let dy = f32_slice(s2, l2, "relu backward")?;
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

/// ReLU, f32 on CPU, as one pass forward and one pass backward (candle's built-in backward is
/// about six passes). The gradient at exactly 0 is 0 (torch's convention; candle's built-in
/// uses 1). Any shape. Falls back to `Tensor::relu` on other devices; errors on non-f32.
///
/// Tip: max pooling commutes with ReLU, so `relu(max_pool2d(x))` equals `max_pool2d(relu(x))`
/// (values and gradients) at a quarter of the ReLU cost for k = 2.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    check_f32(x, "input", "relu")?;
    if !x.device().is_cpu() {
        return x.relu();
    }
    x.contiguous()?.apply_op1(ReluOp)
}

// ---------------------------------------------------------------------------------------------
// Fused max-pool + ReLU, optionally after batch norm
// ---------------------------------------------------------------------------------------------

/// Per-channel affine `v·a + b` applied before pooling (batch norm folded to a scale and shift),
/// or none (plain max-pool + ReLU).
#[derive(Clone)]
struct PoolBn {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// `a = invstd·gamma`, `b = beta − mean·a` per channel ([`bn_scale_shift`], as
    /// [`BnNormOp`] computes them).
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
fn affine(a: f32, b: f32) -> impl Fn(f32) -> f32 + Copy {
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

impl CustomOp1 for PoolReluOp {
    fn name(&self) -> &'static str {
        "fast-max-pool2d-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "max_pool2d_relu")?;
        let (y, codes) = pool_relu_fwd(x, l.dims(), self.k, None)?;
        put_routes(&self.routes, codes);
        let (_, _, _, oh, ow) = pool_geom(l.dims(), self.k)?;
        Ok((
            CpuStorage::F32(y),
            Shape::from((l.dims()[0], l.dims()[1], oh, ow)),
        ))
    }

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

impl CustomOp2 for PoolReluBwdOp {
    fn name(&self) -> &'static str {
        "fast-pool-relu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "max_pool2d_relu backward")?;
        let dz = f32_slice(s2, l2, "max_pool2d_relu backward")?;
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

impl CustomOp2 for PoolBnSumsOp {
    fn name(&self) -> &'static str {
        "fast-bn-pool-relu-sums"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "batch norm + pool backward")?;
        let dz = f32_slice(s2, l2, "batch norm + pool backward")?;
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

impl CustomOp3 for BnPoolReluOp {
    fn name(&self) -> &'static str {
        "fast-bn-pool-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _s2: &CpuStorage,
        _l2: &Layout,
        _s3: &CpuStorage,
        _l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
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

/// `1/sqrt(var + eps)` per channel, as every batch-norm op here computes it.
fn invstd_of(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
        .collect()
}

/// `relu(max_pool2d(x, k))` as one op: one pass forward (no intermediate tensor) and one pass
/// backward (each window's gradient goes to its first maximum when that maximum is > 0), so one
/// graph node instead of two. Same values and gradients as [`max_pool2d`] followed by [`relu`]
/// (or [`relu`] followed by [`max_pool2d`]). NCHW f32 on CPU; falls back to candle's ops on
/// other devices; errors on non-f32 dtypes and bad shapes.
pub fn max_pool2d_relu(x: &Tensor, k: usize) -> Result<Tensor> {
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
pub fn batch_norm_train_pool_relu(
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
pub fn batch_norm_eval_pool_relu(
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

impl CustomOp3 for ConvBnPoolReluOp {
    fn name(&self) -> &'static str {
        "fast-conv-bn-pool-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "conv + batch norm + pool")?;
        let w = f32_slice(s2, l2, "conv + batch norm + pool")?;
        let gb = f32_slice(s3, l3, "conv + batch norm + pool")?;
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

impl CustomOp3 for ConvBnBwdOp {
    fn name(&self) -> &'static str {
        "fast-conv-bn-pool-relu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
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
pub fn conv_bn_train_pool_relu(
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
    use candle_core::{Device, Var};

    /// splitmix64 → uniform f32 in [-1, 1).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        fn tensor(&mut self, shape: &[usize]) -> Tensor {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| self.next()).collect();
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
        }
    }

    fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
        assert_eq!(a.dims(), b.dims(), "{what}: shape");
        let (a, b) = (values(a), values(b));
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let err = (x - y).abs() / scale.max(y.abs());
            assert!(
                err <= 1e-4,
                "{what}: element {i}: {x} vs {y} (rel {err}, scale {scale})"
            );
        }
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// The values of a tensor, flattened.
    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// Equal within 1e-4, relative to max(|b|, 1) (for differences of O(1) terms).
    fn assert_close_abs(a: &Tensor, b: &Tensor, what: &str) {
        for (p, q) in values(a).iter().zip(&values(b)) {
            assert!(
                (p - q).abs() <= 1e-4 * q.abs().max(1.0),
                "{what}: {p} vs {q}"
            );
        }
    }

    /// The gradients of the loss Σ y·r.
    fn loss_grads(y: &Tensor, r: &Tensor) -> candle_core::backprop::GradStore {
        (y * r).unwrap().sum_all().unwrap().backward().unwrap()
    }

    /// Bits of `y`, `m`, `v` and of the gradients of Σ y·r (r drawn from `rng`) for `vars`.
    fn bits_and_grads(rng: &mut Rng, [y, m, v]: [&Tensor; 3], vars: &[&Var]) -> Vec<Vec<u32>> {
        let r = rng.tensor(y.dims());
        let g = loss_grads(y, &r);
        let mut out = vec![bits(y), bits(m), bits(v)];
        out.extend(vars.iter().map(|var| bits(g.get(var).unwrap())));
        out
    }

    /// Runs `f` on 1 thread, then on 2, 3 and 8, and checks that the results are the same.
    fn assert_same_on_threads<R: PartialEq + Send>(f: impl Fn() -> R + Send + Sync, what: &str) {
        let on = |t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(&f)
        };
        let reference = on(1);
        for t in [2, 3, 8] {
            assert!(
                on(t) == reference,
                "{what}: results differ with {t} threads"
            );
        }
    }

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

    /// Forward outputs and all gradients of a small conv → bn → relu → pool stack.
    fn run_stack(seed: u64) -> Vec<Vec<u32>> {
        let mut rng = Rng(seed);
        let x = Var::from_tensor(&rng.tensor(&[21, 3, 13, 11])).unwrap();
        let w1 = Var::from_tensor(&rng.tensor(&[6, 3, 3, 3])).unwrap();
        let w2 = Var::from_tensor(&rng.tensor(&[5, 6, 5, 5])).unwrap();
        let gamma = Var::from_tensor(&rng.tensor(&[6])).unwrap();
        let beta = Var::from_tensor(&rng.tensor(&[6])).unwrap();
        let h = conv2d(&x, &w1, 1, true).unwrap();
        let (h, m, v) = batch_norm_train(&h, &gamma, &beta, 1e-5).unwrap();
        let h = relu(&max_pool2d(&h, 2).unwrap()).unwrap();
        let y = conv2d(&h, &w2, 2, true).unwrap();
        bits_and_grads(&mut rng, [&y, &m, &v], &[&x, &w1, &w2, &gamma, &beta])
    }

    #[test]
    fn deterministic_across_thread_counts() {
        assert_same_on_threads(|| run_stack(41), "conv, bn, relu, pool");
    }

    /// Loss Σ z·r and the gradients of x, gamma, beta for one z.
    fn grads3(z: &Tensor, r: &Tensor, vs: [&Var; 3]) -> Vec<Tensor> {
        let g = loss_grads(z, r);
        vs.iter().map(|v| g.get(v).unwrap().clone()).collect()
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

    /// As run_stack, with the fused ops and chunked convolutions.
    fn run_fused_stack(seed: u64) -> Vec<Vec<u32>> {
        let mut rng = Rng(seed);
        let x = Var::from_tensor(&rng.tensor(&[21, 3, 12, 10])).unwrap();
        let w1 = Var::from_tensor(&rng.tensor(&[6, 3, 3, 3])).unwrap();
        let w2 = Var::from_tensor(&rng.tensor(&[5, 6, 3, 3])).unwrap();
        let gamma = Var::from_tensor(&rng.tensor(&[6])).unwrap();
        let beta = Var::from_tensor(&rng.tensor(&[6])).unwrap();
        let h = conv2d(&x, &w1, 1, true).unwrap();
        let (h, m, v) = batch_norm_train_pool_relu(&h, &gamma, &beta, 1e-5, 2).unwrap();
        let y = max_pool2d_relu(&conv2d(&h, &w2, 1, true).unwrap(), 2).unwrap();
        bits_and_grads(&mut rng, [&y, &m, &v], &[&x, &w1, &w2, &gamma, &beta])
    }

    #[test]
    fn fused_deterministic_across_thread_counts() {
        assert_same_on_threads(|| run_fused_stack(42), "fused ops");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut rng = Rng(51);
        let x = rng.tensor(&[2, 3, 8, 8]);
        let w = rng.tensor(&[4, 3, 3, 3]);
        // channel mismatch, wrong rank, kernel larger than the padded input, dtype
        assert!(conv2d(&x, &rng.tensor(&[4, 2, 3, 3]), 1, true).is_err());
        assert!(conv2d(&rng.tensor(&[3, 8, 8]), &w, 1, true).is_err());
        assert!(conv2d(&x, &rng.tensor(&[4, 3, 3]), 1, true).is_err());
        assert!(conv2d(
            &rng.tensor(&[2, 3, 2, 2]),
            &rng.tensor(&[4, 3, 5, 5]),
            0,
            true
        )
        .is_err());
        assert!(conv2d(&x, &rng.tensor(&[0, 3, 3, 3]), 1, true).is_err());
        assert!(conv2d(&x.to_dtype(DType::F64).unwrap(), &w, 1, true).is_err());
        assert!(conv2d(&x, &w.to_dtype(DType::F16).unwrap(), 1, true).is_err());
        assert!(conv2d_weight_grad(&x, &rng.tensor(&[2, 4, 7, 8]), 3, 3, 1).is_err());
        assert!(conv2d_input_grad(&rng.tensor(&[2, 4, 8, 8]), &w, 1, (9, 8)).is_err());
        assert!(max_pool2d(&x, 0).is_err());
        assert!(max_pool2d(&x, 9).is_err());
        assert!(max_pool2d(&rng.tensor(&[3, 8, 8]), 2).is_err());
        assert!(max_pool2d(&x.to_dtype(DType::F64).unwrap(), 2).is_err());
        assert!(max_pool2d_backward(&x, &rng.tensor(&[2, 3, 3, 4]), 2).is_err());
        let g = rng.tensor(&[3]);
        assert!(batch_norm_train(&x, &rng.tensor(&[4]), &g, 1e-5).is_err());
        assert!(batch_norm_train(&rng.tensor(&[5]), &g, &g, 1e-5).is_err());
        assert!(batch_norm_train(&x.to_dtype(DType::F64).unwrap(), &g, &g, 1e-5).is_err());
        assert!(batch_norm_train(&x, &g, &g, f64::NAN).is_err());
        // Non-contiguous input is accepted and gives the same result.
        let xt = x.transpose(2, 3).unwrap();
        let a = conv2d(&xt, &w, 1, true).unwrap();
        let b = conv2d(&xt.contiguous().unwrap(), &w, 1, true).unwrap();
        assert_eq!(bits(&a), bits(&b));
        // Empty batch is fine.
        let e = conv2d(&rng.tensor(&[0, 3, 8, 8]), &w, 1, true).unwrap();
        assert_eq!(e.dims(), &[0, 4, 8, 8]);
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

    #[test]
    fn conv_bn_pool_relu_deterministic_across_thread_counts() {
        let run = || {
            let mut rng = Rng(105);
            let x = Var::from_tensor(&rng.tensor(&[21, 3, 12, 10])).unwrap();
            let w1 = Var::from_tensor(&rng.tensor(&[6, 3, 3, 3])).unwrap();
            let w2 = Var::from_tensor(&rng.tensor(&[5, 6, 3, 3])).unwrap();
            let gamma = Var::from_tensor(&rng.tensor(&[6])).unwrap();
            let beta = Var::from_tensor(&rng.tensor(&[6])).unwrap();
            let g2 = Var::from_tensor(&rng.tensor(&[5])).unwrap();
            let b2 = Var::from_tensor(&rng.tensor(&[5])).unwrap();
            let (h, m, v) =
                conv_bn_train_pool_relu(&x, &w1, &gamma, &beta, 1, false, 1e-5, 2).unwrap();
            let (y, _, _) = conv_bn_train_pool_relu(&h, &w2, &g2, &b2, 1, true, 1e-5, 2).unwrap();
            bits_and_grads(&mut rng, [&y, &m, &v], &[&w1, &w2, &gamma, &beta, &g2, &b2])
        };
        assert_same_on_threads(run, "conv + bn + pool + relu");
    }
}
