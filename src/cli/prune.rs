//! `hogsvm prune`: a CNN model file made smaller by filter pruning (or with weights zeroed),
//! then fine-tuned; the result is an ordinary CNN model file.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use hogsvm::classifier::Classifier;
use hogsvm::cnn::{PruneConfig, PruneMethod};
use hogsvm::data::LoadOptions;

use super::options::{load_float_cnn, load_with, Threads};

/// Arguments of `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// CNN model file written by `train --model cnn`.
    #[arg(long)]
    model: PathBuf,
    /// Training data for the fine-tuning (the forms of `train --data`; of a folder with
    /// train-* and t10k-* IDX files, the train-* ones). Needed unless --finetune-epochs 0.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Fraction removed: of each conv layer's filters (structured) or of each layer's weights
    /// (unstructured), in [0, 1).
    #[arg(long, default_value_t = 0.5)]
    amount: f64,
    /// Remove whole conv filters by L1 norm and everything that reads them (the default): a
    /// smaller, faster network.
    #[arg(long, conflicts_with = "unstructured")]
    structured: bool,
    /// Zero the smallest weights of every conv and dense layer, keeping every shape (PyTorch's
    /// l1_unstructured): no faster with dense kernels, for comparison.
    #[arg(long)]
    unstructured: bool,
    /// Epochs of fine-tuning after pruning, with the model's own recipe (0: none).
    #[arg(long, default_value_t = 3)]
    finetune_epochs: usize,
    /// Learning rate of the fine-tuning [default: the model's own].
    #[arg(long)]
    finetune_lr: Option<f64>,
    /// Output model file (written atomically).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    threads: Threads,
}

/// Run `prune`.
pub fn run(a: PruneArgs) -> anyhow::Result<()> {
    let cfg = PruneConfig {
        amount: a.amount,
        method: if a.unstructured {
            PruneMethod::Unstructured
        } else {
            PruneMethod::Structured
        },
        finetune_epochs: a.finetune_epochs,
        finetune_lr: a.finetune_lr,
    };
    cfg.validate()?;
    a.threads.check()?;
    let mut inputs = vec![("--model", a.model.as_path())];
    inputs.extend(a.data.as_deref().map(|d| ("--data", d)));
    hogsvm::io::check_outputs(&[("--out", &a.out)], &inputs)?;
    let m = load_float_cnn(&a.model, "prune")?;
    let data = match (&a.data, cfg.finetune_epochs) {
        (_, 0) => None,
        (Some(p), _) => Some(load_with(
            p,
            &LoadOptions {
                resize: m.load_resize(),
                classes: Some(m.class_names().to_vec()),
                color: hogsvm::data::Color::of_channels(m.input().channels),
                ..Default::default()
            },
        )?),
        (None, _) => bail!("--data is needed to fine-tune (or pass --finetune-epochs 0)"),
    };
    let before = (m.info.config.channels.clone(), m.n_params());
    let out = a.threads.run(|| -> anyhow::Result<_> {
        let pruned = m.prune(&cfg)?;
        eprintln!(
            "prune: {} {}: channels {:?} -> {:?}, {} -> {} parameters{}",
            cfg.method,
            cfg.amount,
            before.0,
            pruned.info.config.channels,
            before.1,
            pruned.n_params(),
            pruned
                .info
                .pruning
                .as_ref()
                .filter(|p| p.zeroed > 0)
                .map_or(String::new(), |p| format!(", {} weights zeroed", p.zeroed))
        );
        match &data {
            None => Ok(pruned),
            Some(d) => {
                let epochs = cfg.finetune_epochs;
                let (tuned, summary) =
                    pruned.finetune(d, epochs, cfg.finetune_lr, &mut |l| {
                        eprintln!(
                            "fine-tune: epoch {}/{epochs} loss {:.4} train acc {:.4} val acc {} ({:.1} s)",
                            l.epoch,
                            l.loss,
                            l.train_acc,
                            l.val_acc.map_or("-".into(), |v| format!("{v:.4}")),
                            l.seconds
                        )
                    })?;
                eprintln!(
                    "fine-tune: kept epoch {} of {} ({:.1} s)",
                    summary.best_epoch,
                    summary.history.len(),
                    summary.seconds
                );
                Ok(tuned)
            }
        }
    })??;
    out.save(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {} (cnn, channels {:?}, {} parameters)",
        a.out.display(),
        out.info.config.channels,
        out.n_params()
    );
    Ok(())
}
