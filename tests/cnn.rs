//! The CNN: same seed → same loss curve and model bytes, learning on the fixture, model files
//! (round trip, corruption, kinds), and the CLI's `train --model cnn` / `eval` / `predict`.

mod common;

use common::{
    assert_ok, bin, eval_cli, fashion_mnist, file_number, in_pool, predict_cli, run, save_image,
    split, stderr, stdout, train_cli,
};
use hogsvm::classifier::Classifier;
use hogsvm::cnn::{CnnConfig, CnnModel, EpochLog, Loss, Optimizer};
use hogsvm::data::{Dataset, Split};
use hogsvm::model::{self, AnyModel};
use hogsvm::pipeline::ClassicalModel;

fn first(ds: &Dataset, n: usize) -> Dataset {
    ds.subset(&(0..n.min(ds.len())).collect::<Vec<_>>())
}

/// A small, quick network.
fn small() -> CnnConfig {
    CnnConfig::default()
        .channels(vec![8, 16])
        .hidden(vec![32])
        .epochs(2)
        .batch_size(32)
        .val_fraction(0.2)
}

fn fit_in_pool(cfg: &CnnConfig, ds: &Dataset, threads: usize) -> (CnnModel, Vec<EpochLog>) {
    let mut logs = Vec::new();
    let (m, s) = in_pool(threads, || cfg.fit(ds, &mut |l| logs.push(l.clone()))).unwrap();
    assert_eq!(s.history.len(), logs.len());
    (m, logs)
}

/// Same seed and thread count: the same loss curve, step for step, and the same model bytes.
/// A different seed: a different curve.
#[test]
fn same_seed_same_loss_curve_and_model() {
    let ds = first(&split(Split::Train), 300);
    let cfg = small().augment(hogsvm::cnn::Augment {
        hflip: true,
        shift: 2,
        rotate: 8.0,
        noise: 0.05,
    });
    let (m1, l1) = fit_in_pool(&cfg, &ds, 2);
    let (m2, l2) = fit_in_pool(&cfg, &ds, 2);
    let curve = |l: &[EpochLog]| -> Vec<(u64, u64, Option<u64>)> {
        l.iter()
            .map(|e| {
                (
                    e.loss.to_bits(),
                    e.train_acc.to_bits(),
                    e.val_acc.map(f64::to_bits),
                )
            })
            .collect()
    };
    assert_eq!(curve(&l1), curve(&l2));
    assert_eq!(m1.to_bytes().unwrap(), m2.to_bytes().unwrap());
    let (_, l3) = fit_in_pool(&cfg.clone().seed(1), &ds, 2);
    assert_ne!(curve(&l1), curve(&l3));
}

/// The network learns: on 1,000 fixture images, four epochs of a tiny network reach well above
/// chance (10 %; 0.58 when written) on
/// the 500 test images, and the training loss falls.
#[test]
fn learns_on_the_fixture() {
    let train = first(&split(Split::Train), 1000);
    let test = split(Split::Test);
    let cfg = small().epochs(4).patience(None);
    let (m, logs) = fit_in_pool(&cfg, &train, 2);
    assert!(logs.last().unwrap().loss < logs[0].loss, "{logs:?}");
    let r = m.evaluate(&test).unwrap();
    assert!(r.accuracy > 0.5, "accuracy {}", r.accuracy);
}

/// Every option runs: SGD, focal and balanced losses, squeeze-and-excitation, no hidden layer,
/// no validation split, constant schedule, no clipping, rotation and noise.
#[test]
fn every_option_trains() {
    let ds = first(&split(Split::Train), 120);
    let variants = [
        small().optimizer(Optimizer::Sgd).lr(0.05),
        small().loss(Loss::Focal {
            gamma: 2.0,
            alpha: 0.25,
        }),
        small().loss(Loss::Balanced).se_reduction(Some(4)),
        small()
            .hidden(vec![])
            .val_fraction(0.0)
            .schedule(hogsvm::cnn::Schedule::Constant)
            .clip_norm(None)
            .warmup_epochs(0.0),
        small().channels(vec![4, 8, 8]).dropout(0.0),
    ];
    for cfg in variants {
        let (m, logs) = fit_in_pool(&cfg.clone().epochs(1), &ds, 2);
        assert!(logs[0].loss.is_finite(), "{cfg:?}");
        let p = m.predict(&ds).unwrap();
        assert_eq!(p.len(), ds.len());
        assert!(p.iter().all(|&l| l < 10));
        // Round trip through the model file gives identical predictions.
        let back = CnnModel::from_bytes(&m.to_bytes().unwrap()).unwrap();
        assert_eq!(back.predict(&ds).unwrap(), p, "{cfg:?}");
    }
}

