//! The classical pipeline: solver correctness against scikit-learn, reproducibility across
//! thread counts, model files (round trip, corruption), and `predict` agreeing with `eval`.

mod common;

use common::{
    assert_ok, eval_cli, fashion_mnist, file_number, fixtures, in_pool, patch_header, predict_cli,
    save_image, split, stderr, stdout, train_cli, train_fixture, with_format_version,
};
use hogsvm::classifier::Classifier;
use hogsvm::data::{Dataset, Split};
use hogsvm::featmap::FeatureMap;
use hogsvm::hog::{Hog, HogParams};
use hogsvm::pipeline::{ClassicalConfig, ClassicalModel};
use hogsvm::reduce::{Components, PcaParams};
use hogsvm::svm::{Loss, SvmParams};
use ndarray::Array2;
use serde_json::Value;

/// fixtures/svm-golden/linearsvc.json, written by scripts/svm_golden.sh.
fn golden() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("svm-golden/linearsvc.json")).unwrap(),
    )
    .unwrap()
}

/// HOG features of `ds` with 4x4 cells and 2x2 blocks (what the golden files use).
fn hog4(ds: &Dataset) -> Array2<f32> {
    Hog::new(HogParams::default().cell(4, 4).block(2, 2))
        .unwrap()
        .compute_batch_u8(&ds.pixels, ds.rows, ds.cols)
        .unwrap()
}

/// `m` saved to a file and loaded back: equal to `m`, with bit-identical scores on `test`.
fn round_trip(m: &ClassicalModel, test: &Dataset) -> ClassicalModel {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    m.save(&p).unwrap();
    let back = ClassicalModel::load(&p).unwrap();
    assert_eq!(&back, m);
    assert_same_scores(m, &back, test);
    back
}

