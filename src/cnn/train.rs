//! The training loop: losses, optimisers, learning-rate schedule, gradient clipping, early
//! stopping with the best checkpoint restored.
//!
//! candle-nn's `SGD` has no momentum or weight decay, its `AdamW` decays every tensor (biases
//! and batch norm too), and it has neither schedules nor clipping; the optimisers here are a
//! few lines over plain `f32` slices, which also makes each step's arithmetic independent of
//! the thread count.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{Tensor, D};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::aug::{pixel_stats, prepare_batch, rng_for};
use super::config::{CnnConfig, Loss, Optimizer, Schedule};
use super::net::{argmax_rows, ce, Net};
use super::{CnnInfo, CnnModel, EpochLog, TrainSummary};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::metrics::median;

/// Learning rate at step `t` (from 0) of `total`: linear warm-up over `warmup` steps, then
/// cosine decay to 0 or constant.
pub(crate) fn lr_at(cfg: &CnnConfig, t: usize, warmup: usize, total: usize) -> f64 {
    if t < warmup {
        return cfg.lr * (t + 1) as f64 / warmup as f64;
    }
    match cfg.schedule {
        Schedule::Constant => cfg.lr,
        Schedule::Cosine => {
            let span = total.saturating_sub(warmup).max(1) as f64;
            let p = ((t - warmup) as f64 / span).min(1.0);
            cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
        }
    }
}

/// The mean loss of a batch (`class_weights` are used by [`Loss::Balanced`] only).
pub(crate) fn loss_fn(
    loss: &Loss,
    logits: &Tensor,
    labels: &Tensor,
    label_values: &[u32],
    class_weights: &[f32],
) -> Result<Tensor> {
    let e = ce("loss");
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1).map_err(&e)?;
    let lpt = logp
        .gather(&labels.unsqueeze(1).map_err(&e)?, 1)
        .map_err(&e)?
        .squeeze(1)
        .map_err(&e)?;
    match *loss {
        Loss::CrossEntropy => lpt.mean_all().map_err(&e)?.neg().map_err(&e),
        Loss::Balanced => {
            let w: Vec<f32> = label_values
                .iter()
                .map(|&l| class_weights[l as usize])
                .collect();
            let total: f32 = w.iter().sum();
            let w = Tensor::from_vec(w, label_values.len(), &super::device()).map_err(&e)?;
            (lpt.mul(&w).map_err(&e)?.sum_all().map_err(&e)? / (-(total as f64))).map_err(&e)
        }
        Loss::Focal { gamma, alpha } => {
            // -alpha * (1 - p_t)^gamma * log p_t
            let pt = lpt.exp().map_err(&e)?;
            let one_minus = pt
                .affine(-1.0, 1.0)
                .map_err(&e)?
                .clamp(0.0f32, 1.0f32)
                .map_err(&e)?;
            let focal = if gamma == 0.0 {
                lpt.clone()
            } else {
                one_minus
                    .powf(gamma as f64)
                    .map_err(&e)?
                    .mul(&lpt)
                    .map_err(&e)?
            };
            (focal.mean_all().map_err(&e)? * (-(alpha as f64))).map_err(&e)
        }
    }
}

/// Optimiser state: one slot (momentum / first moment) and, for AdamW, a second moment per
/// parameter.
struct OptState {
    m: BTreeMap<String, Vec<f32>>,
    v: BTreeMap<String, Vec<f32>>,
    t: i32,
}

const ADAM_B1: f64 = 0.9;
const ADAM_B2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

