//! The int8 CNN as an ONNX graph in QDQ form (the form onnxruntime's own quantiser writes and
//! fuses into integer kernels): input `pixels` as the float CNN's graph takes them, the same
//! `Mul`/`Sub` normalisation, then per layer `QuantizeLinear` → `DequantizeLinear` (the layer's
//! input code) → `Conv` or `Gemm` whose weights are `DequantizeLinear` of the int8 codes with
//! their per-output-channel scales (axis 0) and whose bias is the folded f32 bias → `Relu` (→
//! `MaxPool` for a convolution). Outputs `logits` and `probabilities`.
//!
//! Static models only: a dynamic model's codes are taken per image at run time, which ONNX's
//! `DynamicQuantizeLinear` (one code per tensor, that is per batch) cannot express.

use super::layer::Geom;
use super::{CnnInt8Model, QuantMode};
use crate::cnn::onnx::{input_metadata, outputs, pixels_input};
use crate::error::Result;
use crate::onnx::{attr_int, attr_ints, unsupported, ExportOptions, Graph};

/// The graph (see the module docs).
pub fn to_onnx(m: &CnnInt8Model, opts: &ExportOptions) -> Result<Vec<u8>> {
    if m.mode == QuantMode::Dynamic {
        return Err(unsupported(
            "int8 dynamic",
            "its activation codes are per image, taken at run time; ONNX's \
             DynamicQuantizeLinear takes one per batch. Export a static int8 model, or the float one",
        ));
    }
    let mut g = Graph::new("hogsvm_cnn_int8", opts)?;
    let mut h = pixels_input(&mut g, m.info.rows, m.info.cols, m.info.mean, m.info.std);
    let mut flattened = false;
    for (l, qp) in m.layers.iter().zip(&m.inputs) {
        let name = &l.layer.name;
        g.scope(name);
        if matches!(l.layer.geom, Geom::Dense { .. }) && !flattened {
            h = g.node("Flatten", &[&h], vec![attr_int("axis", 1)]);
            flattened = true;
        }
        let s = g.scalar(&format!("{name}.input_scale"), qp.scale);
        let z = g.constant_u8(&format!("{name}.input_zero_point"), &[], &[qp.zero_point]);
        let q = g.node("QuantizeLinear", &[&h, &s, &z], Vec::new());
        let xdq = g.node("DequantizeLinear", &[&q, &s, &z], Vec::new());
        let (shape, codes) = l.layer.file_weight();
        let wq = g.constant_i8(&format!("{name}.weight"), &shape, &codes);
        let ws = g.constant_f32(&format!("{name}.weight_scale"), &[l.layer.n], &l.w_scale);
        let wdq = g.node("DequantizeLinear", &[&wq, &ws], vec![attr_int("axis", 0)]);
        let b = g.constant_f32(&format!("{name}.bias"), &[l.layer.n], &l.layer.bias);
        h = match l.layer.geom {
            Geom::Conv { kh, kw, .. } => {
                if (kh, kw) != (3, 3) {
                    return Err(unsupported(name, format!("a {kh}x{kw} kernel")));
                }
                g.node(
                    "Conv",
                    &[&xdq, &wdq, &b],
                    vec![
                        attr_ints("kernel_shape", &[3, 3]),
                        attr_ints("pads", &[1, 1, 1, 1]),
                        attr_ints("strides", &[1, 1]),
                    ],
                )
            }
            Geom::Dense { .. } => g.node("Gemm", &[&xdq, &wdq, &b], vec![attr_int("transB", 1)]),
        };
        if l.layer.relu {
            h = g.node("Relu", &[&h], Vec::new());
        }
        if matches!(l.layer.geom, Geom::Conv { .. }) {
            h = g.node(
                "MaxPool",
                &[&h],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                ],
            );
        }
    }
    outputs(&mut g, &h, m.info.class_names.len());
    let meta = input_metadata(
        super::KIND,
        &m.info.class_names,
        (m.info.rows, m.info.cols),
        m.info.norm(),
        Some(("quantisation", m.mode.to_string())),
    );
    Ok(g.finish(
        "hogsvm int8 CNN (QDQ): input `pixels` (float32, batch x 1 x H x W, 0-255), outputs \
         `logits` and `probabilities`",
        meta,
    ))
}
