//! What a stage of the classical pipeline is: [`StagePlan`] (the configured, unfitted stage) and
//! [`Stage`] (the fitted one), with [`Flow`], the data passed from stage to stage.
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
            Flow::Images(_) => Err(Error::param(
                "pipeline",
                format!("stage `{stage}` needs features, but the data are still images"),
                stage,
            )),
        }
    }

    /// Apply `f` to the features; an error naming `stage` when the data are still images.
    pub fn map_features(
        self,
        stage: &str,
        f: impl FnOnce(Array2<f32>) -> Result<Array2<f32>>,
    ) -> Result<Flow<'a>> {
        Ok(Flow::Features(f(self.into_features(stage)?)?))
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

/// A fitted stage.
pub trait Stage {
    /// Name in timings, reports and errors (`hog`, `pca`, ...).
    fn name(&self) -> &'static str;

    /// Apply the stage.
    fn transform<'a>(&self, x: Flow<'a>) -> Result<Flow<'a>>;

    /// Shape of the output for an input of shape `input`.
    fn output_shape(&self, input: Shape) -> Result<Shape>;

    /// Learned parameters (values in the model file).
    fn n_params(&self) -> usize {
        0
    }

    /// Whether the report lists the stage's output dimension (not for stages that keep it and
    /// are not the point of the pipeline, such as the scaler).
    fn shows_dim(&self) -> bool {
        true
    }

    /// Write the stage's tensors (named `<stage>.<tensor>`).
    fn write(&self, _tensors: &mut TensorWriter) {}

    /// For the last stage before the SVM: fold the stage's final linear map into the SVM's
    /// `weights` (`models x d`), returning the new weights, when the stage can (the Nystroem
    /// projection); `None` when there is nothing to fold.
    fn fold(&mut self, _weights: ArrayView2<'_, f32>) -> Result<Option<Array2<f32>>> {
        Ok(None)
    }

    /// Whether the stage's final linear map has been folded into the SVM (see [`Stage::fold`]).
    fn folded(&self) -> bool {
        false
    }
}

/// A configured stage, before fitting.
pub trait StagePlan {
    /// The fitted stage.
    type Fitted: Stage;

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

/// A stage that learns nothing (resize, feature map, normaliser): it is its own plan, fitting it
/// is transforming, and the model file holds no tensor of it (its configuration says it all).
pub trait Stateless: Stage + Copy {}

impl<T: Stateless> StagePlan for T {
    type Fitted = T;

    fn fit<'a>(&self, x: Flow<'a>, _: &mut Vec<u32>) -> Result<(T, Flow<'a>)> {
        Ok((*self, self.transform(x)?))
    }

    fn read(&self, _: &TensorReader<'_>, _: Shape, _: bool) -> std::result::Result<T, ModelError> {
        Ok(*self)
    }
}

/// [`StagePlan::fit`] for a stage that fits on features and then transforms them.
pub fn fit_then_transform<'a, S: Stage>(
    x: Flow<'a>,
    name: &str,
    fit: impl FnOnce(ArrayView2<'_, f32>) -> Result<S>,
) -> Result<(S, Flow<'a>)> {
    let x = x.into_features(name)?;
    let fitted = fit(x.view())?;
    let y = fitted.transform(Flow::Features(x))?;
    Ok((fitted, y))
}
