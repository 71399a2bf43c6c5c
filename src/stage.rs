//! What a stage of the classical pipeline is: [`StagePlan`] (the configured, unfitted stage) and
//! [`Stage`] (the fitted one), with [`Flow`], the data passed from stage to stage. Stages from
//! features to features (all but resize and HOG) implement the narrower [`FeaturePlan`] and
//! [`FeatureStage`] (or [`Stateless`]), from which the two follow.
//!
//! Every stage (resize, HOG, feature map, normalizer, scaler, PCA, random Fourier features,
//! Nystroem) implements these two traits beside its own code; `pipeline::registry` lists them
//! once, in pipeline order, and everything that walks the pipeline — fitting, transforming, the
//! model file, the report's sizes and times — is one loop over that list.

use std::borrow::Cow;

use ndarray::{Array2, ArrayView2};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::container::ModelError;
use crate::model::container::{TensorReader, TensorWriter};
use crate::onnx::Graph;

/// The data between two stages: images (before HOG) or one feature row per image.
#[derive(Debug)]
pub enum Flow<'a> {
    /// Images, not yet described.
    Images(Cow<'a, Dataset>),
    /// `n x d` features.
    Features(Array2<f32>),
}

impl<'a> Flow<'a> {
    /// The features; an error naming `stage` when the data are still images.
    pub fn into_features(self, stage: &str) -> Result<Array2<f32>> {
        match self {
            Flow::Features(x) => Ok(x),
            Flow::Images(_) => Err(still_images(stage)),
        }
    }

    /// The images; an error naming `stage` when they have already been described.
    pub fn into_images(self, stage: &str) -> Result<Cow<'a, Dataset>> {
        match self {
            Flow::Images(ds) => Ok(ds),
            Flow::Features(_) => Err(Error::param(
                "pipeline",
                format!("stage `{stage}` needs images, but the data are already features"),
                stage,
            )),
        }
    }
}

/// The error of a feature stage placed before HOG.
fn still_images(stage: &str) -> Error {
    Error::param(
        "pipeline",
        format!("stage `{stage}` needs features, but the data are still images"),
        stage,
    )
}

/// The shape of one image's data between two stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An image of `rows x cols` pixels.
    Image {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// A feature vector of this length.
    Features(usize),
}

impl Shape {
    /// Values per image.
    pub fn dim(self) -> usize {
        match self {
            Shape::Image { rows, cols } => rows * cols,
            Shape::Features(d) => d,
        }
    }

    /// The feature length; an error naming `stage` for an image.
    pub fn features(self, stage: &str) -> std::result::Result<usize, ModelError> {
        match self {
            Shape::Features(d) => Ok(d),
            Shape::Image { .. } => Err(ModelError::invalid(format!(
                "model config: stage `{stage}` needs features, but the data are still images"
            ))),
        }
    }
}

/// What every fitted stage has, whatever it maps: what it learned (its parameter count and
/// tensors), whether its last linear map folds into the SVM, how the report shows it, and how it
/// is written as ONNX. Every method but [`Learned::to_onnx`] has a default: a stage that learns
/// nothing implements the others empty.
pub trait Learned {
    /// Write the fitted stage as ONNX nodes in `g`, reading `x` (one float32 feature row per
    /// image) and returning the name of the output, with the same arithmetic as the stage's
    /// Rust code; `None` for a stage before the graph's input (the graph starts at HOG's
    /// features, so resize and HOG write nothing). An error, made with
    /// [`crate::onnx::unsupported`], for a stage the graph cannot write exactly.
    fn to_onnx(&self, g: &mut Graph, x: &str) -> Result<Option<String>>;

    /// Learned parameters (values in the model file).
    fn n_params(&self) -> usize {
        0
    }

    /// Write the stage's tensors (named `<stage>.<tensor>`).
    fn write(&self, _tensors: &mut TensorWriter) {}

    /// For the last stage before the SVM: fold the stage's final linear map into the SVM's
    /// `weights` (`models x d`), returning the new weights, when the stage can (the Nystroem
    /// projection); `None` when there is nothing to fold.
    fn fold(&mut self, _weights: ArrayView2<'_, f32>) -> Result<Option<Array2<f32>>> {
        Ok(None)
    }

    /// Whether the stage's final linear map has been folded into the SVM (see
    /// [`Learned::fold`]).
    fn folded(&self) -> bool {
        false
    }

    /// Whether the report lists the stage's output dimension (not for stages that keep it and
    /// are not the point of the pipeline, such as the scaler).
    fn shows_dim(&self) -> bool {
        true
    }
}

/// A fitted stage.
pub trait Stage: Learned {
    /// Name in timings, reports and errors (`hog`, `pca`, ...).
    fn name(&self) -> &'static str;

    /// Apply the stage.
    fn transform<'a>(&self, x: Flow<'a>) -> Result<Flow<'a>>;

    /// Shape of the output for an input of shape `input`.
    fn output_shape(&self, input: Shape) -> Result<Shape>;
}

/// What fitting a stage will take, known before it runs: [`ClassicalConfig::fit`] walks the
/// plan with it and checks every stage against the memory budget before any stage runs, so a
/// valid setting too large for the machine is an error up front, not an allocation failure
/// after minutes of work.
///
/// [`ClassicalConfig::fit`]: crate::pipeline::ClassicalConfig::fit
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Rows after the stage (the HOG stage doubles them when training on mirrored images too).
    pub rows: usize,
    /// Shape of each row after the stage (for a stage whose output size depends on the fit,
    /// the largest it can be).
    pub output: Shape,
    /// Bytes the fit allocates at its peak beyond its input: its output, its parameters, its
    /// work matrices.
    pub bytes: u64,
}