/// Early stopping: the kept epoch is the first with the best validation accuracy, and a run
/// that stopped early ran exactly `patience` epochs past it. With patience 1 on a small set,
/// some seed stops early.
#[test]
fn early_stopping_keeps_the_best_epoch() {
    let ds = first(&split(Split::Train), 150);
    let mut stopped = 0;
    for seed in 0..4 {
        let cfg = small().epochs(6).patience(Some(1)).seed(seed);
        let (m, s) = cfg.fit(&ds, &mut |_| {}).unwrap();
        let accs: Vec<f64> = s.history.iter().map(|l| l.val_acc.unwrap()).collect();
        let best = accs.iter().cloned().fold(f64::MIN, f64::max);
        let first_best = accs.iter().position(|&a| a == best).unwrap() + 1;
        assert_eq!(s.best_epoch, first_best, "{accs:?}");
        assert_eq!(m.info.best_epoch, first_best);
        if s.stopped_early {
            stopped += 1;
            assert_eq!(s.history.len(), first_best + 1, "{accs:?}");
        } else {
            assert_eq!(s.history.len(), 6);
        }
    }
    assert!(stopped > 0, "no seed stopped early with patience 1");
}

#[test]
fn invalid_configs_and_data_are_typed_errors() {
    let ds = first(&split(Split::Train), 50);
    let bad = small().epochs(0);
    assert!(matches!(
        bad.fit(&ds, &mut |_| {}),
        Err(hogsvm::Error::InvalidParameter { .. })
    ));
    // Images too small for three pooling blocks.
    let tiny = Dataset {
        rows: 4,
        cols: 4,
        channels: 1,
        pixels: vec![0; 2 * 16],
        labels: vec![0, 1],
        class_names: vec!["a".into(), "b".into()],
        sources: vec!["a".into(), "b".into()],
    };
    let e = CnnConfig::default().fit(&tiny, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("at least 8x8"), "{e}");
    // A model refuses images of another size.
    let (m, _) = small().epochs(1).fit(&ds, &mut |_| {}).unwrap();
    let other = Dataset {
        rows: 32,
        cols: 32,
        channels: 1,
        pixels: vec![0; 32 * 32],
        labels: vec![0],
        class_names: ds.class_names.clone(),
        sources: vec!["x".into()],
    };
    assert!(m.predict(&other).is_err());
}

#[test]
fn model_files_are_checked() {
    let ds = first(&split(Split::Train), 100);
    let (m, _) = small().epochs(1).fit(&ds, &mut |_| {}).unwrap();
    let bytes = m.to_bytes().unwrap();
    assert_eq!(
        bytes,
        m.to_bytes().unwrap(),
        "serialisation is deterministic"
    );
    match model::any_from_bytes(&bytes).unwrap() {
        AnyModel::Cnn(back) => {
            assert_eq!(back.info.class_names, m.info.class_names);
            assert_eq!(back.n_params(), m.n_params());
        }
        other => panic!("expected a CNN, got {}", other.classifier().kind()),
    }
    // A flipped byte in the tensor data is caught by the checksum.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 10] ^= 0x40;
    let e = model::any_from_bytes(&bad).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    // Truncated.
    assert!(model::any_from_bytes(&bytes[..bytes.len() / 2]).is_err());
    // A CNN file is not a classical model.
    let e = ClassicalModel::from_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("not a classical model"), "{e}");
}

/// Each of `keys` (space-separated) in `v` is a positive number.
fn assert_positive(v: &serde_json::Value, keys: &str) {
    for k in keys.split_whitespace() {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}: {v}");
    }
}

/// Two model files written with different thread counts are the same bytes.
fn assert_same_bytes(a: &std::path::Path, b: &std::path::Path) {
    assert!(
        std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
        "{} and {} differ: the thread count changed the model",
        a.display(),
        b.display()
    );
}

/// `hogsvm SUBCOMMAND --model MODEL --out OUT` with more arguments.
fn model_command(
    subcommand: &str,
    model: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args: Vec<std::ffi::OsString> = vec![
        subcommand.into(),
        "--model".into(),
        model.into(),
        "--out".into(),
        out.into(),
    ];
    args.extend(extra.iter().map(|s| s.into()));
    run(args)
}

/// The float CNN in `path` (panics on any other kind).
fn load_cnn(path: &std::path::Path) -> hogsvm::cnn::CnnModel {
    match model::load_any(path).unwrap() {
        AnyModel::Cnn(m) => m,
        _ => panic!("{} is not a CNN", path.display()),
    }
}

