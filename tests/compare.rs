//! `hogsvm compare`, the real binary in temporary folders: the three files, the numbers in the
//! console, report.md and report.json agree, report.json validates against
//! docs/report-schema.json, every pipeline row carries the same test fingerprint, and errors are
//! one line with exit code 2.

mod common;

use std::path::Path;
use std::process::Output;

use tempfile::TempDir;

use common::{assert_error, assert_ok, fashion_mnist, root, run, stdout};
use serde_json::Value;

fn schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("docs/report-schema.json")).unwrap())
        .unwrap()
}

/// Validate `instance` against docs/report-schema.json (boon, draft 2020-12).
fn validate(instance: &Value) -> Result<(), String> {
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("file:///report-schema.json", schema())
        .map_err(|e| e.to_string())?;
    let idx = compiler
        .compile("file:///report-schema.json", &mut schemas)
        .map_err(|e| format!("schema does not compile: {e}"))?;
    schemas.validate(instance, idx).map_err(|e| e.to_string())
}

/// The `report.json` that `compare` wrote into `dir`.
fn read_report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// `compare`'s run `o` succeeded and the `report.json` it wrote into `dir` validates: the report.
fn valid_report(o: &Output, dir: &Path) -> Value {
    assert_ok(o);
    let report = read_report(dir);
    validate(&report).unwrap();
    report
}

/// The cells the console and Markdown summary must show for a pipeline, formatted here
/// independently of the renderer: name, kind, accuracy, macro-F1, train s, images/s,
/// latency ms, model MB, peak RSS MB, params, features.
fn expected_cells(p: &Value) -> Vec<String> {
    let f = |v: &Value| v.as_f64().unwrap();
    let dims = p["dims"].as_array().unwrap();
    let features = dims[dims.len() - 2]["dim"].as_u64().unwrap();
    vec![
        p["name"].as_str().unwrap().to_string(),
        p["kind"].as_str().unwrap().to_string(),
        format!("{:.4}", f(&p["accuracy"])),
        format!(
            "{:.4}-{:.4}",
            f(&p["accuracy_ci95"][0]),
            f(&p["accuracy_ci95"][1])
        ),
        format!("{:.4}", f(&p["macro_f1"])),
        format!("{:.2}", f(&p["training"]["seconds"])),
        format!("{:.0}", f(&p["inference"]["images_per_s"])),
        format!("{:.3}", f(&p["inference"]["latency_ms_median"])),
        format!("{:.2}", p["model_bytes"].as_u64().unwrap() as f64 / 1e6),
        match p["memory"]["peak_rss_bytes"].as_u64() {
            Some(b) => format!("{:.2}", b as f64 / 1e6),
            None => "-".into(),
        },
        p["params"].as_u64().unwrap().to_string(),
        features.to_string(),
    ]
}

/// Numbers shown must also be the JSON's within half a unit of their last digit.
fn assert_close(shown: &str, exact: f64, what: &str) {
    let v: f64 = shown
        .parse()
        .unwrap_or_else(|_| panic!("{what}: `{shown}` is not a number"));
    let decimals = shown.split_once('.').map_or(0, |(_, d)| d.len());
    let half = 0.5 * 10f64.powi(-(decimals as i32)) + 1e-12;
    assert!(
        (v - exact).abs() <= half,
        "{what}: shown {shown}, json {exact}"
    );
}

