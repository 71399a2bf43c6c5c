//! The CNN as an ONNX graph, from raw pixels to probabilities, in the order the evaluation
//! forward pass (`net::Net::forward` without training) computes it:
//!
//! * input `pixels`, float32 `(batch, 1, H, W)`, values 0-255 as hogsvm reads the images; the
//!   normalisation hogsvm applies before the network, `x / (255 std) - mean / std`, as `Mul` and
//!   `Sub` with hogsvm's own two f32 constants, so the network sees the same values bit for bit
//!   (a `Sub`/`Div` by `255 mean` and `255 std` would round differently);
//! * per block `i`: `Conv` (3x3, padding 1, no bias) → `BatchNormalization` (the running
//!   statistics, epsilon 1e-5) → `MaxPool` (2x2) → `Relu` (hogsvm pools before the ReLU,
//!   which commutes with it); with squeeze-and-excitation, `Relu` → SE → `MaxPool`, SE being
//!   `GlobalAveragePool` → 1x1 `Conv` → `Relu` → 1x1 `Conv` → `Sigmoid` → `Mul`;
//! * `Flatten` → per hidden layer `Gemm` + `Relu` → `Gemm`: output `logits`; `Softmax`:
//!   output `probabilities`. Dropout is the identity in evaluation and writes no node.

use super::net::BN_EPS;
use super::CnnModel;
use crate::error::Result;
use crate::onnx::{attr_float, attr_int, attr_ints, unsupported, Dim, Elem, ExportOptions, Graph};

impl CnnModel {
    /// The network as an ONNX file (see the module docs).
    pub fn to_onnx(&self, opts: &ExportOptions) -> Result<Vec<u8>> {
        let mut g = Graph::new("hogsvm_cnn", opts)?;
        let tensors = self.net.tensors()?;
        let get = |name: &str| {
            tensors
                .get(name)
                .ok_or_else(|| unsupported(name, "the network has no such tensor"))
        };
        let (rows, cols) = (self.info.rows, self.info.cols);
        let mut h = pixels_input(&mut g, rows, cols, self.info.mean, self.info.std);
        let pool = || {
            vec![
                attr_ints("kernel_shape", &[2, 2]),
                attr_ints("strides", &[2, 2]),
            ]
        };
        for i in 0..self.net.channels.len() {
            g.scope(&format!("block{i}"));
            let (ws, wv) = get(&format!("conv{i}.weight"))?;
            if ws.len() != 4 || ws[2..] != [3, 3] {
                return Err(unsupported(
                    &format!("conv{i}"),
                    format!("weights of shape {ws:?}"),
                ));
            }
            let w = g.constant_f32(&format!("conv{i}.weight"), ws, wv);
            h = g.node(
                "Conv",
                &[&h, &w],
                vec![
                    attr_ints("kernel_shape", &[3, 3]),
                    attr_ints("pads", &[1, 1, 1, 1]),
                    attr_ints("strides", &[1, 1]),
                ],
            );
            let mut bn = Vec::new();
            for t in ["weight", "bias", "running_mean", "running_var"] {
                let name = format!("bn{i}.{t}");
                let (s, v) = get(&name)?;
                bn.push(g.constant_f32(&name, s, v));
            }
            h = g.node(
                "BatchNormalization",
                &[&h, &bn[0], &bn[1], &bn[2], &bn[3]],
                vec![attr_float("epsilon", BN_EPS as f32)],
            );
            if self.net.se_reduction.is_none() {
                h = g.node("MaxPool", &[&h], pool());
                h = g.node("Relu", &[&h], Vec::new());
            } else {
                h = g.node("Relu", &[&h], Vec::new());
                let s = g.node("GlobalAveragePool", &[&h], Vec::new());
                let mut s = s;
                for (k, fc) in ["fc1", "fc2"].iter().enumerate() {
                    let (ws, wv) = get(&format!("se{i}.{fc}.weight"))?;
                    let (_, bv) = get(&format!("se{i}.{fc}.bias"))?;
                    // A dense layer on the pooled (C, 1, 1) map is a 1x1 convolution.
                    let w =
                        g.constant_f32(&format!("se{i}.{fc}.weight"), &[ws[0], ws[1], 1, 1], wv);
                    let b = g.constant_f32(&format!("se{i}.{fc}.bias"), &[bv.len()], bv);
                    s = g.node(
                        "Conv",
                        &[&s, &w, &b],
                        vec![attr_ints("kernel_shape", &[1, 1])],
                    );
                    s = g.node(if k == 0 { "Relu" } else { "Sigmoid" }, &[&s], Vec::new());
                }
                h = g.node("Mul", &[&h, &s], Vec::new());
                h = g.node("MaxPool", &[&h], pool());
            }
        }
        g.scope("dense");
        h = g.node("Flatten", &[&h], vec![attr_int("axis", 1)]);
        let layers: Vec<String> = (0..self.net.hidden.len())
            .map(|i| format!("fc{i}"))
            .chain(std::iter::once("out".to_string()))
            .collect();
        for (j, layer) in layers.iter().enumerate() {
            let (ws, wv) = get(&format!("{layer}.weight"))?;
            let (bs, bv) = get(&format!("{layer}.bias"))?;
            let w = g.constant_f32(&format!("{layer}.weight"), ws, wv);
            let b = g.constant_f32(&format!("{layer}.bias"), bs, bv);
            h = g.node("Gemm", &[&h, &w, &b], vec![attr_int("transB", 1)]);
            if j + 1 < layers.len() {
                h = g.node("Relu", &[&h], Vec::new());
            }
        }
        outputs(&mut g, &h, self.info.class_names.len());
        let meta = input_metadata(
            super::codec::KIND,
            &self.info.class_names,
            (rows, cols),
            self.info.norm(),
            None,
        );
        Ok(g.finish(
            "hogsvm CNN: input `pixels` (float32, batch x 1 x H x W, 0-255), outputs `logits` \
             and `probabilities`",
            meta,
        ))
    }
}

