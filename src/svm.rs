//! Linear SVM trained by dual coordinate descent (Hsieh, Chang, Lin, Keerthi & Sundararajan,
//! "A Dual Coordinate Descent Method for Large-scale Linear SVM", ICML 2008) — the algorithm of
//! liblinear and so of scikit-learn's `LinearSVC` — with one-vs-rest for several classes.
//!
//! Why not linfa-svm: it is a kernel SVM (SMO) that builds a dense n x n kernel matrix, so on
//! 60,000 samples it would need ~29 GB and hours; a linear SVM in the primal/dual form needs
//! O(n d) memory and a few passes over the data.
//!
//! Semantics follow liblinear so that results can be checked against scikit-learn:
//! * primal `0.5 |w|^2 + C sum loss_i`, where the bias is an extra feature of value `bias`
//!   (regularised, like liblinear / `intercept_scaling`); hinge (L1) or squared hinge (L2) loss;
//! * stopping when the projected-gradient spread `max PG - min PG <= tol` (liblinear's `eps`),
//!   with shrinking of bounded variables, or after `max_iter` passes;
//! * samples visited in a random order drawn from a seeded ChaCha generator, one stream per
//!   class, so the model depends on the seed, never on the thread count;
//! * one-vs-rest for more than two classes (classes trained in parallel): class `k`'s positives
//!   get `C * weight[k]`, its negatives plain `C`, as liblinear does; two classes train one
//!   model, class 1 positive (`C * weight[1]`) against class 0 (`C * weight[0]`).

use ndarray::{Array1, Array2, ArrayBase, ArrayView1, ArrayView2, Axis, Ix2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{check_cols, param, Error, Result};

/// Loss of the linear SVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Loss {
    /// Hinge loss, `max(0, 1 - y w.x)`.
    Hinge,
    /// Squared hinge loss, `max(0, 1 - y w.x)^2` (scikit-learn's `LinearSVC` default).
    #[default]
    SquaredHinge,
}

impl std::str::FromStr for Loss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "hinge" | "l1" => Ok(Loss::Hinge),
            "squaredhinge" | "l2" => Ok(Loss::SquaredHinge),
            _ => Err(Error::param("loss", "hinge or squared-hinge", s)),
        }
    }
}

/// Class weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum ClassWeight {
    /// Every class weighs 1.
    #[default]
    None,
    /// `n_samples / (n_classes * count[k])`, as scikit-learn's `compute_class_weight`.
    Balanced,
    /// One weight per class, in label order.
    Explicit(Vec<f64>),
}

/// Hyper-parameters of [`LinearSvm`]. `Default` matches scikit-learn's `LinearSVC`
/// (C 1, squared hinge, tol 1e-4, max_iter 1000, intercept 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmParams {
    /// Inverse regularisation strength.
    pub c: f64,
    /// Loss.
    pub loss: Loss,
    /// Value of the constant bias feature; 0 disables the bias.
    pub bias: f64,
    /// Stopping tolerance on the projected-gradient spread.
    pub tol: f64,
    /// Maximum passes over the data (per class).
    pub max_iter: usize,
    /// Shrink bounded variables out of the active set.
    pub shrinking: bool,
    /// Seed of the visiting order.
    pub seed: u64,
    /// Class weights.
    pub class_weight: ClassWeight,
}

impl Default for SvmParams {
    fn default() -> Self {
        SvmParams {
            c: 1.0,
            loss: Loss::SquaredHinge,
            bias: 1.0,
            tol: 1e-4,
            max_iter: 1000,
            shrinking: true,
            seed: 0,
            class_weight: ClassWeight::None,
        }
    }
}

impl SvmParams {
    setter! {
        /// Set C.
        c: f64,
        /// Set the loss.
        loss: Loss,
        /// Set the seed.
        seed: u64,
        /// Set the tolerance.
        tol: f64,
        /// Set the maximum number of passes.
        max_iter: usize,
        /// Set the class weights.
        class_weight: ClassWeight,
    }

