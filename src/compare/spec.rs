//! Which pipelines `compare` runs: `key=value,...` specs (`--classical`, `--cnn`) or a small TOML
//! / JSON file listing them.
//!
//! A classical spec starts from [`ClassicalConfig::default`] (the best measured configuration)
//! and takes `name` and every key of [`ClassicalConfig::set`] (the keys `train`'s flags set),
//! e.g. `cell=4,pca=128,extra-cell=4/2+7`. A CNN spec starts from [`compare_cnn_default`] and takes
//! `name` and every key of `CnnConfig::set`. A comma-separated token without `=` continues the
//! previous value (`channels=16,32,epochs=3`). `default` is the default pipeline; `none` drops
//! the side.
//!
//! A saved model (`--saved [name=NAME,]file=PATH`, or just the path) is a pipeline that is
//! loaded instead of trained: a model file of any kind (`train`, `prune`, `quantize`),
//! evaluated and measured beside the trained ones.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::pipeline::ClassicalConfig;

/// Epochs of the CNN that `compare` runs by default: small enough that the default run on the
/// bundled 2,000-image fixture takes about a minute on 2 cores. Retune here when the CNN's
/// speed changes (docs/REPORT.md records the choice); `--cnn epochs=N` overrides it. Since the
/// fused candle ops landed this is `CnnConfig::default()`'s own 15 (about 35-50 s on the
/// fixture on 2 cores).
pub const COMPARE_CNN_EPOCHS: usize = 15;

/// Name of the default classical pipeline.
pub const DEFAULT_CLASSICAL_NAME: &str = "hog+svm";
/// Name of the default CNN pipeline.
pub const DEFAULT_CNN_NAME: &str = "cnn";

/// A pipeline's configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineConfig {
    /// HOG → feature map → scaler → PCA → RFF → linear SVM.
    Classical(ClassicalConfig),
    /// The small CNN.
    #[cfg(feature = "cnn")]
    Cnn(crate::cnn::CnnConfig),
    /// A model file, loaded rather than trained.
    Saved(Saved),
}

/// A saved model's file and the kind its metadata says.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    /// The model file.
    pub path: std::path::PathBuf,
    /// Its model kind (`Classifier::kind`).
    pub kind: &'static str,
}

impl PipelineConfig {
    /// `classical`, `cnn` or (a saved model's) `cnn-int8`.
    pub fn kind(&self) -> &'static str {
        match self {
            PipelineConfig::Classical(_) => "classical",
            #[cfg(feature = "cnn")]
            PipelineConfig::Cnn(_) => "cnn",
            PipelineConfig::Saved(s) => s.kind,
        }
    }

    /// Whether `compare` trains it (a saved model is only loaded).
    pub fn is_trained(&self) -> bool {
        !matches!(self, PipelineConfig::Saved(_))
    }
}

/// A saved-model pipeline from a `--saved` value: `[name=NAME,]file=PATH` or a bare path. The
/// name defaults to the file's stem; the file is loaded for its kind (a file that is no valid
/// hogsvm model is an error naming it).
pub fn saved_from_spec(spec: &str) -> Result<PipelineSpec> {
    let (mut name, mut file) = (None, None);
    if spec.contains('=') {
        for (k, v) in pairs(spec, "saved")? {
            match k.to_ascii_lowercase().as_str() {
                "name" => name = Some(v),
                "file" => file = Some(v),
                _ => return Err(Error::param("saved", "keys are name and file", k)),
            }
        }
    } else {
        file = Some(spec.trim().to_string());
    }
    let file = file
        .filter(|f| !f.is_empty())
        .ok_or_else(|| Error::param("saved", "needs file=PATH", spec))?;
    let path = std::path::PathBuf::from(&file);
    // Loaded (and so verified) here for its kind, and again when the pipeline runs.
    let kind = crate::model::load_any(&path)?.classifier().kind();
    let name = name.unwrap_or_else(|| {
        path.file_stem()
            .map_or_else(|| file.clone(), |s| s.to_string_lossy().into_owned())
    });
    Ok(PipelineSpec {
        name,
        spec: format!("file={file}"),
        config: PipelineConfig::Saved(Saved { path, kind }),
    })
}

