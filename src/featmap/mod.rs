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

use crate::error::{param, Error, Result};

mod nystroem;
mod rff;

pub use nystroem::{
    Nystroem, NystroemParams, DEFAULT_KMEANS_ITERS, MAX_KMEANS_ITERS, NYSTROEM_MAX_DIM,
};
pub use rff::{Rff, RffParams};

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
            param("feature_map", interval).positive("chi2 interval must be > 0")?;
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

/// An error naming the row of the first entry of `x` that `ok` rejects: `stage` needs `need`
/// features.
pub(super) fn check_features(
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
pub(super) fn resolve_gamma(gamma: Option<f64>, scale: f64, x: ArrayView2<'_, f32>) -> f64 {
    gamma.unwrap_or_else(|| scale * scale_gamma(x))
}

/// Check an RBF width and its multiplier of the "scale" heuristic for the stage `name`.
pub(super) fn validate_gamma(name: &'static str, gamma: Option<f64>, scale: f64) -> Result<()> {
    if let Some(g) = gamma {
        param(name, g).positive("gamma must be > 0")?;
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

pub(super) fn one() -> f64 {
    1.0
}

// ---------------------------------------------------------------- pipeline stage

use crate::onnx::{attr_int, unsupported, Graph};
use crate::settings::{count_or_none, seed_of, Configure, Setting};
use crate::stage::{FeatureStage, Learned, Stateless};

/// `feature-map` (alias `map`): `none`, `hellinger` or `chi2[:STEPS[:L]]`.
impl Configure for FeatureMap {
    type Slot = FeatureMap;
    const KEYS: &'static [&'static str] = &["feature-map"];

    fn set(slot: &mut Self::Slot, key: &str, v: &str) -> Result<Setting> {
        if !matches!(key, "feature-map" | "map") {
            return Ok(Setting::Unknown);
        }
        *slot = v.parse()?;
        Ok(Setting::Set)
    }

    fn plan(slot: &Self::Slot) -> Option<Self> {
        (*slot != FeatureMap::None).then_some(*slot)
    }

    fn validate(slot: &Self::Slot) -> Result<()> {
        slot.validate()
    }
}

/// The mutable parameters both kernel approximations have: dimension, gamma, gamma's multiple
/// of "scale", seed.
pub(super) type KernelFields<P> = fn(&mut P) -> (&mut usize, &mut Option<f64>, &mut f64, &mut u64);

/// The keys both kernel approximations take (see [`Configure::set`]): `name` (the dimension, or
/// `none`), `gamma` (a number, `scale` or `scale*K`) and `seed`, which refine a configured map.
pub(super) fn set_kernel_key<P: Default>(
    slot: &mut Option<P>,
    name: &'static str,
    key: &str,
    v: &str,
    fields: KernelFields<P>,
) -> Result<Setting> {
    if key == name {
        *slot = count_or_none(name, v)?.map(|dim| {
            let mut p = P::default();
            *fields(&mut p).0 = dim;
            p
        });
        return Ok(Setting::Set);
    }
    match (key, slot.as_mut().map(fields)) {
        ("gamma", Some((_, gamma, scale, _))) => (*gamma, *scale) = parse_gamma(v)?,
        ("gamma", None) => {
            parse_gamma(v)?;
            return Ok(Setting::Needs("gamma"));
        }
        ("seed", fields) => return seed_of(fields.map(|f| f.3), v),
        _ => return Ok(Setting::Unknown),
    }
    Ok(Setting::Set)
}

/// Nothing is learned (the configuration, validated when a model file is read, says it all).
impl Stateless for FeatureMap {}

impl FeatureStage for FeatureMap {
    const NAME: &'static str = "feature_map";

    fn apply(&self, x: Array2<f32>) -> Result<Array2<f32>> {
        FeatureMap::transform(self, x.view())
    }

    fn out_dim(&self, d: usize) -> usize {
        self.output_dim(d)
    }
}

impl Learned for FeatureMap {
    /// Hellinger: `Sqrt`. Additive chi-squared (as `FeatureMap::transform`): for `v > 0`,
    /// `sqrt(v L)`, then per step `s` the pair `sqrt(v) c_s cos(s L ln v)`, `sqrt(v) c_s sin(...)`
    /// with `c_s = sqrt(2 L / cosh(pi s L))`, laid out as `[x0 | cos1 | sin1 | cos2 | sin2]`; 0
    /// where `v = 0` (`Where`).
    fn to_onnx(&self, g: &mut Graph, x: &str) -> Result<Option<String>> {
        Ok(Some(match *self {
            FeatureMap::None => x.to_string(),
            FeatureMap::Hellinger => g.node("Sqrt", &[x], Vec::new()),
            FeatureMap::AdditiveChi2 { steps, interval } => {
                if !(1..=3).contains(&steps) {
                    return Err(unsupported(
                        "feature_map",
                        format!("chi2 with {steps} steps"),
                    ));
                }
                let zero = g.scalar("zero", 0.0);
                let positive = g.node("Greater", &[x, &zero], Vec::new());
                let root = g.node("Sqrt", &[x], Vec::new());
                let c0 = g.scalar("sqrt_interval", interval.sqrt() as f32);
                let first = g.node("Mul", &[&root, &c0], Vec::new());
                let mut parts = vec![first];
                if steps > 1 {
                    let log = g.node("Log", &[x], Vec::new());
                    for s in 1..steps {
                        let sf = s as f64;
                        let c =
                            (2.0 * interval / (std::f64::consts::PI * sf * interval).cosh()).sqrt();
                        let c = g.scalar(&format!("factor{s}"), c as f32);
                        let k = g.scalar(&format!("frequency{s}"), (sf * interval) as f32);
                        let a = g.node("Mul", &[&log, &k], Vec::new());
                        let amp = g.node("Mul", &[&root, &c], Vec::new());
                        for op in ["Cos", "Sin"] {
                            let t = g.node(op, &[&a], Vec::new());
                            parts.push(g.node("Mul", &[&amp, &t], Vec::new()));
                        }
                    }
                }
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                let cat = if refs.len() == 1 {
                    parts[0].clone()
                } else {
                    g.node("Concat", &refs, vec![attr_int("axis", 1)])
                };
                let mask = if refs.len() == 1 {
                    positive
                } else {
                    let masks = vec![positive.as_str(); refs.len()];
                    g.node("Concat", &masks, vec![attr_int("axis", 1)])
                };
                g.node("Where", &[&mask, &cat, &zero], Vec::new())
            }
        }))
    }
}

/// `z_i . z_j` in f64: a feature map's estimate of the kernel between rows `i` and `j` (for the
/// maps' tests).
#[cfg(test)]
pub(crate) fn row_dot(z: &ndarray::Array2<f32>, i: usize, j: usize) -> f64 {
    z.row(i)
        .iter()
        .zip(z.row(j))
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
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
                let approx = row_dot(&z, i, j);
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
