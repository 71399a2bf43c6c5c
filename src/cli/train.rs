//! `hogsvm train`, `hogsvm eval` and `hogsvm predict`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use hogsvm::cnn::Loss as CnnLoss;
use hogsvm::data::{self, folder, Dataset, LoadOptions, Split};
use hogsvm::featmap::FeatureMap;
use hogsvm::metrics::Report;
use hogsvm::model;
use hogsvm::pipeline::ClassicalConfig;
use hogsvm::reduce::{Components, PcaParams};
use hogsvm::svm::{ClassWeight, Loss};
use indicatif::{ProgressBar, ProgressStyle};

use super::cnn_args::CnnArgs;
use super::options::{load_with, parse_size, train_test_sets, with_threads, HogArgs};

/// Arguments of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training data: an IDX file or folder, or an image folder root/<class>/<image>. A folder
    /// holding both train-* and t10k-* IDX files is the standard split (t10k is the test set).
    #[arg(long)]
    data: PathBuf,
    /// Separate test data (same forms as --data).
    #[arg(long, conflicts_with = "test_split")]
    test: Option<PathBuf>,
    /// Hold out this fraction of --data, stratified by class, as the test set.
    #[arg(long)]
    test_split: Option<f64>,
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
    /// Resize every image to WxH first.
    #[arg(long, value_name = "WxH")]
    resize: Option<String>,
    /// Skip images that fail to decode.
    #[arg(long)]
    skip_invalid: bool,
    #[command(flatten)]
    hog: HogArgs,
    /// Add a HOG descriptor with this cell size (same other parameters), or CELL/BLOCK (e.g.
    /// 4/2: 4x4-pixel cells in 2x2-cell blocks), concatenated: a multi-scale descriptor.
    /// Repeatable; `--extra-cell none` removes the default ones.
    #[arg(long)]
    extra_cell: Vec<String>,
    /// Feature map after HOG: none, hellinger, chi2, chi2:STEPS or chi2:STEPS:INTERVAL
    /// [default: the best measured configuration's].
    #[arg(long)]
    feature_map: Option<String>,
    /// Standardise features (zero mean, unit variance) before PCA / SVM.
    #[arg(long)]
    standardize: bool,
    /// PCA components: a count (128), a variance fraction (0.95) or none.
    #[arg(long)]
    pca: Option<String>,
    /// Whiten the PCA output.
    #[arg(long)]
    whiten: bool,
    /// Random Fourier features after PCA (RBF kernel approximation): output dimension, or none.
    #[arg(long)]
    rff: Option<String>,
    /// Nystroem map after PCA (RBF kernel approximation from training landmarks): number of
    /// landmarks (the output dimension), or none.
    #[arg(long)]
    nystroem: Option<String>,
    /// Lloyd iterations placing the --nystroem landmarks at k-means centres (0: random
    /// training rows, as scikit-learn) [default: 5].
    #[arg(long)]
    kmeans_iters: Option<usize>,
    /// RBF width for --rff / --nystroem: a number, `scale` (1 / (d * var), scikit-learn's
    /// heuristic, the default) or `scale*K` (K times it).
    #[arg(long)]
    gamma: Option<String>,
    /// Also train on the left-right mirror of every training image (twice the training set).
    #[arg(long)]
    flip: bool,
    /// SVM regularisation C [default: 0.1].
    #[arg(long)]
    c: Option<f64>,
    /// Loss. Classical: squared-hinge or hinge. CNN: cross-entropy, focal, focal:GAMMA or
    /// focal:GAMMA:ALPHA (with --class-weight balanced, cross-entropy is class-weighted).
    #[arg(long)]
    loss: Option<String>,
    /// SVM stopping tolerance [default: 0.01].
    #[arg(long)]
    tol: Option<f64>,
    /// SVM maximum passes over the data.
    #[arg(long)]
    max_iter: Option<usize>,
    /// Class weights: none, balanced, or one comma-separated weight per class.
    #[arg(long)]
    class_weight: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
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