/// One pipeline to run.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    /// Unique name in the report.
    pub name: String,
    /// The spec text it came from (`default` for the default).
    pub spec: String,
    /// Its configuration.
    pub config: PipelineConfig,
}

impl PipelineSpec {
    /// The pipeline of spec `s`, named `name` when the spec gave one, else `DEFAULT[s]`.
    fn named(s: &str, name: Option<String>, default: &str, config: PipelineConfig) -> Self {
        PipelineSpec {
            name: name.unwrap_or_else(|| format!("{default}[{s}]")),
            spec: s.to_string(),
            config,
        }
    }
}

pub use crate::settings::pairs;

use crate::pipeline::is_none;

/// A classical pipeline from a spec (see the module documentation); seeds of PCA, random
/// features and the SVM are `seed` unless the spec sets `seed`. Returns the name the spec
/// gives, if any, and the validated configuration.
pub fn classical_from_spec(spec: &str, seed: u64) -> Result<(Option<String>, ClassicalConfig)> {
    classical_from_spec_over(spec, seed, ClassicalConfig::default())
}

/// [`classical_from_spec`] over `base` (the default for the data's image size,
/// [`ClassicalConfig::default_for`]).
pub fn classical_from_spec_over(
    spec: &str,
    seed: u64,
    base: ClassicalConfig,
) -> Result<(Option<String>, ClassicalConfig)> {
    let mut name = None;
    let mut settings = vec![("seed".to_string(), seed.to_string())];
    for (k, v) in pairs(spec, "classical")? {
        if k.eq_ignore_ascii_case("name") {
            name = Some(v);
        } else {
            settings.push((k, v));
        }
    }
    Ok((name, base.with(&settings)?))
}

/// The CNN `compare` runs by default: `CnnConfig::default()` with [`COMPARE_CNN_EPOCHS`]
/// epochs and the run's seed.
#[cfg(feature = "cnn")]
pub fn compare_cnn_default(seed: u64) -> crate::cnn::CnnConfig {
    crate::cnn::CnnConfig {
        epochs: COMPARE_CNN_EPOCHS,
        seed,
        ..Default::default()
    }
}

/// A CNN from a spec over [`compare_cnn_default`]; returns the name the spec gives, if any,
/// and the validated configuration.
#[cfg(feature = "cnn")]
pub fn cnn_from_spec(spec: &str, seed: u64) -> Result<(Option<String>, crate::cnn::CnnConfig)> {
    let mut c = compare_cnn_default(seed);
    let mut name = None;
    for (k, v) in pairs(spec, "cnn")? {
        if k.eq_ignore_ascii_case("name") {
            name = Some(v);
        } else {
            c.set(&k, &v)?;
        }
    }
    c.validate()?;
    Ok((name, c))
}

/// Parse the `--classical` and `--cnn` values (each a spec, `default` or `none`) into the list of
/// pipelines, classical first. An empty list for a side means its default pipeline.
pub fn pipelines(classical: &[String], cnn: &[String], seed: u64) -> Result<Vec<PipelineSpec>> {
    with_saved(classical, cnn, &[], seed)
}

/// As [`pipelines`], the classical specs over the default for images of `size` (`(rows, cols)`,
/// [`ClassicalConfig::default_for`]) when given.
pub fn pipelines_for(
    classical: &[String],
    cnn: &[String],
    seed: u64,
    size: Option<(usize, usize)>,
) -> Result<Vec<PipelineSpec>> {
    with_saved_for(classical, cnn, &[], seed, size)
}

/// As [`pipelines`], then the saved models of `saved` ([`saved_from_spec`]), in order.
pub fn with_saved(
    classical: &[String],
    cnn: &[String],
    saved: &[String],
    seed: u64,
) -> Result<Vec<PipelineSpec>> {
    with_saved_for(classical, cnn, saved, seed, None)
}

