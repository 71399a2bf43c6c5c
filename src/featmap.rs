//! Explicit kernel feature maps: a linear SVM on mapped features approximates a kernel SVM at
//! linear cost.
//!
//! * [`FeatureMap::Hellinger`]: `sqrt(x)`, exact for the Bhattacharyya / Hellinger kernel
//!   `sum sqrt(x_i y_i)`.
//! * [`FeatureMap::AdditiveChi2`]: Vedaldi & Zisserman, "Efficient Additive Kernels via Explicit
//!   Feature Maps" (CVPR 2010 / PAMI 2012), sampled as scikit-learn's `AdditiveChi2Sampler`:
//!   `steps` samples of the kernel's spectrum at interval `L` give `d * (2 steps - 1)` features
//!   per input of `d` (steps 1..=3; "order" `steps - 1`). Inputs must be non-negative (HOG is).
//!
//! Both are applied element by element, so they are cheap and thread-count independent.
//!
//! For the RBF kernel `exp(-gamma |x - y|^2)`, applied after PCA (dense, low-dimensional
//! inputs), two maps:
//!
//! * [`RffParams`]: random Fourier features (Rahimi & Recht 2007), data-independent.
//! * [`NystroemParams`]: the Nystroem method (Williams & Seeger 2001), as scikit-learn's
//!   `Nystroem` but with k-means landmarks (Zhang, Tsang & Kwok, ICML 2008): `m` training rows
//!   drawn at random, moved by a few Lloyd iterations to k-means centres (`kmeans_iters = 0`
//!   keeps scikit-learn's random rows), then `z(x) = k(x, L) K_LL^{-1/2}`, so
//!   `z(x) . z(y)` is the kernel projected on the landmarks' span — exact on the landmarks, and
//!   much closer to the kernel than random features of the same dimension. We factor
//!   `K_LL = C C^T` (Cholesky) and use `z(x) = k(x, L) C^{-T}`: the same inner products as
//!   scikit-learn's `K^{-1/2}` (the two maps differ by a rotation, which a linear SVM with an
//!   L2 penalty does not see), at a sixth of an eigendecomposition's cost. The factorization and
//!   triangular inverse are `faer`'s, built without its rayon feature so they run sequentially
//!   and the map does not depend on the thread count; `linfa-linalg` has them too but
//!   unblocked, far slower at thousands of landmarks. The large products (k-means distances,
//!   `k(x, L)` and the projection) use faer's GEMM on fixed row chunks in parallel: each chunk's
//!   product is sequential, so results do not depend on the thread count either. On
//!   Fashion-MNIST HOG features k-means landmarks matter: 2048 of them approximate the kernel
//!   better than 4096 random rows (docs/BENCHMARKS.md). The k-means here is a plain Lloyd loop
//!   written around that GEMM (assignments by `|c|^2 - 2 x.c`, centre sums in a fixed order);
//!   `linfa-clustering` is not a dependency and its k-means++ start alone is `O(n k d)` serial
//!   work for thousands of centres.
//!   Once a linear model is trained on `z`, [`Nystroem::fold`] moves `C^{-T}` into its
//!   weights, so a trained pipeline keeps only the landmarks and predicts at `O(m d)` per row.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A feature map applied before the linear SVM.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum FeatureMap {
    /// No map.
    #[default]
    None,
    /// Element-wise square root.
    Hellinger,
    /// Additive chi-squared map.
    AdditiveChi2 {
        /// Spectrum samples, 1..=3.
        steps: usize,
        /// Sampling interval `L`; scikit-learn's defaults are 0.8, 0.5, 0.4 for 1, 2, 3 steps.
        interval: f64,
    },
}