/// A configured stage, before fitting.
pub trait StagePlan {
    /// The fitted stage.
    type Fitted: Stage;

    /// Name in errors and timings (the fitted stage's).
    const NAME: &'static str;

    /// What fitting on `n` rows of shape `input` will take.
    fn cost(&self, n: usize, input: Shape) -> Result<Cost>;

    /// Fit on the training data `x` (labels `y`, which a stage that adds training examples
    /// extends) and return the fitted stage and the transformed data.
    fn fit<'a>(&self, x: Flow<'a>, y: &mut Vec<u32>) -> Result<(Self::Fitted, Flow<'a>)>;

    /// Read the fitted stage from a model file, for inputs of shape `input`. `folded`: the file
    /// says the last stage's linear map was folded into the SVM.
    fn read(
        &self,
        tensors: &TensorReader<'_>,
        input: Shape,
        folded: bool,
    ) -> std::result::Result<Self::Fitted, ModelError>;
}

/// A fitted stage from features to features (every stage after HOG); [`Stage`] follows from it.
pub trait FeatureStage: Learned {
    /// Name in timings, reports and errors (see [`Stage::name`]).
    const NAME: &'static str;

    /// Map `n x d` features.
    fn apply(&self, x: Array2<f32>) -> Result<Array2<f32>>;

    /// Output length for inputs of length `d`.
    fn out_dim(&self, d: usize) -> usize;
}

impl<T: FeatureStage> Stage for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn transform<'a>(&self, x: Flow<'a>) -> Result<Flow<'a>> {
        Ok(Flow::Features(self.apply(x.into_features(T::NAME)?)?))
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Ok(Shape::Features(self.out_dim(input.dim())))
    }
}

/// A configured feature stage; [`StagePlan`] follows from it (fit on the training features, then
/// transform them).
pub trait FeaturePlan {
    /// The fitted stage.
    type Fitted: FeatureStage;

    /// Output length for `n` inputs of length `d`, before fitting (the largest it can be).
    fn planned_dim(&self, n: usize, d: usize) -> usize;

    /// Whether the stage's parameters fit `n` inputs of length `d` (a PCA component count
    /// above both), checked before any stage runs; the fit makes the same check.
    fn check_fit(&self, _n: usize, _d: usize) -> Result<()> {
        Ok(())
    }

    /// Bytes fitting on `n x d` features allocates at its peak beyond the input; by default its
    /// `n x planned_dim` f32 output.
    fn fit_bytes(&self, n: usize, d: usize) -> u64 {
        crate::budget::bytes_of(&[n, self.planned_dim(n, d), 4])
    }

    /// Fit on `n x d` training features.
    fn fit_features(&self, x: ArrayView2<'_, f32>) -> Result<Self::Fitted>;

    /// Read the fitted stage from a model file, for inputs of length `d` (`folded`: see
    /// [`StagePlan::read`]).
    fn read_features(
        &self,
        tensors: &TensorReader<'_>,
        d: usize,
        folded: bool,
    ) -> std::result::Result<Self::Fitted, ModelError>;
}

impl<T: FeaturePlan> StagePlan for T {
    type Fitted = T::Fitted;
    const NAME: &'static str = <T::Fitted as FeatureStage>::NAME;

    fn cost(&self, n: usize, input: Shape) -> Result<Cost> {
        let d = match input {
            Shape::Features(d) => d,
            Shape::Image { .. } => return Err(still_images(Self::NAME)),
        };
        self.check_fit(n, d)?;
        Ok(Cost {
            rows: n,
            output: Shape::Features(self.planned_dim(n, d)),
            bytes: self.fit_bytes(n, d),
        })
    }

    fn fit<'a>(&self, x: Flow<'a>, _: &mut Vec<u32>) -> Result<(T::Fitted, Flow<'a>)> {
        let x = x.into_features(<T::Fitted as FeatureStage>::NAME)?;
        let fitted = self.fit_features(x.view())?;
        let y = fitted.apply(x)?;
        Ok((fitted, Flow::Features(y)))
    }

    fn read(
        &self,
        tensors: &TensorReader<'_>,
        input: Shape,
        folded: bool,
    ) -> std::result::Result<T::Fitted, ModelError> {
        let d = input.features(<T::Fitted as FeatureStage>::NAME)?;
        self.read_features(tensors, d, folded)
    }
}

/// A feature stage that learns nothing (the feature map, the normaliser): it is its own plan,
/// and the model file holds no tensor of it (its configuration says it all).
pub trait Stateless: FeatureStage + Copy {}

impl<T: Stateless> FeaturePlan for T {
    type Fitted = T;

    fn planned_dim(&self, _: usize, d: usize) -> usize {
        self.out_dim(d)
    }

    fn fit_features(&self, _: ArrayView2<'_, f32>) -> Result<T> {
        Ok(*self)
    }

    fn read_features(
        &self,
        _: &TensorReader<'_>,
        _: usize,
        _: bool,
    ) -> std::result::Result<T, ModelError> {
        Ok(*self)
    }
}
