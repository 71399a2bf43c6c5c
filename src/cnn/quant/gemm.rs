//! The int8 matrix product of the quantised CNN: `C (i32, m x n) = A (u8, m x k) · B (i8, k x n)`,
//! with B (the weights) packed once, and one kernel per instruction set, chosen at run time.
//!
//! Why it is written here: rten-gemm has a u8 x i8 kernel, but its kernel choice is private, so
//! its paths cannot each be tested; its AVX2 path uses `vpmaddubsw`, which saturates at i16 unless
//! the weights are cut to 7 bits; and it would raise the crate's minimum Rust to 1.94. candle's
//! Q8_0 blocks are weight-only matrix-vector products, and the `gemm` crate has no integers.
//!
//! Every path is exact (an i32 sum of u8 x i8 products, no saturation anywhere), so the
//! results, and the labels, do not depend on which kernel ran or on the thread count:
//! * [`Isa::Vnni512`]: AVX-512 VNNI `vpdpbusd`, 64 products per instruction, 8 rows x 32 columns
//!   of accumulators in registers.
//! * [`Isa::Avx2`]: `vpmaddwd` on u8 and i8 widened to i16 (exact, unlike `vpmaddubsw`, whose
//!   pairwise i16 sums overflow for 8-bit weights), 6 rows x 16 columns.
//! * [`Isa::Portable`]: plain Rust, any CPU.
//!
//! A's rows are read `kp` ([`PackedB::kp`], `k` rounded up to 4) bytes at a time: the caller
//! gives a row stride of at least `kp`; the bytes past `k` are multiplied by zero rows of B, so
//! their values do not matter.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// An instruction set the int8 kernels can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F + AVX-512BW + AVX-512 VNNI (`vpdpbusd`).
    Vnni512,
    /// AVX2 (`vpmaddwd` on widened values).
    Avx2,
    /// No SIMD intrinsics.
    Portable,
}

impl Isa {
    /// The best instruction set this CPU has.
    pub fn detect() -> Isa {
        Isa::available()[0]
    }

    /// Every instruction set this CPU can run, best first (always ends with `Portable`).
    pub fn available() -> Vec<Isa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
            {
                v.push(Isa::Vnni512);
            }
            if is_x86_feature_detected!("avx2") {
                v.push(Isa::Avx2);
            }
        }
        v.push(Isa::Portable);
        v
    }

    /// Columns per packed block.
    fn block(self) -> usize {
        match self {
            Isa::Vnni512 => 16,
            Isa::Avx2 => 8,
            Isa::Portable => 1,
        }
    }

    /// Short name, for benchmarks and messages.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Vnni512 => "avx512-vnni",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

/// B packed for one instruction set, with its column sums (for zero-point corrections).
#[derive(Debug, Clone)]
pub struct PackedB {
    isa: Isa,
    k: usize,
    kp: usize,
    n: usize,
    /// Vnni512: per block of 16 columns, per group of 4 rows, 16 x 4 bytes (column-major in the
    /// group). Portable: B transposed, n rows of kp.
    bytes: Vec<i8>,
    /// Avx2: per block of 8 columns, per pair of rows, 8 x 2 i16.
    words: Vec<i16>,
    col_sums: Vec<i32>,
}

