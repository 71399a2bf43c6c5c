//! `hogsvm compare`: both pipelines on the same split, one report.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context};
use clap::Args;
use hogsvm::compare::curve::{learning_curve, CurveOptions, MainRun};
use hogsvm::compare::grid::GridOptions;
use hogsvm::compare::ort::OrtRunner;
use hogsvm::compare::run::{run_pipeline, DeployOptions, RunOptions};
use hogsvm::compare::spec::{self, PipelineConfig, PipelinesFile};
use hogsvm::data::Dataset;
use hogsvm::report::{
    iso8601_utc, render, CompareReport, DataInfo, DatasetFingerprint, Generator, RunInfo,
    SCHEMA_VERSION,
};

use super::options::{TestSource, Threads, TrainTestArgs};

/// Arguments of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Training data: an IDX file or folder, or an image folder root/<class>/<image>. A folder
    /// holding both train-* and t10k-* IDX files is the standard split (t10k is the test set).
    #[arg(long, default_value = "fixtures/fashion-mnist")]
    data: PathBuf,
    #[command(flatten)]
    sets: TrainTestArgs,
    /// Folder for report.md, report.html and report.json (created if missing).
    #[arg(long, default_value = "report")]
    out: PathBuf,
    /// Seed for the split, PCA, the SVM's order, the CNN and the CV folds.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A classical pipeline: `default`, `none`, or key=value,... (cell, block, orientations,
    /// block-norm, sqrt, extra-cell, feature-map, standardize, pca, whiten, pca-iterations,
    /// rff, gamma, c,
    /// loss, tol, max-iter, class-weight, seed, name). Repeatable [default: default].
    #[arg(long, value_name = "SPEC")]
    classical: Vec<String>,
    /// A CNN: `default`, `none`, or key=value,... (name and the keys of `train --model cnn
    /// --cnn`, e.g. channels=16,32,epochs=5). Repeatable [default: default].
    #[arg(long, value_name = "SPEC")]
    cnn: Vec<String>,
    /// A saved model file of any kind (`train`, `prune`, `quantize`), loaded instead of
    /// trained and measured beside the others: `[name=NAME,]file=PATH` or the path.
    /// Repeatable.
    #[arg(long, value_name = "SPEC")]
    saved: Vec<String>,
    /// TOML or JSON file with `classical` and/or `cnn` lists of specs (strings, or tables
    /// with `name` and `spec`); --classical / --cnn replace the file's list for their side.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// k-fold cross-validated search over C (and --grid-cells) for each classical pipeline, on
    /// the training split only; the best is refitted on the whole training split.
    #[arg(long)]
    grid: bool,
    /// Folds of --grid.
    #[arg(long, default_value_t = 3, requires = "grid")]
    grid_folds: usize,
    /// Values of C for --grid, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.01,0.1,1",
        requires = "grid"
    )]
    grid_c: Vec<f64>,
    /// HOG cell sizes for --grid, comma-separated [default: the pipeline's own].
    #[arg(long, value_delimiter = ',', requires = "grid")]
    grid_cells: Vec<usize>,
    /// Use only the first N training images (after any split).
    #[arg(long, value_name = "N")]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N")]
    test_limit: Option<usize>,
    /// Images per call when timing throughput.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Single-image predictions timed for the latency (median).
    #[arg(long, default_value_t = 51)]
    latency_samples: usize,
    /// Misclassified test images shown per pipeline.
    #[arg(long, default_value_t = 12)]
    gallery: usize,
    /// Python with onnxruntime and numpy, to time every pipeline's ONNX export beside hogsvm
    /// (without them the report says so) [default: $HOGSVM_ORT_PYTHON, else python3].
    #[arg(long, value_name = "PYTHON")]
    ort_python: Option<PathBuf>,
    /// Do not run onnxruntime (the ONNX export's size is still reported).
    #[arg(long, conflicts_with = "ort_python")]
    no_ort: bool,
    /// Learning curve: train every pipeline again on nested, stratified, seeded subsets of the
    /// training split of these sizes and test each on the same test set. Comma-separated counts,
    /// or fractions of the training split (with a `.`), each optionally `:K` for its own number
    /// of repeats, e.g. `600,3000,0.5:1,1.0:1`. Off by default.
    #[arg(long, value_name = "SIZES")]
    train_sizes: Option<String>,
    /// Seeds per learning-curve size (unless a size says `:K`): repeat r draws its subsets and
    /// trains with seed + r.
    #[arg(long, default_value_t = 1, requires = "train_sizes")]
    repeats: usize,
    /// Also make smaller versions of every CNN and measure each beside it: int8 static
    /// (calibrated on the first --deploy-calib-images training images) and dynamic, and
    /// structured pruning of --deploy-prune of its filters, then fine-tuning on the training
    /// split.
    #[arg(long)]
    deploy: bool,
    /// Fractions of the filters --deploy prunes, comma-separated (one variant each).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.5",
        requires = "deploy"
    )]
    deploy_prune: Vec<f64>,
    /// Epochs of fine-tuning of each --deploy pruned variant.
    #[arg(long, default_value_t = 3, requires = "deploy")]
    deploy_finetune_epochs: usize,
    /// Calibration images of the --deploy int8 static variant.
    #[arg(long, default_value_t = 1000, requires = "deploy")]
    deploy_calib_images: usize,
    #[command(flatten)]
    threads: Threads,
}

