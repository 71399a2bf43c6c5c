//! ONNX in `compare`: every pipeline's model is exported (opset 17, dynamic batch) and, when an
//! onnxruntime is at hand, run on the same test set, on the same thread count, timed the way
//! [`super::run`] times hogsvm (batches for throughput, single images for latency, one
//! untimed warm-up each).
//!
//! onnxruntime is a Python package here (its C library is not on the package registries this
//! project may use at build time, and the `ort` crate downloads it), so the runner is a short
//! Python script embedded in the binary (`ort_bench.py`), started with the interpreter the
//! caller names. Its result is checked, not trusted: its scores are compared with hogsvm's and
//! the labels that follow from them counted.
//!
//! The classical graph starts after HOG (HOG has no ONNX operator), so its timings alone leave
//! out the descriptor; the report adds hogsvm's time to compute the graph's input
//! ([`Classifier::onnx_input`], timed the same way) for end-to-end figures beside hogsvm's own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::classifier::Classifier;
use crate::data::Dataset;
use crate::error::Error;
use crate::metrics::{median, percentile};
use crate::onnx::ExportOptions;
use crate::report::{OnnxResult, OrtTiming};
use crate::svm::LinearSvm;

/// The onnxruntime pass's script.
const SCRIPT: &str = include_str!("ort_bench.py");

/// Whether and how onnxruntime runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrtRunner {
    /// Not run; the reason, shown in the report.
    Off(String),
    /// Run with this Python interpreter (which imports `onnxruntime`).
    Python(PathBuf),
}

impl Default for OrtRunner {
    fn default() -> Self {
        OrtRunner::Off("onnxruntime not requested".into())
    }
}

