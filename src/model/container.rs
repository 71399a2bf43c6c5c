//! The model-file container, shared by every model kind: a safetensors file whose one metadata
//! key, [`META_KEY`], holds an [`Envelope`] as JSON.
//!
//! This module knows nothing of the rest of the crate (it imports none of it): a model kind
//! writes its tensors into a [`TensorWriter`] and its configuration and kind-specific fields into
//! the envelope; reading goes through [`open`], which checks everything a file of any kind must
//! pass before a kind's codec looks at it:
//! * the safetensors structure and the `hogsvm` metadata key;
//! * `format` = [`FORMAT_NAME`] and `format_version` <= [`FORMAT_VERSION`] (a newer file is
//!   refused with a clear message);
//! * `kind` (a file of another kind is refused);
//! * `crc32`: a CRC-32 over the whole file's content (format version 2): every tensor's name,
//!   dtype, shape and bytes, in name order, then the metadata's JSON text up to the checksum's
//!   digits, so one flipped digit in a normalisation constant, a class name or a quantisation
//!   zero point is caught as surely as one in a weight. Files of format version 1 (whose
//!   checksum covers the tensors' bytes only) are still read, with that check.
//!
//! One metadata key because safetensors stores metadata in a hash map whose order varies from run
//! to run: a single key keeps the file byte-for-byte reproducible. Tensors are kept in a
//! `BTreeMap`, so their order in the file never varies either.

use std::collections::{BTreeMap, HashMap};

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Version written by this build; files with a larger version are refused. Version 2: the
/// checksum covers the metadata and the tensors' names, dtypes and shapes too (version 1: the
/// tensors' bytes only); nothing else changed.
pub const FORMAT_VERSION: u32 = 2;
/// Value of the `format` metadata key.
pub const FORMAT_NAME: &str = "hogsvm-model";
/// The metadata key holding the [`Envelope`].
pub const META_KEY: &str = "hogsvm";
/// Largest model file accepted.
pub const MAX_MODEL_BYTES: u64 = 4 << 30;

