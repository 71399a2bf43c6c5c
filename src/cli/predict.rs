//! `hogsvm predict`: labels and scores for image files and folders.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use hogsvm::data::{folder, Dataset};
use hogsvm::model;

use super::options::Threads;

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
    #[command(flatten)]
    threads: Threads,
}

fn collect_images(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            out.extend(folder::image_files_in(p)?);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(hogsvm::io::not_a_file_or_folder(p).into());
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
    let m = any.classifier();
    let json = match a.format.as_str() {
        "csv" => false,
        "json" => true,
        o => bail!("invalid --format `{o}`: expected csv or json"),
    };
    let files = collect_images(&a.inputs)?;
    let input = m.input();
    let size = Some((input.cols as u32, input.rows as u32));
    let mut ds = Dataset {
        rows: input.rows,
        cols: input.cols,
        pixels: Vec::with_capacity(files.len() * input.rows * input.cols),
        labels: Vec::new(),
        class_names: m.class_names().to_vec(),
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
    let scored = a.threads.run(|| m.predict_scored(&ds))??;
    let rows: Vec<(String, String, f32)> = ds
        .sources
        .iter()
        .zip(scored)
        .map(|(src, (l, score))| (src.clone(), m.class_names()[l as usize].clone(), score))
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