impl PackedB {
    /// Pack `b` (`k x n`, row-major) for `isa`.
    pub fn new(isa: Isa, b: &[i8], k: usize, n: usize) -> PackedB {
        assert_eq!(b.len(), k * n, "B must be k x n");
        let kp = k.div_ceil(4) * 4;
        let bs = isa.block();
        let np = n.div_ceil(bs) * bs;
        let at = |r: usize, c: usize| if r < k && c < n { b[r * n + c] } else { 0 };
        let mut bytes = Vec::new();
        let mut words = Vec::new();
        match isa {
            Isa::Vnni512 => {
                bytes.reserve(np * kp);
                for j0 in (0..np).step_by(bs) {
                    for q in (0..kp).step_by(4) {
                        for c in j0..j0 + bs {
                            bytes.extend((q..q + 4).map(|r| at(r, c)));
                        }
                    }
                }
            }
            Isa::Avx2 => {
                words.reserve(np * kp);
                for j0 in (0..np).step_by(bs) {
                    for q in (0..kp).step_by(2) {
                        for c in j0..j0 + bs {
                            words.extend((q..q + 2).map(|r| i16::from(at(r, c))));
                        }
                    }
                }
            }
            Isa::Portable => {
                bytes.reserve(n * kp);
                for c in 0..n {
                    bytes.extend((0..kp).map(|r| at(r, c)));
                }
            }
        }
        let col_sums = (0..n)
            .map(|c| (0..k).map(|r| i32::from(b[r * n + c])).sum())
            .collect();
        PackedB {
            isa,
            k,
            kp,
            n,
            bytes,
            words,
            col_sums,
        }
    }

    /// Rows of B.
    pub fn k(&self) -> usize {
        self.k
    }

    /// `k` rounded up to a multiple of 4: the bytes of each row of A that are read.
    pub fn kp(&self) -> usize {
        self.kp
    }

    /// Columns of B.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The instruction set it is packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The sum of each column of B.
    pub fn col_sums(&self) -> &[i32] {
        &self.col_sums
    }
}

/// `C = A · B`: A is `m` rows of stride `lda >= b.kp()` (`a.len() >= (m - 1) * lda + b.kp()`), C
/// is `m` rows of stride `ldc >= b.n()`; C is overwritten.
pub fn gemm_u8i8(a: &[u8], m: usize, lda: usize, b: &PackedB, c: &mut [i32], ldc: usize) {
    if m == 0 || b.n == 0 {
        return;
    }
    assert!(
        lda >= b.kp && a.len() >= (m - 1) * lda + b.kp,
        "A is too short"
    );
    assert!(
        ldc >= b.n && c.len() >= (m - 1) * ldc + b.n,
        "C is too short"
    );
    match b.isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Vnni512 => {
            assert!(Isa::available().contains(&Isa::Vnni512), "no AVX-512 VNNI");
            // SAFETY: the CPU has the features (checked above); every pointer the kernels form
            // stays inside `a`, `b` and `c` (their lengths are checked above; see `vnni`).
            unsafe { vnni::gemm(a, m, lda, b, c, ldc) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            assert!(Isa::available().contains(&Isa::Avx2), "no AVX2");
            // SAFETY: as above.
            unsafe { avx2::gemm(a, m, lda, b, c, ldc) }
        }
        _ => portable(a, m, lda, b, c, ldc),
    }
}

fn portable(a: &[u8], m: usize, lda: usize, b: &PackedB, c: &mut [i32], ldc: usize) {
    for i in 0..m {
        let row = &a[i * lda..i * lda + b.kp];
        for (j, col) in b.bytes.chunks_exact(b.kp).enumerate() {
            c[i * ldc + j] = row
                .iter()
                .zip(col)
                .map(|(&x, &w)| i32::from(x) * i32::from(w))
                .sum();
        }
    }
}

/// The tile order of the SIMD paths: column blocks of `bs`, two at a time (one at the end when
/// their count is odd), and within them `mr_max` rows at a time; `tile(i, j, mr, nb, cols)` gets
/// the first row, the first block, the rows, the blocks and the columns of B to store.
#[cfg(target_arch = "x86_64")]
fn tiles(
    m: usize,
    n: usize,
    bs: usize,
    mr_max: usize,
    mut tile: impl FnMut(usize, usize, usize, usize, usize),
) {
    let blocks = n.div_ceil(bs);
    let mut j = 0;
    while j < blocks {
        let nb = (blocks - j).min(2);
        let cols = (n - j * bs).min(nb * bs);
        let mut i = 0;
        while i < m {
            let mr = (m - i).min(mr_max);
            tile(i, j, mr, nb, cols);
            i += mr;
        }
        j += nb;
    }
}

