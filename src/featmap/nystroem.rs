//! The Nystroem map with k-means landmarks (see the [module documentation](super)).

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{check_cols, Error, Result};
use crate::model::container::{ModelError, TensorReader, TensorWriter};
use crate::onnx::Graph;
use crate::settings::{num, Configure, Setting};
use crate::stage::{FeaturePlan, FeatureStage, Learned};

use super::{check_features, one, resolve_gamma, set_kernel_key, validate_gamma};

/// The Nystroem approximation of the RBF kernel `exp(-gamma |x - y|^2)` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NystroemParams {
    /// Landmarks m, the output dimension (at most the number of training rows; fewer rows use
    /// them all).
    pub dim: usize,
    /// Kernel width; `None` = `gamma_scale` times scikit-learn's "scale": `1 / (d * var(X))`
    /// on the training set.
    pub gamma: Option<f64>,
    /// Multiple of "scale" used when `gamma` is `None` (1: scikit-learn's default).
    #[serde(default = "one")]
    pub gamma_scale: f64,
    /// Seed of the landmark draw.
    pub seed: u64,
    /// Lloyd iterations moving the landmarks to k-means centres; 0 keeps random training rows
    /// (scikit-learn's `Nystroem`).
    #[serde(default)]
    pub kmeans_iters: usize,
}

impl Default for NystroemParams {
    fn default() -> Self {
        NystroemParams {
            dim: 4096,
            gamma: None,
            gamma_scale: 1.0,
            seed: 0,
            kmeans_iters: DEFAULT_KMEANS_ITERS,
        }
    }
}

/// Default Lloyd iterations for Nystroem landmarks.
pub const DEFAULT_KMEANS_ITERS: usize = 5;

/// Largest number of Lloyd iterations accepted.
pub const MAX_KMEANS_ITERS: usize = 1000;

/// A fitted Nystroem map.
#[derive(Debug, Clone, PartialEq)]
pub struct Nystroem {
    /// `m x d` landmarks (rows of the training features).
    pub landmarks: Array2<f32>,
    /// `m x m` projection `C^{-T}`, with `K_LL = C C^T`; `None` once folded into a linear
    /// model's weights by [`Nystroem::fold`], and then [`Nystroem::transform`] returns the
    /// kernel values `k(x, L)` alone.
    pub projection: Option<Array2<f32>>,
    /// The kernel width used.
    pub gamma: f64,
    /// `|l|^2` of every landmark, computed once when the map is built or read (`m d` work, as
    /// much as the kernel product of one row: per call it doubled batch-1 latency). Editing
    /// `landmarks` in place leaves it stale: build a new map instead.
    norms: Vec<f32>,
}

/// Largest number of landmarks: the `m x m` factorization is `O(m^3)` and the map `O(m^2)` per
/// row, so beyond this a user almost surely mistyped.
pub const NYSTROEM_MAX_DIM: usize = 32768;

impl NystroemParams {
    /// Check the parameters.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > NYSTROEM_MAX_DIM {
            return Err(Error::param(
                "nystroem",
                "number of landmarks must be in 1..=32768",
                self.dim,
            ));
        }
        validate_gamma("nystroem", self.gamma, self.gamma_scale)?;
        if self.kmeans_iters > MAX_KMEANS_ITERS {
            return Err(Error::param(
                "nystroem",
                "k-means iterations must be in 0..=1000",
                self.kmeans_iters,
            ));
        }
        Ok(())
    }

    /// Draw the landmarks from the rows of `x` and factor their kernel matrix.
    pub fn fit(&self, x: ArrayView2<'_, f32>) -> Result<Nystroem> {
        use rand::SeedableRng;
        self.validate()?;
        if x.nrows() == 0 {
            return Err(Error::param(
                "nystroem",
                "need at least one training row",
                0,
            ));
        }
        check_features(x, "the Nystroem map", "finite", f32::is_finite)?;
        let gamma = resolve_gamma(self.gamma, self.gamma_scale, x);
        let m = self.dim.min(x.nrows());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        let mut idx = rand::seq::index::sample(&mut rng, x.nrows(), m).into_vec();
        idx.sort_unstable();
        let mut landmarks = x.select(Axis(0), &idx);
        for _ in 0..self.kmeans_iters {
            lloyd_step(x, &mut landmarks);
        }
        let projection = inverse_cholesky_factor(&rbf_gram(landmarks.view(), gamma))?;
        Ok(Nystroem {
            norms: norms(&landmarks),
            landmarks,
            projection: Some(projection),
            gamma,
        })
    }
}