/// As [`with_saved`], the classical specs over the default for images of `size` when given.
pub fn with_saved_for(
    classical: &[String],
    cnn: &[String],
    saved: &[String],
    seed: u64,
    size: Option<(usize, usize)>,
) -> Result<Vec<PipelineSpec>> {
    let base = || {
        size.map_or_else(ClassicalConfig::default, |(r, c)| {
            ClassicalConfig::default_for(r, c)
        })
    };
    let mut out = Vec::new();
    // One side's specs: `default` when none are given, nothing for `none` (alone).
    let side = |name: &'static str, list: &[String]| -> Result<Vec<String>> {
        if list.is_empty() {
            return Ok(vec!["default".to_string()]);
        }
        if list.len() > 1 && list.iter().any(|s| is_none(s)) {
            return Err(Error::param(
                name,
                "`none` cannot be combined with other specs",
                "none",
            ));
        }
        Ok(list.iter().filter(|s| !is_none(s)).cloned().collect())
    };
    for s in &side("classical", classical)? {
        let (name, config) = if s == "default" {
            // The default configuration, seeded like a spec (its only seeded stage is the SVM).
            let (_, c) = classical_from_spec_over("", seed, base())?;
            (Some(DEFAULT_CLASSICAL_NAME.to_string()), c)
        } else {
            classical_from_spec_over(s, seed, base())?
        };
        let config = PipelineConfig::Classical(config);
        out.push(PipelineSpec::named(s, name, DEFAULT_CLASSICAL_NAME, config));
    }
    for s in &side("cnn", cnn)? {
        #[cfg(feature = "cnn")]
        {
            let (name, config) = if s == "default" {
                (
                    Some(DEFAULT_CNN_NAME.to_string()),
                    compare_cnn_default(seed),
                )
            } else {
                cnn_from_spec(s, seed)?
            };
            let config = PipelineConfig::Cnn(config);
            out.push(PipelineSpec::named(s, name, DEFAULT_CNN_NAME, config));
        }
        #[cfg(not(feature = "cnn"))]
        return Err(Error::param(
            "cnn",
            "this build has no CNN (built without the `cnn` feature)",
            s,
        ));
    }
    for s in saved {
        out.push(saved_from_spec(s)?);
    }
    if out.is_empty() {
        return Err(Error::param(
            "pipelines",
            "nothing to compare: both sides are `none` (give at least one --classical or --cnn)",
            "--classical none --cnn none",
        ));
    }
    for (i, p) in out.iter().enumerate() {
        if out[..i].iter().any(|q| q.name == p.name) {
            return Err(Error::param(
                "name",
                "two pipelines have the same name; give one a name=... in its spec",
                &p.name,
            ));
        }
    }
    Ok(out)
}

/// A pipelines file: `classical` and `cnn` lists of specs (strings), or of tables with `spec`
/// and an optional `name`. A missing key leaves that side to the command line (or its default);
/// an empty list drops the side.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinesFile {
    /// Classical specs.
    pub classical: Option<Vec<FileEntry>>,
    /// CNN specs.
    pub cnn: Option<Vec<FileEntry>>,
}

/// One entry of a [`PipelinesFile`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FileEntry {
    /// A spec string.
    Spec(String),
    /// A table.
    Table {
        /// Name in the report.
        name: Option<String>,
        /// The spec (default: `default`).
        #[serde(default)]
        spec: Option<String>,
    },
}

impl FileEntry {
    /// The entry as one spec string (`name=` prepended when the table names it).
    pub fn to_spec(&self) -> String {
        match self {
            FileEntry::Spec(s) => s.clone(),
            FileEntry::Table { name, spec } => {
                let spec = spec.clone().unwrap_or_default();
                match name {
                    Some(n) => {
                        if spec.is_empty() || spec == "default" {
                            format!("name={n}")
                        } else {
                            format!("name={n},{spec}")
                        }
                    }
                    None if spec.is_empty() => "default".into(),
                    None => spec,
                }
            }
        }
    }
}

