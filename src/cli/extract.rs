//! `hogsvm extract` and `hogsvm bench-hog`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hogsvm::data::{self, Dataset};
use hogsvm::hog::Hog;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2};

use super::options::{print_load_report, DataArgs, HogArgs, Threads};

/// Arguments of `extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Output features file (.npy, float32, shape (n, d)).
    #[arg(long)]
    out: PathBuf,
    /// Output labels file (.npy, int64); default: <out stem>_labels.npy beside --out.
    #[arg(long)]
    labels: Option<PathBuf>,
    #[command(flatten)]
    hog: HogArgs,
    /// A classical model file: extract its HOG features (its HOG settings, extra cell sizes and
    /// resize), the input of its ONNX export; no HOG flags then.
    #[arg(long, conflicts_with_all = ["HogArgs", "resize"])]
    model: Option<PathBuf>,
    #[command(flatten)]
    threads: Threads,
}

/// What describes the images: HOG with the flags' settings, or a classical model's HOG stage.
enum Describer {
    Hog(Hog),
    Model(Box<hogsvm::pipeline::ClassicalModel>),
}

impl Describer {
    fn of(a: &ExtractArgs) -> anyhow::Result<Describer> {
        let Some(path) = &a.model else {
            return Ok(Describer::Hog(Hog::new(a.hog.params()?)?));
        };
        match hogsvm::model::load_any(path)? {
            hogsvm::model::AnyModel::Classical(m) => Ok(Describer::Model(Box::new(m))),
            other => anyhow::bail!(
                "{}: --model needs a classical model (this one is a {}, whose ONNX input is the \
                 pixels)",
                path.display(),
                other.classifier().kind()
            ),
        }
    }

    /// Resize applied while loading (the model's).
    fn resize(&self) -> Option<(u32, u32)> {
        match self {
            Describer::Hog(_) => None,
            Describer::Model(m) => m.config.resize,
        }
    }

    fn feature_len(&self, rows: usize, cols: usize) -> hogsvm::Result<usize> {
        Ok(match self {
            Describer::Hog(h) => h.feature_len(rows, cols)?,
            Describer::Model(m) => {
                if (rows, cols) != (m.rows, m.cols) {
                    return Err(hogsvm::Error::ShapeMismatch {
                        what: "images for this model".into(),
                        expected: format!("{}x{} (rows x cols)", m.rows, m.cols),
                        got: format!("{rows}x{cols}"),
                    });
                }
                m.config.hog_len(rows, cols)?
            }
        })
    }

    fn describe(&self, chunk: &Dataset, out: &mut Vec<f32>, d: usize) -> hogsvm::Result<()> {
        out.resize(chunk.len() * d, 0.0);
        match self {
            Describer::Hog(h) if chunk.channels == 1 => {
                h.compute_batch_u8_into(&chunk.pixels, chunk.rows, chunk.cols, out)?
            }
            Describer::Hog(h) => h.compute_batch_into(&chunk.image_refs(), out)?,
            Describer::Model(m) => {
                let x = m.config.hog_features(chunk)?;
                match x.as_slice() {
                    Some(v) => out.copy_from_slice(v),
                    None => out.iter_mut().zip(x.iter()).for_each(|(o, v)| *o = *v),
                }
            }
        }
        Ok(())
    }
}

fn labels_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "features".into());
    out.with_file_name(format!("{stem}_labels.npy"))
}

fn load(args: &DataArgs) -> anyhow::Result<Dataset> {
    let opts = args.load_options()?;
    let (ds, report) = data::load(&args.data, &opts)?;
    print_load_report(&report);
    Ok(ds)
}

/// Bytes of pixels and features one chunk holds: memory stays bounded by this (and each
/// thread's decoder buffers), whatever the size of the dataset and of its images.
const CHUNK_BYTES: usize = 128 << 20;
/// Most images in one chunk (small images: fewer, larger writes are not faster).
const CHUNK_IMAGES: usize = 4096;

/// The writing end of `extract`: a thread that appends chunks of feature rows to the .npy and
/// hands each buffer back for reuse.
struct RowPipe<'scope> {
    rows: std::sync::mpsc::SyncSender<Vec<f32>>,
    spare: std::sync::mpsc::Receiver<Vec<f32>>,
    thread: std::thread::ScopedJoinHandle<'scope, hogsvm::Result<hogsvm::io::NpyRowWriter>>,
}

