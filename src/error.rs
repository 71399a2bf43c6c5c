//! The one error type of the library.
//!
//! Every variant says *what* went wrong and *where* (file, index, parameter name), and, where it
//! applies, what was expected and what was found. The binary prints an error's `Display` as one
//! line and exits with code 2.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in hogsvm.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hyper-parameter is out of its valid range.
    #[error("invalid parameter `{name}`: {reason} (got {got})")]
    InvalidParameter {
        /// Parameter name as the user writes it.
        name: &'static str,
        /// What the valid range is.
        reason: String,
        /// The value that was given.
        got: String,
    },

    /// The image is too small for a single HOG block.
    #[error(
        "image of {rows}x{cols} (rows x cols) is too small for one HOG block: \
         needs at least {min_rows}x{min_cols}"
    )]
    ImageTooSmall {
        /// Image rows.
        rows: usize,
        /// Image columns.
        cols: usize,
        /// Minimum rows for one block.
        min_rows: usize,
        /// Minimum columns for one block.
        min_cols: usize,
    },

    /// A buffer does not have the length its declared shape needs.
    #[error("{what}: expected {expected} values, got {got}")]
    ShapeMismatch {
        /// What was being checked.
        what: String,
        /// Expected length or shape, in words.
        expected: String,
        /// Actual length or shape, in words.
        got: String,
    },

    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file exists but its content is not what it should be.
    #[error("{}: {reason}", path.display())]
    InvalidFile {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An image file could not be decoded.
    #[error("{}: cannot decode image: {reason}", path.display())]
    Decode {
        /// The file involved.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },

    /// An error reported by linfa (through its traits).
    #[error("linfa: {0}")]
    Linfa(#[from] linfa::Error),

    /// An error inside candle (the CNN's tensor library).
    #[error("{what}: {reason}")]
    Candle {
        /// What was being done.
        what: &'static str,
        /// candle's message.
        reason: String,
    },

    /// A report or chart could not be drawn or encoded.
    #[error("{what}: {reason}")]
    Render {
        /// What was being drawn.
        what: String,
        /// The drawing library's message.
        reason: String,
    },

    /// A model file, or model bytes, cannot be read or written.
    #[error("{}{source}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Model {
        /// The file, when there is one.
        path: Option<PathBuf>,
        /// What is wrong.
        #[source]
        source: crate::model::container::ModelError,
    },

    /// A model cannot be exported exactly (to ONNX): the stage or layer, and why.
    #[error("cannot export `{stage}` to ONNX: {reason}")]
    Export {
        /// The stage or layer.
        stage: String,
        /// Why.
        reason: String,
    },

    /// A dataset is unusable as a whole (no images, one size mismatch, ...).
    #[error("{}: {reason}", path.display())]
    Dataset {
        /// The dataset root or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl From<crate::model::container::ModelError> for Error {
    fn from(source: crate::model::container::ModelError) -> Self {
        Error::Model { path: None, source }
    }
}

/// A [`Error::ShapeMismatch`] unless a stage's input has `want` columns: `features for the
/// {what}: expected {want} columns, got {got} columns`.
pub(crate) fn check_cols(what: &str, want: usize, got: usize) -> Result<()> {
    if want != got {
        return Err(Error::ShapeMismatch {
            what: format!("features for the {what}"),
            expected: format!("{want} columns"),
            got: format!("{got} columns"),
        });
    }
    Ok(())
}

impl Error {
    /// Wrap an `std::io::Error` with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Error::InvalidParameter`].
    pub fn param(name: &'static str, reason: impl Into<String>, got: impl ToString) -> Self {
        Error::InvalidParameter {
            name,
            reason: reason.into(),
            got: got.to_string(),
        }
    }

    /// A [`Error::Model`] naming the file.
    pub fn model_file(
        path: impl Into<PathBuf>,
        source: crate::model::container::ModelError,
    ) -> Self {
        Error::Model {
            path: Some(path.into()),
            source,
        }
    }

    /// Shorthand for [`Error::InvalidFile`].
    pub fn invalid_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
