//! `hogsvm export`: a model file of either kind as an ONNX file (docs/ONNX.md).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hogsvm::model;
use hogsvm::onnx::{Batch, ExportOptions, DEFAULT_OPSET};

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Model file written by `train`.
    #[arg(long)]
    model: PathBuf,
    /// Output ONNX file (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// ONNX operator set, 13 to 21.
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    opset: i64,
    /// Batch dimension: `dynamic` (a named dimension) or a fixed count.
    #[arg(long, default_value = "dynamic")]
    batch: String,
}

/// Run `export`.
pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    let batch: Batch = a.batch.parse()?;
    let opts = ExportOptions::default().opset(a.opset).batch(batch);
    opts.validate()?;
    hogsvm::io::check_outputs(&[("--out", &a.out)], &[("--model", &a.model)])?;
    let any = model::load_any(&a.model)?;
    let m = any.classifier();
    m.export_onnx(&a.out, &opts)
        .with_context(|| format!("exporting {}", a.model.display()))?;
    let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({} model, ONNX opset {}, {} bytes)",
        a.out.display(),
        m.kind(),
        opts.opset,
        size
    );
    Ok(())
}