/// How onnxruntime runs, from --ort-python / --no-ort / $HOGSVM_ORT_PYTHON.
fn ort_runner(a: &CompareArgs) -> OrtRunner {
    if a.no_ort {
        return OrtRunner::Off("onnxruntime not run (--no-ort)".into());
    }
    let python = a
        .ort_python
        .clone()
        .or_else(|| std::env::var_os("HOGSVM_ORT_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"));
    OrtRunner::probe(&python)
}

/// Train and test sets, and how the test set was made.
fn datasets(a: &CompareArgs) -> anyhow::Result<(Dataset, Dataset, String)> {
    let resize = a.sets.images.resize()?;
    let (train, test, source) = a.sets.load(&a.data, a.seed, resize)?;
    let how = match source {
        TestSource::File(t) => format!("--test {}", t.display()),
        TestSource::Split(f) => format!(
            "--test-split {f}: stratified hold-out of --data, seed {}",
            a.seed
        ),
        TestSource::Standard => "standard split (the t10k-* files of --data)".into(),
    };
    Ok((train, test, how))
}

fn limit(ds: Dataset, n: Option<usize>) -> Dataset {
    match n {
        Some(n) if n < ds.len() => ds.subset(&(0..n).collect::<Vec<_>>()),
        _ => ds,
    }
}

/// The command line as a shell would take it back.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Run `compare`.
pub fn run(a: CompareArgs) -> anyhow::Result<()> {
    // A failed run leaves no empty report folder behind (one it did not find there).
    let existed = a.out.exists();
    let out = a.out.clone();
    let r = run_compare(a);
    if r.is_err() && !existed {
        let _ = std::fs::remove_dir(&out);
    }
    r
}