impl std::str::FromStr for FeatureMap {
    type Err = Error;
    /// `none`, `hellinger`, `chi2` (2 steps), `chi2:N` or `chi2:N:L`.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        let mut parts = lower.split(':');
        let bad = || {
            Error::param(
                "feature_map",
                "none, hellinger, chi2, chi2:STEPS or chi2:STEPS:INTERVAL",
                s,
            )
        };
        match parts.next() {
            Some("none") => Ok(FeatureMap::None),
            Some("hellinger") | Some("sqrt") => Ok(FeatureMap::Hellinger),
            Some("chi2") => {
                let steps = match parts.next() {
                    Some(v) => v.parse().map_err(|_| bad())?,
                    None => 2,
                };
                let interval = match parts.next() {
                    Some(v) => v.parse().map_err(|_| bad())?,
                    None => default_interval(steps),
                };
                let m = FeatureMap::AdditiveChi2 { steps, interval };
                m.validate()?;
                Ok(m)
            }
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for FeatureMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeatureMap::None => write!(f, "none"),
            FeatureMap::Hellinger => write!(f, "hellinger"),
            FeatureMap::AdditiveChi2 { steps, interval } => write!(f, "chi2:{steps}:{interval}"),
        }
    }
}

/// scikit-learn's default sampling interval for a number of steps.
pub fn default_interval(steps: usize) -> f64 {
    match steps {
        1 => 0.8,
        2 => 0.5,
        _ => 0.4,
    }
}

impl FeatureMap {
    /// Check the parameters.
    pub fn validate(&self) -> Result<()> {
        if let FeatureMap::AdditiveChi2 { steps, interval } = *self {
            if !(1..=3).contains(&steps) {
                return Err(Error::param(
                    "feature_map",
                    "chi2 steps must be 1, 2 or 3",
                    steps,
                ));
            }
            if !(interval.is_finite() && interval > 0.0) {
                return Err(Error::param(
                    "feature_map",
                    "chi2 interval must be > 0",
                    interval,
                ));
            }
        }
        Ok(())
    }

    /// Output dimension for an input of `d` features.
    pub fn output_dim(&self, d: usize) -> usize {
        match self {
            FeatureMap::None | FeatureMap::Hellinger => d,
            FeatureMap::AdditiveChi2 { steps, .. } => d * (2 * steps - 1),
        }
    }

    /// Map every row of `x`. Negative or non-finite inputs are errors naming the row.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.validate()?;
        if *self == FeatureMap::None {
            return Ok(x.to_owned());
        }
        check_features(
            x,
            &format!("the {self} feature map"),
            "finite non-negative",
            |v| v.is_finite() && v >= 0.0,
        )?;
        let d = x.ncols();
        let mut out = Array2::<f32>::zeros((x.nrows(), self.output_dim(d)));
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(x.axis_iter(Axis(0)).into_par_iter())
            .for_each(|(mut o, row)| match *self {
                FeatureMap::None => unreachable!("handled above"),
                FeatureMap::Hellinger => {
                    for (dst, &v) in o.iter_mut().zip(row) {
                        *dst = v.sqrt();
                    }
                }
                FeatureMap::AdditiveChi2 { steps, interval } => {
                    let o = o.as_slice_mut().expect("fresh rows are contiguous");
                    for (j, &v) in row.iter().enumerate() {
                        if v <= 0.0 {
                            continue;
                        }
                        let v = v as f64;
                        o[j] = (v * interval).sqrt() as f32;
                        let log_step = interval * v.ln();
                        let step = 2.0 * v * interval;
                        for s in 1..steps {
                            let factor =
                                (step / (std::f64::consts::PI * s as f64 * interval).cosh()).sqrt();
                            let a = s as f64 * log_step;
                            let base = d * (2 * s - 1);
                            o[base + j] = (factor * a.cos()) as f32;
                            o[base + d + j] = (factor * a.sin()) as f32;
                        }
                    }
                }
            });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// The exact additive chi2 kernel, sum 2 x y / (x + y).
    fn chi2(x: &[f32], y: &[f32]) -> f64 {
        x.iter()
            .zip(y)
            .map(|(&a, &b)| {
                let (a, b) = (a as f64, b as f64);
                if a + b > 0.0 {
                    2.0 * a * b / (a + b)
                } else {
                    0.0
                }
            })
            .sum()
    }