    /// Check the parameters (and explicit weights against the class count).
    pub fn validate(&self, n_classes: usize) -> Result<()> {
        param("C", self.c).positive("must be a positive finite number")?;
        param("tol", self.tol).positive("must be a positive finite number")?;
        param("bias", self.bias).non_negative("must be finite and >= 0")?;
        if self.max_iter == 0 {
            return Err(Error::param("max_iter", "must be at least 1", 0));
        }
        if let ClassWeight::Explicit(w) = &self.class_weight {
            if w.len() != n_classes {
                return Err(Error::param(
                    "class_weight",
                    format!("needs one weight per class ({n_classes})"),
                    w.len(),
                ));
            }
            if let Some(bad) = w.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return Err(Error::param(
                    "class_weight",
                    "weights must be positive",
                    bad,
                ));
            }
        }
        Ok(())
    }

    /// Train on `x` (`n x d`) with labels `y` in `0..n_classes`.
    pub fn fit(&self, x: ArrayView2<'_, f32>, y: &[u32], n_classes: usize) -> Result<LinearSvm> {
        self.validate(n_classes)?;
        let n = x.nrows();
        if y.len() != n {
            return Err(Error::ShapeMismatch {
                what: "labels".into(),
                expected: format!("{n} (one per row of the features)"),
                got: y.len().to_string(),
            });
        }
        if n_classes < 2 {
            return Err(Error::param(
                "classes",
                "need at least 2 classes to train",
                n_classes,
            ));
        }
        let mut counts = vec![0usize; n_classes];
        for (i, &l) in y.iter().enumerate() {
            if l as usize >= n_classes {
                return Err(Error::ShapeMismatch {
                    what: format!("label of sample {i}"),
                    expected: format!("< {n_classes}"),
                    got: l.to_string(),
                });
            }
            counts[l as usize] += 1;
        }
        if let Some((i, _)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::InvalidParameter {
                name: "features",
                reason: format!(
                    "must be finite (row {}, column {})",
                    i / x.ncols().max(1),
                    i % x.ncols().max(1)
                ),
                got: "NaN or infinity".into(),
            });
        }
        let weights: Vec<f64> = match &self.class_weight {
            ClassWeight::None => vec![1.0; n_classes],
            ClassWeight::Balanced => counts
                .iter()
                .map(|&c| {
                    if c == 0 {
                        1.0
                    } else {
                        n as f64 / (n_classes as f64 * c as f64)
                    }
                })
                .collect(),
            ClassWeight::Explicit(w) => w.clone(),
        };
        let x = x.as_standard_layout();
        let problems: Vec<(Vec<f64>, f64, f64)> = if n_classes == 2 {
            vec![(
                y.iter().map(|&l| if l == 1 { 1.0 } else { -1.0 }).collect(),
                self.c * weights[1],
                self.c * weights[0],
            )]
        } else {
            (0..n_classes)
                .map(|k| {
                    (
                        y.iter()
                            .map(|&l| if l as usize == k { 1.0 } else { -1.0 })
                            .collect(),
                        self.c * weights[k],
                        self.c,
                    )
                })
                .collect()
        };
        let results: Vec<BinaryModel> = problems
            .into_par_iter()
            .enumerate()
            .map(|(k, (yy, cp, cn))| {
                // One random stream per class: independent of scheduling.
                let seed = self
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(k as u64);
                solve_dcd(x.view(), &yy, cp, cn, self, seed)
            })
            .collect();
        let d = x.ncols();
        let mut w = Array2::<f32>::zeros((results.len(), d));
        let mut b = Array1::<f32>::zeros(results.len());
        let mut iterations = Vec::with_capacity(results.len());
        for (k, r) in results.iter().enumerate() {
            for (dst, &v) in w.row_mut(k).iter_mut().zip(&r.w) {
                *dst = v as f32;
            }
            b[k] = (r.w_bias * self.bias) as f32;
            iterations.push(r.iterations);
        }
        Ok(LinearSvm {
            weights: w,
            intercepts: b,
            n_classes,
            iterations,
        })
    }
}

