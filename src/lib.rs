//! # hogsvm
//!
//! Classical image classification done carefully — HOG features that give scikit-image's
//! numbers, fast; PCA, feature maps and a liblinear-class linear SVM — and a small CNN on candle
//! to compare against, on the same split, in one report.
//!
//! Data flows one way through the stages:
//! [`data`] (IDX files, image folders) → [`hog`] (features; [`io`] writes `.npy`) →
//! [`featmap`] / [`reduce`] → [`svm`], assembled by [`pipeline`] as a list of [`stage`]s; or
//! [`data`] → `cnn` (feature `cnn`, on by default). Both model kinds are a
//! [`classifier::Classifier`]; [`compare`] trains and measures them on one split and fills a
//! [`report`] ([`metrics`] per model). [`model`] holds the model-file
//! container both kinds' codecs use, and reads a file of either kind. docs/ARCHITECTURE.md says
//! where each thing goes.
//!
//! ```
//! use hogsvm::data::{load, LoadOptions};
//! use hogsvm::hog::{Hog, HogParams};
//!
//! let (train, _report) = load("fixtures/fashion-mnist".as_ref(), &LoadOptions::default())?;
//! let hog = Hog::new(HogParams::default().cell(4, 4).block(2, 2))?;
//! let features = hog.compute_batch_u8(&train.pixels, train.rows, train.cols)?;
//! assert_eq!(features.nrows(), train.len());
//! assert_eq!(features.ncols(), 1296);
//! # Ok::<(), hogsvm::Error>(())
//! ```
#![deny(missing_docs)]

#[macro_use]
mod macros;

pub mod budget;
pub mod classifier;
#[cfg(feature = "cnn")]
pub mod cnn;
pub mod compare;
pub mod data;
pub mod error;
pub mod featmap;
pub mod hog;
pub mod io;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod pipeline;
pub mod reduce;
pub mod report;
pub mod settings;
pub mod stage;
pub mod stats;
pub mod svm;

pub use error::{Error, Result};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
