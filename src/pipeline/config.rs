//! [`ClassicalConfig`]: everything that defines a classical model before training, and its one
//! string entry point, [`ClassicalConfig::set`] / [`ClassicalConfig::with`], which `train`'s
//! flags and `compare`'s `--classical` specs both go through.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::hog::HogPlan;
use super::normalize::Norm;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::featmap::{FeatureMap, NystroemParams, RffParams};
use crate::hog::{BlockNorm, HogParams};
use crate::reduce::{Components, PcaParams};
use crate::svm::{ClassWeight, Loss, SvmParams};

/// Everything that defines a classical model before training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassicalConfig {
    /// HOG parameters.
    pub hog: HogParams,
    /// More HOG descriptors of the same image (e.g. coarser cells), concatenated after the
    /// first: a multi-scale descriptor.
    #[serde(default)]
    pub hog_extra: Vec<HogParams>,
    /// Resize images to `(width, height)` before HOG.
    pub resize: Option<(u32, u32)>,
    /// Feature map applied to the HOG features.
    pub feature_map: FeatureMap,
    /// Per-sample normalisation after the feature map (scikit-learn's `Normalizer`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Norm>,
    /// Standardise features before PCA / SVM.
    pub standardize: bool,
    /// PCA, if any.
    pub pca: Option<PcaParams>,
    /// Random Fourier features (RBF kernel approximation) after PCA, if any.
    #[serde(default)]
    pub rff: Option<RffParams>,
    /// Nystroem map (RBF kernel approximation) after PCA, if any; exclusive with `rff`.
    #[serde(default)]
    pub nystroem: Option<NystroemParams>,
    /// Also train on the horizontal mirror of every training image (twice the training set):
    /// the "virtual examples" way of teaching a linear model an invariance (Decoste &
    /// Schölkopf 2002). The test set is not touched.
    #[serde(default)]
    pub augment_flip: bool,
    /// The SVM.
    pub svm: SvmParams,
}

impl Default for ClassicalConfig {
    /// The best linear configuration measured on Fashion-MNIST (docs/BENCHMARKS.md): HOG with
    /// 3x3-pixel cells, 3x3-cell blocks, L2-Hys, on the square root of the image (3,969
    /// features), no PCA, squared-hinge SVM with C = 0.1 and tolerance 0.01 — test accuracy
    /// 0.9020 on the standard split.
    fn default() -> Self {
        ClassicalConfig {
            hog: HogParams::default()
                .cell(3, 3)
                .block(3, 3)
                .transform_sqrt(true),
            hog_extra: Vec::new(),
            resize: None,
            feature_map: FeatureMap::None,
            normalize: None,
            standardize: false,
            pca: None,
            rff: None,
            nystroem: None,
            augment_flip: false,
            svm: SvmParams::default().c(0.1).tol(1e-2),
        }
    }
}

/// The keys of [`ClassicalConfig::set`], for error messages.
pub const KEYS: &str = "cell, cell-rows, cell-cols, block, block-rows, block-cols, orientations, \
    block-norm, sqrt, extra-cell, resize, feature-map, normalize, standardize, pca, whiten, rff, \
    nystroem, kmeans, gamma, flip, c, loss, tol, max-iter, class-weight or seed";

/// When a key is applied by [`ClassicalConfig::with`]: keys that refine another key's stage come
/// after it, whatever order they were given in.
fn priority(key: &str) -> u8 {
    match key {
        "cell" | "block" => 0,
        "extra-cell" | "extra-cells" | "whiten" | "kmeans" | "kmeans-iters" | "gamma" => 2,
        "seed" => 3,
        _ => 1,
    }
}

fn num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T> {
    v.trim()
        .parse()
        .map_err(|_| Error::param(key, "expected a number", v))
}

fn flag(key: &'static str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(Error::param(key, "expected true or false", v)),
    }
}

/// A count, or `None` for `none` / `off`.
fn count_or_none(key: &'static str, v: &str) -> Result<Option<usize>> {
    if is_none(v) {
        Ok(None)
    } else {
        num(key, v).map(Some)
    }
}

/// `none` or `off`: drop the stage.
pub fn is_none(v: &str) -> bool {
    v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("off")
}

/// Parse `WxH` into `(width, height)`.
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let bad = |why: &str| Error::param("resize", format!("invalid size: {why}"), s);
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| bad("expected WxH, e.g. 64x64"))?;
    let w: u32 = w.trim().parse().map_err(|_| bad("invalid width"))?;
    let h: u32 = h.trim().parse().map_err(|_| bad("invalid height"))?;
    if w == 0 || h == 0 || w > 16384 || h > 16384 {
        return Err(bad("width and height must be in 1..=16384"));
    }
    Ok((w, h))
}

