//! The network: parameters we own (so that we can seed them and save them in our model
//! format), and a forward pass over candle tensors.
//!
//! Layers, in order: for each entry of [`CnnConfig::channels`] a block `conv{i}` (3x3, padding
//! 1, no bias) → `bn{i}` (batch norm) → ReLU → optional squeeze-and-excitation `se{i}` →
//! max-pool 2; then flatten → dropout → `fc0` (hidden, ReLU) → dropout → `out`.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor, Var, D};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::config::CnnConfig;
use crate::error::{Error, Result};

/// Named tensors as (name, shape, values), in a fixed order: what a checkpoint holds.
pub type NamedTensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// The same tensors by name: shape and values.
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Batch norm's epsilon and running-average momentum (PyTorch's defaults).
pub(crate) const BN_EPS: f64 = 1e-5;
pub(crate) const BN_MOMENTUM: f64 = 0.1;

/// Convert a candle error into ours, naming what was being done.
pub(crate) fn ce(what: &'static str) -> impl Fn(candle_core::Error) -> Error {
    move |e| Error::Candle {
        what,
        reason: e.to_string(),
    }
}

/// One batch norm layer's statistics over one training batch.
#[derive(Debug, Clone)]
pub(crate) struct BnStats {
    /// Block index.
    pub layer: usize,
    /// Batch mean, `(C,)`.
    pub mean: Tensor,
    /// Biased batch variance, `(C,)`.
    pub var: Tensor,
    /// Values per channel (N * H * W).
    pub count: usize,
}

/// A trainable tensor.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub var: Var,
    /// Whether weight decay applies (weights of conv / linear layers; not biases or batch
    /// norm's scale and shift).
    pub decay: bool,
}

/// All the network's tensors.
#[derive(Debug, Clone)]
pub(crate) struct Net {
    pub channels: Vec<usize>,
    pub se_reduction: Option<usize>,
    pub hidden: Vec<usize>,
    pub dropout: f32,
    pub rows: usize,
    pub cols: usize,
    /// Trainable parameters by name.
    pub params: BTreeMap<String, Param>,
    /// Batch norm running statistics by name (`bn{i}.running_mean`, `bn{i}.running_var`).
    pub buffers: BTreeMap<String, Tensor>,
}

/// The shapes of every parameter, by name, and whether it takes weight decay.
pub(crate) fn param_shapes(
    cfg: &CnnConfig,
    rows: usize,
    cols: usize,
    n_classes: usize,
) -> Result<Vec<(String, Vec<usize>, bool)>> {
    let (fr, fc) = cfg.feature_map_size(rows, cols)?;
    let mut v = Vec::new();
    let mut c_in = 1;
    for (i, &c) in cfg.channels.iter().enumerate() {
        v.push((format!("conv{i}.weight"), vec![c, c_in, 3, 3], true));
        v.push((format!("bn{i}.weight"), vec![c], false));
        v.push((format!("bn{i}.bias"), vec![c], false));
        if let Some(r) = cfg.se_reduction {
            let m = (c / r).max(1);
            v.push((format!("se{i}.fc1.weight"), vec![m, c], true));
            v.push((format!("se{i}.fc1.bias"), vec![m], false));
            v.push((format!("se{i}.fc2.weight"), vec![c, m], true));
            v.push((format!("se{i}.fc2.bias"), vec![c], false));
        }
        c_in = c;
    }
    // Checked: the sizes may come from a model file's metadata (a declared size is compared
    // with the file's tensors before anything is allocated for it).
    let mut f_in = c_in
        .checked_mul(fr)
        .and_then(|v| v.checked_mul(fc))
        .filter(|&v| {
            v.checked_mul(cfg.hidden.first().copied().unwrap_or(n_classes))
                .is_some()
        })
        .ok_or_else(|| {
            Error::param(
                "input",
                "image size overflows the dense layer's dimensions",
                format!("{rows}x{cols}"),
            )
        })?;
    for (i, &h) in cfg.hidden.iter().enumerate() {
        v.push((format!("fc{i}.weight"), vec![h, f_in], true));
        v.push((format!("fc{i}.bias"), vec![h], false));
        f_in = h;
    }
    v.push(("out.weight".into(), vec![n_classes, f_in], true));
    v.push(("out.bias".into(), vec![n_classes], false));
    Ok(v)
}