/// `|l|^2` of every row.
fn norms(landmarks: &Array2<f32>) -> Vec<f32> {
    landmarks.rows().into_iter().map(|r| r.dot(&r)).collect()
}

/// Rows per chunk of the parallel products (fixed, so results do not depend on threads).
const CHUNK: usize = 256;

/// `out = a b` for row-major f32 matrices, by faer's GEMM, sequentially.
fn matmul(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    out: &mut ndarray::ArrayViewMut2<'_, f32>,
) {
    use faer::{linalg::matmul::matmul as gemm, Accum, MatMut, MatRef, Par};
    let view = |m: ArrayView2<'_, f32>| {
        let (r, c) = m.dim();
        let (rs, cs) = (m.strides()[0], m.strides()[1]);
        // SAFETY: the pointer, shape and strides come from a live ndarray view, which faer
        // reads within the same bounds.
        unsafe { MatRef::from_raw_parts(m.as_ptr(), r, c, rs, cs) }
    };
    let (r, c) = out.dim();
    let (rs, cs) = (out.strides()[0], out.strides()[1]);
    // SAFETY: as above, for the one mutable view, which nothing else aliases.
    let dst = unsafe { MatMut::from_raw_parts_mut(out.as_mut_ptr(), r, c, rs, cs) };
    gemm(dst, Accum::Replace, view(a), view(b), 1.0f32, Par::Seq);
}

/// One Lloyd iteration: assign every row of `x` to its nearest centre, move each centre to the
/// mean of its rows (a centre with no rows stays). Sums run over rows in order, in f64.
fn lloyd_step(x: ArrayView2<'_, f32>, centres: &mut Array2<f32>) {
    let m = centres.nrows();
    let csq: Vec<f32> = centres.rows().into_iter().map(|r| r.dot(&r)).collect();
    let ct = centres.t();
    let assign: Vec<Vec<u32>> = x
        .axis_chunks_iter(Axis(0), CHUNK)
        .into_par_iter()
        .map(|xb| {
            let mut d = Array2::<f32>::zeros((xb.nrows(), m));
            matmul(xb, ct, &mut d.view_mut());
            d.rows()
                .into_iter()
                .map(|row| {
                    let mut best = (0u32, f32::INFINITY);
                    for (j, (&v, &c)) in row.iter().zip(&csq).enumerate() {
                        let dist = c - 2.0 * v;
                        if dist < best.1 {
                            best = (j as u32, dist);
                        }
                    }
                    best.0
                })
                .collect()
        })
        .collect();
    let d = x.ncols();
    let mut sums = Array2::<f64>::zeros((m, d));
    let mut counts = vec![0usize; m];
    for (row, &a) in x.rows().into_iter().zip(assign.iter().flatten()) {
        counts[a as usize] += 1;
        for (s, &v) in sums.row_mut(a as usize).iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    for ((mut c, s), &n) in centres.rows_mut().into_iter().zip(sums.rows()).zip(&counts) {
        if n > 0 {
            for (c, &s) in c.iter_mut().zip(s) {
                *c = (s / n as f64) as f32;
            }
        }
    }
}

/// `K_ij = exp(-gamma |l_i - l_j|^2)` in f64 (the factorization needs the precision).
fn rbf_gram(l: ArrayView2<'_, f32>, gamma: f64) -> Array2<f64> {
    let l64 = l.mapv(|v| v as f64);
    let sq: Vec<f64> = l64.rows().into_iter().map(|r| r.dot(&r)).collect();
    let mut k = l64.dot(&l64.t());
    let m = k.nrows();
    k.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if i == j {
                    1.0
                } else {
                    (-gamma * (sq[i] + sq[j] - 2.0 * *v).max(0.0)).exp()
                };
            }
        });
    debug_assert_eq!(k.nrows(), m);
    k
}