impl ClassicalConfig {
    /// Set one key (`-` or `_` between words, any case) to a value, as `train`'s flags and
    /// `compare`'s specs write them: `cell` (pixels per cell, both directions), `cell-rows`,
    /// `cell-cols`, `block` (cells per block), `block-rows`, `block-cols`, `orientations`,
    /// `block-norm`, `sqrt` (`true`/`false`), `extra-cell` (extra concatenated HOG descriptors,
    /// each `CELL` or `CELL/BLOCK`, joined by `+`, or `none`), `resize` (`WxH` or `none`),
    /// `feature-map` (`none`, `hellinger`, `chi2[:STEPS[:L]]`), `normalize` (`l2`, `l1`, `max` or
    /// `none`), `standardize`, `pca` (count, variance fraction or `none`), `whiten`, `rff`
    /// (dimension or `none`), `nystroem` (landmarks or `none`), `kmeans` (Lloyd iterations
    /// placing the Nystroem landmarks), `gamma` (of `rff` or `nystroem`: a number, `scale` or
    /// `scale*K`), `flip` (also train on mirrored images), `c`, `loss`, `tol`, `max-iter`,
    /// `class-weight` (`none`, `balanced` or weights `w0+w1+...`), `seed` (of PCA, the random
    /// maps and the SVM). A key that refines a stage (`whiten`, `kmeans`, `gamma`) needs the stage
    /// set first; [`ClassicalConfig::with`] takes care of the order.
    pub fn set(&mut self, key: &str, v: &str) -> Result<()> {
        let c = self;
        match key.replace('_', "-").to_ascii_lowercase().as_str() {
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
            "resize" => {
                c.resize = if is_none(v) {
                    None
                } else {
                    Some(parse_size(v)?)
                }
            }
            "feature-map" | "map" => c.feature_map = v.parse::<FeatureMap>()?,
            "normalize" => c.normalize = if is_none(v) { None } else { Some(v.parse()?) },
            "standardize" => c.standardize = flag("standardize", v)?,
            "pca" => {
                c.pca = if is_none(v) {
                    None
                } else {
                    Some(PcaParams {
                        components: v.parse::<Components>()?,
                        ..Default::default()
                    })
                }
            }
            "whiten" => match c.pca.as_mut() {
                Some(p) => p.whiten = flag("whiten", v)?,
                None if flag("whiten", v)? => {
                    return Err(Error::param("whiten", "needs pca", "true"))
                }
                None => {}
            },
            "rff" => {
                c.rff = count_or_none("rff", v)?.map(|dim| RffParams {
                    dim,
                    ..Default::default()
                })
            }
            "nystroem" => {
                c.nystroem = count_or_none("nystroem", v)?.map(|dim| NystroemParams {
                    dim,
                    ..Default::default()
                })
            }
            "kmeans" | "kmeans-iters" => {
                let k = num::<usize>("kmeans", v)?;
                match c.nystroem.as_mut() {
                    Some(n) => n.kmeans_iters = k,
                    None => return Err(Error::param("kmeans", "needs nystroem", k)),
                }
            }
            "gamma" => {
                let (g, k) = crate::featmap::parse_gamma(v)?;
                match (c.rff.as_mut(), c.nystroem.as_mut()) {
                    (Some(r), _) => (r.gamma, r.gamma_scale) = (g, k),
                    (None, Some(n)) => (n.gamma, n.gamma_scale) = (g, k),
                    (None, None) => return Err(Error::param("gamma", "needs rff or nystroem", v)),
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
                let seed = num("seed", v)?;
                let seeds = [
                    c.pca.as_mut().map(|p| &mut p.seed),
                    c.rff.as_mut().map(|r| &mut r.seed),
                    c.nystroem.as_mut().map(|n| &mut n.seed),
                    Some(&mut c.svm.seed),
                ];
                for s in seeds.into_iter().flatten() {
                    *s = seed;
                }
            }
            _ => {
                return Err(Error::param(
                    "classical",
                    format!("unknown key (expected {KEYS})"),
                    key,
                ))
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
        ordered.sort_by_key(|(k, _)| priority(&k.replace('_', "-").to_ascii_lowercase()));
        for (k, v) in ordered {
            self.set(k, v)?;
        }
        self.validate()?;
        if !(self.svm.c.is_finite() && self.svm.c > 0.0) {
            return Err(Error::param("c", "must be a positive number", self.svm.c));
        }
        Ok(self)
    }

    /// Validate every stage's parameters.
    pub fn validate(&self) -> Result<()> {
        self.hog.validate()?;
        for h in &self.hog_extra {
            h.validate()?;
        }
        self.feature_map.validate()?;
        if let Some(r) = &self.rff {
            r.validate()?;
        }
        if let Some(n) = &self.nystroem {
            n.validate()?;
            if self.rff.is_some() {
                return Err(Error::param(
                    "nystroem",
                    "choose one kernel approximation: random Fourier features or Nystroem",
                    "both",
                ));
            }
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
}