/// A SIMD path's `gemm`: [`tiles`] over its `kernel`, for target features `$features`, packed
/// blocks of `$block` columns in `b.$field`, and `$step` rows of B per kernel step.
#[cfg(target_arch = "x86_64")]
macro_rules! driver {
    ($features:literal, $block:literal, $field:ident, $step:literal) => {
        #[target_feature(enable = $features)]
        pub(super) unsafe fn gemm(
            a: &[u8],
            m: usize,
            lda: usize,
            b: &PackedB,
            c: &mut [i32],
            ldc: usize,
        ) {
            let panel = b.kp * $block;
            tiles(m, b.n, $block, MR, |i, j, mr, nb, cols| {
                let bp = b.$field.as_ptr().add(j * panel);
                let ap = a.as_ptr().add(i * lda);
                let cp = c.as_mut_ptr().add(i * ldc + j * $block);
                by_tile!(
                    mr,
                    nb,
                    kernel,
                    ap,
                    lda,
                    bp,
                    panel,
                    b.kp / $step,
                    cp,
                    ldc,
                    cols
                );
            })
        }
    };
}

/// Calls `kernel!(MR, NB)` with the tile's row count `$mr` (1..=8) and block count `$nb` (1 or 2)
/// as constants.
macro_rules! by_tile {
    ($mr:expr, $nb:expr, $f:ident, $($arg:expr),*) => {
        if $nb == 2 {
            by_rows!($mr, 2, $f, $($arg),*)
        } else {
            by_rows!($mr, 1, $f, $($arg),*)
        }
    };
}