/// The configuration from the arguments; what is not given comes from
/// [`ClassicalConfig::default`], the best measured configuration.
fn config(a: &TrainArgs) -> anyhow::Result<ClassicalConfig> {
    let best = ClassicalConfig::default();
    let mut c = best.clone();
    c.hog = a.hog.params_with(best.hog)?;
    if !a.extra_cell.is_empty() {
        c.hog_extra.clear();
        for v in &a.extra_cell {
            if v == "none" {
                continue;
            }
            c.hog_extra.push(c.hog.extra_scale(v)?);
        }
    } else {
        // Keep the default's extra scales, with the main descriptor's other parameters.
        let main = c.hog;
        c.hog_extra = best
            .hog_extra
            .iter()
            .map(|e| main.cell(e.cell_rows, e.cell_cols))
            .collect();
    }
    c.resize = a.resize.as_deref().map(parse_size).transpose()?;
    if let Some(m) = &a.feature_map {
        c.feature_map = m.parse::<FeatureMap>()?;
    }
    c.standardize = a.standardize || best.standardize;
    match a.pca.as_deref() {
        None => {}
        Some("none") | Some("off") => c.pca = None,
        Some(s) => {
            c.pca = Some(PcaParams {
                components: s.parse::<Components>()?,
                whiten: a.whiten,
                seed: a.seed,
                ..Default::default()
            })
        }
    }
    if let Some(p) = c.pca.as_mut() {
        p.seed = a.seed;
        p.whiten |= a.whiten;
    }
    match a.rff.as_deref() {
        None => {}
        Some("none") | Some("off") => c.rff = None,
        Some(v) => {
            c.rff = Some(hogsvm::featmap::RffParams {
                dim: v
                    .parse()
                    .with_context(|| format!("invalid --rff `{v}`: expected a dimension"))?,
                ..Default::default()
            })
        }
    }
    let gamma = a
        .gamma
        .as_deref()
        .map(hogsvm::featmap::parse_gamma)
        .transpose()?;
    if let Some(r) = c.rff.as_mut() {
        r.seed = a.seed;
        if let Some((g, k)) = gamma {
            (r.gamma, r.gamma_scale) = (g, k);
        }
    }
    match a.nystroem.as_deref() {
        None => {}
        Some("none") | Some("off") => c.nystroem = None,
        Some(v) => {
            c.nystroem = Some(hogsvm::featmap::NystroemParams {
                dim: v.parse().with_context(|| {
                    format!("invalid --nystroem `{v}`: expected a number of landmarks")
                })?,
                ..Default::default()
            })
        }
    }
    if let Some(n) = c.nystroem.as_mut() {
        n.seed = a.seed;
        if let Some(k) = a.kmeans_iters {
            n.kmeans_iters = k;
        }
        if let Some((g, k)) = gamma {
            (n.gamma, n.gamma_scale) = (g, k);
        }
    }
    if a.gamma.is_some() && c.rff.is_none() && c.nystroem.is_none() {
        bail!("--gamma needs --rff or --nystroem");
    }
    if a.kmeans_iters.is_some() && c.nystroem.is_none() {
        bail!("--kmeans-iters needs --nystroem");
    }
    if a.flip {
        c.augment_flip = true;
    }
    if let Some(v) = a.c {
        c.svm.c = v;
    }
    if let Some(l) = &a.loss {
        c.svm.loss = l.parse::<Loss>()?;
    }
    if let Some(t) = a.tol {
        c.svm.tol = t;
    }
    if let Some(m) = a.max_iter {
        c.svm.max_iter = m;
    }
    c.svm.seed = a.seed;
    c.svm.class_weight = match a.class_weight.as_deref() {
        None | Some("none") => ClassWeight::None,
        Some("balanced") => ClassWeight::Balanced,
        Some(list) => ClassWeight::Explicit(
            list.split(',')
                .map(|w| w.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .with_context(|| format!("invalid --class-weight `{list}`"))?,
        ),
    };
    c.validate()?;
    Ok(c)
}

/// Train and test sets from the arguments.
fn datasets(a: &TrainArgs, resize: Option<(u32, u32)>) -> anyhow::Result<(Dataset, Dataset)> {
    let opts = LoadOptions {
        resize,
        skip_invalid: a.skip_invalid,
        split: Split::Train,
    };
    let (train, test, _) = train_test_sets(&a.data, a.test.as_deref(), a.test_split, a.seed, opts)?;
    Ok((train, test))
}

/// Run `train`.
pub fn train(a: TrainArgs) -> anyhow::Result<()> {
    if a.model == "cnn" {
        return train_cnn(a);
    }
    a.cnn.refuse_for_classical()?;
    let cfg = config(&a)?;
    let t0 = Instant::now();
    let (train, test) = datasets(&a, cfg.resize)?;
    let t_load = t0.elapsed().as_secs_f64();
    hogsvm::pipeline::check_classes(&train.class_names, &test.class_names)
        .context("train and test sets differ")?;
    let bar = spinner("training (HOG, feature map, PCA, SVM)");
    let (model, times) = with_threads(a.threads, || cfg.fit(&train))??;
    bar.finish_and_clear();
    let t_eval = Instant::now();
    let report = with_threads(a.threads, || model.evaluate(&test))??;
    let t_eval = t_eval.elapsed().as_secs_f64();
    model::save(&model, &a.out)?;
    print!("{}", report.classification_report());
    if let Some(p) = &a.json {
        write_report_json(p, &report)?;
    }
    println!(
        "accuracy {:.4} on {} test images | train {} images, {} features -> {} dims | load {:.2} s, \
         hog {:.2} s, map {:.2} s, scaler {:.2} s, pca {:.2} s, rff {:.2} s, nystroem {:.2} s, \
         svm {:.2} s, eval {:.2} s | model {}",
        report.accuracy,
        test.len(),
        train.len(),
        cfg.hog_len(train.rows, train.cols)?,
        model.feature_dim(),
        t_load,
        times.hog,
        times.feature_map,
        times.scaler,
        times.pca,
        times.rff,
        times.nystroem,
        times.svm,
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
    if a.c.is_some()
        || a.pca.is_some()
        || a.rff.is_some()
        || a.nystroem.is_some()
        || a.flip
        || a.feature_map.is_some()
    {
        bail!(
            "--c, --pca, --rff, --nystroem, --flip and --feature-map are classical options; they \
             do not apply to --model cnn"
        );
    }
    cfg.validate()?;
    let resize = a.resize.as_deref().map(parse_size).transpose()?;
    let t0 = Instant::now();
    let (train, test) = datasets(&a, resize)?;
    let t_load = t0.elapsed().as_secs_f64();
    hogsvm::pipeline::check_classes(&train.class_names, &test.class_names)
        .context("train and test sets differ")?;
    let epochs = cfg.epochs;
    let (model, summary) = with_threads(a.threads, || {
        cfg.fit(&train, &mut |log| eprintln!("{}", epoch_line(log, epochs)))
    })??;
    let t_eval = Instant::now();
    let report = with_threads(a.threads, || model.evaluate(&test))??;
    let t_eval = t_eval.elapsed().as_secs_f64();
    model.save(&a.out)?;
    print!("{}", report.classification_report());
    if let Some(p) = &a.json {
        write_report_json(p, &report)?;
    }
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

fn write_report_json(path: &Path, report: &Report) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    hogsvm::io::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
    Ok(())
}

/// Arguments of `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model file written by `train`.
    #[arg(long)]
    model: PathBuf,
    /// Labelled data (IDX file or folder, or image folder with the model's classes).
    #[arg(long, required_unless_present = "features")]
    data: Option<PathBuf>,
    /// Precomputed HOG features instead of images: a 2-D float32 .npy (e.g. from `extract` with
    /// the model's HOG parameters); needs --labels.
    #[arg(long, conflicts_with = "data", requires = "labels")]
    features: Option<PathBuf>,
    /// Labels for --features: a 1-D integer .npy.
    #[arg(long, requires = "features")]
    labels: Option<PathBuf>,
    /// Split of an IDX folder: train or test [default: test].
    #[arg(long)]
    split: Option<String>,
    /// Skip images that fail to decode.
    #[arg(long)]
    skip_invalid: bool,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Run `eval`.
pub fn eval(a: EvalArgs) -> anyhow::Result<()> {
    let any = model::load_any(&a.model)?;
    if let (Some(fp), Some(lp)) = (&a.features, &a.labels) {
        let model::AnyModel::Classical(m) = &any else {
            bail!(
                "{}: --features needs a classical model (this one is a {})",
                a.model.display(),
                any.kind()
            );
        };
        let x = hogsvm::io::read_features_npy(fp)?;
        let y = hogsvm::io::read_labels_npy(lp)?;
        let n = x.nrows();
        let t = Instant::now();
        let report = with_threads(a.threads, || m.evaluate_hog_features(x, &y))?
            .with_context(|| format!("{} with {}", fp.display(), lp.display()))?;
        return print_eval(&a, &m.class_names, &report, n, t.elapsed().as_secs_f64());
    }
    let data_path = a.data.clone().context("--data or --features is required")?;
    let split = match a.split.as_deref() {
        None => {
            if data::idx_pair(&data_path, Split::Test).is_some() {
                Split::Test
            } else {
                Split::Train
            }
        }
        Some("train") => Split::Train,
        Some("test") | Some("t10k") => Split::Test,
        Some(o) => bail!("invalid --split `{o}`: expected train or test"),
    };
    let ds = load_with(
        &data_path,
        &LoadOptions {
            resize: model_resize(&any),
            skip_invalid: a.skip_invalid,
            split,
        },
    )?;
    let t = Instant::now();
    let report = with_threads(a.threads, || any.evaluate(&ds))??;
    print_eval(
        &a,
        any.class_names(),
        &report,
        ds.len(),
        t.elapsed().as_secs_f64(),
    )
}

fn print_eval(
    a: &EvalArgs,
    class_names: &[String],
    report: &Report,
    n: usize,
    secs: f64,
) -> anyhow::Result<()> {
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.classification_report());
        println!("\nconfusion matrix (rows: true, columns: predicted)");
        for (name, row) in class_names.iter().zip(&report.confusion) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>5}")).collect();
            println!("{:>14} {}", name, cells.join(""));
        }
        println!(
            "accuracy {:.4} on {} images in {:.2} s ({:.0} images/s)",
            report.accuracy,
            n,
            secs,
            n as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

/// Resize images to the model's input size, unless the model was trained on a fixed-size set
/// without resizing (then images of another size are an error naming the file).
fn model_resize(m: &model::AnyModel) -> Option<(u32, u32)> {
    match m {
        model::AnyModel::Classical(m) => m.config.resize,
        // The CNN was trained on images of one size: bring every image to it.
        #[cfg(feature = "cnn")]
        model::AnyModel::Cnn(m) => Some((m.cols as u32, m.rows as u32)),
    }
}

/// Arguments of `predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model file written by `train`.
    #[arg(long)]
    model: PathBuf,
    /// Image files and/or folders (searched recursively).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output format: csv or json.
    #[arg(long, default_value = "csv")]
    format: String,
    /// Skip images that fail to decode.
    #[arg(long)]
    skip_invalid: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn collect_images(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            out.extend(folder::image_files_in(p)?);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or folder", p.display());
        }
    }
    if out.is_empty() {
        bail!("no image files among the inputs");
    }
    Ok(out)
}