/// `a` and `b` give bit-identical decision scores on `test`.
fn assert_same_scores(a: &ClassicalModel, b: &ClassicalModel, test: &Dataset) {
    let (s1, s2) = (
        a.decision_function(test).unwrap(),
        b.decision_function(test).unwrap(),
    );
    assert!(s1
        .iter()
        .zip(s2.iter())
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

/// scikit-learn's LinearSVC (fixtures/svm-golden, written by scripts/svm_golden.sh) and ours on
/// the same HOG features: test accuracy within 0.5 points, every one-vs-rest primal objective
/// within 1 %.
#[test]
fn linear_svm_matches_sklearn_linearsvc() {
    let golden = golden();
    let (train, test) = (split(Split::Train), split(Split::Test));
    let (xtr, xte) = (hog4(&train), hog4(&test));
    for (name, loss) in [
        ("squared_hinge", Loss::SquaredHinge),
        ("hinge", Loss::Hinge),
    ] {
        let g = &golden["losses"][name];
        let params = SvmParams::default()
            .loss(loss)
            .c(g["C"].as_f64().unwrap())
            .tol(g["tol"].as_f64().unwrap())
            .max_iter(g["max_iter"].as_u64().unwrap() as usize);
        let m = params.fit(xtr.view(), &train.labels, 10).unwrap();
        let pred = m.predict(xte.view()).unwrap();
        let acc = pred
            .iter()
            .zip(&test.labels)
            .filter(|(a, b)| a == b)
            .count() as f64
            / test.len() as f64;
        let sk_acc = g["test_accuracy"].as_f64().unwrap();
        eprintln!("{name}: accuracy {acc:.4} (scikit-learn {sk_acc:.4})");
        assert!(
            (acc - sk_acc).abs() <= 0.005 + 1e-12,
            "{name}: accuracy {acc} vs scikit-learn {sk_acc}"
        );
        for (k, sk_obj) in g["primal_objective"].as_array().unwrap().iter().enumerate() {
            let sk_obj = sk_obj.as_f64().unwrap();
            let ours = m.primal_objective(k, xtr.view(), &train.labels, &params);
            let rel = (ours - sk_obj).abs() / sk_obj;
            eprintln!(
                "{name} class {k}: objective {ours:.6} (scikit-learn {sk_obj:.6}), rel {rel:.2e}"
            );
            assert!(
                rel <= 0.01,
                "{name} class {k}: objective {ours} vs {sk_obj} ({rel:e})"
            );
        }
    }
}

/// Explained-variance ratios and variances of our PCA against scikit-learn's exact (full SVD)
/// PCA on the same HOG features.
#[test]
fn pca_explained_variance_matches_sklearn() {
    let golden = golden();
    let train = split(Split::Train);
    let x = hog4(&train);
    let k = golden["pca"]["n_components"].as_u64().unwrap() as usize;
    let p = PcaParams {
        components: Components::Count(k),
        ..Default::default()
    }
    .fit(x.view())
    .unwrap();
    let want_ratio = golden["pca"]["explained_variance_ratio"]
        .as_array()
        .unwrap();
    let want_var = golden["pca"]["explained_variance"].as_array().unwrap();
    let mut worst = 0f64;
    for i in 0..k {
        let (r, v) = (
            want_ratio[i].as_f64().unwrap(),
            want_var[i].as_f64().unwrap(),
        );
        let rel_r = (p.explained_variance_ratio[i] - r).abs() / r;
        let rel_v = (p.explained_variance[i] - v).abs() / v;
        worst = worst.max(rel_r).max(rel_v);
        assert!(
            rel_r < 1e-3 && rel_v < 1e-3,
            "component {i}: ratio {} vs {r}, variance {} vs {v}",
            p.explained_variance_ratio[i],
            p.explained_variance[i]
        );
    }
    eprintln!("PCA vs scikit-learn: worst relative difference {worst:e} over {k} components");
}

fn small_config() -> ClassicalConfig {
    ClassicalConfig {
        feature_map: FeatureMap::Hellinger,
        pca: Some(PcaParams {
            components: Components::Count(40),
            seed: 5,
            ..Default::default()
        }),
        standardize: true,
        svm: SvmParams::default().seed(5).tol(1e-3),
        ..Default::default()
    }
}

#[test]
fn same_seed_same_model_bytes_for_one_and_two_threads() {
    let train = split(Split::Train);
    let cfg = small_config();
    let fit = |threads: usize| in_pool(threads, || cfg.fit(&train).unwrap().0);
    let a = fit(1).to_bytes().unwrap();
    let b = fit(2).to_bytes().unwrap();
    assert!(a == b, "model bytes differ between 1 and 2 threads");
    let c = fit(2).to_bytes().unwrap();
    assert!(b == c, "model bytes differ between two runs");
}

/// sqrt HOG with 4x4-pixel cells and 2x2 blocks, PCA 48, squared-hinge SVM with C 1 (seed 2):
/// the linear base of the Nystroem tests.
fn pca48_config() -> ClassicalConfig {
    ClassicalConfig {
        // The default's HOG (sqrt, L2-Hys, 9 bins) with 4x4 cells and 2x2 blocks.
        hog: ClassicalConfig::default().hog.cell(4, 4).block(2, 2),
        pca: Some(PcaParams {
            components: Components::Count(48),
            seed: 2,
            ..Default::default()
        }),
        svm: SvmParams::default().c(1.0).tol(1e-2).seed(2),
        ..Default::default()
    }
}

/// The kernel-approximation configuration (PCA, k-means Nystroem, mirrored training images):
/// same bytes for 1 and 2 threads, an exact round trip through the model file, and better
/// than the linear model on the same PCA features.
#[test]
fn nystroem_pipeline_is_reproducible_and_round_trips() {
    use hogsvm::featmap::NystroemParams;
    let (train, test) = (split(Split::Train), split(Split::Test));
    let linear = pca48_config();
    let cfg = ClassicalConfig {
        nystroem: Some(NystroemParams {
            dim: 600,
            seed: 2,
            ..Default::default()
        }),
        augment_flip: true,
        ..linear.clone()
    };
    let fit = |threads: usize| in_pool(threads, || cfg.fit(&train).unwrap().0);
    let (m1, m2) = (fit(1), fit(2));
    assert!(
        m1.to_bytes().unwrap() == m2.to_bytes().unwrap(),
        "model bytes differ between 1 and 2 threads"
    );
    assert_eq!(m1.feature_dim(), 600);
    let back = round_trip(&m1, &test);
    let acc = back.evaluate(&test).unwrap().accuracy;
    let lin = linear
        .fit(&train)
        .unwrap()
        .0
        .evaluate(&test)
        .unwrap()
        .accuracy;
    eprintln!("fixture: Nystroem {acc:.4}, linear {lin:.4}");
    assert!(acc > lin, "Nystroem {acc} vs linear {lin}");
}

/// `fit` folds the Nystroem projection into the SVM: the saved file has no `m x m` matrix, and
/// the model scores like the unfolded pipeline (the map with its projection, then the SVM
/// trained on it). A file with the projection (written before folding) still loads and gives
/// the same labels.
#[test]
fn nystroem_projection_is_folded_into_the_svm() {
    use hogsvm::featmap::NystroemParams;
    let (train, test) = (split(Split::Train), split(Split::Test));
    let cfg = ClassicalConfig {
        nystroem: Some(NystroemParams {
            dim: 400,
            seed: 2,
            ..Default::default()
        }),
        ..pca48_config()
    };
    let folded = cfg.fit(&train).unwrap().0;
    assert!(folded.nystroem().unwrap().projection.is_none());
    // The same stages by hand, without folding.
    let hog = cfg.hog_features(&train).unwrap();
    let pca = cfg.pca.as_ref().unwrap().fit(hog.view()).unwrap();
    let x = pca.transform(hog.view()).unwrap();
    let map = cfg.nystroem.as_ref().unwrap().fit(x.view()).unwrap();
    assert!(map.projection.is_some());
    let svm = cfg
        .svm
        .fit(map.transform(x.view()).unwrap().view(), &train.labels, 10)
        .unwrap();
    let mut unfolded = folded.clone();
    *unfolded.nystroem_mut().unwrap() = map;
    unfolded.svm = svm;
    let (a, b) = (
        folded.decision_function(&test).unwrap(),
        unfolded.decision_function(&test).unwrap(),
    );
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "folded scores differ by {worst}");
    assert_eq!(
        folded.predict(&test).unwrap(),
        unfolded.predict(&test).unwrap()
    );
    // Both forms round-trip through a file; the folded one is the smaller.
    let (fb, ub) = (folded.to_bytes().unwrap(), unfolded.to_bytes().unwrap());
    assert!(
        fb.len() + 400 * 400 * 4 <= ub.len(),
        "{} vs {}",
        fb.len(),
        ub.len()
    );
    assert_eq!(ClassicalModel::from_bytes(&fb).unwrap(), folded);
    let back = ClassicalModel::from_bytes(&ub).unwrap();
    assert_eq!(back, unfolded);
    // A file that claims to be folded but still holds the projection is refused.
    let lying = patch_header(
        &ub,
        b"\\\"nystroem_folded\\\":false",
        b"\\\"nystroem_folded\\\":true ",
    );
    let err = ClassicalModel::from_bytes(&lying).unwrap_err();
    assert!(err.to_string().contains("folded"), "{err}");
    // Folding the loaded unfolded model gives the same classifier.
    let mut refolded = back;
    refolded.fold_nystroem().unwrap();
    assert_eq!(
        refolded.predict(&test).unwrap(),
        folded.predict(&test).unwrap()
    );
}

#[test]
fn model_file_round_trips_with_identical_scores() {
    let (train, test) = (split(Split::Train), split(Split::Test));
    let (m, _) = small_config().fit(&train).unwrap();
    let back = round_trip(&m, &test);
    let r = back.evaluate(&test).unwrap();
    assert!(r.accuracy > 0.7, "{}", r.accuracy);
}

#[test]
fn damaged_or_foreign_model_files_are_clear_errors() {
    let train = split(Split::Train);
    let (m, _) = small_config().fit(&train).unwrap();
    let bytes = m.to_bytes().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    let check = |data: &[u8], needle: &str| {
        std::fs::write(&p, data).unwrap();
        let e = ClassicalModel::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("m.safetensors") && e.contains(needle),
            "{needle}: {e}"
        );
    };
    check(&bytes[..bytes.len() / 2], "not a hogsvm model");
    check(&bytes[..5], "not a hogsvm model");
    check(b"", "not a hogsvm model");
    check(b"P5\n2 2\n255\n\x00\x01\x02\x03", "not a hogsvm model");
    let mut flipped = bytes.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x40;
    check(&flipped, "checksum");
    // A newer format version: rewrite the header's version number.
    // The header is JSON, so the version digit can be swapped in place (same length).
    check(&with_format_version(&bytes, b'9'), "newer");
}

