//! [`ClassicalConfig`]'s defaults, HOG's and the SVM's keys, and its one string entry point,
//! [`ClassicalConfig::set`] / [`ClassicalConfig::with`], which `train`'s flags and `compare`'s
//! `--classical` specs both go through. The struct and the stages' keys come from
//! [`super::stages`].

use ndarray::Array2;

use super::stages::{self, hog::HogPlan, ClassicalConfig};
use crate::data::Dataset;
use crate::error::{param, Error, Result};
use crate::hog::{BlockNorm, HogParams};
use crate::settings::{flag, is_none, num};
use crate::svm::{ClassWeight, Loss, SvmParams};

impl Default for ClassicalConfig {
    /// The best linear configuration measured on Fashion-MNIST (docs/BENCHMARKS.md): HOG with
    /// 3x3-pixel cells, 3x3-cell blocks, L2-Hys, on the square root of the image (3,969
    /// features), no PCA, squared-hinge SVM with C = 0.1 and tolerance 0.01 — test accuracy
    /// 0.9020 on the standard split.
    fn default() -> Self {
        ClassicalConfig::from_core(
            HogParams::default()
                .cell(3, 3)
                .block(3, 3)
                .transform_sqrt(true),
            SvmParams::default().c(0.1).tol(1e-2),
        )
    }
}

/// Cells across the shorter side of an image in the default HOG: Fashion-MNIST's best
/// measured layout (3-pixel cells on 28 pixels), kept for every image size.
pub const DEFAULT_CELLS_ACROSS: f64 = 28.0 / 3.0;

impl ClassicalConfig {
    /// The default configuration for images of `rows x cols` (after any resize): the
    /// [`Default`] one, whose HOG cells are sized by one stated rule: the shorter side divided
    /// into about nine cells ([`DEFAULT_CELLS_ACROSS`]),
    /// `cell = max(3, round(min(rows, cols) * 3 / 28))`: 3 pixels at 28x28 (the measured
    /// best, unchanged), 14 at 128x128, 24 at
    /// 224x224, so the default descriptor keeps its ~4,000 features (3,969 for a square image)
    /// instead of growing with the image (72,900 at 96x96 with 3-pixel cells).
    pub fn default_for(rows: usize, cols: usize) -> ClassicalConfig {
        let mut c = ClassicalConfig::default();
        let cell = default_cell(rows, cols);
        c.hog = c.hog.cell(cell, cell);
        c
    }
}

/// The default HOG cell side for images of `rows x cols` (see
/// [`ClassicalConfig::default_for`]).
pub fn default_cell(rows: usize, cols: usize) -> usize {
    ((rows.min(cols) as f64 / DEFAULT_CELLS_ACROSS).round() as usize).max(3)
}

/// The keys of [`ClassicalConfig::set`], for error messages: HOG's, the stages' (in pipeline
/// order) and the SVM's.
pub fn keys() -> String {
    let mut keys = vec![
        "cell",
        "cell-rows",
        "cell-cols",
        "block",
        "block-rows",
        "block-cols",
        "orientations",
        "block-norm",
        "sqrt",
        "extra-cell",
    ];
    keys.extend(stages::keys());
    keys.extend(["flip", "c", "loss", "tol", "max-iter", "class-weight"]);
    format!("{} or seed", keys.join(", "))
}

/// When a key is applied by [`ClassicalConfig::with`]: keys that refine another key's stage come
/// after it, whatever order they were given in.
fn priority(key: &str) -> u8 {
    match key {
        "cell" | "block" => 0,
        "extra-cell" | "extra-cells" => 2,
        "seed" => 3,
        k if stages::refines(k) => 2,
        _ => 1,
    }
}

/// The form of a key that [`ClassicalConfig::set`] matches: lower case, `-` between words.
fn canonical(key: &str) -> String {
    key.replace('_', "-").to_ascii_lowercase()
}