fn run_compare(a: CompareArgs) -> anyhow::Result<()> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    // Everything that can be checked before the (long) run is checked first.
    let (mut classical, mut cnn) = (a.classical.clone(), a.cnn.clone());
    if let Some(path) = &a.config {
        let f = PipelinesFile::read(path)?;
        if classical.is_empty() {
            classical = PipelinesFile::side(&f.classical).unwrap_or_default();
        }
        if cnn.is_empty() {
            cnn = PipelinesFile::side(&f.cnn).unwrap_or_default();
        }
    }
    let pipelines = spec::with_saved(&classical, &cnn, &a.saved, a.seed)?;
    if a.batch == 0 {
        bail!("invalid --batch 0: must be at least 1");
    }
    if a.latency_samples == 0 {
        bail!("invalid --latency-samples 0: must be at least 1");
    }
    a.threads.check()?;
    for (p, flag) in [(Some(&a.data), "--data"), (a.sets.test.as_ref(), "--test")] {
        if let Some(p) = p.filter(|p| !p.exists()) {
            bail!("{}: no such file or folder ({flag})", p.display());
        }
    }
    if a.out.exists() && !a.out.is_dir() {
        bail!("{}: exists and is not a folder (--out)", a.out.display());
    }
    let grid = a.grid.then(|| GridOptions {
        folds: a.grid_folds,
        cs: a.grid_c.clone(),
        cells: a.grid_cells.clone(),
        seed: a.seed,
    });
    if grid.is_some()
        && !pipelines
            .iter()
            .any(|p| p.config.kind() == "classical" && p.config.is_trained())
    {
        bail!("--grid searches the classical pipelines, and none is selected");
    }
    if a.train_sizes.is_some() && !a.saved.is_empty() {
        bail!("--train-sizes with --saved is not supported: a saved model is not trained, so it has no learning curve");
    }
    if a.train_sizes.is_some() && a.grid {
        bail!("--train-sizes with --grid is not supported: the curve trains each pipeline as specified, and a search per point would choose another configuration at each size");
    }
    if a.repeats == 0 {
        bail!("invalid --repeats 0: must be at least 1");
    }
    let deploy = a.deploy.then(|| DeployOptions {
        prune_amounts: a.deploy_prune.clone(),
        finetune_epochs: a.deploy_finetune_epochs,
        calib_images: a.deploy_calib_images,
    });
    if let Some(d) = &deploy {
        for &amount in &d.prune_amounts {
            hogsvm::cnn::PruneConfig {
                amount,
                ..Default::default()
            }
            .validate()
            .context("--deploy-prune")?;
        }
        if !pipelines.iter().any(|p| p.config.kind() == "cnn") {
            bail!("--deploy makes smaller CNNs, and no CNN pipeline is selected");
        }
    }

    let t_load = Instant::now();
    let (train, test, test_source) = datasets(&a)?;
    let train = limit(train, a.train_limit);
    let test = limit(test, a.test_limit);
    hogsvm::classifier::check_classes(&train.class_names, &test.class_names)
        .context("train and test sets differ")?;
    if train.is_empty() || test.is_empty() {
        bail!("no training or no test images left (check --train-limit / --test-limit)");
    }
    // The classical defaults sized to the images (ClassicalConfig::default_for).
    let image_size = Some((train.rows, train.cols));
    let pipelines = spec::with_saved_for(&classical, &cnn, &a.saved, a.seed, image_size)?;
    let sizes = a
        .train_sizes
        .as_deref()
        .map(|s| hogsvm::compare::curve::parse_sizes(s, train.len(), a.repeats))
        .transpose()
        .context("--train-sizes")?;
    // Every classical pipeline at every training size it will see: settings that cannot fit
    // (a PCA count above a curve's smallest size) and memory, before anything is trained.
    let all_sizes = std::iter::once(train.len()).chain(sizes.iter().flat_map(|(s, _)| s.clone()));
    let input = hogsvm::model::InputSize {
        rows: train.rows,
        cols: train.cols,
        channels: train.channels,
    };
    for size in all_sizes {
        for p in &pipelines {
            if let PipelineConfig::Classical(c) = &p.config {
                let (c, _) = c.fitted_to(size);
                c.check_fit(size, input, train.class_names.len())
                    .with_context(|| format!("pipeline {} at {size} training images", p.name))?;
            }
        }
    }
    let load_seconds = t_load.elapsed().as_secs_f64();
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create the output folder", a.out.display()))?;
    eprintln!(
        "compare: {} train / {} test images, {} pipeline(s): {}",
        train.len(),
        test.len(),
        pipelines.len(),
        pipelines
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let opts = RunOptions {
        batch_size: a.batch,
        latency_samples: a.latency_samples,
        gallery: a.gallery,
        grid,
        onnxruntime: ort_runner(&a),
        deploy,
    };
    let (results, preds, curve, threads) = a.threads.run(|| {
        let threads = rayon::current_num_threads();
        let mut out = Vec::new();
        let mut preds = Vec::new();
        for p in &pipelines {
            let r = run_pipeline(p, &train, &test, &opts, &mut |line| eprintln!("{line}"))
                .with_context(|| format!("pipeline {}", p.name))?;
            eprintln!(
                "{}: accuracy {} in {} s of training",
                p.name,
                render::score(r.0.accuracy),
                render::secs(r.0.training.seconds)
            );
            out.push(r.0);
            preds.push(r.1);
        }
        let curve = match &sizes {
            None => None,
            Some((sizes, repeats)) => {
                let opts = CurveOptions {
                    sizes: sizes.clone(),
                    repeats: repeats.clone(),
                    seed: a.seed,
                    batch_size: a.batch,
                };
                let main: Vec<MainRun> = out
                    .iter()
                    .zip(&preds)
                    .map(|(r, p)| (r, p.as_slice()))
                    .collect();
                eprintln!(
                    "compare: learning curve at {} training images, {} repeat(s)",
                    render::list(sizes),
                    a.repeats
                );
                Some(
                    learning_curve(
                        &|seed| spec::pipelines_for(&classical, &cnn, seed, image_size),
                        &train,
                        &test,
                        &opts,
                        &main,
                        &mut |line| eprintln!("{line}"),
                    )
                    .context("learning curve")?,
                )
            }
        };
        anyhow::Ok((out, preds, curve, threads))
    })??;
    let runs: Vec<(&str, &[u32])> = results
        .iter()
        .zip(&preds)
        .map(|(r, p)| (r.name.as_str(), p.as_slice()))
        .collect();
    let pairs = hogsvm::compare::significance::pairwise(&runs, &test.labels)?;

    let mut notes = Vec::new();
    for p in &pipelines {
        #[allow(irrefutable_let_patterns)]
        if let PipelineConfig::Cnn(c) = &p.config {
            if c.epochs == spec::COMPARE_CNN_EPOCHS
                && c.epochs != hogsvm::cnn::CnnConfig::default().epochs
                && !p.spec.contains("epochs")
            {
                notes.push(format!(
                    "{}: compare trains the CNN for {} epochs by default (CnnConfig::default has {}) so that the default run takes about a minute; pass --cnn epochs=N for a longer schedule.",
                    p.name,
                    spec::COMPARE_CNN_EPOCHS,
                    hogsvm::cnn::CnnConfig::default().epochs
                ));
            }
            if c.val_fraction > 0.0 {
                notes.push(format!(
                    "{}: the CNN holds out {}% of the training split (stratified) for validation, early stopping and the best-epoch choice, so it trains on fewer images than the classical pipeline; its training time includes that validation.",
                    p.name,
                    (c.val_fraction * 100.0).round()
                ));
            }
        }
    }
    if results.iter().any(|r| r.memory.peak_rss_bytes.is_some()) {
        notes.push(
            "Peak RSS is that of the whole process (VmHWM after a reset before each pipeline): it includes the loaded datasets and memory the allocator kept from earlier pipelines, so compare pipelines by their difference from the start RSS in report.json."
                .into(),
        );
    } else {
        notes.push(
            "Peak memory was not measured: it needs Linux >= 4.0 (/proc/self/clear_refs).".into(),
        );
    }
    if a.grid {
        notes.push("Training time of a pipeline searched with --grid is the refit on the whole training split; the search's own time is in its grid table.".into());
    }
    if let Some(c) = &curve {
        notes.push(format!(
            "Learning curve: every pipeline trained again for each size and repeat (repeats per size: {}; repeat r uses seed + r), except at the whole training split on repeat 0, which is the main run's model. Bands are 95% Wilson intervals of the pooled test accuracy (the test set's noise); the spread over seeds is the standard deviation column.",
            render::list(&c.repeats)
        ));
    }
    notes.push("Times are wall-clock on this machine, one run each; other load on the machine shows up in them.".into());
    if a.train_limit.is_some() || a.test_limit.is_some() {
        notes.push(format!(
            "Limited to the first {} training and {} test images (--train-limit / --test-limit).",
            train.len(),
            test.len()
        ));
    }

    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = std::iter::once("hogsvm".to_string())
        .chain(args.iter().map(|s| shell_quote(s)))
        .collect::<Vec<_>>()
        .join(" ");
    let report = CompareReport {
        schema_version: SCHEMA_VERSION,
        generator: Generator::default(),
        run: RunInfo {
            command,
            args,
            seed: a.seed,
            threads,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            platform: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            date_utc: iso8601_utc(started),
            load_seconds,
            total_seconds: t0.elapsed().as_secs_f64(),
        },
        data: DataInfo {
            train_path: a.data.display().to_string(),
            test_source,
            rows: test.rows,
            cols: test.cols,
            class_names: test.class_names.clone(),
            train: DatasetFingerprint::of(&train),
            test: DatasetFingerprint::of(&test),
        },
        pipelines: results,
        pairs,
        learning_curve: curve,
        notes,
    };
    report.write_files(&a.out, &test)?;
    print!("{}", render::console(&report));
    println!(
        "wrote {0}/report.md, {0}/report.html and {0}/report.json",
        a.out.display()
    );
    Ok(())
}
