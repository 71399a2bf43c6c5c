//! `hogsvm quantize`: a CNN model file quantised to int8 (static, calibrated on training
//! images, or dynamic); the result is a `cnn-int8` model file that `eval`, `predict`,
//! `compare --model`-style loading and `export` accept.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use hogsvm::classifier::Classifier;
use hogsvm::cnn::{QuantMode, QuantizeConfig};
use hogsvm::data::LoadOptions;

use super::options::{load_float_cnn, load_with, Threads};

/// `--mode`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// Activation codes calibrated once on training images.
    Static,
    /// Activation codes from each image's own activations at run time.
    Dynamic,
}

/// Arguments of `quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// CNN model file written by `train --model cnn` or `prune`.
    #[arg(long)]
    model: PathBuf,
    /// Calibration images (the forms of `train --data`; of a folder with train-* and t10k-*
    /// IDX files, the train-* ones): the first --calib-images of them, in file order. Needed
    /// for --mode static.
    #[arg(long)]
    calib: Option<PathBuf>,
    /// How many calibration images.
    #[arg(long, default_value_t = 1000)]
    calib_images: usize,
    /// Static (calibrated) or dynamic (per image at run time) activation codes.
    #[arg(long, value_enum, default_value_t = Mode::Static)]
    mode: Mode,
    /// Output model file (written atomically).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    threads: Threads,
}

/// Run `quantize`.
pub fn run(a: QuantizeArgs) -> anyhow::Result<()> {
    let cfg = QuantizeConfig {
        mode: match a.mode {
            Mode::Static => QuantMode::Static,
            Mode::Dynamic => QuantMode::Dynamic,
        },
        calib_images: a.calib_images,
    };
    cfg.validate()?;
    a.threads.check()?;
    let mut inputs = vec![("--model", a.model.as_path())];
    inputs.extend(a.calib.as_deref().map(|c| ("--calib", c)));
    hogsvm::io::check_outputs(&[("--out", &a.out)], &inputs)?;
    let m = load_float_cnn(&a.model, "quantize")?;
    let calib = match (&a.calib, cfg.mode) {
        (Some(p), QuantMode::Dynamic) => bail!(
            "--calib {} is not used by --mode dynamic (which measures each input as it comes): \
             drop it, or use --mode static",
            p.display()
        ),
        (None, QuantMode::Dynamic) => None,
        (Some(p), QuantMode::Static) => Some(load_with(p, &LoadOptions::default())?),
        (None, QuantMode::Static) => {
            bail!("--calib is needed for static quantisation (or pass --mode dynamic)")
        }
    };
    let q = a.threads.run(|| m.quantize(&cfg, calib.as_ref()))??;
    q.save(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let float_bytes = m.to_bytes()?.len();
    let bytes = q.to_bytes()?.len();
    println!(
        "wrote {} (cnn-int8, {}{}, {} bytes, {:.2}x smaller than the float model; int8 products on {})",
        a.out.display(),
        cfg.mode,
        q.calibration
            .as_ref()
            .map_or(String::new(), |c| format!(", {} calibration on {} images", c.method, c.images)),
        bytes,
        float_bytes as f64 / bytes as f64,
        q.isa().name()
    );
    Ok(())
}
