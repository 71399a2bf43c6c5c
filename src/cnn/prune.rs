//! Pruning a trained CNN: **structured** (whole conv filters removed by their L1 norm, Li et al.
//! 2017, "Pruning Filters for Efficient ConvNets"), giving a smaller dense network that is
//! really faster, or **unstructured** (the smallest weights of every conv and dense layer set to
//! zero, PyTorch's `l1_unstructured`), which keeps every shape and so saves no time with dense
//! kernels; then optional fine-tuning with the model's own training recipe.
//!
//! Structured, for each conv block `i` with `c` filters: keep the `c - round(amount c)` filters
//! (at least one) whose weights have the largest L1 norm, each layer ranked on its own trained
//! weights (the paper's "independent" strategy), in their original order. Everything that
//! reads a removed filter goes with it: its batch-norm scale, shift and running statistics, the
//! next conv's input channels, a squeeze-and-excitation block's input columns and gate rows
//! (whose hidden width becomes `kept / reduction`, the hidden units with the largest L1 norm of
//! their kept input weights), and the first dense layer's columns for that channel's positions.
//! The result is an ordinary CNN model file whose configuration has the smaller channel counts;
//! [`Pruning`] in the file records what was done.
//!
//! No crate prunes candle networks (candle has no pruning utilities), and the rules above are a
//! few index selections over the model's own tensors, so they are written here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::net::{NamedTensors, Net};
use super::{CnnInfo, CnnModel, EpochLog, TrainSummary};
use crate::data::Dataset;
use crate::error::{param, Error, Result};

/// Which pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneMethod {
    /// Remove whole conv filters (smaller and faster).
    Structured,
    /// Zero the smallest weights (same shapes, same speed).
    Unstructured,
}

impl std::fmt::Display for PruneMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PruneMethod::Structured => "structured",
            PruneMethod::Unstructured => "unstructured",
        })
    }
}

/// How to prune.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneConfig {
    /// Fraction of each conv layer's filters (structured) or of each layer's weights
    /// (unstructured) removed, in [0, 1).
    pub amount: f64,
    /// Structured or unstructured.
    pub method: PruneMethod,
    /// Epochs of fine-tuning after pruning (0: none), with the model's own recipe (optimiser,
    /// learning rate, schedule over these epochs, augmentation, validation split, seed).
    pub finetune_epochs: usize,
    /// Learning rate of the fine-tuning; the model's own when `None`.
    pub finetune_lr: Option<f64>,
}

impl Default for PruneConfig {
    /// Half of the filters, structured, three epochs of fine-tuning at the model's own rate.
    fn default() -> Self {
        PruneConfig {
            amount: 0.5,
            method: PruneMethod::Structured,
            finetune_epochs: 3,
            finetune_lr: None,
        }
    }
}

impl PruneConfig {
    /// Check every setting before any work: [`Error::InvalidParameter`] naming it.
    pub fn validate(&self) -> Result<()> {
        param("amount", self.amount).within(0.0..1.0, "a fraction in [0, 1) (0.5 removes half)")?;
        if let Some(lr) = self.finetune_lr {
            param("finetune_lr", lr).positive("a positive number")?;
        }
        Ok(())
    }
}

/// What pruning did, recorded in the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pruning {
    /// Structured or unstructured.
    pub method: PruneMethod,
    /// The amount asked for.
    pub amount: f64,
    /// Conv channels before pruning.
    pub original_channels: Vec<usize>,
    /// Learned parameters before pruning.
    pub original_params: usize,
    /// Weights set to zero (unstructured; 0 for structured).
    pub zeroed: usize,
    /// Epochs of fine-tuning run afterwards.
    pub finetune_epochs: usize,
}

/// The filters to keep of a conv layer: the `keep` largest L1 norms of the rows of `w`
/// (`rows` rows of `per` values), in increasing index order; ties go to the lower index.
fn keep_by_l1(w: &[f32], rows: usize, per: usize, keep: usize) -> Vec<usize> {
    let norms: Vec<f64> = (0..rows)
        .map(|r| {
            w[r * per..(r + 1) * per]
                .iter()
                .map(|v| f64::from(v.abs()))
                .sum()
        })
        .collect();
    let mut order: Vec<usize> = (0..rows).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    let mut kept: Vec<usize> = order[..keep.min(rows)].to_vec();
    kept.sort_unstable();
    kept
}

