//! The classical model file: the [container](crate::model::container) with the configuration as
//! its `config`, `svm_iterations` and `nystroem_folded` as its own fields, and as tensors what
//! each stage writes (one loop over the stages) and the SVM's `svm.weights` and `svm.intercepts`.
//! Reading walks the configuration's [`plan`](super::plan) and checks every tensor's shape
//! against the stage before it.

use serde::{Deserialize, Serialize};

use super::{plan, ClassicalConfig, ClassicalModel};
use crate::classifier::Classifier;
use crate::model::container::{self, Envelope, InputSize, ModelError, TensorWriter};
use crate::stage::Shape;
use crate::svm::LinearSvm;

/// The kind name in the file.
pub const KIND: &str = "classical";

/// The classical envelope's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassicalFields {
    /// Passes each SVM problem took.
    pub svm_iterations: Vec<usize>,
    /// The Nystroem projection is folded into the SVM weights (no `nystroem.projection`
    /// tensor). Absent in older files: false.
    #[serde(default)]
    pub nystroem_folded: bool,
}

/// The metadata of a classical model file.
pub type ModelMeta = Envelope<ClassicalConfig, ClassicalFields>;

/// Serialise a model to the bytes of its file.
pub fn to_bytes(m: &ClassicalModel) -> Result<Vec<u8>, ModelError> {
    let mut t = TensorWriter::new();
    for s in &m.stages {
        s.stage().write(&mut t);
    }
    t.matrix("svm.weights", &m.svm.weights);
    t.vector("svm.intercepts", &m.svm.intercepts);
    let fields = ClassicalFields {
        svm_iterations: m.svm.iterations.clone(),
        nystroem_folded: m.stages.last().is_some_and(|s| s.stage().folded()),
    };
    container::encode(KIND, &m.config, &m.class_names, m.input(), &fields, &t)
}

/// Parse and verify the bytes of a classical model file.
pub fn from_bytes(bytes: &[u8]) -> Result<ClassicalModel, ModelError> {
    let opened = container::open(bytes, KIND)?;
    let meta: ModelMeta = opened.envelope()?;
    let t = opened.tensors();
    let config = meta.config;
    let config_err = |e: crate::Error| ModelError::invalid(format!("model config: {e}"));
    config.validate().map_err(config_err)?;
    let InputSize {
        rows,
        cols,
        channels,
    } = meta.input;
    if !matches!(channels, 1 | 3) {
        return Err(ModelError::invalid(format!(
            "model input has {channels} values per pixel; 1 (gray) or 3 (RGB) expected"
        )));
    }
    let mut shape = Shape::Image { rows, cols };
    let mut stages = Vec::new();
    for planned in plan(&config) {
        let s = planned.read(t, shape, meta.extra.nystroem_folded)?;
        shape = s.stage().output_shape(shape).map_err(config_err)?;
        stages.push(s);
    }
    let d = shape.features("svm")?;
    let class_names = meta.class_names;
    if class_names.len() < 2 {
        return Err(ModelError::invalid(format!(
            "model has {} classes; at least 2 needed",
            class_names.len()
        )));
    }
    let models = if class_names.len() == 2 {
        1
    } else {
        class_names.len()
    };
    let weights = t.matrix(
        "svm.weights",
        |r, c| (r, c) == (models, d),
        || format!("[{models}, {d}]"),
    )?;
    let intercepts = t.vector("svm.intercepts", models)?;
    Ok(ClassicalModel {
        config,
        rows,
        cols,
        channels,
        stages,
        svm: LinearSvm {
            weights,
            intercepts,
            n_classes: class_names.len(),
            iterations: meta.extra.svm_iterations,
        },
        class_names,
    })
}

impl ClassicalModel {
    /// Parse and verify the bytes of a classical model file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        from_bytes(bytes)
    }

    /// Load and verify a classical model file.
    pub fn load(path: &std::path::Path) -> crate::Result<Self> {
        let bytes = crate::io::read_model_bytes(path)?;
        from_bytes(&bytes).map_err(|e| crate::Error::model_file(path, e))
    }
}
