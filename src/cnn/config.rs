//! The CNN's hyper-parameters: plain structs with `Default`, builder methods, and
//! [`CnnConfig::validate`], called by `fit` before any work (linfa's ParamGuard idea).

use serde::{Deserialize, Serialize};

use crate::error::{param, Error, Result};

/// Optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with (heavy-ball) momentum and L2 weight decay added to the gradient, as PyTorch's
    /// `torch.optim.SGD` does it.
    Sgd,
    /// AdamW: Adam with decoupled weight decay (Loshchilov & Hutter).
    #[default]
    AdamW,
}

/// Learning-rate schedule after the linear warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Cosine decay from `lr` to 0 over the remaining steps.
    #[default]
    Cosine,
    /// Constant `lr`.
    Constant,
}

/// Training loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum Loss {
    /// Cross-entropy.
    #[default]
    CrossEntropy,
    /// Cross-entropy with class weights `n / (k * n_c)` (scikit-learn's "balanced"), so that
    /// rare classes count as much as common ones. The loss is the weighted mean (PyTorch's
    /// `CrossEntropyLoss(weight=...)`).
    Balanced,
    /// Focal loss (Lin et al. 2017): `-alpha * (1 - p_t)^gamma * log p_t`, averaged.
    Focal {
        /// Focusing parameter (0 gives cross-entropy); 2 in the paper.
        gamma: f32,
        /// Weight of every class (a single alpha for all classes, 1 = unweighted).
        alpha: f32,
    },
}

/// Seeded data augmentation, applied to training images only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Augment {
    /// Flip left-right with probability 1/2.
    pub hflip: bool,
    /// Random shift of up to this many pixels in each direction (a random crop of the image
    /// padded with zeros by this much).
    pub shift: usize,
    /// Random rotation, uniform in `[-rotate, rotate]` degrees (bilinear, zero fill); 0 = off.
    pub rotate: f32,
    /// Gaussian noise with this standard deviation, in units of the normalised input; 0 = off.
    pub noise: f32,
}

impl Default for Augment {
    /// Flips and 1-pixel shifts: clothes are left-right symmetric classes, and the objects are
    /// centred but not exactly. (2-pixel shifts with dropout 0.3 under-fitted in 15 epochs on
    /// Fashion-MNIST: 0.917 test accuracy, training accuracy below validation; see
    /// docs/BENCHMARKS.md.)
    fn default() -> Self {
        Augment {
            hflip: true,
            shift: 1,
            rotate: 0.0,
            noise: 0.0,
        }
    }
}

impl Augment {
    /// No augmentation.
    pub fn none() -> Self {
        Augment {
            hflip: false,
            shift: 0,
            rotate: 0.0,
            noise: 0.0,
        }
    }

    /// Whether anything is switched on.
    pub fn is_active(&self) -> bool {
        self.hflip || self.shift > 0 || self.rotate > 0.0 || self.noise > 0.0
    }
}

/// The network and its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CnnConfig {
    /// Output channels of each conv block (conv 3x3 → batch norm → ReLU → max-pool 2); 1 to 4
    /// blocks.
    pub channels: Vec<usize>,
    /// Squeeze-and-excitation after each conv block with this channel reduction (e.g. 8);
    /// `None` = off.
    pub se_reduction: Option<usize>,
    /// Hidden fully connected layers before the output layer (0 or 1 entries: one or two
    /// fully connected layers in all).
    pub hidden: Vec<usize>,
    /// Dropout probability before each fully connected layer.
    pub dropout: f32,
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Optimiser.
    pub optimizer: Optimizer,
    /// Peak learning rate.
    pub lr: f64,
    /// Momentum (SGD only).
    pub momentum: f64,
    /// Weight decay (decoupled for AdamW, L2 for SGD); not applied to biases and batch norm.
    pub weight_decay: f64,
    /// Linear warm-up length in epochs (may be fractional).
    pub warmup_epochs: f64,
    /// Schedule after the warm-up.
    pub schedule: Schedule,
    /// Clip the gradient's global L2 norm to this value; `None` = off.
    pub clip_norm: Option<f64>,
    /// Training loss.
    pub loss: Loss,
    /// Data augmentation.
    pub augment: Augment,
    /// Fraction of the training images held out (stratified) for validation, early stopping
    /// and the best-checkpoint choice; 0 = no validation (the last epoch is kept).
    pub val_fraction: f64,
    /// Stop after this many epochs without a better validation accuracy; `None` = never.
    pub patience: Option<usize>,
    /// Seed of every random choice: initial weights, split, shuffling, dropout, augmentation.
    pub seed: u64,
}