impl PipelinesFile {
    /// Read a `.toml` or `.json` file (by extension; anything else is tried as TOML).
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let text = crate::io::read_text(path, "pipelines")?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let parsed: std::result::Result<Self, String> = if json {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|e| Error::invalid_file(path, e.replace('\n', " ")))
    }

    /// The specs of one side as strings; `none` when the list is empty.
    pub fn side(list: &Option<Vec<FileEntry>>) -> Option<Vec<String>> {
        list.as_ref().map(|l| {
            if l.is_empty() {
                vec!["none".to_string()]
            } else {
                l.iter().map(FileEntry::to_spec).collect()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::featmap::FeatureMap;
    use crate::reduce::Components;
    use crate::svm::ClassWeight;

    #[test]
    fn pairs_continue_values() {
        let p = pairs("cell=4, block=2,class-weight=1,2,3,name=a b", "x").unwrap();
        assert_eq!(
            p,
            vec![
                ("cell".into(), "4".into()),
                ("block".into(), "2".into()),
                ("class-weight".into(), "1,2,3".into()),
                ("name".into(), "a b".into()),
            ]
        );
        assert!(pairs("oops", "x").is_err());
        assert!(pairs("", "x").unwrap().is_empty());
        // A key given twice is an error, not "the last one wins" (spelling and case aside).
        let e = pairs("pca=64,c=1,PCA=32", "classical")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`PCA` is given twice"), "{e}");
        assert!(pairs("class_weight=1,class-weight=2", "x").is_err());
    }

    #[test]
    fn classical_spec_sets_each_stage() {
        let (name, c) = classical_from_spec(
            "name=hog4,cell=4,block=2,pca=128,whiten=true,rff=512,gamma=0.5,c=1,feature-map=hellinger,extra-cell=7",
            9,
        )
        .unwrap();
        assert_eq!(name.as_deref(), Some("hog4"));
        assert_eq!((c.hog.cell_rows, c.hog.cell_cols), (4, 4));
        assert_eq!((c.hog.block_rows, c.hog.block_cols), (2, 2));
        assert_eq!(c.hog_extra.len(), 1);
        assert_eq!(c.hog_extra[0].cell_rows, 7);
        assert_eq!(
            c.hog_extra[0].block_rows, 2,
            "extra descriptor shares the main parameters"
        );
        assert_eq!(c.feature_map, FeatureMap::Hellinger);
        let p = c.pca.as_ref().unwrap();
        assert_eq!(p.components, Components::Count(128));
        assert!(p.whiten);
        assert_eq!(p.seed, 9);
        let r = c.rff.as_ref().unwrap();
        assert_eq!((r.dim, r.gamma, r.seed), (512, Some(0.5), 9));
        assert_eq!(c.svm.c, 1.0);
        assert_eq!(c.svm.seed, 9);
        // Nystroem with its own gamma, mirrored training images.
        let (_, c) =
            classical_from_spec("pca=64,nystroem=2048,gamma=0.1,kmeans=0,flip=true", 5).unwrap();
        let n = c.nystroem.as_ref().unwrap();
        assert_eq!(
            (n.dim, n.gamma, n.seed, n.kmeans_iters),
            (2048, Some(0.1), 5, 0)
        );
        assert!(classical_from_spec("kmeans=3", 0).is_err());
        assert!(c.augment_flip && c.rff.is_none());
        assert!(classical_from_spec("rff=64,nystroem=64", 0).is_err());
        // The width as a multiple of scikit-learn's "scale".
        let (_, c) = classical_from_spec("pca=64,nystroem=512,gamma=scale*2", 0).unwrap();
        let n = c.nystroem.as_ref().unwrap();
        assert_eq!((n.gamma, n.gamma_scale), (None, 2.0));
        assert!(classical_from_spec("nystroem=512,gamma=scale*0", 0).is_err());
        assert!(classical_from_spec("gamma=scale*2", 0).is_err());
        // Nothing set: the default configuration (with the seed).
        let (name, c) = classical_from_spec("", 0).unwrap();
        assert_eq!(name, None);
        assert_eq!(c, ClassicalConfig::default());
        // Class weights as a list, the seed key.
        let (_, c) = classical_from_spec("class-weight=1,2,3,seed=4", 0).unwrap();
        assert_eq!(
            c.svm.class_weight,
            ClassWeight::Explicit(vec![1.0, 2.0, 3.0])
        );
        assert_eq!(c.svm.seed, 4);
    }

    #[test]
    fn classical_spec_errors_name_the_key() {
        for (spec, needle) in [
            ("cell=x", "cell"),
            ("colour=red", "colour"),
            ("pca=-3", "pca"),
            ("c=0", "c"),
            ("whiten=true", "needs pca"),
            ("gamma=1", "needs rff or nystroem"),
            ("feature-map=magic", "feature_map"),
            ("cell=0", "cell"),
        ] {
            let e = classical_from_spec(spec, 0).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn pipeline_lists() {
        let p = pipelines(&[], &["none".into()], 0).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, DEFAULT_CLASSICAL_NAME);
        let p = pipelines(
            &["cell=4".into(), "name=b,cell=7".into()],
            &["none".into()],
            0,
        )
        .unwrap();
        assert_eq!(p[0].name, "hog+svm[cell=4]");
        assert_eq!(p[1].name, "b");
        let e = pipelines(&["none".into()], &["none".into()], 0).unwrap_err();
        assert!(e.to_string().contains("nothing to compare"), "{e}");
        let e = pipelines(
            &["name=a".into(), "name=a,cell=4".into()],
            &["none".into()],
            0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("same name"), "{e}");
        assert!(pipelines(&["none".into(), "cell=4".into()], &["none".into()], 0).is_err());
    }

    #[cfg(feature = "cnn")]
    #[test]
    fn cnn_specs() {
        let p = pipelines(&["none".into()], &[], 3).unwrap();
        let PipelineConfig::Cnn(c) = &p[0].config else {
            panic!()
        };
        assert_eq!(c.epochs, COMPARE_CNN_EPOCHS);
        assert_eq!(c.seed, 3);
        assert_eq!(p[0].name, DEFAULT_CNN_NAME);
        let (name, c) = cnn_from_spec("name=small,channels=8,16,hidden=none,epochs=1", 0).unwrap();
        assert_eq!(name.as_deref(), Some("small"));
        assert_eq!(c.channels, vec![8, 16]);
        assert!(c.hidden.is_empty());
        assert_eq!(c.epochs, 1);
        assert!(cnn_from_spec("channels=0", 0).is_err());
        assert!(cnn_from_spec("wings=2", 0).is_err());
    }

    #[test]
    fn pipelines_files() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("p.toml");
        std::fs::write(
            &t,
            "classical = [\"cell=4\", { name = \"seven\", spec = \"cell=7\" }]\ncnn = []\n",
        )
        .unwrap();
        let f = PipelinesFile::read(&t).unwrap();
        assert_eq!(
            PipelinesFile::side(&f.classical).unwrap(),
            vec!["cell=4".to_string(), "name=seven,cell=7".to_string()]
        );
        assert_eq!(
            PipelinesFile::side(&f.cnn).unwrap(),
            vec!["none".to_string()]
        );
        let j = dir.path().join("p.json");
        std::fs::write(&j, r#"{"cnn": [{"name": "base"}]}"#).unwrap();
        let f = PipelinesFile::read(&j).unwrap();
        assert_eq!(f.classical, None);
        assert_eq!(
            PipelinesFile::side(&f.cnn).unwrap(),
            vec!["name=base".to_string()]
        );
        std::fs::write(&j, r#"{"svm": []}"#).unwrap();
        let e = PipelinesFile::read(&j).unwrap_err().to_string();
        assert!(e.contains("p.json") && e.contains("svm"), "{e}");
    }
}