    #[test]
    fn chi2_map_approximates_the_kernel() {
        let x = array![
            [0.1f32, 0.5, 0.0, 0.3],
            [0.2, 0.4, 0.1, 0.0],
            [0.05, 0.6, 0.2, 0.2]
        ];
        let m = FeatureMap::AdditiveChi2 {
            steps: 3,
            interval: 0.4,
        };
        let z = m.transform(x.view()).unwrap();
        assert_eq!(z.ncols(), 4 * 5);
        for i in 0..3 {
            for j in 0..3 {
                let exact = chi2(x.row(i).as_slice().unwrap(), x.row(j).as_slice().unwrap());
                let approx: f64 = z
                    .row(i)
                    .iter()
                    .zip(z.row(j))
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum();
                // Sampling the spectrum at 3 points approximates within ~10 % here.
                assert!(
                    (exact - approx).abs() < 0.1 * exact.max(0.1),
                    "{exact} {approx}"
                );
            }
            // On the diagonal k(x, x) = sum x and the map gives exactly
            // sum x * L * (1 + 2 sum_j sech(pi j L)).
            let l = 0.4f64;
            let gain = l
                * (1.0
                    + 2.0
                        * (1..3)
                            .map(|j| 1.0 / (std::f64::consts::PI * j as f64 * l).cosh())
                            .sum::<f64>());
            let sum: f64 = x.row(i).iter().map(|&v| v as f64).sum();
            let diag: f64 = z.row(i).iter().map(|&a| (a as f64).powi(2)).sum();
            assert!((diag - gain * sum).abs() < 1e-5, "{diag} vs {}", gain * sum);
        }
    }

    #[test]
    fn hellinger_is_sqrt_and_negative_inputs_are_errors() {
        let x = array![[4.0f32, 9.0]];
        assert_eq!(
            FeatureMap::Hellinger.transform(x.view()).unwrap(),
            array![[2.0f32, 3.0]]
        );
        let bad = array![[1.0f32, -1.0]];
        assert!(FeatureMap::Hellinger.transform(bad.view()).is_err());
    }

    #[test]
    fn parsing() {
        assert_eq!("none".parse::<FeatureMap>().unwrap(), FeatureMap::None);
        assert_eq!(
            "chi2".parse::<FeatureMap>().unwrap(),
            FeatureMap::AdditiveChi2 {
                steps: 2,
                interval: 0.5
            }
        );
        assert!("chi2:5".parse::<FeatureMap>().is_err());
        assert!("rbf".parse::<FeatureMap>().is_err());
        let m: FeatureMap = "chi2:3:0.4".parse().unwrap();
        assert_eq!(m.to_string().parse::<FeatureMap>().unwrap(), m);
    }
}

/// An error naming the row of the first entry of `x` that `ok` rejects: `stage` needs `need`
/// features.
fn check_features(
    x: ArrayView2<'_, f32>,
    stage: &str,
    need: &str,
    ok: impl Fn(f32) -> bool,
) -> Result<()> {
    match x.iter().enumerate().find(|(_, v)| !ok(**v)) {
        Some((i, v)) => Err(Error::InvalidParameter {
            name: "features",
            reason: format!(
                "{stage} needs {need} features (row {})",
                i / x.ncols().max(1)
            ),
            got: v.to_string(),
        }),
        None => Ok(()),
    }
}

/// scikit-learn's `gamma = "scale"` for an RBF kernel on the rows of `x`: `1 / (d * var(x))`,
/// the variance taken over all entries (1 when the entries are constant).
pub fn scale_gamma(x: ArrayView2<'_, f32>) -> f64 {
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    if var > 0.0 {
        1.0 / (x.ncols().max(1) as f64 * var)
    } else {
        1.0
    }
}

/// The RBF width to use: `gamma` when set, else `scale` times [`scale_gamma`] of `x`.
fn resolve_gamma(gamma: Option<f64>, scale: f64, x: ArrayView2<'_, f32>) -> f64 {
    gamma.unwrap_or_else(|| scale * scale_gamma(x))
}

