//! The classical model as an ONNX graph: one loop over the stage list, one `match` arm per
//! stage, each written with standard operators (opset 13+), then the SVM as `Gemm`.
//!
//! HOG has no ONNX operator, so the graph starts after it: its input `hog` is the feature
//! vector of one image per row (float32, `(batch, D)`), what `hogsvm extract --model` writes and
//! `hogsvm.hog` returns with the model's settings; the metadata (`hogsvm.hog`) carries those
//! settings and the image size. The resize and HOG stages therefore write no node. Outputs:
//! `label` (int64, the index into the class names, ties to the first index as in hogsvm) and
//! `scores` (float, one per class; one column for two classes, positive for the second), the
//! names scikit-learn's converters give a linear SVM.
//!
//! Every stage mirrors the arithmetic of its Rust code in float32 (see each arm); where hogsvm
//! sums in f64 (the normaliser's norm, the chi-squared map), the graph's float32 differs in the
//! last bits, far inside the 1e-4 the tests allow.

use super::stages::FittedStage;
use super::ClassicalModel;
use crate::error::Result;
use crate::featmap::{FeatureMap, Nystroem, Rff};
use crate::onnx::{attr_int, unsupported, Dim, Elem, ExportOptions, Graph};
use crate::pipeline::normalize::Norm;
use crate::reduce::{Pca, StandardScaler};
use crate::stage::Shape;

impl ClassicalModel {
    /// The model as an ONNX file (see the module docs for its inputs and outputs).
    pub fn to_onnx(&self, opts: &ExportOptions) -> Result<Vec<u8>> {
        let mut g = Graph::new("hogsvm_classical", opts)?;
        let d = self.config.hog_len(self.rows, self.cols)?;
        let mut x = g.input(
            "hog",
            Elem::Float,
            &[Dim::Batch, Dim::Fixed(d)],
            "HOG features of one image per row, with the settings in the metadata (hogsvm.hog)",
        );
        let mut shape = Shape::Features(d);
        for fitted in &self.stages {
            let stage = fitted.stage();
            g.scope(stage.name());
            x = match fitted {
                // Before the graph's input: recorded in the metadata.
                FittedStage::Resize(_) | FittedStage::Hog(_) => continue,
                FittedStage::FeatureMap(m) => feature_map(&mut g, m, &x)?,
                FittedStage::Normalize(n) => normalize(&mut g, *n, &x),
                FittedStage::Scaler(s) => scaler(&mut g, s, &x),
                FittedStage::Pca(p) => pca(&mut g, p, &x),
                FittedStage::Rff(r) => rff(&mut g, r, &x),
                FittedStage::Nystroem(n) => nystroem(&mut g, n, &x),
            };
            shape = stage.output_shape(shape)?;
        }
        g.scope("svm");
        let svm = &self.svm;
        let (models, width) = svm.weights.dim();
        if width != shape.dim() {
            return Err(unsupported(
                "svm",
                format!(
                    "weights of {width} columns after stages of {} values",
                    shape.dim()
                ),
            ));
        }
        let w = g.constant_f32(
            "weights",
            &[models, width],
            svm.weights
                .as_standard_layout()
                .as_slice()
                .expect("standard layout"),
        );
        let b = g.constant_f32(
            "intercepts",
            &[models],
            svm.intercepts
                .as_standard_layout()
                .as_slice()
                .expect("standard layout"),
        );
        let scores = g.node("Gemm", &[&x, &w, &b], vec![attr_int("transB", 1)]);
        let label = if svm.n_classes == 2 {
            // One column: the second class when the score is positive.
            let zero = g.scalar("zero", 0.0);
            let pos = g.node("Greater", &[&scores, &zero], Vec::new());
            let flat = g.constant_i64("label_shape", &[1], &[-1]);
            let pos = g.node("Reshape", &[&pos, &flat], Vec::new());
            g.node("Cast", &[&pos], vec![attr_int("to", 7)])
        } else {
            g.node(
                "ArgMax",
                &[&scores],
                vec![
                    attr_int("axis", 1),
                    attr_int("keepdims", 0),
                    attr_int("select_last_index", 0),
                ],
            )
        };
        g.scope("");
        g.output(
            "label",
            &label,
            Elem::Int64,
            &[Dim::Batch],
            "index of the predicted class in hogsvm.class_names",
        );
        g.output(
            "scores",
            &scores,
            Elem::Float,
            &[Dim::Batch, Dim::Fixed(models)],
            "SVM decision values, one per class (one column, for the second class, with two)",
        );
        let mut meta = crate::onnx::metadata("classical", &self.class_names);
        let hog = serde_json::json!({
            "params": std::iter::once(&self.config.hog)
                .chain(&self.config.hog_extra)
                .collect::<Vec<_>>(),
            "image_rows": self.rows,
            "image_cols": self.cols,
            "resize": self.config.resize,
            "feature_len": d,
        });
        meta.push(("hogsvm.hog".into(), hog.to_string()));
        Ok(g.finish(
            "hogsvm classical pipeline after HOG: input `hog` (float32, batch x D), outputs \
             `label` (int64) and `scores` (float32)",
            meta,
        ))
    }
}