/// One optimiser step on `net` from the gradients of `loss`; returns the gradient norm before
/// clipping.
fn step(net: &Net, loss: &Tensor, cfg: &CnnConfig, lr: f64, st: &mut OptState) -> Result<f64> {
    let e = ce("backward pass");
    let grads = loss.backward().map_err(&e)?;
    let mut gs: Vec<(String, Vec<f32>)> = Vec::with_capacity(net.params.len());
    let mut sq = 0.0f64;
    for (name, p) in &net.params {
        let g = match grads.get(p.var.as_tensor()) {
            Some(g) => g.flatten_all().map_err(&e)?.to_vec1::<f32>().map_err(&e)?,
            None => vec![0.0; p.var.elem_count()],
        };
        sq += g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
        gs.push((name.clone(), g));
    }
    let norm = sq.sqrt();
    if !norm.is_finite() {
        return Err(Error::Candle {
            what: "training",
            reason: "the gradient is not finite (loss diverged); try a lower --lr or \
                     --clip-norm"
                .into(),
        });
    }
    let clip = match cfg.clip_norm {
        Some(c) if norm > c => (c / (norm + 1e-6)) as f32,
        _ => 1.0,
    };
    st.t += 1;
    let e = ce("optimiser step");
    for (name, g) in gs {
        let p = &net.params[&name];
        let mut w = p
            .var
            .as_tensor()
            .flatten_all()
            .map_err(&e)?
            .to_vec1::<f32>()
            .map_err(&e)?;
        let wd = if p.decay { cfg.weight_decay } else { 0.0 };
        let m =
            st.m.entry(name.clone())
                .or_insert_with(|| vec![0.0; w.len()]);
        match cfg.optimizer {
            Optimizer::Sgd => {
                // PyTorch's SGD: g += wd * w; buf = mu * buf + g; w -= lr * buf.
                let (mu, lr, wd) = (cfg.momentum as f32, lr as f32, wd as f32);
                for ((wi, &gi), mi) in w.iter_mut().zip(&g).zip(m.iter_mut()) {
                    let gi = gi * clip + wd * *wi;
                    *mi = mu * *mi + gi;
                    *wi -= lr * *mi;
                }
            }
            Optimizer::AdamW => {
                let v =
                    st.v.entry(name.clone())
                        .or_insert_with(|| vec![0.0; w.len()]);
                let bc1 = 1.0 - ADAM_B1.powi(st.t);
                let bc2 = 1.0 - ADAM_B2.powi(st.t);
                let step = (lr / bc1) as f32;
                let bc2s = bc2.sqrt() as f32;
                let decay = (1.0 - lr * wd) as f32;
                let (b1, b2) = (ADAM_B1 as f32, ADAM_B2 as f32);
                for (((wi, &gi), mi), vi) in
                    w.iter_mut().zip(&g).zip(m.iter_mut()).zip(v.iter_mut())
                {
                    let gi = gi * clip;
                    *mi = b1 * *mi + (1.0 - b1) * gi;
                    *vi = b2 * *vi + (1.0 - b2) * gi * gi;
                    *wi = *wi * decay - step * *mi / ((*vi).sqrt() / bc2s + ADAM_EPS as f32);
                }
            }
        }
        let t = Tensor::from_vec(w, p.var.shape(), &super::device()).map_err(&e)?;
        p.var.set(&t).map_err(&e)?;
    }
    Ok(norm)
}

/// Evaluation-mode logits for images `indices` of `pixels`, batch by batch: `each` gets every
/// batch's `(n, classes)` logits in order.
fn for_each_logits(
    net: &Net,
    pixels: &[u8],
    indices: &[usize],
    (mean, std): (f32, f32),
    batch: usize,
    mut each: impl FnMut(&Tensor) -> Result<()>,
) -> Result<()> {
    let e = ce("prediction");
    let (rows, cols) = (net.rows, net.cols);
    let mut buf = Vec::new();
    for chunk in indices.chunks(batch.max(1)) {
        buf.resize(chunk.len() * rows * cols, 0.0);
        prepare_batch(pixels, rows, cols, chunk, mean, std, None, &mut buf);
        let x =
            Tensor::from_slice(&buf, (chunk.len(), 1, rows, cols), &super::device()).map_err(&e)?;
        let (logits, _) = net.forward(&x, None)?;
        let values = logits
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(&e)?;
        let k = values.len() / chunk.len().max(1);
        crate::classifier::check_finite_outputs(values, k, |i| format!("image {}", chunk[i]))?;
        each(&logits)?;
    }
    Ok(())
}

/// Evaluation-mode predictions for images `indices` of `pixels`, in batches.
pub(crate) fn predict_indices(
    net: &Net,
    pixels: &[u8],
    indices: &[usize],
    norm: (f32, f32),
    batch: usize,
) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(indices.len());
    for_each_logits(net, pixels, indices, norm, batch, |l| {
        out.extend(argmax_rows(l)?);
        Ok(())
    })?;
    Ok(out)
}

