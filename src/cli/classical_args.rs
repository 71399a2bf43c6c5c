//! The classical pipeline's flags of `train`, turned into [`ClassicalConfig::set`] keys in one
//! place ([`ClassicalArgs::settings`]): the same keys `compare`'s `--classical` specs use.
//!
//! [`ClassicalConfig::set`]: hogsvm::pipeline::ClassicalConfig::set

use clap::Args;

use super::options::HogArgs;

/// The classical pipeline's own flags (`--loss`, `--class-weight`, `--seed` and `--resize` are
/// shared with the CNN).
#[derive(Debug, Args)]
pub struct ClassicalArgs {
    #[command(flatten)]
    pub hog: HogArgs,
    /// Add a HOG descriptor with this cell size (same other parameters), or CELL/BLOCK (e.g.
    /// 4/2: 4x4-pixel cells in 2x2-cell blocks), concatenated: a multi-scale descriptor.
    /// Repeatable; `--extra-cell none` removes the default ones.
    #[arg(long)]
    pub extra_cell: Vec<String>,
    /// Feature map after HOG: none, hellinger, chi2, chi2:STEPS or chi2:STEPS:INTERVAL
    /// [default: the best measured configuration's].
    #[arg(long)]
    pub feature_map: Option<String>,
    /// Per-sample normalisation after the feature map: l2, l1, max or none (scikit-learn's
    /// Normalizer).
    #[arg(long)]
    pub normalize: Option<String>,
    /// Standardise features (zero mean, unit variance) before PCA / SVM.
    #[arg(long)]
    pub standardize: bool,
    /// PCA components: a count (128), a variance fraction (0.95) or none.
    #[arg(long)]
    pub pca: Option<String>,
    /// Whiten the PCA output.
    #[arg(long)]
    pub whiten: bool,
    /// Power iterations of the randomized PCA, 0 to 100 [default: 10]; fewer are faster and
    /// capture slightly less variance (scikit-learn's "auto": 4 or 7).
    #[arg(long)]
    pub pca_iterations: Option<usize>,
    /// Random Fourier features after PCA (RBF kernel approximation): output dimension, or none.
    #[arg(long)]
    pub rff: Option<String>,
    /// Nystroem map after PCA (RBF kernel approximation from training landmarks): number of
    /// landmarks (the output dimension), or none.
    #[arg(long)]
    pub nystroem: Option<String>,
    /// Lloyd iterations placing the --nystroem landmarks at k-means centres (0: random
    /// training rows, as scikit-learn) [default: 5].
    #[arg(long)]
    pub kmeans_iters: Option<usize>,
    /// RBF width for --rff / --nystroem: a number, `scale` (1 / (d * var), scikit-learn's
    /// heuristic, the default) or `scale*K` (K times it).
    #[arg(long)]
    pub gamma: Option<String>,
    /// Also train on the left-right mirror of every training image (twice the training set).
    #[arg(long)]
    pub flip: bool,
    /// SVM regularisation C [default: 0.1].
    #[arg(long)]
    pub c: Option<f64>,
    /// SVM stopping tolerance [default: 0.01].
    #[arg(long)]
    pub tol: Option<f64>,
    /// SVM maximum passes over the data.
    #[arg(long)]
    pub max_iter: Option<usize>,
}

impl ClassicalArgs {
    /// The flags given, as `(key, value)` settings; the key is the flag's name.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let h = &self.hog;
        let numbers = [
            ("orientations", h.orientations),
            ("cell", h.cell),
            ("cell-rows", h.cell_rows),
            ("cell-cols", h.cell_cols),
            ("block", h.block),
            ("block-rows", h.block_rows),
            ("block-cols", h.block_cols),
            ("kmeans-iters", self.kmeans_iters),
            ("pca-iterations", self.pca_iterations),
            ("max-iter", self.max_iter),
        ];
        let mut s: Vec<(&'static str, String)> = numbers
            .iter()
            .filter_map(|(k, v)| v.map(|v| (*k, v.to_string())))
            .collect();
        let reals = [("c", self.c), ("tol", self.tol)];
        s.extend(
            reals
                .iter()
                .filter_map(|(k, v)| v.map(|v| (*k, v.to_string()))),
        );
        if h.transform_sqrt || h.no_transform_sqrt {
            let flag = if h.transform_sqrt {
                "transform-sqrt"
            } else {
                "no-transform-sqrt"
            };
            s.push((flag, "true".to_string()));
        }
        if !self.extra_cell.is_empty() {
            s.push(("extra-cell", self.extra_cell.join("+")));
        }
        let switches = [
            ("standardize", self.standardize),
            ("whiten", self.whiten),
            ("flip", self.flip),
        ];
        s.extend(
            switches
                .iter()
                .filter(|(_, on)| *on)
                .map(|(k, _)| (*k, "true".to_string())),
        );
        let values = [
            ("block-norm", &h.block_norm),
            ("feature-map", &self.feature_map),
            ("normalize", &self.normalize),
            ("pca", &self.pca),
            ("rff", &self.rff),
            ("nystroem", &self.nystroem),
            ("gamma", &self.gamma),
        ];
        s.extend(given(&values));
        s
    }

    /// An error naming the first classical flag given to a CNN.
    pub fn refuse_for_cnn(&self) -> anyhow::Result<()> {
        if let Some((k, _)) = self.settings().first() {
            anyhow::bail!("--{k} is a classical option; it does not apply to --model cnn");
        }
        Ok(())
    }
}

/// The `(key, value)` settings of the options among `values` that were given.
pub fn given<'a>(
    values: &'a [(&'static str, &'a Option<String>)],
) -> impl Iterator<Item = (&'static str, String)> + 'a {
    values
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.clone())))
}
