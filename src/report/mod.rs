//! The comparison report of `hogsvm compare`: Markdown, self-contained HTML with charts, and
//! JSON with a schema version.
//!
//! One value, [`CompareReport`], holds every number; `report.json` is its serde form (the
//! source of truth, documented by `docs/report-schema.json` and `docs/REPORT.md`), and the
//! Markdown, the HTML and the console table are rendered from it, so the three always agree.
//!
//! This module holds only the report's types and their rendering ([`render`]: Markdown and the
//! console table; [`html`] and [`charts`]: the self-contained HTML). The experiments that fill it
//! (specs, training and measuring each pipeline, the grid search, fingerprints, memory) are
//! [`crate::compare`]'s.

pub mod charts;
pub mod curve;
pub mod html;
pub mod render;

pub use curve::{Crossover, CurvePoint, CurveSubset, CurveSummary, LearningCurve, SizePairs};

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::metrics::Report;

/// Version of the JSON layout; bumped when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 3;

/// Everything `hogsvm compare` measured, in one serialisable value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// What wrote the report.
    pub generator: Generator,
    /// How to reproduce the run.
    pub run: RunInfo,
    /// The train and test sets.
    pub data: DataInfo,
    /// One entry per pipeline, in the order they ran.
    pub pipelines: Vec<PipelineResult>,
    /// McNemar's exact test for every pair of pipelines (all were evaluated on the same test
    /// images), in pipeline order: (0, 1), (0, 2), ..., (1, 2), ...
    pub pairs: Vec<PairTest>,
    /// The learning curve, when `compare --train-sizes` asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_curve: Option<LearningCurve>,
    /// Caveats a reader should know (measurement limits, fallbacks).
    pub notes: Vec<String>,
}

/// The program that wrote the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    /// `hogsvm`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

impl Default for Generator {
    fn default() -> Self {
        Generator {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The command, seed, threads, machine and date of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The command line as typed (shell-quoted), program name as `hogsvm`.
    pub command: String,
    /// The arguments after the program name, one per entry.
    pub args: Vec<String>,
    /// Seed of every random choice (split, PCA, SVM order, CNN).
    pub seed: u64,
    /// Worker threads used for training and inference.
    pub threads: usize,
    /// Logical CPUs the operating system reports.
    pub cpus: usize,
    /// `std::env::consts::OS` / `ARCH`, e.g. `linux x86_64`.
    pub platform: String,
    /// Start of the run, UTC, ISO 8601 (`2026-11-28T16:08:00Z`).
    pub date_utc: String,
    /// Seconds spent loading (and splitting) the data.
    pub load_seconds: f64,
    /// Wall-clock seconds of the whole run, report writing excluded.
    pub total_seconds: f64,
}

/// Where the data came from and what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// `--data` as given.
    pub train_path: String,
    /// How the test set was made: `standard split (t10k files)`, `--test PATH` or
    /// `--test-split F (stratified, seed S)`.
    pub test_source: String,
    /// Image rows.
    pub rows: usize,
    /// Image columns.
    pub cols: usize,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Fingerprint of the training set every pipeline was trained on.
    pub train: DatasetFingerprint,
    /// Fingerprint of the test set every pipeline was evaluated on.
    pub test: DatasetFingerprint,
}

/// One pipeline's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineResult {
    /// Unique name (e.g. `hog+svm`, `cnn`).
    pub name: String,
    /// `classical` or `cnn`.
    pub kind: String,
    /// The spec it was built from (`default` when none was given).
    pub spec: String,
    /// The full configuration (the library's config struct, serialised).
    pub config: serde_json::Value,
    /// SHA-256 of the test set this row was evaluated on (recomputed from the images this
    /// pipeline predicted, not copied).
    pub test_fingerprint: String,
    /// Test images evaluated.
    pub test_images: usize,
    /// Accuracy on the test set.
    pub accuracy: f64,
    /// 95% Wilson score interval of the accuracy, `[low, high]` ([`crate::stats::wilson_interval`]).
    pub accuracy_ci95: [f64; 2],
    /// Unweighted mean F1 over classes.
    pub macro_f1: f64,
    /// Accuracy, confusion matrix, per-class precision / recall / F1 / support and averages.
    pub metrics: Report,
    /// Training time.
    pub training: Training,
    /// Inference speed.
    pub inference: Inference,
    /// Bytes of the model file the pipeline would save.
    pub model_bytes: u64,
    /// The model's ONNX export and onnxruntime's speed on it (absent in reports written
    /// before export existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<OnnxResult>,
    /// Memory during this pipeline's training and evaluation.
    pub memory: Memory,
    /// Learned parameters (numbers stored in the model).
    pub params: u64,
    /// Dimension of the data at each stage, from the image to the classifier's input.
    pub dims: Vec<StageDim>,
    /// The cross-validated search, when `--grid` ran for this pipeline.
    pub grid: Option<GridReport>,
    /// Smaller versions of the model (`compare --deploy`; CNN pipelines), each measured as the
    /// pipeline is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// The first misclassified test images (indices into the test set).
    pub misclassified: Vec<Misclassified>,
    /// Test images misclassified in all.
    pub misclassified_total: usize,
}

