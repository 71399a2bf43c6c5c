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

    /// An output cannot be written where it was asked for (a folder, a block device, a file
    /// that is also an input).
    #[error("{}: cannot write the output here: {reason}", path.display())]
    Output {
        /// The output path.
        path: PathBuf,
        /// Why not.
        reason: String,
    },

    /// Work that would need more memory than the budget allows, refused before it allocates.
    #[error(
        "{what} needs about {} of memory, more than the budget of {} ({budget_source}); {hint}",
        human_bytes(*needed),
        human_bytes(*budget)
    )]
    Memory {
        /// What would allocate it (a stage and its parameters).
        what: String,
        /// Bytes it would need.
        needed: u64,
        /// Bytes allowed.
        budget: u64,
        /// Where the budget comes from.
        budget_source: String,
        /// What to change.
        hint: String,
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

/// Bytes as a short human figure (`1.5 GiB`, `300 MiB`, `12 KiB`, `100 B`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        let v = bytes as f64 / (1u64 << shift) as f64;
        if v >= 1.0 {
            return if v >= 100.0 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

/// A float hyper-parameter (`f32` or `f64`) to check, named for the error: the one vocabulary
/// of the parameter structs' `validate` (linfa's `ParamGuard` idea): `param("lr",
/// lr).positive("must be a positive number")?`. Each check also requires a finite value; a
/// failed one is an [`Error::InvalidParameter`] with the name, the reason given and the value.
pub(crate) fn param<T: FloatParam>(name: &'static str, value: T) -> Param<T> {
    Param { name, value }
}

/// See [`param`].
#[derive(Clone, Copy)]
pub(crate) struct Param<T> {
    name: &'static str,
    value: T,
}

/// A float type [`param`] checks (`f32` or `f64`; compared as `f64`, which is exact for both).
pub(crate) trait FloatParam: Copy + ToString {
    /// The value as `f64`.
    fn as_f64(self) -> f64;
}

impl FloatParam for f32 {
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}

impl FloatParam for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}

impl<T: FloatParam> Param<T> {
    /// Finite and `ok`.
    fn check(self, ok: bool, reason: &str) -> Result<()> {
        if self.value.as_f64().is_finite() && ok {
            Ok(())
        } else {
            Err(Error::param(self.name, reason, self.value))
        }
    }

    /// Finite and `> 0`.
    pub(crate) fn positive(self, reason: &str) -> Result<()> {
        self.check(self.value.as_f64() > 0.0, reason)
    }

    /// Finite and `>= 0`.
    pub(crate) fn non_negative(self, reason: &str) -> Result<()> {
        self.check(self.value.as_f64() >= 0.0, reason)
    }

    /// Finite and in `range`.
    pub(crate) fn within(self, range: impl std::ops::RangeBounds<f64>, reason: &str) -> Result<()> {
        self.check(range.contains(&self.value.as_f64()), reason)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each check passes on its boundary as documented, refuses NaN and infinities, and names
    /// the parameter, the reason and the value as given (an `f32` printed as an `f32`).
    #[test]
    fn param_checks() {
        assert!(param("a", 1e-30).positive("r").is_ok());
        assert!(param("a", 0.0).positive("r").is_err());
        assert!(param("a", 0.0f32).non_negative("r").is_ok());
        assert!(param("a", -0.5).non_negative("r").is_err());
        assert!(param("a", 45.0).within(0.0..=45.0, "r").is_ok());
        assert!(param("a", 1.0).within(0.0..1.0, "r").is_err());
        for bad in [f64::NAN, f64::INFINITY] {
            assert!(param("a", bad).non_negative("r").is_err(), "{bad}");
            assert!(param("a", bad).within(.., "r").is_err(), "{bad}");
        }
        let e = param("lr", 0.1f32 - 0.2)
            .positive("must be > 0")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid parameter `lr`: must be > 0 (got -0.1)"
        );
    }
}
