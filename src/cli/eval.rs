//! `hogsvm eval`: a model of either kind on labelled data.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use hogsvm::data::Split;
use hogsvm::metrics::Report;
use hogsvm::model;

use super::options::{eval_set, Threads};

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
    /// Also write every image's scores, in the data's order, to this .npy file (float32, images x
    /// classes: the SVM's decision values, one column with two classes, or the CNN's
    /// probabilities).
    #[arg(long)]
    scores: Option<PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    threads: Threads,
}

/// Run `eval`.
pub fn eval(a: EvalArgs) -> anyhow::Result<()> {
    if let Some(out) = &a.scores {
        let mut inputs = vec![("--model", a.model.as_path())];
        for (flag, p) in [
            ("--data", &a.data),
            ("--features", &a.features),
            ("--labels", &a.labels),
        ] {
            inputs.extend(p.as_deref().map(|p| (flag, p)));
        }
        hogsvm::io::check_outputs(&[("--scores", out)], &inputs)?;
    }
    let any = model::load_any(&a.model)?;
    let m = any.classifier();
    if let (Some(fp), Some(lp)) = (&a.features, &a.labels) {
        let model::AnyModel::Classical(m) = &any else {
            bail!(
                "{}: --features needs a classical model (this one is a {})",
                a.model.display(),
                m.kind()
            );
        };
        let x = hogsvm::io::read_features_npy(fp)?;
        let y = hogsvm::io::read_labels_npy(lp)?;
        let n = x.nrows();
        let t = Instant::now();
        if let Some(out) = &a.scores {
            let s = a.threads.run(|| {
                m.transform_hog(x.clone())
                    .and_then(|z| m.svm.decision_function(z.view()))
            })??;
            hogsvm::io::write_npy_f32(out, &s)?;
        }
        let report = a
            .threads
            .run(|| m.evaluate_hog_features(x, &y))?
            .with_context(|| format!("{} with {}", fp.display(), lp.display()))?;
        return print_eval(&a, &m.class_names, &report, n, t.elapsed().as_secs_f64());
    }
    let data_path = a.data.clone().context("--data or --features is required")?;
    let split = match a.split.as_deref() {
        None => None,
        Some("train") => Some(Split::Train),
        Some("test") | Some("t10k") => Some(Split::Test),
        Some(o) => bail!("invalid --split `{o}`: expected train or test"),
    };
    let ds = eval_set(&data_path, split, m, a.skip_invalid)?;
    if let Some(out) = &a.scores {
        let s = a.threads.run(|| m.scores(&ds))??;
        hogsvm::io::write_npy_f32(out, &s)?;
    }
    let t = Instant::now();
    let report = a.threads.run(|| m.evaluate(&ds))??;
    print_eval(
        &a,
        m.class_names(),
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