/// `bench-model` of `path` (3 latency samples, 1 pass): its JSON line.
fn bench_model(path: &std::path::Path) -> serde_json::Value {
    let o = run([
        "bench-model".as_ref(),
        "--model".as_ref(),
        path.as_os_str(),
        "--latency-samples".as_ref(),
        "3".as_ref(),
        "--passes".as_ref(),
        "1".as_ref(),
    ]);
    assert_ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A temporary folder holding `cnn.safetensors`, trained by [`train_small_cnn`] (for the tests of
/// the commands that take a CNN: prune, quantize).
struct SmallCnn {
    dir: tempfile::TempDir,
    /// The CNN's file.
    model: std::path::PathBuf,
}

impl SmallCnn {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("cnn.safetensors");
        assert_ok(&train_small_cnn(&model, &[]));
        SmallCnn { dir, model }
    }

    /// `name` in the folder.
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// `hogsvm SUBCOMMAND --model CNN --out OUT` with more arguments.
    fn run(&self, subcommand: &str, extra: &[&str], out: &std::path::Path) -> std::process::Output {
        model_command(subcommand, &self.model, out, extra)
    }
}

/// `train --model cnn` on the fixture: channels 8, 16, hidden 32, one epoch, then `extra`.
fn train_small_cnn(model_path: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--model",
        "cnn",
        "--channels",
        "8,16",
        "--hidden",
        "32",
        "--epochs",
        "1",
    ];
    args.extend_from_slice(extra);
    train_cli(&fashion_mnist(), model_path, &args)
}

