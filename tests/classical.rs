//! The classical pipeline: solver correctness against scikit-learn, reproducibility across
//! thread counts, model files (round trip, corruption), and `predict` agreeing with `eval`.

use std::path::{Path, PathBuf};
use std::process::Command;

use hogsvm::data::{load, Dataset, LoadOptions, Split};
use hogsvm::featmap::FeatureMap;
use hogsvm::hog::{Hog, HogParams};
use hogsvm::model;
use hogsvm::pipeline::ClassicalConfig;
use hogsvm::reduce::{Components, PcaParams};
use hogsvm::svm::{Loss, SvmParams};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn split(s: Split) -> Dataset {
    load(
        &fixtures().join("fashion-mnist"),
        &LoadOptions {
            split: s,
            ..Default::default()
        },
    )
    .unwrap()
    .0
}

/// scikit-learn's LinearSVC (fixtures/svm-golden, written by scripts/svm_golden.sh) and ours on
/// the same HOG features: test accuracy within 0.5 points, every one-vs-rest primal objective
/// within 1 %.
#[test]
fn linear_svm_matches_sklearn_linearsvc() {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("svm-golden/linearsvc.json")).unwrap(),
    )
    .unwrap();
    let (train, test) = (split(Split::Train), split(Split::Test));
    let hog = Hog::new(HogParams::default().cell(4, 4).block(2, 2)).unwrap();
    let xtr = hog
        .compute_batch_u8(&train.pixels, train.rows, train.cols)
        .unwrap();
    let xte = hog
        .compute_batch_u8(&test.pixels, test.rows, test.cols)
        .unwrap();
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
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("svm-golden/linearsvc.json")).unwrap(),
    )
    .unwrap();
    let train = split(Split::Train);
    let hog = Hog::new(HogParams::default().cell(4, 4).block(2, 2)).unwrap();
    let x = hog
        .compute_batch_u8(&train.pixels, train.rows, train.cols)
        .unwrap();
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
    let fit = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| cfg.fit(&train).unwrap().0)
    };
    let a = model::to_bytes(&fit(1)).unwrap();
    let b = model::to_bytes(&fit(2)).unwrap();
    assert!(a == b, "model bytes differ between 1 and 2 threads");
    let c = model::to_bytes(&fit(2)).unwrap();
    assert!(b == c, "model bytes differ between two runs");
}

/// The kernel-approximation configuration (PCA, k-means Nystroem, mirrored training images):
/// same bytes for 1 and 2 threads, an exact round trip through the model file, and better
/// than the linear model on the same PCA features.
#[test]
fn nystroem_pipeline_is_reproducible_and_round_trips() {
    use hogsvm::featmap::NystroemParams;
    let (train, test) = (split(Split::Train), split(Split::Test));
    let linear = ClassicalConfig {
        hog: HogParams::default()
            .cell(4, 4)
            .block(2, 2)
            .transform_sqrt(true),
        pca: Some(PcaParams {
            components: Components::Count(48),
            seed: 2,
            ..Default::default()
        }),
        svm: SvmParams::default().c(1.0).tol(1e-2).seed(2),
        ..Default::default()
    };
    let cfg = ClassicalConfig {
        nystroem: Some(NystroemParams {
            dim: 600,
            seed: 2,
            ..Default::default()
        }),
        augment_flip: true,
        ..linear.clone()
    };
    let fit = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| cfg.fit(&train).unwrap().0)
    };
    let (m1, m2) = (fit(1), fit(2));
    assert!(
        model::to_bytes(&m1).unwrap() == model::to_bytes(&m2).unwrap(),
        "model bytes differ between 1 and 2 threads"
    );
    assert_eq!(m1.feature_dim(), 600);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.safetensors");
    model::save(&m1, &p).unwrap();
    let back = model::load(&p).unwrap();
    assert_eq!(back, m1);
    let (s1, s2) = (
        m1.decision_function(&test).unwrap(),
        back.decision_function(&test).unwrap(),
    );
    assert!(s1
        .iter()
        .zip(s2.iter())
        .all(|(a, b)| a.to_bits() == b.to_bits()));
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