/// Evaluation-mode softmax probabilities for images `indices` of `pixels`, in batches.
pub(crate) fn proba_indices(
    net: &Net,
    pixels: &[u8],
    indices: &[usize],
    norm: (f32, f32),
    batch: usize,
) -> Result<Vec<Vec<f32>>> {
    let e = ce("prediction");
    let mut out = Vec::with_capacity(indices.len());
    for_each_logits(net, pixels, indices, norm, batch, |l| {
        let p = candle_nn::ops::softmax_last_dim(l).map_err(&e)?;
        out.extend(p.to_vec2::<f32>().map_err(&e)?);
        Ok(())
    })?;
    Ok(out)
}

/// Train (see [`CnnConfig::fit`]).
pub(crate) fn fit(
    cfg: &CnnConfig,
    data: &Dataset,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<(CnnModel, TrainSummary)> {
    fit_from(cfg, data, None, on_epoch)
}

/// Where fine-tuning starts: a trained network, its input normalisation, and 0/1 masks (by
/// parameter name) multiplied into those parameters after every step, so that pruned weights
/// stay zero.
pub(crate) struct Start {
    pub net: Net,
    pub mean: f32,
    pub std: f32,
    pub masks: BTreeMap<String, Vec<f32>>,
}

/// Train from `start` (fine-tuning) or, without one, from freshly initialised weights with the
/// normalisation of the training split.
pub(crate) fn fit_from(
    cfg: &CnnConfig,
    data: &Dataset,
    start: Option<Start>,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<(CnnModel, TrainSummary)> {
    cfg.validate()?;
    // This CNN reads gray images: colour ones are converted (data::Color's rule).
    let data = &*data.with_channels(1);
    let k = data.class_names.len();
    if data.is_empty() {
        return Err(Error::param("data", "training set is empty", 0));
    }
    if k < 2 {
        return Err(Error::param("classes", "needs at least 2 classes", k));
    }
    cfg.feature_map_size(data.rows, data.cols)?;
    let t_start = Instant::now();
    // Validation split: stratified, seeded; indices into `data`.
    let (train_idx, val_idx) = if cfg.val_fraction > 0.0 {
        split_indices(data, cfg.val_fraction, cfg.seed)?
    } else {
        ((0..data.len()).collect(), Vec::new())
    };
    if train_idx.is_empty() {
        return Err(Error::param(
            "val_fraction",
            "leaves no training images",
            cfg.val_fraction,
        ));
    }
    let (mean, std) = if let Some(s) = &start {
        (s.mean, s.std)
    } else {
        let n = data.rows * data.cols;
        let px: Vec<u8> = train_idx
            .iter()
            .flat_map(|&i| data.pixels[i * n..(i + 1) * n].iter().copied())
            .collect();
        pixel_stats(&px)
    };
    let mut counts = vec![0usize; k];
    for &i in &train_idx {
        counts[data.labels[i] as usize] += 1;
    }
    // scikit-learn's "balanced": n / (k * n_c); a class absent from training gets weight 0.
    let class_weights: Vec<f32> = counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                train_idx.len() as f32 / (k as f32 * c as f32)
            }
        })
        .collect();

    let (mut net, masks) = match start {
        Some(s) => {
            let e = ce("fine-tuning");
            let mut masks = Vec::new();
            for (name, m) in s.masks {
                let p = s.net.params.get(&name).ok_or_else(|| Error::Candle {
                    what: "fine-tuning",
                    reason: format!("no parameter {name} for its mask"),
                })?;
                let t = Tensor::from_vec(m, p.var.shape(), &super::device()).map_err(&e)?;
                masks.push((name, t));
            }
            (s.net, masks)
        }
        None => (
            Net::init(cfg, data.rows, data.cols, k, &mut rng_for(&[cfg.seed, 0]))?,
            Vec::new(),
        ),
    };
    let steps_per_epoch = train_idx.len().div_ceil(cfg.batch_size);
    let total = steps_per_epoch * cfg.epochs;
    let warmup = (cfg.warmup_epochs * steps_per_epoch as f64).round() as usize;
    let mut st = OptState {
        m: BTreeMap::new(),
        v: BTreeMap::new(),
        t: 0,
    };
    let (rows, cols) = (data.rows, data.cols);
    let mut buf = Vec::new();
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, super::net::NamedTensors)> = None;
    let mut since_best = 0;
    let mut stopped_early = false;
    let mut t = 0usize;
    let e = ce("training");
    for epoch in 1..=cfg.epochs {
        let t_epoch = Instant::now();
        let mut order = train_idx.clone();
        order.shuffle(&mut rng_for(&[cfg.seed, 2, epoch as u64]));
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = cfg.lr;
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            lr = lr_at(cfg, t, warmup, total);
            buf.resize(chunk.len() * rows * cols, 0.0);
            prepare_batch(
                &data.pixels,
                rows,
                cols,
                chunk,
                mean,
                std,
                Some((cfg.seed, epoch as u64, &cfg.augment)),
                &mut buf,
            );
            let x = Tensor::from_slice(&buf, (chunk.len(), 1, rows, cols), &super::device())
                .map_err(&e)?;
            let yv: Vec<u32> = chunk.iter().map(|&i| data.labels[i]).collect();
            let y = Tensor::from_slice(&yv, chunk.len(), &super::device()).map_err(&e)?;
            let mut drop_rng = rng_for(&[cfg.seed, 3, epoch as u64, b as u64]);
            let (logits, stats) = net.forward(&x, Some(&mut drop_rng))?;
            let loss = loss_fn(&cfg.loss, &logits, &y, &yv, &class_weights)?;
            let lv = loss.to_scalar::<f32>().map_err(&e)? as f64;
            if !lv.is_finite() {
                return Err(Error::Candle {
                    what: "training",
                    reason: format!(
                        "the loss became {lv} in epoch {epoch}; try a lower --lr or --clip-norm"
                    ),
                });
            }
            let pred = argmax_rows(&logits)?;
            correct += pred.iter().zip(&yv).filter(|(a, b)| a == b).count();
            seen += chunk.len();
            loss_sum += lv * chunk.len() as f64;
            step(&net, &loss, cfg, lr, &mut st)?;
            for (name, mask) in &masks {
                let v = &net.params[name].var;
                v.set(&v.as_tensor().mul(mask).map_err(&e)?).map_err(&e)?;
            }
            net.update_running(&stats)?;
            t += 1;
        }
        let train_secs = t_epoch.elapsed().as_secs_f64();
        let val_acc = if val_idx.is_empty() {
            None
        } else {
            let p = predict_indices(&net, &data.pixels, &val_idx, (mean, std), 1000)?;
            let truth: Vec<u32> = val_idx.iter().map(|&i| data.labels[i]).collect();
            Some(crate::metrics::accuracy(&p, &truth))
        };
        let log = EpochLog {
            epoch,
            loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_acc,
            images_per_sec: seen as f64 / train_secs.max(1e-9),
            lr,
            seconds: t_epoch.elapsed().as_secs_f64(),
        };
        on_epoch(&log);
        history.push(log);
        // Keep the best weights by validation accuracy (the last epoch without validation).
        let score = val_acc.unwrap_or(epoch as f64);
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, epoch, net.export()?));
            since_best = 0;
        } else {
            since_best += 1;
            if let Some(p) = cfg.patience {
                if !val_idx.is_empty() && since_best >= p && epoch < cfg.epochs {
                    stopped_early = true;
                    break;
                }
            }
        }
    }
    let (_, best_epoch, weights) = best.ok_or_else(|| Error::Candle {
        what: "training",
        reason: "no epoch ran".into(),
    })?;
    let map: BTreeMap<String, Vec<f32>> = weights.into_iter().map(|(n, _, v)| (n, v)).collect();
    net.import(&map)?;
    let summary = TrainSummary {
        history,
        best_epoch,
        stopped_early,
        seconds: t_start.elapsed().as_secs_f64(),
    };
    Ok((
        CnnModel {
            info: CnnInfo {
                config: cfg.clone(),
                class_names: data.class_names.clone(),
                rows,
                cols,
                mean,
                std,
                best_epoch,
                pruning: None,
            },
            net,
        },
        summary,
    ))
}