impl Default for CnnConfig {
    /// Three conv blocks of 32, 64 and 128 channels, a 256-unit hidden layer, dropout 0.2,
    /// AdamW (lr 2e-3, weight decay 5e-4), one warm-up epoch then cosine decay, gradient
    /// clipping at 5, flip + 1-pixel shift augmentation, 10% validation with patience 5, 15
    /// epochs.
    fn default() -> Self {
        CnnConfig {
            channels: vec![32, 64, 128],
            se_reduction: None,
            hidden: vec![256],
            dropout: 0.2,
            epochs: 15,
            batch_size: 128,
            optimizer: Optimizer::AdamW,
            lr: 2e-3,
            momentum: 0.9,
            weight_decay: 5e-4,
            warmup_epochs: 1.0,
            schedule: Schedule::Cosine,
            clip_norm: Some(5.0),
            loss: Loss::CrossEntropy,
            augment: Augment::default(),
            val_fraction: 0.1,
            patience: Some(5),
            seed: 0,
        }
    }
}

impl CnnConfig {
    setter! {
        /// Set [`CnnConfig::channels`].
        channels: Vec<usize>,
        /// Set [`CnnConfig::se_reduction`].
        se_reduction: Option<usize>,
        /// Set [`CnnConfig::hidden`].
        hidden: Vec<usize>,
        /// Set [`CnnConfig::dropout`].
        dropout: f32,
        /// Set [`CnnConfig::epochs`].
        epochs: usize,
        /// Set [`CnnConfig::batch_size`].
        batch_size: usize,
        /// Set [`CnnConfig::optimizer`].
        optimizer: Optimizer,
        /// Set [`CnnConfig::lr`].
        lr: f64,
        /// Set [`CnnConfig::momentum`].
        momentum: f64,
        /// Set [`CnnConfig::weight_decay`].
        weight_decay: f64,
        /// Set [`CnnConfig::warmup_epochs`].
        warmup_epochs: f64,
        /// Set [`CnnConfig::schedule`].
        schedule: Schedule,
        /// Set [`CnnConfig::clip_norm`].
        clip_norm: Option<f64>,
        /// Set [`CnnConfig::loss`].
        loss: Loss,
        /// Set [`CnnConfig::augment`].
        augment: Augment,
        /// Set [`CnnConfig::val_fraction`].
        val_fraction: f64,
        /// Set [`CnnConfig::patience`].
        patience: Option<usize>,
        /// Set [`CnnConfig::seed`].
        seed: u64,
    }

