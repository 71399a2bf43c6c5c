//! int8 quantisation of a trained CNN ([`CnnModel::quantize`]) and the int8 model it makes
//! ([`CnnInt8Model`], model kind `cnn-int8`).
//!
//! What is quantised: batch norm is folded into each convolution (`w · γ/√(σ²+ε)`, shift
//! `β − μγ/√(σ²+ε)`); every convolution and dense layer then has int8 weights, symmetric per
//! output channel (`scale = max|w| / 127`, codes in [-127, 127]), and u8 inputs with an affine
//! code (`real = scale · (q − zero_point)`); products are summed in i32 by [`gemm`] and
//! requantised between layers: `scale_in · w_scale · (Σ − zero_point · Σw) + bias` in f32,
//! ReLU and 2x2 max-pooling, then coded to u8 for the next layer. The logits stay f32.
//! Squeeze-and-excitation blocks are not quantised (such a model is refused).
//!
//! Two modes ([`QuantMode`]):
//! * **static**: every layer's input code is fixed, calibrated on training images. Calibration
//!   is min/max over the calibration images, of the float network's activations (with batch
//!   norm folded): the inputs after ReLU and pooling have no long tail to clip in a network this
//!   small, the range of the first layer's input is the pixel range, and min/max needs one pass
//!   and no histogram settings. The calibration images are the first `calib_images` of the
//!   given set, in file order, so that another tool can use the very same images.
//! * **dynamic**: int8 weights, and each layer's input code is taken at run time from that
//!   input's own min/max, **per image** — not per batch as PyTorch's `quantize_dynamic` does —
//!   so that an image's label never depends on which other images share its batch.
//!
//! Images are processed in fixed chunks of [`CHUNK`] on rayon's threads, each image's arithmetic
//! independent of the others: the labels are the same for any thread count, and, every GEMM path
//! being exact, for any CPU.

mod codec;
pub mod gemm;
mod layer;
mod onnx;

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use codec::KIND;
pub use gemm::Isa;
pub use layer::QParams;
use layer::{quantize_images, FloatLayer, Geom, Layer, QLayer};

use super::{net::BN_EPS, CnnInfo, CnnModel};
use crate::classifier::{check_input, Classifier};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// Images per work item.
pub const CHUNK: usize = 16;

/// Static (calibrated) or dynamic (per image at run time) activation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantMode {
    /// Activation codes calibrated once on training images.
    #[default]
    Static,
    /// Activation codes from each image's own activations at run time.
    Dynamic,
}

impl std::fmt::Display for QuantMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QuantMode::Static => "static",
            QuantMode::Dynamic => "dynamic",
        })
    }
}

/// How to quantise.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeConfig {
    /// Static or dynamic.
    pub mode: QuantMode,
    /// Calibration images (static): the first this many of the calibration set.
    pub calib_images: usize,
}

impl Default for QuantizeConfig {
    /// Static, 1000 calibration images.
    fn default() -> Self {
        QuantizeConfig {
            mode: QuantMode::Static,
            calib_images: 1000,
        }
    }
}

impl QuantizeConfig {
    /// Check the parameters.
    pub fn validate(&self) -> Result<()> {
        if self.calib_images == 0 {
            return Err(Error::param(
                "calib-images",
                "must be at least 1",
                self.calib_images,
            ));
        }
        Ok(())
    }
}

/// How the static activation codes were found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// `minmax`.
    pub method: String,
    /// Images it ran on.
    pub images: usize,
}

/// An int8 CNN: the float model's configuration and normalisation, and its layers with int8
/// weights.
#[derive(Debug, Clone)]
pub struct CnnInt8Model {
    /// The float model's configuration, class names, input size and normalisation.
    pub info: CnnInfo,
    /// Static or dynamic.
    pub mode: QuantMode,
    /// Static: how the input codes were calibrated.
    pub calibration: Option<Calibration>,
    /// Static: each layer's input code (empty for dynamic).
    pub inputs: Vec<QParams>,
    pub(crate) layers: Vec<QLayer>,
}

