//! The classical pipeline: images → (resize) → HOG → (feature map) → (normaliser) → (standard
//! scaler) → (PCA) → (random Fourier or Nystroem map) → linear SVM.
//!
//! A [`ClassicalModel`] is a list of fitted stages ([`stages::FittedStage`], in the order
//! [`stages`] gives once) and the SVM on top. Data flows one way; each stage is fitted on the
//! training set only and timed. What a stage is lives in [`crate::stage`]; each stage's code sits
//! beside its algorithm ([`crate::featmap`], [`crate::reduce`], or here for resize, HOG and the
//! normaliser); the model-file codec is [`codec`].

pub mod codec;
mod config;
mod onnx;
pub mod stages;

use std::borrow::Cow;
use std::time::Instant;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

pub use crate::settings::is_none;
pub use config::{default_cell, keys, DEFAULT_CELLS_ACROSS};
pub use stages::resize::parse_size;
pub use stages::{plan, ClassicalConfig, FittedStage, PlannedStage};

pub use crate::classifier::check_classes;
use crate::classifier::Classifier;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::metrics::Report;
use crate::model::container::InputSize;
use crate::stage::{Flow, Shape};
use crate::svm::LinearSvm;

/// Seconds one stage took to fit (and transform the training set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    /// The stage's name (`hog`, `pca`, ..., `svm`).
    pub name: String,
    /// Seconds.
    pub seconds: f64,
}

/// A trained classical model: everything needed to predict from a raw image.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassicalModel {
    /// The configuration it was trained with.
    pub config: ClassicalConfig,
    /// Class names, in label order.
    pub class_names: Vec<String>,
    /// Image rows the model describes (after any resize).
    pub rows: usize,
    /// Image columns the model describes (after any resize).
    pub cols: usize,
    /// Values per pixel of the images it reads (1: gray; 3: RGB, described by colour HOG).
    pub channels: usize,
    /// The fitted stages, in pipeline order.
    pub stages: Vec<FittedStage>,
    /// Trained SVM.
    pub svm: LinearSvm,
}

impl ClassicalConfig {
    /// The configuration a fit on `n` training images will use, and notes on what changed (a
    /// setting that cannot apply as given, such as more Nystroem landmarks than training rows,
    /// is brought to what the fit does; see [`Configure::fit_to`](crate::settings::Configure)).
    pub fn fitted_to(&self, n: usize) -> (ClassicalConfig, Vec<String>) {
        let mut c = self.clone();
        let rows = if self.augment_flip {
            n.saturating_mul(2)
        } else {
            n
        };
        let notes = stages::fit_to(&mut c, rows);
        (c, notes)
    }

    /// Train on `train`. Returns the model and each stage's time, the SVM's last. The model's
    /// configuration is [`ClassicalConfig::fitted_to`] the training set.
    pub fn fit(&self, train: &Dataset) -> Result<(ClassicalModel, Vec<StageTime>)> {
        let (fitted, _) = self.fitted_to(train.len());
        fitted.fit_as_is(train)
    }

    fn fit_as_is(&self, train: &Dataset) -> Result<(ClassicalModel, Vec<StageTime>)> {
        self.validate()?;
        self.svm.validate(train.class_names.len())?;
        if train.is_empty() {
            return Err(Error::param("train", "training set is empty", 0));
        }
        let input = InputSize {
            rows: train.rows,
            cols: train.cols,
            channels: train.channels,
        };
        self.check_fit(train.len(), input, train.class_names.len())?;
        let mut y = train.labels.clone();
        let mut x = Flow::Images(Cow::Borrowed(train));
        let mut stages = Vec::new();
        let mut times = Vec::new();
        let mut shape = Shape::Image {
            rows: train.rows,
            cols: train.cols,
        };
        let mut size = (train.rows, train.cols);
        for planned in plan(self) {
            let t = Instant::now();
            let (fitted, next) = planned.fit(x, &mut y)?;
            x = next;
            times.push(StageTime {
                name: fitted.stage().name().into(),
                seconds: t.elapsed().as_secs_f64(),
            });
            shape = fitted.stage().output_shape(shape)?;
            if let Shape::Image { rows, cols } = shape {
                size = (rows, cols);
            }
            stages.push(fitted);
        }
        let x = x.into_features("svm")?;
        let t = Instant::now();
        let svm = self.svm.fit(x.view(), &y, train.class_names.len())?;
        let svm_time = StageTime {
            name: "svm".into(),
            seconds: t.elapsed().as_secs_f64(),
        };
        let mut model = ClassicalModel {
            config: self.clone(),
            class_names: train.class_names.clone(),
            rows: size.0,
            cols: size.1,
            channels: train.channels,
            stages,
            svm,
        };
        let t = Instant::now();
        if model.fold_nystroem()? {
            if let Some(last) = times.last_mut() {
                last.seconds += t.elapsed().as_secs_f64();
            }
        }
        times.push(svm_time);
        Ok((model, times))
    }
}