/// Check an RBF width and its multiplier of the "scale" heuristic for the stage `name`.
fn validate_gamma(name: &'static str, gamma: Option<f64>, scale: f64) -> Result<()> {
    if let Some(g) = gamma {
        if !(g.is_finite() && g > 0.0) {
            return Err(Error::param(name, "gamma must be > 0", g));
        }
        if scale != 1.0 {
            return Err(Error::param(
                name,
                "give gamma either as a value or as a multiple of \"scale\", not both",
                scale,
            ));
        }
    }
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::param(
            name,
            "gamma's multiple of \"scale\" must be > 0",
            scale,
        ));
    }
    Ok(())
}

/// Parse an RBF width as the CLI and specs take it: `scale` (scikit-learn's heuristic),
/// `scale*K` (K times it) or a positive number. Returns `(gamma, multiple of scale)` as
/// [`RffParams`] and [`NystroemParams`] hold them.
pub fn parse_gamma(s: &str) -> Result<(Option<f64>, f64)> {
    let bad = || Error::param("gamma", "scale, scale*K or a number > 0", s);
    let t = s.trim().to_ascii_lowercase();
    let (gamma, scale) = if t == "scale" {
        (None, 1.0)
    } else if let Some(k) = t.strip_prefix("scale*") {
        (None, k.trim().parse::<f64>().map_err(|_| bad())?)
    } else {
        (Some(t.parse::<f64>().map_err(|_| bad())?), 1.0)
    };
    validate_gamma("gamma", gamma, scale)?;
    Ok((gamma, scale))
}

fn one() -> f64 {
    1.0
}

/// Random Fourier features (Rahimi & Recht, 2007) approximating the RBF kernel
/// `exp(-gamma |x - y|^2)`: `z(x) = sqrt(2 / D) cos(x W + b)` with `W ~ N(0, 2 gamma)` and
/// `b ~ U[0, 2 pi)`. Applied after PCA (dense, low-dimensional input), so a linear SVM on `z`
/// approaches an RBF-kernel SVM at linear cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RffParams {
    /// Output dimension D.
    pub dim: usize,
    /// Kernel width; `None` = `gamma_scale` times scikit-learn's "scale": `1 / (d * var(X))`
    /// on the training set.
    pub gamma: Option<f64>,
    /// Multiple of "scale" used when `gamma` is `None` (1: scikit-learn's default).
    #[serde(default = "one")]
    pub gamma_scale: f64,
    /// Seed of W and b.
    pub seed: u64,
}

impl Default for RffParams {
    fn default() -> Self {
        RffParams {
            dim: 4096,
            gamma: None,
            gamma_scale: 1.0,
            seed: 0,
        }
    }
}

/// A fitted random Fourier map.
#[derive(Debug, Clone, PartialEq)]
pub struct Rff {
    /// `d_in x D` projection.
    pub weights: Array2<f32>,
    /// `D` phases.
    pub offsets: ndarray::Array1<f32>,
    /// The kernel width used.
    pub gamma: f64,
}

impl RffParams {
    /// Check the parameters.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > 1 << 20 {
            return Err(Error::param(
                "rff",
                "dimension must be in 1..=1048576",
                self.dim,
            ));
        }
        validate_gamma("rff", self.gamma, self.gamma_scale)?;
        Ok(())
    }

    /// Draw the map for inputs like the rows of `x`.
    pub fn fit(&self, x: ArrayView2<'_, f32>) -> Result<Rff> {
        use rand::{Rng, SeedableRng};
        use rand_distr::{Distribution, StandardNormal};
        self.validate()?;
        let d = x.ncols();
        let gamma = resolve_gamma(self.gamma, self.gamma_scale, x);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        let sd = (2.0 * gamma).sqrt();
        let weights = Array2::from_shape_fn((d, self.dim), |_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            (z * sd) as f32
        });
        let offsets = ndarray::Array1::from_shape_fn(self.dim, |_| {
            rng.gen_range(0.0..2.0 * std::f64::consts::PI) as f32
        });
        Ok(Rff {
            weights,
            offsets,
            gamma,
        })
    }
}