/// The graph input `pixels` (batch x 1 x rows x cols, 0-255) and hogsvm's normalisation of it,
/// `x / (255 std) - mean / std` with hogsvm's own two f32 constants; returns the normalised
/// value (shared by the float and the int8 graphs).
pub(super) fn pixels_input(g: &mut Graph, rows: usize, cols: usize, mean: f32, std: f32) -> String {
    let x = g.input(
        "pixels",
        Elem::Float,
        &[
            Dim::Batch,
            Dim::Fixed(1),
            Dim::Fixed(rows),
            Dim::Fixed(cols),
        ],
        "grey-level pixels, 0-255, one image per batch entry",
    );
    g.scope("input");
    let inv = g.scalar("scale", 1.0 / (255.0 * std));
    let off = g.scalar("offset", mean / std);
    let h = g.node("Mul", &[&x, &inv], Vec::new());
    g.node("Sub", &[&h, &off], Vec::new())
}

/// The outputs `logits` (the value `logits`) and `probabilities` (its softmax), `k` classes.
pub(super) fn outputs(g: &mut Graph, logits: &str, k: usize) {
    let p = g.node("Softmax", &[logits], vec![attr_int("axis", 1)]);
    g.scope("");
    g.output(
        "logits",
        logits,
        Elem::Float,
        &[Dim::Batch, Dim::Fixed(k)],
        "class logits",
    );
    g.output(
        "probabilities",
        &p,
        Elem::Float,
        &[Dim::Batch, Dim::Fixed(k)],
        "softmax of the logits, in the order of hogsvm.class_names",
    );
}

/// The metadata of a CNN graph: kind, class names and `hogsvm.input` (image size, pixel range,
/// normalisation, and `extra` when given).
pub(super) fn input_metadata(
    kind: &str,
    class_names: &[String],
    (rows, cols): (usize, usize),
    (mean, std): (f32, f32),
    extra: Option<(&str, String)>,
) -> Vec<(String, String)> {
    let mut meta = crate::onnx::metadata(kind, class_names);
    let mut input = serde_json::json!({
        "image_rows": rows,
        "image_cols": cols,
        "pixels": "0-255",
        "mean": mean,
        "std": std,
    });
    if let Some((k, v)) = extra {
        input[k] = serde_json::Value::String(v);
    }
    meta.push(("hogsvm.input".into(), input.to_string()));
    meta
}
