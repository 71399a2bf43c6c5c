//! The learning curve's part of the report: every pipeline trained on nested, stratified,
//! seeded subsets of the training split and evaluated on the same test set
//! (`compare --train-sizes`, filled by [`crate::compare::curve`]).

use serde::{Deserialize, Serialize};

use super::{DatasetFingerprint, PairTest};

/// Test accuracy against training-set size for every pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearningCurve {
    /// Training-set sizes, strictly increasing; the last may be the whole training split.
    pub sizes: Vec<usize>,
    /// Repeats of each size, aligned with `sizes`: repeat `r` draws its subsets with seed
    /// `run.seed + r` and trains every pipeline with that seed.
    pub repeats: Vec<usize>,
    /// How the subsets were drawn, in words.
    pub method: String,
    /// One entry per (size, repeat), size-major: the subset every pipeline trained on.
    pub subsets: Vec<CurveSubset>,
    /// One entry per (size, repeat, pipeline), in that order.
    pub points: Vec<CurvePoint>,
    /// One entry per (size, pipeline): the repeats summarised.
    pub summary: Vec<CurveSummary>,
    /// Per size, McNemar's exact test for every pair of pipelines trained on repeat 0's subset.
    pub pairs: Vec<SizePairs>,
    /// For every (CNN, classical) pair of pipelines: where the CNN overtakes.
    pub crossovers: Vec<Crossover>,
    /// Wall-clock seconds of the curve's training and evaluation (points taken from the main
    /// run cost nothing here).
    pub seconds: f64,
}

/// One training subset of the curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveSubset {
    /// Images in it.
    pub size: usize,
    /// Repeat index, from 0.
    pub repeat: usize,
    /// Seed it was drawn with.
    pub seed: u64,
    /// Its class counts and SHA-256.
    pub fingerprint: DatasetFingerprint,
}

/// One pipeline trained on one subset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Pipeline name.
    pub pipeline: String,
    /// Training images.
    pub size: usize,
    /// Repeat index.
    pub repeat: usize,
    /// Seed of the subset and of the pipeline's training.
    pub seed: u64,
    /// SHA-256 of the images this pipeline was trained on (recomputed from them, not copied
    /// from [`CurveSubset`]).
    pub train_sha256: String,
    /// Test images it classified correctly.
    pub correct: u64,
    /// Test accuracy.
    pub accuracy: f64,
    /// 95% Wilson interval of the accuracy.
    pub accuracy_ci95: [f64; 2],
    /// Training seconds.
    pub train_seconds: f64,
    /// CNN only: epochs run.
    pub epochs_run: Option<usize>,
    /// CNN only: the epoch whose weights were kept.
    pub best_epoch: Option<usize>,
    /// True when this is the main run's own model (the whole training split, repeat 0, the
    /// run's seed), not trained again.
    pub from_main_run: bool,
}

/// One pipeline at one size, over the repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveSummary {
    /// Pipeline name.
    pub pipeline: String,
    /// `classical` or `cnn`.
    pub kind: String,
    /// Training images.
    pub size: usize,
    /// Repeats run.
    pub repeats: usize,
    /// Mean test accuracy over the repeats.
    pub mean_accuracy: f64,
    /// Sample standard deviation (n - 1) of the accuracy over the repeats; `None` for one
    /// repeat.
    pub std_accuracy: Option<f64>,
    /// 95% Wilson interval of the pooled accuracy (all repeats' correct images over all their
    /// test images): the test set's sampling noise, not the seeds' spread.
    pub accuracy_ci95: [f64; 2],
    /// Mean training seconds over the repeats.
    pub mean_train_seconds: f64,
}

/// McNemar's tests at one size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizePairs {
    /// Training images.
    pub size: usize,
    /// Every pair of pipelines, in pipeline order, trained on repeat 0's subset.
    pub pairs: Vec<PairTest>,
}

/// Where a CNN overtakes a classical pipeline on the curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossover {
    /// The CNN pipeline.
    pub cnn: String,
    /// The classical pipeline.
    pub classical: String,
    /// Sizes at which the CNN's mean accuracy is strictly higher.
    pub cnn_ahead_at: Vec<usize>,
    /// `[a, b]`: consecutive sizes with the classical pipeline ahead (or level) at `a` and the
    /// CNN ahead at `b` and at every size after it; `None` when the CNN is ahead at every size,
    /// or not ahead at the largest.
    pub overtakes_between: Option<[usize; 2]>,
    /// Where the difference of mean accuracies, interpolated linearly in log(size) between `a`
    /// and `b`, is zero (rounded to an image count); with `overtakes_between`.
    pub estimate: Option<usize>,
    /// The finding in one sentence (the report prints it as it is).
    pub statement: String,
}
