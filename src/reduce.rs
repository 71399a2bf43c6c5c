//! Feature scaling and PCA.
//!
//! Why not linfa-reduction's PCA: measured here it takes ~34 s to fit 60000 x 1296 -> 128, and
//! linfa 0.8.1's `explained_variance()` divides by (k - 1) and `explained_variance_ratio()` sums
//! only the kept components.
//!
//! PCA's cost follows the smaller of the two sides of the `n x d` data (the [`Solver`] rule):
//! * **covariance** (`d <= n`, or `d <=` [`COVARIANCE_MAX_DIM`]): the `d x d` covariance from a
//!   blocked, parallel Gram product (fixed row blocks summed in a fixed order, so the result does
//!   not depend on the thread count; a few blocks at a time, so memory stays a few `d x d`
//!   matrices), then its leading eigenvectors by randomized subspace iteration (Halko, Martinsson
//!   & Tropp 2011: a seeded Gaussian start, power iterations with re-orthonormalisation, then a
//!   small dense eigenproblem solved by `linfa_linalg`);
//! * **data matrix** (`d > n` and `d >` [`COVARIANCE_MAX_DIM`], e.g. HOG of photos: ~55,000
//!   dimensions at 224x224, whose covariance alone would take 24 GB): the same randomized range
//!   finder on the centred data matrix itself, never forming a `d x d` matrix. Its products run
//!   in f32 on fixed blocks (row blocks for `X Z`, column panels for `Q^T X`, each summed over
//!   row blocks in order, in f64), so the same seed gives the same bytes for any thread count;
//!   the `l x l` problem at the end is solved in f64.
//!
//! Either way, explained variances are the eigenvalues over `n - 1` and their ratios the
//! eigenvalues over the total variance (the trace), as scikit-learn reports them.

use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{check_cols, Error, Result};

/// Standardise features: `(x - mean) / std` (population std; a constant feature keeps scale 1,
/// as scikit-learn's `StandardScaler`).
#[derive(Debug, Clone, PartialEq)]
pub struct StandardScaler {
    /// Per-feature mean.
    pub mean: Array1<f32>,
    /// Per-feature scale (std, or 1 for constant features).
    pub scale: Array1<f32>,
}

impl StandardScaler {
    /// Fit on the rows of `x`.
    pub fn fit(x: ArrayView2<'_, f32>) -> Result<Self> {
        let n = x.nrows();
        if n == 0 {
            return Err(Error::param("features", "need at least one row", 0));
        }
        let mean64 = column_means(x);
        let mut var = Array1::<f64>::zeros(x.ncols());
        for row in x.axis_iter(Axis(0)) {
            for ((v, &m), &xv) in var.iter_mut().zip(mean64.iter()).zip(row) {
                let d = xv as f64 - m;
                *v += d * d;
            }
        }
        let scale = var.mapv(|v| {
            let s = (v / n as f64).sqrt();
            if s > 0.0 && s.is_finite() {
                s as f32
            } else {
                1.0
            }
        });
        Ok(StandardScaler {
            mean: mean64.mapv(|v| v as f32),
            scale,
        })
    }

    /// Standardise `x` in place.
    pub fn transform_inplace(&self, x: &mut Array2<f32>) -> Result<()> {
        check_cols("scaler", self.mean.len(), x.ncols())?;
        x.axis_iter_mut(Axis(0))
            .into_par_iter()
            .for_each(|mut row| {
                for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                    *v = (*v - m) / s;
                }
            });
        Ok(())
    }
}

/// Column means in f64, summed in fixed row blocks (thread-count independent).
fn column_means(x: ArrayView2<'_, f32>) -> Array1<f64> {
    let parts: Vec<Array1<f64>> = x
        .axis_chunks_iter(Axis(0), BLOCK_ROWS)
        .into_par_iter()
        .map(|blk| {
            let mut s = Array1::<f64>::zeros(x.ncols());
            for row in blk.axis_iter(Axis(0)) {
                for (a, &v) in s.iter_mut().zip(row) {
                    *a += v as f64;
                }
            }
            s
        })
        .collect();
    let mut total = Array1::<f64>::zeros(x.ncols());
    for p in parts {
        total += &p;
    }
    total / x.nrows().max(1) as f64
}

/// Rows per block of the covariance product.
const BLOCK_ROWS: usize = 4096;
/// Row blocks of the covariance product computed at once (their partial `d x d` products are
/// held until added, in block order).
const BLOCKS_AT_ONCE: usize = 4;
/// Largest dimension for which the covariance path is used when `d > n`: its `d x d` f64
/// matrix is then at most 128 MiB.
pub const COVARIANCE_MAX_DIM: usize = 4096;

/// How PCA finds its components (see the [module docs](self)); chosen from the data's shape by
/// [`Solver::for_shape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// Eigenvectors of the `d x d` covariance.
    Covariance,
    /// Randomized range finder on the `n x d` centred data matrix.
    DataMatrix,
}

impl Solver {
    /// The solver for `n` rows of `d` features.
    pub fn for_shape(n: usize, d: usize) -> Solver {
        if d <= n || d <= COVARIANCE_MAX_DIM {
            Solver::Covariance
        } else {
            Solver::DataMatrix
        }
    }
}

