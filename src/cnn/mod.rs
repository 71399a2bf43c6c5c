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

mod aug;
mod config;
mod net;
pub mod ops;
mod train;

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};

pub use config::{Augment, CnnConfig, Loss, Optimizer, Schedule};
pub use train::{bench, BenchResult};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::metrics::Report;
use crate::model::{InputSize, TensorMap, FORMAT_NAME, FORMAT_VERSION};

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

/// A trained CNN: configuration, input normalisation, class names and weights.
#[derive(Debug, Clone)]
pub struct CnnModel {
    /// The configuration it was trained with.
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
    /// Epoch whose weights these are.
    pub best_epoch: usize,
    pub(crate) net: net::Net,
}

/// The metadata of a CNN model file (the `hogsvm` key; see [`crate::model`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnMeta {
    /// Always `hogsvm-model`.
    pub format: String,
    /// Format version of the writer.
    pub format_version: u32,
    /// `cnn`.
    pub kind: String,
    /// Version of hogsvm that wrote the file.
    pub hogsvm_version: String,
    /// Network and training configuration.
    pub config: CnnConfig,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Image size the network expects.
    pub input: InputSize,
    /// Input normalisation mean (pixels scaled to [0, 1]).
    pub mean: f32,
    /// Input normalisation standard deviation.
    pub std: f32,
    /// Epoch whose weights were saved.
    pub best_epoch: usize,
    /// CRC-32 of the tensors' bytes, in name order.
    pub crc32: String,
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
    /// Predicted labels.
    pub fn predict(&self, ds: &Dataset) -> Result<Vec<u32>> {
        self.check_size(ds)?;
        let idx: Vec<usize> = (0..ds.len()).collect();
        train::predict_indices(&self.net, &ds.pixels, &idx, self.mean, self.std, 1000)
    }

    /// Class probabilities (softmax), `n x classes`, row by row.
    pub fn predict_proba(&self, ds: &Dataset) -> Result<Vec<Vec<f32>>> {
        self.check_size(ds)?;
        let idx: Vec<usize> = (0..ds.len()).collect();
        train::proba_indices(&self.net, &ds.pixels, &idx, self.mean, self.std, 1000)
    }

    fn check_size(&self, ds: &Dataset) -> Result<()> {
        if (ds.rows, ds.cols) != (self.rows, self.cols) {
            return Err(Error::ShapeMismatch {
                what: "images for this model".into(),
                expected: format!("{}x{} (rows x cols)", self.rows, self.cols),
                got: format!("{}x{}", ds.rows, ds.cols),
            });
        }
        Ok(())
    }

    /// Evaluate on a labelled dataset whose classes are the model's.
    pub fn evaluate(&self, ds: &Dataset) -> Result<Report> {
        crate::pipeline::check_classes(&self.class_names, &ds.class_names)?;
        let p = self.predict(ds)?;
        Report::new(&ds.labels, &p, &self.class_names)
    }

    /// Number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.net.n_params()
    }

    /// Serialise to the model file format (see [`crate::model`]): every parameter and batch
    /// norm running statistic as f32, and [`CnnMeta`].
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut tensors: TensorMap = BTreeMap::new();
        for (name, shape, values) in self.net.export()? {
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.insert(name, (Dtype::F32, shape, bytes));
        }
        let meta = CnnMeta {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            kind: "cnn".into(),
            hogsvm_version: env!("CARGO_PKG_VERSION").into(),
            config: self.config.clone(),
            class_names: self.class_names.clone(),
            input: InputSize {
                rows: self.rows,
                cols: self.cols,
            },
            mean: self.mean,
            std: self.std,
            best_epoch: self.best_epoch,
            crc32: crate::model::crc_of(&tensors),
        };
        let text = serde_json::to_string(&meta)
            .map_err(|e| Error::param("model", format!("cannot serialise: {e}"), ""))?;
        crate::model::serialize(&tensors, text)
    }

    /// Parse and verify model-file bytes whose metadata says `kind: cnn`; the error is a
    /// reason in words. Every tensor's shape is checked against the configuration.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<CnnModel, String> {
        let (st, value) = crate::model::open_checked(bytes, "cnn")?;
        let meta: CnnMeta =
            serde_json::from_value(value).map_err(|e| format!("model metadata: {e}"))?;
        meta.config
            .validate()
            .map_err(|e| format!("model config: {e}"))?;
        let InputSize { rows, cols } = meta.input;
        let k = meta.class_names.len();
        if k < 2 {
            return Err(format!("model has {k} classes; needs at least 2"));
        }
        if !(meta.std.is_finite() && meta.std > 0.0 && meta.mean.is_finite()) {
            return Err("model normalisation (mean, std) is invalid".into());
        }
        let mut net = net::Net::init(&meta.config, rows, cols, k, &mut aug::rng_for(&[0]))
            .map_err(|e| format!("model config: {e}"))?;
        let mut expected: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (n, shape, _) in net.export().map_err(|e| e.to_string())? {
            expected.insert(n, shape);
        }
        let mut values = BTreeMap::new();
        for (n, shape) in &expected {
            let t = st
                .tensor(n)
                .map_err(|_| format!("model lacks tensor `{n}`"))?;
            if t.dtype() != Dtype::F32 {
                return Err(format!(
                    "tensor `{n}` has dtype {:?}, expected F32",
                    t.dtype()
                ));
            }
            if t.shape() != shape.as_slice() {
                return Err(format!(
                    "tensor `{n}` has shape {:?}, expected {shape:?}",
                    t.shape()
                ));
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("tensor `{n}` holds NaN or infinite values"));
            }
            values.insert(n.clone(), v);
        }
        if st.len() != expected.len() {
            return Err(format!(
                "model has {} tensors, its configuration needs {}",
                st.len(),
                expected.len()
            ));
        }
        net.import(&values).map_err(|e| e.to_string())?;
        Ok(CnnModel {
            config: meta.config,
            class_names: meta.class_names,
            rows,
            cols,
            mean: meta.mean,
            std: meta.std,
            best_epoch: meta.best_epoch,
            net,
        })
    }

    /// Write the model file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        crate::io::write_atomic(path, |w| w.write_all(&bytes))
    }
}
