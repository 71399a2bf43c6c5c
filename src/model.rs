//! The model file: one safetensors file holding everything needed to predict from a raw image.
//!
//! Format (version [`FORMAT_VERSION`]):
//! * tensors (little-endian): `svm.weights` (f32, models x d), `svm.intercepts` (f32, models);
//!   when present `scaler.mean`, `scaler.scale` (f32, d0); `pca.mean` (f32, d1),
//!   `pca.components` (f32, k x d1), `pca.explained_variance` and
//!   `pca.explained_variance_ratio` (f64, k); `rff.weights` (f32, k x D), `rff.offsets` (f32,
//!   D), `rff.gamma` (f64, 1); `nystroem.landmarks` (f32, m x k), `nystroem.gamma` (f64, 1),
//!   and `nystroem.projection` (f32, m x m) unless the metadata says `nystroem_folded` (the
//!   projection folded into `svm.weights`, see `ClassicalModel::fold_nystroem`; what `train`
//!   writes);
//! * metadata: one key, `hogsvm`, whose value is a JSON object ([`ModelMeta`]): `format` =
//!   `hogsvm-model`, `format_version`, `kind` = `classical`, `hogsvm_version`, `config` (the
//!   [`ClassicalConfig`]), `class_names`, `input` (`{"rows": R, "cols": C}`), `svm_iterations`
//!   and `crc32` (hex CRC-32 of every tensor's bytes, in name order). One key because
//!   safetensors stores metadata in a hash map whose order varies from run to run: a single
//!   key keeps the file byte-for-byte reproducible.
//!
//! Loading checks the header, format name and version (a newer file is refused with a clear
//! message), the checksum, and that every shape agrees with the configuration, so a truncated,
//! corrupt or foreign file is an error, never a panic or a silently wrong model. Files are
//! written atomically (temporary file + rename).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::featmap::{Nystroem, Rff};
use crate::pipeline::{ClassicalConfig, ClassicalModel};
use crate::reduce::{Pca, StandardScaler};
use crate::svm::LinearSvm;

/// Version written by this build; files with a larger version are refused.
pub const FORMAT_VERSION: u32 = 1;
/// Value of the `format` metadata key.
pub const FORMAT_NAME: &str = "hogsvm-model";
/// Largest model file accepted.
pub const MAX_MODEL_BYTES: u64 = 4 << 30;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The metadata key holding [`ModelMeta`].
pub const META_KEY: &str = "hogsvm";

/// Image size a model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSize {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// Everything in a model file besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// `classical`.
    pub kind: String,
    /// Version of hogsvm that wrote the file.
    pub hogsvm_version: String,
    /// Pipeline configuration.
    pub config: ClassicalConfig,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Image size the model expects.
    pub input: InputSize,
    /// Passes each SVM problem took.
    pub svm_iterations: Vec<usize>,
    /// The Nystroem projection is folded into the SVM weights (no `nystroem.projection`
    /// tensor). Absent in older files: false.
    #[serde(default)]
    pub nystroem_folded: bool,
    /// CRC-32 of the tensors' bytes, in name order, as 8 hex digits.
    pub crc32: String,
}

