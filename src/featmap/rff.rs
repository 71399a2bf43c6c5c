//! Random Fourier features (see the [module documentation](super)).

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{check_cols, Error, Result};
use crate::model::container::{ModelError, TensorReader, TensorWriter};
use crate::onnx::Graph;
use crate::settings::{Configure, Setting};
use crate::stage::{FeaturePlan, FeatureStage, Learned};

use super::{one, resolve_gamma, set_kernel_key, validate_gamma};

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
        check_cols("random Fourier map", self.weights.nrows(), x.ncols())?;
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

// ---------------------------------------------------------------- pipeline stage

/// `rff` (dimension or `none`); `gamma` and `seed` refine it.
impl Configure for RffParams {
    type Slot = Option<RffParams>;
    const KEYS: &'static [&'static str] = &["rff", "gamma"];
    const REFINES: &'static [&'static str] = &["gamma"];

    fn set(slot: &mut Self::Slot, key: &str, v: &str) -> Result<Setting> {
        set_kernel_key(slot, "rff", key, v, |r| {
            (&mut r.dim, &mut r.gamma, &mut r.gamma_scale, &mut r.seed)
        })
    }

    fn plan(slot: &Self::Slot) -> Option<Self> {
        *slot
    }

    fn validate(slot: &Self::Slot) -> Result<()> {
        slot.as_ref().map_or(Ok(()), RffParams::validate)
    }
}

impl FeaturePlan for RffParams {
    type Fitted = Rff;

    fn planned_dim(&self, _: usize, _: usize) -> usize {
        self.dim
    }

    /// The `d x dim` weights and the `n x dim` output.
    fn fit_bytes(&self, n: usize, d: usize) -> u64 {
        crate::budget::bytes_of(&[d.saturating_add(n), self.dim, 4])
    }

    fn fit_features(&self, x: ArrayView2<'_, f32>) -> Result<Rff> {
        RffParams::fit(self, x)
    }

    fn read_features(&self, t: &TensorReader<'_>, d: usize, _: bool) -> Result<Rff, ModelError> {
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

impl FeatureStage for Rff {
    const NAME: &'static str = "rff";

    fn apply(&self, x: Array2<f32>) -> Result<Array2<f32>> {
        Rff::transform(self, x.view())
    }

    fn out_dim(&self, _: usize) -> usize {
        self.offsets.len()
    }
}

impl Learned for Rff {
    fn n_params(&self) -> usize {
        self.weights.len() + self.offsets.len()
    }

    fn write(&self, t: &mut TensorWriter) {
        t.matrix("rff.weights", &self.weights);
        t.vector("rff.offsets", &self.offsets);
        t.f64("rff.gamma", &[1], [self.gamma]);
    }

    /// `sqrt(2 / D) cos(x W + b)`.
    fn to_onnx(&self, g: &mut Graph, x: &str) -> Result<Option<String>> {
        let (d, dim) = self.weights.dim();
        let w = g.constant_f32(
            "weights",
            &[d, dim],
            self.weights
                .as_standard_layout()
                .as_slice()
                .expect("standard"),
        );
        let b = g.constant_f32(
            "offsets",
            &[dim],
            self.offsets.as_slice().expect("contiguous"),
        );
        let p = g.node("MatMul", &[x, &w], Vec::new());
        let p = g.node("Add", &[&p, &b], Vec::new());
        let c = g.node("Cos", &[&p], Vec::new());
        let scale = g.scalar("scale", (2.0 / dim as f64).sqrt() as f32);
        Ok(Some(g.node("Mul", &[&scale, &c], Vec::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::featmap::*;
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
                let approx = crate::featmap::row_dot(&z, i, j);
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