/// Run `predict`.
pub fn predict(a: PredictArgs) -> anyhow::Result<()> {
    let any = model::load_any(&a.model)?;
    let json = match a.format.as_str() {
        "csv" => false,
        "json" => true,
        o => bail!("invalid --format `{o}`: expected csv or json"),
    };
    let files = collect_images(&a.inputs)?;
    let input = any.input();
    let size = Some((input.cols as u32, input.rows as u32));
    let mut ds = Dataset {
        rows: input.rows,
        cols: input.cols,
        pixels: Vec::with_capacity(files.len() * input.rows * input.cols),
        labels: Vec::new(),
        class_names: any.class_names().to_vec(),
        sources: Vec::new(),
    };
    for f in &files {
        // Images are brought to the model's input size (a no-op when they already have it).
        match folder::decode_gray(f, size) {
            Ok(img) => {
                ds.pixels.extend_from_slice(img.as_raw());
                ds.labels.push(0);
                ds.sources.push(f.to_string_lossy().into_owned());
            }
            Err(e) if a.skip_invalid => eprintln!("hogsvm: warning: skipped {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    // Each row: file, label, and the score of that label (the SVM's decision value, or the
    // CNN's softmax probability).
    let scored = with_threads(a.threads, || any.predict_scored(&ds))??;
    let rows: Vec<(String, String, f32)> = ds
        .sources
        .iter()
        .zip(scored)
        .map(|(src, (l, score))| (src.clone(), any.class_names()[l as usize].clone(), score))
        .collect();
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(f, l, s)| serde_json::json!({"file": f, "label": l, "score": s}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("file,label,score");
        for (f, l, s) in rows {
            println!("{},{},{}", csv_field(&f), csv_field(&l), s);
        }
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
