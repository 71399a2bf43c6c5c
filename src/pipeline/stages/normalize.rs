//! Per-sample normalisation (scikit-learn's `Normalizer`): every feature row divided by its L2
//! norm (or L1 norm, or largest absolute value); a zero row stays zero. Nothing is learned, so
//! the stage has no tensors in the model file. It sits right after the feature map: unit-length
//! HOG (or Hellinger) vectors make a linear kernel a cosine similarity.

use ndarray::{Array2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::onnx::Graph;
use crate::settings::{is_none, Configure, Setting};
use crate::stage::{FeatureStage, Learned, Stateless};

/// Which norm every row is divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Sum of absolute values.
    L1,
    /// Euclidean length.
    L2,
    /// Largest absolute value.
    Max,
}

impl std::str::FromStr for Norm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "l1" => Ok(Norm::L1),
            "l2" => Ok(Norm::L2),
            "max" => Ok(Norm::Max),
            _ => Err(Error::param("normalize", "expected l2, l1, max or none", s)),
        }
    }
}

impl Norm {
    /// The norm of one row, accumulated in f64.
    fn of(self, row: &[f32]) -> f64 {
        let it = row.iter().map(|&v| f64::from(v).abs());
        match self {
            Norm::L1 => it.sum(),
            Norm::L2 => it.map(|v| v * v).sum::<f64>().sqrt(),
            Norm::Max => it.fold(0.0, f64::max),
        }
    }
}

/// `normalize` (`l2`, `l1`, `max` or `none`).
impl Configure for Norm {
    type Slot = Option<Norm>;
    const KEYS: &'static [&'static str] = &["normalize"];

    fn set(slot: &mut Self::Slot, key: &str, v: &str) -> Result<Setting> {
        if key != "normalize" {
            return Ok(Setting::Unknown);
        }
        *slot = if is_none(v) { None } else { Some(v.parse()?) };
        Ok(Setting::Set)
    }

    fn plan(slot: &Self::Slot) -> Option<Self> {
        *slot
    }
}

impl Stateless for Norm {}

impl FeatureStage for Norm {
    const NAME: &'static str = "normalize";

    fn apply(&self, mut x: Array2<f32>) -> Result<Array2<f32>> {
        x.axis_iter_mut(Axis(0))
            .into_par_iter()
            .for_each(|mut row| {
                let row = row.as_slice_mut().expect("rows of a standard-layout array");
                let n = self.of(row);
                if n > 0.0 {
                    for v in row {
                        *v = (f64::from(*v) / n) as f32;
                    }
                }
            });
        Ok(x)
    }

    fn out_dim(&self, d: usize) -> usize {
        d
    }
}

impl Learned for Norm {
    fn shows_dim(&self) -> bool {
        false
    }

    /// Each row divided by its norm (`ReduceL1`, `ReduceL2`, or `ReduceMax` of `Abs`); a zero row
    /// divided by 1 (`Where`), so it stays zero as in hogsvm.
    fn to_onnx(&self, g: &mut Graph, x: &str) -> Result<Option<String>> {
        let norm = match self {
            Norm::L1 => g.reduce("ReduceL1", x, &[1]),
            Norm::L2 => g.reduce("ReduceL2", x, &[1]),
            Norm::Max => {
                let a = g.node("Abs", &[x], Vec::new());
                g.reduce("ReduceMax", &a, &[1])
            }
        };
        let zero = g.scalar("zero", 0.0);
        let one = g.scalar("one", 1.0);
        let nonzero = g.node("Greater", &[&norm, &zero], Vec::new());
        let div = g.node("Where", &[&nonzero, &norm, &one], Vec::new());
        Ok(Some(g.node("Div", &[x, &div], Vec::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn apply(norm: Norm, x: Array2<f32>) -> Array2<f32> {
        FeatureStage::apply(&norm, x).unwrap()
    }

    /// The values scikit-learn's `Normalizer` gives for these rows.
    #[test]
    fn rows_divided_by_their_norm() {
        let x = array![[3.0f32, -4.0], [0.0, 0.0], [1.0, 1.0]];
        let l2 = apply(Norm::L2, x.clone());
        assert_eq!(
            l2,
            array![[0.6, -0.8], [0.0, 0.0], [0.70710677, 0.70710677]]
        );
        let l1 = apply(Norm::L1, x.clone());
        assert_eq!(l1, array![[3.0 / 7.0, -4.0 / 7.0], [0.0, 0.0], [0.5, 0.5]]);
        let max = apply(Norm::Max, x);
        assert_eq!(max, array![[0.75, -1.0], [0.0, 0.0], [1.0, 1.0]]);
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!("L2".parse::<Norm>().unwrap(), Norm::L2);
        let e = "l3".parse::<Norm>().unwrap_err().to_string();
        assert!(e.contains("normalize") && e.contains("l3"), "{e}");
    }
}