impl Rff {
    /// Map every row of `x`.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if x.ncols() != self.weights.nrows() {
            return Err(Error::ShapeMismatch {
                what: "features for the random Fourier map".into(),
                expected: format!("{} columns", self.weights.nrows()),
                got: format!("{} columns", x.ncols()),
            });
        }
        let dim = self.weights.ncols();
        let scale = (2.0 / dim as f64).sqrt() as f32;
        let mut out = Array2::<f32>::zeros((x.nrows(), dim));
        out.axis_chunks_iter_mut(Axis(0), 512)
            .into_par_iter()
            .zip(x.axis_chunks_iter(Axis(0), 512).into_par_iter())
            .for_each(|(mut o, xb)| {
                o.assign(&xb.dot(&self.weights));
                for mut row in o.axis_iter_mut(Axis(0)) {
                    for (v, &b) in row.iter_mut().zip(&self.offsets) {
                        *v = scale * (*v + b).cos();
                    }
                }
            });
        Ok(out)
    }
}

#[cfg(test)]
mod rff_tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn gamma_specs_parse() {
        assert_eq!(parse_gamma("scale").unwrap(), (None, 1.0));
        assert_eq!(parse_gamma("Scale*2").unwrap(), (None, 2.0));
        assert_eq!(parse_gamma("scale*0.5").unwrap(), (None, 0.5));
        assert_eq!(parse_gamma("0.04").unwrap(), (Some(0.04), 1.0));
        for bad in [
            "", "scale*", "scale*0", "scale*-1", "-0.1", "0", "nan", "inf", "x2",
        ] {
            assert!(parse_gamma(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rff_approximates_rbf() {
        let x = array![[0.1f32, 0.5, -0.2], [0.2, 0.4, 0.1], [1.0, -0.6, 0.2]];
        let p = RffParams {
            dim: 20000,
            gamma: Some(0.5),
            seed: 3,
            ..Default::default()
        };
        let m = p.fit(x.view()).unwrap();
        let z = m.transform(x.view()).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let d2: f64 = x
                    .row(i)
                    .iter()
                    .zip(x.row(j))
                    .map(|(&a, &b)| ((a - b) as f64).powi(2))
                    .sum();
                let exact = (-0.5 * d2).exp();
                let approx: f64 = z
                    .row(i)
                    .iter()
                    .zip(z.row(j))
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum();
                assert!((exact - approx).abs() < 0.03, "{exact} {approx}");
            }
        }
        assert!(m.transform(x.slice(ndarray::s![.., ..2])).is_err());
        let half = RffParams {
            gamma: None,
            gamma_scale: 0.5,
            ..p
        };
        assert_eq!(
            half.fit(x.view()).unwrap().gamma,
            0.5 * scale_gamma(x.view())
        );
        assert!(RffParams {
            dim: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}

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
            landmarks,
            projection: Some(projection),
            gamma,
        })
    }
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
        if x.ncols() != self.landmarks.ncols() {
            return Err(Error::ShapeMismatch {
                what: "features for the Nystroem map".into(),
                expected: format!("{} columns", self.landmarks.ncols()),
                got: format!("{} columns", x.ncols()),
            });
        }
        let m = self.dim();
        let lsq: Vec<f32> = self
            .landmarks
            .rows()
            .into_iter()
            .map(|r| r.dot(&r))
            .collect();
        let g = self.gamma as f32;
        let kernel = |xb: ArrayView2<'_, f32>, k: &mut ndarray::ArrayViewMut2<'_, f32>| {
            matmul(xb, self.landmarks.t(), k);
            for (mut row, xr) in k.axis_iter_mut(Axis(0)).zip(xb.rows()) {
                let xsq = xr.dot(&xr);
                for (v, &l) in row.iter_mut().zip(&lsq) {
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

#[cfg(test)]
mod nystroem_tests {
    use super::*;
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
        let p = NystroemParams {
            dim: 120,
            gamma: Some(0.3),
            seed: 7,
            kmeans_iters: 0,
            ..Default::default()
        };
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
        let p = NystroemParams {
            dim: 12,
            gamma: Some(0.5),
            seed: 4,
            kmeans_iters: 0,
            ..Default::default()
        };
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
        let p = NystroemParams {
            dim: 100,
            gamma: None,
            seed: 1,
            kmeans_iters: 0,
            ..Default::default()
        };
        let m = p.fit(x.view()).unwrap();
        let z = m.transform(x.view()).unwrap();
        assert!(z.iter().all(|v| v.is_finite()));
        assert!((m.gamma - scale_gamma(x.view())).abs() < 1e-12);
        // Same seed, same map; other seed, other landmarks.
        assert_eq!(p.fit(x.view()).unwrap(), m);
        let small = data(30, 3, 4);
        let q = NystroemParams {
            dim: 10,
            gamma: Some(1.0),
            seed: 2,
            kmeans_iters: 0,
            ..Default::default()
        };
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

// ---------------------------------------------------------------- pipeline stages

use crate::model::container::ModelError;
use crate::model::container::{TensorReader, TensorWriter};
use crate::stage::{fit_then_transform, Flow, Shape, Stage, StagePlan, Stateless};

/// Nothing is learned (the configuration, validated when a model file is read, says it all).
impl Stateless for FeatureMap {}

impl Stage for FeatureMap {
    fn name(&self) -> &'static str {
        "feature_map"
    }

    fn transform<'a>(&self, x: Flow<'a>) -> Result<Flow<'a>> {
        x.map_features("feature_map", |x| FeatureMap::transform(self, x.view()))
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Ok(Shape::Features(self.output_dim(input.dim())))
    }
}

impl StagePlan for RffParams {
    type Fitted = Rff;

    fn fit<'a>(&self, x: Flow<'a>, _: &mut Vec<u32>) -> Result<(Rff, Flow<'a>)> {
        fit_then_transform(x, "rff", |x| RffParams::fit(self, x))
    }

    fn read(&self, t: &TensorReader<'_>, input: Shape, _: bool) -> Result<Rff, ModelError> {
        let d = input.features("rff")?;
        let weights = t.matrix(
            "rff.weights",
            |r, c| (r, c) == (d, self.dim),
            || format!("[{d}, {}]", self.dim),
        )?;
        Ok(Rff {
            weights,
            gamma: t.scalar64("rff.gamma")?,
            offsets: t.vector("rff.offsets", self.dim)?,
        })
    }
}

impl Stage for Rff {
    fn name(&self) -> &'static str {
        "rff"
    }