/// Why model bytes cannot be read (or written). The `Display` form is one line, without the file
/// name (callers add it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// Not a hogsvm model file at all.
    #[error("not a hogsvm model ({0})")]
    NotAModel(String),
    /// The metadata has no numeric `format_version`.
    #[error("model metadata lacks a numeric `format_version`")]
    NoVersion,
    /// Written by a newer hogsvm.
    #[error(
        "model format version {found} is newer than this hogsvm {hogsvm} supports ({supported}); \
         upgrade hogsvm"
    )]
    TooNew {
        /// Version in the file.
        found: u64,
        /// Newest version this build reads.
        supported: u32,
        /// This build's version.
        hogsvm: &'static str,
    },
    /// A model of another kind than the codec reading it.
    #[error("model kind `{found}` is not a {expected} model")]
    WrongKind {
        /// Kind in the file.
        found: String,
        /// Kind the reader wants.
        expected: &'static str,
    },
    /// The content's checksum is not the one in the metadata.
    #[error("model checksum mismatch: the file is corrupted")]
    Checksum,
    /// A tensor the configuration needs is missing.
    #[error("model lacks tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has the wrong element type.
    #[error("tensor `{name}` has dtype {got}, expected {expected}")]
    Dtype {
        /// Tensor name.
        name: String,
        /// Element type wanted.
        expected: String,
        /// Element type found.
        got: String,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` has shape {got}, expected {expected}")]
    Shape {
        /// Tensor name.
        name: String,
        /// Shape wanted, in words (`[k, 3969]`).
        expected: String,
        /// Shape found.
        got: String,
    },
    /// Anything else that is wrong with the content (metadata, configuration, values).
    #[error("{0}")]
    Invalid(String),
}

impl ModelError {
    /// Shorthand for [`ModelError::Shape`] with the found shape printed as `[a, b]`.
    pub fn shape(name: &str, expected: impl Into<String>, got: &[usize]) -> Self {
        ModelError::Shape {
            name: name.into(),
            expected: expected.into(),
            got: format!("{got:?}"),
        }
    }

    /// Shorthand for [`ModelError::Invalid`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        ModelError::Invalid(reason.into())
    }
}

/// Image size a model expects: rows, columns, and values per pixel (1: gray, 3: RGB; written
/// only when 3, so that gray models keep the bytes they had before colour existed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSize {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Values per pixel.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub channels: usize,
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl From<(usize, usize)> for InputSize {
    /// `(rows, cols)`, gray.
    fn from((rows, cols): (usize, usize)) -> Self {
        InputSize {
            rows,
            cols,
            channels: 1,
        }
    }
}

/// The metadata of every model file: the fields all kinds share around the kind's configuration
/// `C` and its own fields `X` (flattened in place, before the checksum).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<C, X> {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The model kind (`classical`, `cnn`).
    pub kind: String,
    /// Version of hogsvm that wrote the file.
    pub hogsvm_version: String,
    /// The kind's configuration.
    pub config: C,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Image size the model expects.
    pub input: InputSize,
    /// The kind's own fields.
    #[serde(flatten)]
    pub extra: X,
    /// CRC-32 of the file's content (see the [module docs](self)), as 8 hex digits; the last
    /// field of the JSON text.
    pub crc32: String,
}

/// Tensors by name: dtype, shape and little-endian bytes, in name order.
#[derive(Debug, Clone, Default)]
pub struct TensorWriter {
    tensors: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>,
}

impl TensorWriter {
    /// An empty set of tensors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add an f32 tensor (row-major values).
    pub fn f32(&mut self, name: &str, shape: &[usize], values: impl IntoIterator<Item = f32>) {
        let bytes = values.into_iter().flat_map(f32::to_le_bytes).collect();
        self.tensors
            .insert(name.into(), (Dtype::F32, shape.to_vec(), bytes));
    }

    /// Add an f64 tensor (row-major values).
    pub fn f64(&mut self, name: &str, shape: &[usize], values: impl IntoIterator<Item = f64>) {
        let bytes = values.into_iter().flat_map(f64::to_le_bytes).collect();
        self.tensors
            .insert(name.into(), (Dtype::F64, shape.to_vec(), bytes));
    }

    /// Add an i8 tensor (row-major values).
    pub fn i8(&mut self, name: &str, shape: &[usize], values: impl IntoIterator<Item = i8>) {
        let bytes = values.into_iter().map(|v| v as u8).collect();
        self.tensors
            .insert(name.into(), (Dtype::I8, shape.to_vec(), bytes));
    }

    /// Add a 2-D f32 array.
    pub fn matrix(&mut self, name: &str, a: &Array2<f32>) {
        self.f32(name, a.shape(), a.iter().copied());
    }

    /// Add a 1-D f32 array.
    pub fn vector(&mut self, name: &str, a: &Array1<f32>) {
        self.f32(name, &[a.len()], a.iter().copied());
    }
}

/// The JSON text's end that holds the checksum: `"crc32":"` + 8 hex digits + `"}`.
const CRC_KEY: &str = "\"crc32\":\"";
/// Bytes after the checksummed prefix of the metadata text: the 8 digits and `"}`.
const CRC_TAIL: usize = 10;

/// The format-version-2 checksum: each tensor's name, dtype, shape and bytes in name order
/// (`tensors` yields them so), then the metadata text without its last [`CRC_TAIL`] bytes.
fn content_crc<'t>(
    tensors: impl Iterator<Item = (&'t str, Dtype, &'t [usize], &'t [u8])>,
    meta_prefix: &str,
) -> String {
    let mut crc = crc32fast::Hasher::new();
    for (name, dtype, shape, bytes) in tensors {
        crc.update(&(name.len() as u64).to_le_bytes());
        crc.update(name.as_bytes());
        crc.update(format!("{dtype:?}").as_bytes());
        crc.update(&(shape.len() as u64).to_le_bytes());
        for &d in shape {
            crc.update(&(d as u64).to_le_bytes());
        }
        crc.update(&(bytes.len() as u64).to_le_bytes());
        crc.update(bytes);
    }
    crc.update(meta_prefix.as_bytes());
    format!("{:08x}", crc.finalize())
}