/// Rows of the console table: (name, kind, numbers...) split on whitespace; names have none.
fn console_rows(out: &str) -> Vec<Vec<String>> {
    let mut lines = out.lines();
    let header = lines.next().expect("a table");
    assert!(header.starts_with("pipeline"), "{out}");
    lines
        .take_while(|l| !l.starts_with("test:"))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// Rows of the first Markdown table after `heading`.
fn md_table_after(md: &str, heading: &str) -> Vec<Vec<String>> {
    let start = md
        .find(heading)
        .unwrap_or_else(|| panic!("{heading} not in report.md"));
    md[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn check_summary_numbers(rows: &[Vec<String>], report: &Value, source: &str) {
    let pipelines = report["pipelines"].as_array().unwrap();
    assert_eq!(rows.len(), pipelines.len(), "{source}: {rows:?}");
    for (row, p) in rows.iter().zip(pipelines) {
        let want = expected_cells(p);
        assert_eq!(row, &want, "{source}");
        assert_close(&row[2], p["accuracy"].as_f64().unwrap(), "accuracy");
        assert_close(&row[4], p["macro_f1"].as_f64().unwrap(), "macro-F1");
        assert_close(
            &row[5],
            p["training"]["seconds"].as_f64().unwrap(),
            "train s",
        );
        assert_close(
            &row[7],
            p["inference"]["latency_ms_median"].as_f64().unwrap(),
            "latency",
        );
    }
}

/// Test fingerprint computed here from the data, independently of the binary.
fn fixture_test_sha(limit: usize) -> String {
    let (test, _) = hogsvm::data::load(
        &fashion_mnist(),
        &hogsvm::data::LoadOptions {
            split: hogsvm::data::Split::Test,
            ..Default::default()
        },
    )
    .unwrap();
    let test = test.subset(&(0..limit).collect::<Vec<_>>());
    hogsvm::compare::fingerprint::sha256_hex(&test)
}

#[test]
fn compare_writes_three_files_whose_numbers_agree() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/report"); // created if missing
    let o = run([
        "compare",
        "--data",
        fashion_mnist().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--train-limit",
        "300",
        "--test-limit",
        "120",
        "--classical",
        "default",
        "--classical",
        "name=hog4-pca,cell=4,block=2,pca=32",
        "--cnn",
        "name=tiny-cnn,channels=4,hidden=none,epochs=1,val-split=0.1",
        "--latency-samples",
        "5",
        "--gallery",
        "5",
        "--threads",
        "2",
    ]);
    assert_ok(&o);
    for f in ["report.json", "report.md", "report.html"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let report = read_report(&out);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let console = stdout(&o);

    // Schema: report.json validates, with the documented version.
    validate(&report).unwrap();
    assert_eq!(report["schema_version"], hogsvm::report::SCHEMA_VERSION);

    // Each accuracy's Wilson interval holds it; McNemar for every pair: the discordant counts
    // account exactly for the accuracy difference, the p-value is the library's exact test of
    // them, and the console and report.md show the same numbers.
    let n = report["data"]["test"]["images"].as_u64().unwrap();
    let pl = report["pipelines"].as_array().unwrap();
    for p in pl {
        let (lo, hi) = (
            p["accuracy_ci95"][0].as_f64().unwrap(),
            p["accuracy_ci95"][1].as_f64().unwrap(),
        );
        let acc = p["accuracy"].as_f64().unwrap();
        assert!(lo < acc && acc < hi, "{lo} {acc} {hi}");
        let right = (acc * n as f64).round() as u64;
        let want = hogsvm::stats::wilson_interval(right, n, hogsvm::stats::Z_95);
        assert_eq!((lo, hi), want);
    }
    let pairs = report["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), pl.len() * (pl.len() - 1) / 2);
    let mut k = 0;
    for i in 0..pl.len() {
        for j in i + 1..pl.len() {
            let t = &pairs[k];
            k += 1;
            assert_eq!(t["a"], pl[i]["name"]);
            assert_eq!(t["b"], pl[j]["name"]);
            let (b, c) = (
                t["a_only_right"].as_u64().unwrap(),
                t["b_only_right"].as_u64().unwrap(),
            );
            let diff = pl[i]["accuracy"].as_f64().unwrap() - pl[j]["accuracy"].as_f64().unwrap();
            assert!(
                (diff - (b as f64 - c as f64) / n as f64).abs() < 1e-9,
                "{t}"
            );
            let p = hogsvm::stats::mcnemar_exact(b, c).p_value;
            assert_eq!(t["p_value"].as_f64().unwrap(), p);
            let shown = hogsvm::report::render::p_value(p);
            let line = format!(
                "McNemar exact: {} vs {}: only {} right on {b}, only {} right on {c}: p = {shown}",
                t["a"].as_str().unwrap(),
                t["b"].as_str().unwrap(),
                t["a"].as_str().unwrap(),
                t["b"].as_str().unwrap()
            );
            assert!(console.contains(&line), "{line} not in {console}");
            let row = format!(
                "| {} | {} | {:+.4} | {b} | {c} | {shown} |",
                t["a"].as_str().unwrap(),
                t["b"].as_str().unwrap(),
                diff
            );
            assert!(md.contains(&row), "{row} not in report.md");
        }
    }

    // The same test images in every row: the fingerprint recomputed here from the fixture.
    let sha = fixture_test_sha(120);
    assert_eq!(report["data"]["test"]["sha256"], sha.as_str());
    assert_eq!(report["data"]["test"]["images"], 120);
    assert_eq!(report["data"]["train"]["images"], 300);
    let pipelines = report["pipelines"].as_array().unwrap();
    assert_eq!(pipelines.len(), 3);
    let kinds: Vec<&str> = pipelines
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["classical", "classical", "cnn"]);
    for p in pipelines {
        assert_eq!(p["test_fingerprint"], sha.as_str(), "{}", p["name"]);
        assert_eq!(p["test_images"], 120);
        assert_eq!(p["metrics"]["samples"], 120);
        let conf: u64 = p["metrics"]["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
            .sum();
        assert_eq!(conf, 120);
        assert_eq!(p["accuracy"], p["metrics"]["accuracy"]);
        assert_eq!(p["macro_f1"], p["metrics"]["macro_avg"]["f1"]);
        assert!(p["model_bytes"].as_u64().unwrap() > 1000);
        assert!(p["params"].as_u64().unwrap() > 0);
        assert_eq!(p["inference"]["latency_samples"], 5);
        assert!(p["misclassified"].as_array().unwrap().len() <= 5);
    }
    // Classical stages and dims; the CNN's epochs.
    assert_eq!(
        common::names(&pipelines[1]["training"]["stages"]),
        ["hog", "pca", "svm"]
    );
    let dims: Vec<u64> = pipelines[1]["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dim"].as_u64().unwrap())
        .collect();
    assert_eq!(dims, [784, 1296, 32, 10]);
    assert_eq!(pipelines[2]["training"]["epochs_run"], 1);
    assert_eq!(pipelines[2]["name"], "tiny-cnn");
    #[cfg(target_os = "linux")]
    for p in pipelines {
        assert!(p["memory"]["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    }

    // Console and Markdown show the JSON's numbers.
    check_summary_numbers(&console_rows(&console), &report, "console");
    check_summary_numbers(&md_table_after(&md, "## Summary"), &report, "report.md");
    assert!(console.contains(&sha[..16]), "{console}");
    // Per-class F1 in report.md, for every pipeline.
    for p in pipelines {
        let heading = format!("## {} (", p["name"].as_str().unwrap());
        let section = &md[md.find(&heading).unwrap()..];
        let rows = md_table_after(section, "### Per class");
        for (row, c) in rows
            .iter()
            .zip(p["metrics"]["per_class"].as_array().unwrap())
        {
            assert_eq!(row[0], c["name"].as_str().unwrap());
            assert_eq!(row[3], format!("{:.4}", c["f1"].as_f64().unwrap()));
        }
        assert!(section.contains(sha.as_str()));
    }
    // ONNX: every pipeline exported; with onnxruntime at hand (scripts/test.sh sets
    // HOGSVM_ORT_PYTHON to its venv's Python) it agrees with hogsvm on every test image, and
    // report.md shows its rows; without, the report says why it did not run.
    let ort = std::env::var_os("HOGSVM_ORT_PYTHON").is_some();
    for p in pipelines {
        let o = &p["onnx"];
        assert!(o["bytes"].as_u64().unwrap() > 1000, "{o}");
        let heading = format!("## {} (", p["name"].as_str().unwrap());
        let section = &md[md.find(&heading).unwrap()..];
        if ort {
            let t = &o["runtime"];
            assert_eq!(t["labels_agree"], p["test_images"], "{o}");
            assert!(t["max_score_diff"].as_f64().unwrap() <= 1e-4, "{o}");
            assert!(t["images_per_s"].as_f64().unwrap() > 0.0, "{o}");
            assert_eq!(t["threads"], 2);
            let want = if p["kind"] == "cnn" { "pixels" } else { "hog" };
            assert_eq!(o["input"], want);
            assert!(section.contains("| onnxruntime vs hogsvm | 120 of 120 labels equal"));
        } else {
            assert!(o["runtime"].is_null());
            assert!(o["note"].as_str().unwrap().contains("not run"), "{o}");
        }
    }
    // Reproducibility facts.
    let cmd = report["run"]["command"].as_str().unwrap();
    assert!(cmd.starts_with("hogsvm compare --data "), "{cmd}");
    assert!(
        cmd.contains("--cnn name=tiny-cnn,channels=4,hidden=none,epochs=1,val-split=0.1 "),
        "{cmd}"
    );
    assert!(md.contains(cmd), "command not in report.md");
    assert_eq!(report["run"]["threads"], 2);
    assert_eq!(report["generator"]["version"], env!("CARGO_PKG_VERSION"));

    // HTML: self-contained, every chart there.
    for id in [
        "chart-accuracy-time",
        "chart-f1",
        "chart-confusion-0",
        "chart-confusion-1",
        "chart-confusion-2",
        "chart-training-2",
        "hog-samples",
        "gallery-0",
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "{id} missing from report.html"
        );
    }
    for bad in [
        "src=\"http",
        "href=\"http",
        "<script",
        "<link",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(bad), "report.html contains {bad}");
    }
    assert!(html.matches("<svg").count() >= 6);
    // Only the CNN has training curves, with its kept epoch marked.
    assert!(!html.contains("id=\"chart-training-0\""));
    assert!(html.contains("whose weights were kept"));
    assert!(html.contains("data:image/png;base64,"));
    // plotters drew the labels as SVG text.
    assert!(
        html.contains("\nhog4-pca (macro-F1 "),
        "pipeline label not drawn"
    );
    assert!(
        html.contains("\nAnkle boot\n</text>"),
        "class label not drawn"
    );
}

#[test]
fn schema_documents_every_top_level_key_and_rejects_bad_reports() {
    let s = schema();
    let props = s["properties"].as_object().unwrap();
    let required: Vec<&str> = s["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for key in [
        "schema_version",
        "generator",
        "run",
        "data",
        "pipelines",
        "notes",
    ] {
        assert!(props.contains_key(key), "schema lacks {key}");
        assert!(required.contains(&key), "schema does not require {key}");
    }
    assert_eq!(
        s["properties"]["schema_version"]["const"],
        hogsvm::report::SCHEMA_VERSION
    );
    // Every top-level key of a real report is in the schema (and the other way round).
    let dir = tempfile::tempdir().unwrap();
    let o = run([
        "compare",
        "--data",
        fashion_mnist().to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
        "--train-limit",
        "200",
        "--test-limit",
        "50",
        "--classical",
        "cell=7,block=2",
        "--cnn",
        "none",
        "--latency-samples",
        "3",
        "--train-sizes",
        "100,1.0",
    ]);
    assert_ok(&o);
    let report = read_report(dir.path());
    let keys: Vec<&String> = report.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), props.len());
    for k in keys {
        assert!(props.contains_key(k), "{k} not in the schema");
    }
    validate(&report).unwrap();
    assert_eq!(report["pipelines"][0]["name"], "hog+svm[cell=7,block=2]");
    // Broken reports fail validation.
    let mut bad = report.clone();
    bad["pipelines"][0]["accuracy"] = 1.5.into();
    assert!(validate(&bad).is_err());
    let mut bad = report.clone();
    bad.as_object_mut().unwrap().remove("data");
    assert!(validate(&bad).is_err());
    let mut bad = report.clone();
    bad["pipelines"][0]["test_fingerprint"] = "abc".into();
    assert!(validate(&bad).is_err());
    let mut bad = report.clone();
    bad["schema_version"] = 1.into();
    assert!(validate(&bad).is_err());
    let mut bad = report.clone();
    bad.as_object_mut().unwrap().remove("pairs");
    assert!(validate(&bad).is_err());
    let mut bad = report;
    bad["learning_curve"]["points"][0]["train_sha256"] = "abc".into();
    assert!(validate(&bad).is_err());
}

/// Parse `0.8123 ± 0.0100` or `0.8123` after a pipeline's name in a console curve line.
fn console_curve_cell(line: &str, name: &str) -> (String, Option<String>) {
    let rest = &line[line.find(&format!("{name} ")).expect(name) + name.len() + 1..];
    let cell = rest.split(", ").next().unwrap().trim();
    match cell.split_once(" ± ") {
        Some((m, sd)) => (m.to_string(), Some(sd.to_string())),
        None => (cell.to_string(), None),
    }
}

/// `hogsvm compare --data <fixture> --out <dir> ARGS...`.
fn compare_fixture(dir: &Path, args: &[&str]) -> std::process::Output {
    let f = fashion_mnist();
    let mut all = vec![
        "compare",
        "--data",
        f.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run(all)
}

/// `compare` of the default classical pipeline and the CNN `cnn` on the first `limits` (train,
/// test) fixture images, 3 latency samples, no onnxruntime, then the flags `more`
/// (space-separated), writing into a new temporary folder; it must succeed and its report.json
/// validate. The folder, the output and the report.
fn compare_small(limits: [&str; 2], cnn: &str, more: &str) -> (TempDir, Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--train-limit", limits[0], "--test-limit", limits[1]];
    args.extend(["--classical", "default", "--cnn", cnn]);
    args.extend(["--latency-samples", "3", "--no-ort"]);
    args.extend(more.split_whitespace());
    let o = compare_fixture(dir.path(), &args);
    let report = valid_report(&o, dir.path());
    (dir, o, report)
}

#[test]
fn learning_curve_subsets_are_shared_nested_and_stratified_and_renderings_agree() {
    let (dir, o, report) = compare_small(
        ["600", "200"],
        "name=tiny,channels=4,hidden=none,epochs=1,val-split=0.1",
        "--threads 2 --train-sizes 100,0.5,600:1 --repeats 2 --seed 5",
    );
    let c = &report["learning_curve"];
    let sizes: Vec<usize> = c["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(sizes, [100, 300, 600], "0.5 of 600 is 300");
    assert_eq!(
        c["repeats"],
        serde_json::json!([2, 2, 1]),
        "600:1 has one repeat"
    );

    // The subsets, rebuilt here from the library's documented rule (seed + repeat, the first
    // 600 training images), have the report's fingerprints; they are nested and stratified.
    let train = common::split(hogsvm::data::Split::Train);
    let train = train.subset(&(0..600).collect::<Vec<_>>());
    let totals = train.class_counts();
    let subsets = c["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 5);
    for r in 0..2u64 {
        let idx = hogsvm::stats::nested_stratified_subsets(&train.labels, &sizes, 5 + r).unwrap();
        for (k, w) in idx.windows(2).enumerate() {
            assert!(
                w[0].iter().all(|i| w[1].binary_search(i).is_ok()),
                "size {} not inside size {} (repeat {r})",
                sizes[k],
                sizes[k + 1]
            );
        }
        for (si, &size) in sizes.iter().enumerate() {
            if size == 600 && r == 1 {
                assert!(!subsets.iter().any(|s| s["size"] == 600 && s["repeat"] == 1));
                continue;
            }
            // (Drawn with all three sizes here, with two in the binary for repeat 1: a
            // subset does not depend on the other sizes.)
            let sub = subsets
                .iter()
                .find(|s| s["size"] == size && s["repeat"] == r)
                .expect("a subset per size and repeat");
            assert_eq!(sub["seed"], 5 + r);
            let want = hogsvm::compare::fingerprint::sha256_hex(&train.subset(&idx[si]));
            assert_eq!(sub["fingerprint"]["sha256"], want.as_str());
            let counts = sub["fingerprint"]["class_counts"].as_array().unwrap();
            for (k, n) in counts.iter().enumerate() {
                let share = size as f64 * totals[k] as f64 / 600.0;
                let n = n.as_u64().unwrap() as f64;
                assert!(
                    n >= share.floor() && n <= share.ceil(),
                    "class {k} has {n} images at size {size}, share {share}"
                );
            }
            // Every pipeline's point at this size and repeat trained on these very images.
            let pts: Vec<&Value> = c["points"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["size"] == size && p["repeat"] == r)
                .collect();
            assert_eq!(pts.len(), 2);
            for p in pts {
                assert_eq!(p["train_sha256"], want.as_str(), "{}", p["pipeline"]);
                let main = size == 600 && r == 0;
                assert_eq!(p["from_main_run"], main);
            }
        }
    }
    // Repeats differ where the subset differs.
    assert_ne!(
        subsets[0]["fingerprint"]["sha256"],
        subsets[1]["fingerprint"]["sha256"]
    );
    // The main run's point is the main run's accuracy.
    for p in report["pipelines"].as_array().unwrap() {
        let pt = c["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["pipeline"] == p["name"] && q["from_main_run"] == true)
            .unwrap();
        assert_eq!(pt["accuracy"], p["accuracy"]);
        assert_eq!(pt["train_sha256"], report["data"]["train"]["sha256"]);
    }
    // Summary: mean and sample std of the points.
    for s in c["summary"].as_array().unwrap() {
        let accs: Vec<f64> = c["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["size"] == s["size"] && p["pipeline"] == s["pipeline"])
            .map(|p| p["accuracy"].as_f64().unwrap())
            .collect();
        if s["size"] == 600 {
            assert_eq!(accs.len(), 1);
            assert!(s["std_accuracy"].is_null());
            assert_eq!(s["mean_accuracy"].as_f64().unwrap(), accs[0]);
            continue;
        }
        assert_eq!(accs.len(), 2);
        let mean = (accs[0] + accs[1]) / 2.0;
        let sd = (accs[0] - accs[1]).abs() / 2f64.sqrt();
        assert!((s["mean_accuracy"].as_f64().unwrap() - mean).abs() < 1e-12);
        assert!((s["std_accuracy"].as_f64().unwrap() - sd).abs() < 1e-12);
    }
    // One crossover entry (tiny vs hog+svm) with a statement; McNemar per size.
    assert_eq!(c["crossovers"].as_array().unwrap().len(), 1);
    let statement = c["crossovers"][0]["statement"].as_str().unwrap();
    assert!(statement.starts_with("tiny "), "{statement}");
    assert_eq!(c["pairs"].as_array().unwrap().len(), 3);

    // Console, Markdown and JSON agree.
    let out = stdout(&o);
    assert!(out.contains(statement), "{out}");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains(statement));
    let rows = md_table_after(&md, "## Learning curve");
    assert_eq!(rows.len(), c["summary"].as_array().unwrap().len());
    for (row, s) in rows.iter().zip(c["summary"].as_array().unwrap()) {
        assert_eq!(row[0], s["size"].to_string());
        assert_eq!(row[1], s["pipeline"].as_str().unwrap());
        assert_close(&row[3], s["mean_accuracy"].as_f64().unwrap(), "md mean");
        match s["std_accuracy"].as_f64() {
            Some(sd) => assert_close(&row[4], sd, "md std"),
            None => assert_eq!(row[4], "-"),
        }
        assert_close(&row[6], s["mean_train_seconds"].as_f64().unwrap(), "md s");
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{}:", s["size"])))
            .expect("a console line per size");
        let (m, sd) = console_curve_cell(line, s["pipeline"].as_str().unwrap());
        assert_close(&m, s["mean_accuracy"].as_f64().unwrap(), "console mean");
        match s["std_accuracy"].as_f64() {
            Some(want) => assert_close(&sd.unwrap(), want, "console std"),
            None => assert_eq!(sd, None),
        }
    }
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for id in ["chart-learning-curve", "chart-time-vs-size"] {
        assert!(html.contains(&format!("id=\"{id}\"><svg")), "{id}");
    }
}

/// A 16x16 test PNG whose pixels depend on `seed`.
fn png(path: &Path, seed: u32) {
    common::gray_png(path, 16, 16, |x, y| {
        ((x * 7 + y * 13 + seed * 31) % 256) as u8
    });
}

#[test]
fn image_folder_with_test_split_grid_and_pipelines_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shapes");
    for (c, class) in ["alpha", "beta", "gamma"].iter().enumerate() {
        for i in 0..12 {
            png(
                &data.join(class).join(format!("{i}.png")),
                (c * 100 + i * (c + 1)) as u32,
            );
        }
    }
    let cfg = dir.path().join("pipelines.toml");
    std::fs::write(
        &cfg,
        "classical = [{ name = \"c4\", spec = \"cell=4,block=2\" }]\ncnn = []\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run([
        "compare",
        "--data",
        data.to_str().unwrap(),
        "--test-split",
        "0.25",
        "--config",
        cfg.to_str().unwrap(),
        "--grid",
        "--grid-folds",
        "2",
        "--grid-c",
        "0.1,1",
        "--grid-cells",
        "4,8",
        "--out",
        out.to_str().unwrap(),
        "--latency-samples",
        "3",
        "--seed",
        "5",
    ]);
    let report = valid_report(&o, &out);
    assert_eq!(report["data"]["test"]["images"], 9);
    assert_eq!(report["data"]["train"]["images"], 27);
    assert_eq!(report["run"]["seed"], 5);
    let p = &report["pipelines"][0];
    assert_eq!(report["pipelines"].as_array().unwrap().len(), 1);
    assert_eq!(p["name"], "c4");
    assert_eq!(p["test_fingerprint"], report["data"]["test"]["sha256"]);
    let g = &p["grid"];
    assert_eq!(g["folds"], 2);
    assert_eq!(
        g["train_images"], 27,
        "the search sees the training split only"
    );
    assert_eq!(g["rows"].as_array().unwrap().len(), 4);
    let chosen = (
        g["chosen_cell"].as_u64().unwrap(),
        g["chosen_c"].as_f64().unwrap(),
    );
    let best = g["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["mean_accuracy"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    let row = g["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| (r["cell"].as_u64().unwrap(), r["c"].as_f64().unwrap()) == chosen)
        .unwrap();
    assert_eq!(row["mean_accuracy"].as_f64().unwrap(), best);
    // The refitted model uses the chosen parameters.
    assert_eq!(p["config"]["hog"]["cell_rows"].as_u64().unwrap(), chosen.0);
    assert_eq!(p["config"]["svm"]["c"].as_f64().unwrap(), chosen.1);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("### Cross-validated search (2 folds"), "{md}");
    check_summary_numbers(&console_rows(&stdout(&o)), &report, "console");
}

#[test]
fn compare_errors_are_one_line_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let out = out.to_str().unwrap();
    let f = fashion_mnist();
    let data = f.to_str().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let cfg = dir.path().join("p.json");
    std::fs::write(&cfg, "{\"svm\": 1}").unwrap();
    // (arguments after `compare --data`, what the error names)
    let cases: [(&[&str], &str); 15] = [
        (
            &[data, "--classical", "none", "--cnn", "none", "--out", out],
            "nothing to compare",
        ),
        // --out is a file.
        (&[data, "--out", file.to_str().unwrap()], "not a folder"),
        // Bad specs name the key.
        (&[data, "--classical", "colour=red", "--out", out], "colour"),
        (&[data, "--cnn", "channels=0", "--out", out], "channels"),
        (
            &[
                data,
                "--classical",
                "name=x",
                "--classical",
                "name=x,cell=4",
                "--out",
                out,
            ],
            "same name",
        ),
        // Missing data, a bad pipelines file.
        (&["/nonexistent/data", "--out", out], "/nonexistent/data"),
        (
            &[data, "--config", cfg.to_str().unwrap(), "--out", out],
            "p.json",
        ),
        (
            &[data, "--cnn", "none", "--classical", "none", "--grid"],
            "nothing to compare",
        ),
        // Learning-curve sizes: zero, above the training split, not a number; no repeats.
        (
            &[data, "--train-sizes", "0,100", "--out", out],
            "train_sizes",
        ),
        (&[data, "--train-sizes", "100,5000", "--out", out], "2000"),
        (&[data, "--train-sizes", "1.5", "--out", out], "(0, 1]"),
        (
            &[data, "--train-sizes", "100", "--repeats", "0", "--out", out],
            "--repeats",
        ),
        (
            &[data, "--train-sizes", "100", "--grid", "--out", out],
            "--grid",
        ),
        (&[data, "--cnn", "none", "--deploy", "--out", out], "no CNN"),
        (
            &[data, "--deploy", "--deploy-prune", "1.2", "--out", out],
            "amount",
        ),
    ];
    for (args, needle) in cases {
        let o = run(["compare", "--data"].iter().chain(args));
        assert_error(&o, &[needle]);
    }
    // Nothing written on a usage error, and the file given as --out untouched.
    assert!(!Path::new(out).exists(), "nothing written on a usage error");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// `--deploy`: each CNN gets int8 static and dynamic variants and pruned, fine-tuned ones,
/// measured beside it; the JSON validates and the console and Markdown show their numbers.
#[test]
fn deploy_variants_are_measured_and_rendered() {
    let (dir, o, report) = compare_small(
        ["400", "100"],
        "name=tiny,channels=8,16,hidden=none,epochs=1,val-split=0.1",
        "--deploy --deploy-prune 0.5,0.75 --deploy-finetune-epochs 1 --deploy-calib-images 200",
    );
    let ps = report["pipelines"].as_array().unwrap();
    assert!(
        ps[0].get("variants").is_none(),
        "classical pipelines have none"
    );
    let cnn = &ps[1];
    let all = cnn["variants"].as_array().unwrap();
    assert_eq!(all.len(), 4);
    let (q, v) = all.split_at(2);
    assert_eq!(q[0]["method"], "int8-static");
    assert_eq!(q[0]["name"], "int8 static (200 calibration images)");
    assert_eq!(q[1]["method"], "int8-dynamic");
    for q in q {
        assert_eq!(q["channels"], serde_json::json!([8, 16]));
        let ratio = cnn["model_bytes"].as_f64().unwrap() / q["model_bytes"].as_f64().unwrap();
        assert!(ratio > 3.0, "int8 only {ratio:.2}x smaller");
        let acc = q["accuracy"].as_f64().unwrap();
        assert!(
            (acc - cnn["accuracy"].as_f64().unwrap()).abs() < 0.1,
            "{acc}"
        );
    }
    assert_eq!(v[0]["channels"], serde_json::json!([4, 8]));
    assert_eq!(v[1]["channels"], serde_json::json!([2, 4]));
    assert_eq!(v[0]["finetune_epochs"], 1);
    assert!(v[0]["params"].as_u64().unwrap() < cnn["params"].as_u64().unwrap());
    assert!(v[1]["model_bytes"].as_u64().unwrap() < v[0]["model_bytes"].as_u64().unwrap());
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let rows = md_table_after(&md, "## Deployment: smaller CNNs");
    assert_eq!(rows.len(), 6, "two pipelines as trained, four variants");
    assert_eq!(rows[2][1], q[0]["name"].as_str().unwrap());
    let row = &rows[4];
    assert_eq!(row[0], "tiny");
    assert_eq!(row[1], v[0]["name"].as_str().unwrap());
    assert_close(
        &row[2],
        v[0]["accuracy"].as_f64().unwrap(),
        "variant accuracy",
    );
    assert_eq!(row[4], v[0]["params"].to_string());
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "tiny {}: accuracy",
            v[0]["name"].as_str().unwrap()
        )),
        "{out}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("id=\"chart-accuracy-size\"><svg"));
}

