//! Options shared by several subcommands.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use hogsvm::data::{self, Color, Dataset, LoadOptions, Split};
use hogsvm::hog::{BlockNorm, HogParams};

/// HOG parameters. Defaults depend on the command: scikit-image's for `extract` and
/// `hog-image`, the best measured configuration for `train`.
#[derive(Debug, Clone, Args)]
pub struct HogArgs {
    /// Orientation bins over [0, 180) [default: 9].
    #[arg(long)]
    pub orientations: Option<usize>,
    /// Pixels per cell, both directions (overridden by --cell-rows / --cell-cols)
    /// [default: 8; train: 3].
    #[arg(long)]
    pub cell: Option<usize>,
    /// Pixels per cell along rows.
    #[arg(long)]
    pub cell_rows: Option<usize>,
    /// Pixels per cell along columns.
    #[arg(long)]
    pub cell_cols: Option<usize>,
    /// Cells per block, both directions (overridden by --block-rows / --block-cols)
    /// [default: 3].
    #[arg(long)]
    pub block: Option<usize>,
    /// Cells per block along rows.
    #[arg(long)]
    pub block_rows: Option<usize>,
    /// Cells per block along columns.
    #[arg(long)]
    pub block_cols: Option<usize>,
    /// Block normalisation: L1, L1-sqrt, L2 or L2-Hys [default: L2-Hys].
    #[arg(long)]
    pub block_norm: Option<String>,
    /// Square root of the image before the gradients (power-law compression) [train: on].
    #[arg(long)]
    pub transform_sqrt: bool,
    /// No square root before the gradients (turns off train's default).
    #[arg(long, conflicts_with = "transform_sqrt")]
    pub no_transform_sqrt: bool,
}

impl HogArgs {
    /// The validated parameters: what was given, else `defaults`.
    pub fn params_with(&self, defaults: HogParams) -> anyhow::Result<HogParams> {
        let norm: BlockNorm = match &self.block_norm {
            Some(s) => s.parse()?,
            None => defaults.block_norm,
        };
        let cell_r = self.cell.unwrap_or(defaults.cell_rows);
        let cell_c = self.cell.unwrap_or(defaults.cell_cols);
        let block_r = self.block.unwrap_or(defaults.block_rows);
        let block_c = self.block.unwrap_or(defaults.block_cols);
        let p = HogParams::default()
            .orientations(self.orientations.unwrap_or(defaults.orientations))
            .cell(
                self.cell_rows.unwrap_or(cell_r),
                self.cell_cols.unwrap_or(cell_c),
            )
            .block(
                self.block_rows.unwrap_or(block_r),
                self.block_cols.unwrap_or(block_c),
            )
            .block_norm(norm)
            .transform_sqrt(
                self.transform_sqrt || (defaults.transform_sqrt && !self.no_transform_sqrt),
            );
        p.validate()?;
        Ok(p)
    }

    /// The validated parameters with scikit-image's defaults.
    pub fn params(&self) -> anyhow::Result<HogParams> {
        self.params_with(HogParams::default())
    }
}

/// Where the data comes from.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Dataset: an IDX images file, a folder of IDX files, or an image folder root/<class>/<image>.
    #[arg(long)]
    pub data: PathBuf,
    /// Which split of an IDX folder to read: train or test [default: train; eval: test].
    #[arg(long)]
    pub split: Option<String>,
    #[command(flatten)]
    pub images: ImageArgs,
}

/// How images are read, for every command that reads them.
#[derive(Debug, Clone, Args)]
pub struct ImageArgs {
    /// Resize every image to WxH (width x height) before anything else.
    #[arg(long, value_name = "WxH")]
    pub resize: Option<String>,
    /// Skip images that fail to decode (one warning line each) instead of stopping.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Colour: auto (RGB when any image of the folder is colour, else gray; IDX is gray), gray
    /// or rgb. Gray images read as rgb repeat their value; colour read as gray is BT.709 luma.
    #[arg(long, default_value = "auto", value_name = "auto|gray|rgb")]
    pub color: String,
}