/// How many principal components to keep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Components {
    /// Exactly this many.
    Count(usize),
    /// As many as needed to explain at least this fraction of the variance (0 < f <= 1).
    Variance(f64),
}

impl std::str::FromStr for Components {
    type Err = Error;
    /// `"128"` is a count, `"0.95"` a variance fraction.
    fn from_str(s: &str) -> Result<Self> {
        if let Ok(k) = s.parse::<usize>() {
            return Ok(Components::Count(k));
        }
        match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(Components::Variance(f)),
            _ => Err(Error::param(
                "pca",
                "a component count (e.g. 128) or a variance fraction in (0, 1] (e.g. 0.95)",
                s,
            )),
        }
    }
}

/// Most power iterations `pca-iterations` takes (each costs two passes over the data).
pub const MAX_POWER_ITERATIONS: usize = 100;

/// PCA hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaParams {
    /// Components to keep.
    pub components: Components,
    /// Divide each component by the square root of its variance.
    pub whiten: bool,
    /// Power iterations of the randomized solver (10; scikit-learn's `iterated_power="auto"`
    /// takes 4 or 7, with 10 extra directions to our 32: fewer iterations are faster and
    /// capture slightly less variance, docs/BENCHMARKS.md "Photos").
    pub power_iterations: usize,
    /// Extra directions kept during the iterations.
    pub oversampling: usize,
    /// Seed of the random start.
    pub seed: u64,
}

impl Default for PcaParams {
    fn default() -> Self {
        PcaParams {
            components: Components::Count(128),
            whiten: false,
            power_iterations: 10,
            oversampling: 32,
            seed: 0,
        }
    }
}

/// A fitted PCA.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Feature means.
    pub mean: Array1<f32>,
    /// `k x d`, one component per row, largest variance first.
    pub components: Array2<f32>,
    /// Variance along each component (divided by `n - 1`, as scikit-learn).
    pub explained_variance: Array1<f64>,
    /// Fraction of the total variance along each component.
    pub explained_variance_ratio: Array1<f64>,
    /// Whether `transform` whitens.
    pub whiten: bool,
}

impl PcaParams {
    /// Fit on the rows of `x`, with the solver [`Solver::for_shape`] picks.
    pub fn fit(&self, x: ArrayView2<'_, f32>) -> Result<Pca> {
        self.fit_with(x, Solver::for_shape(x.nrows(), x.ncols()))
    }

    /// Whether a fit on `n` rows of `d` features can keep the components asked for.
    pub fn check_shape(&self, n: usize, d: usize) -> Result<()> {
        if n < 2 {
            return Err(Error::param("features", "PCA needs at least 2 rows", n));
        }
        let max_k = d.min(n);
        match self.components {
            Components::Count(k) if k == 0 || k > max_k => Err(Error::param(
                "pca",
                format!(
                    "component count must be in 1..={max_k} (the smaller of {n} training rows \
                     and {d} features)"
                ),
                k,
            )),
            Components::Variance(f) if !(f > 0.0 && f <= 1.0) => Err(Error::param(
                "pca",
                "variance fraction must be in (0, 1]",
                f,
            )),
            _ => Ok(()),
        }
    }

    /// The most components a fit on `n x d` data can keep.
    fn max_components(&self, n: usize, d: usize) -> usize {
        match self.components {
            Components::Count(k) => k.min(n).min(d),
            Components::Variance(_) => n.min(d),
        }
    }

    /// Bytes fitting on `n x d` features allocates at its peak, beyond the input (the
    /// covariance or the data-matrix iterates, and the projected output).
    pub fn fit_bytes(&self, n: usize, d: usize) -> u64 {
        use crate::budget::bytes_of;
        let k = self.max_components(n, d);
        let l = (k + self.oversampling).min(n.max(1)).min(d.max(1));
        let work = match Solver::for_shape(n, d) {
            Solver::Covariance => {
                let blocks = n.div_ceil(BLOCK_ROWS).clamp(1, BLOCKS_AT_ONCE);
                bytes_of(&[d, d, 8 + 4 * blocks]).saturating_add(bytes_of(&[l, d, 8, 3]))
            }
            Solver::DataMatrix => bytes_of(&[l, d, 8 + 8 + 4])
                .saturating_add(bytes_of(&[l, n, 8 + 8 + 4]))
                .saturating_add(bytes_of(&[
                    rayon::current_num_threads(),
                    DATA_BLOCK_VALUES,
                    8,
                ])),
        };
        work.saturating_add(bytes_of(&[n, k, 4]))
    }

