//! `hogsvm bench-model`: a saved model of either kind on a test set, measured as `compare`
//! measures a pipeline (accuracy, throughput in batches, single-image latency, model bytes,
//! parameters); prints JSON. Used by scripts/prune_bench.sh.

use std::path::PathBuf;

use clap::Args;
use hogsvm::compare::run::{latency_ms, predict_batched};
use hogsvm::metrics::{median, percentile};
use hogsvm::model;

use super::options::{eval_set, Threads};

/// Arguments of `bench-model`.
#[derive(Debug, Args)]
pub struct BenchModelArgs {
    /// Model file of either kind.
    #[arg(long)]
    model: PathBuf,
    /// Test data (of a folder with train-* and t10k-* IDX files, the t10k-* ones).
    #[arg(long, default_value = "fixtures/fashion-mnist")]
    data: PathBuf,
    /// Images per predict call for the throughput.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Passes over the test set for the throughput (the best is reported).
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Single-image predictions timed for the latency.
    #[arg(long, default_value_t = 101)]
    latency_samples: usize,
    #[command(flatten)]
    threads: Threads,
}

/// Run `bench-model`.
pub fn run(a: BenchModelArgs) -> anyhow::Result<()> {
    let any = model::load_any(&a.model)?;
    let m = any.classifier();
    let test = eval_set(&a.data, None, m, false)?;
    let (out, threads) = a.threads.run(|| -> anyhow::Result<_> {
        let mut best = f64::MAX;
        let mut pred = Vec::new();
        for _ in 0..a.passes.max(1) {
            let (p, secs) = predict_batched(m, &test, a.batch)?;
            best = best.min(secs);
            pred = p;
        }
        let lat = latency_ms(m, &test, a.latency_samples)?;
        Ok(((pred, best, lat), rayon::current_num_threads()))
    })??;
    let (pred, secs, lat) = out;
    let (_, accuracy, ci) = hogsvm::stats::accuracy_ci95(&pred, &test.labels);
    let json = serde_json::json!({
        "model": a.model.display().to_string(),
        "kind": m.kind(),
        "test_images": test.len(),
        "accuracy": accuracy,
        "accuracy_ci95": ci,
        "model_bytes": m.to_bytes()?.len(),
        "params": m.n_params(),
        "dims": m.dims()?,
        "threads": threads,
        "batch": a.batch,
        "batch_seconds_best": secs,
        "images_per_s": test.len() as f64 / secs.max(1e-12),
        "latency_samples": lat.len(),
        "latency_ms_median": median(&lat),
        "latency_ms_p90": percentile(&lat, 0.9),
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}