/// `predict` on a folder of PNGs gives the labels `eval` computes on the same images.
#[test]
fn predict_on_pngs_agrees_with_eval() {
    let dir = tempfile::tempdir().unwrap();
    let test = split(Split::Test);
    let root = dir.path().join("pngs");
    for i in 0..60 {
        let class = &test.class_names[test.labels[i] as usize].replace('/', "-");
        save_image(&test, i, &root.join(class).join(format!("{i:03}.png")));
    }
    // Train with class names matching the folder names.
    let model = dir.path().join("m.safetensors");
    let stdout = stdout(&train_fixture(&model, &["--tol", "1e-2", "--threads", "2"]));
    assert!(
        stdout.contains("accuracy") && stdout.contains("svm"),
        "{stdout}"
    );
    let o = predict_cli(&model, &root, &[]);
    assert_ok(&o);
    let csv = common::stdout(&o);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("file,label,score"));
    let predicted: Vec<(String, String)> = lines
        .map(|l| {
            let mut f = l.splitn(3, ',');
            (f.next().unwrap().to_string(), f.next().unwrap().to_string())
        })
        .collect();
    assert_eq!(predicted.len(), 60);
    // The same images through the library's evaluation path (IDX pixels).
    let m = ClassicalModel::load(&model).unwrap();
    let labels = m
        .predict(&test.subset(&(0..60).collect::<Vec<_>>()))
        .unwrap();
    for (file, label) in &predicted {
        let idx = file_number(file);
        assert_eq!(label, &m.class_names[labels[idx] as usize], "{file}");
    }
    // JSON output parses and agrees.
    let o = predict_cli(&model, &root, &["--format", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 60);
    // eval on the IDX test split prints a report with the same accuracy the library computes.
    let o = eval_cli(&model, &fashion_mnist(), &["--json"]);
    assert_ok(&o);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let lib = m.evaluate(&test).unwrap();
    assert_eq!(r["accuracy"].as_f64().unwrap(), lib.accuracy);
    assert_eq!(r["samples"].as_u64().unwrap(), 500);
}

