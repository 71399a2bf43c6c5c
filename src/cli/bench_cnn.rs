//! `hogsvm bench-cnn`: time CNN training steps and inference, for scripts/peer_cnn.py.

use std::path::PathBuf;

use clap::Args;
use hogsvm::data::{self, LoadOptions};

use super::cnn_args::CnnArgs;
use super::options::Threads;

/// Arguments of `bench-cnn`.
#[derive(Debug, Args)]
pub struct BenchCnnArgs {
    /// Training images (IDX file or folder, or image folder).
    #[arg(long, default_value = "fixtures/fashion-mnist")]
    data: PathBuf,
    /// Training batch size.
    #[arg(long = "batch-size", default_value_t = 128)]
    batch_size: usize,
    /// Timed training steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed warm-up steps (`--warmup` is the CNN's learning-rate warm-up, in epochs).
    #[arg(long, default_value_t = 3)]
    warmup_steps: usize,
    /// Inference batch size.
    #[arg(long, default_value_t = 1000)]
    infer_batch: usize,
    #[command(flatten)]
    threads: Threads,
    /// Print JSON (the default and only format; accepted for the peer script).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cnn: CnnArgs,
}

/// Run `bench-cnn`.
pub fn run(a: BenchCnnArgs) -> anyhow::Result<()> {
    let mut cfg = a.cnn.config()?;
    if let Some(b) = &a.cnn.batch {
        cfg.set("batch", b)?;
    }
    let batch = a
        .cnn
        .batch
        .as_ref()
        .map_or(a.batch_size, |_| cfg.batch_size);
    let (ds, _) = data::load(&a.data, &LoadOptions::default())?;
    let r = a
        .threads
        .run(|| hogsvm::cnn::bench(&cfg, &ds, batch, a.steps, a.warmup_steps, a.infer_batch))??;
    let _ = a.json;
    let mut v = serde_json::to_value(&r)?;
    v["tool"] = "hogsvm-candle".into();
    v["batch"] = batch.into();
    v["infer_batch"] = a.infer_batch.into();
    v["threads"] = a.threads.count().into();
    println!("{}", serde_json::to_string(&v)?);
    Ok(())
}