/// The metadata text without its checksum's digits, when it ends as [`encode`] writes it.
fn checksummed_prefix(text: &str) -> Option<&str> {
    let prefix = text.get(..text.len().checked_sub(CRC_TAIL)?)?;
    (prefix.ends_with(CRC_KEY) && text.ends_with("\"}")).then_some(prefix)
}

/// The bytes of a model file of `kind`: the tensors and the envelope around `config` and
/// `extra` (the checksum is computed here).
pub fn encode<C: Serialize, X: Serialize>(
    kind: &str,
    config: &C,
    class_names: &[String],
    input: InputSize,
    extra: &X,
    tensors: &TensorWriter,
) -> Result<Vec<u8>, ModelError> {
    let envelope = Envelope {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        kind: kind.into(),
        hogsvm_version: env!("CARGO_PKG_VERSION").into(),
        config,
        class_names: class_names.to_vec(),
        input,
        extra,
        crc32: "00000000".into(),
    };
    let text = serde_json::to_string(&envelope)
        .map_err(|e| ModelError::invalid(format!("cannot serialise: {e}")))?;
    let prefix = checksummed_prefix(&text)
        .ok_or_else(|| ModelError::invalid("cannot serialise: the checksum is not last"))?;
    let crc = content_crc(
        tensors
            .tensors
            .iter()
            .map(|(k, (dt, shape, bytes))| (k.as_str(), *dt, &shape[..], &bytes[..])),
        prefix,
    );
    let text = format!("{prefix}{crc}\"}}");
    write_file(tensors, text)
}

/// The metadata of model bytes as JSON (no check beyond the safetensors structure).
pub fn metadata(bytes: &[u8]) -> Result<serde_json::Value, ModelError> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| ModelError::NotAModel(format!("unreadable header: {e:?}")))?;
    let text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| ModelError::NotAModel("no `hogsvm` metadata".into()))?;
    serde_json::from_str(text).map_err(|e| ModelError::NotAModel(format!("metadata: {e}")))
}

/// The model bytes with the same tensors and `meta` as their metadata, sealed with a fresh
/// checksum (format version 2: the checksum is computed over what is written, whatever
/// `format_version` says). For tools and tests that edit a file on purpose: the loader then
/// checks the content itself, as it must for any file whose checksum is intact.
pub fn with_metadata(bytes: &[u8], meta: &serde_json::Value) -> Result<Vec<u8>, ModelError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| ModelError::NotAModel(format!("not a valid safetensors file: {e:?}")))?;
    let mut obj = meta
        .as_object()
        .cloned()
        .ok_or_else(|| ModelError::invalid("metadata must be a JSON object"))?;
    obj.remove("crc32");
    let body = serde_json::to_string(&obj)
        .map_err(|e| ModelError::invalid(format!("cannot serialise: {e}")))?;
    let open = &body[..body.len() - 1];
    let sep = if obj.is_empty() { "" } else { "," };
    let prefix = format!("{open}{sep}{CRC_KEY}");
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    let mut w = TensorWriter::new();
    for n in &names {
        let t = st
            .tensor(n)
            .map_err(|e| ModelError::invalid(format!("tensor {n}: {e:?}")))?;
        w.tensors.insert(
            n.clone(),
            (t.dtype(), t.shape().to_vec(), t.data().to_vec()),
        );
    }
    let crc = content_crc(
        w.tensors
            .iter()
            .map(|(k, (dt, shape, b))| (k.as_str(), *dt, &shape[..], &b[..])),
        &prefix,
    );
    let text = format!("{prefix}{crc}\"}}");
    write_file(&w, text)
}

