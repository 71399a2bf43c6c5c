//! ONNX export, checked by running the exported graphs in rten, a pure-Rust ONNX runtime (a
//! dev-dependency): every stage combination and CNN variant the fixture trains gives the labels
//! hogsvm gives on the fixture's test set, and scores / probabilities within 1e-4.
//!
//! rten rather than tract: it loads ONNX directly, covers every operator the exporter writes,
//! and builds from far fewer crates (tract's ONNX front end pulls in its own protobuf stack and
//! a large operator library), which keeps CI's clean build short.

mod common;

use common::{assert_error, assert_ok, fixtures, run, split};
use hogsvm::classifier::Classifier;
use hogsvm::cnn::CnnConfig;
use hogsvm::data::{Dataset, Split};
use hogsvm::featmap::NystroemParams;
use hogsvm::onnx::{Batch, ExportOptions};
use hogsvm::pipeline::{ClassicalConfig, ClassicalModel, FittedStage};
use hogsvm::stage::FeatureStage;
use ndarray::Array2;
use rten::Model;
use rten_tensor::prelude::*;
use rten_tensor::NdTensor;

const TOL: f32 = 1e-4;

/// Run `onnx` on `input` (shape `dims`) and return its two outputs: labels (none for the CNN,
/// which has no label output) and the float output `scores`.
fn run_rten(
    onnx: Vec<u8>,
    input: &str,
    dims: &[usize],
    data: Vec<f32>,
    label: Option<&str>,
    scores: &str,
) -> (Option<Vec<i64>>, Array2<f32>) {
    let model = Model::load(onnx).expect("rten loads the export");
    let x = rten_tensor::Tensor::from_data(dims, data);
    let in_id = model.node_id(input).unwrap();
    let mut outs = vec![model.node_id(scores).unwrap()];
    if let Some(l) = label {
        outs.push(model.node_id(l).unwrap());
    }
    let mut values = model
        .run(vec![(in_id, x.view().into())], &outs, None)
        .expect("rten runs the export");
    let labels = label.map(|_| {
        // rten keeps integers as i32.
        let l: NdTensor<i32, 1> = values.pop().unwrap().try_into().unwrap();
        l.iter().map(|&v| v as i64).collect()
    });
    let s: NdTensor<f32, 2> = values.pop().unwrap().try_into().unwrap();
    let [n, k] = s.shape();
    let s = Array2::from_shape_vec((n, k), s.to_vec()).unwrap();
    (labels, s)
}

/// [`run_rten`] of a CNN graph on the pixels of `test` (float, 0-255): its `output`.
fn run_rten_pixels(onnx: Vec<u8>, test: &Dataset, output: &str) -> Array2<f32> {
    let pixels = test.pixels.iter().map(|&p| f32::from(p)).collect();
    let dims = [test.len(), 1, test.rows, test.cols];
    run_rten(onnx, "pixels", &dims, pixels, None, output).1
}