/// A smaller version of a pipeline's model (`compare --deploy`), measured on the same test
/// images, batch size, latency samples and threads as the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// What it is, e.g. `pruned 50% (structured) + 3 epochs`.
    pub name: String,
    /// `structured` (filters removed) or `unstructured` (weights zeroed).
    pub method: String,
    /// Fraction pruned.
    pub amount: f64,
    /// Epochs of fine-tuning on the pipeline's training set.
    pub finetune_epochs: usize,
    /// Conv channels after pruning.
    pub channels: Vec<usize>,
    /// Test accuracy.
    pub accuracy: f64,
    /// 95% Wilson interval of the accuracy.
    pub accuracy_ci95: [f64; 2],
    /// Learned parameters.
    pub params: u64,
    /// Bytes of its model file.
    pub model_bytes: u64,
    /// Test images per second in batches of the pipeline's batch size.
    pub images_per_s: f64,
    /// Median milliseconds of one single-image prediction.
    pub latency_ms_median: f64,
    /// Seconds to make it (pruning and fine-tuning).
    pub prepare_seconds: f64,
}

/// McNemar's exact test of two pipelines on the same test images ([`crate::stats::mcnemar_exact`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairTest {
    /// Pipeline A's name.
    pub a: String,
    /// Pipeline B's name.
    pub b: String,
    /// Test images A classifies correctly and B does not.
    pub a_only_right: u64,
    /// Test images B classifies correctly and A does not.
    pub b_only_right: u64,
    /// Exact two-sided p-value (binomial test of the discordant images at 1/2); 1 when they agree
    /// on every image.
    pub p_value: f64,
}

/// Training time of one pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Sum of the stages, seconds.
    pub seconds: f64,
    /// Seconds per stage, in pipeline order (classical: hog, feature_map, scaler, pca, rff, nystroem,
    /// svm; CNN: train).
    pub stages: Vec<Stage>,
    /// CNN only: epochs run.
    pub epochs_run: Option<usize>,
    /// CNN only: epoch whose weights were kept.
    pub best_epoch: Option<usize>,
    /// CNN only: whether early stopping ended training.
    pub stopped_early: Option<bool>,
    /// CNN only: one entry per epoch.
    pub history: Option<Vec<EpochRow>>,
}

/// Seconds of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Stage name.
    pub name: String,
    /// Seconds.
    pub seconds: f64,
}

/// One epoch of CNN training (the CNN's log, in a form that does not need the `cnn` feature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy (augmented batches, training mode).
    pub train_acc: f64,
    /// Validation accuracy, if there is a validation split.
    pub val_acc: Option<f64>,
    /// Learning rate at the epoch's end (the schedule's value).
    pub lr: f64,
    /// Training images per second.
    pub images_per_sec: f64,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// Inference speed of one pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inference {
    /// Images per call when predicting the test set.
    pub batch_size: usize,
    /// Seconds to predict the whole test set in batches of `batch_size`.
    pub batch_seconds: f64,
    /// Test images / `batch_seconds`.
    pub images_per_s: f64,
    /// Single-image predictions timed.
    pub latency_samples: usize,
    /// Median milliseconds of one single-image prediction (batch 1).
    pub latency_ms_median: f64,
    /// 90th percentile of the same.
    pub latency_ms_p90: f64,
}

/// A pipeline's ONNX export (opset 17, dynamic batch), and onnxruntime on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnnxResult {
    /// Bytes of the ONNX file; `None` when the model cannot be exported (see `note`).
    pub bytes: Option<u64>,
    /// Operator set.
    pub opset: i64,
    /// The graph's input (`pixels`, or `hog`: the graph starts after HOG); empty when
    /// onnxruntime did not run.
    pub input: String,
    /// onnxruntime's speed and agreement, when it ran.
    pub runtime: Option<OrtTiming>,
    /// Why onnxruntime did not run (or the export failed).
    pub note: Option<String>,
}

