//! The int8 CNN model file (kind `cnn-int8`): the [container](crate::model::container) with the
//! float model's [`CnnConfig`](crate::cnn::CnnConfig) as its `config`, [`Int8Fields`] as its own
//! fields, and per layer (`conv{i}`, `fc{j}`, `out`) three tensors: `.weight` (i8, the float
//! model's shape and order, batch norm folded in), `.weight_scale` (f32, one per output) and
//! `.bias` (f32). Reading checks every shape against the configuration and every scale.

use serde::{Deserialize, Serialize};

use super::layer::{Geom, Layer, QParams};
use super::{Calibration, CnnInt8Model, Isa, QLayer, QuantMode};
use crate::cnn::codec::CnnFields;
use crate::cnn::{net, CnnConfig, CnnInfo};
use crate::error::Result;
use crate::model::container::{self, Envelope, ModelError, TensorWriter};

/// The kind name in the file.
pub const KIND: &str = "cnn-int8";

/// The int8 envelope's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Int8Fields {
    /// What every CNN file has: normalisation, best epoch, pruning.
    #[serde(flatten)]
    pub base: CnnFields,
    /// Static or dynamic.
    pub mode: QuantMode,
    /// Static: the calibration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// Static: each layer's input code, in layer order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<QParams>,
}

/// Serialise to the bytes of the model file.
pub fn to_bytes(m: &CnnInt8Model) -> Result<Vec<u8>> {
    let mut t = TensorWriter::new();
    for l in &m.layers {
        let (shape, w) = l.layer.file_weight();
        let name = &l.layer.name;
        t.i8(&format!("{name}.weight"), &shape, w);
        t.f32(
            &format!("{name}.weight_scale"),
            &[l.layer.n],
            l.w_scale.iter().copied(),
        );
        t.f32(
            &format!("{name}.bias"),
            &[l.layer.n],
            l.layer.bias.iter().copied(),
        );
    }
    let fields = Int8Fields {
        base: m.info.fields(),
        mode: m.mode,
        calibration: m.calibration.clone(),
        inputs: m.inputs.clone(),
    };
    m.info.encode(KIND, &fields, &t)
}

fn finite_positive(name: &str, v: &[f32]) -> std::result::Result<(), ModelError> {
    if v.iter().all(|x| x.is_finite() && *x > 0.0) {
        Ok(())
    } else {
        Err(ModelError::invalid(format!(
            "tensor `{name}` holds a scale that is not a positive finite number"
        )))
    }
}

/// Parse and verify the bytes of an int8 CNN model file.
pub fn from_bytes(bytes: &[u8]) -> std::result::Result<CnnInt8Model, ModelError> {
    let opened = container::open(bytes, KIND)?;
    let meta: Envelope<CnnConfig, Int8Fields> = opened.envelope()?;
    let t = opened.tensors();
    let f = meta.extra;
    let info = CnnInfo::decode(meta.config, meta.class_names, meta.input, f.base)?;
    let cfg = &info.config;
    if cfg.se_reduction.is_some() {
        return Err(ModelError::invalid(
            "int8 models have no squeeze-and-excitation blocks",
        ));
    }
    let (rows, cols, k) = (info.rows, info.cols, info.class_names.len());
    let shapes: std::collections::BTreeMap<String, Vec<usize>> =
        net::param_shapes(cfg, rows, cols, k)
            .map_err(|e| ModelError::invalid(format!("model config: {e}")))?
            .into_iter()
            .map(|(n, s, _)| (n, s))
            .collect();
    let names: Vec<String> = (0..cfg.channels.len())
        .map(|i| format!("conv{i}"))
        .chain((0..cfg.hidden.len()).map(|j| format!("fc{j}")))
        .chain(["out".to_string()])
        .collect();
    let isa = Isa::detect();
    let mut layers = Vec::new();
    let (mut h, mut w) = (rows, cols);
    let mut c_in = 1;
    let mut from = None;
    for (i, name) in names.iter().enumerate() {
        let wname = format!("{name}.weight");
        let want = &shapes[&wname];
        let (got, wv) = t.i8(&wname)?;
        if &got != want {
            return Err(ModelError::shape(&wname, format!("{want:?}"), &got));
        }
        let n = want[0];
        let sname = format!("{name}.weight_scale");
        let scale = t.vector(&sname, n)?.to_vec();
        finite_positive(&sname, &scale)?;
        let bname = format!("{name}.bias");
        let bias = t.vector(&bname, n)?.to_vec();
        if wv.contains(&i8::MIN) {
            return Err(ModelError::invalid(format!(
                "tensor `{wname}` holds -128; weights are symmetric, in [-127, 127]"
            )));
        }
        let geom = if i < cfg.channels.len() {
            Geom::Conv {
                kh: want[2],
                kw: want[3],
                c_in,
            }
        } else {
            Geom::Dense { from }
        };
        let relu = i + 1 < names.len();
        let l = Layer::from_file(name.clone(), geom, n, &wv, bias, relu);
        (h, w) = l.out_size(h, w);
        c_in = n;
        from = (i + 1 == cfg.channels.len()).then_some((h, w, c_in));
        layers.push(QLayer::new(l, scale, isa));
    }
    if t.len() != 3 * names.len() {
        return Err(ModelError::invalid(format!(
            "model has {} tensors, its configuration needs {}",
            t.len(),
            3 * names.len()
        )));
    }
    match (f.mode, f.inputs.len()) {
        (QuantMode::Static, n) if n != layers.len() => {
            return Err(ModelError::invalid(format!(
                "a static int8 model needs {} input codes, the file has {n}",
                layers.len()
            )))
        }
        (QuantMode::Dynamic, n) if n != 0 => {
            return Err(ModelError::invalid(
                "a dynamic int8 model has no fixed input codes",
            ))
        }
        _ => {}
    }
    let scales: Vec<f32> = f.inputs.iter().map(|p| p.scale).collect();
    finite_positive("inputs", &scales)?;
    Ok(CnnInt8Model {
        info,
        mode: f.mode,
        calibration: f.calibration,
        inputs: f.inputs,
        layers,
    })
}

impl CnnInt8Model {
    /// Parse and verify model-file bytes whose metadata says `kind: cnn-int8`.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<CnnInt8Model, ModelError> {
        from_bytes(bytes)
    }
}