impl ClassicalConfig {
    /// Set one key (`-` or `_` between words, any case) to a value, as `train`'s flags and
    /// `compare`'s specs write them. HOG's keys: `cell` (pixels per cell, both directions),
    /// `cell-rows`, `cell-cols`, `block` (cells per block), `block-rows`, `block-cols`,
    /// `orientations`, `block-norm`, `sqrt` (`true`/`false`), `extra-cell` (extra concatenated
    /// HOG descriptors, each `CELL` or `CELL/BLOCK`, joined by `+`, or `none`) and `flip` (also
    /// train on mirrored images); the SVM's: `c`, `loss`, `tol`, `max-iter`, `class-weight`
    /// (`none`, `balanced` or weights `w0+w1+...`); `seed` (of the SVM and of every stage that
    /// has one). Every other key goes to the stages, each of which documents its own on its
    /// [`Configure`](crate::settings::Configure) impl: today `resize` (`WxH` or `none`),
    /// `feature-map` (`none`, `hellinger`, `chi2[:STEPS[:L]]`), `normalize` (`l2`, `l1`, `max`
    /// or `none`), `standardize`, `pca` (count, variance fraction or `none`), `whiten`, `rff`
    /// (dimension or `none`), `nystroem` (landmarks or `none`), `kmeans` (Lloyd iterations
    /// placing the Nystroem landmarks) and `gamma` (of `rff` or `nystroem`: a number, `scale` or
    /// `scale*K`). A key that refines a stage (`whiten`, `kmeans`, `gamma`) needs the stage set
    /// first; [`ClassicalConfig::with`] takes care of the order.
    pub fn set(&mut self, key: &str, v: &str) -> Result<()> {
        let c = self;
        match canonical(key).as_str() {
            "cell" => {
                let n = num("cell", v)?;
                c.hog = c.hog.cell(n, n);
            }
            "cell-rows" => c.hog.cell_rows = num("cell", v)?,
            "cell-cols" => c.hog.cell_cols = num("cell", v)?,
            "block" => {
                let n = num("block", v)?;
                c.hog = c.hog.block(n, n);
            }
            "block-rows" => c.hog.block_rows = num("block", v)?,
            "block-cols" => c.hog.block_cols = num("block", v)?,
            "orientations" => c.hog = c.hog.orientations(num("orientations", v)?),
            "block-norm" => c.hog = c.hog.block_norm(v.parse::<BlockNorm>()?),
            "sqrt" | "transform-sqrt" => c.hog = c.hog.transform_sqrt(flag("sqrt", v)?),
            "no-transform-sqrt" => c.hog = c.hog.transform_sqrt(!flag("sqrt", v)?),
            "extra-cell" | "extra-cells" => {
                c.hog_extra = if is_none(v) {
                    Vec::new()
                } else {
                    v.split(['+', ',', ':'])
                        .filter(|s| !is_none(s))
                        .map(|s| c.hog.extra_scale(s))
                        .collect::<Result<_>>()?
                }
            }
            "flip" => c.augment_flip = flag("flip", v)?,
            "c" => c.svm.c = num("c", v)?,
            "loss" => c.svm.loss = v.parse::<Loss>()?,
            "tol" => c.svm.tol = num("tol", v)?,
            "max-iter" => c.svm.max_iter = num("max_iter", v)?,
            "class-weight" => {
                c.svm.class_weight = match v {
                    "none" => ClassWeight::None,
                    "balanced" => ClassWeight::Balanced,
                    list => ClassWeight::Explicit(
                        list.split(['+', ',', ':'])
                            .map(|w| num::<f64>("class_weight", w))
                            .collect::<Result<_>>()?,
                    ),
                }
            }
            "seed" => {
                c.svm.seed = num("seed", v)?;
                // Every stage that has a seed takes it too.
                stages::set_key(c, "seed", v)?;
            }
            stage_key => {
                if !stages::set_key(c, stage_key, v)? {
                    return Err(Error::param(
                        "classical",
                        format!("unknown key (expected {})", keys()),
                        key,
                    ));
                }
            }
        }
        Ok(())
    }

    /// This configuration with every `(key, value)` set (see [`ClassicalConfig::set`]), in an
    /// order that does not depend on the order given: the main HOG cell and block first,
    /// then the stages, then what refines them (extra HOG descriptors, whitening, k-means,
    /// gamma), the seed last; keys of the same rank in the order given. The result is
    /// validated.
    pub fn with<K: AsRef<str>, V: AsRef<str>>(mut self, settings: &[(K, V)]) -> Result<Self> {
        let mut ordered: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        ordered.sort_by_key(|(k, _)| priority(&canonical(k)));
        for (k, v) in ordered {
            self.set(k, v)?;
        }
        self.validate()?;
        param("c", self.svm.c).positive("must be a positive number")?;
        Ok(self)
    }