    /// Check every parameter; `fit` calls this first.
    pub fn validate(&self) -> Result<()> {
        if self.channels.is_empty() || self.channels.len() > 4 {
            return Err(Error::param(
                "channels",
                "needs 1 to 4 conv blocks",
                format!("{:?}", self.channels),
            ));
        }
        if self.channels.iter().any(|&c| c == 0 || c > 4096) {
            return Err(Error::param(
                "channels",
                "each block needs 1 to 4096 channels",
                format!("{:?}", self.channels),
            ));
        }
        if let Some(r) = self.se_reduction {
            if r == 0 || self.channels.iter().any(|&c| c / r == 0) {
                return Err(Error::param(
                    "se_reduction",
                    "must be at least 1 and at most the smallest channel count",
                    r,
                ));
            }
        }
        if self.hidden.len() > 1 || self.hidden.contains(&0) {
            return Err(Error::param(
                "hidden",
                "at most one hidden fully connected layer, of at least 1 unit",
                format!("{:?}", self.hidden),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::param("dropout", "must be in [0, 1)", self.dropout));
        }
        if self.epochs == 0 {
            return Err(Error::param("epochs", "must be at least 1", self.epochs));
        }
        if self.batch_size == 0 {
            return Err(Error::param(
                "batch_size",
                "must be at least 1",
                self.batch_size,
            ));
        }
        param("lr", self.lr).positive("must be a positive number")?;
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::param("momentum", "must be in [0, 1)", self.momentum));
        }
        param("weight_decay", self.weight_decay).non_negative("must be a non-negative number")?;
        param("warmup_epochs", self.warmup_epochs).non_negative("must be a non-negative number")?;
        if let Some(c) = self.clip_norm {
            param("clip_norm", c).positive("must be a positive number")?;
        }
        if let Loss::Focal { gamma, alpha } = self.loss {
            param("focal_gamma", gamma).non_negative("must be >= 0")?;
            param("focal_alpha", alpha).positive("must be > 0")?;
        }
        let a = &self.augment;
        if a.shift > 8 {
            return Err(Error::param("shift", "at most 8 pixels", a.shift));
        }
        param("rotate", a.rotate).within(0.0..=45.0, "must be in [0, 45] degrees")?;
        param("noise", a.noise).non_negative("must be >= 0")?;
        if !(0.0..0.9).contains(&self.val_fraction) {
            return Err(Error::param(
                "val_fraction",
                "must be in [0, 0.9)",
                self.val_fraction,
            ));
        }
        if self.patience == Some(0) {
            return Err(Error::param("patience", "must be at least 1", 0));
        }
        Ok(())
    }

    /// Set one parameter from text, as the command line and `compare --cnn` write it. Keys:
    /// `channels` (`32,64,128` or `32-64-128`), `se` (reduction or `none`), `hidden` (`256` or
    /// `none`), `dropout`, `epochs`, `batch`, `lr`, `optimizer` (`sgd` / `adamw`), `momentum`,
    /// `weight-decay`, `warmup` (epochs), `schedule` (`cosine` / `constant`), `clip-norm`
    /// (value or `none`), `loss` (`cross-entropy`, `balanced`, `focal`, `focal:GAMMA` or
    /// `focal:GAMMA:ALPHA`), `augment` (`none`, or a `+`-separated list of `flip`, `shift=N`,
    /// `rotate=DEG`, `noise=STD`), `val-split`, `patience` (count or `none`), `seed`.
    /// Underscores may replace dashes. The value is checked by [`CnnConfig::validate`] later.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        fn num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T> {
            v.trim()
                .parse()
                .map_err(|_| Error::param(key, "expected a number", v))
        }
        fn list(key: &'static str, v: &str) -> Result<Vec<usize>> {
            if v == "none" || v.is_empty() {
                return Ok(Vec::new());
            }
            v.split([',', '-', ':', '+'])
                .map(|x| num::<usize>(key, x))
                .collect()
        }
        let v = value.trim();
        let none = v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("off");
        match key.trim().replace('_', "-").as_str() {
            "channels" => self.channels = list("channels", v)?,
            "se" | "se-reduction" => {
                self.se_reduction = if none { None } else { Some(num("se", v)?) }
            }
            "hidden" => self.hidden = list("hidden", v)?,
            "dropout" => self.dropout = num("dropout", v)?,
            "epochs" => self.epochs = num("epochs", v)?,
            "batch" | "batch-size" => self.batch_size = num("batch", v)?,
            "lr" => self.lr = num("lr", v)?,
            "optimizer" => {
                self.optimizer = match v.to_ascii_lowercase().as_str() {
                    "sgd" => Optimizer::Sgd,
                    "adamw" => Optimizer::AdamW,
                    _ => return Err(Error::param("optimizer", "expected sgd or adamw", v)),
                }
            }
            "momentum" => self.momentum = num("momentum", v)?,
            "weight-decay" | "wd" => self.weight_decay = num("weight_decay", v)?,
            "warmup" | "warmup-epochs" => self.warmup_epochs = num("warmup", v)?,
            "schedule" => {
                self.schedule = match v.to_ascii_lowercase().as_str() {
                    "cosine" => Schedule::Cosine,
                    "constant" => Schedule::Constant,
                    _ => return Err(Error::param("schedule", "expected cosine or constant", v)),
                }
            }
            "clip-norm" | "clip" => {
                self.clip_norm = if none {
                    None
                } else {
                    Some(num("clip_norm", v)?)
                }
            }
            "loss" => {
                let mut parts = v.split(':');
                self.loss = match parts.next().unwrap_or("").to_ascii_lowercase().as_str() {
                    "cross-entropy" | "ce" | "crossentropy" => Loss::CrossEntropy,
                    "balanced" => Loss::Balanced,
                    "focal" => Loss::Focal {
                        gamma: parts
                            .next()
                            .map(|g| num("focal_gamma", g))
                            .transpose()?
                            .unwrap_or(2.0),
                        alpha: parts
                            .next()
                            .map(|a| num("focal_alpha", a))
                            .transpose()?
                            .unwrap_or(1.0),
                    },
                    _ => return Err(Error::param(
                        "loss",
                        "expected cross-entropy, balanced, focal, focal:GAMMA or focal:GAMMA:ALPHA",
                        v,
                    )),
                }
            }
            "augment" => {
                let mut a = Augment::none();
                if !none {
                    for item in v.split(['+', ';', ' ']).filter(|s| !s.is_empty()) {
                        let (k, val) = item.split_once('=').unwrap_or((item, ""));
                        match k {
                            "flip" | "hflip" => a.hflip = true,
                            "shift" => a.shift = if val.is_empty() { 2 } else { num("shift", val)? },
                            "rotate" => a.rotate = if val.is_empty() { 10.0 } else { num("rotate", val)? },
                            "noise" => a.noise = if val.is_empty() { 0.05 } else { num("noise", val)? },
                            _ => {
                                return Err(Error::param(
                                    "augment",
                                    "expected none or a +-separated list of flip, shift=N, rotate=DEG, noise=STD",
                                    v,
                                ))
                            }
                        }
                    }
                }
                self.augment = a;
            }
            "val-split" | "val-fraction" => self.val_fraction = num("val_split", v)?,
            "patience" => {
                self.patience = if none {
                    None
                } else {
                    Some(num("patience", v)?)
                }
            }
            "seed" => self.seed = num("seed", v)?,
            _ => {
                return Err(Error::param(
                    "cnn",
                    "unknown CNN parameter (see `hogsvm train --help`)",
                    key,
                ))
            }
        }
        Ok(())
    }

    /// Parse `key=value` pairs separated by commas (a token without `=` continues the previous
    /// value, so `channels=32,64,epochs=5` works) over the defaults, and validate.
    pub fn from_spec(spec: &str) -> Result<CnnConfig> {
        let mut c = CnnConfig::default();
        for (k, v) in crate::settings::pairs(spec, "cnn")? {
            c.set(&k, &v)?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Spatial size after the conv blocks for an input of `rows x cols` (each max-pool halves
    /// it, rounding down), or an error when the image is too small for the blocks.
    pub fn feature_map_size(&self, rows: usize, cols: usize) -> Result<(usize, usize)> {
        let (mut r, mut c) = (rows, cols);
        for _ in &self.channels {
            r /= 2;
            c /= 2;
        }
        if r == 0 || c == 0 {
            return Err(Error::param(
                "channels",
                format!(
                    "{} pooling blocks need images of at least {m}x{m} pixels",
                    self.channels.len(),
                    m = 1usize << self.channels.len()
                ),
                format!("{rows}x{cols} images"),
            ));
        }
        Ok((r, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        CnnConfig::default().validate().unwrap();
    }

    #[test]
    fn invalid_parameters_are_typed_errors() {
        let bad = [
            CnnConfig::default().channels(vec![]),
            CnnConfig::default().channels(vec![8, 0]),
            CnnConfig::default().hidden(vec![10, 10]),
            CnnConfig::default().dropout(1.0),
            CnnConfig::default().epochs(0),
            CnnConfig::default().batch_size(0),
            CnnConfig::default().lr(f64::NAN),
            CnnConfig::default().lr(-1.0),
            CnnConfig::default().momentum(1.0),
            CnnConfig::default().clip_norm(Some(0.0)),
            CnnConfig::default().val_fraction(0.95),
            CnnConfig::default().patience(Some(0)),
            CnnConfig::default().se_reduction(Some(64)),
            CnnConfig::default().loss(Loss::Focal {
                gamma: -1.0,
                alpha: 1.0,
            }),
        ];
        for c in bad {
            assert!(
                matches!(c.validate(), Err(Error::InvalidParameter { .. })),
                "{c:?} should be refused"
            );
        }
    }

    #[test]
    fn feature_map_size_halves_per_block() {
        let c = CnnConfig::default();
        assert_eq!(c.feature_map_size(28, 28).unwrap(), (3, 3));
        assert_eq!(c.feature_map_size(32, 40).unwrap(), (4, 5));
        assert!(c.feature_map_size(7, 28).is_err());
    }

    #[test]
    fn spec_strings() {
        let c = CnnConfig::from_spec(
            "channels=16,32,epochs=3,hidden=none,loss=focal:2:0.5,augment=flip+shift=1,optimizer=sgd,patience=none",
        )
        .unwrap();
        assert_eq!(c.channels, vec![16, 32]);
        assert_eq!(c.epochs, 3);
        assert!(c.hidden.is_empty());
        assert_eq!(
            c.loss,
            Loss::Focal {
                gamma: 2.0,
                alpha: 0.5
            }
        );
        assert_eq!(
            c.augment,
            Augment {
                hflip: true,
                shift: 1,
                rotate: 0.0,
                noise: 0.0
            }
        );
        assert_eq!(c.optimizer, Optimizer::Sgd);
        assert_eq!(c.patience, None);
        for bad in [
            "epochs=x",
            "nope=1",
            "channels=0",
            "optimizer=adam",
            "augment=blur",
            "42",
        ] {
            assert!(CnnConfig::from_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let c = CnnConfig::default()
            .loss(Loss::Focal {
                gamma: 2.0,
                alpha: 0.25,
            })
            .optimizer(Optimizer::Sgd);
        let s = serde_json::to_string(&c).unwrap();
        let back: CnnConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(c, back);
    }
}