#[test]
fn eval_with_a_mismatched_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    train_fixture(&model, &["--tol", "1e-1", "--max-iter", "5"]);
    // Images of another size.
    let root = dir.path().join("imgs/a");
    std::fs::create_dir_all(&root).unwrap();
    image::GrayImage::new(40, 40)
        .save(root.join("x.png"))
        .unwrap();
    let o = eval_cli(&model, &dir.path().join("imgs"), &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.starts_with("hogsvm: error:") && e.lines().count() == 1,
        "{e}"
    );
}

/// `train --pca --nystroem --kmeans-iters --flip` from the CLI, then `eval` on the model; bad
/// combinations are one-line errors with exit code 2.
#[test]
fn cli_trains_a_nystroem_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("n.safetensors");
    let o = train_fixture(
        &model,
        &[
            "--cell",
            "4",
            "--block",
            "2",
            "--extra-cell",
            "none",
            "--pca",
            "32",
            "--nystroem",
            "300",
            "--kmeans-iters",
            "2",
            "--flip",
            "--gamma",
            "scale*2",
            "--c",
            "1",
        ],
    );
    let stdout = stdout(&o);
    assert!(
        stdout.contains("-> 300 dims") && stdout.contains("nystroem"),
        "{stdout}"
    );
    let m = ClassicalModel::load(&model).unwrap();
    let n = m.config.nystroem.as_ref().unwrap();
    assert_eq!((n.dim, n.kmeans_iters), (300, 2));
    assert_eq!((n.gamma, n.gamma_scale), (None, 2.0));
    // The fitted width is twice scikit-learn's "scale" on the PCA output.
    let pca = m.pca().unwrap();
    let ds = split(Split::Train);
    let (x, f) = (
        m.config.hog_features(&ds).unwrap(),
        m.config.hog_features(&ds.mirrored()).unwrap(),
    );
    let x = ndarray::concatenate(ndarray::Axis(0), &[x.view(), f.view()]).unwrap();
    let scale = hogsvm::featmap::scale_gamma(pca.transform(x.view()).unwrap().view());
    let fitted = m.nystroem().unwrap().gamma;
    assert!(
        (fitted / scale - 2.0).abs() < 1e-9,
        "{fitted} vs 2 x {scale}"
    );
    assert!(m.config.augment_flip);
    assert_ok(&eval_cli(&model, &fashion_mnist(), &[]));
    for bad in [
        vec!["--rff", "64", "--nystroem", "64"],
        vec!["--kmeans-iters", "3"],
        vec!["--nystroem", "lots"],
        vec!["--nystroem", "64", "--gamma", "scale*0"],
        vec!["--nystroem", "64", "--gamma", "wide"],
        vec!["--gamma", "scale*2"],
    ] {
        let o = train_cli(&fashion_mnist(), &dir.path().join("bad.safetensors"), &bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{bad:?}: {err}");
    }
}

/// `resize` is a stage of the model, not only of loading: a model trained with `resize=20x24`
/// on 28x28 images describes 24x20 images, takes images of any size and scores them as it
/// scores the same images resized beforehand; its file round-trips, and the stage is timed.
#[test]
fn resize_is_a_stage_of_the_model() {
    let (train, test) = (split(Split::Train), split(Split::Test));
    let cfg = ClassicalConfig::default()
        .with(&[("resize", "20x24"), ("cell", "4"), ("block", "2")])
        .unwrap();
    let (m, times) = cfg.fit(&train).unwrap();
    assert_eq!((m.rows, m.cols), (24, 20));
    assert!(m.resize().is_some());
    assert_eq!(times[0].name, "resize");
    let pre = test.resized(20, 24);
    assert_eq!(m.predict(&test).unwrap(), m.predict(&pre).unwrap());
    assert_eq!(
        m.decision_function(&test).unwrap(),
        m.decision_function(&pre).unwrap()
    );
    let back = ClassicalModel::from_bytes(&m.to_bytes().unwrap()).unwrap();
    assert_eq!(back, m);
    // Without the stage, images of another size are refused, naming both sizes.
    let plain = cfg
        .clone()
        .with(&[("resize", "none")])
        .unwrap()
        .fit(&pre)
        .unwrap()
        .0;
    let e = plain.predict(&test).unwrap_err().to_string();
    assert!(e.contains("24x20") && e.contains("28x28"), "{e}");
}