/// The safetensors bytes of `tensors` with `text` as the `hogsvm` metadata.
fn write_file(tensors: &TensorWriter, text: String) -> Result<Vec<u8>, ModelError> {
    let meta = HashMap::from([(META_KEY.to_string(), text)]);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .tensors
        .iter()
        .map(|(k, (dt, shape, bytes))| {
            TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| ModelError::invalid(format!("bad tensor {k}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize(views, &Some(meta))
        .map_err(|e| ModelError::invalid(format!("cannot serialise: {e}")))
}

/// The `kind` in model bytes' metadata, if the bytes are readable that far.
pub fn peek_kind(bytes: &[u8]) -> Option<String> {
    SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, h)| h.metadata().as_ref().and_then(|m| m.get(META_KEY).cloned()))
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
}

/// Model bytes that passed [`open`]'s checks: the envelope's JSON and the tensors.
pub struct Opened<'a> {
    meta: serde_json::Value,
    tensors: TensorReader<'a>,
}

impl<'a> Opened<'a> {
    /// The envelope, with the kind's configuration `C` and fields `X`.
    pub fn envelope<C: DeserializeOwned, X: DeserializeOwned>(
        &self,
    ) -> Result<Envelope<C, X>, ModelError> {
        Envelope::deserialize(&self.meta)
            .map_err(|e| ModelError::invalid(format!("model metadata: {e}")))
    }

    /// The tensors.
    pub fn tensors(&self) -> &TensorReader<'a> {
        &self.tensors
    }
}

