//! Smoke runs of the scripts in scripts/ whose Python venv is light (scripts/.venv: scikit-image,
//! scikit-learn, OpenCV; not peer_cnn.sh, whose PyTorch venv is about 4 GiB), so that they cannot
//! rot unnoticed: each runs on the bundled fixture at the smallest sizes that still take it
//! through every step, against this build's binary (`HOGSVM_BIN` = `CARGO_BIN_EXE_hogsvm`, so no
//! nested `cargo build` runs), and its output is checked for content, not just exit code 0.
//!
//! * scripts/peer_classical.sh: scikit-image + scikit-learn against `hogsvm train --json`
//! * scripts/peer_hog.sh: HOG timing of hogsvm, scikit-image and OpenCV (--scaling included)
//! * scripts/kernel_reference.sh: exact RBF SVM on `hogsvm extract` features, two scales
//! * scripts/svm_golden.sh, scripts/golden.sh, scripts/stats_golden.sh: regenerate the golden
//!   files into a temporary folder; they must agree with the committed fixtures/svm-golden,
//!   fixtures/hog-golden and fixtures/stats-golden.
//!
//! Timings are only checked to be positive numbers: there is no timed assertion.
//!
//! The first run makes scripts/.venv (scripts/venv.sh: python3 -m venv, then pinned wheels from
//! PyPI, about half a minute); later runs reuse it. Everything runs in one #[test], in order, so
//! that one process at a time creates or updates the venv (venv.sh also takes a lock).
//! `HOGSVM_SKIP_PEER_SCRIPTS=1` skips it, saying so, on a machine without python3 or PyPI; CI
//! does not set it.
#![cfg(all(feature = "cnn", unix))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ndarray::ArrayD;
use ndarray_npy::ReadNpyExt;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled Fashion-MNIST fixture folder, as an argument.
fn fixture() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/fashion-mnist")
}

