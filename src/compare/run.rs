//! Train, evaluate and measure one pipeline on a given split.
//!
//! Measurements (docs/REPORT.md says more):
//! * training time per stage, as the library's fit reports it;
//! * throughput: the whole test set predicted in batches of [`RunOptions::batch_size`] images
//!   (these are the predictions the metrics come from);
//! * latency: the median (and 90th percentile) over [`RunOptions::latency_samples`]
//!   single-image predictions, after one untimed warm-up call;
//! * model size: the bytes of the model file `to_bytes` would save;
//! * the ONNX export's size and, when onnxruntime is at hand, its speed ([`super::ort`]);
//! * peak memory: see [`super::mem`].

use std::time::Instant;

use crate::classifier::Classifier;
use crate::data::Dataset;
use crate::error::Result;
use crate::metrics::{median, percentile, Report};
use crate::model::AnyModel;

use super::fingerprint::sha256_hex;
use super::grid::{self, GridOptions};
use super::mem;
use super::ort::{self, OrtRunner};
use super::spec::{PipelineConfig, PipelineSpec};
use crate::report::{Inference, Memory, Misclassified, PipelineResult, Stage, StageDim, Training};

/// How to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// Images per predict call for the throughput pass.
    pub batch_size: usize,
    /// Single-image predictions timed for the latency (at least 1).
    pub latency_samples: usize,
    /// Misclassified images listed per pipeline.
    pub gallery: usize,
    /// Cross-validated search for classical pipelines, if any.
    pub grid: Option<GridOptions>,
    /// Whether onnxruntime times each pipeline's ONNX export (the export's size is always
    /// reported).
    pub onnxruntime: OrtRunner,
    /// Smaller variants of each CNN to make and measure (`--deploy`), if any.
    pub deploy: Option<DeployOptions>,
}

/// The variants `--deploy` makes of every CNN pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployOptions {
    /// Structured pruning amounts (each a variant).
    pub prune_amounts: Vec<f64>,
    /// Epochs of fine-tuning after pruning.
    pub finetune_epochs: usize,
    /// Calibration images of the int8 static variant (the first of the training set).
    pub calib_images: usize,
}

impl Default for DeployOptions {
    /// int8 static (1000 calibration images) and dynamic; half of the filters pruned, three
    /// epochs of fine-tuning.
    fn default() -> Self {
        DeployOptions {
            prune_amounts: vec![0.5],
            finetune_epochs: 3,
            calib_images: 1000,
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch_size: 256,
            latency_samples: 51,
            gallery: 12,
            grid: None,
            onnxruntime: OrtRunner::default(),
            deploy: None,
        }
    }
}

fn training_of_stages(times: &[crate::pipeline::StageTime]) -> Training {
    let stages: Vec<Stage> = times
        .iter()
        .map(|t| Stage {
            name: t.name.clone(),
            seconds: t.seconds,
        })
        .collect();
    Training {
        seconds: stages.iter().map(|s| s.seconds).sum(),
        stages,
        epochs_run: None,
        best_epoch: None,
        stopped_early: None,
        history: None,
    }
}

/// A pipeline trained by [`train`].
pub struct Trained {
    /// The model.
    pub model: AnyModel,
    /// Its training time (and a CNN's epoch history).
    pub training: Training,
    /// The configuration it was trained with (after any grid search), serialised.
    pub config: serde_json::Value,
    /// The grid search, when one ran.
    pub grid: Option<crate::report::GridReport>,
}

