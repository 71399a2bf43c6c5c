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
        if let Some((i, v)) = x
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(Error::InvalidParameter {
                name: "features",
                reason: format!(
                    "the {self} feature map needs finite non-negative features (row {})",
                    i / x.ncols().max(1)
                ),
                got: v.to_string(),
            });
        }
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

/// Random Fourier features (Rahimi & Recht, 2007) approximating the RBF kernel
/// `exp(-gamma |x - y|^2)`: `z(x) = sqrt(2 / D) cos(x W + b)` with `W ~ N(0, 2 gamma)` and
/// `b ~ U[0, 2 pi)`. Applied after PCA (dense, low-dimensional input), so a linear SVM on `z`
/// approaches an RBF-kernel SVM at linear cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RffParams {
    /// Output dimension D.
    pub dim: usize,
    /// Kernel width; `None` = scikit-learn's "scale": `1 / (d * var(X))` on the training set.
    pub gamma: Option<f64>,
    /// Seed of W and b.
    pub seed: u64,
}

impl Default for RffParams {
    fn default() -> Self {
        RffParams {
            dim: 4096,
            gamma: None,
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
        if let Some(g) = self.gamma {
            if !(g.is_finite() && g > 0.0) {
                return Err(Error::param("rff", "gamma must be > 0", g));
            }
        }
        Ok(())
    }

    /// Draw the map for inputs like the rows of `x`.
    pub fn fit(&self, x: ArrayView2<'_, f32>) -> Result<Rff> {
        use rand::{Rng, SeedableRng};
        use rand_distr::{Distribution, StandardNormal};
        self.validate()?;
        let d = x.ncols();
        let gamma = match self.gamma {
            Some(g) => g,
            None => {
                let n = x.len().max(1) as f64;
                let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
                let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                if var > 0.0 {
                    1.0 / (d as f64 * var)
                } else {
                    1.0
                }
            }
        };
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
    fn rff_approximates_rbf() {
        let x = array![[0.1f32, 0.5, -0.2], [0.2, 0.4, 0.1], [1.0, -0.6, 0.2]];
        let p = RffParams {
            dim: 20000,
            gamma: Some(0.5),
            seed: 3,
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
        assert!(RffParams {
            dim: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