/// The float network with batch norm folded, as layers (what is quantised).
fn float_layers(m: &CnnModel) -> Result<Vec<FloatLayer>> {
    if m.info.config.se_reduction.is_some() {
        return Err(Error::param(
            "model",
            "squeeze-and-excitation blocks are not quantised; quantise a model trained without them",
            "a model with squeeze-and-excitation",
        ));
    }
    let t = m.net.tensors()?;
    let get = |name: &str| {
        t.get(name).ok_or_else(|| Error::Candle {
            what: "quantising",
            reason: format!("missing tensor {name}"),
        })
    };
    let mut layers = Vec::new();
    let (mut h, mut w) = (m.info.rows, m.info.cols);
    let mut c_in = 1;
    for i in 0..m.info.config.channels.len() {
        let (shape, wt) = get(&format!("conv{i}.weight"))?;
        let (co, kh, kw) = (shape[0], shape[2], shape[3]);
        let g = &get(&format!("bn{i}.weight"))?.1;
        let b = &get(&format!("bn{i}.bias"))?.1;
        let mu = &get(&format!("bn{i}.running_mean"))?.1;
        let var = &get(&format!("bn{i}.running_var"))?.1;
        let a: Vec<f64> = (0..co)
            .map(|o| f64::from(g[o]) / (f64::from(var[o]) + BN_EPS).sqrt())
            .collect();
        let per = wt.len() / co;
        let wf: Vec<f32> = wt
            .iter()
            .enumerate()
            .map(|(i, &v)| (f64::from(v) * a[i / per]) as f32)
            .collect();
        let bias = (0..co)
            .map(|o| (f64::from(b[o]) - f64::from(mu[o]) * a[o]) as f32)
            .collect();
        let l = Layer::from_file(
            format!("conv{i}"),
            Geom::Conv { kh, kw, c_in },
            co,
            &wf,
            bias,
            true,
        );
        (h, w) = l.out_size(h, w);
        c_in = co;
        layers.push(l);
    }
    let mut from = (!layers.is_empty()).then_some((h, w, c_in));
    let names: Vec<String> = (0..m.info.config.hidden.len())
        .map(|j| format!("fc{j}"))
        .chain(["out".to_string()])
        .collect();
    for (j, name) in names.iter().enumerate() {
        let (shape, wt) = get(&format!("{name}.weight"))?;
        let bias = get(&format!("{name}.bias"))?.1.clone();
        let relu = j + 1 < names.len();
        layers.push(Layer::from_file(
            name.clone(),
            Geom::Dense { from },
            shape[0],
            wt,
            bias,
            relu,
        ));
        from = None;
    }
    Ok(layers)
}

/// `(pixel / 255 - mean) / std`, as the float model computes it.
fn normalise(px: &[u8], mean: f32, std: f32) -> Vec<f32> {
    let inv = 1.0 / (255.0 * std);
    let off = mean / std;
    px.iter().map(|&p| p as f32 * inv - off).collect()
}

/// Min/max of every layer's input over the images `px` (chunks in parallel, merged in order).
fn calibrate(layers: &[FloatLayer], px: &[u8], m: &CnnModel) -> Vec<QParams> {
    let per = m.info.rows * m.info.cols;
    let ranges: Vec<Vec<(f32, f32)>> = px
        .par_chunks(CHUNK * per)
        .map(|c| {
            let nimg = c.len() / per;
            let mut x = normalise(c, m.info.mean, m.info.std);
            let (mut h, mut w) = (m.info.rows, m.info.cols);
            let mut r = Vec::with_capacity(layers.len());
            for l in layers {
                r.push(layer::min_max(&x));
                x = l.forward(&x, nimg, (h, w));
                (h, w) = l.out_size(h, w);
            }
            r
        })
        .collect();
    (0..layers.len())
        .map(|i| {
            let (lo, hi) = ranges.iter().fold((0.0f32, 0.0f32), |(lo, hi), r| {
                (lo.min(r[i].0), hi.max(r[i].1))
            });
            QParams::from_range(lo, hi)
        })
        .collect()
}

