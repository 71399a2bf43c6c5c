//! [`Classifier`]: what every model kind can do once trained. `eval`, `predict`, `compare` and
//! the report use models only through it, so a new model kind is one `impl Classifier` (and one
//! [`AnyModel`](crate::model::AnyModel) variant for its files).

use std::path::Path;

use ndarray::Array2;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::metrics::Report;
use crate::model::container::InputSize;
use crate::onnx::ExportOptions;

/// A trained model of any kind.
pub trait Classifier: Send + Sync {
    /// `classical` or `cnn`, as in the model file's metadata.
    fn kind(&self) -> &'static str;

    /// Class names, in label order.
    fn class_names(&self) -> &[String];

    /// Image size the model predicts on.
    fn input(&self) -> InputSize;

    /// Size (width, height) images should be brought to when they are loaded for this model, if
    /// any: a model trained on a fixed size without resizing takes only images of that size.
    fn load_resize(&self) -> Option<(u32, u32)>;

    /// One score per image and class, `n x classes` (the SVM's decision values, the CNN's softmax
    /// probabilities); a two-class SVM has one column, the score of class 1.
    fn scores(&self, ds: &Dataset) -> Result<Array2<f32>>;

    /// Predicted labels.
    fn predict(&self, ds: &Dataset) -> Result<Vec<u32>>;

    /// Predicted label of each image and its score: the SVM's decision value for that label (of
    /// its single model when there are two classes), or the CNN's softmax probability.
    fn predict_scored(&self, ds: &Dataset) -> Result<Vec<(u32, f32)>>;

    /// Evaluate on a labelled dataset whose classes are the model's.
    fn evaluate(&self, ds: &Dataset) -> Result<Report> {
        check_classes(self.class_names(), &ds.class_names)?;
        let p = self.predict(ds)?;
        Report::new(&ds.labels, &p, self.class_names())
    }

    /// Number of learned parameters.
    fn n_params(&self) -> usize;

    /// The data's dimension after each stage, from the image (`image`) to the scores.
    fn dims(&self) -> Result<Vec<(String, usize)>>;

    /// The model file's bytes.
    fn to_bytes(&self) -> Result<Vec<u8>>;

    /// Write the model file atomically.
    fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        crate::io::write_atomic(path, |w| w.write_all(&bytes))
    }

    /// The model as an ONNX file's bytes (docs/ONNX.md: its inputs, outputs and metadata); an
    /// [`Error::Export`] naming the stage or layer when it cannot be written exactly.
    fn to_onnx(&self, opts: &ExportOptions) -> Result<Vec<u8>>;

    /// The exported graph's input for `ds` (see [`Classifier::to_onnx`]): its name and one row
    /// per image (`hog`: the HOG features; `pixels`: the grey levels 0-255 as floats, row-major,
    /// to be shaped `(n, 1, rows, cols)`).
    fn onnx_input(&self, ds: &Dataset) -> Result<(&'static str, Array2<f32>)>;

    /// Write the ONNX file atomically.
    fn export_onnx(&self, path: &Path, opts: &ExportOptions) -> Result<()> {
        let bytes = self.to_onnx(opts)?;
        crate::io::write_atomic(path, |w| w.write_all(&bytes))
    }
}

/// An error unless every one of a model's outputs is finite: a NaN would otherwise become label
/// 0 with a "probability" of -3.4e38, with exit 0. `values` holds `row_len` outputs per image;
/// `name(i)` names image `i` of them.
pub fn check_finite_outputs(
    values: impl IntoIterator<Item = f32>,
    row_len: usize,
    name: impl Fn(usize) -> String,
) -> Result<()> {
    match values.into_iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::Model {
            path: None,
            source: crate::model::container::ModelError::invalid(format!(
                "the model's output for {} is not a finite number: its weights overflow on this \
                 input",
                name(i / row_len.max(1))
            )),
        }),
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

/// Images must have the model's size and colour kind.
pub fn check_input(ds: &Dataset, input: InputSize) -> Result<()> {
    check_channels(ds, input.channels)?;
    check_size(ds, input.rows, input.cols)
}

/// Images must have the model's colour kind: `channels` values per pixel. The CLI and Python
/// read or convert images to it first ([`crate::data::Dataset::with_channels`]).
pub fn check_channels(ds: &Dataset, channels: usize) -> Result<()> {
    if ds.channels != channels {
        let kind = |c: usize| crate::data::Color::of_channels(c).name();
        return Err(Error::ShapeMismatch {
            what: "images for this model".into(),
            expected: format!("{} images ({channels} value(s) per pixel)", kind(channels)),
            got: format!("{} images ({} per pixel)", kind(ds.channels), ds.channels),
        });
    }
    Ok(())
}

/// Images must have the model's size.
pub fn check_size(ds: &Dataset, rows: usize, cols: usize) -> Result<()> {
    if (ds.rows, ds.cols) != (rows, cols) {
        return Err(Error::ShapeMismatch {
            what: "images for this model".into(),
            expected: format!("{rows}x{cols} (rows x cols)"),
            got: format!("{}x{}", ds.rows, ds.cols),
        });
    }
    Ok(())
}
