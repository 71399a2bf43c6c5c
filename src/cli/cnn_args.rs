//! The CNN's options (`train --model cnn`, `bench-cnn`).

use clap::Args;
use hogsvm::cnn::CnnConfig;

/// CNN network and training options; what is not given comes from [`CnnConfig::default`].
#[derive(Debug, Clone, Default, Args)]
pub struct CnnArgs {
    /// CNN: output channels of each conv block, e.g. 32,64,128 [default: 32,64,128].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub channels: Option<String>,
    /// CNN: hidden fully connected units, or none [default: 256].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub hidden: Option<String>,
    /// CNN: squeeze-and-excitation reduction (e.g. 8), or none [default: none].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub se: Option<String>,
    /// CNN: dropout probability [default: 0.2].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub dropout: Option<String>,
    /// CNN: maximum epochs [default: 15].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub epochs: Option<String>,
    /// CNN: mini-batch size [default: 128].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub batch: Option<String>,
    /// CNN: peak learning rate [default: 0.002].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub lr: Option<String>,
    /// CNN: sgd (with momentum) or adamw [default: adamw].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub optimizer: Option<String>,
    /// CNN: SGD momentum [default: 0.9].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub momentum: Option<String>,
    /// CNN: weight decay (decoupled for AdamW) [default: 0.0005].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub weight_decay: Option<String>,
    /// CNN: linear warm-up, in epochs [default: 1].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub warmup: Option<String>,
    /// CNN: cosine or constant after the warm-up [default: cosine].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub schedule: Option<String>,
    /// CNN: clip the gradient's global norm to this, or none [default: 5].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub clip_norm: Option<String>,
    /// CNN: augmentation: none, or a +-separated list of flip, shift=N, rotate=DEG, noise=STD
    /// [default: flip+shift=1].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub augment: Option<String>,
    /// CNN: fraction of the training set held out for validation and early stopping
    /// [default: 0.1].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub val_split: Option<String>,
    /// CNN: stop after this many epochs without a better validation accuracy, or none
    /// [default: 5].
    #[arg(long, help_heading = "CNN (--model cnn)")]
    pub patience: Option<String>,
}

impl CnnArgs {
    fn given(&self) -> Vec<(&'static str, &String)> {
        [
            ("channels", &self.channels),
            ("hidden", &self.hidden),
            ("se", &self.se),
            ("dropout", &self.dropout),
            ("epochs", &self.epochs),
            ("batch", &self.batch),
            ("lr", &self.lr),
            ("optimizer", &self.optimizer),
            ("momentum", &self.momentum),
            ("weight-decay", &self.weight_decay),
            ("warmup", &self.warmup),
            ("schedule", &self.schedule),
            ("clip-norm", &self.clip_norm),
            ("augment", &self.augment),
            ("val-split", &self.val_split),
            ("patience", &self.patience),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect()
    }

    /// The validated configuration.
    pub fn config(&self) -> anyhow::Result<CnnConfig> {
        let mut c = CnnConfig::default();
        for (k, v) in self.given() {
            c.set(k, v)?;
        }
        c.validate()?;
        Ok(c)
    }

    /// An error when a CNN option is given to the classical model.
    pub fn refuse_for_classical(&self) -> anyhow::Result<()> {
        if let Some((k, _)) = self.given().first() {
            anyhow::bail!("--{k} is a CNN option: add --model cnn");
        }
        Ok(())
    }
}