impl CnnModel {
    /// The int8 model (see the [module docs](crate::cnn::quant)); static mode calibrates on the first
    /// [`QuantizeConfig::calib_images`] images of `calib`, which must be given and have the
    /// model's image size.
    pub fn quantize(&self, cfg: &QuantizeConfig, calib: Option<&Dataset>) -> Result<CnnInt8Model> {
        cfg.validate()?;
        let floats = float_layers(self)?;
        let (inputs, calibration) = match cfg.mode {
            QuantMode::Dynamic => (Vec::new(), None),
            QuantMode::Static => {
                let Some(ds) = calib else {
                    return Err(Error::param(
                        "calib",
                        "static quantisation needs calibration images",
                        "none",
                    ));
                };
                let ds = &*ds.with_channels(1);
                check_input(ds, self.info.input())?;
                let n = cfg.calib_images.min(ds.len());
                if n == 0 {
                    return Err(Error::param("calib", "has no images", 0));
                }
                let px = &ds.pixels[..n * self.info.rows * self.info.cols];
                let c = Calibration {
                    method: "minmax".into(),
                    images: n,
                };
                (calibrate(&floats, px, self), Some(c))
            }
        };
        let isa = Isa::detect();
        Ok(CnnInt8Model {
            info: self.info.clone(),
            mode: cfg.mode,
            calibration,
            inputs,
            layers: floats.iter().map(|l| l.quantize(isa)).collect(),
        })
    }
}

impl CnnInt8Model {
    /// Logits of `nimg` images (`px`, image after image): the convolutions image by image,
    /// the dense layers on all `nimg` at once (so that their weights are read once a chunk).
    fn logits_chunk(&self, px: &[u8], nimg: usize) -> Vec<f32> {
        let per = self.info.rows * self.info.cols;
        let n_conv = self
            .layers
            .iter()
            .take_while(|l| matches!(l.layer.geom, Geom::Conv { .. }))
            .count();
        let (inv, off) = (
            1.0 / (255.0 * self.info.std),
            self.info.mean / self.info.std,
        );
        let code = |i: usize, x: &[f32]| match self.mode {
            QuantMode::Static => self.inputs[i],
            QuantMode::Dynamic => {
                let (lo, hi) = layer::min_max(x);
                QParams::from_range(lo, hi)
            }
        };
        let mut x = Vec::new();
        if n_conv == 0 {
            x = normalise(px, self.info.mean, self.info.std);
        }
        let mut y = Vec::new();
        for img in px
            .chunks_exact(per)
            .take(if n_conv == 0 { 0 } else { nimg })
        {
            // The first layer's codes through a table of the 256 grey levels.
            let p = match self.mode {
                QuantMode::Static => self.inputs[0],
                QuantMode::Dynamic => {
                    let (lo, hi) = img
                        .iter()
                        .fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                    QParams::from_range(lo as f32 * inv - off, hi as f32 * inv - off)
                }
            };
            let lut: Vec<u8> = (0..=255u8)
                .map(|v| p.quantize(v as f32 * inv - off))
                .collect();
            let mut q: Vec<u8> = img.iter().map(|&v| lut[usize::from(v)]).collect();
            let (mut h, mut w) = (self.info.rows, self.info.cols);
            let mut p = p;
            for (i, l) in self.layers[..n_conv].iter().enumerate() {
                y.clear();
                l.conv_image(&q, (h, w), p, &mut y);
                (h, w) = l.layer.out_size(h, w);
                if i + 1 < n_conv {
                    p = code(i + 1, &y);
                    q.clear();
                    q.extend(y.iter().map(|&v| p.quantize(v)));
                }
            }
            x.extend_from_slice(&y);
        }
        for (i, l) in self.layers.iter().enumerate().skip(n_conv) {
            let qp: Vec<QParams> = x.chunks(x.len() / nimg).map(|v| code(i, v)).collect();
            let q = quantize_images(&x, nimg, &qp);
            x.clear();
            l.dense(&q, nimg, &qp, &mut x);
        }
        x
    }