    /// Fit on the rows of `x` with `solver`.
    fn fit_with(&self, x: ArrayView2<'_, f32>, solver: Solver) -> Result<Pca> {
        let (n, d) = x.dim();
        self.check_shape(n, d)?;
        let max_k = d.min(n);
        let mean = column_means(x);
        let mean32 = mean.mapv(|v| v as f32);
        let cov = match solver {
            Solver::Covariance => Some(covariance(x, &mean32)),
            Solver::DataMatrix => None,
        };
        let trace: f64 = match &cov {
            Some(c) => c.diag().sum(),
            None => centred_sum_of_squares(x, &mean32),
        };
        let mut k = match self.components {
            Components::Count(k) => k,
            Components::Variance(_) => 32.min(max_k),
        };
        loop {
            let (vals, vecs) = match &cov {
                Some(c) => top_eigen(c, k, self)?,
                None => top_eigen_data(x, &mean32, k, self)?,
            };
            let keep = match self.components {
                Components::Count(_) => Some(k),
                Components::Variance(f) => {
                    let mut acc = 0.0;
                    vals.iter()
                        .position(|&v| {
                            acc += v;
                            trace > 0.0 && acc / trace >= f - 1e-12
                        })
                        .map(|i| i + 1)
                        .or((k >= max_k).then_some(k))
                }
            };
            if let Some(keep) = keep {
                let components = vecs.slice(s![..keep, ..]).mapv(|v| v as f32);
                let vals = vals.slice(s![..keep]).to_owned();
                return Ok(Pca {
                    mean: mean32,
                    components,
                    explained_variance: vals.mapv(|v| v / (n - 1) as f64),
                    explained_variance_ratio: if trace > 0.0 {
                        vals.mapv(|v| v / trace)
                    } else {
                        Array1::zeros(keep)
                    },
                    whiten: self.whiten,
                });
            }
            k = (2 * k).min(max_k);
        }
    }
}

impl Pca {
    /// Number of components.
    pub fn n_components(&self) -> usize {
        self.components.nrows()
    }

    /// Project `x` (`n x d`) to `n x k`.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        check_cols("PCA", self.mean.len(), x.ncols())?;
        // Blocks of rows in parallel; each output row depends only on its input row.
        let k = self.n_components();
        let mut out = Array2::<f32>::zeros((x.nrows(), k));
        out.axis_chunks_iter_mut(Axis(0), 1024)
            .into_par_iter()
            .zip(x.axis_chunks_iter(Axis(0), 1024).into_par_iter())
            .for_each(|(mut o, xb)| {
                let centred = &xb - &self.mean;
                o.assign(&centred.dot(&self.components.t()));
            });
        if self.whiten {
            let s = self
                .explained_variance
                .mapv(|v| (v.max(1e-12).sqrt()) as f32);
            out /= &s;
        }
        Ok(out)
    }
}

/// Covariance numerator `(X - mean)^T (X - mean)` in f64, from fixed blocks of rows computed in
/// parallel (f32 products; only the upper triangle, panel by panel, since the result is
/// symmetric) and summed in block order.
fn covariance(x: ArrayView2<'_, f32>, mean: &Array1<f32>) -> Array2<f64> {
    const PANEL: usize = 256;
    let d = x.ncols();
    let panels: Vec<(usize, usize)> = (0..d)
        .step_by(PANEL)
        .map(|a| (a, (a + PANEL).min(d)))
        .collect();
    let blocks: Vec<ArrayView2<'_, f32>> = x.axis_chunks_iter(Axis(0), BLOCK_ROWS).collect();
    let mut cov = Array2::<f64>::zeros((d, d));
    // A few blocks at a time; each element sums the blocks in block order, whatever the thread
    // count and however many are computed at once.
    for batch in blocks.chunks(BLOCKS_AT_ONCE) {
        let parts: Vec<Array2<f32>> = batch
            .par_iter()
            .map(|blk| {
                let c = blk - mean;
                let mut g = Array2::<f32>::zeros((d, d));
                for (a, &(i0, i1)) in panels.iter().enumerate() {
                    for &(j0, j1) in &panels[a..] {
                        let prod = c.slice(s![.., i0..i1]).t().dot(&c.slice(s![.., j0..j1]));
                        g.slice_mut(s![i0..i1, j0..j1]).assign(&prod);
                    }
                }
                g
            })
            .collect();
        cov.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(r, mut row)| {
                for p in &parts {
                    let src = p.row(r);
                    for c in r..d {
                        row[c] += src[c] as f64;
                    }
                }
            });
    }
    for r in 0..d {
        for c in 0..r {
            cov[[r, c]] = cov[[c, r]];
        }
    }
    cov
}

/// Leading `k` eigenpairs of the symmetric PSD matrix `c`, eigenvalues descending; vectors as
/// rows, each with its largest-magnitude entry positive (a deterministic sign).
fn top_eigen(c: &Array2<f64>, k: usize, p: &PcaParams) -> Result<(Array1<f64>, Array2<f64>)> {
    use linfa_linalg::eigh::Eigh;
    let d = c.nrows();
    let l = (k + p.oversampling).min(d);
    // `vals` and the eigenvectors as rows of `vecs`.
    let (vals, vecs) = if l >= d {
        // Small problem: dense eigendecomposition directly.
        let (vals, v) = c
            .clone()
            .eigh()
            .map_err(|e| Error::param("pca", format!("eigendecomposition failed: {e}"), d))?;
        (vals, v.reversed_axes())
    } else {
        // The basis is kept as rows (`l x d`), contiguous for Gram-Schmidt; `c` is symmetric,
        // so `(c q)^T = q^T c`.
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut qt = Array2::<f64>::from_shape_fn((l, d), |_| StandardNormal.sample(&mut rng));
        orthonormalise_rows(&mut qt);
        for _ in 0..p.power_iterations {
            qt = qt.dot(c);
            orthonormalise_rows(&mut qt);
        }
        let b = qt.dot(c).dot(&qt.t());
        let b = (&b + &b.t()) * 0.5;
        let (vals, small) = b
            .eigh()
            .map_err(|e| Error::param("pca", format!("eigendecomposition failed: {e}"), l))?;
        (vals, small.t().dot(&qt))
    };
    Ok(sorted_pairs(vals, vecs, k))
}