/// Hellinger: `Sqrt`. Additive chi-squared (as `FeatureMap::transform`): for `v > 0`,
/// `sqrt(v L)`, then per step `s` the pair `sqrt(v) c_s cos(s L ln v)`, `sqrt(v) c_s sin(...)`
/// with `c_s = sqrt(2 L / cosh(pi s L))`, laid out as `[x0 | cos1 | sin1 | cos2 | sin2]`; 0
/// where `v = 0` (`Where`).
fn feature_map(g: &mut Graph, m: &FeatureMap, x: &str) -> Result<String> {
    Ok(match *m {
        FeatureMap::None => x.to_string(),
        FeatureMap::Hellinger => g.node("Sqrt", &[x], Vec::new()),
        FeatureMap::AdditiveChi2 { steps, interval } => {
            if !(1..=3).contains(&steps) {
                return Err(unsupported(
                    "feature_map",
                    format!("chi2 with {steps} steps"),
                ));
            }
            let zero = g.scalar("zero", 0.0);
            let positive = g.node("Greater", &[x, &zero], Vec::new());
            let root = g.node("Sqrt", &[x], Vec::new());
            let c0 = g.scalar("sqrt_interval", interval.sqrt() as f32);
            let first = g.node("Mul", &[&root, &c0], Vec::new());
            let mut parts = vec![first];
            if steps > 1 {
                let log = g.node("Log", &[x], Vec::new());
                for s in 1..steps {
                    let sf = s as f64;
                    let c = (2.0 * interval / (std::f64::consts::PI * sf * interval).cosh()).sqrt();
                    let c = g.scalar(&format!("factor{s}"), c as f32);
                    let k = g.scalar(&format!("frequency{s}"), (sf * interval) as f32);
                    let a = g.node("Mul", &[&log, &k], Vec::new());
                    let amp = g.node("Mul", &[&root, &c], Vec::new());
                    for op in ["Cos", "Sin"] {
                        let t = g.node(op, &[&a], Vec::new());
                        parts.push(g.node("Mul", &[&amp, &t], Vec::new()));
                    }
                }
            }
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            let cat = if refs.len() == 1 {
                parts[0].clone()
            } else {
                g.node("Concat", &refs, vec![attr_int("axis", 1)])
            };
            let mask = if refs.len() == 1 {
                positive
            } else {
                let masks = vec![positive.as_str(); refs.len()];
                g.node("Concat", &masks, vec![attr_int("axis", 1)])
            };
            g.node("Where", &[&mask, &cat, &zero], Vec::new())
        }
    })
}

/// Each row divided by its norm (`ReduceL1`, `ReduceL2`, or `ReduceMax` of `Abs`); a zero row
/// divided by 1 (`Where`), so it stays zero as in hogsvm.
fn normalize(g: &mut Graph, n: Norm, x: &str) -> String {
    let norm = match n {
        Norm::L1 => g.reduce("ReduceL1", x, &[1]),
        Norm::L2 => g.reduce("ReduceL2", x, &[1]),
        Norm::Max => {
            let a = g.node("Abs", &[x], Vec::new());
            g.reduce("ReduceMax", &a, &[1])
        }
    };
    let zero = g.scalar("zero", 0.0);
    let one = g.scalar("one", 1.0);
    let nonzero = g.node("Greater", &[&norm, &zero], Vec::new());
    let div = g.node("Where", &[&nonzero, &norm, &one], Vec::new());
    g.node("Div", &[x, &div], Vec::new())
}

/// `(x - mean) / scale`.
fn scaler(g: &mut Graph, s: &StandardScaler, x: &str) -> String {
    let d = s.mean.len();
    let mean = g.constant_f32("mean", &[d], s.mean.as_slice().expect("contiguous"));
    let scale = g.constant_f32("scale", &[d], s.scale.as_slice().expect("contiguous"));
    let c = g.node("Sub", &[x, &mean], Vec::new());
    g.node("Div", &[&c, &scale], Vec::new())
}

