//! Model files: one safetensors file holding everything needed to predict from a raw image, for
//! either model kind.
//!
//! * [`container`]: the layout every kind shares (envelope with format version, kind, class
//!   names, input size and checksum; typed tensor access; typed errors). It imports nothing of
//!   the crate.
//! * Each kind's codec lives with the kind: the classical one in `pipeline::codec` (one loop over
//!   the fitted stages, each stage writing and reading its own tensors), the CNN's in `cnn`.
//! * [`AnyModel`] and [`load_any`]: a file of either kind, used through the
//!   [`Classifier`](crate::classifier::Classifier) trait.
//!
//! Classical files (format version 2; version 1, whose checksum covers the tensors only, is still
//! read) hold `svm.weights` (f32, models x d), `svm.intercepts`
//! (f32, models) and, for the stages the configuration has, `scaler.mean`, `scaler.scale`;
//! `pca.mean`, `pca.components`, `pca.explained_variance`, `pca.explained_variance_ratio` (f64);
//! `rff.weights`, `rff.offsets`, `rff.gamma` (f64); `nystroem.landmarks`, `nystroem.gamma` (f64)
//! and `nystroem.projection` unless the metadata says `nystroem_folded` (the projection folded
//! into `svm.weights`; what `train` writes). Their envelope's own fields are `svm_iterations` and
//! `nystroem_folded`. CNN files hold every parameter and batch-norm statistic as f32, and `mean`,
//! `std`, `best_epoch`. int8 CNN files (kind `cnn-int8`, from `quantize`) hold per layer the i8
//! weights, their f32 scales and the folded f32 bias, and in the envelope the mode and the
//! static input codes.
//!
//! Loading checks the header, format name and version (a newer file is refused with a clear
//! message), the checksum, and that every shape agrees with the configuration, so a truncated,
//! corrupt or foreign file is an error, never a panic or a silently wrong model. Files are
//! written atomically (temporary file + rename).

pub mod container;

use std::path::Path;

pub use crate::io::read_model_bytes;
pub use container::{InputSize, ModelError, FORMAT_NAME, FORMAT_VERSION, MAX_MODEL_BYTES};

use crate::classifier::Classifier;
use crate::error::{Error, Result};
use crate::pipeline::ClassicalModel;

/// A model of either kind, as read from a file.
// The classical model is held inline: a model is loaded once per command, so the size of the
// enum does not matter, and boxing would make every caller unwrap a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AnyModel {
    /// HOG → ... → linear SVM.
    Classical(ClassicalModel),
    /// The small CNN.
    #[cfg(feature = "cnn")]
    Cnn(crate::cnn::CnnModel),
    /// The small CNN quantised to int8.
    #[cfg(feature = "cnn")]
    CnnInt8(crate::cnn::CnnInt8Model),
}

impl AnyModel {
    /// The model as a [`Classifier`]: everything callers do with a model goes through it.
    pub fn classifier(&self) -> &dyn Classifier {
        match self {
            AnyModel::Classical(m) => m,
            #[cfg(feature = "cnn")]
            AnyModel::Cnn(m) => m,
            #[cfg(feature = "cnn")]
            AnyModel::CnnInt8(m) => m,
        }
    }
}

/// Load and verify a model file of either kind.
pub fn load_any(path: &Path) -> Result<AnyModel> {
    let bytes = crate::io::read_model_bytes(path)?;
    any_from_bytes(&bytes).map_err(|e| Error::model_file(path, e))
}

/// Parse model bytes of either kind (by the metadata's `kind`; classical when unreadable, so the
/// error is the classical codec's).
pub fn any_from_bytes(bytes: &[u8]) -> std::result::Result<AnyModel, ModelError> {
    match container::peek_kind(bytes).as_deref() {
        #[cfg(feature = "cnn")]
        Some("cnn") => crate::cnn::CnnModel::from_bytes(bytes).map(AnyModel::Cnn),
        #[cfg(feature = "cnn")]
        Some("cnn-int8") => crate::cnn::CnnInt8Model::from_bytes(bytes).map(AnyModel::CnnInt8),
        #[cfg(not(feature = "cnn"))]
        Some("cnn" | "cnn-int8") => Err(ModelError::invalid(
            "this is a CNN model, and this hogsvm was built without the `cnn` feature",
        )),
        _ => ClassicalModel::from_bytes(bytes).map(AnyModel::Classical),
    }
}