/// The `k` largest eigenpairs of (`vals`, `vecs` as rows), eigenvalues descending and clamped at
/// 0, each vector with its largest-magnitude entry positive (a deterministic sign).
fn sorted_pairs(vals: Array1<f64>, vecs: Array2<f64>, k: usize) -> (Array1<f64>, Array2<f64>) {
    let d = vecs.ncols();
    let mut order: Vec<usize> = (0..vals.len()).collect();
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
    let k = k.min(order.len());
    let mut out_vals = Array1::<f64>::zeros(k);
    let mut out_vecs = Array2::<f64>::zeros((k, d));
    for (r, &j) in order.iter().take(k).enumerate() {
        out_vals[r] = vals[j].max(0.0);
        let v = vecs.row(j);
        let big = v
            .iter()
            .fold(0.0f64, |m, &x| if x.abs() > m.abs() { x } else { m });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        out_vecs.row_mut(r).assign(&v.mapv(|x| x * sign));
    }
    (out_vals, out_vecs)
}

/// Values per block of the data-matrix products (a block of rows, or a panel of columns, of the
/// centred data, copied in f32): 16 MiB.
const DATA_BLOCK_VALUES: usize = 1 << 22;
/// Rows per block of the data-matrix products: as many as fit [`DATA_BLOCK_VALUES`], 1 to 256
/// (it depends on `d` only, never on the thread count).
fn data_rows(d: usize) -> usize {
    (DATA_BLOCK_VALUES / d.max(1)).clamp(1, 256)
}
/// Columns per panel of `Q^T X`.
const DATA_PANEL: usize = 512;

/// `sum((x - mean)^2)` in f64, over fixed row blocks added in order.
fn centred_sum_of_squares(x: ArrayView2<'_, f32>, mean: &Array1<f32>) -> f64 {
    let rows = data_rows(x.ncols());
    let parts: Vec<f64> = x
        .axis_chunks_iter(Axis(0), rows)
        .into_par_iter()
        .map(|blk| {
            let mut s = 0.0f64;
            for row in blk.axis_iter(Axis(0)) {
                for (&v, &m) in row.iter().zip(mean) {
                    let c = (v - m) as f64;
                    s += c * c;
                }
            }
            s
        })
        .collect();
    parts.iter().sum()
}

/// `(X_c M^T)^T` (`l x n`) for the centred data `X_c = x - mean` and `mt` (`l x d`): each row
/// block of `x` centred and multiplied on its own, in f32.
fn centred_times(x: ArrayView2<'_, f32>, mean: &Array1<f32>, mt: &Array2<f64>) -> Array2<f64> {
    let m32 = mt.t().mapv(|v| v as f32);
    let rows = data_rows(x.ncols());
    let parts: Vec<Array2<f32>> = x
        .axis_chunks_iter(Axis(0), rows)
        .into_par_iter()
        .map(|blk| (&blk - mean).dot(&m32))
        .collect();
    let mut out = Array2::<f64>::zeros((mt.nrows(), x.nrows()));
    for (b, p) in parts.iter().enumerate() {
        out.slice_mut(s![.., b * rows..b * rows + p.nrows()])
            .assign(&p.t().mapv(|v| v as f64));
    }
    out
}

/// `Q^T X_c` (`l x d`) for `qt` (`l x n`): each panel of columns in parallel, summed over the
/// row blocks in order (f32 products, f64 sums).
fn times_centred(x: ArrayView2<'_, f32>, mean: &Array1<f32>, qt: &Array2<f64>) -> Array2<f64> {
    let (n, d) = x.dim();
    let q32 = qt.t().mapv(|v| v as f32);
    let rows = data_rows(DATA_PANEL);
    let panels: Vec<(usize, usize)> = (0..d)
        .step_by(DATA_PANEL)
        .map(|a| (a, (a + DATA_PANEL).min(d)))
        .collect();
    let parts: Vec<Array2<f64>> = panels
        .par_iter()
        .map(|&(j0, j1)| {
            let m = mean.slice(s![j0..j1]);
            let mut acc = Array2::<f64>::zeros((qt.nrows(), j1 - j0));
            for r0 in (0..n).step_by(rows) {
                let r1 = (r0 + rows).min(n);
                let c = &x.slice(s![r0..r1, j0..j1]) - &m;
                let prod = q32.slice(s![r0..r1, ..]).t().dot(&c);
                acc.zip_mut_with(&prod, |a, &p| *a += p as f64);
            }
            acc
        })
        .collect();
    let mut out = Array2::<f64>::zeros((qt.nrows(), d));
    for (&(j0, j1), p) in panels.iter().zip(&parts) {
        out.slice_mut(s![.., j0..j1]).assign(p);
    }
    out
}