impl OrtRunner {
    /// `python` if it imports onnxruntime, else `Off` with the reason and how to fix it.
    pub fn probe(python: &Path) -> OrtRunner {
        let out = Command::new(python)
            .args([
                "-c",
                "import onnxruntime, numpy; print(onnxruntime.__version__)",
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => OrtRunner::Python(python.to_path_buf()),
            Ok(_) => OrtRunner::Off(format!(
                "onnxruntime not run: {} cannot import onnxruntime and numpy (pip install \
                 onnxruntime numpy, or point --ort-python at a Python that has them, e.g. \
                 scripts/.venv/bin/python after scripts/test.sh)",
                python.display()
            )),
            Err(e) => OrtRunner::Off(format!(
                "onnxruntime not run: cannot start {}: {e}",
                python.display()
            )),
        }
    }
}

/// Export `model`, and run the export in onnxruntime on `test` when `runner` says so.
/// `batch` and `samples` as for hogsvm's own timings. Failures become the result's note: the
/// rest of the report does not depend on ONNX.
pub fn measure(
    model: &dyn Classifier,
    test: &Dataset,
    batch: usize,
    samples: usize,
    runner: &OrtRunner,
) -> OnnxResult {
    let opts = ExportOptions::default();
    let bytes = match model.to_onnx(&opts) {
        Ok(b) => b,
        Err(e) => {
            return OnnxResult {
                bytes: None,
                opset: opts.opset,
                input: String::new(),
                runtime: None,
                note: Some(format!("not exported: {e}")),
            }
        }
    };
    let (runtime, note, input) = match runner {
        OrtRunner::Off(why) => (None, Some(why.clone()), String::new()),
        OrtRunner::Python(py) => match run_ort(model, test, &bytes, batch, samples, py) {
            Ok((t, input)) => (Some(t), None, input),
            Err(e) => (
                None,
                Some(format!("onnxruntime failed: {e}")),
                String::new(),
            ),
        },
    };
    OnnxResult {
        bytes: Some(bytes.len() as u64),
        opset: opts.opset,
        input,
        runtime,
        note,
    }
}

fn run_ort(
    model: &dyn Classifier,
    test: &Dataset,
    onnx: &[u8],
    batch: usize,
    samples: usize,
    python: &Path,
) -> std::result::Result<(OrtTiming, String), String> {
    let fail = |reason: String| reason;
    let e = |e: Error| e.to_string();
    // hogsvm's side: the graph's input for the test set, timed in batches of `batch` (after a
    // warm-up call) and per image, as hogsvm's own predictions are.
    let chunks: Vec<Dataset> = (0..test.len())
        .step_by(batch.max(1))
        .map(|s| test.subset(&(s..(s + batch).min(test.len())).collect::<Vec<_>>()))
        .collect();
    if let Some(c) = chunks.first() {
        model.onnx_input(c).map_err(e)?;
    }
    let t = Instant::now();
    let mut parts = Vec::with_capacity(chunks.len());
    let mut input = "";
    for c in &chunks {
        let (name, x) = model.onnx_input(c).map_err(e)?;
        input = name;
        parts.push(x);
    }
    let input_seconds = t.elapsed().as_secs_f64();
    drop(chunks);
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let x = ndarray::concatenate(ndarray::Axis(0), &views)
        .map_err(|_| fail("no test images".into()))?;
    drop(parts);
    let mut input_lat = Vec::with_capacity(samples);
    if !test.is_empty() {
        for i in 0..samples {
            let one = test.subset(&[i % test.len()]);
            let t = Instant::now();
            std::hint::black_box(model.onnx_input(&one).map_err(e)?);
            input_lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let dir = tempfile::tempdir().map_err(|x| e(Error::io(std::env::temp_dir(), x)))?;
    let (m, xi, so) = (
        dir.path().join("model.onnx"),
        dir.path().join("input.npy"),
        dir.path().join("scores.npy"),
    );
    std::fs::write(&m, onnx).map_err(|x| e(Error::io(&m, x)))?;
    crate::io::write_npy_f32(&xi, &x).map_err(e)?;
    drop(x);
    let threads = rayon::current_num_threads();
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .args([&m, &xi, &so])
        .args([batch.to_string(), samples.to_string(), threads.to_string()])
        .output()
        .map_err(|e| fail(format!("cannot start {}: {e}", python.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no message");
        return Err(fail(format!(
            "{} exited with {}: {last}",
            python.display(),
            out.status
        )));
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        version: String,
        threads: usize,
        batch_seconds: f64,
        latency_ms: Vec<f64>,
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reply: Reply = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .map_err(|e| fail(format!("unreadable reply ({e}): {stdout}")))?;
    let ort_scores = crate::io::read_features_npy(&so).map_err(e)?;
    let want = model.scores(test).map_err(e)?;
    if ort_scores.dim() != want.dim() {
        return Err(fail(format!(
            "scores of shape {:?}, hogsvm's are {:?}",
            ort_scores.dim(),
            want.dim()
        )));
    }
    let k = model.class_names().len();
    let (a, b) = (
        LinearSvm::labels_from_scores(ort_scores.view(), k),
        LinearSvm::labels_from_scores(want.view(), k),
    );
    let labels_agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    let max_score_diff = ort_scores
        .iter()
        .zip(&want)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max);
    let mut lat = reply.latency_ms;
    lat.sort_by(f64::total_cmp);
    input_lat.sort_by(f64::total_cmp);
    let n = test.len() as f64;
    let lat_median = median(&lat);
    let input_lat_median = median(&input_lat);
    let per_s = |secs: f64| if secs > 0.0 { n / secs } else { 0.0 };
    Ok((
        OrtTiming {
            version: reply.version,
            threads: reply.threads,
            batch_size: batch,
            batch_seconds: reply.batch_seconds,
            images_per_s: per_s(reply.batch_seconds),
            latency_samples: lat.len(),
            latency_ms_median: lat_median,
            latency_ms_p90: percentile(&lat, 0.9),
            input_seconds,
            input_latency_ms_median: input_lat_median,
            end_to_end_images_per_s: per_s(reply.batch_seconds + input_seconds),
            end_to_end_latency_ms_median: lat_median + input_lat_median,
            labels_agree,
            max_score_diff,
        },
        input.to_string(),
    ))
}