/// Serialise a model to bytes.
pub fn to_bytes(m: &ClassicalModel) -> Result<Vec<u8>> {
    let mut tensors: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let mut put32 = |name: &str, shape: Vec<usize>, v: Vec<f32>| {
        tensors.insert(name.to_string(), (Dtype::F32, shape, f32_bytes(&v)));
    };
    put32(
        "svm.weights",
        m.svm.weights.shape().to_vec(),
        m.svm.weights.iter().copied().collect(),
    );
    put32(
        "svm.intercepts",
        vec![m.svm.intercepts.len()],
        m.svm.intercepts.to_vec(),
    );
    if let Some(s) = &m.scaler {
        put32("scaler.mean", vec![s.mean.len()], s.mean.to_vec());
        put32("scaler.scale", vec![s.scale.len()], s.scale.to_vec());
    }
    if let Some(p) = &m.pca {
        put32("pca.mean", vec![p.mean.len()], p.mean.to_vec());
        put32(
            "pca.components",
            p.components.shape().to_vec(),
            p.components.iter().copied().collect(),
        );
        for (name, v) in [
            ("pca.explained_variance", &p.explained_variance),
            ("pca.explained_variance_ratio", &p.explained_variance_ratio),
        ] {
            tensors.insert(
                name.to_string(),
                (
                    Dtype::F64,
                    vec![v.len()],
                    f64_bytes(v.as_slice().unwrap_or(&v.to_vec())),
                ),
            );
        }
    }
    if let Some(r) = &m.rff {
        tensors.insert(
            "rff.weights".into(),
            (
                Dtype::F32,
                r.weights.shape().to_vec(),
                f32_bytes(&r.weights.iter().copied().collect::<Vec<_>>()),
            ),
        );
        tensors.insert(
            "rff.offsets".into(),
            (
                Dtype::F32,
                vec![r.offsets.len()],
                f32_bytes(&r.offsets.to_vec()),
            ),
        );
        tensors.insert(
            "rff.gamma".into(),
            (Dtype::F64, vec![1], f64_bytes(&[r.gamma])),
        );
    }
    if let Some(n) = &m.nystroem {
        for (name, a) in [
            Some(("nystroem.landmarks", &n.landmarks)),
            n.projection.as_ref().map(|p| ("nystroem.projection", p)),
        ]
        .into_iter()
        .flatten()
        {
            tensors.insert(
                name.into(),
                (
                    Dtype::F32,
                    a.shape().to_vec(),
                    f32_bytes(&a.iter().copied().collect::<Vec<_>>()),
                ),
            );
        }
        tensors.insert(
            "nystroem.gamma".into(),
            (Dtype::F64, vec![1], f64_bytes(&[n.gamma])),
        );
    }
    let meta_obj = ModelMeta {
        format: FORMAT_NAME.to_string(),
        format_version: FORMAT_VERSION,
        kind: "classical".into(),
        hogsvm_version: env!("CARGO_PKG_VERSION").into(),
        config: m.config.clone(),
        class_names: m.class_names.clone(),
        input: InputSize {
            rows: m.rows,
            cols: m.cols,
        },
        svm_iterations: m.svm.iterations.clone(),
        nystroem_folded: m.nystroem.as_ref().is_some_and(|n| n.projection.is_none()),
        crc32: crc_of(&tensors),
    };
    let text = serde_json::to_string(&meta_obj)
        .map_err(|e| Error::param("model", format!("cannot serialise: {e}"), ""))?;
    serialize(&tensors, text)
}

/// Tensors by name: dtype, shape and little-endian bytes. A `BTreeMap` so that the file's
/// tensor order, and so its bytes, never vary.
pub(crate) type TensorMap = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

/// CRC-32 of every tensor's bytes in name order, as 8 hex digits (the metadata's `crc32`).
pub(crate) fn crc_of(tensors: &TensorMap) -> String {
    let mut crc = crc32fast::Hasher::new();
    for (_, _, bytes) in tensors.values() {
        crc.update(bytes);
    }
    format!("{:08x}", crc.finalize())
}

/// A safetensors file with one metadata key, [`META_KEY`], holding `meta_json`.
pub(crate) fn serialize(tensors: &TensorMap, meta_json: String) -> Result<Vec<u8>> {
    let meta = HashMap::from([(META_KEY.to_string(), meta_json)]);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (dt, shape, bytes))| {
            TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::param("model", format!("bad tensor {k}: {e}"), ""))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, &Some(meta))
        .map_err(|e| Error::param("model", format!("cannot serialise: {e}"), ""))
}