/// `C^{-T}` for the Cholesky factor `K = C C^T`. Duplicate or nearly duplicate landmarks make
/// `K` singular: a small ridge (1e-8 of the diagonal, raised 100x per failure up to 1e-2) is
/// added until the factorization succeeds, the role scikit-learn's eigenvalue floor plays.
fn inverse_cholesky_factor(k: &Array2<f64>) -> Result<Array2<f32>> {
    use faer::{Mat, Par, Side};
    let m = k.nrows();
    let mut jitter = 1e-8;
    loop {
        let a = Mat::<f64>::from_fn(m, m, |i, j| k[(i, j)] + if i == j { jitter } else { 0.0 });
        match a.llt(Side::Lower) {
            Ok(llt) => {
                let mut inv = Mat::<f64>::zeros(m, m);
                faer::linalg::triangular_inverse::invert_lower_triangular(
                    inv.as_mut(),
                    llt.L(),
                    Par::Seq,
                );
                // projection[i][j] = (C^{-1})^T[i][j] = C^{-1}[j][i]
                return Ok(Array2::from_shape_fn((m, m), |(i, j)| inv[(j, i)] as f32));
            }
            Err(_) if jitter < 1e-2 => jitter *= 100.0,
            Err(_) => {
                return Err(Error::param(
                    "nystroem",
                    "the landmarks' kernel matrix is not positive definite even with a ridge of \
                     1e-2 (non-finite features?)",
                    m,
                ))
            }
        }
    }
}

impl Nystroem {
    /// Number of landmarks, the output dimension.
    pub fn dim(&self) -> usize {
        self.landmarks.nrows()
    }

    /// Map every row of `x`.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        check_cols("Nystroem map", self.landmarks.ncols(), x.ncols())?;
        let m = self.dim();
        let lsq = &self.norms;
        let g = self.gamma as f32;
        let kernel = |xb: ArrayView2<'_, f32>, k: &mut ndarray::ArrayViewMut2<'_, f32>| {
            matmul(xb, self.landmarks.t(), k);
            for (mut row, xr) in k.axis_iter_mut(Axis(0)).zip(xb.rows()) {
                let xsq = xr.dot(&xr);
                for (v, &l) in row.iter_mut().zip(lsq) {
                    *v = (-g * (xsq + l - 2.0 * *v).max(0.0)).exp();
                }
            }
        };
        let mut out = Array2::<f32>::zeros((x.nrows(), m));
        out.axis_chunks_iter_mut(Axis(0), CHUNK)
            .into_par_iter()
            .zip(x.axis_chunks_iter(Axis(0), CHUNK).into_par_iter())
            .for_each(|(mut o, xb)| match &self.projection {
                Some(p) => {
                    let mut k = Array2::<f32>::zeros((xb.nrows(), m));
                    kernel(xb, &mut k.view_mut());
                    matmul(k.view(), p.view(), &mut o);
                }
                None => kernel(xb, &mut o),
            });
        Ok(out)
    }

    /// Fold the projection into `weights` (`models x m`, a linear model on this map's output)
    /// and drop it: returns `W P^T`, the same model on the kernel values `k(x, L)`, since
    /// `(k P) . w = k . (P^T w)`. Prediction then costs `m d` per row instead of `m (d + m)`,
    /// and a saved model loses its `m x m` matrix (1 GB at 16384 landmarks). Sums run in f64,
    /// one output at a time in a fixed order, so the result does not depend on the thread
    /// count. A map already folded returns `weights` unchanged.
    pub fn fold(&mut self, weights: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let m = self.dim();
        if weights.ncols() != m {
            return Err(Error::ShapeMismatch {
                what: "weights to fold into the Nystroem map".into(),
                expected: format!("{m} columns"),
                got: format!("{} columns", weights.ncols()),
            });
        }
        let Some(p) = self.projection.take() else {
            return Ok(weights.to_owned());
        };
        let models = weights.nrows();
        let w64 = weights.mapv(f64::from);
        // Row j of P gives column j of the folded weights.
        let cols: Vec<Vec<f32>> = p
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|pj| {
                w64.rows()
                    .into_iter()
                    .map(|w| {
                        pj.iter()
                            .zip(w)
                            .map(|(&a, &b)| f64::from(a) * b)
                            .sum::<f64>() as f32
                    })
                    .collect()
            })
            .collect();
        Ok(Array2::from_shape_fn((models, m), |(c, j)| cols[j][c]))
    }
}