/// Train `spec` on `train` (after a grid search over `train` when `grid` is given). `log`
/// receives progress lines.
pub fn train(
    spec: &PipelineSpec,
    train: &Dataset,
    grid: Option<&GridOptions>,
    log: &mut dyn FnMut(&str),
) -> Result<Trained> {
    let mut grid_report = None;
    let (model, training, config) = match &spec.config {
        PipelineConfig::Classical(cfg) => {
            let cfg = match grid {
                Some(g) => {
                    let (best, rep) = grid::search(cfg, train, g, log)?;
                    log(&format!(
                        "{}: grid chose cell {} and C {} ({:.1} s)",
                        spec.name, rep.chosen_cell, rep.chosen_c, rep.seconds
                    ));
                    grid_report = Some(rep);
                    best
                }
                None => cfg.clone(),
            };
            log(&format!(
                "{}: training (classical) on {} images",
                spec.name,
                train.len()
            ));
            let (m, times) = cfg.fit(train)?;
            let training = training_of_stages(&times);
            let json = serde_json::to_value(&cfg).expect("config serialises");
            (AnyModel::Classical(m), training, json)
        }
        #[cfg(feature = "cnn")]
        PipelineConfig::Cnn(cfg) => {
            log(&format!(
                "{}: training (cnn, up to {} epochs) on {} images",
                spec.name,
                cfg.epochs,
                train.len()
            ));
            let name = spec.name.clone();
            let epochs = cfg.epochs;
            let (m, summary) = cfg.fit(train, &mut |l| {
                log(&format!(
                    "{name}: epoch {}/{epochs} loss {:.4} train acc {:.4} val acc {} ({:.0} images/s, {:.1} s)",
                    l.epoch,
                    l.loss,
                    l.train_acc,
                    l.val_acc.map_or("-".into(), |v| format!("{v:.4}")),
                    l.images_per_sec,
                    l.seconds
                ))
            })?;
            let history = summary
                .history
                .iter()
                .map(|l| crate::report::EpochRow {
                    epoch: l.epoch,
                    loss: l.loss,
                    train_acc: l.train_acc,
                    val_acc: l.val_acc,
                    lr: l.lr,
                    images_per_sec: l.images_per_sec,
                    seconds: l.seconds,
                })
                .collect();
            let training = Training {
                seconds: summary.seconds,
                stages: vec![Stage {
                    name: "train".into(),
                    seconds: summary.seconds,
                }],
                epochs_run: Some(summary.history.len()),
                best_epoch: Some(summary.best_epoch),
                stopped_early: Some(summary.stopped_early),
                history: Some(history),
            };
            let json = serde_json::to_value(cfg).expect("config serialises");
            (AnyModel::Cnn(m), training, json)
        }
        PipelineConfig::Saved(s) => {
            log(&format!(
                "{}: loading {} ({}; not trained)",
                spec.name,
                s.path.display(),
                s.kind
            ));
            let t = Instant::now();
            let m = crate::model::load_any(&s.path)?;
            crate::classifier::check_classes(m.classifier().class_names(), &train.class_names)
                .map_err(|e| crate::Error::invalid_file(&s.path, e.to_string()))?;
            let secs = t.elapsed().as_secs_f64();
            let training = Training {
                seconds: secs,
                stages: vec![Stage {
                    name: "load".into(),
                    seconds: secs,
                }],
                epochs_run: None,
                best_epoch: None,
                stopped_early: None,
                history: None,
            };
            let json = serde_json::json!({
                "file": s.path.display().to_string(),
                "kind": s.kind,
                "trained": false,
            });
            (m, training, json)
        }
    };
    Ok(Trained {
        model,
        training,
        config,
        grid: grid_report,
    })
}

/// Predict `test` in calls of `batch` images (at least 1); returns the labels and the
/// seconds the calls took (the split into batches is not timed).
pub fn predict_batched(
    model: &dyn Classifier,
    test: &Dataset,
    batch: usize,
) -> Result<(Vec<u32>, f64)> {
    let batch = batch.max(1);
    let chunks: Vec<Dataset> = (0..test.len())
        .step_by(batch)
        .map(|s| test.subset(&(s..(s + batch).min(test.len())).collect::<Vec<_>>()))
        .collect();
    let t = Instant::now();
    let mut pred = Vec::with_capacity(test.len());
    for c in &chunks {
        pred.extend(model.predict(c)?);
    }
    Ok((pred, t.elapsed().as_secs_f64()))
}