/// Open model bytes of the given kind: safetensors structure, format name, version (a newer
/// file is refused), kind and checksum. Returns the tensors and the metadata JSON.
pub(crate) fn open_checked<'a>(
    bytes: &'a [u8],
    want_kind: &str,
) -> std::result::Result<(SafeTensors<'a>, serde_json::Value), String> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a hogsvm model (not a valid safetensors file: {e:?})"))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a hogsvm model (unreadable header: {e:?})"))?;
    let text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or("not a hogsvm model (no `hogsvm` metadata)")?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("not a hogsvm model (metadata is not JSON: {e})"))?;
    if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
        return Err("not a hogsvm model (metadata `format` is not hogsvm-model)".into());
    }
    let version = value
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or("model metadata lacks a numeric `format_version`")?;
    if version > FORMAT_VERSION as u64 {
        return Err(format!(
            "model format version {version} is newer than this hogsvm {} supports ({FORMAT_VERSION}); \
             upgrade hogsvm",
            env!("CARGO_PKG_VERSION")
        ));
    }
    if let Some(kind) = value.get("kind").and_then(|v| v.as_str()) {
        if kind != want_kind {
            return Err(format!("model kind `{kind}` is not a {want_kind} model"));
        }
    }
    // Checksum over every tensor, in name order.
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    let mut crc = crc32fast::Hasher::new();
    for n in &names {
        let t = st.tensor(n).map_err(|e| format!("tensor {n}: {e:?}"))?;
        crc.update(t.data());
    }
    if Some(format!("{:08x}", crc.finalize()).as_str())
        != value.get("crc32").and_then(|v| v.as_str())
    {
        return Err("model checksum mismatch: the file is corrupted".into());
    }
    Ok((st, value))
}

/// Save a model atomically.
pub fn save(m: &ClassicalModel, path: &Path) -> Result<()> {
    let bytes = to_bytes(m)?;
    crate::io::write_atomic(path, |w| w.write_all(&bytes))
}

/// Load and verify a model file.
pub fn load(path: &Path) -> Result<ClassicalModel> {
    let bytes = read_model_bytes(path)?;
    from_bytes(&bytes).map_err(|reason| Error::invalid_file(path, reason))
}

/// A model of either kind, as read from a file.
// The classical model is held inline: a model is loaded once per command, so the size of the
// enum does not matter, and boxing would make every caller unwrap a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AnyModel {
    /// HOG → ... → linear SVM.
    Classical(ClassicalModel),
    /// The small CNN.
    #[cfg(feature = "cnn")]
    Cnn(crate::cnn::CnnModel),
}

impl AnyModel {
    /// `classical` or `cnn`, as in the file's metadata.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyModel::Classical(_) => "classical",
            #[cfg(feature = "cnn")]
            AnyModel::Cnn(_) => "cnn",
        }
    }

    /// Class names in label order.
    pub fn class_names(&self) -> &[String] {
        match self {
            AnyModel::Classical(m) => &m.class_names,
            #[cfg(feature = "cnn")]
            AnyModel::Cnn(m) => &m.class_names,
        }
    }

    /// Image size the model expects.
    pub fn input(&self) -> InputSize {
        match self {
            AnyModel::Classical(m) => InputSize {
                rows: m.rows,
                cols: m.cols,
            },
            #[cfg(feature = "cnn")]
            AnyModel::Cnn(m) => InputSize {
                rows: m.rows,
                cols: m.cols,
            },
        }
    }

    /// Predicted labels for images of the model's size.
    pub fn predict(&self, ds: &crate::data::Dataset) -> Result<Vec<u32>> {
        match self {
            AnyModel::Classical(m) => m.predict(ds),
            #[cfg(feature = "cnn")]
            AnyModel::Cnn(m) => m.predict(ds),
        }
    }

    /// Evaluate on a labelled dataset whose classes are the model's.
    pub fn evaluate(&self, ds: &crate::data::Dataset) -> Result<crate::metrics::Report> {
        match self {
            AnyModel::Classical(m) => m.evaluate(ds),
            #[cfg(feature = "cnn")]
            AnyModel::Cnn(m) => m.evaluate(ds),
        }
    }

    /// Predicted label of each image and its score: the SVM's decision value for that label
    /// (of the single model when there are two classes), or the CNN's softmax probability.
    pub fn predict_scored(&self, ds: &crate::data::Dataset) -> Result<Vec<(u32, f32)>> {
        match self {
            AnyModel::Classical(m) => {
                let s = m.decision_function(ds)?;
                let labels = LinearSvm::labels_from_scores(s.view(), m.svm.n_classes);
                Ok(labels
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| {
                        let col = if m.svm.n_classes == 2 { 0 } else { l as usize };
                        (l, s[[i, col]])
                    })
                    .collect())
            }
            #[cfg(feature = "cnn")]
            AnyModel::Cnn(m) => Ok(m
                .predict_proba(ds)?
                .into_iter()
                .map(|p| {
                    let (l, v) =
                        p.iter()
                            .enumerate()
                            .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                    (l as u32, v)
                })
                .collect()),
        }
    }

    /// The model file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        match self {
            AnyModel::Classical(m) => to_bytes(m),
            #[cfg(feature = "cnn")]
            AnyModel::Cnn(m) => m.to_bytes(),
        }
    }
}