/// `train --model cnn` writes a model that `eval` and `predict` use like a classical one.
#[test]
fn cli_train_eval_predict_cnn() {
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("cnn.safetensors");
    let json = dir.path().join("report.json");
    let o = train_small_cnn(
        &model_path,
        &["--threads", "2", "--json", json.to_str().unwrap()],
    );
    let stderr_text = stderr(&o);
    assert!(o.status.success(), "{stderr_text}");
    assert!(stderr_text.contains("epoch   1/1 | loss"), "{stderr_text}");
    let train_acc: f64 = stdout(&o)
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // eval on the same test split gives the same accuracy.
    let o = eval_cli(&model_path, &fashion_mnist(), &["--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let acc = v["accuracy"].as_f64().unwrap();
    assert!((acc - train_acc).abs() < 1e-4, "{acc} vs {train_acc}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(saved["accuracy"], v["accuracy"]);

    // predict on PNG files: the same labels as the model predicts on the same pixels.
    let test = first(&split(Split::Test), 6);
    let imgs = dir.path().join("imgs");
    for i in 0..test.len() {
        save_image(&test, i, &imgs.join(format!("{i}.png")));
    }
    let o = predict_cli(&model_path, &imgs, &["--format", "json"]);
    assert_ok(&o);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = load_cnn(&model_path);
    let want = m.predict(&test).unwrap();
    for row in rows.as_array().unwrap() {
        let i = file_number(row["file"].as_str().unwrap());
        assert_eq!(row["label"], m.info.class_names[want[i] as usize].as_str());
        let p = row["score"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0, "a probability: {p}");
    }

    // CNN options on a classical model and classical options on a CNN are clear errors.
    let x = dir.path().join("x");
    let o = train_cli(&fashion_mnist(), &x, &["--epochs", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--model cnn"));
    let o = train_cli(&fashion_mnist(), &x, &["--model", "cnn", "--pca", "64"]);
    assert_eq!(o.status.code(), Some(2));
    // --features needs a classical model.
    let o = run([
        "eval".as_ref(),
        "--model".as_ref(),
        model_path.as_os_str(),
        "--features".as_ref(),
        "a.npy".as_ref(),
        "--labels".as_ref(),
        "b.npy".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("classical model"));
}

/// The same seed gives the same loss curve and model bytes with 1 and 3 threads too: the custom
/// ops sum in fixed-size chunks, augmentation and dropout draw per image / per batch.
#[test]
fn same_seed_same_model_whatever_the_thread_count() {
    let ds = first(&split(Split::Train), 200);
    let cfg = small().epochs(1);
    let (m1, l1) = fit_in_pool(&cfg, &ds, 1);
    let (m3, l3) = fit_in_pool(&cfg, &ds, 3);
    assert_eq!(l1[0].loss.to_bits(), l3[0].loss.to_bits());
    assert_eq!(m1.to_bytes().unwrap(), m3.to_bytes().unwrap());
}

/// `bench-cnn` (what scripts/peer_cnn.py calls) prints one JSON object with the fields the
/// script reads, and the parameter count of the network it was asked for.
#[test]
fn bench_cnn_prints_the_fields_the_peer_script_reads() {
    let o = bin()
        .args(["bench-cnn", "--data"])
        .arg(fashion_mnist())
        .args(["--channels", "8,16", "--hidden", "32", "--batch", "16"])
        .args([
            "--steps",
            "2",
            "--warmup",
            "1",
            "--infer-batch",
            "20",
            "--threads",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_positive(
        &v,
        "train_images_per_s train_step_ms_median infer_images_per_s latency_ms",
    );
    assert_eq!(v["train_step_ms"].as_array().unwrap().len(), 2);
    assert_eq!(v["batch"], 16);
    // conv 8x1x3x3 + bn 2x8 + conv 16x8x3x3 + bn 2x16 + fc 32x(16*7*7)+32 + out 10x32+10
    let want = 72 + 16 + 1152 + 32 + 32 * 784 + 32 + 320 + 10;
    assert_eq!(v["params"], want);
}

/// `prune`: structured pruning with fine-tuning gives a smaller model file that `eval` and
/// `bench-model` take, the same bytes with 1 and 2 threads; unstructured keeps the shapes; bad
/// input is a one-line error.
#[test]
fn cli_prune_fine_tune_eval_and_errors() {
    let cnn = SmallCnn::new();
    let data = fashion_mnist();
    let data = data.to_str().unwrap();
    let common = ["--data", data, "--amount", "0.5", "--finetune-epochs", "1"];
    for (threads, out) in [
        ("1", cnn.path("p1.safetensors")),
        ("2", cnn.path("p2.safetensors")),
    ] {
        let mut args = common.to_vec();
        args.extend(["--threads", threads]);
        let o = cnn.run("prune", &args, &out);
        assert_ok(&o);
        common::assert_contains(&stderr(&o), "channels [8, 16] -> [4, 8]");
    }
    assert_same_bytes(&cnn.path("p1.safetensors"), &cnn.path("p2.safetensors"));
    let pruned = load_cnn(&cnn.path("p1.safetensors"));
    let original = load_cnn(&cnn.model);
    assert_eq!(pruned.info.config.channels, vec![4, 8]);
    assert!(pruned.n_params() < original.n_params());
    let rec = pruned
        .info
        .pruning
        .as_ref()
        .expect("the file records the pruning");
    assert_eq!(rec.original_channels, vec![8, 16]);
    assert_eq!(rec.finetune_epochs, 1);
    assert_ok(&eval_cli(
        &cnn.path("p1.safetensors"),
        &fashion_mnist(),
        &["--json"],
    ));
    let v = bench_model(&cnn.path("p1.safetensors"));
    assert_eq!(v["params"], pruned.n_params());
    assert_eq!(v["test_images"], 500);
    assert_positive(&v, "accuracy images_per_s latency_ms_median model_bytes");
    // Unstructured, no fine-tuning (so no --data): the same shapes.
    let o = cnn.run(
        "prune",
        &[
            "--unstructured",
            "--amount",
            "0.8",
            "--finetune-epochs",
            "0",
        ],
        &cnn.path("u.safetensors"),
    );
    assert_ok(&o);
    let u = load_cnn(&cnn.path("u.safetensors"));
    assert_eq!(u.info.config.channels, vec![8, 16]);
    assert_eq!(u.n_params(), original.n_params());
    assert!(u.info.pruning.as_ref().unwrap().zeroed > 0);

    // Errors: one line, exit code 2, nothing written.
    let classical = cnn.path("classical.safetensors");
    assert_ok(&train_cli(&fashion_mnist(), &classical, &[]));
    let never = cnn.path("never.safetensors");
    // (model, arguments after --model M --out never, what the error names)
    let cases: [(&std::path::Path, &[&str], &str); 3] = [
        (&classical, &["--finetune-epochs", "0"], "classical model"),
        (&cnn.model, &["--amount", "1.2"], "amount"),
        (&cnn.model, &[], "--data"),
    ];
    for (model, extra, needle) in cases {
        common::assert_error(&model_command("prune", model, &never, extra), &[needle]);
    }
    assert!(!never.exists());
}

/// `quantize` (static and dynamic) writes `cnn-int8` files about four times smaller that
/// `eval`, `predict`, `bench-model` and `export` take, with the same bytes for 1 and 2 threads,
/// and labels close to the float model's; bad input is a one-line error.
#[test]
fn cli_quantize_eval_predict_export_and_errors() {
    let cnn = SmallCnn::new();
    let data = fashion_mnist();
    let data_s = data.to_str().unwrap();
    for threads in ["1", "2"] {
        let o = cnn.run(
            "quantize",
            &[
                "--calib",
                data_s,
                "--calib-images",
                "300",
                "--threads",
                threads,
            ],
            &cnn.path(&format!("s{threads}.safetensors")),
        );
        assert_ok(&o);
        common::assert_contains(&stdout(&o), "minmax calibration on 300 images");
    }
    assert_same_bytes(&cnn.path("s1.safetensors"), &cnn.path("s2.safetensors"));
    assert_ok(&cnn.run(
        "quantize",
        &["--mode", "dynamic"],
        &cnn.path("d.safetensors"),
    ));
    let float = load_cnn(&cnn.model);
    let test = common::split(Split::Test);
    let want = float.predict(&test).unwrap();
    for name in ["s1.safetensors", "d.safetensors"] {
        let any = model::load_any(&cnn.path(name)).unwrap();
        let AnyModel::CnnInt8(q) = &any else {
            panic!("{name} is not an int8 CNN")
        };
        assert_eq!(q.kind(), "cnn-int8");
        let ratio = std::fs::metadata(&cnn.model).unwrap().len() as f64
            / std::fs::metadata(cnn.path(name)).unwrap().len() as f64;
        assert!(ratio > 3.0, "{name}: only {ratio:.2}x smaller");
        let got = common::in_pool(1, || q.predict(&test).unwrap());
        assert_eq!(got, common::in_pool(2, || q.predict(&test).unwrap()));
        let same = got.iter().zip(&want).filter(|(a, b)| a == b).count();
        assert!(
            same as f64 >= 0.95 * want.len() as f64,
            "{name}: {same} of {} labels as the float model",
            want.len()
        );
        let o = eval_cli(&cnn.path(name), &data, &["--json"]);
        assert_ok(&o);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let acc = v["accuracy"].as_f64().unwrap();
        let expect =
            got.iter().zip(&test.labels).filter(|(a, b)| a == b).count() as f64 / test.len() as f64;
        assert!((acc - expect).abs() < 1e-9, "{acc} vs {expect}");
        let v = bench_model(&cnn.path(name));
        assert_eq!(v["kind"], "cnn-int8");
        assert_eq!(v["accuracy"].as_f64().unwrap(), expect);
    }
    // predict on one image file gives the int8 model's label.
    let img = cnn.path("one.png");
    common::save_image(&test, 3, &img);
    let o = predict_cli(&cnn.path("s1.safetensors"), &img, &["--format", "json"]);
    assert_ok(&o);
    let AnyModel::CnnInt8(q) = model::load_any(&cnn.path("s1.safetensors")).unwrap() else {
        panic!("not an int8 CNN")
    };
    let label = q.predict(&test.subset(&[3])).unwrap()[0] as usize;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.to_string()
            .contains(&format!("\"{}\"", test.class_names[label])),
        "{v}"
    );
    // export: static writes a QDQ graph; dynamic is refused in one line.
    let onnx = cnn.path("s.onnx");
    assert_ok(&run([
        "export".as_ref(),
        "--model".as_ref(),
        cnn.path("s1.safetensors").as_os_str(),
        "--out".as_ref(),
        onnx.as_os_str(),
    ]));
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1000);
    let o = run([
        "export".as_ref(),
        "--model".as_ref(),
        cnn.path("d.safetensors").as_os_str(),
        "--out".as_ref(),
        cnn.path("d.onnx").as_os_str(),
    ]);
    common::assert_error(&o, &["int8 dynamic", "per image"]);

    // Errors: one line, exit code 2, nothing written.
    let classical = cnn.path("classical.safetensors");
    assert_ok(&train_cli(&data, &classical, &[]));
    let other_size = cnn.path("small");
    for (class, i) in [("a", 0), ("b", 1)] {
        common::gray_png(
            &other_size.join(class).join(format!("{i}.png")),
            20,
            20,
            |x, y| ((x * 7 + y * 3) % 256) as u8,
        );
    }
    let never = cnn.path("never.safetensors");
    let small = other_size.to_str().unwrap();
    let m = cnn.model.to_str().unwrap();
    let c = classical.to_str().unwrap();
    // (model, arguments after --model M --out never, what the error names)
    let cases: [(&str, &[&str], &[&str]); 4] = [
        (c, &["--calib", data_s], &["classical model"]),
        (m, &[], &["--calib"]),
        (m, &["--calib", small], &["28x28", "20x20"]),
        (
            m,
            &["--calib", data_s, "--calib-images", "0"],
            &["calib-images"],
        ),
    ];
    for (model, extra, needles) in cases {
        common::assert_error(
            &model_command("quantize", model.as_ref(), &never, extra),
            needles,
        );
    }
    assert!(!never.exists());
}