impl ImageArgs {
    /// The parsed --resize, `(width, height)`.
    pub fn resize(&self) -> anyhow::Result<Option<(u32, u32)>> {
        self.resize.as_deref().map(parse_size).transpose()
    }

    /// The parsed --color.
    pub fn color(&self) -> anyhow::Result<Color> {
        Ok(self.color.parse()?)
    }
}

impl DataArgs {
    /// Load options from the arguments (train split unless --split says otherwise).
    pub fn load_options(&self) -> anyhow::Result<LoadOptions> {
        self.load_options_with(Split::Train)
    }

    /// Load options, with `default_split` when --split is not given.
    pub fn load_options_with(&self, default_split: Split) -> anyhow::Result<LoadOptions> {
        let split = match self
            .split
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => default_split,
            Some("train") => Split::Train,
            Some("test") | Some("t10k") => Split::Test,
            Some(other) => bail!("invalid --split `{other}`: expected train or test"),
        };
        Ok(LoadOptions {
            resize: self.images.resize()?,
            skip_invalid: self.images.skip_invalid,
            split,
            classes: None,
            color: self.images.color()?,
        })
    }
}

/// Parse `WxH` into `(width, height)`.
pub fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    Ok(hogsvm::pipeline::parse_size(s)?)
}

/// `--threads`, the one flag of every command that computes.
#[derive(Debug, Clone, Copy, Args)]
pub struct Threads {
    /// Worker threads (default: all cores; at most 4 per core, a larger count is capped with a
    /// warning).
    #[arg(long)]
    threads: Option<usize>,
}

impl Threads {
    /// An error for `--threads 0`.
    pub fn check(self) -> anyhow::Result<()> {
        if self.threads == Some(0) {
            bail!("invalid --threads 0: must be at least 1");
        }
        Ok(())
    }

    /// The threads the command runs on: the flag's (capped, see [`hogsvm::budget::cap_threads`]),
    /// or all cores.
    pub fn count(self) -> usize {
        hogsvm::budget::cap_threads(self.threads).0
    }

    /// Run `f` on a rayon pool of [`Threads::count`] threads (the global pool when not given).
    /// A capped request is said once, as a warning.
    pub fn run<T: Send>(self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        static WARNED: std::sync::Once = std::sync::Once::new();
        self.check()?;
        if self.threads.is_none() {
            return Ok(f());
        }
        let (n, warning) = hogsvm::budget::cap_threads(self.threads);
        if let Some(w) = warning {
            WARNED.call_once(|| eprintln!("hogsvm: warning: {w}"));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .context("cannot start the thread pool")?;
        Ok(pool.install(f))
    }
}

/// Print the loader's warnings (skipped files, empty classes) to stderr.
pub fn print_load_report(report: &hogsvm::data::LoadReport) {
    for (p, why) in &report.skipped {
        eprintln!("hogsvm: warning: skipped {}: {why}", p.display());
    }
    if !report.skipped.is_empty() {
        eprintln!(
            "hogsvm: warning: skipped {} file(s) that could not be decoded",
            report.skipped.len()
        );
    }
    if let Some(first) = report.empty_classes.first() {
        let n = report.empty_classes.len();
        let more = if n > 1 {
            format!(" and {} more", n - 1)
        } else {
            String::new()
        };
        eprintln!(
            "hogsvm: warning: {n} class(es) without images left out (`{first}`{more}): classes \
             come from the data"
        );
    }
}

/// Load `path` with `opts` and print the loader's warnings.
pub fn load_with(path: &Path, opts: &LoadOptions) -> anyhow::Result<Dataset> {
    let (ds, report) = data::load(path, opts)?;
    print_load_report(&report);
    Ok(ds)
}

/// The images a model is evaluated on (`eval`, `bench-model`): `split` of `data`, by default its
/// test split when it has one (an IDX pair or a `test/` folder) and else its training split,
/// resized as the model was trained (see [`hogsvm::classifier::Classifier::load_resize`]), read
/// as the model's `classes` (the data may hold a subset of them) and colour kind.
pub fn eval_set(
    data: &Path,
    split: Option<Split>,
    model: &dyn hogsvm::classifier::Classifier,
    skip_invalid: bool,
) -> anyhow::Result<Dataset> {
    let split = split.unwrap_or(if data::idx_pair(data, Split::Test).is_some() {
        Split::Test
    } else {
        Split::Train
    });
    load_with(
        data,
        &LoadOptions {
            resize: model.load_resize(),
            skip_invalid,
            split,
            classes: Some(model.class_names().to_vec()),
            color: Color::of_channels(model.input().channels),
        },
    )
}

/// The test set and loading options shared by `train` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct TrainTestArgs {
    /// Separate test data (same forms as --data).
    #[arg(long, conflicts_with = "test_split")]
    pub test: Option<PathBuf>,
    /// Hold out this fraction of --data, stratified by class, as the test set.
    #[arg(long)]
    pub test_split: Option<f64>,
    #[command(flatten)]
    pub images: ImageArgs,
}