/// Milliseconds of `samples` (at least 1) single-image predictions of the test images in turn,
/// after one untimed warm-up call, sorted; empty for an empty test set.
pub fn latency_ms(model: &dyn Classifier, test: &Dataset, samples: usize) -> Result<Vec<f64>> {
    let samples = samples.max(1);
    let mut lat = Vec::with_capacity(samples);
    if !test.is_empty() {
        let singles: Vec<Dataset> = (0..samples)
            .map(|i| test.subset(&[i % test.len()]))
            .collect();
        model.predict(&singles[0])?; // warm-up, untimed
        for s in &singles {
            let t = Instant::now();
            std::hint::black_box(model.predict(s)?);
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

/// Train `spec` on `train`, evaluate it on `test` and measure it. `log` receives progress lines.
/// Also returns the test predictions (for the gallery).
pub fn run_pipeline(
    spec: &PipelineSpec,
    train_set: &Dataset,
    test: &Dataset,
    opts: &RunOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(PipelineResult, Vec<u32>)> {
    crate::classifier::check_classes(&train_set.class_names, &test.class_names)?;
    let reset = mem::reset_peak();
    let start_rss = if reset { mem::current_rss() } else { None };
    let Trained {
        model,
        training,
        config: config_json,
        grid: grid_report,
    } = train(spec, train_set, opts.grid.as_ref(), log)?;

    let model_any = model;
    let model: &dyn Classifier = model_any.classifier();

    // The test images as the model reads them (a CNN reads gray; see data::Color).
    let test = &*test.with_channels(model.input().channels);
    // Throughput: the test set in batches; these predictions give the metrics.
    log(&format!(
        "{}: evaluating on {} test images",
        spec.name,
        test.len()
    ));
    let batch = opts.batch_size.max(1);
    let (pred, batch_seconds) = predict_batched(model, test, batch)?;
    let metrics = Report::new(&test.labels, &pred, &test.class_names)?;

    // Latency: one image per call.
    let samples = opts.latency_samples.max(1);
    let lat = latency_ms(model, test, samples)?;

    let peak = if reset { mem::peak_rss() } else { None };
    let model_bytes = model.to_bytes()?.len() as u64;
    log(&format!("{}: ONNX export", spec.name));
    let onnx = ort::measure(model, test, batch, samples, &opts.onnxruntime);
    let params = model.n_params() as u64;
    let dims = model
        .dims()?
        .into_iter()
        .map(|(stage, dim)| StageDim { stage, dim })
        .collect();
    let wrong: Vec<usize> = (0..test.len())
        .filter(|&i| pred[i] != test.labels[i])
        .collect();
    let misclassified = wrong
        .iter()
        .take(opts.gallery)
        .map(|&i| Misclassified {
            index: i,
            source: test.sources.get(i).cloned().unwrap_or_default(),
            truth: test.class_names[test.labels[i] as usize].clone(),
            predicted: test.class_names[pred[i] as usize].clone(),
        })
        .collect();
    #[cfg(feature = "cnn")]
    let variants = match (&model_any, &opts.deploy) {
        (AnyModel::Cnn(cnn), Some(d)) => {
            deploy_variants(&spec.name, cnn, train_set, test, batch, samples, d, log)?
        }
        _ => Vec::new(),
    };
    #[cfg(not(feature = "cnn"))]
    let variants = Vec::new();
    let n = test.len();
    let result = PipelineResult {
        name: spec.name.clone(),
        kind: spec.config.kind().into(),
        spec: spec.spec.clone(),
        config: config_json,
        test_fingerprint: sha256_hex(test),
        test_images: n,
        accuracy: metrics.accuracy,
        accuracy_ci95: crate::stats::accuracy_ci95(&pred, &test.labels).2,
        macro_f1: metrics.macro_avg.f1,
        metrics,
        training,
        inference: Inference {
            batch_size: batch,
            batch_seconds,
            images_per_s: if batch_seconds > 0.0 {
                n as f64 / batch_seconds
            } else {
                0.0
            },
            latency_samples: lat.len(),
            latency_ms_median: median(&lat),
            latency_ms_p90: percentile(&lat, 0.9),
        },
        model_bytes,
        onnx: Some(onnx),
        memory: Memory {
            peak_rss_bytes: peak,
            start_rss_bytes: start_rss,
            method: if peak.is_some() {
                mem::METHOD.into()
            } else {
                "not measured: resetting and reading the peak RSS needs Linux >= 4.0 \
                 (/proc/self/clear_refs and VmHWM)"
                    .into()
            },
        },
        params,
        dims,
        grid: grid_report,
        variants,
        misclassified,
        misclassified_total: wrong.len(),
    };
    Ok((result, pred))
}

/// The variants of `cnn`: int8 static (calibrated on the first `d.calib_images` images of
/// `train_set`) and dynamic, then each of `d.prune_amounts` (structured pruning, fine-tuned on
/// `train_set`); each measured on `test` as the pipeline was measured.
#[cfg(feature = "cnn")]
#[allow(clippy::too_many_arguments)]
fn deploy_variants(
    name: &str,
    cnn: &crate::cnn::CnnModel,
    train_set: &Dataset,
    test: &Dataset,
    batch: usize,
    samples: usize,
    d: &DeployOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<crate::report::Variant>> {
    use crate::cnn::{PruneConfig, PruneMethod, QuantMode, QuantizeConfig};
    let measure = |m: &dyn Classifier,
                   name: String,
                   method: &str,
                   amount: f64,
                   finetune_epochs: usize,
                   channels: Vec<usize>,
                   prepare_seconds: f64|
     -> Result<crate::report::Variant> {
        let (pred, secs) = predict_batched(m, test, batch)?;
        let lat = latency_ms(m, test, samples)?;
        let (_, accuracy, ci) = crate::stats::accuracy_ci95(&pred, &test.labels);
        let n = test.len() as f64;
        Ok(crate::report::Variant {
            name,
            method: method.into(),
            amount,
            finetune_epochs,
            channels,
            accuracy,
            accuracy_ci95: ci,
            params: m.n_params() as u64,
            model_bytes: m.to_bytes()?.len() as u64,
            images_per_s: if secs > 0.0 { n / secs } else { 0.0 },
            latency_ms_median: median(&lat),
            prepare_seconds,
        })
    };
    let mut out = Vec::new();
    if cnn.info.config.se_reduction.is_none() {
        for mode in [QuantMode::Static, QuantMode::Dynamic] {
            let cfg = QuantizeConfig {
                mode,
                calib_images: d.calib_images,
            };
            let t = Instant::now();
            let q = cnn.quantize(&cfg, Some(train_set))?;
            let secs = t.elapsed().as_secs_f64();
            log(&format!("{name}: quantised to int8 ({mode})"));
            let what = match &q.calibration {
                Some(c) => format!("int8 {mode} ({} calibration images)", c.images),
                None => format!("int8 {mode}"),
            };
            let method = format!("int8-{mode}");
            let ch = cnn.info.config.channels.clone();
            out.push(measure(&q, what, &method, 0.0, 0, ch, secs)?);
        }
    } else {
        log(&format!(
            "{name}: no int8 variants (squeeze-and-excitation blocks are not quantised)"
        ));
    }
    for &amount in &d.prune_amounts {
        let cfg = PruneConfig {
            amount,
            method: PruneMethod::Structured,
            finetune_epochs: d.finetune_epochs,
            finetune_lr: None,
        };
        let t = Instant::now();
        let mut m = cnn.prune(&cfg)?;
        log(&format!(
            "{name}: pruned {}% of the filters: channels {:?}",
            (amount * 100.0).round(),
            m.info.config.channels
        ));
        if d.finetune_epochs > 0 {
            let epochs = d.finetune_epochs;
            m = m
                .finetune(train_set, epochs, None, &mut |l| {
                    log(&format!(
                        "{name}: fine-tune epoch {}/{epochs} loss {:.4} val acc {}",
                        l.epoch,
                        l.loss,
                        l.val_acc.map_or("-".into(), |v| format!("{v:.4}"))
                    ))
                })?
                .0;
        }
        let what = format!(
            "pruned {}% (structured) + {} epochs",
            (amount * 100.0).round(),
            d.finetune_epochs
        );
        let (ch, secs) = (m.info.config.channels.clone(), t.elapsed().as_secs_f64());
        out.push(measure(
            &m,
            what,
            "structured",
            amount,
            d.finetune_epochs,
            ch,
            secs,
        )?);
    }
    Ok(out)
}