    fn transform<'a>(&self, x: Flow<'a>) -> Result<Flow<'a>> {
        x.map_features("rff", |x| Rff::transform(self, x.view()))
    }

    fn output_shape(&self, _: Shape) -> Result<Shape> {
        Ok(Shape::Features(self.offsets.len()))
    }

    fn n_params(&self) -> usize {
        self.weights.len() + self.offsets.len()
    }

    fn write(&self, t: &mut TensorWriter) {
        t.matrix("rff.weights", &self.weights);
        t.vector("rff.offsets", &self.offsets);
        t.f64("rff.gamma", &[1], [self.gamma]);
    }
}

impl StagePlan for NystroemParams {
    type Fitted = Nystroem;

    fn fit<'a>(&self, x: Flow<'a>, _: &mut Vec<u32>) -> Result<(Nystroem, Flow<'a>)> {
        fit_then_transform(x, "nystroem", |x| NystroemParams::fit(self, x))
    }

    fn read(
        &self,
        t: &TensorReader<'_>,
        input: Shape,
        folded: bool,
    ) -> Result<Nystroem, ModelError> {
        let d = input.features("nystroem")?;
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
            landmarks,
            projection,
            gamma: t.scalar64("nystroem.gamma")?,
        })
    }
}

impl Stage for Nystroem {
    fn name(&self) -> &'static str {
        "nystroem"
    }

    fn transform<'a>(&self, x: Flow<'a>) -> Result<Flow<'a>> {
        x.map_features("nystroem", |x| Nystroem::transform(self, x.view()))
    }

    fn output_shape(&self, _: Shape) -> Result<Shape> {
        Ok(Shape::Features(self.dim()))
    }

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
}
