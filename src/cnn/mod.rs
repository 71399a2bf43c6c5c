//! The deep baseline: a small CNN on candle (CPU; CUDA through the `cuda` feature).
//!
//! Network: 1 to 4 conv blocks (conv 3x3 → batch norm → ReLU → max-pool 2, optional
//! squeeze-and-excitation), dropout, one or two fully connected layers, He initialisation.
//! Training: SGD with momentum or AdamW, weight decay, linear warm-up then cosine decay,
//! gradient clipping by global norm, early stopping on a stratified validation split with the
//! best checkpoint restored, cross-entropy / balanced cross-entropy / focal loss, seeded
//! augmentation (flip, shifts, rotations, noise).
//!
//! Reproducibility: candle's CPU random generator cannot be seeded, so every random draw
//! (weights, split, shuffling, dropout masks, augmentation) comes from our own ChaCha
//! generators, derived from [`CnnConfig::seed`] per epoch and per image, never from a shared
//! stream whose order would depend on the thread count.

/// The [`Classifier`] methods both CNN kinds answer alike: from their [`CnnInfo`] (`self.info`),
/// and through their own module's `codec`.
macro_rules! classifier_info_methods {
    () => {
        fn to_bytes(&self) -> $crate::error::Result<Vec<u8>> {
            codec::to_bytes(self)
        }

        fn onnx_input(
            &self,
            ds: &$crate::data::Dataset,
        ) -> $crate::error::Result<(&'static str, ndarray::Array2<f32>)> {
            $crate::cnn::pixels_input(ds, self.info.rows, self.info.cols)
        }

        fn class_names(&self) -> &[String] {
            &self.info.class_names
        }

        fn input(&self) -> $crate::model::container::InputSize {
            self.info.input()
        }

        /// The CNN was trained on images of one size: every image is brought to it.
        fn load_resize(&self) -> Option<(u32, u32)> {
            Some((self.info.cols as u32, self.info.rows as u32))
        }
    };
}

mod aug;
mod codec;
mod config;
mod net;
mod onnx;
pub(crate) mod ops;
mod prune;
pub mod quant;
#[cfg(test)]
mod test_util;
mod train;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

pub use codec::{CnnFields, CnnMeta};
pub use config::{Augment, CnnConfig, Loss, Optimizer, Schedule};
pub use prune::{kept_filters, PruneConfig, PruneMethod, Pruning};
pub use quant::{CnnInt8Model, QuantMode, QuantizeConfig};
pub use train::{bench, BenchResult};

use crate::classifier::{check_input, Classifier};
use crate::data::Dataset;
use crate::error::Result;
use crate::model::container::InputSize;

/// The device the CNN runs on: the first CUDA GPU when hogsvm is built with the `cuda` feature
/// and one is present, else the CPU. Chosen once per process (candle gives every `new_cuda`
/// call a distinct device, and tensors of two devices cannot be combined).
///
/// The `cuda` path has not been run by the project's CI (no GPU there): on a GPU our CPU ops
/// fall back to candle's own, and the optimiser steps through host memory.
pub fn device() -> candle_core::Device {
    static DEVICE: std::sync::OnceLock<candle_core::Device> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            #[cfg(feature = "cuda")]
            if let Ok(d) = candle_core::Device::new_cuda(0) {
                return d;
            }
            candle_core::Device::Cpu
        })
        .clone()
}

/// One line of the training log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Accuracy on the (augmented) training batches, in training mode.
    pub train_acc: f64,
    /// Accuracy on the validation split, if there is one.
    pub val_acc: Option<f64>,
    /// Training images per second.
    pub images_per_sec: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
}

/// What happened during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// One entry per epoch run.
    pub history: Vec<EpochLog>,
    /// Epoch whose weights were kept (best validation accuracy, or the last).
    pub best_epoch: usize,
    /// Whether early stopping ended training before `epochs`.
    pub stopped_early: bool,
    /// Total training seconds.
    pub seconds: f64,
}

/// What a CNN model holds beside its weights, float or int8 alike: the model file's envelope,
/// carried unchanged from a float model to its pruned and int8 versions.
#[derive(Debug, Clone, PartialEq)]
pub struct CnnInfo {
    /// The configuration the (float) model was trained with.
    pub config: CnnConfig,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Image rows the network expects.
    pub rows: usize,
    /// Image columns the network expects.
    pub cols: usize,
    /// Input normalisation: `(pixel / 255 - mean) / std`.
    pub mean: f32,
    /// See `mean`.
    pub std: f32,
    /// Epoch whose (float) weights these are.
    pub best_epoch: usize,
    /// What pruning did to the float model, if it was pruned ([`CnnModel::prune`]).
    pub pruning: Option<Pruning>,
}