    /// Logits, `n x classes`.
    pub fn logits(&self, ds: &Dataset) -> Result<Array2<f32>> {
        check_input(ds, self.info.input())?;
        let per = self.info.rows * self.info.cols;
        let k = self.info.class_names.len();
        if ds.is_empty() {
            return Ok(Array2::zeros((0, k)));
        }
        let v: Vec<Vec<f32>> = ds
            .pixels
            .par_chunks(CHUNK * per)
            .map(|c| self.logits_chunk(c, c.len() / per))
            .collect();
        let v = v.concat();
        crate::classifier::check_finite_outputs(v.iter().copied(), k, |i| {
            ds.sources
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("image {i}"))
        })?;
        Ok(Array2::from_shape_vec((ds.len(), k), v).expect("k logits per image"))
    }

    /// The instruction set the int8 products use on this CPU.
    pub fn isa(&self) -> Isa {
        self.layers
            .first()
            .map(|l| l.packed.isa())
            .unwrap_or(Isa::Portable)
    }

    /// The same model with its weights packed for `isa` (which this CPU must have): to compare
    /// the paths.
    pub fn with_isa(&self, isa: Isa) -> Result<CnnInt8Model> {
        if !Isa::available().contains(&isa) {
            return Err(Error::param("isa", "this CPU does not have it", isa.name()));
        }
        let mut m = self.clone();
        for l in &mut m.layers {
            *l = QLayer::new(l.layer.clone(), l.w_scale.clone(), isa);
        }
        Ok(m)
    }
}

/// Softmax of each row.
fn softmax_rows(mut l: Array2<f32>) -> Array2<f32> {
    for mut row in l.rows_mut() {
        let m = row.fold(f32::MIN, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row.mapv_inplace(|v| v / s);
    }
    l
}

impl Classifier for CnnInt8Model {
    fn kind(&self) -> &'static str {
        KIND
    }

    classifier_info_methods!();

    fn scores(&self, ds: &Dataset) -> Result<Array2<f32>> {
        Ok(softmax_rows(self.logits(ds)?))
    }

    fn predict(&self, ds: &Dataset) -> Result<Vec<u32>> {
        Ok(self
            .logits(ds)?
            .rows()
            .into_iter()
            .map(|r| argmax(r.iter().copied()).0)
            .collect())
    }

    fn predict_scored(&self, ds: &Dataset) -> Result<Vec<(u32, f32)>> {
        Ok(self
            .scores(ds)?
            .rows()
            .into_iter()
            .map(|r| argmax(r.iter().copied()))
            .collect())
    }

    /// Weights and biases of the folded network.
    fn n_params(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.layer.k * l.layer.n + l.layer.n)
            .sum()
    }

    /// The image, each conv block's output (after pooling), each hidden layer and the logits.
    fn dims(&self) -> Result<Vec<(String, usize)>> {
        let mut dims = vec![("image".to_string(), self.info.rows * self.info.cols)];
        let (mut h, mut w) = (self.info.rows, self.info.cols);
        let (mut conv, mut fc) = (0, 0);
        for l in &self.layers {
            (h, w) = l.layer.out_size(h, w);
            let name = match l.layer.geom {
                Geom::Conv { .. } => {
                    conv += 1;
                    format!("conv{conv}")
                }
                Geom::Dense { .. } if l.layer.relu => {
                    fc += 1;
                    format!("fc{fc}")
                }
                Geom::Dense { .. } => "logits".into(),
            };
            dims.push((name, h * w * l.layer.n));
        }
        Ok(dims)
    }

    fn to_onnx(&self, opts: &crate::onnx::ExportOptions) -> Result<Vec<u8>> {
        onnx::to_onnx(self, opts)
    }
}

/// Index and value of the largest value (the first of equals).
fn argmax(v: impl Iterator<Item = f32>) -> (u32, f32) {
    v.enumerate().fold(
        (0, f32::MIN),
        |b, (i, x)| if x > b.1 { (i as u32, x) } else { b },
    )
}

#[cfg(test)]
mod tests;