/// Open model bytes of `kind`: safetensors structure, format name, version (a newer file is
/// refused), kind and checksum.
pub fn open<'a>(bytes: &'a [u8], kind: &'static str) -> Result<Opened<'a>, ModelError> {
    let not = |why: String| ModelError::NotAModel(why);
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| not(format!("not a valid safetensors file: {e:?}")))?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| not(format!("unreadable header: {e:?}")))?;
    let text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| not("no `hogsvm` metadata".into()))?;
    let meta: serde_json::Value =
        serde_json::from_str(text).map_err(|e| not(format!("metadata is not JSON: {e}")))?;
    if meta.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
        return Err(not("metadata `format` is not hogsvm-model".into()));
    }
    let version = meta
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or(ModelError::NoVersion)?;
    if version > FORMAT_VERSION as u64 {
        return Err(ModelError::TooNew {
            found: version,
            supported: FORMAT_VERSION,
            hogsvm: env!("CARGO_PKG_VERSION"),
        });
    }
    if let Some(found) = meta.get("kind").and_then(|v| v.as_str()) {
        if found != kind {
            return Err(ModelError::WrongKind {
                found: found.into(),
                expected: kind,
            });
        }
    }
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    let views = names
        .iter()
        .map(|n| {
            st.tensor(n)
                .map(|t| (n.as_str(), t))
                .map_err(|e| ModelError::invalid(format!("tensor {n}: {e:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stored = meta.get("crc32").and_then(|v| v.as_str());
    let computed = if version >= 2 {
        let prefix = checksummed_prefix(text).ok_or(ModelError::Checksum)?;
        content_crc(
            views
                .iter()
                .map(|(n, t)| (*n, t.dtype(), t.shape(), t.data())),
            prefix,
        )
    } else {
        // Format version 1: the tensors' bytes only.
        let mut crc = crc32fast::Hasher::new();
        for (_, t) in &views {
            crc.update(t.data());
        }
        format!("{:08x}", crc.finalize())
    };
    if stored != Some(computed.as_str()) {
        return Err(ModelError::Checksum);
    }
    Ok(Opened {
        meta,
        tensors: TensorReader { st },
    })
}

/// An error for tensor `name` unless `ok` (all its values are finite).
fn finite(name: &str, ok: bool) -> Result<(), ModelError> {
    if ok {
        Ok(())
    } else {
        Err(ModelError::invalid(format!(
            "tensor `{name}` holds NaN or infinite values"
        )))
    }
}

/// Typed access to a model file's tensors, every read checked for presence, dtype and shape.
pub struct TensorReader<'a> {
    st: SafeTensors<'a>,
}

impl TensorReader<'_> {
    /// Number of tensors in the file.
    pub fn len(&self) -> usize {
        self.st.len()
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.st.is_empty()
    }

    /// Whether the file holds a tensor of this name.
    pub fn has(&self, name: &str) -> bool {
        self.st.tensor(name).is_ok()
    }

    /// The shape of tensor `name`, without reading its values.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>, ModelError> {
        self.st
            .tensor(name)
            .map(|t| t.shape().to_vec())
            .map_err(|_| ModelError::MissingTensor(name.into()))
    }

    /// Shape and bytes of tensor `name`, which must have dtype `dt`.
    fn raw(&self, name: &str, dt: Dtype) -> Result<(Vec<usize>, &[u8]), ModelError> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| ModelError::MissingTensor(name.into()))?;
        if t.dtype() != dt {
            return Err(ModelError::Dtype {
                name: name.into(),
                expected: format!("{dt:?}"),
                got: format!("{:?}", t.dtype()),
            });
        }
        Ok((t.shape().to_vec(), t.data()))
    }

    /// Shape and values of the f32 tensor `name`; every value must be finite (no model holds
    /// a NaN or an infinity: one would turn every score into NaN).
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
        let (shape, b) = self.raw(name, Dtype::F32)?;
        let v: Vec<f32> = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        finite(name, v.iter().all(|x| x.is_finite()))?;
        Ok((shape, v))
    }

    /// Shape and values of the i8 tensor `name`.
    pub fn i8(&self, name: &str) -> Result<(Vec<usize>, Vec<i8>), ModelError> {
        let (shape, b) = self.raw(name, Dtype::I8)?;
        Ok((shape, b.iter().map(|&v| v as i8).collect()))
    }

    /// Shape and values of the f64 tensor `name`; every value must be finite.
    pub fn f64(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>), ModelError> {
        let (shape, b) = self.raw(name, Dtype::F64)?;
        let v: Vec<f64> = b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        finite(name, v.iter().all(|x| x.is_finite()))?;
        Ok((shape, v))
    }

    /// The f32 vector `name` of length `len`.
    pub fn vector(&self, name: &str, len: usize) -> Result<Array1<f32>, ModelError> {
        let (shape, v) = self.f32(name)?;
        if shape != [len] {
            return Err(ModelError::shape(name, format!("[{len}]"), &shape));
        }
        Ok(Array1::from(v))
    }

    /// The f64 vector `name` of length `len`.
    pub fn vector64(&self, name: &str, len: usize) -> Result<Array1<f64>, ModelError> {
        let (shape, v) = self.f64(name)?;
        if shape != [len] {
            return Err(ModelError::shape(name, format!("[{len}]"), &shape));
        }
        Ok(Array1::from(v))
    }

    /// The f64 scalar `name` (a tensor of shape `[1]`).
    pub fn scalar64(&self, name: &str) -> Result<f64, ModelError> {
        Ok(self.vector64(name, 1)?[0])
    }

    /// The f32 matrix `name`, whose shape `accept` must take; `expected` says in words what it
    /// takes (for the error).
    pub fn matrix(
        &self,
        name: &str,
        accept: impl Fn(usize, usize) -> bool,
        expected: impl FnOnce() -> String,
    ) -> Result<Array2<f32>, ModelError> {
        let (shape, v) = self.f32(name)?;
        match shape[..] {
            [r, c] if accept(r, c) => Array2::from_shape_vec((r, c), v)
                .map_err(|e| ModelError::invalid(format!("{name}: {e}"))),
            _ => Err(ModelError::shape(name, expected(), &shape)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Extra {
        note: String,
    }

    fn sample() -> Vec<u8> {
        let mut w = TensorWriter::new();
        w.f32("b", &[2], [1.0, 2.0]);
        w.f64("a", &[1], [0.5]);
        encode(
            "toy",
            &7u32,
            &["x".into(), "y".into()],
            InputSize::from((2, 3)),
            &Extra { note: "n".into() },
            &w,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_checks() {
        let bytes = sample();
        assert_eq!(sample(), bytes, "encoding is reproducible");
        assert_eq!(peek_kind(&bytes).as_deref(), Some("toy"));
        let o = open(&bytes, "toy").unwrap();
        let e: Envelope<u32, Extra> = o.envelope().unwrap();
        assert_eq!((e.config, e.extra.note.as_str()), (7, "n"));
        assert_eq!(e.input, InputSize::from((2, 3)));
        let t = o.tensors();
        assert_eq!(t.vector("b", 2).unwrap().to_vec(), vec![1.0, 2.0]);
        assert_eq!(t.scalar64("a").unwrap(), 0.5);
        assert_eq!(
            t.vector("b", 3).unwrap_err().to_string(),
            "tensor `b` has shape [2], expected [3]"
        );
        assert!(matches!(t.f32("a"), Err(ModelError::Dtype { .. })));
        assert_eq!(
            t.f32("c").unwrap_err(),
            ModelError::MissingTensor("c".into())
        );
        assert!(matches!(
            open(&bytes, "cnn"),
            Err(ModelError::WrongKind { .. })
        ));
        assert!(matches!(
            open(&bytes[..bytes.len() / 2], "toy"),
            Err(ModelError::NotAModel(_))
        ));
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(open(&bad, "toy").err(), Some(ModelError::Checksum));
    }

    /// `bytes` with the first `from` of its header replaced by `to` (same length).
    fn patch(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .expect("pattern present");
        let mut out = bytes.to_vec();
        out[at..at + to.len()].copy_from_slice(to);
        out
    }

    /// Defect class: the checksum covered the tensors only, so a flipped character of the
    /// metadata (a normalisation constant, a class name, a zero point) loaded silently.
    #[test]
    fn the_checksum_covers_the_metadata() {
        let bytes = sample();
        for (from, to) in [
            (
                &b"\\\"note\\\":\\\"n\\\""[..],
                &b"\\\"note\\\":\\\"m\\\""[..],
            ),
            (&b"\\\"x\\\""[..], &b"\\\"z\\\""[..]),
            (&b"\\\"rows\\\":2"[..], &b"\\\"rows\\\":3"[..]),
        ] {
            let bad = patch(&bytes, from, to);
            assert_eq!(open(&bad, "toy").err(), Some(ModelError::Checksum));
        }
        // Edited on purpose and sealed again: it opens, with the new content.
        let mut meta = metadata(&bytes).unwrap();
        meta["extra_note"] = serde_json::json!(1);
        meta["note"] = serde_json::json!("edited");
        let edited = with_metadata(&bytes, &meta).unwrap();
        let e: Envelope<u32, Extra> = open(&edited, "toy").unwrap().envelope().unwrap();
        assert_eq!(e.extra.note, "edited");
    }

    /// Files of format version 1 (checksum over the tensors' bytes only) still open.
    #[test]
    fn version_1_files_still_open() {
        let mut w = TensorWriter::new();
        w.f32("b", &[2], [1.0, 2.0]);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&w.tensors["b"].2);
        let text = format!(
            "{{\"format\":\"hogsvm-model\",\"format_version\":1,\"kind\":\"toy\",\
             \"hogsvm_version\":\"0.1.0\",\"config\":7,\"class_names\":[\"x\",\"y\"],\
             \"input\":{{\"rows\":2,\"cols\":3}},\"note\":\"n\",\"crc32\":\"{:08x}\"}}",
            crc.finalize()
        );
        let v1 = write_file(&w, text).unwrap();
        let e: Envelope<u32, Extra> = open(&v1, "toy").unwrap().envelope().unwrap();
        assert_eq!((e.format_version, e.config), (1, 7));
        // Its checksum does not cover the metadata (the reason for version 2).
        let edited = patch(&v1, b"\\\"note\\\":\\\"n", b"\\\"note\\\":\\\"m");
        assert!(open(&edited, "toy").is_ok());
        let mut bad = v1.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(open(&bad, "toy").err(), Some(ModelError::Checksum));
    }

    /// Defect class: non-finite values loaded (a NaN SVM weight gave NaN scores, exit 0).
    #[test]
    fn non_finite_tensors_are_refused() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut w = TensorWriter::new();
            w.f32("w", &[2], [1.0, bad as f32]);
            w.f64("v", &[1], [bad]);
            let bytes = encode(
                "toy",
                &7u32,
                &[],
                InputSize::from((1, 1)),
                &Extra { note: "n".into() },
                &w,
            )
            .unwrap();
            let o = open(&bytes, "toy").unwrap();
            let e = o.tensors().f32("w").unwrap_err().to_string();
            assert!(e.contains("tensor `w` holds NaN or infinite values"), "{e}");
            assert!(o.tensors().scalar64("v").is_err());
        }
    }
}