/// Load and verify a model file of either kind.
pub fn load_any(path: &Path) -> Result<AnyModel> {
    let bytes = read_model_bytes(path)?;
    any_from_bytes(&bytes).map_err(|reason| Error::invalid_file(path, reason))
}

/// Parse model bytes of either kind; the error is a reason in words.
pub fn any_from_bytes(bytes: &[u8]) -> std::result::Result<AnyModel, String> {
    let kind = SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, h)| h.metadata().as_ref().and_then(|m| m.get(META_KEY).cloned()))
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string));
    match kind.as_deref() {
        #[cfg(feature = "cnn")]
        Some("cnn") => crate::cnn::CnnModel::from_bytes(bytes).map(AnyModel::Cnn),
        #[cfg(not(feature = "cnn"))]
        Some("cnn") => {
            Err("this is a CNN model, and this hogsvm was built without the `cnn` feature".into())
        }
        _ => from_bytes(bytes).map(AnyModel::Classical),
    }
}

fn read_model_bytes(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_MODEL_BYTES {
        return Err(Error::invalid_file(
            path,
            format!("{} bytes is larger than any hogsvm model", meta.len()),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Parse and verify model bytes; the error is a reason in words.
pub fn from_bytes(bytes: &[u8]) -> std::result::Result<ClassicalModel, String> {
    let (st, value) = open_checked(bytes, "classical")?;
    let meta: ModelMeta =
        serde_json::from_value(value).map_err(|e| format!("model metadata: {e}"))?;
    let ModelMeta {
        config,
        class_names,
        input: InputSize { rows, cols },
        svm_iterations: iterations,
        nystroem_folded,
        ..
    } = meta;

    let tensor = |n: &str, dt: Dtype| -> std::result::Result<(Vec<usize>, Vec<u8>), String> {
        let t = st
            .tensor(n)
            .map_err(|_| format!("model lacks tensor `{n}`"))?;
        if t.dtype() != dt {
            return Err(format!(
                "tensor `{n}` has dtype {:?}, expected {dt:?}",
                t.dtype()
            ));
        }
        Ok((t.shape().to_vec(), t.data().to_vec()))
    };
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let f64s = |b: &[u8]| -> Vec<f64> {
        b.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    };
    let vec32 = |n: &str, len: usize| -> std::result::Result<Array1<f32>, String> {
        let (shape, b) = tensor(n, Dtype::F32)?;
        if shape != [len] {
            return Err(format!(
                "tensor `{n}` has shape {shape:?}, expected [{len}]"
            ));
        }
        Ok(Array1::from(f32s(&b)))
    };

    // Expected dimensions, stage by stage, from the configuration.
    config
        .validate()
        .map_err(|e| format!("model config: {e}"))?;
    let d_hog = config
        .hog_len(rows, cols)
        .map_err(|e| format!("model config: {e}"))?;
    config
        .feature_map
        .validate()
        .map_err(|e| format!("model config: {e}"))?;
    let d_map = config.feature_map.output_dim(d_hog);
    let scaler = if config.standardize {
        Some(StandardScaler {
            mean: vec32("scaler.mean", d_map)?,
            scale: vec32("scaler.scale", d_map)?,
        })
    } else {
        None
    };
    let (pca, d_svm) = match &config.pca {
        Some(p) => {
            let (shape, b) = tensor("pca.components", Dtype::F32)?;
            if shape.len() != 2 || shape[1] != d_map || shape[0] == 0 {
                return Err(format!(
                    "tensor `pca.components` has shape {shape:?}, expected [k, {d_map}]"
                ));
            }
            let k = shape[0];
            let components = Array2::from_shape_vec((k, d_map), f32s(&b))
                .map_err(|e| format!("pca.components: {e}"))?;
            let ev = |n: &str| -> std::result::Result<Array1<f64>, String> {
                let (shape, b) = tensor(n, Dtype::F64)?;
                if shape != [k] {
                    return Err(format!("tensor `{n}` has shape {shape:?}, expected [{k}]"));
                }
                Ok(Array1::from(f64s(&b)))
            };
            (
                Some(Pca {
                    mean: vec32("pca.mean", d_map)?,
                    components,
                    explained_variance: ev("pca.explained_variance")?,
                    explained_variance_ratio: ev("pca.explained_variance_ratio")?,
                    whiten: p.whiten,
                }),
                k,
            )
        }
        None => (None, d_map),
    };
    let (rff, d_svm) = match &config.rff {
        Some(p) => {
            let (shape, b) = tensor("rff.weights", Dtype::F32)?;
            if shape != [d_svm, p.dim] {
                return Err(format!(
                    "tensor `rff.weights` has shape {shape:?}, expected [{d_svm}, {}]",
                    p.dim
                ));
            }
            let weights = Array2::from_shape_vec((d_svm, p.dim), f32s(&b))
                .map_err(|e| format!("rff.weights: {e}"))?;
            let (gshape, gb) = tensor("rff.gamma", Dtype::F64)?;
            if gshape != [1] {
                return Err(format!(
                    "tensor `rff.gamma` has shape {gshape:?}, expected [1]"
                ));
            }
            (
                Some(Rff {
                    weights,
                    offsets: vec32("rff.offsets", p.dim)?,
                    gamma: f64s(&gb)[0],
                }),
                p.dim,
            )
        }
        None => (None, d_svm),
    };
    let (nystroem, d_svm) = match &config.nystroem {
        Some(p) => {
            let (shape, b) = tensor("nystroem.landmarks", Dtype::F32)?;
            let m = match shape[..] {
                [m, d] if d == d_svm && (1..=p.dim).contains(&m) => m,
                _ => {
                    return Err(format!(
                    "tensor `nystroem.landmarks` has shape {shape:?}, expected [1..={}, {d_svm}]",
                    p.dim
                ))
                }
            };
            let landmarks = Array2::from_shape_vec((m, d_svm), f32s(&b))
                .map_err(|e| format!("nystroem.landmarks: {e}"))?;
            let projection = if nystroem_folded {
                if st.tensor("nystroem.projection").is_ok() {
                    return Err("model says its Nystroem projection is folded but holds one".into());
                }
                None
            } else {
                let (pshape, pb) = tensor("nystroem.projection", Dtype::F32)?;
                if pshape != [m, m] {
                    return Err(format!(
                        "tensor `nystroem.projection` has shape {pshape:?}, expected [{m}, {m}]"
                    ));
                }
                Some(
                    Array2::from_shape_vec((m, m), f32s(&pb))
                        .map_err(|e| format!("nystroem.projection: {e}"))?,
                )
            };
            let (gshape, gb) = tensor("nystroem.gamma", Dtype::F64)?;
            if gshape != [1] {
                return Err(format!(
                    "tensor `nystroem.gamma` has shape {gshape:?}, expected [1]"
                ));
            }
            (
                Some(Nystroem {
                    landmarks,
                    projection,
                    gamma: f64s(&gb)[0],
                }),
                m,
            )
        }
        None => (None, d_svm),
    };
    let models = if class_names.len() == 2 {
        1
    } else {
        class_names.len()
    };
    if class_names.len() < 2 {
        return Err(format!(
            "model has {} classes; at least 2 needed",
            class_names.len()
        ));
    }
    let (shape, b) = tensor("svm.weights", Dtype::F32)?;
    if shape != [models, d_svm] {
        return Err(format!(
            "tensor `svm.weights` has shape {shape:?}, expected [{models}, {d_svm}]"
        ));
    }
    let weights = Array2::from_shape_vec((models, d_svm), f32s(&b))
        .map_err(|e| format!("svm.weights: {e}"))?;
    let intercepts = vec32("svm.intercepts", models)?;
    Ok(ClassicalModel {
        config,
        class_names: class_names.clone(),
        rows,
        cols,
        scaler,
        pca,
        rff,
        nystroem,
        svm: LinearSvm {
            weights,
            intercepts,
            n_classes: class_names.len(),
            iterations,
        },
    })
}