impl<'scope> RowPipe<'scope> {
    fn start<'env>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        mut writer: hogsvm::io::NpyRowWriter,
    ) -> Self {
        let (rows, incoming) = std::sync::mpsc::sync_channel::<Vec<f32>>(1);
        let (give_back, spare) = std::sync::mpsc::channel();
        let thread = s.spawn(move || {
            for chunk in incoming {
                writer.append(&chunk)?;
                // The receiver is gone only when extraction is over.
                let _ = give_back.send(chunk);
            }
            Ok(writer)
        });
        RowPipe {
            rows,
            spare,
            thread,
        }
    }

    /// Wait for every row to be written: the writer, or the error that stopped it.
    fn finish(self) -> hogsvm::Result<hogsvm::io::NpyRowWriter> {
        drop(self.rows);
        match self.thread.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Run `extract`: stream the dataset chunk by chunk into the .npy file.
pub fn run(a: ExtractArgs) -> anyhow::Result<()> {
    let labels_out = a.labels.clone().unwrap_or_else(|| labels_path(&a.out));
    let mut inputs = vec![("--data", a.data.data.as_path())];
    inputs.extend(a.model.as_deref().map(|m| ("--model", m)));
    hogsvm::io::check_outputs(&[("--out", &a.out), ("--labels", &labels_out)], &inputs)?;
    let describer = Describer::of(&a)?;
    let mut opts = a.data.load_options()?;
    if let Some(r) = describer.resize() {
        opts.resize = Some(r);
    }
    let t0 = Instant::now();
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} images {per_sec} eta {eta}")
                .expect("static template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut labels: Vec<i64> = Vec::new();
    let (mut d, mut size) = (0usize, (0usize, 0usize));
    let (class_names, report, writer) = std::thread::scope(|s| {
        // The .npy is written by its own thread, one chunk behind the decoding and HOG of the
        // next (the threads of --threads compute; this one mostly waits on the file system).
        // Two feature buffers circulate between them.
        let mut pipe: Option<RowPipe<'_>> = None;
        let (names, report) = a.threads.run(|| {
            let chunk_images = |rows: usize, cols: usize| {
                let d = describer.feature_len(rows, cols).unwrap_or(0);
                // Pixels (up to 3 values each) and the features of two chunks.
                let per_image = 3 * rows * cols + 2 * 4 * d;
                (CHUNK_BYTES / per_image.max(1)).clamp(1, CHUNK_IMAGES)
            };
            data::for_each_chunk(&a.data.data, &opts, chunk_images, |chunk, total| {
                if pipe.is_none() {
                    d = describer.feature_len(chunk.rows, chunk.cols)?;
                    size = (chunk.rows, chunk.cols);
                    pipe = Some(RowPipe::start(
                        s,
                        hogsvm::io::NpyRowWriter::create(&a.out, d)?,
                    ));
                    bar.set_length(total as u64);
                }
                let p = pipe.as_mut().expect("started above");
                let mut feats = p.spare.try_recv().unwrap_or_default();
                describer.describe(chunk, &mut feats, d)?;
                if p.rows.send(feats).is_err() {
                    // The writer stopped on an error: that error is the answer.
                    let p = pipe.take().expect("started above");
                    return Err(p.finish().err().unwrap_or_else(|| hogsvm::Error::Io {
                        path: a.out.clone(),
                        source: std::io::Error::other("the writer thread stopped"),
                    }));
                }
                labels.extend(chunk.labels.iter().map(|&l| l as i64));
                bar.inc(chunk.len() as u64);
                Ok(())
            })
        })??;
        let writer = pipe.map(RowPipe::finish).transpose()?;
        anyhow::Ok((names, report, writer))
    })?;
    bar.finish_and_clear();
    print_load_report(&report);
    let writer = writer.context("no images were extracted")?;
    writer.finish()?;
    hogsvm::io::write_npy_i64(&labels_out, &Array1::from(labels.clone()))?;
    let total = t0.elapsed().as_secs_f64();
    let n = labels.len();
    println!(
        "extracted {n} images ({}x{}), {d} dims, {} classes in {:.2} s ({:.0} images/s, decoding \
         included) -> {} + {}",
        size.0,
        size.1,
        class_names.len(),
        total,
        n as f64 / total.max(1e-9),
        a.out.display(),
        labels_out.display()
    );
    Ok(())
}

/// Arguments of `bench-hog`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    hog: HogArgs,
    #[command(flatten)]
    threads: Threads,
    /// Use only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

/// Run `bench-hog`: time batch extraction, print one JSON line.
pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let hog = Hog::new(a.hog.params()?)?;
    let mut ds = load(&a.data)?;
    if let Some(k) = a.limit {
        let idx: Vec<usize> = (0..k.min(ds.len())).collect();
        ds = ds.subset(&idx);
    }
    let repeat = a.repeat.max(1);
    let times = a.threads.run(|| -> anyhow::Result<Vec<f64>> {
        let mut out = Array2::<f32>::zeros((ds.len(), hog.feature_len(ds.rows, ds.cols)?));
        let slice = out.as_slice_mut().expect("contiguous");
        hog.compute_batch_u8_into(&ds.pixels, ds.rows, ds.cols, slice)?; // warm-up
        let mut t = Vec::with_capacity(repeat);
        for _ in 0..repeat {
            let s = Instant::now();
            hog.compute_batch_u8_into(&ds.pixels, ds.rows, ds.cols, slice)?;
            t.push(s.elapsed().as_secs_f64());
        }
        Ok(t)
    })??;
    let median = hogsvm::metrics::median(&times);
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let n = ds.len() as f64;
    let json = serde_json::json!({
        "tool": "hogsvm",
        "images": ds.len(),
        "rows": ds.rows,
        "cols": ds.cols,
        "threads": a.threads.count(),
        "repeat": repeat,
        "seconds_median": median,
        "us_per_image_median": median / n * 1e6,
        "us_per_image_min": min / n * 1e6,
        "images_per_s": n / median,
    });
    println!("{json}");
    Ok(())
}