/// onnxruntime on a pipeline's export, on the test set, timed as hogsvm is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrtTiming {
    /// onnxruntime's version.
    pub version: String,
    /// Intra-op threads (hogsvm's thread count).
    pub threads: usize,
    /// Images per call for the throughput pass.
    pub batch_size: usize,
    /// Seconds for the test set in batches (the graph only).
    pub batch_seconds: f64,
    /// Test images / `batch_seconds`.
    pub images_per_s: f64,
    /// Single-image calls timed.
    pub latency_samples: usize,
    /// Median milliseconds of one single-image call (the graph only).
    pub latency_ms_median: f64,
    /// 90th percentile of the same.
    pub latency_ms_p90: f64,
    /// Seconds hogsvm took to compute the graph's input for the test set (HOG for a classical
    /// model; the pixels as floats for the CNN).
    pub input_seconds: f64,
    /// Median milliseconds to compute one image's input.
    pub input_latency_ms_median: f64,
    /// Test images / (`input_seconds` + `batch_seconds`): images to predictions.
    pub end_to_end_images_per_s: f64,
    /// `input_latency_ms_median` + `latency_ms_median`.
    pub end_to_end_latency_ms_median: f64,
    /// Test images whose label from onnxruntime's scores equals hogsvm's.
    pub labels_agree: usize,
    /// Largest absolute difference between onnxruntime's and hogsvm's scores.
    pub max_score_diff: f64,
}

/// Memory of one pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Peak resident set size of the whole process while this pipeline trained and was
    /// evaluated (VmHWM after resetting it), bytes; `None` where it cannot be measured.
    pub peak_rss_bytes: Option<u64>,
    /// Resident set size when the pipeline started (data already loaded), bytes.
    pub start_rss_bytes: Option<u64>,
    /// How it was measured, or why it was not.
    pub method: String,
}

/// The data's dimension after one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageDim {
    /// Stage name (`image`, `hog`, `pca`, `conv1`, ...).
    pub stage: String,
    /// Numbers per image after it.
    pub dim: usize,
}

/// One misclassified test image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Misclassified {
    /// Index in the test set.
    pub index: usize,
    /// Where the image came from.
    pub source: String,
    /// True class name.
    pub truth: String,
    /// Predicted class name.
    pub predicted: String,
}

impl CompareReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report values serialise")
    }

    /// Write `report.json`, `report.md` and `report.html` into `dir` (which must exist),
    /// each atomically. `test` supplies the images of the gallery and HOG pictures.
    pub fn write_files(&self, dir: &Path, test: &crate::data::Dataset) -> Result<()> {
        let json = self.to_json();
        crate::io::write_atomic(&dir.join("report.json"), |w| w.write_all(json.as_bytes()))?;
        let md = render::markdown(self);
        crate::io::write_atomic(&dir.join("report.md"), |w| w.write_all(md.as_bytes()))?;
        let page = html::html(self, test)?;
        crate::io::write_atomic(&dir.join("report.html"), |w| w.write_all(page.as_bytes()))?;
        Ok(())
    }
}

/// UTC date and time of `t` as ISO 8601, e.g. `2026-11-28T16:08:00Z`.
pub fn iso8601_utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What identifies a dataset's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetFingerprint {
    /// Number of images.
    pub images: usize,
    /// Images per class, in label order.
    pub class_counts: Vec<usize>,
    /// Lowercase hex SHA-256 of `compare::fingerprint::hash_input`'s bytes.
    pub sha256: String,
}

/// One candidate's cross-validation scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridRow {
    /// HOG cell size (pixels, square).
    pub cell: usize,
    /// SVM C.
    pub c: f64,
    /// Validation accuracy of each fold.
    pub fold_accuracy: Vec<f64>,
    /// Mean of `fold_accuracy`.
    pub mean_accuracy: f64,
    /// Population standard deviation of `fold_accuracy`.
    pub std_accuracy: f64,
}

/// The search and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridReport {
    /// Folds.
    pub folds: usize,
    /// Training images the folds were drawn from (the training split; no test image).
    pub train_images: usize,
    /// Seconds of the whole search (the refit is not included).
    pub seconds: f64,
    /// Every candidate, in search order.
    pub rows: Vec<GridRow>,
    /// Chosen cell size.
    pub chosen_cell: usize,
    /// Chosen C.
    pub chosen_c: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        let t = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(iso8601_utc(t(0)), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(t(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(t(1_800_003_661)), "2027-01-15T09:01:01Z");
    }
}