/// Rows `rows` and columns `cols` of a row-major matrix with `n_cols` columns.
fn select(w: &[f32], n_cols: usize, rows: &[usize], cols: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for &r in rows {
        let row = &w[r * n_cols..(r + 1) * n_cols];
        out.extend(cols.iter().map(|&c| row[c]));
    }
    out
}

/// Filters kept per layer when `amount` of `c` are removed: `c - round(amount c)`, at least 1.
pub fn kept_filters(c: usize, amount: f64) -> usize {
    let removed = (amount * c as f64).round() as usize;
    c.saturating_sub(removed).max(1)
}

use super::net::Tensors;

fn tensors(net: &Net) -> Result<Tensors> {
    net.tensors()
}

fn get<'a>(t: &'a Tensors, name: &str) -> Result<&'a (Vec<usize>, Vec<f32>)> {
    t.get(name).ok_or_else(|| Error::Candle {
        what: "pruning",
        reason: format!("missing tensor {name}"),
    })
}

/// Rebuild `m`'s network with `channels` and the tensors `values`.
fn rebuild(
    m: &CnnModel,
    channels: Vec<usize>,
    values: BTreeMap<String, Vec<f32>>,
) -> Result<CnnModel> {
    let mut cfg = m.info.config.clone();
    cfg.channels = channels;
    let mut net = Net::init(
        &cfg,
        m.info.rows,
        m.info.cols,
        m.info.class_names.len(),
        &mut super::aug::rng_for(&[0]),
    )?;
    net.import(&values)?;
    Ok(CnnModel {
        info: CnnInfo {
            config: cfg,
            ..m.info.clone()
        },
        net,
    })
}

impl CnnModel {
    /// Prune (without fine-tuning; see [`CnnModel::finetune`]). The result records
    /// [`Pruning`] (with `finetune_epochs` 0). A model already pruned keeps its first record's
    /// original channels and parameters.
    pub fn prune(&self, cfg: &PruneConfig) -> Result<CnnModel> {
        cfg.validate()?;
        let t = tensors(&self.net)?;
        let original_params = self
            .info
            .pruning
            .as_ref()
            .map_or(self.net.n_params(), |p| p.original_params);
        let original_channels = self
            .info
            .pruning
            .as_ref()
            .map_or(self.info.config.channels.clone(), |p| {
                p.original_channels.clone()
            });
        let (mut out, zeroed) = match cfg.method {
            PruneMethod::Structured => (self.prune_structured(&t, cfg.amount)?, 0),
            PruneMethod::Unstructured => {
                let (values, zeroed) = prune_unstructured(&t, cfg.amount);
                (
                    rebuild(self, self.info.config.channels.clone(), values)?,
                    zeroed,
                )
            }
        };
        out.info.pruning = Some(Pruning {
            method: cfg.method,
            amount: cfg.amount,
            original_channels,
            original_params,
            zeroed,
            finetune_epochs: 0,
        });
        Ok(out)
    }

