//! The classical pipeline: HOG → (feature map) → (standard scaler) → (PCA) → (random Fourier
//! or Nystroem map) → linear SVM.
//!
//! Data flows one way; each stage is fitted on the training set only and timed. The feature
//! map comes right after HOG because the Hellinger and chi-squared maps need non-negative
//! inputs (HOG is; PCA outputs are not).

use std::time::Instant;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::featmap::{FeatureMap, Nystroem, NystroemParams, Rff, RffParams};
use crate::hog::{Hog, HogParams};
use crate::metrics::Report;
use crate::reduce::{Pca, PcaParams, StandardScaler};
use crate::svm::{LinearSvm, SvmParams};

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
            standardize: false,
            pca: None,
            rff: None,
            nystroem: None,
            augment_flip: false,
            svm: SvmParams::default().c(0.1).tol(1e-2),
        }
    }
}

/// Seconds spent in each stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    /// HOG extraction.
    pub hog: f64,
    /// Feature map.
    pub feature_map: f64,
    /// Standard scaler (fit + transform).
    pub scaler: f64,
    /// PCA (fit + transform).
    pub pca: f64,
    /// Random Fourier features (fit + transform).
    #[serde(default)]
    pub rff: f64,
    /// Nystroem map (fit + transform).
    #[serde(default)]
    pub nystroem: f64,
    /// SVM training.
    pub svm: f64,
}

impl StageTimes {
    /// Sum of all stages.
    pub fn total(&self) -> f64 {
        self.hog + self.feature_map + self.scaler + self.pca + self.rff + self.nystroem + self.svm
    }
}

/// A trained classical model: everything needed to predict from a raw image.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassicalModel {
    /// The configuration it was trained with.
    pub config: ClassicalConfig,
    /// Class names, in label order.
    pub class_names: Vec<String>,
    /// Image rows the model expects (after any resize).
    pub rows: usize,
    /// Image columns the model expects (after any resize).
    pub cols: usize,
    /// Fitted scaler.
    pub scaler: Option<StandardScaler>,
    /// Fitted PCA.
    pub pca: Option<Pca>,
    /// Fitted random Fourier map.
    pub rff: Option<Rff>,
    /// Fitted Nystroem map.
    pub nystroem: Option<Nystroem>,
    /// Trained SVM.
    pub svm: LinearSvm,
}

impl ClassicalConfig {
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
        let mut x = Hog::new(self.hog)?.compute_batch_u8(&ds.pixels, ds.rows, ds.cols)?;
        for p in &self.hog_extra {
            let more = Hog::new(*p)?.compute_batch_u8(&ds.pixels, ds.rows, ds.cols)?;
            x = ndarray::concatenate(ndarray::Axis(1), &[x.view(), more.view()])
                .expect("same number of rows");
        }
        Ok(x)
    }

    /// Length of the concatenated HOG descriptor for images of `rows x cols`.
    pub fn hog_len(&self, rows: usize, cols: usize) -> Result<usize> {
        let mut d = self.hog.feature_len(rows, cols)?;
        for p in &self.hog_extra {
            d += p.feature_len(rows, cols)?;
        }
        Ok(d)
    }

    /// Train on `train` (images already resized as `self.resize` says).
    pub fn fit(&self, train: &Dataset) -> Result<(ClassicalModel, StageTimes)> {
        self.validate()?;
        self.svm.validate(train.class_names.len())?;
        if train.is_empty() {
            return Err(Error::param("train", "training set is empty", 0));
        }
        let mut times = StageTimes::default();
        let t = Instant::now();
        let mut x = self.hog_features(train)?;
        let mirrored;
        let labels: &[u32] = if self.augment_flip {
            let flipped = self.hog_features(&train.mirrored())?;
            x = ndarray::concatenate(ndarray::Axis(0), &[x.view(), flipped.view()])
                .expect("same number of columns");
            mirrored = [&train.labels[..], &train.labels[..]].concat();
            &mirrored
        } else {
            &train.labels
        };
        times.hog = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut x = match self.feature_map {
            FeatureMap::None => x,
            m => m.transform(x.view())?,
        };
        times.feature_map = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let scaler = if self.standardize {
            let s = StandardScaler::fit(x.view())?;
            s.transform_inplace(&mut x)?;
            Some(s)
        } else {
            None
        };
        times.scaler = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let pca = match &self.pca {
            Some(p) => {
                let fitted = p.fit(x.view())?;
                x = fitted.transform(x.view())?;
                Some(fitted)
            }
            None => None,
        };
        times.pca = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let rff = match &self.rff {
            Some(r) => {
                let fitted = r.fit(x.view())?;
                x = fitted.transform(x.view())?;
                Some(fitted)
            }
            None => None,
        };
        times.rff = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let nystroem = match &self.nystroem {
            Some(n) => {
                let fitted = n.fit(x.view())?;
                x = fitted.transform(x.view())?;
                Some(fitted)
            }
            None => None,
        };
        times.nystroem = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let svm = self.svm.fit(x.view(), labels, train.class_names.len())?;
        times.svm = t.elapsed().as_secs_f64();
        let mut model = ClassicalModel {
            config: self.clone(),
            class_names: train.class_names.clone(),
            rows: train.rows,
            cols: train.cols,
            scaler,
            pca,
            rff,
            nystroem,
            svm,
        };
        let t = Instant::now();
        model.fold_nystroem()?;
        times.nystroem += t.elapsed().as_secs_f64();
        Ok((model, times))
    }
}