impl TrainTestArgs {
    /// Train and test sets (see [`train_test_sets`]) of `data`, images resized to `resize`.
    pub fn load(
        &self,
        data: &Path,
        seed: u64,
        resize: Option<(u32, u32)>,
    ) -> anyhow::Result<(Dataset, Dataset, TestSource)> {
        let opts = LoadOptions {
            resize,
            skip_invalid: self.images.skip_invalid,
            color: self.images.color()?,
            ..Default::default()
        };
        train_test_sets(data, self.test.as_deref(), self.test_split, seed, opts)
    }
}

/// Where the test set of [`train_test_sets`] came from.
#[derive(Debug, Clone, PartialEq)]
pub enum TestSource {
    /// The separate test data at this path (`--test PATH`).
    File(PathBuf),
    /// A stratified hold-out of this fraction of the training data (`--test-split`).
    Split(f64),
    /// The t10k-* files of a standard-split `--data` folder.
    Standard,
}

/// Train and test sets for `train` and `compare`: the training data at `data` (its train split),
/// and as test set `test` when given, else a stratified `test_split` hold-out of the training
/// data (drawn with `seed`), else the t10k-* files of a standard-split folder, read with the
/// training set's classes. `opts` is for both; its split is ignored.
pub fn train_test_sets(
    data: &Path,
    test: Option<&Path>,
    test_split: Option<f64>,
    seed: u64,
    opts: LoadOptions,
) -> anyhow::Result<(Dataset, Dataset, TestSource)> {
    // Known before any image is read: a folder of photos without a test set is refused at once.
    let standard = data.is_dir() && data::is_standard_split(data);
    if test.is_none() && test_split.is_none() && !standard {
        bail!(
            "{}: no test set: pass --test PATH or --test-split FRACTION (or a folder with \
             train-* and t10k-* IDX files)",
            data.display()
        )
    }
    let opts = LoadOptions {
        split: Split::Train,
        ..opts
    };
    let train = load_with(data, &opts)?;
    let opts = LoadOptions {
        classes: Some(train.class_names.clone()),
        ..opts
    };
    if let Some(t) = test {
        let split = if data::is_standard_split(t) {
            Split::Test
        } else {
            Split::Train
        };
        let test = load_with(
            t,
            &LoadOptions {
                split,
                ..opts.clone()
            },
        )?;
        return Ok((train, test, TestSource::File(t.to_path_buf())));
    }
    if let Some(f) = test_split {
        let (tr, te) = train.stratified_split(f, seed)?;
        return Ok((tr, te, TestSource::Split(f)));
    }
    let test = load_with(
        data,
        &LoadOptions {
            split: Split::Test,
            ..opts
        },
    )?;
    Ok((train, test, TestSource::Standard))
}

/// The float CNN at `path` for `command` (`prune`, `quantize`); another kind is an error naming
/// it.
pub fn load_float_cnn(path: &Path, command: &str) -> anyhow::Result<hogsvm::cnn::CnnModel> {
    match hogsvm::model::load_any(path)? {
        hogsvm::model::AnyModel::Cnn(m) => Ok(m),
        other => bail!(
            "{}: {command} needs a float CNN model (this one is a {} model)",
            path.display(),
            other.classifier().kind()
        ),
    }
}