/// Orthonormalise the rows of `q` by Cholesky QR, `passes` times (2: CholeskyQR2, orthonormal
/// to rounding; 1: orthonormal to about the condition number times rounding, enough between
/// power iterations): `G = q q^T = L L^T`, `q <- L^-1 q`, as matrix products (the rows may be
/// long: `n` or `d`). Falls back to modified Gram-Schmidt when `G` is not numerically positive
/// definite (rank-deficient data).
fn orthonormalise_rows_long(q: &mut Array2<f64>, passes: usize) {
    for _ in 0..passes {
        let g = q.dot(&q.t());
        match cholesky_inverse(&g) {
            Some(linv) => *q = linv.dot(q),
            None => {
                orthonormalise_rows_dropping(q);
                return;
            }
        }
    }
}

/// `L^-1` for the Cholesky factor `L` of the symmetric `g`, or `None` when a pivot is below
/// `1e-8` of the largest diagonal entry: `g` then has a condition number above ~1e8, where
/// CholeskyQR2 no longer gives orthonormal rows (Yamamoto et al. 2015), and Gram-Schmidt takes
/// over.
fn cholesky_inverse(g: &Array2<f64>) -> Option<Array2<f64>> {
    let l = g.nrows();
    let mut f = Array2::<f64>::zeros((l, l));
    let scale = g.diag().iter().fold(0.0f64, |m, &v| m.max(v.abs()));
    for i in 0..l {
        for j in 0..=i {
            let mut v = g[[i, j]];
            for k in 0..j {
                v -= f[[i, k]] * f[[j, k]];
            }
            if i == j {
                if v.is_nan() || v <= scale * 1e-8 {
                    return None;
                }
                f[[i, i]] = v.sqrt();
            } else {
                f[[i, j]] = v / f[[j, j]];
            }
        }
    }
    // Forward substitution for each column of the identity.
    let mut inv = Array2::<f64>::zeros((l, l));
    for c in 0..l {
        for i in c..l {
            let mut v = if i == c { 1.0 } else { 0.0 };
            for k in c..i {
                v -= f[[i, k]] * inv[[k, c]];
            }
            inv[[i, c]] = v / f[[i, i]];
        }
    }
    Some(inv)
}

/// Leading `k` eigenpairs of the covariance numerator `X_c^T X_c` of `x`, from the data matrix
/// itself (randomized range finder; see the [module docs](self)): eigenvalues descending,
/// vectors as rows with a deterministic sign, as [`top_eigen`] returns them.
fn top_eigen_data(
    x: ArrayView2<'_, f32>,
    mean: &Array1<f32>,
    k: usize,
    p: &PcaParams,
) -> Result<(Array1<f64>, Array2<f64>)> {
    use linfa_linalg::eigh::Eigh;
    let (n, d) = x.dim();
    let l = (k + p.oversampling).min(n).min(d);
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let omega = Array2::<f64>::from_shape_fn((l, d), |_| StandardNormal.sample(&mut rng));
    // Between the products the rows only need to stay well conditioned (one Cholesky QR);
    // the basis the answer is read from is orthonormalised in full (twice).
    let mut yt = centred_times(x, mean, &omega);
    orthonormalise_rows_long(&mut yt, 1 + usize::from(p.power_iterations == 0));
    for i in 0..p.power_iterations {
        let mut zt = times_centred(x, mean, &yt);
        orthonormalise_rows_long(&mut zt, 1);
        yt = centred_times(x, mean, &zt);
        orthonormalise_rows_long(&mut yt, 1 + usize::from(i + 1 == p.power_iterations));
    }
    // B = Q^T X_c (l x d); B B^T = U S^2 U^T; the right singular vectors are S^-1 U^T B.
    let b = times_centred(x, mean, &yt);
    let bbt = b.dot(&b.t());
    let bbt = (&bbt + &bbt.t()) * 0.5;
    let (vals, u) = bbt
        .eigh()
        .map_err(|e| Error::param("pca", format!("eigendecomposition failed: {e}"), l))?;
    let mut vecs = u.t().dot(&b);
    for (mut row, &v) in vecs.axis_iter_mut(Axis(0)).zip(vals.iter()) {
        let s = v.max(0.0).sqrt();
        if s > 0.0 {
            row /= s;
        }
    }
    Ok(sorted_pairs(vals, vecs, k))
}

/// Modified Gram-Schmidt, twice ("twice is enough"), on the rows of `q`. A row that vanishes
/// is left at zero.
fn orthonormalise_rows(q: &mut Array2<f64>) {
    gram_schmidt_rows(q, 0.0)
}

/// [`orthonormalise_rows`] for rank-deficient rows: a row whose norm falls below `1e-10` of
/// what it was before the pass (it lay in the span of the rows before it) is set to zero rather
/// than normalised (normalised rounding noise is not orthogonal to anything). The rows left are
/// orthonormal; zero rows add nothing to the range.
fn orthonormalise_rows_dropping(q: &mut Array2<f64>) {
    gram_schmidt_rows(q, 1e-10)
}