/// The batch-norm running statistics, by name, with their length.
pub(crate) fn buffer_shapes(cfg: &CnnConfig) -> Vec<(String, usize)> {
    cfg.channels
        .iter()
        .enumerate()
        .flat_map(|(i, &c)| {
            [
                (format!("bn{i}.running_mean"), c),
                (format!("bn{i}.running_var"), c),
            ]
        })
        .collect()
}

impl Net {
    /// A network with He-initialised weights drawn from `rng`.
    pub fn init(
        cfg: &CnnConfig,
        rows: usize,
        cols: usize,
        n_classes: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Net> {
        let dev = super::device();
        let shapes = param_shapes(cfg, rows, cols, n_classes)?;
        let count = shapes.iter().fold(0u64, |a, (_, s, _)| {
            a.saturating_add(crate::budget::bytes_of(s))
        });
        // The weights, their gradients and the optimiser's two moments.
        crate::budget::check_memory(
            format!("a CNN of {count} parameters ({rows}x{cols} images)"),
            count.saturating_mul(16),
            "use fewer channels, a smaller hidden layer or smaller images (--resize)",
        )?;
        let mut params = BTreeMap::new();
        for (name, shape, decay) in shapes {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with(".weight") && shape.len() > 1 {
                // He (Kaiming) normal, fan-in mode, for ReLU: std = sqrt(2 / fan_in).
                let fan_in: usize = shape[1..].iter().product();
                let std = (2.0 / fan_in as f64).sqrt();
                (0..n)
                    .map(|_| {
                        let z: f64 = StandardNormal.sample(rng);
                        (z * std) as f32
                    })
                    .collect()
            } else if name.starts_with("bn") && name.ends_with(".weight") {
                vec![1.0; n]
            } else {
                vec![0.0; n]
            };
            let t = Tensor::from_vec(values, shape, &dev).map_err(ce("initialising weights"))?;
            let var = Var::from_tensor(&t).map_err(ce("initialising weights"))?;
            params.insert(name, Param { var, decay });
        }
        let mut buffers = BTreeMap::new();
        for (name, c) in buffer_shapes(cfg) {
            let t = if name.ends_with("running_var") {
                Tensor::ones(c, DType::F32, &dev)
            } else {
                Tensor::zeros(c, DType::F32, &dev)
            };
            buffers.insert(name, t.map_err(ce("initialising weights"))?);
        }
        Ok(Net {
            channels: cfg.channels.clone(),
            se_reduction: cfg.se_reduction,
            hidden: cfg.hidden.clone(),
            dropout: cfg.dropout,
            rows,
            cols,
            params,
            buffers,
        })
    }

    fn p(&self, name: &str) -> Result<&Tensor> {
        self.params
            .get(name)
            .map(|p| p.var.as_tensor())
            .ok_or_else(|| Error::Candle {
                what: "forward pass",
                reason: format!("missing parameter {name}"),
            })
    }

    fn buf(&self, name: &str) -> Result<&Tensor> {
        self.buffers.get(name).ok_or_else(|| Error::Candle {
            what: "forward pass",
            reason: format!("missing buffer {name}"),
        })
    }

    /// Number of trainable values.
    pub fn n_params(&self) -> usize {
        self.params.values().map(|p| p.var.elem_count()).sum()
    }

    /// Logits for a batch `x` of shape `(n, 1, rows, cols)`. In training mode batch norm uses
    /// the batch's statistics (returned, for the running averages) and dropout draws its masks
    /// from `rng`; in evaluation mode batch norm uses the running statistics and dropout is off.
    pub fn forward(
        &self,
        x: &Tensor,
        train: Option<&mut ChaCha8Rng>,
    ) -> Result<(Tensor, Vec<BnStats>)> {
        let e = ce("forward pass");
        let training = train.is_some();
        let mut rng = train;
        let mut stats = Vec::new();
        let mut h = x.clone();
        for i in 0..self.channels.len() {
            let w = self.p(&format!("conv{i}.weight"))?;
            let gamma = self.p(&format!("bn{i}.weight"))?;
            let beta = self.p(&format!("bn{i}.bias"))?;
            let se = self.se_reduction.is_some();
            if training && !se {
                // The whole block (conv → batch norm → max-pool → ReLU) as one graph node:
                // candle's backward allocates, zeroes and adds a gradient for every node input,
                // so the full-size convolution output is best kept out of the graph. The image
                // itself needs no gradient: skip that work in the first layer.
                let (z, mean, var) =
                    super::ops::conv_bn_train_pool_relu(&h, w, gamma, beta, 1, i > 0, BN_EPS, 2)
                        .map_err(&e)?;
                // Values per channel of the (stride-1, padding-1) convolution's output.
                let (n, _, hh, ww) = h.dims4().map_err(&e)?;
                let (_, _, kh, kw) = w.dims4().map_err(&e)?;
                let (hh, ww) = (
                    (hh + 2).saturating_sub(kh) + 1,
                    (ww + 2).saturating_sub(kw) + 1,
                );
                stats.push(BnStats {
                    layer: i,
                    mean,
                    var,
                    count: n * hh * ww,
                });
                h = z;
                continue;
            }
            // The image itself needs no gradient: skip that work in the first layer.
            h = super::ops::conv2d(&h, w, 1, i > 0).map_err(&e)?;
            let (n, _, hh, ww) = h.dims4().map_err(&e)?;
            let mean_var = (
                self.buf(&format!("bn{i}.running_mean"))?,
                self.buf(&format!("bn{i}.running_var"))?,
            );
            h = if !se {
                // Evaluation (training without squeeze-and-excitation took the fused block
                // above, on every device: off the CPU `conv_bn_train_pool_relu` itself falls
                // back to the unfused ops). Batch norm with the running statistics → max-pool →
                // ReLU as one op; max-pooling and ReLU commute, so pooling first does the ReLU
                // on a quarter of the values.
                super::ops::batch_norm_eval_pool_relu(
                    &h, gamma, beta, mean_var.0, mean_var.1, BN_EPS, 2,
                )
                .map_err(&e)?
            } else if training {
                // With squeeze-and-excitation: batch norm → ReLU → SE → max-pool.
                let (y, mean, var) =
                    super::ops::batch_norm_train(&h, gamma, beta, BN_EPS).map_err(&e)?;
                stats.push(BnStats {
                    layer: i,
                    mean,
                    var,
                    count: n * hh * ww,
                });
                let y = super::ops::relu(&y).map_err(&e)?;
                super::ops::max_pool2d(&self.squeeze_excite(i, &y)?, 2).map_err(&e)?
            } else {
                let y =
                    super::ops::batch_norm_eval(&h, gamma, beta, mean_var.0, mean_var.1, BN_EPS)
                        .map_err(&e)?;
                let y = super::ops::relu(&y).map_err(&e)?;
                super::ops::max_pool2d(&self.squeeze_excite(i, &y)?, 2).map_err(&e)?
            };
        }
        h = h.flatten_from(1).map_err(&e)?;
        for i in 0..self.hidden.len() {
            h = self.dropout(&h, rng.as_deref_mut())?;
            h = super::ops::relu(&self.linear(&h, &format!("fc{i}"))?).map_err(&e)?;
        }
        h = self.dropout(&h, rng)?;
        let logits = self.linear(&h, "out")?;
        Ok((logits, stats))
    }

    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let e = ce("forward pass");
        let w = self.p(&format!("{name}.weight"))?;
        let b = self.p(&format!("{name}.bias"))?;
        x.matmul(&w.t().map_err(&e)?)
            .map_err(&e)?
            .broadcast_add(b)
            .map_err(&e)
    }