/// The values in row-major order, whatever the array's memory layout (HOG of several cell
/// sizes is concatenated column-wise, which can leave it column-major).
fn row_major(a: &Array2<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The model's labels and scores on `test` against the exported graph's, run by rten on the
/// HOG features (the classical graph's input).
fn check_classical(name: &str, m: &ClassicalModel, test: &Dataset) {
    let hog = m.config.hog_features(test).unwrap();
    let (n, d) = hog.dim();
    let onnx = m.to_onnx(&ExportOptions::default()).unwrap();
    let (labels, scores) = run_rten(
        onnx,
        "hog",
        &[n, d],
        row_major(&hog),
        Some("label"),
        "scores",
    );
    let want: Vec<i64> = m.predict(test).unwrap().iter().map(|&l| l as i64).collect();
    assert_eq!(labels.unwrap(), want, "{name}: labels");
    let diff = max_abs_diff(&scores, &m.scores(test).unwrap());
    assert!(diff <= TOL, "{name}: scores differ by {diff}");
}

fn train_test() -> (Dataset, Dataset) {
    (split(Split::Train), split(Split::Test))
}

fn fit(c: ClassicalConfig, train: &Dataset) -> ClassicalModel {
    c.fit(train).unwrap().0
}

#[test]
fn classical_stage_combinations_run_in_rten() {
    let (train, test) = train_test();
    let base = ClassicalConfig::default();
    let with = |kv: &[(&str, &str)]| base.clone().with(kv).unwrap();
    let cases: Vec<(&str, ClassicalConfig)> = vec![
        ("default", base.clone()),
        ("pca", with(&[("pca", "64")])),
        ("pca+whiten", with(&[("pca", "64"), ("whiten", "true")])),
        ("pca+rff", with(&[("pca", "64"), ("rff", "512")])),
        ("pca+nystroem", with(&[("pca", "64"), ("nystroem", "256")])),
        ("hellinger", with(&[("feature-map", "hellinger")])),
        ("chi2", with(&[("feature-map", "chi2"), ("pca", "64")])),
        ("chi2:1", with(&[("feature-map", "chi2:1")])),
        ("scaler", with(&[("standardize", "true"), ("pca", "64")])),
        (
            "normalize",
            with(&[("feature-map", "hellinger"), ("normalize", "l2")]),
        ),
        ("normalize-l1", with(&[("normalize", "l1")])),
        ("normalize-max", with(&[("normalize", "max")])),
        ("extra-cell", with(&[("extra-cell", "7")])),
        ("resize", with(&[("resize", "24x24")])),
    ];
    for (name, c) in cases {
        let m = fit(c, &train);
        let test = if m.config.resize.is_some() {
            test.resized(m.cols as u32, m.rows as u32)
        } else {
            test.clone()
        };
        check_classical(name, &m, &test);
    }
}

/// A Nystroem map whose projection is not folded into the SVM (as in files written before
/// folding), and a two-class model (one score column, the label from its sign).
#[test]
fn unfolded_nystroem_and_two_classes_run_in_rten() {
    let (train, test) = train_test();
    let c = ClassicalConfig::default().with(&[("pca", "32")]).unwrap();
    let mut m = fit(c.clone(), &train);
    let z = m.features(&train).unwrap();
    let ny = NystroemParams {
        dim: 128,
        ..Default::default()
    }
    .fit(z.view())
    .unwrap();
    assert!(ny.projection.is_some());
    let k = ny.apply(z).unwrap();
    m.svm = c
        .svm
        .fit(k.view(), &train.labels, train.class_names.len())
        .unwrap();
    m.stages.push(FittedStage::Nystroem(ny));
    check_classical("nystroem (unfolded)", &m, &test);

    let two = |ds: &Dataset| {
        let keep: Vec<usize> = (0..ds.len()).filter(|&i| ds.labels[i] < 2).collect();
        let mut s = ds.subset(&keep);
        s.class_names.truncate(2);
        s
    };
    let m = fit(ClassicalConfig::default(), &two(&train));
    assert_eq!(m.svm.weights.nrows(), 1);
    check_classical("two classes", &m, &two(&test));
}

#[test]
fn cnn_variants_run_in_rten() {
    let (train, test) = train_test();
    let n = test.len();
    for (se, hidden) in [
        (false, vec![]),
        (false, vec![32]),
        (true, vec![]),
        (true, vec![32]),
    ] {
        let name = format!("cnn se={se} hidden={hidden:?}");
        let mut cfg = CnnConfig::default()
            .channels(vec![8, 16])
            .hidden(hidden)
            .epochs(1)
            .batch_size(64);
        cfg.se_reduction = se.then_some(4);
        let (trained, _) = cfg.fit(&train, &mut |_| {}).unwrap();
        // A structurally pruned model is an ordinary CNN to the exporter.
        let pruned = trained
            .prune(&hogsvm::cnn::PruneConfig {
                amount: 0.5,
                finetune_epochs: 0,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(pruned.info.config.channels, vec![4, 8]);
        for (m, name) in [(trained, name.clone()), (pruned, format!("{name} pruned"))] {
            let onnx = m.to_onnx(&ExportOptions::default()).unwrap();
            let probs = run_rten_pixels(onnx.clone(), &test, "probabilities");
            let diff = max_abs_diff(&probs, &m.scores(&test).unwrap());
            assert!(diff <= TOL, "{name}: probabilities differ by {diff}");
            let labels: Vec<u32> = probs
                .rows()
                .into_iter()
                .map(|r| {
                    let mut best = 0;
                    for (j, &v) in r.iter().enumerate() {
                        if v > r[best] {
                            best = j;
                        }
                    }
                    best as u32
                })
                .collect();
            assert_eq!(labels, m.predict(&test).unwrap(), "{name}: labels");
            // The logits output too, and a fixed batch size.
            let fixed = m
                .to_onnx(&ExportOptions::default().batch(Batch::Fixed(n)))
                .unwrap();
            let logits = run_rten_pixels(fixed, &test, "logits");
            assert_eq!(logits.ncols(), m.info.class_names.len());
        }
    }
}

/// A static int8 CNN exports as a QDQ graph that rten runs: the graph computes in float on the
/// dequantised codes, hogsvm sums the codes exactly in i32, so a code can round the other way;
/// probabilities within 0.05 and at most 1% of the labels different (measured: at most 0.0008
/// and none on this fixture; onnxruntime on full Fashion-MNIST: 0.007 and none).
#[test]
fn int8_cnn_runs_in_rten() {
    let (train, test) = train_test();
    let n = test.len();
    for hidden in [vec![], vec![32]] {
        let cfg = CnnConfig::default()
            .channels(vec![8, 16])
            .hidden(hidden.clone())
            .epochs(1)
            .batch_size(64);
        let (trained, _) = cfg.fit(&train, &mut |_| {}).unwrap();
        let q = trained
            .quantize(&hogsvm::cnn::QuantizeConfig::default(), Some(&train))
            .unwrap();
        let onnx = q.to_onnx(&ExportOptions::default()).unwrap();
        let probs = run_rten_pixels(onnx, &test, "probabilities");
        let want = q.scores(&test).unwrap();
        let diff = max_abs_diff(&probs, &want);
        assert!(
            diff <= 0.05,
            "hidden {hidden:?}: probabilities differ by {diff}"
        );
        let argmax = |a: &Array2<f32>| -> Vec<usize> {
            a.rows()
                .into_iter()
                .map(|r| (0..r.len()).fold(0, |b, j| if r[j] > r[b] { j } else { b }))
                .collect()
        };
        let differ = argmax(&probs)
            .iter()
            .zip(argmax(&want))
            .filter(|(a, b)| **a != *b)
            .count();
        eprintln!(
            "int8 in rten, hidden {hidden:?}: max diff {diff}, {differ} of {n} labels differ"
        );
        assert!(
            differ * 100 <= n,
            "hidden {hidden:?}: {differ} of {n} labels differ"
        );
    }
}

/// Every operator set the exporter offers writes a graph rten runs with the same scores (the
/// `Reduce*` axes move from attribute to input at 18).
#[test]
fn opsets_13_to_21_give_the_same_scores() {
    let (train, test) = train_test();
    let m = fit(
        ClassicalConfig::default()
            .with(&[("normalize", "l2"), ("pca", "32"), ("nystroem", "64")])
            .unwrap(),
        &train,
    );
    let hog = m.config.hog_features(&test).unwrap();
    let (n, d) = hog.dim();
    let want = m.scores(&test).unwrap();
    for opset in 13..=21 {
        let onnx = m.to_onnx(&ExportOptions::default().opset(opset)).unwrap();
        let (_, s) = run_rten(onnx, "hog", &[n, d], row_major(&hog), None, "scores");
        let diff = max_abs_diff(&s, &want);
        assert!(diff <= TOL, "opset {opset}: scores differ by {diff}");
    }
}

/// The `export` command: a good model is written atomically; a damaged, foreign or newer model
/// file and bad options are one-line errors with exit status 2, and leave no output behind.
#[test]
fn export_cli_writes_atomically_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let out = dir.path().join("m.onnx");
    let o = run([
        "train".as_ref(),
        "--data".as_ref(),
        fixtures().join("fashion-mnist").as_os_str(),
        "--out".as_ref(),
        model.as_os_str(),
        "--pca".as_ref(),
        "16".as_ref(),
    ]);
    assert_ok(&o);
    let o = run([
        "export".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_ok(&o);
    let bytes = std::fs::read(&out).unwrap();
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 2, "only the model and the export");

    // The workflow docs/ONNX.md gives: `extract --model` computes the graph's input, and the
    // graph's scores are `eval --scores`'.
    let feats = dir.path().join("hog.npy");
    let scores = dir.path().join("scores.npy");
    let data = fixtures().join("fashion-mnist");
    let o = run([
        "extract".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--split".as_ref(),
        "test".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--out".as_ref(),
        feats.as_os_str(),
    ]);
    assert_ok(&o);
    let o = run([
        "eval".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
        "--scores".as_ref(),
        scores.as_os_str(),
    ]);
    assert_ok(&o);
    let x: Array2<f32> = ndarray_npy::read_npy(&feats).unwrap();
    let want: Array2<f32> = ndarray_npy::read_npy(&scores).unwrap();
    let (_, got) = run_rten(
        bytes,
        "hog",
        &[x.nrows(), x.ncols()],
        row_major(&x),
        None,
        "scores",
    );
    let diff = max_abs_diff(&got, &want);
    assert!(diff <= TOL, "CLI round trip: scores differ by {diff}");
    // The HOG flags and --model do not mix; a CNN has no HOG input.
    let o = run([
        "extract".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--model".as_ref(),
        model.as_os_str(),
        "--cell".as_ref(),
        "4".as_ref(),
        "--out".as_ref(),
        feats.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    for f in [&feats, &scores] {
        std::fs::remove_file(f).unwrap();
        let _ = std::fs::remove_file(f.with_file_name(format!(
            "{}_labels.npy",
            f.file_stem().unwrap().to_string_lossy()
        )));
    }

    let damaged = dir.path().join("damaged.safetensors");
    let b_ok = std::fs::read(&model).unwrap();
    let mut b = b_ok.clone();
    let at = b.len() - 10;
    b[at] ^= 0xff;
    std::fs::write(&damaged, &b).unwrap();
    let foreign = dir.path().join("foreign.safetensors");
    std::fs::write(&foreign, b"not a model at all").unwrap();
    let newer = dir.path().join("newer.safetensors");
    std::fs::write(&newer, common::with_format_version(&b_ok, b'3')).unwrap();
    let bad_out = dir.path().join("bad.onnx");
    let missing = dir.path().join("none.safetensors");
    for (what, m, extra, needle) in [
        ("damaged", &damaged, vec![], "damaged.safetensors"),
        ("foreign", &foreign, vec![], "foreign.safetensors"),
        ("newer", &newer, vec![], "version"),
        ("opset", &model, vec!["--opset", "9"], "opset"),
        ("batch", &model, vec!["--batch", "0"], "batch"),
        ("missing", &missing, vec![], "none.safetensors"),
    ] {
        let mut args: Vec<std::ffi::OsString> = vec![
            "export".into(),
            "--model".into(),
            m.into(),
            "--out".into(),
            bad_out.clone().into(),
        ];
        args.extend(extra.iter().map(Into::into));
        let o = run(&args);
        assert_error(&o, &[needle]);
        assert!(!bad_out.exists(), "{what}: no output");
    }
}