impl ClassicalModel {
    /// Fold the Nystroem map's projection into the SVM weights ([`Nystroem::fold`]): the same
    /// classifier up to rounding, predicting at `O(m d)` instead of `O(m^2)` per image, with
    /// a model file that no longer holds the `m x m` matrix. [`ClassicalConfig::fit`] does
    /// this; it is public for models loaded from files written before it did. Nothing to do
    /// without a Nystroem map or once folded.
    pub fn fold_nystroem(&mut self) -> Result<()> {
        if let Some(n) = self.nystroem.as_mut() {
            self.svm.weights = n.fold(self.svm.weights.view())?;
        }
        Ok(())
    }

    /// Features as the SVM sees them, for images of the model's size.
    pub fn features(&self, ds: &Dataset) -> Result<Array2<f32>> {
        if (ds.rows, ds.cols) != (self.rows, self.cols) {
            return Err(Error::ShapeMismatch {
                what: "images for this model".into(),
                expected: format!("{}x{} (rows x cols)", self.rows, self.cols),
                got: format!("{}x{}", ds.rows, ds.cols),
            });
        }
        self.transform_hog(self.config.hog_features(ds)?)
    }

    /// Features as the SVM sees them, from HOG features computed with the model's HOG
    /// parameters (for example by `hogsvm extract`): feature map, scaler, PCA, random features.
    pub fn transform_hog(&self, mut x: Array2<f32>) -> Result<Array2<f32>> {
        let d = self.config.hog_len(self.rows, self.cols)?;
        if x.ncols() != d {
            return Err(Error::ShapeMismatch {
                what: "HOG features for this model".into(),
                expected: format!(
                    "{d} columns (HOG of {}x{} images with the model's parameters)",
                    self.rows, self.cols
                ),
                got: format!("{} columns", x.ncols()),
            });
        }
        if self.config.feature_map != FeatureMap::None {
            x = self.config.feature_map.transform(x.view())?;
        }
        if let Some(s) = &self.scaler {
            s.transform_inplace(&mut x)?;
        }
        if let Some(p) = &self.pca {
            x = p.transform(x.view())?;
        }
        if let Some(r) = &self.rff {
            x = r.transform(x.view())?;
        }
        if let Some(n) = &self.nystroem {
            x = n.transform(x.view())?;
        }
        Ok(x)
    }

    /// Evaluate on precomputed HOG features (see [`ClassicalModel::transform_hog`]) and labels.
    pub fn evaluate_hog_features(&self, x: Array2<f32>, labels: &[u32]) -> Result<Report> {
        if labels.len() != x.nrows() {
            return Err(Error::ShapeMismatch {
                what: "labels for the features".into(),
                expected: format!("{} (one per row)", x.nrows()),
                got: labels.len().to_string(),
            });
        }
        let z = self.transform_hog(x)?;
        let s = self.svm.decision_function(z.view())?;
        let p = LinearSvm::labels_from_scores(s.view(), self.svm.n_classes);
        Report::new(labels, &p, &self.class_names)
    }

    /// Decision scores, `n x models`.
    pub fn decision_function(&self, ds: &Dataset) -> Result<Array2<f32>> {
        self.svm.decision_function(self.features(ds)?.view())
    }

    /// Predicted labels.
    pub fn predict(&self, ds: &Dataset) -> Result<Vec<u32>> {
        let s = self.decision_function(ds)?;
        Ok(LinearSvm::labels_from_scores(s.view(), self.svm.n_classes))
    }

    /// Evaluate on a labelled dataset whose classes are the model's.
    pub fn evaluate(&self, ds: &Dataset) -> Result<Report> {
        check_classes(&self.class_names, &ds.class_names)?;
        let p = self.predict(ds)?;
        Report::new(&ds.labels, &p, &self.class_names)
    }

    /// Dimension of the features the SVM sees.
    pub fn feature_dim(&self) -> usize {
        self.svm.weights.ncols()
    }
}

/// A test set must name the model's classes in the model's order.
pub fn check_classes(model: &[String], data: &[String]) -> Result<()> {
    if model != data {
        return Err(Error::ShapeMismatch {
            what: "class names of the data".into(),
            expected: format!("{model:?} (the model's)"),
            got: format!("{data:?}"),
        });
    }
    Ok(())
}