/// `--saved`: model files of any kind (here a float CNN and its int8 model) are loaded, not
/// trained, and measured like the trained pipelines; their accuracy is what `eval` gives on the
/// same test images. Saved models and a learning curve, or a file that is no model, are errors.
#[test]
fn saved_models_are_loaded_and_measured_beside_the_trained_ones() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let data = fashion_mnist();
    assert_ok(&common::train_cli(
        &data,
        &p("cnn.safetensors"),
        &[
            "--model",
            "cnn",
            "--channels",
            "8,16",
            "--hidden",
            "none",
            "--epochs",
            "1",
        ],
    ));
    assert_ok(&run([
        "quantize".as_ref(),
        "--model".as_ref(),
        p("cnn.safetensors").as_os_str(),
        "--calib".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        p("q8.safetensors").as_os_str(),
    ]));
    let out = p("report");
    let float = format!("file={}", p("cnn.safetensors").display());
    let int8 = format!("name=int8,file={}", p("q8.safetensors").display());
    let o = compare_fixture(
        &out,
        &[
            "--cnn",
            "none",
            "--saved",
            &float,
            "--saved",
            &int8,
            "--no-ort",
            "--latency-samples",
            "3",
        ],
    );
    let report = valid_report(&o, &out);
    let ps = report["pipelines"].as_array().unwrap();
    let kinds: Vec<&str> = ps.iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["classical", "cnn", "cnn-int8"]);
    assert_eq!(ps[1]["name"], "cnn");
    assert_eq!(ps[2]["name"], "int8");
    for (pl, file) in [(&ps[1], "cnn.safetensors"), (&ps[2], "q8.safetensors")] {
        assert_eq!(pl["config"]["trained"], false);
        assert_eq!(pl["training"]["stages"][0]["name"], "load");
        let o = common::eval_cli(&p(file), &data, &["--json"]);
        assert_ok(&o);
        let e: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(pl["accuracy"], e["accuracy"], "{file}");
    }
    let never = p("never");
    for (args, needles) in [
        (
            vec![
                "--cnn",
                "none",
                "--saved",
                float.as_str(),
                "--train-sizes",
                "100",
            ],
            vec!["--saved"],
        ),
        (
            vec!["--saved", "Cargo.toml"],
            vec!["Cargo.toml", "not a hogsvm model"],
        ),
    ] {
        assert_error(&compare_fixture(&never, &args), &needles);
    }
    assert!(!never.exists());
}