impl CnnInfo {
    /// The input size, `(rows, cols)`.
    pub fn input(&self) -> InputSize {
        (self.rows, self.cols).into()
    }

    /// The input normalisation, `(mean, std)`.
    pub(crate) fn norm(&self) -> (f32, f32) {
        (self.mean, self.std)
    }
}

/// A trained CNN: its [`CnnInfo`] and its weights.
#[derive(Debug, Clone)]
pub struct CnnModel {
    /// Configuration, class names, input size and normalisation.
    pub info: CnnInfo,
    pub(crate) net: net::Net,
}

impl CnnConfig {
    /// Train on `train` (a validation split is taken from it, see
    /// [`CnnConfig::val_fraction`]); `on_epoch` is called after every epoch.
    pub fn fit(
        &self,
        train: &Dataset,
        on_epoch: &mut dyn FnMut(&EpochLog),
    ) -> Result<(CnnModel, TrainSummary)> {
        train::fit(self, train, on_epoch)
    }
}

impl CnnModel {
    /// Class probabilities (softmax), `n x classes`, row by row.
    pub fn predict_proba(&self, ds: &Dataset) -> Result<Vec<Vec<f32>>> {
        check_input(ds, self.info.input())?;
        let idx: Vec<usize> = (0..ds.len()).collect();
        train::proba_indices(&self.net, &ds.pixels, &idx, self.info.norm(), 1000)
    }
}

impl Classifier for CnnModel {
    fn kind(&self) -> &'static str {
        codec::KIND
    }

    classifier_info_methods!();

    fn scores(&self, ds: &Dataset) -> Result<Array2<f32>> {
        let p = self.predict_proba(ds)?;
        let k = self.info.class_names.len();
        Ok(Array2::from_shape_vec((p.len(), k), p.concat()).expect("one row of k per image"))
    }

    fn predict(&self, ds: &Dataset) -> Result<Vec<u32>> {
        check_input(ds, self.info.input())?;
        let idx: Vec<usize> = (0..ds.len()).collect();
        train::predict_indices(&self.net, &ds.pixels, &idx, self.info.norm(), 1000)
    }

    fn predict_scored(&self, ds: &Dataset) -> Result<Vec<(u32, f32)>> {
        Ok(self
            .predict_proba(ds)?
            .into_iter()
            .map(|p| {
                let (l, v) =
                    p.iter()
                        .enumerate()
                        .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                (l as u32, v)
            })
            .collect())
    }

    /// Number of trainable parameters.
    fn n_params(&self) -> usize {
        self.net.n_params()
    }

    /// The image, each conv block's output (channels x rows x cols after its 2x2 pooling), each
    /// hidden layer and the logits.
    fn dims(&self) -> Result<Vec<(String, usize)>> {
        let mut dims = vec![("image".to_string(), self.info.rows * self.info.cols)];
        let (mut r, mut c) = (self.info.rows, self.info.cols);
        for (i, ch) in self.info.config.channels.iter().enumerate() {
            r /= 2;
            c /= 2;
            dims.push((format!("conv{}", i + 1), ch * r * c));
        }
        for (i, h) in self.info.config.hidden.iter().enumerate() {
            dims.push((format!("fc{}", i + 1), *h));
        }
        dims.push(("logits".into(), self.info.class_names.len()));
        Ok(dims)
    }

    fn to_onnx(&self, opts: &crate::onnx::ExportOptions) -> Result<Vec<u8>> {
        CnnModel::to_onnx(self, opts)
    }
}

/// The input of a CNN graph (float or int8): each image's pixels as a row of f32, 0-255.
pub(crate) fn pixels_input(
    ds: &Dataset,
    rows: usize,
    cols: usize,
) -> Result<(&'static str, Array2<f32>)> {
    check_input(ds, (rows, cols).into())?;
    let x = ds.pixels.iter().map(|&p| f32::from(p)).collect();
    let x = Array2::from_shape_vec((ds.len(), rows * cols), x)
        .expect("one row of rows x cols pixels per image");
    Ok(("pixels", x))
}