// ---------------------------------------------------------------- pipeline stage

/// `nystroem` (landmarks or `none`); `kmeans` (alias `kmeans-iters`), `gamma` and `seed` refine
/// it.
impl Configure for NystroemParams {
    type Slot = Option<NystroemParams>;
    const KEYS: &'static [&'static str] = &["nystroem", "kmeans", "gamma"];
    const REFINES: &'static [&'static str] = &["kmeans", "kmeans-iters", "gamma"];

    fn set(slot: &mut Self::Slot, key: &str, v: &str) -> Result<Setting> {
        if !matches!(key, "kmeans" | "kmeans-iters") {
            return set_kernel_key(slot, "nystroem", key, v, |n| {
                (&mut n.dim, &mut n.gamma, &mut n.gamma_scale, &mut n.seed)
            });
        }
        let k = num::<usize>("kmeans", v)?;
        Ok(match slot.as_mut() {
            Some(n) => {
                n.kmeans_iters = k;
                Setting::Set
            }
            None => Setting::Needs("kmeans"),
        })
    }

    fn plan(slot: &Self::Slot) -> Option<Self> {
        *slot
    }

    fn validate(slot: &Self::Slot) -> Result<()> {
        slot.as_ref().map_or(Ok(()), NystroemParams::validate)
    }

    /// At most one landmark per training row (scikit-learn's `Nystroem` does the same, with a
    /// warning): the stored configuration then says how many the model has.
    fn fit_to(slot: &mut Self::Slot, rows: usize) -> Option<String> {
        let p = slot.as_mut()?;
        if p.dim <= rows || rows == 0 {
            return None;
        }
        let note = format!(
            "nystroem: {} landmarks asked for, but there are {rows} training rows; using {rows}",
            p.dim
        );
        p.dim = rows;
        Some(note)
    }
}

impl FeaturePlan for NystroemParams {
    type Fitted = Nystroem;

    /// At most one landmark per training row.
    fn planned_dim(&self, n: usize, _: usize) -> usize {
        self.dim.min(n)
    }

    /// The landmarks, their f64 kernel matrix and its factor, the k-means sums, and the
    /// `n x m` output (the m x m projection is applied blockwise).
    fn fit_bytes(&self, n: usize, d: usize) -> u64 {
        use crate::budget::bytes_of;
        let m = self.planned_dim(n, d);
        bytes_of(&[m, d, 4 + 8])
            .saturating_add(bytes_of(&[m, m, 8 * 3]))
            .saturating_add(bytes_of(&[n, m, 4 * 2]))
    }

    fn fit_features(&self, x: ArrayView2<'_, f32>) -> Result<Nystroem> {
        NystroemParams::fit(self, x)
    }

    fn read_features(
        &self,
        t: &TensorReader<'_>,
        d: usize,
        folded: bool,
    ) -> Result<Nystroem, ModelError> {
        let landmarks = t.matrix(
            "nystroem.landmarks",
            |m, c| c == d && (1..=self.dim).contains(&m),
            || format!("[1..={}, {d}]", self.dim),
        )?;
        let m = landmarks.nrows();
        let projection = if folded {
            if t.has("nystroem.projection") {
                return Err(ModelError::invalid(
                    "model says its Nystroem projection is folded but holds one",
                ));
            }
            None
        } else {
            Some(t.matrix(
                "nystroem.projection",
                |r, c| (r, c) == (m, m),
                || format!("[{m}, {m}]"),
            )?)
        };
        Ok(Nystroem {
            norms: norms(&landmarks),
            landmarks,
            projection,
            gamma: t.scalar64("nystroem.gamma")?,
        })
    }
}

