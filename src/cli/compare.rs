//! `hogsvm compare`: both pipelines on the same split, one report.

use clap::Args;

/// Arguments of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {}

/// Run `compare`.
pub fn run(_a: CompareArgs) -> anyhow::Result<()> {
    anyhow::bail!("compare is not built yet")
}