/// Modified Gram-Schmidt, twice, on the rows of `q`; a row whose norm after a pass is at most
/// `drop` times its norm before (or below 1e-300) is set to zero.
fn gram_schmidt_rows(q: &mut Array2<f64>, drop: f64) {
    let l = q.nrows();
    for _ in 0..2 {
        for j in 0..l {
            let (done, mut rest) = q.view_mut().split_at(Axis(0), j);
            let mut qj = rest.row_mut(0);
            let before = if drop > 0.0 { qj.dot(&qj).sqrt() } else { 0.0 };
            for qi in done.axis_iter(Axis(0)) {
                let r = qi.dot(&qj);
                qj.scaled_add(-r, &qi);
            }
            let norm = qj.dot(&qj).sqrt();
            if norm > 1e-300 && norm > drop * before {
                qj /= norm;
            } else {
                qj.fill(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn data(n: usize, d: usize) -> Array2<f32> {
        // Low-rank signal plus noise: variances fall off along known directions.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        Array2::from_shape_fn((n, d), |(i, j)| {
            let z1 = ((i * 7919) % 97) as f32 / 97.0 - 0.5;
            let z2 = ((i * 104729) % 89) as f32 / 89.0 - 0.5;
            10.0 * z1 * (j as f32 / d as f32)
                + 3.0 * z2 * ((j % 3) as f32)
                + rng.gen_range(-0.05..0.05)
        })
    }

    #[test]
    fn randomized_matches_dense_eigen() {
        let x = data(400, 40);
        let dense = PcaParams {
            components: Components::Count(5),
            oversampling: 100, // l >= d: dense path
            ..Default::default()
        }
        .fit(x.view())
        .unwrap();
        let rand = PcaParams {
            components: Components::Count(5),
            oversampling: 8,
            ..Default::default()
        }
        .fit(x.view())
        .unwrap();
        for i in 0..2 {
            let rel = (dense.explained_variance[i] - rand.explained_variance[i]).abs()
                / dense.explained_variance[i];
            assert!(rel < 1e-6, "component {i}: {rel}");
            let dot: f32 = dense
                .components
                .row(i)
                .iter()
                .zip(rand.components.row(i))
                .map(|(a, b)| a * b)
                .sum();
            assert!((dot.abs() - 1.0).abs() < 1e-4, "component {i}: {dot}");
        }
        let r = &dense.explained_variance_ratio;
        assert!(r.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(r.sum() <= 1.0 + 1e-9);
    }

    /// The data-matrix path (more features than rows) finds what the covariance path finds:
    /// the same explained variances and ratios, the same components up to sign.
    #[test]
    fn data_matrix_pca_matches_the_covariance_path() {
        let x = data(60, 700);
        for c in [Components::Count(5), Components::Variance(0.9)] {
            let p = PcaParams {
                components: c,
                ..Default::default()
            };
            let cov = p.fit_with(x.view(), Solver::Covariance).unwrap();
            let dm = p.fit_with(x.view(), Solver::DataMatrix).unwrap();
            assert_eq!(cov.n_components(), dm.n_components(), "{c:?}");
            for i in 0..cov.n_components().min(5) {
                let (a, b) = (cov.explained_variance[i], dm.explained_variance[i]);
                assert!((a - b).abs() <= 1e-4 * a.max(1e-9), "{c:?} {i}: {a} vs {b}");
                let (a, b) = (
                    cov.explained_variance_ratio[i],
                    dm.explained_variance_ratio[i],
                );
                assert!((a - b).abs() < 1e-5, "{c:?} {i}: {a} vs {b}");
                let dot: f32 = cov.components.row(i).dot(&dm.components.row(i));
                assert!((dot - 1.0).abs() < 1e-3, "{c:?} component {i}: {dot}");
            }
        }
        assert_eq!(Solver::for_shape(60, 700), Solver::Covariance);
        assert_eq!(Solver::for_shape(60, 5000), Solver::DataMatrix);
        assert_eq!(Solver::for_shape(6000, 5000), Solver::Covariance);
    }

    /// Same seed, same bytes, whatever the thread count, on the data-matrix path too; and
    /// rank-deficient data (repeated rows) does not break its orthonormalisation.
    #[test]
    fn data_matrix_pca_is_deterministic_and_handles_repeated_rows() {
        let x = data(40, 5000);
        let p = PcaParams {
            components: Components::Count(8),
            ..Default::default()
        };
        let fit = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| p.fit(x.view()).unwrap())
        };
        assert_eq!(fit(1), fit(3));
        let cov = p.fit_with(x.view(), Solver::Covariance).unwrap();
        let dm = fit(2);
        for i in 0..8 {
            let (a, b) = (
                cov.explained_variance_ratio[i],
                dm.explained_variance_ratio[i],
            );
            assert!((a - b).abs() < 1e-5, "{i}: {a} vs {b}");
        }
        let mut rep = x.clone();
        for i in 10..40 {
            let r = rep.row(i % 10).to_owned();
            rep.row_mut(i).assign(&r);
        }
        let q = PcaParams {
            components: Components::Count(12),
            ..Default::default()
        }
        .fit(rep.view())
        .unwrap();
        assert!(q.components.iter().all(|v| v.is_finite()));
        assert!(q.explained_variance_ratio.iter().all(|v| v.is_finite()));
        // f32 products: the ratios sum to 1 within their rounding.
        assert!(
            q.explained_variance_ratio.sum() <= 1.0 + 1e-6,
            "{:?}",
            q.explained_variance_ratio
        );
    }

    #[test]
    fn variance_fraction_keeps_enough_components() {
        let x = data(300, 30);
        let p = PcaParams {
            components: Components::Variance(0.9),
            ..Default::default()
        }
        .fit(x.view())
        .unwrap();
        let total: f64 = p.explained_variance_ratio.sum();
        assert!(total >= 0.9 - 1e-9, "{total}");
        let k = p.n_components();
        assert!((1..30).contains(&k));
        let without_last: f64 = p.explained_variance_ratio.slice(s![..k - 1]).sum();
        assert!(without_last < 0.9);
    }

    #[test]
    fn transform_projects_and_whitens() {
        let x = data(200, 12);
        let p = PcaParams {
            components: Components::Count(3),
            whiten: true,
            ..Default::default()
        }
        .fit(x.view())
        .unwrap();
        let z = p.transform(x.view()).unwrap();
        assert_eq!(z.dim(), (200, 3));
        // Whitened components have unit variance (n - 1 denominator).
        for j in 0..3 {
            let col = z.column(j);
            let m = col.mean().unwrap();
            let v = col.iter().map(|&a| (a - m) * (a - m)).sum::<f32>() / 199.0;
            assert!((v - 1.0).abs() < 1e-3, "{v}");
        }
        assert!(p.transform(x.slice(s![.., ..5])).is_err());
    }

    #[test]
    fn scaler_standardises() {
        let mut x = data(100, 6);
        x.column_mut(5).fill(3.0); // constant column keeps scale 1
        let s = StandardScaler::fit(x.view()).unwrap();
        assert_eq!(s.scale[5], 1.0);
        s.transform_inplace(&mut x).unwrap();
        for j in 0..5 {
            let c = x.column(j);
            let m = c.mean().unwrap();
            let v = c.iter().map(|&a| (a - m) * (a - m)).sum::<f32>() / 100.0;
            assert!(m.abs() < 1e-4 && (v - 1.0).abs() < 1e-3, "{m} {v}");
        }
    }

    #[test]
    fn bad_component_counts_are_errors() {
        let x = data(10, 4);
        for c in [
            Components::Count(0),
            Components::Count(5),
            Components::Variance(1.5),
        ] {
            assert!(PcaParams {
                components: c,
                ..Default::default()
            }
            .fit(x.view())
            .is_err());
        }
        assert!("0.95".parse::<Components>().unwrap() == Components::Variance(0.95));
        assert!("abc".parse::<Components>().is_err());
    }
}

// ---------------------------------------------------------------- pipeline stages

use crate::model::container::ModelError;
use crate::model::container::{TensorReader, TensorWriter};
use crate::onnx::Graph;
use crate::settings::{flag, is_none, seed_of, Configure, Setting};
use crate::stage::{FeaturePlan, FeatureStage, Learned};

/// The configured standard scaler (it has no parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScalerParams;

/// `standardize` (`true`/`false`).
impl Configure for ScalerParams {
    type Slot = bool;
    const KEYS: &'static [&'static str] = &["standardize"];

    fn set(slot: &mut bool, key: &str, v: &str) -> Result<Setting> {
        if key != "standardize" {
            return Ok(Setting::Unknown);
        }
        *slot = flag("standardize", v)?;
        Ok(Setting::Set)
    }

    fn plan(slot: &bool) -> Option<Self> {
        slot.then_some(ScalerParams)
    }
}