/// A trained linear SVM: one weight row and intercept per binary problem (one for two
/// classes, one per class otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearSvm {
    /// `models x d` weights.
    pub weights: Array2<f32>,
    /// One intercept per model (`bias * w_bias`).
    pub intercepts: Array1<f32>,
    /// Number of classes.
    pub n_classes: usize,
    /// Passes each binary problem took.
    pub iterations: Vec<usize>,
}

impl LinearSvm {
    /// Decision scores, `n x models` (one column for two classes).
    pub fn decision_function(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        check_cols("SVM", self.weights.ncols(), x.ncols())?;
        let mut s = x.dot(&self.weights.t());
        s += &self.intercepts;
        Ok(s)
    }

    /// Predicted class of each row.
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Vec<u32>> {
        let s = self.decision_function(x)?;
        Ok(Self::labels_from_scores(s.view(), self.n_classes))
    }

    /// Class of each row of decision scores: argmax (first wins ties), or the sign for two
    /// classes.
    pub fn labels_from_scores(s: ArrayView2<'_, f32>, n_classes: usize) -> Vec<u32> {
        s.axis_iter(Axis(0))
            .map(|row| {
                if n_classes == 2 {
                    u32::from(row[0] > 0.0)
                } else {
                    let mut best = 0;
                    for (j, &v) in row.iter().enumerate() {
                        if v > row[best] {
                            best = j;
                        }
                    }
                    best as u32
                }
            })
            .collect()
    }

    /// Primal objective `0.5 |w|^2 + C sum loss` of binary model `k` on `(x, y)` (labels as in
    /// training, no class weights), with the bias counted as a weight as in training.
    pub fn primal_objective(
        &self,
        k: usize,
        x: ArrayView2<'_, f32>,
        y: &[u32],
        params: &SvmParams,
    ) -> f64 {
        let w = self.weights.row(k);
        let wb = if params.bias > 0.0 {
            self.intercepts[k] as f64 / params.bias
        } else {
            0.0
        };
        let reg = 0.5 * (w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() + wb * wb);
        let positive = if self.n_classes == 2 { 1 } else { k as u32 };
        let loss: f64 = x
            .axis_iter(Axis(0))
            .zip(y)
            .map(|(row, &l)| {
                let yy = if l == positive { 1.0 } else { -1.0 };
                let m = 1.0 - yy * (dot64(row, w) + wb * params.bias);
                match params.loss {
                    Loss::Hinge => m.max(0.0),
                    Loss::SquaredHinge => m.max(0.0).powi(2),
                }
            })
            .sum();
        reg + params.c * loss
    }
}

/// linfa's `Fit`: `Fit::fit(&params, &dataset)` with `f32` records and `usize` targets
/// (classes `0..=max label`). Composes with linfa's datasets, splits and cross-validation.
///
/// ```
/// use hogsvm::svm::SvmParams;
/// use linfa::prelude::*;
/// use ndarray::array;
/// let x = array![[0.0f32, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]];
/// let ds = Dataset::new(x.clone(), array![0usize, 1, 0, 1]);
/// let model = Fit::fit(&SvmParams::default(), &ds)?;
/// let y: ndarray::Array1<usize> = Predict::predict(&model, &x);
/// assert_eq!(y.to_vec(), vec![0, 1, 0, 1]);
/// # Ok::<(), hogsvm::Error>(())
/// ```
impl<D> linfa::traits::Fit<ArrayBase<D, Ix2>, Array1<usize>, Error> for SvmParams
where
    D: ndarray::Data<Elem = f32>,
{
    type Object = LinearSvm;

    fn fit(
        &self,
        dataset: &linfa::DatasetBase<ArrayBase<D, Ix2>, Array1<usize>>,
    ) -> Result<LinearSvm> {
        let y: Vec<u32> = dataset
            .targets
            .iter()
            .map(|&v| u32::try_from(v).map_err(|_| Error::param("targets", "label too large", v)))
            .collect::<Result<_>>()?;
        let k = y.iter().copied().max().map(|m| m as usize + 1).unwrap_or(0);
        SvmParams::fit(self, dataset.records.view(), &y, k)
    }
}

