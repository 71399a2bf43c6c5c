//! Shared CPU helpers of the custom ops: the fixed chunk sizes that every parallel reduction
//! is cut into (so that results do not depend on the thread count), the per-thread scratch
//! buffers, access to f32 CPU storage, dtype checks and the single-threaded GEMM wrapper.

use std::cell::RefCell;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result, Shape, Tensor};

/// One input of an op's CPU forward pass: its storage and layout, as candle passes them.
pub(super) type In<'a> = (&'a CpuStorage, &'a Layout);

/// One f32 input of an op's CPU forward pass: its elements (contiguous) and layout.
pub(super) type F32In<'a> = (&'a [f32], &'a Layout);

/// What an op's CPU forward pass returns.
pub(super) type Out = Result<(CpuStorage, Shape)>;

/// The `name` and `cpu_fwd` items of candle's `CustomOp1`, `CustomOp2` or `CustomOp3` (the
/// count of inputs), for an op whose CPU forward pass is its own `forward` method: the one place
/// that spells out candle's argument list. `cpu_forward!(name, n)` passes every input as an
/// [`In`]; `cpu_forward!(name, n, f32 what)` first checks that each is a contiguous f32 tensor
/// ([`f32_slice`], errors naming `what`), in order, and passes it as an [`F32In`].
macro_rules! cpu_forward {
    ($name:literal, 1 $(, f32 $what:literal)?) => {
        cpu_forward!(@items $name, [$($what)?], (s1, l1));
    };
    ($name:literal, 2 $(, f32 $what:literal)?) => {
        cpu_forward!(@items $name, [$($what)?], (s1, l1), (s2, l2));
    };
    ($name:literal, 3 $(, f32 $what:literal)?) => {
        cpu_forward!(@items $name, [$($what)?], (s1, l1), (s2, l2), (s3, l3));
    };
    (@items $name:literal, [$($what:literal)?], $(($s:ident, $l:ident)),+) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn cpu_fwd(
            &self,
            $($s: &candle_core::CpuStorage, $l: &candle_core::Layout),+
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            cpu_forward!(@slice [$($what)?], $($s, $l),+);
            self.forward($(($s, $l)),+)
        }
    };
    (@slice [], $($s:ident, $l:ident),+) => {};
    (@slice [$what:literal], $($s:ident, $l:ident),+) => {
        $(let $s = super::cpu::f32_slice($s, $l, $what)?;)+
    };
}
pub(super) use cpu_forward;

/// Number of images per partial sum in the convolution weight gradient. The partial sums are
/// added in chunk order, so the result does not depend on the rayon thread count. 8 keeps 16
/// parallel tasks at batch 128 and gives the GEMM an inner dimension of 8·OH·OW.
pub(crate) const DW_CHUNK: usize = 8;

/// Target GEMM width (output pixels) in convolution forward and input gradient: images are
/// batched [`conv_chunk`] at a time so that small feature maps (7×7 = 49 pixels) still give the
/// GEMM a wide matrix. Fixed (never derived from the thread count), so results stay
/// deterministic.
const CONV_COLS: usize = 256;

/// Images per GEMM in the convolution forward and input gradient for `p` output pixels per image.
pub(super) fn conv_chunk(p: usize) -> usize {
    (CONV_COLS / p.max(1)).max(1)
}

/// Number of rows (images × channels planes) per partial sum in the batch-norm reductions.
pub(super) const BN_ROWS: usize = 16;

thread_local! {
    /// Per-thread scratch buffers reused across calls (no allocation per image).
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

thread_local! {
    /// A third per-thread scratch buffer, for [`with_scratch3`].
    static SCRATCH3: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// As [`with_scratch`] with a third slice of length `c_len`.
pub(super) fn with_scratch3<R>(
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
pub(super) fn with_scratch<R>(
    a_len: usize,
    b_len: usize,
    f: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
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
pub(super) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
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
pub(super) fn check_f32(t: &Tensor, what: &str, op: &str) -> Result<()> {
    if t.dtype() != DType::F32 {
        bail!("{op}: {what} must be f32, got {:?}", t.dtype());
    }
    Ok(())
}

/// The direct (no graph) entry point the tests use for a backward op: `op` on two CPU f32 tensors `(a, b)` named `names`, outside the graph.
#[cfg(test)]
pub(super) fn direct_op2(
    (a, b): (&Tensor, &Tensor),
    names: [&str; 2],
    what: &str,
    op: &impl candle_core::CustomOp2,
) -> Result<Tensor> {
    check_f32(a, names[0], what)?;
    check_f32(b, names[1], what)?;
    if !a.device().is_cpu() || !b.device().is_cpu() {
        bail!("{what}: CPU only");
    }
    a.contiguous()?.apply_op2_no_bwd(&b.contiguous()?, op)
}

/// Single-threaded f32 GEMM: `dst (m×n) = lhs (m×k) · rhs (k×n)`, or `dst += ...` when
/// `accumulate`. Every matrix is given as a slice plus (row stride, column stride).
#[allow(clippy::too_many_arguments)]
pub(super) fn sgemm(
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
