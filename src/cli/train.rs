//! `hogsvm train`: the classical pipeline or the CNN, saved as a model file.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use hogsvm::classifier::{check_classes, Classifier};
use hogsvm::cnn::Loss as CnnLoss;
use hogsvm::data::Dataset;
use hogsvm::metrics::Report;
use hogsvm::pipeline::{ClassicalConfig, StageTime};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::classical_args::{self, ClassicalArgs};
use super::cnn_args::CnnArgs;
use super::options::{Threads, TrainTestArgs};

/// The whole default model of each kind, for `train --help`: every stage and value, from the
/// configurations themselves (so the help cannot drift from them).
fn default_models() -> String {
    let classical = serde_json::to_string(&ClassicalConfig::default()).unwrap_or_default();
    let cnn = serde_json::to_string(&hogsvm::cnn::CnnConfig::default()).unwrap_or_default();
    format!(
        "Default models (every value; flags change them):\n\
         classical: {classical}\n  \
         its HOG cells are sized to the images (after --resize): max(3, round(min(rows, cols) * \
         3 / 28)) pixels: 3 at 28x28 (the cell above), 14 at 128x128, 24 at 224x224\n\
         cnn: {cnn}"
    )
}

/// Arguments of `train`.
#[derive(Debug, Args)]
#[command(after_long_help = default_models())]
pub struct TrainArgs {
    /// Training data: an IDX file or folder, or an image folder root/<class>/<image>. A folder
    /// holding both train-* and t10k-* IDX files is the standard split (t10k is the test set).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    sets: TrainTestArgs,
    /// Output model file (safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Which model: classical (HOG → ... → linear SVM) or cnn (the small CNN).
    #[arg(long, default_value = "classical", value_parser = ["classical", "cnn"])]
    model: String,
    #[command(flatten)]
    cnn: CnnArgs,
    /// Seed for the split, PCA and the SVM's visiting order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    classical: ClassicalArgs,
    /// Loss. Classical: squared-hinge or hinge. CNN: cross-entropy, focal, focal:GAMMA or
    /// focal:GAMMA:ALPHA (with --class-weight balanced, cross-entropy is class-weighted).
    #[arg(long)]
    loss: Option<String>,
    /// Class weights: none, balanced, or one comma-separated weight per class.
    #[arg(long)]
    class_weight: Option<String>,
    #[command(flatten)]
    threads: Threads,
    /// Also write the test report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn spinner(msg: &str) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let b = ProgressBar::new_spinner();
        b.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("static"));
        b.set_message(msg.to_string());
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    }
}

/// The settings the arguments give, as [`ClassicalConfig::with`] takes them (the keys
/// `compare`'s `--classical` specs use).
fn settings(a: &TrainArgs) -> Vec<(&'static str, String)> {
    let mut s = a.classical.settings();
    let shared = [
        ("resize", &a.sets.images.resize),
        ("loss", &a.loss),
        ("class-weight", &a.class_weight),
    ];
    s.extend(classical_args::given(&shared));
    s.push(("seed", a.seed.to_string()));
    s
}

/// The configuration from the arguments over the default for images of `rows x cols`
/// ([`ClassicalConfig::default_for`]: the best measured configuration, its HOG cells sized to
/// the image).
fn config(a: &TrainArgs, rows: usize, cols: usize) -> anyhow::Result<ClassicalConfig> {
    Ok(ClassicalConfig::default_for(rows, cols).with(&settings(a))?)
}

/// Train and test sets from the arguments, with the same classes, and the seconds loading took.
fn datasets(a: &TrainArgs, resize: Option<(u32, u32)>) -> anyhow::Result<(Dataset, Dataset, f64)> {
    let t0 = Instant::now();
    let (train, test, _) = a.sets.load(&a.data, a.seed, resize)?;
    check_classes(&train.class_names, &test.class_names).context("train and test sets differ")?;
    Ok((train, test, t0.elapsed().as_secs_f64()))
}

/// What both kinds do after the fit: evaluate on `test` (timed), save to --out, print the
/// classification report, and write --json with the summary `fill` completes. The report and
/// the evaluation seconds.
fn finish<'a>(
    a: &'a TrainArgs,
    model: &dyn Classifier,
    (train, test, load_s): (&Dataset, &Dataset, f64),
    fill: impl FnOnce(TrainSummary<'a>) -> TrainSummary<'a>,
) -> anyhow::Result<(Report, f64)> {
    let t0 = Instant::now();
    let report = a.threads.run(|| model.evaluate(test))??;
    let eval_s = t0.elapsed().as_secs_f64();
    model.save(&a.out)?;
    print!("{}", report.classification_report());
    if let Some(p) = &a.json {
        let summary = fill(TrainSummary {
            model: model.kind(),
            train_images: train.len(),
            test_images: test.len(),
            load_s,
            eval_s,
            stages: Vec::new(),
            hog_features: None,
            dims: None,
            params: model.n_params(),
            epochs_run: None,
            best_epoch: None,
            stopped_early: None,
            input: model.input(),
            config: None,
            model_file: &a.out,
        });
        write_json(p, &report, &summary)?;
    }
    Ok((report, eval_s))
}

/// What `train --json` adds to the test report, under `train`.
#[derive(Debug, Serialize)]
struct TrainSummary<'a> {
    model: &'static str,
    train_images: usize,
    test_images: usize,
    load_s: f64,
    eval_s: f64,
    stages: Vec<StageTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hog_features: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dims: Option<usize>,
    params: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    epochs_run: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    best_epoch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_early: Option<bool>,
    /// The images the model reads (rows, columns, values per pixel).
    input: hogsvm::model::InputSize,
    /// The whole model's configuration: every stage and value, defaults included.
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<serde_json::Value>,
    model_file: &'a Path,
}