    fn prune_structured(&self, t: &Tensors, amount: f64) -> Result<CnnModel> {
        let (fr, fc) = self
            .info
            .config
            .feature_map_size(self.info.rows, self.info.cols)?;
        let mut values: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        let mut channels = Vec::new();
        let mut prev: Vec<usize> = vec![0]; // the image's one channel
        let mut prev_c = 1;
        for (i, &c) in self.info.config.channels.iter().enumerate() {
            let (shape, w) = get(t, &format!("conv{i}.weight"))?;
            let per = shape[1..].iter().product::<usize>();
            let kept = keep_by_l1(w, c, per, kept_filters(c, amount));
            // conv: kept filters, kept input channels (each a kh x kw patch).
            let k2 = shape[2] * shape[3];
            let in_cols: Vec<usize> = prev.iter().flat_map(|&ci| ci * k2..(ci + 1) * k2).collect();
            values.insert(
                format!("conv{i}.weight"),
                select(w, prev_c * k2, &kept, &in_cols),
            );
            for n in ["weight", "bias", "running_mean", "running_var"] {
                let name = format!("bn{i}.{n}");
                let (_, v) = get(t, &name)?;
                values.insert(name, kept.iter().map(|&j| v[j]).collect());
            }
            if let Some(r) = self.info.config.se_reduction {
                let m = (c / r).max(1);
                let m_new = (kept.len() / r).max(1);
                let (_, w1) = get(t, &format!("se{i}.fc1.weight"))?; // [m, c]
                let (_, b1) = get(t, &format!("se{i}.fc1.bias"))?;
                let (_, w2) = get(t, &format!("se{i}.fc2.weight"))?; // [c, m]
                let (_, b2) = get(t, &format!("se{i}.fc2.bias"))?;
                let w1_kept = select(w1, c, &(0..m).collect::<Vec<_>>(), &kept);
                let hidden = keep_by_l1(&w1_kept, m, kept.len(), m_new);
                values.insert(
                    format!("se{i}.fc1.weight"),
                    select(
                        &w1_kept,
                        kept.len(),
                        &hidden,
                        &(0..kept.len()).collect::<Vec<_>>(),
                    ),
                );
                values.insert(
                    format!("se{i}.fc1.bias"),
                    hidden.iter().map(|&j| b1[j]).collect(),
                );
                values.insert(format!("se{i}.fc2.weight"), select(w2, m, &kept, &hidden));
                values.insert(
                    format!("se{i}.fc2.bias"),
                    kept.iter().map(|&j| b2[j]).collect(),
                );
            }
            channels.push(kept.len());
            prev = kept;
            prev_c = c;
        }
        // The first dense layer (or the output layer) reads the flattened last feature map,
        // channel by channel.
        let first = if self.info.config.hidden.is_empty() {
            "out".to_string()
        } else {
            "fc0".to_string()
        };
        let per = fr * fc;
        let cols: Vec<usize> = prev
            .iter()
            .flat_map(|&ci| ci * per..(ci + 1) * per)
            .collect();
        let (shape, w) = get(t, &format!("{first}.weight"))?;
        values.insert(
            format!("{first}.weight"),
            select(w, shape[1], &(0..shape[0]).collect::<Vec<_>>(), &cols),
        );
        for (name, (_, v)) in t {
            values.entry(name.clone()).or_insert_with(|| v.clone());
        }
        rebuild(self, channels, values)
    }

    /// Fine-tune this (pruned) model on `data` for `epochs` with its own training recipe (the
    /// learning rate `lr` when given), starting from its weights and keeping its input
    /// normalisation. After an unstructured pruning the zeroed weights stay zero (the mask is
    /// applied after every step). `data` must have the model's image size and classes.
    pub fn finetune(
        &self,
        data: &Dataset,
        epochs: usize,
        lr: Option<f64>,
        on_epoch: &mut dyn FnMut(&EpochLog),
    ) -> Result<(CnnModel, TrainSummary)> {
        crate::classifier::check_input(data, self.info.input())?;
        crate::classifier::check_classes(&self.info.class_names, &data.class_names)?;
        let mut cfg = self.info.config.clone();
        cfg.epochs = epochs;
        if let Some(lr) = lr {
            cfg.lr = lr;
        }
        cfg.validate()?;
        let masks = match &self.info.pruning {
            Some(p) if p.method == PruneMethod::Unstructured => zero_masks(&self.net.export()?),
            _ => BTreeMap::new(),
        };
        let start = super::train::Start {
            net: self.net.clone(),
            mean: self.info.mean,
            std: self.info.std,
            masks,
        };
        let (mut m, summary) = super::train::fit_from(&cfg, data, Some(start), on_epoch)?;
        // The recipe the model was trained with stays in its configuration.
        m.info.config = CnnConfig {
            channels: m.info.config.channels.clone(),
            ..self.info.config.clone()
        };
        m.info.pruning = self.info.pruning.clone().map(|mut p| {
            p.finetune_epochs += summary.history.len();
            p
        });
        Ok((m, summary))
    }
}

use super::CnnConfig;

/// The weights unstructured pruning works on: every conv and dense layer's weight matrix (not
/// biases, batch norm or squeeze-and-excitation).
fn prunable(name: &str) -> bool {
    name.ends_with(".weight")
        && (name.starts_with("conv") || name.starts_with("fc") || name == "out.weight")
}

/// Zero the `round(amount n)` smallest-magnitude weights of each prunable tensor (ties to
/// the lower index, as a stable sort gives); returns every tensor and the count zeroed.
fn prune_unstructured(t: &Tensors, amount: f64) -> (BTreeMap<String, Vec<f32>>, usize) {
    let mut zeroed = 0;
    let mut out = BTreeMap::new();
    for (name, (_, v)) in t {
        let mut v = v.clone();
        if prunable(name) {
            let k = (amount * v.len() as f64).round() as usize;
            let mut order: Vec<usize> = (0..v.len()).collect();
            order.sort_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()).then(a.cmp(&b)));
            for &j in &order[..k] {
                v[j] = 0.0;
            }
            zeroed += k;
        }
        out.insert(name.clone(), v);
    }
    (out, zeroed)
}

