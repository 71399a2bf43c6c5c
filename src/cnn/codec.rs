//! The CNN model file: the [container](crate::model::container) with the [`CnnConfig`] as its
//! `config`, the input normalisation and best epoch as its own fields ([`CnnFields`]), and every
//! parameter and batch-norm running statistic as an f32 tensor. Reading builds the network the
//! configuration describes and checks every tensor's name, shape and values against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{aug, net, CnnConfig, CnnInfo, CnnModel};
use crate::error::Result;
use crate::model::container::{self, Envelope, InputSize, ModelError, TensorWriter};

/// The kind name in the file.
pub const KIND: &str = "cnn";

/// The CNN envelope's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnFields {
    /// Input normalisation mean (pixels scaled to [0, 1]).
    pub mean: f32,
    /// Input normalisation standard deviation.
    pub std: f32,
    /// Epoch whose weights were saved.
    pub best_epoch: usize,
    /// What pruning did, for a pruned model (absent otherwise, and in files written before
    /// pruning existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruning: Option<super::Pruning>,
}

/// The metadata of a CNN model file.
pub type CnnMeta = Envelope<CnnConfig, CnnFields>;

impl CnnInfo {
    /// The envelope's own fields that every CNN file has.
    pub(crate) fn fields(&self) -> CnnFields {
        CnnFields {
            mean: self.mean,
            std: self.std,
            best_epoch: self.best_epoch,
            pruning: self.pruning.clone(),
        }
    }

    /// The model file of kind `kind`: this info in the envelope with `fields` (which hold
    /// [`CnnInfo::fields`]), and `tensors`.
    pub(crate) fn encode<X: Serialize>(
        &self,
        kind: &str,
        fields: &X,
        tensors: &TensorWriter,
    ) -> Result<Vec<u8>> {
        Ok(container::encode(
            kind,
            &self.config,
            &self.class_names,
            self.input(),
            fields,
            tensors,
        )?)
    }

    /// The info of a CNN file's envelope, checked: a valid configuration, two classes or more,
    /// a finite normalisation.
    pub(crate) fn decode(
        config: CnnConfig,
        class_names: Vec<String>,
        input: InputSize,
        fields: CnnFields,
    ) -> std::result::Result<CnnInfo, ModelError> {
        config
            .validate()
            .map_err(|e| ModelError::invalid(format!("model config: {e}")))?;
        let k = class_names.len();
        if k < 2 {
            return Err(ModelError::invalid(format!(
                "model has {k} classes; needs at least 2"
            )));
        }
        let CnnFields {
            mean,
            std,
            best_epoch,
            pruning,
        } = fields;
        if !(std.is_finite() && std > 0.0 && mean.is_finite()) {
            return Err(ModelError::invalid(
                "model normalisation (mean, std) is invalid",
            ));
        }
        let InputSize {
            rows,
            cols,
            channels,
        } = input;
        if channels != 1 {
            return Err(ModelError::invalid(format!(
                "a CNN input of {channels} values per pixel: this hogsvm's CNN reads gray images"
            )));
        }
        Ok(CnnInfo {
            config,
            class_names,
            rows,
            cols,
            mean,
            std,
            best_epoch,
            pruning,
        })
    }
}

/// Serialise to the bytes of the model file.
pub fn to_bytes(m: &CnnModel) -> Result<Vec<u8>> {
    let mut t = TensorWriter::new();
    for (name, shape, values) in m.net.export()? {
        t.f32(&name, &shape, values);
    }
    m.info.encode(KIND, &m.info.fields(), &t)
}

/// Parse and verify the bytes of a CNN model file.
pub fn from_bytes(bytes: &[u8]) -> std::result::Result<CnnModel, ModelError> {
    let opened = container::open(bytes, KIND)?;
    let meta: CnnMeta = opened.envelope()?;
    let t = opened.tensors();
    let info = CnnInfo::decode(meta.config, meta.class_names, meta.input, meta.extra)?;
    let (rows, cols, k) = (info.rows, info.cols, info.class_names.len());
    // Every tensor the configuration declares, checked against the file's before anything is
    // allocated for it: a 38 KB file declaring a 16777216-unit hidden layer is a shape error,
    // not a 52 GB allocation.
    let config_err = |e: crate::Error| ModelError::invalid(format!("model config: {e}"));
    let expected: BTreeMap<String, Vec<usize>> = net::param_shapes(&info.config, rows, cols, k)
        .map_err(config_err)?
        .into_iter()
        .map(|(n, shape, _)| (n, shape))
        .chain(
            net::buffer_shapes(&info.config)
                .into_iter()
                .map(|(n, c)| (n, vec![c])),
        )
        .collect();
    for (n, shape) in &expected {
        let got = t.shape(n)?;
        if &got != shape {
            return Err(ModelError::shape(n, format!("{shape:?}"), &got));
        }
    }
    if t.len() != expected.len() {
        return Err(ModelError::invalid(format!(
            "model has {} tensors, its configuration needs {}",
            t.len(),
            expected.len()
        )));
    }
    let mut values = BTreeMap::new();
    for n in expected.keys() {
        values.insert(n.clone(), t.f32(n)?.1);
    }
    let mut net =
        net::Net::init(&info.config, rows, cols, k, &mut aug::rng_for(&[0])).map_err(config_err)?;
    net.import(&values)
        .map_err(|e| ModelError::invalid(e.to_string()))?;
    Ok(CnnModel { info, net })
}

impl CnnModel {
    /// Parse and verify model-file bytes whose metadata says `kind: cnn`. Every tensor's shape is
    /// checked against the configuration.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<CnnModel, ModelError> {
        from_bytes(bytes)
    }

    /// Load and verify a CNN model file.
    pub fn load(path: &std::path::Path) -> Result<CnnModel> {
        let bytes = crate::io::read_model_bytes(path)?;
        from_bytes(&bytes).map_err(|e| crate::Error::model_file(path, e))
    }
}