/// `train --json`: the test report, and the training summary under `train`.
fn write_json(path: &Path, report: &Report, summary: &TrainSummary<'_>) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(report)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("train".into(), serde_json::to_value(summary)?);
    }
    let text = serde_json::to_string_pretty(&v)?;
    hogsvm::io::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
    Ok(())
}

/// The outputs (`--out`, `--json`) against the inputs, before any work.
fn check_outputs(a: &TrainArgs) -> anyhow::Result<()> {
    let mut outputs = vec![("--out", a.out.as_path())];
    outputs.extend(a.json.as_deref().map(|j| ("--json", j)));
    let mut inputs = vec![("--data", a.data.as_path())];
    inputs.extend(a.sets.test.as_deref().map(|t| ("--test", t)));
    Ok(hogsvm::io::check_outputs(&outputs, &inputs)?)
}

/// Run `train`.
pub fn train(a: TrainArgs) -> anyhow::Result<()> {
    check_outputs(&a)?;
    if a.model == "cnn" {
        return train_cnn(a);
    }
    a.cnn.refuse_for_classical()?;
    // The flags, checked before any data is read (the image size then sizes the default HOG).
    let checked = ClassicalConfig::default().with(&settings(&a))?;
    let (train, test, t_load) = datasets(&a, checked.resize)?;
    let cfg = config(&a, train.rows, train.cols)?;
    let (cfg, notes) = cfg.fitted_to(train.len());
    for n in notes {
        eprintln!("hogsvm: warning: {n}");
    }
    let bar = spinner("training (HOG, feature map, PCA, SVM)");
    let (model, times) = a.threads.run(|| cfg.fit(&train))??;
    bar.finish_and_clear();
    let hog_features = cfg.hog_len(model.rows, model.cols)?;
    let (report, t_eval) = finish(&a, &model, (&train, &test, t_load), |s| TrainSummary {
        stages: times.clone(),
        hog_features: Some(hog_features),
        dims: Some(model.feature_dim()),
        config: serde_json::to_value(&model.config).ok(),
        ..s
    })?;
    let stages: Vec<String> = times
        .iter()
        .map(|t| format!("{} {:.2} s", t.name, t.seconds))
        .collect();
    println!(
        "accuracy {:.4} on {} test images | train {} images, {} features -> {} dims | load {:.2} s, \
         {}, eval {:.2} s | model {}",
        report.accuracy,
        test.len(),
        train.len(),
        hog_features,
        model.feature_dim(),
        t_load,
        stages.join(", "),
        t_eval,
        a.out.display()
    );
    Ok(())
}
/// `train --model cnn`.
fn train_cnn(a: TrainArgs) -> anyhow::Result<()> {
    let mut cfg = a.cnn.config()?;
    cfg.seed = a.seed;
    match (a.loss.as_deref(), a.class_weight.as_deref()) {
        (Some(l), _) if l.starts_with("focal") => cfg.set("loss", l)?,
        (Some("cross-entropy") | None, Some("balanced")) => cfg.loss = CnnLoss::Balanced,
        (Some("cross-entropy") | None, None | Some("none")) => {}
        (Some(l), _) if !l.starts_with("focal") && l != "cross-entropy" => {
            bail!("invalid --loss `{l}` for a CNN: expected cross-entropy, focal, focal:GAMMA or focal:GAMMA:ALPHA")
        }
        (_, Some(w)) => {
            bail!("--class-weight `{w}` is not supported for a CNN: use balanced or none")
        }
        _ => {}
    }
    a.classical.refuse_for_cnn()?;
    cfg.validate()?;
    let resize = a.sets.images.resize()?;
    let (train, test, t_load) = datasets(&a, resize)?;
    let epochs = cfg.epochs;
    let (model, summary) = a
        .threads
        .run(|| cfg.fit(&train, &mut |log| eprintln!("{}", epoch_line(log, epochs))))??;
    let (report, t_eval) = finish(&a, &model, (&train, &test, t_load), |s| TrainSummary {
        stages: vec![StageTime {
            name: "train".into(),
            seconds: summary.seconds,
        }],
        epochs_run: Some(summary.history.len()),
        best_epoch: Some(summary.best_epoch),
        stopped_early: Some(summary.stopped_early),
        config: serde_json::to_value(&model.info.config).ok(),
        ..s
    })?;
    println!(
        "accuracy {:.4} on {} test images | train {} images, {} parameters | load {:.2} s, \
         train {:.2} s ({} epochs, best {}{}), eval {:.2} s | model {}",
        report.accuracy,
        test.len(),
        train.len(),
        model.n_params(),
        t_load,
        summary.seconds,
        summary.history.len(),
        summary.best_epoch,
        if summary.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        t_eval,
        a.out.display()
    );
    Ok(())
}

/// One line of the CNN's training log.
pub(super) fn epoch_line(l: &hogsvm::cnn::EpochLog, epochs: usize) -> String {
    format!(
        "epoch {:>3}/{epochs} | loss {:.4} | train acc {:.4} | val acc {} | {:.0} images/s | lr {:.2e} | {:.1} s",
        l.epoch,
        l.loss,
        l.train_acc,
        l.val_acc.map_or("-".to_string(), |v| format!("{v:.4}")),
        l.images_per_sec,
        l.lr,
        l.seconds
    )
}