/// Calls `kernel!(MR, NB)` with the row count `$mr` (1..=`$max`) as a constant.
macro_rules! by_rows {
    ($mr:expr, $nb:literal, $f:ident, $($arg:expr),*) => {
        match $mr {
            1 => $f::<1, $nb>($($arg),*),
            2 => $f::<2, $nb>($($arg),*),
            3 => $f::<3, $nb>($($arg),*),
            4 => $f::<4, $nb>($($arg),*),
            5 => $f::<5, $nb>($($arg),*),
            6 => $f::<6, $nb>($($arg),*),
            7 => $f::<7, $nb>($($arg),*),
            _ => $f::<8, $nb>($($arg),*),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::*;

    /// Rows per kernel call.
    const MR: usize = 8;

    driver!("avx512f,avx512bw,avx512vnni", 16, bytes, 4);

    /// `R` rows x `NB` blocks of 16 columns; `cols` of them are stored.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn kernel<const R: usize, const NB: usize>(
        a: *const u8,
        lda: usize,
        b: *const i8,
        panel: usize,
        groups: usize,
        c: *mut i32,
        ldc: usize,
        cols: usize,
    ) {
        let mut acc = [[_mm512_setzero_si512(); NB]; R];
        for q in 0..groups {
            let mut bv = [_mm512_setzero_si512(); NB];
            for (t, v) in bv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(b.add(t * panel + q * 64) as *const _);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let x = (a.add(r * lda + q * 4) as *const i32).read_unaligned();
                let av = _mm512_set1_epi32(x);
                for (s, v) in row.iter_mut().enumerate() {
                    *v = _mm512_dpbusd_epi32(*v, av, bv[s]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (t, v) in row.iter().enumerate() {
                let left = cols.saturating_sub(t * 16).min(16);
                let dst = c.add(r * ldc + t * 16);
                if left == 16 {
                    _mm512_storeu_si512(dst as *mut _, *v);
                } else if left > 0 {
                    _mm512_mask_storeu_epi32(dst, ((1u32 << left) - 1) as u16, *v);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;

    /// Rows per kernel call.
    const MR: usize = 6;

    driver!("avx2", 8, words, 2);

    /// `R` rows x `NB` blocks of 8 columns; `cols` of them are stored.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    unsafe fn kernel<const R: usize, const NB: usize>(
        a: *const u8,
        lda: usize,
        b: *const i16,
        panel: usize,
        pairs: usize,
        c: *mut i32,
        ldc: usize,
        cols: usize,
    ) {
        let mut acc = [[_mm256_setzero_si256(); NB]; R];
        for q in 0..pairs {
            let mut bv = [_mm256_setzero_si256(); NB];
            for (t, v) in bv.iter_mut().enumerate() {
                *v = _mm256_loadu_si256(b.add(t * panel + q * 16) as *const _);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let p = a.add(r * lda + q * 2);
                let x = i32::from(*p) | (i32::from(*p.add(1)) << 16);
                let av = _mm256_set1_epi32(x);
                for (s, v) in row.iter_mut().enumerate() {
                    *v = _mm256_add_epi32(*v, _mm256_madd_epi16(av, bv[s]));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (t, v) in row.iter().enumerate() {
                let left = cols.saturating_sub(t * 8).min(8);
                let dst = c.add(r * ldc + t * 8);
                if left == 8 {
                    _mm256_storeu_si256(dst as *mut _, *v);
                } else if left > 0 {
                    let mut tmp = [0i32; 8];
                    _mm256_storeu_si256(tmp.as_mut_ptr() as *mut _, *v);
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, left);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn naive(a: &[u8], m: usize, lda: usize, b: &[i8], k: usize, n: usize) -> Vec<i32> {
        let mut c = vec![0i32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0i32;
                for r in 0..k {
                    s += i32::from(a[i * lda + r]) * i32::from(b[r * n + j]);
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    /// Every path this machine has against the naive i32 loop, on a shape with extreme
    /// values (255 x -128 everywhere: the case that saturates `vpmaddubsw`) and random values.
    fn check(m: usize, k: usize, n: usize, seed: u64, extreme: bool) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let kp = k.div_ceil(4) * 4;
        let lda = kp + (seed as usize % 3) * 4;
        let a: Vec<u8> = (0..m * lda)
            .map(|_| if extreme { 255 } else { rng.gen() })
            .collect();
        let b: Vec<i8> = (0..k * n)
            .map(|_| if extreme { -128 } else { rng.gen() })
            .collect();
        let want = naive(&a, m, lda, &b, k, n);
        for isa in Isa::available() {
            let p = PackedB::new(isa, &b, k, n);
            let ldc = n + 3;
            let mut c = vec![7i32; m * ldc];
            gemm_u8i8(&a, m, lda, &p, &mut c, ldc);
            for i in 0..m {
                assert_eq!(
                    &c[i * ldc..i * ldc + n],
                    &want[i * n..(i + 1) * n],
                    "{} m={m} k={k} n={n} row {i}",
                    isa.name()
                );
                // Columns past n are not written.
                assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == 7));
            }
            let sums: Vec<i32> = (0..n)
                .map(|j| (0..k).map(|r| i32::from(b[r * n + j])).sum())
                .collect();
            assert_eq!(p.col_sums(), &sums[..]);
        }
    }

    #[test]
    fn every_path_matches_the_naive_loop_on_the_networks_shapes_and_odd_ones() {
        // The default CNN's products at a chunk of images, then odd sizes around every block
        // and row-tile edge.
        for &(m, k, n) in &[
            (784 * 2, 9, 32),
            (196, 288, 64),
            (49 * 5, 576, 128),
            (16, 1152, 256),
            (16, 256, 10),
            (1, 1, 1),
            (7, 3, 17),
            (9, 5, 33),
            (13, 31, 15),
            (25, 130, 47),
            (8, 4, 16),
            (6, 8, 8),
        ] {
            check(m, k, n, (m * 31 + k * 7 + n) as u64, false);
            check(m.min(20), k, n, 1, true);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn every_path_matches_the_naive_loop_on_random_shapes(
            m in 1usize..40, k in 1usize..200, n in 1usize..70, seed in 0u64..1000
        ) {
            check(m, k, n, seed, false);
        }
    }

    #[test]
    fn the_portable_path_is_always_there() {
        assert_eq!(*Isa::available().last().unwrap(), Isa::Portable);
        assert_eq!(Isa::detect(), Isa::available()[0]);
    }
}
