//! The classical model as an ONNX graph: one loop over the stage list, in which each stage writes
//! its own nodes with standard operators (opset 13+; [`crate::stage::Learned::to_onnx`], beside
//! the stage's code), then the SVM as `Gemm`.
//!
//! HOG has no ONNX operator, so the graph starts after it: its input `hog` is the feature
//! vector of one image per row (float32, `(batch, D)`), what `hogsvm extract --model` writes and
//! `hogsvm.hog` returns with the model's settings; the metadata (`hogsvm.hog`) carries those
//! settings and the image size. The resize and HOG stages therefore write no node. Outputs:
//! `label` (int64, the index into the class names, ties to the first index as in hogsvm) and
//! `scores` (float, one per class; one column for two classes, positive for the second), the
//! names scikit-learn's converters give a linear SVM.
//!
//! Every stage mirrors the arithmetic of its Rust code in float32 (see each `to_onnx`); where hogsvm
//! sums in f64 (the normaliser's norm, the chi-squared map), the graph's float32 differs in the
//! last bits, far inside the 1e-4 the tests allow.

use super::ClassicalModel;
use crate::error::Result;
use crate::onnx::{attr_int, unsupported, Dim, Elem, ExportOptions, Graph};
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
            // `None`: a stage before the graph's input (resize, HOG), recorded in the metadata.
            if let Some(y) = stage.to_onnx(&mut g, &x)? {
                x = y;
                shape = stage.output_shape(shape)?;
            }
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
            "image_channels": self.channels,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load, LoadOptions};
    use crate::featmap::FeatureMap;
    use crate::pipeline::{ClassicalConfig, FittedStage};

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