#[test]
fn model_file_round_trips_with_identical_scores() {
    let (train, test) = (split(Split::Train), split(Split::Test));
    let (m, _) = small_config().fit(&train).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    model::save(&m, &p).unwrap();
    let back = model::load(&p).unwrap();
    assert_eq!(back, m);
    let s1 = m.decision_function(&test).unwrap();
    let s2 = back.decision_function(&test).unwrap();
    assert!(s1
        .iter()
        .zip(s2.iter())
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    let r = back.evaluate(&test).unwrap();
    assert!(r.accuracy > 0.7, "{}", r.accuracy);
}

#[test]
fn damaged_or_foreign_model_files_are_clear_errors() {
    let train = split(Split::Train);
    let (m, _) = small_config().fit(&train).unwrap();
    let bytes = model::to_bytes(&m).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    let check = |data: &[u8], needle: &str| {
        std::fs::write(&p, data).unwrap();
        let e = model::load(&p).unwrap_err().to_string();
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
    let needle = b"\\\"format_version\\\":1";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("version in header");
    let mut newer = bytes.clone();
    newer[at + needle.len() - 1] = b'9';
    check(&newer, "newer");
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hogsvm"))
}

/// `hogsvm train` on the fixture, writing `out`, with more arguments.
fn train_cli(out: &Path, more: &[&str]) -> std::process::Output {
    bin()
        .args(["train", "--data"])
        .arg(fixtures().join("fashion-mnist"))
        .arg("--out")
        .arg(out)
        .args(more)
        .output()
        .unwrap()
}

/// `predict` on a folder of PNGs gives the labels `eval` computes on the same images.
#[test]
fn predict_on_pngs_agrees_with_eval() {
    let dir = tempfile::tempdir().unwrap();
    let test = split(Split::Test);
    let root = dir.path().join("pngs");
    for i in 0..60 {
        let class = &test.class_names[test.labels[i] as usize].replace('/', "-");
        let d = root.join(class);
        std::fs::create_dir_all(&d).unwrap();
        image::GrayImage::from_raw(28, 28, test.image(i).to_vec())
            .unwrap()
            .save(d.join(format!("{i:03}.png")))
            .unwrap();
    }
    // Train with class names matching the folder names.
    let model = dir.path().join("m.safetensors");
    let o = train_cli(&model, &["--tol", "1e-2", "--threads", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("accuracy") && stdout.contains("svm"),
        "{stdout}"
    );
    let o = bin()
        .args(["predict", "--model"])
        .arg(&model)
        .arg(&root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = String::from_utf8_lossy(&o.stdout).into_owned();
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
    let m = model::load(&model).unwrap();
    let labels = m
        .predict(&test.subset(&(0..60).collect::<Vec<_>>()))
        .unwrap();
    for (file, label) in &predicted {
        let idx: usize = Path::new(file)
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(label, &m.class_names[labels[idx] as usize], "{file}");
    }
    // JSON output parses and agrees.
    let o = bin()
        .args(["predict", "--format", "json", "--model"])
        .arg(&model)
        .arg(&root)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 60);
    // eval on the IDX test split prints a report with the same accuracy the library computes.
    let o = bin()
        .args(["eval", "--json", "--model"])
        .arg(&model)
        .args(["--data"])
        .arg(fixtures().join("fashion-mnist"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let lib = m.evaluate(&test).unwrap();
    assert_eq!(r["accuracy"].as_f64().unwrap(), lib.accuracy);
    assert_eq!(r["samples"].as_u64().unwrap(), 500);
}

#[test]
fn eval_with_a_mismatched_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let o = train_cli(&model, &["--tol", "1e-1", "--max-iter", "5"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Images of another size.
    let root = dir.path().join("imgs/a");
    std::fs::create_dir_all(&root).unwrap();
    image::GrayImage::new(40, 40)
        .save(root.join("x.png"))
        .unwrap();
    let o = bin()
        .args(["eval", "--model"])
        .arg(&model)
        .args(["--data"])
        .arg(dir.path().join("imgs"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
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
    let o = train_cli(
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
            "--c",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("-> 300 dims") && stdout.contains("nystroem"),
        "{stdout}"
    );
    let m = model::load(&model).unwrap();
    let n = m.config.nystroem.as_ref().unwrap();
    assert_eq!((n.dim, n.kmeans_iters), (300, 2));
    assert!(m.config.augment_flip);
    let o = bin()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(fixtures().join("fashion-mnist"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for bad in [
        vec!["--rff", "64", "--nystroem", "64"],
        vec!["--kmeans-iters", "3"],
        vec!["--nystroem", "lots"],
    ] {
        let o = train_cli(&dir.path().join("bad.safetensors"), &bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{bad:?}: {err}");
    }
}