impl FeaturePlan for ScalerParams {
    type Fitted = StandardScaler;

    fn planned_dim(&self, _: usize, d: usize) -> usize {
        d
    }

    /// In place: the mean and variance only.
    fn fit_bytes(&self, _: usize, d: usize) -> u64 {
        crate::budget::bytes_of(&[d, 16])
    }

    fn fit_features(&self, x: ArrayView2<'_, f32>) -> Result<StandardScaler> {
        StandardScaler::fit(x)
    }

    fn read_features(
        &self,
        t: &TensorReader<'_>,
        d: usize,
        _: bool,
    ) -> Result<StandardScaler, ModelError> {
        Ok(StandardScaler {
            mean: t.vector("scaler.mean", d)?,
            scale: t.vector("scaler.scale", d)?,
        })
    }
}

impl FeatureStage for StandardScaler {
    const NAME: &'static str = "scaler";

    fn apply(&self, mut x: Array2<f32>) -> Result<Array2<f32>> {
        self.transform_inplace(&mut x)?;
        Ok(x)
    }

    fn out_dim(&self, d: usize) -> usize {
        d
    }
}

impl Learned for StandardScaler {
    fn n_params(&self) -> usize {
        self.mean.len() + self.scale.len()
    }

    fn shows_dim(&self) -> bool {
        false
    }

    fn write(&self, t: &mut TensorWriter) {
        t.vector("scaler.mean", &self.mean);
        t.vector("scaler.scale", &self.scale);
    }