impl ClassicalConfig {
    /// The checks a fit on `n` training images of size `input` in `classes` classes must pass, made before any work (and by `compare` for every training size before it
    /// trains anything): every stage's parameters fit the data (a PCA component count, ...), and
    /// no stage's peak memory is over the budget. Walks the plan and refuses, before any
    /// stage runs, a stage (or the SVM) whose peak memory would exceed the budget
    /// ([`crate::budget`]): what it holds as input plus what its fit allocates
    /// ([`crate::stage::Cost`]). A stage whose parameters do not fit the data is an error here
    /// too.
    pub fn check_fit(&self, n: usize, input: InputSize, classes: usize) -> Result<()> {
        use crate::budget::{bytes_of, check_memory};
        const HINT: &str = "use a smaller setting for it, fewer training images, or smaller \
                            images (--resize)";
        let InputSize {
            rows,
            cols,
            channels,
        } = input;
        let pixels = bytes_of(&[n, rows, cols, channels]);
        let held = |n: usize, shape: Shape| match shape {
            Shape::Image { .. } => bytes_of(&[n, shape.dim(), channels]),
            Shape::Features(d) => bytes_of(&[n, d, 4]),
        };
        let (mut n, mut shape) = (n, Shape::Image { rows, cols });
        for planned in plan(self) {
            let c = planned.cost(n, shape)?;
            let peak = pixels
                .saturating_add(held(n, shape))
                .saturating_add(c.bytes);
            check_memory(
                format!(
                    "the `{}` stage on {n} rows of {} values (-> {})",
                    planned.name(),
                    shape.dim(),
                    c.output.dim()
                ),
                peak,
                HINT,
            )?;
            (n, shape) = (c.rows, c.output);
        }
        let d = shape.dim();
        // The SVM: its input, the weights of one model per class, and the dual variables.
        let k = classes.max(1);
        check_memory(
            format!("the SVM on {n} rows of {d} features"),
            pixels
                .saturating_add(held(n, shape))
                .saturating_add(bytes_of(&[k, d, 4]))
                .saturating_add(bytes_of(&[n, 8])),
            HINT,
        )
    }
}