/// Stratified (train, validation) indices, seeded.
fn split_indices(data: &Dataset, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut rng = rng_for(&[seed, 4]);
    Ok(crate::data::split::stratified_indices(
        &data.labels,
        data.class_names.len(),
        fraction,
        &mut rng,
    ))
}

/// Timings of [`bench`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Trainable parameters.
    pub params: usize,
    /// Each timed training step (forward, loss, backward, optimiser), in milliseconds.
    pub train_step_ms: Vec<f64>,
    /// Median of `train_step_ms`.
    pub train_step_ms_median: f64,
    /// `batch / median step time`.
    pub train_images_per_s: f64,
    /// Evaluation-mode forward passes of `infer_batch` images, images per second (median).
    pub infer_images_per_s: f64,
    /// One image at a time, milliseconds per image (median).
    pub latency_ms: f64,
}

/// Time `steps` training steps of `batch` images after `warmup` untimed ones, then inference.
/// Images are taken from `data` in order, wrapping around; no augmentation (its cost is
/// reported by the training log, not here), so both sides of a peer comparison do the same
/// work.
pub fn bench(
    cfg: &CnnConfig,
    data: &Dataset,
    batch: usize,
    steps: usize,
    warmup: usize,
    infer_batch: usize,
) -> Result<BenchResult> {
    cfg.validate()?;
    let data = &*data.with_channels(1);
    if data.is_empty() || batch == 0 || infer_batch == 0 {
        return Err(Error::param(
            "batch",
            "needs images and batch sizes of at least 1",
            batch,
        ));
    }
    let k = data.class_names.len().max(2);
    let (rows, cols) = (data.rows, data.cols);
    let net = Net::init(cfg, rows, cols, k, &mut rng_for(&[cfg.seed, 0]))?;
    let (mean, std) = pixel_stats(&data.pixels);
    let e = ce("benchmark");
    let mut st = OptState {
        m: BTreeMap::new(),
        v: BTreeMap::new(),
        t: 0,
    };
    let mut net = net;
    let mut buf = vec![0.0f32; batch * rows * cols];
    let mut times = Vec::new();
    for s in 0..warmup + steps {
        let idx: Vec<usize> = (0..batch).map(|j| (s * batch + j) % data.len()).collect();
        prepare_batch(&data.pixels, rows, cols, &idx, mean, std, None, &mut buf);
        let yv: Vec<u32> = idx.iter().map(|&i| data.labels[i]).collect();
        let t = Instant::now();
        let x = Tensor::from_slice(&buf, (batch, 1, rows, cols), &super::device()).map_err(&e)?;
        let y = Tensor::from_slice(&yv, batch, &super::device()).map_err(&e)?;
        let mut rng = rng_for(&[cfg.seed, 3, s as u64]);
        let (logits, stats) = net.forward(&x, Some(&mut rng))?;
        let loss = loss_fn(&Loss::CrossEntropy, &logits, &y, &yv, &[])?;
        step(&net, &loss, cfg, cfg.lr, &mut st)?;
        net.update_running(&stats)?;
        if s >= warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let step_ms = median(&times);
    // Inference at infer_batch, a few repetitions.
    let idx: Vec<usize> = (0..infer_batch).map(|j| j % data.len()).collect();
    let mut ib = vec![0.0f32; infer_batch * rows * cols];
    prepare_batch(&data.pixels, rows, cols, &idx, mean, std, None, &mut ib);
    let x = Tensor::from_slice(&ib, (infer_batch, 1, rows, cols), &super::device()).map_err(&e)?;
    let _ = net.forward(&x, None)?;
    let mut it = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (l, _) = net.forward(&x, None)?;
        let _ = argmax_rows(&l)?;
        it.push(t.elapsed().as_secs_f64());
    }
    let mut lat = Vec::new();
    for j in 0..50.min(data.len()).max(1) {
        let x1 = Tensor::from_slice(
            &ib[(j % infer_batch) * rows * cols..(j % infer_batch + 1) * rows * cols],
            (1, 1, rows, cols),
            &super::device(),
        )
        .map_err(&e)?;
        let t = Instant::now();
        let (l, _) = net.forward(&x1, None)?;
        let _ = argmax_rows(&l)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(BenchResult {
        params: net.n_params(),
        train_step_ms_median: step_ms,
        train_images_per_s: batch as f64 / (step_ms / 1e3).max(1e-12),
        train_step_ms: times,
        infer_images_per_s: infer_batch as f64 / median(&it).max(1e-12),
        latency_ms: median(&lat),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn warmup_then_cosine_to_zero() {
        let cfg = CnnConfig::default().lr(1.0);
        let (warm, total) = (10, 110);
        assert!((lr_at(&cfg, 0, warm, total) - 0.1).abs() < 1e-12);
        assert!((lr_at(&cfg, 9, warm, total) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 10, warm, total) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 60, warm, total) - 0.5).abs() < 1e-12);
        assert!(lr_at(&cfg, 109, warm, total) < 1e-3);
        let mut prev = f64::MAX;
        for t in warm..total {
            let l = lr_at(&cfg, t, warm, total);
            assert!(l <= prev);
            prev = l;
        }
        let c = cfg.clone().schedule(Schedule::Constant);
        assert_eq!(lr_at(&c, 50, warm, total), 1.0);
        // no warm-up at all
        assert_eq!(lr_at(&cfg, 0, 0, total), 1.0);
    }

    fn logits() -> (Tensor, Tensor, Vec<u32>) {
        let v: Vec<f32> = vec![2.0, 0.5, -1.0, 0.1, 0.2, 3.0, -0.5, 1.5, 0.0];
        let l = Tensor::from_vec(v, (3, 3), &Device::Cpu).unwrap();
        let y = vec![0u32, 2, 1];
        (l, Tensor::from_slice(&y, 3, &Device::Cpu).unwrap(), y)
    }

    fn scalar(t: Tensor) -> f32 {
        t.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn cross_entropy_matches_a_hand_computation() {
        let (l, y, yv) = logits();
        let got = scalar(loss_fn(&Loss::CrossEntropy, &l, &y, &yv, &[]).unwrap());
        let rows = [[2.0f32, 0.5, -1.0], [0.1, 0.2, 3.0], [-0.5, 1.5, 0.0]];
        let mut want = 0.0;
        for (r, &t) in rows.iter().zip(&yv) {
            let lse = r.iter().map(|v| v.exp()).sum::<f32>().ln();
            want += lse - r[t as usize];
        }
        want /= 3.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn focal_with_gamma_zero_is_cross_entropy_and_gamma_down_weights_easy_samples() {
        let (l, y, yv) = logits();
        let ce_ = scalar(loss_fn(&Loss::CrossEntropy, &l, &y, &yv, &[]).unwrap());
        let focal = |gamma, alpha| {
            scalar(loss_fn(&Loss::Focal { gamma, alpha }, &l, &y, &yv, &[]).unwrap())
        };
        let f0 = focal(0.0, 1.0);
        assert!((ce_ - f0).abs() < 1e-6);
        let f2 = focal(2.0, 1.0);
        assert!(f2 < f0 && f2 > 0.0);
        let half = focal(0.0, 0.5);
        assert!((half - 0.5 * f0).abs() < 1e-6);
    }

    #[test]
    fn balanced_loss_is_the_weighted_mean() {
        let (l, y, yv) = logits();
        let ce_ = scalar(loss_fn(&Loss::CrossEntropy, &l, &y, &yv, &[]).unwrap());
        // Equal weights: plain cross-entropy.
        let eq = scalar(loss_fn(&Loss::Balanced, &l, &y, &yv, &[2.0, 2.0, 2.0]).unwrap());
        assert!((ce_ - eq).abs() < 1e-6);
        // All weight on class 2: the loss of sample 1 (label 2) alone.
        let only = scalar(loss_fn(&Loss::Balanced, &l, &y, &yv, &[0.0, 0.0, 1.0]).unwrap());
        let r = [0.1f32, 0.2, 3.0];
        let want = r.iter().map(|v| v.exp()).sum::<f32>().ln() - 3.0;
        assert!((only - want).abs() < 1e-5);
    }
}