/// `(x - mean) components^T`, then divided by `sqrt(max(variance, 1e-12))` when whitening.
fn pca(g: &mut Graph, p: &Pca, x: &str) -> String {
    let (k, d) = p.components.dim();
    let mean = g.constant_f32("mean", &[d], p.mean.as_slice().expect("contiguous"));
    let ct = p.components.t().as_standard_layout().into_owned();
    let ct = g.constant_f32("components_t", &[d, k], ct.as_slice().expect("standard"));
    let c = g.node("Sub", &[x, &mean], Vec::new());
    let z = g.node("MatMul", &[&c, &ct], Vec::new());
    if !p.whiten {
        return z;
    }
    let s: Vec<f32> = p
        .explained_variance
        .iter()
        .map(|v| v.max(1e-12).sqrt() as f32)
        .collect();
    let s = g.constant_f32("whiten_scale", &[k], &s);
    g.node("Div", &[&z, &s], Vec::new())
}

/// `sqrt(2 / D) cos(x W + b)`.
fn rff(g: &mut Graph, r: &Rff, x: &str) -> String {
    let (d, dim) = r.weights.dim();
    let w = g.constant_f32(
        "weights",
        &[d, dim],
        r.weights.as_standard_layout().as_slice().expect("standard"),
    );
    let b = g.constant_f32("offsets", &[dim], r.offsets.as_slice().expect("contiguous"));
    let p = g.node("MatMul", &[x, &w], Vec::new());
    let p = g.node("Add", &[&p, &b], Vec::new());
    let c = g.node("Cos", &[&p], Vec::new());
    let scale = g.scalar("scale", (2.0 / dim as f64).sqrt() as f32);
    g.node("Mul", &[&scale, &c], Vec::new())
}

/// The kernel values `exp(-gamma max(|x|^2 + |l|^2 - 2 x.l, 0))` to every landmark `l`, as
/// `Nystroem::transform` computes them, then the projection (`MatMul`) unless it was folded
/// into the SVM.
fn nystroem(g: &mut Graph, n: &Nystroem, x: &str) -> String {
    let (m, d) = n.landmarks.dim();
    let lt = n.landmarks.t().as_standard_layout().into_owned();
    let lt = g.constant_f32("landmarks_t", &[d, m], lt.as_slice().expect("standard"));
    let lsq: Vec<f32> = n.landmarks.rows().into_iter().map(|r| r.dot(&r)).collect();
    let lsq = g.constant_f32("landmark_norms", &[m], &lsq);
    let xl = g.node("MatMul", &[x, &lt], Vec::new());
    let xsq = g.reduce("ReduceSumSquare", x, &[1]);
    let two = g.scalar("two", 2.0);
    let s = g.node("Add", &[&xsq, &lsq], Vec::new());
    let t = g.node("Mul", &[&two, &xl], Vec::new());
    let d2 = g.node("Sub", &[&s, &t], Vec::new());
    let zero = g.scalar("zero", 0.0);
    let d2 = g.node("Max", &[&d2, &zero], Vec::new());
    let ng = g.scalar("neg_gamma", -(n.gamma as f32));
    let e = g.node("Mul", &[&ng, &d2], Vec::new());
    let k = g.node("Exp", &[&e], Vec::new());
    match &n.projection {
        None => k,
        Some(p) => {
            let p = g.constant_f32(
                "projection",
                &[m, p.ncols()],
                p.as_standard_layout().as_slice().expect("standard"),
            );
            g.node("MatMul", &[&k, &p], Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load, LoadOptions};
    use crate::pipeline::ClassicalConfig;

    /// A model the exporter cannot write exactly is an error naming the stage, not a graph.
    #[test]
    fn a_model_it_cannot_write_exactly_is_an_error_naming_the_stage() {
        let (train, _) = load("fixtures/fashion-mnist".as_ref(), &LoadOptions::default()).unwrap();
        let idx: Vec<usize> = (0..300).collect();
        let c = ClassicalConfig::default().with(&[("pca", "8")]).unwrap();
        let (mut m, _) = c.fit(&train.subset(&idx)).unwrap();
        assert!(m.to_onnx(&ExportOptions::default()).is_ok());
        // SVM weights that do not fit the stages' output.
        m.svm.weights = ndarray::Array2::zeros((m.svm.weights.nrows(), 9));
        let e = m
            .to_onnx(&ExportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot export `svm` to ONNX"), "{e}");
        // A chi-squared map with a step count the map itself refuses.
        m.stages.insert(
            1,
            FittedStage::FeatureMap(FeatureMap::AdditiveChi2 {
                steps: 4,
                interval: 0.4,
            }),
        );
        let e = m
            .to_onnx(&ExportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`feature_map`"), "{e}");
        // Options out of range.
        let e = m
            .to_onnx(&ExportOptions::default().opset(12))
            .unwrap_err()
            .to_string();
        assert!(e.contains("opset"), "{e}");
    }
}