/// Run `scripts/NAME ARGS` from the repository root with HOGSVM_BIN set; its stdout, or a panic
/// with the tail of its output.
fn script(name: &str, args: &[&str]) -> String {
    let t = Instant::now();
    let out = Command::new("bash")
        .arg(root().join("scripts").join(name))
        .args(args)
        .current_dir(root())
        .env("HOGSVM_BIN", env!("CARGO_BIN_EXE_hogsvm"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    assert!(
        out.status.success(),
        "scripts/{name} {args:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        tail(&stdout),
        tail(&stderr)
    );
    eprintln!("scripts/{name}: {:.1} s", t.elapsed().as_secs_f64());
    stdout
}

/// [`script`] on the fixture (`--data`) with `flags` (space-separated) and `--json TMP/NAME.json`:
/// the JSON it wrote.
fn script_json(tmp: &Path, name: &str, flags: &str) -> Value {
    let out = tmp.join(name.replace(".sh", ".json"));
    let mut all = vec!["--data", fixture()];
    all.extend(flags.split_whitespace());
    all.extend(["--json", out.to_str().unwrap()]);
    script(name, &all);
    read_json(&out)
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {v}"))
}

fn positive(v: &Value, what: &str) -> f64 {
    let x = num(v, what);
    assert!(
        x.is_finite() && x > 0.0,
        "{what}: {x} is not a positive number"
    );
    x
}

fn fraction(v: &Value, what: &str) -> f64 {
    let x = num(v, what);
    assert!((0.0..=1.0).contains(&x), "{what}: {x} is not in [0, 1]");
    x
}

/// `a` and `b` equal, numbers within a relative `rel` (strings, booleans, keys and array lengths
/// exactly); `path` names the place of a difference.
fn assert_close(a: &Value, b: &Value, rel: f64, path: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<_> = x.keys().collect();
            let ky: Vec<_> = y.keys().collect();
            assert_eq!(kx, ky, "{path}: keys differ");
            for (k, v) in x {
                assert_close(v, &y[k], rel, &format!("{path}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths differ");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                assert_close(v, w, rel, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(_), Value::Number(_)) => {
            let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!(
                (x - y).abs() <= rel * x.abs().max(y.abs()) + 1e-12,
                "{path}: {x} vs {y} (relative tolerance {rel})"
            );
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// peer_classical.sh: both sides' accuracy, sizes and per-stage seconds, from the JSON file.
fn peer_classical(tmp: &Path) {
    let flags = "--limit 400 --pca 16 --feature-map hellinger --threads 2";
    let v = script_json(tmp, "peer_classical.sh", flags);
    let (sk, hs) = (&v["sklearn"], &v["hogsvm"]);
    for (side, r) in [("sklearn", sk), ("hogsvm", hs)] {
        assert_eq!(r["train_images"], 400, "{side}: {r}");
        assert_eq!(r["test_images"], 500, "{side}: {r}");
        // 28x28 images, 4x4-pixel cells, 2x2-cell blocks: 6x6 blocks of 4 cells x 9 bins
        assert_eq!(r["features"], 1296, "{side}: {r}");
        assert_eq!(r["dims"], 16, "{side}: {r}");
        // well above chance (0.1); a linear SVM on 16 PCA components gets about 0.8 here
        let acc = fraction(&r["accuracy"], &format!("{side} accuracy"));
        assert!(acc > 0.5, "{side} accuracy {acc}");
        let st = r["stages_s"]
            .as_object()
            .unwrap_or_else(|| panic!("{side}: no stages_s"));
        let keys: Vec<_> = st.keys().map(String::as_str).collect();
        let mut want = vec!["load", "hog", "map", "scaler", "pca", "svm", "eval"];
        let mut got = keys.clone();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{side}: stages_s keys");
        for s in ["hog", "pca", "svm", "eval"] {
            positive(&st[s], &format!("{side} {s} seconds"));
        }
        for s in ["load", "map", "scaler"] {
            assert!(num(&st[s], s) >= 0.0, "{side} {s} seconds");
        }
        positive(&r["total_s"], &format!("{side} total_s"));
        positive(&r["peak_rss_mb"], &format!("{side} peak_rss_mb"));
    }
    // Same features, same solver family (liblinear's dual coordinate descent), different
    // visiting orders: the accuracies differ by a few test images at most.
    let (a, b) = (
        num(&sk["accuracy"], "sklearn"),
        num(&hs["accuracy"], "hogsvm"),
    );
    assert!(
        (a - b).abs() <= 0.05,
        "accuracies too far apart: sklearn {a}, hogsvm {b}"
    );
    // hellinger: hogsvm ran a feature_map stage, reported under the old key `map`
    assert_eq!(hs["train"]["model"], "classical");
    assert!(
        hs["train"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "feature_map"),
        "hogsvm listed no feature_map stage: {}",
        hs["train"]
    );
    positive(&hs["train"]["params"], "hogsvm params");
    assert!(sk["svm_converged"].is_boolean());
    assert_eq!(sk["versions"]["sklearn"], "1.9.1");
    assert_eq!(v["config"]["pca"], "16");
    assert_eq!(v["config"]["feature_map"], "hellinger");
    positive(&v["speedup_total"], "speedup_total");
}

/// peer_hog.sh: two configs on the first N images and the thread scaling on the whole fixture.
fn peer_hog(tmp: &Path) {
    let flags = "--n 200 --n-skimage 20 --repeat 1 --scaling";
    let v = script_json(tmp, "peer_hog.sh", flags);
    assert_eq!(v["skimage"], "0.26.0");
    let cv = v["opencv"].as_str().unwrap();
    assert!(cv.starts_with("4."), "OpenCV {cv}: pinned below 5");
    let configs = v["configs"].as_array().unwrap();
    assert_eq!(configs.len(), 2);
    for (c, side) in configs.iter().zip(["28x28", "64x64"]) {
        assert!(c["config"].as_str().unwrap().starts_with(side), "{c}");
        assert_eq!(c["images"], 200);
        assert_eq!(c["rounds"], 1);
        for k in ["hogsvm_us", "opencv_us", "skimage_us"] {
            let x = positive(&c[k], k);
            let all = c[format!("{k}_all")].as_array().unwrap();
            assert_eq!(all.len(), 1, "{k}_all");
            assert_eq!(
                num(&all[0], k),
                x,
                "{k}: the median of one round is that round"
            );
        }
        // one round: each ratio is that round's
        let (h, o, s) = (
            num(&c["hogsvm_us"], "h"),
            num(&c["opencv_us"], "o"),
            num(&c["skimage_us"], "s"),
        );
        assert!((num(&c["speedup_vs_skimage"], "x") - s / h).abs() <= 1e-9 * (s / h));
        assert!((num(&c["speedup_vs_opencv"], "x") - o / h).abs() <= 1e-9 * (o / h));
    }
    let sc = &v["scaling"];
    assert_eq!(
        sc["images"], 2000,
        "--scaling runs on every training image of --data"
    );
    positive(&sc["us_1_thread"], "us_1_thread");
    positive(&sc["us_2_threads"], "us_2_threads");
    positive(&sc["speedup_2_threads"], "speedup_2_threads");
}

/// kernel_reference.sh: two HOG scales stacked, PCA 16, exact RBF SVM; one JSON line.
fn kernel_reference() {
    let stdout = script("kernel_reference.sh", &[fixture(), "10", "16", "7/2 14/2"]);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    let v: Value = serde_json::from_str(line).unwrap();
    // 7x7-pixel cells, 2x2 blocks: 3x3 blocks x 4 x 9 = 324; 14x14: 1 block x 4 x 9 = 36
    assert_eq!(v["features"], 324 + 36, "{v}");
    assert_eq!(v["pca"], 16);
    assert_eq!(v["train"], 2000);
    let acc = fraction(&v["test_accuracy"], "test_accuracy");
    assert!(acc > 0.5, "RBF SVM test accuracy {acc}");
    let sv = num(&v["support_vectors"], "support_vectors");
    assert!(sv > 0.0 && sv <= 2000.0, "support vectors {sv}");
}

/// A temporary fixtures folder `tmp/NAME` holding (a link to) the bundled fashion-mnist.
fn fixtures_dir(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(
        root().join("fixtures/fashion-mnist"),
        dir.join("fashion-mnist"),
    )
    .unwrap();
    dir
}

/// svm_golden.sh into a temporary folder: the same file as the committed one, every number within
/// 1 % (relative; tests/classical.rs allows hogsvm 1 % on the objectives against this file).
fn svm_golden(fixtures: &Path) {
    script("svm_golden.sh", &[fixtures.to_str().unwrap()]);
    let new = read_json(&fixtures.join("svm-golden/linearsvc.json"));
    let old = read_json(&root().join("fixtures/svm-golden/linearsvc.json"));
    assert_close(&new, &old, 0.01, "linearsvc.json");
}

/// stats_golden.sh into a temporary folder: the same file as the committed one, to the bit
/// (scipy and numpy are pinned, and nothing in it is iterative or threaded).
fn stats_golden(fixtures: &Path) {
    script("stats_golden.sh", &[fixtures.to_str().unwrap()]);
    let new = read_json(&fixtures.join("stats-golden/stats.json"));
    let old = read_json(&root().join("fixtures/stats-golden/stats.json"));
    assert_eq!(new, old, "stats.json differs from the committed file");
}

/// golden.sh into a temporary folder: the same manifest and inputs as the committed ones, HOG
/// vectors and visualisations within 1e-6, bin tables identical; photo-golden's images the same
/// bytes, its expected HOG within 1e-6.
fn hog_golden(fixtures: &Path) {
    script("golden.sh", &[fixtures.to_str().unwrap()]);
    let (new, old) = (
        fixtures.join("hog-golden"),
        root().join("fixtures/hog-golden"),
    );
    let manifest = read_json(&new.join("manifest.json"));
    assert_eq!(
        manifest,
        read_json(&old.join("manifest.json")),
        "manifest.json"
    );
    let mut names: Vec<String> = std::fs::read_dir(&old)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut new_names: Vec<String> = std::fs::read_dir(&new)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    new_names.sort();
    assert_eq!(names, new_names, "hog-golden file lists");
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    for name in &names {
        let (a, b) = (new.join(name), old.join(name));
        if name.ends_with(".hog.npy") || name.ends_with(".vis.npy") {
            let x = ArrayD::<f64>::read_npy(std::fs::File::open(&a).unwrap()).unwrap();
            let y = ArrayD::<f64>::read_npy(std::fs::File::open(&b).unwrap()).unwrap();
            assert_eq!(x.shape(), y.shape(), "{name}: shapes");
            let d = x
                .iter()
                .zip(&y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            assert!(d <= 1e-6, "{name}: max difference {d}");
        } else if name.ends_with(".npy.gz") {
            let unzip = |p: &Path| {
                let mut v = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap()),
                    &mut v,
                )
                .unwrap();
                v
            };
            assert!(unzip(&a) == unzip(&b), "{name}: bin tables differ");
        } else if name != "manifest.json" {
            let same = std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap();
            assert!(same, "{name}: differs from the committed file");
        }
    }
    // fixtures/photo-golden: the same images (bytes) and manifest, expected HOG within 1e-6.
    let (new, old) = (
        fixtures.join("photo-golden"),
        root().join("fixtures/photo-golden"),
    );
    let manifest = read_json(&new.join("manifest.json"));
    assert_eq!(
        manifest,
        read_json(&old.join("manifest.json")),
        "photo-golden manifest"
    );
    for f in manifest["files"].as_array().unwrap() {
        let p = f["path"].as_str().unwrap();
        let same = std::fs::read(new.join(p)).unwrap() == std::fs::read(old.join(p)).unwrap();
        assert!(same, "photo-golden/{p}");
    }
    for c in manifest["cases"].as_array().unwrap() {
        let name = format!("expected-{}.npy", c["name"].as_str().unwrap());
        let x = ArrayD::<f64>::read_npy(std::fs::File::open(new.join(&name)).unwrap()).unwrap();
        let y = ArrayD::<f64>::read_npy(std::fs::File::open(old.join(&name)).unwrap()).unwrap();
        assert_eq!(x.shape(), y.shape(), "{name}: shapes");
        let worst = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 1e-6, "photo-golden/{name}: {worst}");
    }
}

#[test]
fn light_scripts_run_on_the_fixture() {
    if std::env::var_os("HOGSVM_SKIP_PEER_SCRIPTS").is_some() {
        eprintln!("HOGSVM_SKIP_PEER_SCRIPTS is set: the scripts in scripts/ were NOT run");
        return;
    }
    let t = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    // In order (one venv creation at a time); a failing script does not hide the others'
    // results: each one's panic is reported as it happens and all failures are listed at the end.
    let steps: [(&str, &dyn Fn()); 6] = [
        ("peer_classical.sh", &|| peer_classical(tmp)),
        ("peer_hog.sh", &|| peer_hog(tmp)),
        ("kernel_reference.sh", &kernel_reference),
        ("svm_golden.sh", &|| svm_golden(&fixtures_dir(tmp, "svm"))),
        ("golden.sh", &|| hog_golden(&fixtures_dir(tmp, "hog"))),
        ("stats_golden.sh", &|| stats_golden(&tmp.join("stats"))),
    ];
    let failed: Vec<&str> = steps
        .iter()
        .filter(|(_, f)| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err())
        .map(|(name, _)| *name)
        .collect();
    eprintln!("light scripts: {:.1} s in all", t.elapsed().as_secs_f64());
    assert!(
        failed.is_empty(),
        "failed: {failed:?} (see the messages above)"
    );
}