/// linfa's `PredictInplace` (and so `Predict`): the class of each row. linfa's trait has no
/// error channel, so records with the wrong number of columns panic here, as linfa's own
/// models do; [`LinearSvm::predict`] returns an error instead.
impl<D> linfa::traits::PredictInplace<ArrayBase<D, Ix2>, Array1<usize>> for LinearSvm
where
    D: ndarray::Data<Elem = f32>,
{
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<usize>) {
        let labels = LinearSvm::predict(self, x.view())
            .unwrap_or_else(|e| panic!("LinearSvm::predict_inplace: {e}"));
        assert_eq!(
            y.len(),
            labels.len(),
            "target length must equal the record count"
        );
        for (t, l) in y.iter_mut().zip(labels) {
            *t = l as usize;
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<usize> {
        Array1::zeros(x.nrows())
    }
}

fn dot64(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

struct BinaryModel {
    w: Vec<f64>,
    w_bias: f64,
    iterations: usize,
}

/// `sum a[j] * b[j]` in f32 with sixteen lanes (two AVX registers), summed in a fixed order.
/// The solver keeps `w` in f64 and a rounded f32 copy for these products: an f32 product of
/// ~1e3 terms is accurate to ~1e-6, far below the stopping tolerance, and 4x cheaper than f64.
#[inline(always)]
fn dot_f32(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = 0f64;
    for v in acc {
        s += v as f64;
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += (*x * *y) as f64;
    }
    s
}

/// liblinear's `solve_l2r_l1l2_svc` for one binary problem (`y` in {-1, +1}).
///
/// Compiled for the baseline target and for AVX2+FMA, chosen at run time; the arithmetic is the
/// same (explicit summation order, no FMA contraction), so the model is identical either way.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn solve_dcd<'a>(
    x: ArrayView2<'a, f32>,
    y: &[f64],
    cp: f64,
    cn: f64,
    p: &SvmParams,
    seed: u64,
) -> BinaryModel {
    let (n, d) = x.dim();
    let xs = x.as_slice().expect("standard layout checked by the caller");
    let row = |i: usize| &xs[i * d..(i + 1) * d];
    let (diag_p, diag_n, up, un) = match p.loss {
        Loss::SquaredHinge => (0.5 / cp, 0.5 / cn, f64::INFINITY, f64::INFINITY),
        Loss::Hinge => (0.0, 0.0, cp, cn),
    };
    let bias = p.bias;
    let mut w = vec![0f64; d];
    let mut w32 = vec![0f32; d];
    let mut w_bias = 0f64;
    let mut alpha = vec![0f64; n];
    let qd: Vec<f64> = (0..n)
        .map(|i| {
            let r = row(i);
            let diag = if y[i] > 0.0 { diag_p } else { diag_n };
            diag + r.iter().map(|&v| v as f64 * v as f64).sum::<f64>() + bias * bias
        })
        .collect();
    let mut index: Vec<usize> = (0..n).collect();
    let mut active = n;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut pg_max_old, mut pg_min_old) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut iter = 0;
    while iter < p.max_iter {
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        index[..active].shuffle(&mut rng);
        let mut s = 0;
        while s < active {
            let i = index[s];
            // Touch the next sample's row (one load per cache line): the visiting order is
            // random, so the hardware prefetcher cannot guess it, and the loads overlap with
            // this sample's work.
            if s + 1 < active {
                let next = row(index[s + 1]);
                let mut touch = 0f32;
                for v in next.iter().step_by(16) {
                    touch += *v;
                }
                std::hint::black_box(touch);
            }
            let yi = y[i];
            let (diag, upper) = if yi > 0.0 { (diag_p, up) } else { (diag_n, un) };
            let r = row(i);
            let g = yi * (dot_f32(r, &w32) + w_bias * bias) - 1.0 + alpha[i] * diag;
            let mut pg = 0.0;
            if alpha[i] == 0.0 {
                if p.shrinking && g > pg_max_old {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                } else if g < 0.0 {
                    pg = g;
                }
            } else if alpha[i] == upper {
                if p.shrinking && g < pg_min_old {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                } else if g > 0.0 {
                    pg = g;
                }
            } else {
                pg = g;
            }
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 && qd[i] > 0.0 {
                let old = alpha[i];
                alpha[i] = (alpha[i] - g / qd[i]).max(0.0).min(upper);
                let delta = (alpha[i] - old) * yi;
                for ((wj, wj32), &xj) in w.iter_mut().zip(w32.iter_mut()).zip(r) {
                    *wj += delta * xj as f64;
                    *wj32 = *wj as f32;
                }
                w_bias += delta * bias;
            }
            s += 1;
        }
        iter += 1;
        if pg_max - pg_min <= p.tol {
            if active == n || !p.shrinking {
                break;
            }
            active = n;
            pg_max_old = f64::INFINITY;
            pg_min_old = f64::NEG_INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
        pg_min_old = if pg_min >= 0.0 {
            f64::NEG_INFINITY
        } else {
            pg_min
        };
    }
    BinaryModel {
        w,
        w_bias,
        iterations: iter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Two Gaussian-ish blobs that are linearly separable with margin.
    fn blobs(n: usize) -> (Array2<f32>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut x = Array2::zeros((n, 3));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let c = (i % 3) as u32;
            y.push(c);
            for j in 0..3 {
                let centre = if j == c as usize { 3.0 } else { 0.0 };
                x[[i, j]] = centre + rng.gen_range(-1.0f32..1.0);
            }
        }
        (x, y)
    }

    #[test]
    fn separable_three_classes_are_learned() {
        let (x, y) = blobs(300);
        for loss in [Loss::Hinge, Loss::SquaredHinge] {
            let m = SvmParams::default()
                .loss(loss)
                .fit(x.view(), &y, 3)
                .unwrap();
            let p = m.predict(x.view()).unwrap();
            let acc = p.iter().zip(&y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64;
            assert!(acc > 0.98, "{loss:?}: {acc}");
            assert_eq!(m.weights.dim(), (3, 3));
        }
    }

    #[test]
    fn same_seed_same_model_different_seed_may_differ() {
        let (x, y) = blobs(200);
        let a = SvmParams::default().seed(3).fit(x.view(), &y, 3).unwrap();
        let b = SvmParams::default().seed(3).fit(x.view(), &y, 3).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn invalid_parameters_are_errors() {
        let (x, y) = blobs(30);
        assert!(SvmParams::default().c(0.0).fit(x.view(), &y, 3).is_err());
        assert!(SvmParams::default().tol(-1.0).fit(x.view(), &y, 3).is_err());
        assert!(SvmParams::default()
            .class_weight(ClassWeight::Explicit(vec![1.0]))
            .fit(x.view(), &y, 3)
            .is_err());
        assert!(SvmParams::default().fit(x.view(), &y[..10], 3).is_err());
        let mut bad = x.clone();
        bad[[4, 1]] = f32::NAN;
        let e = SvmParams::default().fit(bad.view(), &y, 3).unwrap_err();
        assert!(e.to_string().contains("row 4"), "{e}");
    }

    #[test]
    fn balanced_weights_follow_sklearn_formula() {
        let (x, mut y) = blobs(90);
        // Make class 2 rare.
        for l in y.iter_mut().skip(10) {
            if *l == 2 {
                *l = 0;
            }
        }
        let m = SvmParams::default()
            .class_weight(ClassWeight::Balanced)
            .fit(x.view(), &y, 3)
            .unwrap();
        assert_eq!(m.weights.nrows(), 3);
    }
}