impl FeatureStage for Nystroem {
    const NAME: &'static str = "nystroem";

    fn apply(&self, x: Array2<f32>) -> Result<Array2<f32>> {
        Nystroem::transform(self, x.view())
    }

    fn out_dim(&self, _: usize) -> usize {
        self.dim()
    }
}

impl Learned for Nystroem {
    fn n_params(&self) -> usize {
        self.landmarks.len() + self.projection.as_ref().map_or(0, |p| p.len())
    }

    fn write(&self, t: &mut TensorWriter) {
        t.matrix("nystroem.landmarks", &self.landmarks);
        if let Some(p) = &self.projection {
            t.matrix("nystroem.projection", p);
        }
        t.f64("nystroem.gamma", &[1], [self.gamma]);
    }

    fn fold(&mut self, weights: ArrayView2<'_, f32>) -> Result<Option<Array2<f32>>> {
        if self.projection.is_none() {
            return Ok(None);
        }
        Nystroem::fold(self, weights).map(Some)
    }

    fn folded(&self) -> bool {
        self.projection.is_none()
    }

    /// The kernel values `exp(-gamma max(|x|^2 + |l|^2 - 2 x.l, 0))` to every landmark `l`, as
    /// `Nystroem::transform` computes them, then the projection (`MatMul`) unless it was folded
    /// into the SVM.
    fn to_onnx(&self, g: &mut Graph, x: &str) -> Result<Option<String>> {
        let (m, d) = self.landmarks.dim();
        let lt = self.landmarks.t().as_standard_layout().into_owned();
        let lt = g.constant_f32("landmarks_t", &[d, m], lt.as_slice().expect("standard"));
        let lsq: Vec<f32> = self
            .landmarks
            .rows()
            .into_iter()
            .map(|r| r.dot(&r))
            .collect();
        let lsq = g.constant_f32("landmark_norms", &[m], &lsq);
        let xl = g.node("MatMul", &[x, &lt], Vec::new());
        let xsq = g.reduce("ReduceSumSquare", x, &[1]);
        let two = g.scalar("two", 2.0);
        let s = g.node("Add", &[&xsq, &lsq], Vec::new());
        let t = g.node("Mul", &[&two, &xl], Vec::new());
        let d2 = g.node("Sub", &[&s, &t], Vec::new());
        let zero = g.scalar("zero", 0.0);
        let d2 = g.node("Max", &[&d2, &zero], Vec::new());
        let ng = g.scalar("neg_gamma", -(self.gamma as f32));
        let e = g.node("Mul", &[&ng, &d2], Vec::new());
        let k = g.node("Exp", &[&e], Vec::new());
        Ok(Some(match &self.projection {
            None => k,
            Some(p) => {
                let p = g.constant_f32(
                    "projection",
                    &[m, p.ncols()],
                    p.as_standard_layout().as_slice().expect("standard"),
                );
                g.node("MatMul", &[&k, &p], Vec::new())
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Landmarks drawn at random (no k-means), as scikit-learn.
    fn random_landmarks(dim: usize, gamma: Option<f64>, seed: u64) -> NystroemParams {
        NystroemParams {
            dim,
            gamma,
            seed,
            kmeans_iters: 0,
            ..Default::default()
        }
    }
    use crate::featmap::*;
    use ndarray::{array, Array1};

    fn rbf(a: ndarray::ArrayView1<'_, f32>, b: ndarray::ArrayView1<'_, f32>, g: f64) -> f64 {
        let d2: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| ((x - y) as f64).powi(2))
            .sum();
        (-g * d2).exp()
    }

    fn data(n: usize, d: usize, seed: u64) -> Array2<f32> {
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| r.gen_range(-1.0f32..1.0))
    }

    #[test]
    fn folding_keeps_the_linear_model() {
        let x = data(200, 4, 5);
        let fit = || {
            NystroemParams {
                dim: 50,
                gamma: Some(0.4),
                seed: 1,
                ..Default::default()
            }
            .fit(x.view())
            .unwrap()
        };
        let mut m = fit();
        let w = data(3, 50, 6);
        let z = m.transform(x.view()).unwrap();
        let before = z.dot(&w.t());
        assert!(m.fold(data(3, 49, 6).view()).is_err());
        assert!(m.projection.is_some());
        let folded = m.fold(w.view()).unwrap();
        assert!(m.projection.is_none());
        let after = m.transform(x.view()).unwrap().dot(&folded.t());
        for (a, b) in before.iter().zip(&after) {
            assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
        // Folded already: nothing more to do.
        assert_eq!(m.fold(folded.view()).unwrap(), folded);
        // Thread count does not matter.
        let mut again = fit();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| again.fold(w.view()).unwrap());
        assert_eq!(one, folded);
    }

    #[test]
    fn exact_on_landmarks_and_close_elsewhere() {
        let x = data(300, 5, 1);
        let p = random_landmarks(120, Some(0.3), 7);
        let m = p.fit(x.view()).unwrap();
        assert_eq!(m.dim(), 120);
        // On the landmarks the map reproduces the kernel (up to the tiny ridge and f32).
        let zl = m.transform(m.landmarks.view()).unwrap();
        for i in (0..120).step_by(7) {
            for j in (0..120).step_by(5) {
                let exact = rbf(m.landmarks.row(i), m.landmarks.row(j), 0.3);
                let approx = zl.row(i).dot(&zl.row(j)) as f64;
                assert!((exact - approx).abs() < 2e-3, "{i} {j}: {exact} {approx}");
            }
        }
        // Elsewhere it approximates it; far better than random features of the same size.
        let y = data(40, 5, 2);
        let zy = m.transform(y.view()).unwrap();
        let r = RffParams {
            dim: 120,
            gamma: Some(0.3),
            seed: 7,
            ..Default::default()
        }
        .fit(x.view())
        .unwrap();
        let ry = r.transform(y.view()).unwrap();
        let (mut err_n, mut err_r) = (0.0f64, 0.0f64);
        for i in 0..40 {
            for j in 0..40 {
                let exact = rbf(y.row(i), y.row(j), 0.3);
                err_n = err_n.max((exact - zy.row(i).dot(&zy.row(j)) as f64).abs());
                err_r = err_r.max((exact - ry.row(i).dot(&ry.row(j)) as f64).abs());
            }
        }
        eprintln!("max |k - z.z|: Nystroem {err_n}, RFF {err_r}");
        assert!(err_n < 0.05, "Nystroem max error {err_n}");
        assert!(err_n < err_r / 4.0, "Nystroem {err_n} vs RFF {err_r}");
    }

    /// Sum of squared distances of the rows to their nearest centre.
    fn inertia(x: &Array2<f32>, c: &Array2<f32>) -> f64 {
        x.rows()
            .into_iter()
            .map(|r| {
                c.rows()
                    .into_iter()
                    .map(|c| {
                        r.iter()
                            .zip(c)
                            .map(|(&a, &b)| ((a - b) as f64).powi(2))
                            .sum()
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .sum()
    }

    #[test]
    fn lloyd_lowers_the_objective_and_finds_separated_blobs() {
        // Three tight blobs of 200 rows around known centres.
        let centres = array![[0.0f32, 0.0, 0.0], [5.0, 5.0, 0.0], [-5.0, 5.0, 5.0]];
        let noise = data(600, 3, 9) * 0.1;
        let x = Array2::from_shape_fn((600, 3), |(i, j)| centres[(i % 3, j)] + noise[(i, j)]);
        // Start from three rows of the same blob: the worst start.
        let mut c = x.select(Axis(0), &[0, 3, 6]);
        let mut last = inertia(&x, &c);
        for _ in 0..10 {
            lloyd_step(x.view(), &mut c);
            let now = inertia(&x, &c);
            assert!(now <= last * (1.0 + 1e-9), "{now} > {last}");
            last = now;
        }
        // Lloyd from a bad start can keep two centres in one blob; from one row of each blob it
        // must land on the blob means.
        let mut c = x.select(Axis(0), &[0, 1, 2]);
        for _ in 0..3 {
            lloyd_step(x.view(), &mut c);
        }
        for k in 0..3 {
            let mean = x
                .rows()
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % 3 == k)
                .fold(Array1::<f64>::zeros(3), |acc, (_, r)| {
                    acc + r.mapv(|v| v as f64)
                });
            for j in 0..3 {
                assert!((c[(k, j)] as f64 - mean[j] / 200.0).abs() < 1e-5);
            }
        }
        // A mix of blobs, 12 landmarks: k-means ones approximate the kernel better than random
        // rows of the same number.
        let p = random_landmarks(12, Some(0.5), 4);
        let y = Array2::from_shape_fn((60, 3), |(i, j)| centres[(i % 3, j)] + noise[(i + 7, j)]);
        let mean_err = |m: &Nystroem| {
            let z = m.transform(y.view()).unwrap();
            let mut e = 0.0;
            for i in 0..60 {
                for j in 0..60 {
                    e += (rbf(y.row(i), y.row(j), 0.5) - z.row(i).dot(&z.row(j)) as f64).abs();
                }
            }
            e / 3600.0
        };
        // Wider blobs, so that 12 landmarks cannot cover them exactly.
        let wide = Array2::from_shape_fn((600, 3), |(i, j)| {
            x[(i, j)] + 3.0 * noise[((i * 7) % 600, j)]
        });
        let random = p.fit(wide.view()).unwrap();
        let km = NystroemParams {
            kmeans_iters: 10,
            ..p
        }
        .fit(wide.view())
        .unwrap();
        let (e_rand, e_km) = (mean_err(&random), mean_err(&km));
        assert!(e_km < e_rand, "k-means {e_km} vs random {e_rand}");
    }

    #[test]
    fn duplicates_seeds_and_errors() {
        // Every row twice: the landmarks' kernel matrix is singular, the ridge handles it.
        let base = data(50, 3, 3);
        let x = ndarray::concatenate(Axis(0), &[base.view(), base.view()]).unwrap();
        let p = random_landmarks(100, None, 1);
        let m = p.fit(x.view()).unwrap();
        let z = m.transform(x.view()).unwrap();
        assert!(z.iter().all(|v| v.is_finite()));
        assert!((m.gamma - scale_gamma(x.view())).abs() < 1e-12);
        // Same seed, same map; other seed, other landmarks.
        assert_eq!(p.fit(x.view()).unwrap(), m);
        let small = data(30, 3, 4);
        let q = random_landmarks(10, Some(1.0), 2);
        assert_ne!(
            q.fit(small.view()).unwrap().landmarks,
            NystroemParams { seed: 3, ..q }
                .fit(small.view())
                .unwrap()
                .landmarks
        );
        // More landmarks than rows: all rows.
        assert_eq!(p.fit(small.view()).unwrap().dim(), 30);
        assert!(m.transform(small.slice(ndarray::s![.., ..2])).is_err());
        assert!(NystroemParams { dim: 0, ..p }.validate().is_err());
        assert!(NystroemParams {
            kmeans_iters: 5000,
            ..p
        }
        .validate()
        .is_err());
        assert!(NystroemParams {
            gamma: Some(-1.0),
            ..p
        }
        .validate()
        .is_err());
        // A multiple of "scale": that many times the heuristic; not with a fixed gamma.
        let twice = NystroemParams {
            gamma_scale: 2.0,
            ..p
        };
        assert_eq!(twice.fit(x.view()).unwrap().gamma, 2.0 * m.gamma);
        for bad in [0.0, -1.0, f64::NAN] {
            assert!(NystroemParams {
                gamma_scale: bad,
                ..p
            }
            .validate()
            .is_err());
        }
        assert!(NystroemParams {
            gamma: Some(1.0),
            ..twice
        }
        .validate()
        .is_err());
        let nan = array![[1.0f32, f32::NAN]];
        assert!(p.fit(nan.view()).is_err());
    }
}