    /// `(x - mean) / scale`.
    fn to_onnx(&self, g: &mut Graph, x: &str) -> Result<Option<String>> {
        let d = self.mean.len();
        let mean = g.constant_f32("mean", &[d], self.mean.as_slice().expect("contiguous"));
        let scale = g.constant_f32("scale", &[d], self.scale.as_slice().expect("contiguous"));
        let c = g.node("Sub", &[x, &mean], Vec::new());
        Ok(Some(g.node("Div", &[&c, &scale], Vec::new())))
    }
}

/// `pca` (a count, a variance fraction or `none`); `whiten` and `seed` refine it.
impl Configure for PcaParams {
    type Slot = Option<PcaParams>;
    const KEYS: &'static [&'static str] = &["pca", "whiten", "pca-iterations"];
    const REFINES: &'static [&'static str] = &["whiten", "pca-iterations"];

    fn set(slot: &mut Self::Slot, key: &str, v: &str) -> Result<Setting> {
        match key {
            "pca" => {
                *slot = if is_none(v) {
                    None
                } else {
                    Some(PcaParams {
                        components: v.parse::<Components>()?,
                        ..Default::default()
                    })
                };
                Ok(Setting::Set)
            }
            "whiten" => Ok(match slot.as_mut() {
                Some(p) => {
                    p.whiten = flag("whiten", v)?;
                    Setting::Set
                }
                None if flag("whiten", v)? => Setting::Needs("whiten"),
                None => Setting::Set,
            }),
            "pca-iterations" => {
                let i: usize = v.trim().parse().map_err(|_| {
                    Error::param("pca-iterations", "a count of power iterations", v)
                })?;
                if i > MAX_POWER_ITERATIONS {
                    return Err(Error::param(
                        "pca-iterations",
                        format!("at most {MAX_POWER_ITERATIONS}"),
                        i,
                    ));
                }
                Ok(match slot.as_mut() {
                    Some(p) => {
                        p.power_iterations = i;
                        Setting::Set
                    }
                    None => Setting::Needs("pca-iterations"),
                })
            }
            "seed" => seed_of(slot.as_mut().map(|p| &mut p.seed), v),
            _ => Ok(Setting::Unknown),
        }
    }

    fn plan(slot: &Self::Slot) -> Option<Self> {
        slot.clone()
    }
}

impl FeaturePlan for PcaParams {
    type Fitted = Pca;

    fn planned_dim(&self, n: usize, d: usize) -> usize {
        self.max_components(n, d)
    }

    fn check_fit(&self, n: usize, d: usize) -> Result<()> {
        self.check_shape(n, d)
    }

    fn fit_bytes(&self, n: usize, d: usize) -> u64 {
        PcaParams::fit_bytes(self, n, d)
    }

    fn fit_features(&self, x: ArrayView2<'_, f32>) -> Result<Pca> {
        PcaParams::fit(self, x)
    }

    fn read_features(&self, t: &TensorReader<'_>, d: usize, _: bool) -> Result<Pca, ModelError> {
        let components = t.matrix(
            "pca.components",
            |k, c| c == d && k > 0,
            || format!("[k, {d}]"),
        )?;
        let k = components.nrows();
        Ok(Pca {
            mean: t.vector("pca.mean", d)?,
            components,
            explained_variance: t.vector64("pca.explained_variance", k)?,
            explained_variance_ratio: t.vector64("pca.explained_variance_ratio", k)?,
            whiten: self.whiten,
        })
    }
}

impl FeatureStage for Pca {
    const NAME: &'static str = "pca";

    fn apply(&self, x: Array2<f32>) -> Result<Array2<f32>> {
        Pca::transform(self, x.view())
    }

    fn out_dim(&self, _: usize) -> usize {
        self.n_components()
    }
}

impl Learned for Pca {
    fn n_params(&self) -> usize {
        self.mean.len() + self.components.len()
    }

    fn write(&self, t: &mut TensorWriter) {
        t.vector("pca.mean", &self.mean);
        t.matrix("pca.components", &self.components);
        for (name, v) in [
            ("pca.explained_variance", &self.explained_variance),
            (
                "pca.explained_variance_ratio",
                &self.explained_variance_ratio,
            ),
        ] {
            t.f64(name, &[v.len()], v.iter().copied());
        }
    }

    /// `(x - mean) components^T`, then divided by `sqrt(max(variance, 1e-12))` when whitening.
    fn to_onnx(&self, g: &mut Graph, x: &str) -> Result<Option<String>> {
        let (k, d) = self.components.dim();
        let mean = g.constant_f32("mean", &[d], self.mean.as_slice().expect("contiguous"));
        let ct = self.components.t().as_standard_layout().into_owned();
        let ct = g.constant_f32("components_t", &[d, k], ct.as_slice().expect("standard"));
        let c = g.node("Sub", &[x, &mean], Vec::new());
        let z = g.node("MatMul", &[&c, &ct], Vec::new());
        if !self.whiten {
            return Ok(Some(z));
        }
        let s: Vec<f32> = self
            .explained_variance
            .iter()
            .map(|v| v.max(1e-12).sqrt() as f32)
            .collect();
        let s = g.constant_f32("whiten_scale", &[k], &s);
        Ok(Some(g.node("Div", &[&z, &s], Vec::new())))
    }
}
