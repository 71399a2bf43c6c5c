//! `hogsvm predict`: labels and scores for image files and folders.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use hogsvm::data::{folder, Dataset};
use hogsvm::model;

use super::options::{parse_size, Threads};

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
    /// Bring every image to the model's input size (the default only for a model that resizes:
    /// a CNN, or a classical model trained with --resize). Without it, an image of another size
    /// is an error naming it. A value, if given, must be the model's size (WxH).
    #[arg(long, value_name = "WxH", num_args = 0..=1, default_missing_value = "model")]
    resize: Option<String>,
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
    let model_size = (input.cols as u32, input.rows as u32);
    let resize = match a.resize.as_deref() {
        None => m.load_resize(),
        Some("model") => Some(model_size),
        Some(s) => {
            let want = parse_size(s)?;
            if want != model_size {
                bail!(
                    "--resize {s}: this model takes {}x{} images (WxH); predict resizes only to \
                     the model's size",
                    model_size.0,
                    model_size.1
                );
            }
            Some(want)
        }
    };
    let mut ds = Dataset::empty(
        input.rows,
        input.cols,
        input.channels,
        m.class_names().to_vec(),
    );
    for f in &files {
        // Images are read as the model's colour kind, and brought to its size only when it (or
        // --resize) says so: one rule, the same as Python's `Model.predict`.
        let img = folder::decode_file(f, resize, input.channels).and_then(|(w, h, px)| {
            if (w, h) != model_size {
                return Err(hogsvm::Error::Dataset {
                    path: f.clone(),
                    reason: format!(
                        "image is {w}x{h} (WxH) but the model takes {}x{}; pass --resize to \
                         bring it to that size",
                        model_size.0, model_size.1
                    ),
                });
            }
            Ok(px)
        });
        match img {
            Ok(px) => {
                ds.pixels.extend_from_slice(&px);
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