    /// Validate every stage's parameters.
    pub fn validate(&self) -> Result<()> {
        self.hog.validate()?;
        for h in &self.hog_extra {
            h.validate()?;
        }
        stages::validate(self)?;
        if self.nystroem.is_some() && self.rff.is_some() {
            return Err(Error::param(
                "nystroem",
                "choose one kernel approximation: random Fourier features or Nystroem",
                "both",
            ));
        }
        Ok(())
    }

    /// Every HOG descriptor of the configuration for every image, concatenated.
    pub fn hog_features(&self, ds: &Dataset) -> Result<Array2<f32>> {
        HogPlan::of(self).features(ds)
    }

    /// Length of the concatenated HOG descriptor for images of `rows x cols`.
    pub fn hog_len(&self, rows: usize, cols: usize) -> Result<usize> {
        HogPlan::of(self).len(rows, cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unknown-key message lists HOG's keys, each stage's in pipeline order (a key two
    /// stages share, `gamma`, once) and the SVM's: the text it had when the list was written by
    /// hand.
    #[test]
    fn keys_list_every_stage_in_order() {
        assert_eq!(
            keys(),
            "cell, cell-rows, cell-cols, block, block-rows, block-cols, orientations, block-norm, \
             sqrt, extra-cell, resize, feature-map, normalize, standardize, pca, whiten, \
             pca-iterations, rff, nystroem, kmeans, gamma, flip, c, loss, tol, max-iter, class-weight or seed"
        );
        let e = ClassicalConfig::default().set("bogus", "1").unwrap_err();
        assert!(e.to_string().contains(&keys()), "{e}");
    }

    /// `with` applies settings in an order of its own: a refining key given before its stage,
    /// or the main cell after an extra descriptor, gives the same configuration; an alias ranks
    /// like its key.
    #[test]
    fn with_is_independent_of_the_order_given() {
        let a = [
            ("pca", "32"),
            ("nystroem", "64"),
            ("kmeans-iters", "2"),
            ("gamma", "scale*2"),
            ("cell", "4"),
            ("extra-cell", "7"),
            ("seed", "3"),
        ];
        let mut b = a;
        b.reverse();
        let (x, y) = (
            ClassicalConfig::default().with(&a).unwrap(),
            ClassicalConfig::default().with(&b).unwrap(),
        );
        assert_eq!(x, y);
        let n = x.nystroem.unwrap();
        assert_eq!(
            (n.dim, n.kmeans_iters, n.gamma_scale, n.seed),
            (64, 2, 2.0, 3)
        );
        assert_eq!(x.hog_extra[0].block_rows, x.hog.block_rows);
        assert_eq!((x.hog.cell_rows, x.hog_extra[0].cell_rows), (4, 7));
        assert_eq!(x.pca.unwrap().seed, 3);
        // Alone, a refining key still needs its stage.
        let e = ClassicalConfig::default()
            .with(&[("gamma", "1")])
            .unwrap_err();
        assert!(e.to_string().contains("needs rff or nystroem"), "{e}");
        let off = ClassicalConfig::default()
            .with(&[("no-transform-sqrt", "true")])
            .unwrap();
        assert!(!off.hog.transform_sqrt);
    }

    /// `pca-iterations` refines `pca` in either order, needs it, and is bounded.
    #[test]
    fn pca_iterations_refine_pca() {
        let c = ClassicalConfig::default()
            .with(&[("pca-iterations", "4"), ("pca", "16")])
            .unwrap();
        assert_eq!(c.pca.unwrap().power_iterations, 4);
        let e = ClassicalConfig::default()
            .with(&[("pca", "none"), ("pca-iterations", "4")])
            .unwrap_err();
        assert!(e.to_string().contains("needs"), "{e}");
        for bad in ["101", "-1", "x"] {
            let e = ClassicalConfig::default()
                .with(&[("pca", "16"), ("pca-iterations", bad)])
                .unwrap_err();
            assert!(e.to_string().contains("pca-iterations"), "{bad}: {e}");
        }
    }
}