/// A 0/1 mask of the zero weights of every prunable tensor.
fn zero_masks(t: &NamedTensors) -> BTreeMap<String, Vec<f32>> {
    t.iter()
        .filter(|(n, _, _)| prunable(n))
        .map(|(n, _, v)| {
            (
                n.clone(),
                v.iter()
                    .map(|&x| if x == 0.0 { 0.0 } else { 1.0 })
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::Classifier;

    use crate::cnn::test_util::{images, model};

    /// `m` with the `amount` smallest weights zeroed.
    fn unstructured(m: &CnnModel, amount: f64) -> CnnModel {
        let cfg = PruneConfig {
            amount,
            method: PruneMethod::Unstructured,
            ..Default::default()
        };
        m.prune(&cfg).unwrap()
    }

    /// Make the filters `dead[i]` of block `i` exactly inert: zero weights, zero batch-norm
    /// shift and mean (so the block outputs exactly 0 for them), and, with SE, the hidden units
    /// `dead_se[i]` zero in and out.
    fn kill(m: &CnnModel, dead: &[Vec<usize>], dead_se: &[Vec<usize>]) -> CnnModel {
        let mut t: BTreeMap<String, (Vec<usize>, Vec<f32>)> = tensors(&m.net).unwrap();
        for (i, filters) in dead.iter().enumerate() {
            let (shape, w) = t.get_mut(&format!("conv{i}.weight")).unwrap();
            let per: usize = shape[1..].iter().product();
            for &f in filters {
                w[f * per..(f + 1) * per].fill(0.0);
            }
            for n in ["bias", "running_mean"] {
                let (_, v) = t.get_mut(&format!("bn{i}.{n}")).unwrap();
                for &f in filters {
                    v[f] = 0.0;
                }
            }
            if m.info.config.se_reduction.is_some() {
                let c = m.info.config.channels[i];
                let (_, w1) = t.get_mut(&format!("se{i}.fc1.weight")).unwrap();
                for &h in &dead_se[i] {
                    w1[h * c..(h + 1) * c].fill(0.0);
                }
                let (_, b1) = t.get_mut(&format!("se{i}.fc1.bias")).unwrap();
                for &h in &dead_se[i] {
                    b1[h] = 0.0;
                }
            }
        }
        let values = t.into_iter().map(|(n, (_, v))| (n, v)).collect();
        rebuild(m, m.info.config.channels.clone(), values).unwrap()
    }

    #[test]
    fn removing_exactly_inert_filters_changes_no_output() {
        for (se, hidden) in [(None, vec![8]), (None, vec![]), (Some(2), vec![8])] {
            let m = model(vec![6, 4], se, hidden.clone());
            // Half of each layer dead: filters 1, 3, 5 of block 0 and 0, 2 of block 1; with
            // SE (6 / 2 = 3 hidden, then 2 / 2 = 1 of block 1's 2) the hidden units that go.
            let dead = vec![vec![1, 3, 5], vec![0, 2]];
            let dead_se = vec![vec![1, 2], vec![0]];
            let inert = kill(&m, &dead, &dead_se);
            let pruned = inert
                .prune(&PruneConfig {
                    amount: 0.5,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(pruned.info.config.channels, vec![3, 2]);
            assert!(pruned.n_params() < inert.n_params());
            let p = pruned.info.pruning.as_ref().unwrap();
            assert_eq!(p.original_channels, vec![6, 4]);
            assert_eq!(p.original_params, inert.n_params());
            let ds = images(12);
            let a = inert.scores(&ds).unwrap();
            let b = pruned.scores(&ds).unwrap();
            let diff = (&a - &b).mapv(f32::abs).fold(0.0f32, |x, &y| x.max(y));
            assert!(diff < 1e-5, "se {se:?} hidden {hidden:?}: {diff}");
            assert_eq!(inert.predict(&ds).unwrap(), pruned.predict(&ds).unwrap());
            // And the pruned model survives its model file.
            let back = CnnModel::from_bytes(&pruned.to_bytes().unwrap()).unwrap();
            assert_eq!(back.info.config.channels, vec![3, 2]);
            assert_eq!(back.info.pruning, pruned.info.pruning);
            assert_eq!(back.scores(&ds).unwrap(), b);
        }
    }

    #[test]
    fn keeps_the_largest_l1_filters_in_order() {
        // Rows of 2: norms 3, 1, 5, 1, 4.
        let w = [1.0, -2.0, 0.5, 0.5, 5.0, 0.0, -1.0, 0.0, 2.0, 2.0];
        assert_eq!(keep_by_l1(&w, 5, 2, 3), vec![0, 2, 4]);
        // Tie between rows 1 and 3: the lower index.
        assert_eq!(keep_by_l1(&w, 5, 2, 4), vec![0, 1, 2, 4]);
        assert_eq!(kept_filters(32, 0.5), 16);
        assert_eq!(kept_filters(32, 0.3), 22);
        assert_eq!(kept_filters(32, 0.7), 10);
        assert_eq!(kept_filters(1, 0.9), 1);
        assert_eq!(kept_filters(32, 0.0), 32);
    }

    #[test]
    fn unstructured_zeroes_the_smallest_and_keeps_shapes() {
        let m = model(vec![4, 4], None, vec![8]);
        let p = unstructured(&m, 0.8);
        assert_eq!(p.info.config.channels, m.info.config.channels);
        assert_eq!(p.n_params(), m.n_params());
        let before = tensors(&m.net).unwrap();
        let after = tensors(&p.net).unwrap();
        let mut total = 0;
        for (name, (_, v)) in &after {
            let orig = &before[name].1;
            if prunable(name) {
                let zeros = v.iter().filter(|&&x| x == 0.0).count();
                assert_eq!(zeros, (0.8 * v.len() as f64).round() as usize, "{name}");
                total += zeros;
                // Every kept weight is at least as large as every zeroed one.
                let kept_min = v
                    .iter()
                    .filter(|&&x| x != 0.0)
                    .fold(f32::MAX, |a, &x| a.min(x.abs()));
                let zeroed_max = orig
                    .iter()
                    .zip(v)
                    .filter(|&(_, &x)| x == 0.0)
                    .fold(0.0f32, |a, (&o, _)| a.max(o.abs()));
                assert!(zeroed_max <= kept_min, "{name}");
            } else {
                assert_eq!(v, orig, "{name} untouched");
            }
        }
        assert_eq!(p.info.pruning.as_ref().unwrap().zeroed, total);
    }

    #[test]
    fn fine_tuning_keeps_unstructured_zeros_and_the_smaller_shape() {
        let ds = images(60);
        let mut m = model(vec![4, 4], None, vec![8]);
        m.info.config.batch_size = 16;
        let u = unstructured(&m, 0.5);
        let (f, summary) = u.finetune(&ds, 2, Some(1e-3), &mut |_| {}).unwrap();
        assert_eq!(summary.history.len(), 2);
        let before = tensors(&u.net).unwrap();
        for (name, (_, v)) in tensors(&f.net).unwrap() {
            if prunable(&name) {
                let was = &before[&name].1;
                for (a, b) in was.iter().zip(&v) {
                    if *a == 0.0 {
                        assert_eq!(*b, 0.0, "{name}");
                    }
                }
            }
        }
        assert_eq!(f.info.pruning.as_ref().unwrap().finetune_epochs, 2);
        assert_eq!(
            f.info.config.epochs, m.info.config.epochs,
            "the recipe stays the model's"
        );
        let s = m.prune(&PruneConfig::default()).unwrap();
        let (g, _) = s.finetune(&ds, 1, None, &mut |_| {}).unwrap();
        assert_eq!(g.info.config.channels, vec![2, 2]);
        assert_ne!(
            g.scores(&ds).unwrap(),
            s.scores(&ds).unwrap(),
            "weights moved"
        );
    }

    #[test]
    fn bad_settings_and_data_are_errors() {
        let m = model(vec![4], None, vec![]);
        for amount in [1.0, 1.2, -0.1, f64::NAN] {
            let e = m
                .prune(&PruneConfig {
                    amount,
                    ..Default::default()
                })
                .unwrap_err();
            assert!(e.to_string().contains("amount"), "{e}");
        }
        let mut other = images(10);
        other.rows = 8;
        other.cols = 32;
        assert!(m.finetune(&other, 1, None, &mut |_| {}).is_err());
        let mut named = images(10);
        named.class_names = vec!["x".into(), "y".into(), "z".into()];
        assert!(m.finetune(&named, 1, None, &mut |_| {}).is_err());
    }
}