impl ClassicalModel {
    /// Fold the last stage's final linear map into the SVM weights (the Nystroem projection,
    /// [`crate::featmap::Nystroem::fold`]): the same classifier up to rounding, predicting at
    /// `O(m d)` instead of `O(m^2)` per image, with a model file that no longer holds the
    /// `m x m` matrix. [`ClassicalConfig::fit`] does this; it is public for models loaded from
    /// files written before it did. Returns whether anything was folded (nothing without a
    /// Nystroem map, or once folded).
    pub fn fold_nystroem(&mut self) -> Result<bool> {
        let Some(last) = self.stages.last_mut() else {
            return Ok(false);
        };
        match last.stage_mut().fold(self.svm.weights.view())? {
            Some(w) => {
                self.svm.weights = w;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Features as the SVM sees them, for images of the model's size (or any size, when the
    /// model resizes).
    pub fn features(&self, ds: &Dataset) -> Result<Array2<f32>> {
        crate::classifier::check_channels(ds, self.channels)?;
        let mut x = Flow::Images(Cow::Borrowed(ds));
        for s in &self.stages {
            x = s.stage().transform(x)?;
        }
        x.into_features("svm")
    }

    /// The HOG features of `ds` as the model computes them (after its resize stage, if any):
    /// the input of its ONNX graph and of [`ClassicalModel::transform_hog`].
    pub fn hog_input(&self, ds: &Dataset) -> Result<Array2<f32>> {
        crate::classifier::check_channels(ds, self.channels)?;
        let mut x = Flow::Images(Cow::Borrowed(ds));
        for s in &self.stages {
            let hog = matches!(s, FittedStage::Hog(_));
            x = s.stage().transform(x)?;
            if hog {
                break;
            }
        }
        x.into_features("hog")
    }

    /// Features as the SVM sees them, from HOG features computed with the model's HOG
    /// parameters (for example by `hogsvm extract`): every stage after HOG.
    pub fn transform_hog(&self, x: Array2<f32>) -> Result<Array2<f32>> {
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
        let after = self
            .stages
            .iter()
            .position(|s| matches!(s, FittedStage::Hog(_)))
            .map_or(0, |i| i + 1);
        let mut x = Flow::Features(x);
        for s in &self.stages[after..] {
            x = s.stage().transform(x)?;
        }
        x.into_features("svm")
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
        let s = self.svm.decision_function(self.features(ds)?.view())?;
        crate::classifier::check_finite_outputs(s.iter().copied(), s.ncols(), |i| {
            ds.sources
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("image {i}"))
        })?;
        Ok(s)
    }

    /// Dimension of the features the SVM sees.
    pub fn feature_dim(&self) -> usize {
        self.svm.weights.ncols()
    }
}

impl Classifier for ClassicalModel {
    fn kind(&self) -> &'static str {
        "classical"
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn input(&self) -> InputSize {
        InputSize {
            rows: self.rows,
            cols: self.cols,
            channels: self.channels,
        }
    }

    fn load_resize(&self) -> Option<(u32, u32)> {
        self.config.resize
    }

    fn scores(&self, ds: &Dataset) -> Result<Array2<f32>> {
        self.decision_function(ds)
    }

    fn predict(&self, ds: &Dataset) -> Result<Vec<u32>> {
        let s = self.decision_function(ds)?;
        Ok(LinearSvm::labels_from_scores(s.view(), self.svm.n_classes))
    }

    fn predict_scored(&self, ds: &Dataset) -> Result<Vec<(u32, f32)>> {
        let s = self.decision_function(ds)?;
        let labels = LinearSvm::labels_from_scores(s.view(), self.svm.n_classes);
        Ok(labels
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                let col = if self.svm.n_classes == 2 {
                    0
                } else {
                    l as usize
                };
                (l, s[[i, col]])
            })
            .collect())
    }

    fn n_params(&self) -> usize {
        self.stages
            .iter()
            .map(|s| s.stage().n_params())
            .sum::<usize>()
            + self.svm.weights.len()
            + self.svm.intercepts.len()
    }

    fn dims(&self) -> Result<Vec<(String, usize)>> {
        let mut shape = Shape::Image {
            rows: self.rows,
            cols: self.cols,
        };
        let mut dims = vec![("image".to_string(), shape.dim())];
        for s in &self.stages {
            let s = s.stage();
            shape = s.output_shape(shape)?;
            if s.shows_dim() {
                dims.push((s.name().to_string(), shape.dim()));
            }
        }
        dims.push(("svm_scores".into(), self.svm.weights.nrows()));
        Ok(dims)
    }

    fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(codec::to_bytes(self)?)
    }

    fn to_onnx(&self, opts: &crate::onnx::ExportOptions) -> Result<Vec<u8>> {
        ClassicalModel::to_onnx(self, opts)
    }

    fn onnx_input(&self, ds: &Dataset) -> Result<(&'static str, Array2<f32>)> {
        Ok(("hog", self.hog_input(ds)?))
    }
}