    fn squeeze_excite(&self, i: usize, h: &Tensor) -> Result<Tensor> {
        let e = ce("forward pass");
        let s = h.mean((2, 3)).map_err(&e)?;
        let s = self.linear(&s, &format!("se{i}.fc1"))?.relu().map_err(&e)?;
        let s = candle_nn::ops::sigmoid(&self.linear(&s, &format!("se{i}.fc2"))?).map_err(&e)?;
        h.broadcast_mul(&s.unsqueeze(2).map_err(&e)?.unsqueeze(3).map_err(&e)?)
            .map_err(&e)
    }

    /// Inverted dropout with a mask drawn from our seeded generator (candle's cannot be
    /// seeded).
    fn dropout(&self, x: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let (Some(rng), true) = (rng, self.dropout > 0.0) else {
            return Ok(x.clone());
        };
        let e = ce("dropout");
        let keep = 1.0 - self.dropout;
        let scale = 1.0 / keep;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if rng.gen::<f32>() < keep { scale } else { 0.0 })
            .collect();
        let m = Tensor::from_vec(mask, x.shape(), x.device()).map_err(&e)?;
        x.mul(&m).map_err(&e)
    }

    /// Update the running statistics from one training batch's (PyTorch's rule: the running
    /// variance takes the unbiased batch variance).
    pub fn update_running(&mut self, stats: &[BnStats]) -> Result<()> {
        let e = ce("batch norm statistics");
        let m = BN_MOMENTUM;
        for BnStats {
            layer: i,
            mean,
            var,
            count,
        } in stats
        {
            let count = *count;
            let unbias = if count > 1 {
                count as f64 / (count as f64 - 1.0)
            } else {
                1.0
            };
            let rm = format!("bn{i}.running_mean");
            let rv = format!("bn{i}.running_var");
            let old_m = self.buf(&rm)?.clone();
            let old_v = self.buf(&rv)?.clone();
            let new_m = ((old_m * (1.0 - m)).map_err(&e)?
                + (mean.detach().flatten_all().map_err(&e)? * m).map_err(&e)?)
            .map_err(&e)?;
            let new_v = ((old_v * (1.0 - m)).map_err(&e)?
                + (var.detach().flatten_all().map_err(&e)? * (m * unbias)).map_err(&e)?)
            .map_err(&e)?;
            self.buffers.insert(rm, new_m);
            self.buffers.insert(rv, new_v);
        }
        Ok(())
    }

    /// Every tensor (parameters and buffers) as `(name, shape, values)`, in name order.
    pub fn export(&self) -> Result<NamedTensors> {
        let e = ce("reading weights");
        let mut out = Vec::new();
        for (n, p) in &self.params {
            let t = p.var.as_tensor();
            out.push((
                n.clone(),
                t.dims().to_vec(),
                t.flatten_all().map_err(&e)?.to_vec1().map_err(&e)?,
            ));
        }
        for (n, t) in &self.buffers {
            out.push((
                n.clone(),
                t.dims().to_vec(),
                t.flatten_all().map_err(&e)?.to_vec1().map_err(&e)?,
            ));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Every tensor by name ([`Net::export`] as a map).
    pub fn tensors(&self) -> Result<Tensors> {
        Ok(self
            .export()?
            .into_iter()
            .map(|(n, s, v)| (n, (s, v)))
            .collect())
    }

    /// Set every tensor from `(name, values)` (as [`Net::export`] gives them); shapes are
    /// checked.
    pub fn import(&mut self, tensors: &BTreeMap<String, Vec<f32>>) -> Result<()> {
        let e = ce("setting weights");
        for (n, p) in &self.params {
            let v = tensors.get(n).ok_or_else(|| Error::Candle {
                what: "setting weights",
                reason: format!("missing tensor {n}"),
            })?;
            let t = Tensor::from_slice(v, p.var.shape(), &super::device()).map_err(&e)?;
            p.var.set(&t).map_err(&e)?;
        }
        let names: Vec<String> = self.buffers.keys().cloned().collect();
        for n in names {
            let v = tensors.get(&n).ok_or_else(|| Error::Candle {
                what: "setting weights",
                reason: format!("missing tensor {n}"),
            })?;
            let shape = self.buffers[&n].shape().clone();
            let t = Tensor::from_slice(v, shape, &super::device()).map_err(&e)?;
            self.buffers.insert(n, t);
        }
        Ok(())
    }
}

/// Index of the largest logit of each row.
pub(crate) fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    let e = ce("prediction");
    logits
        .argmax(D::Minus1)
        .map_err(&e)?
        .to_vec1::<u32>()
        .map_err(&e)
}
