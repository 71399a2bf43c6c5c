//! The real `hogsvm` binary, run in temporary folders.

mod common;

use std::path::Path;

use common::{
    assert_error, assert_ok, extract_cli, fashion_mnist, names, npy_rows, run, stderr, stdout,
    temp_data,
};
use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;

/// A `w x h` test PNG whose pixels depend on `seed`.
fn png(path: &Path, w: u32, h: u32, seed: u8) {
    common::gray_png(path, w, h, |x, y| {
        ((x * 7 + y * 13) as u8).wrapping_mul(seed)
    });
}

#[test]
fn extract_idx_fixtures_writes_npy_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("feats.npy");
    let o = extract_cli(
        &fashion_mnist(),
        &out,
        &["--cell", "4", "--block", "2", "--threads", "2"],
    );
    assert_ok(&o);
    let x: Array2<f32> = read_npy(&out).unwrap();
    let y: Array1<i64> = read_npy(dir.path().join("feats_labels.npy")).unwrap();
    assert_eq!(x.dim(), (2000, 1296));
    assert_eq!(y.len(), 2000);
    assert!(y.iter().all(|&l| (0..10).contains(&l)));
    let stdout = stdout(&o);
    assert!(
        stdout.contains("extracted 2000 images") && stdout.contains("1296 dims"),
        "{stdout}"
    );
    assert!(stdout.contains("images/s"), "{stdout}");
    // No progress bar when stderr is not a terminal.
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    // The test split and an explicit labels path.
    let labels = dir.path().join("y.npy");
    let o = extract_cli(
        &fashion_mnist(),
        &out,
        &["--split", "test", "--labels", labels.to_str().unwrap()],
    );
    assert_ok(&o);
    let x: Array2<f32> = read_npy(&out).unwrap();
    assert_eq!(x.dim(), (500, 81)); // skimage defaults on 28x28: one 3x3 block of 8x8 cells
    let y: Array1<i64> = read_npy(&labels).unwrap();
    assert_eq!(y.len(), 500);
}

#[test]
fn extract_is_identical_for_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let mut outs = Vec::new();
    for t in ["1", "2"] {
        let out = dir.path().join(format!("f{t}.npy"));
        let o = extract_cli(
            &fashion_mnist(),
            &out,
            &["--cell", "4", "--block", "2", "--threads", t],
        );
        assert_ok(&o);
        outs.push(std::fs::read(&out).unwrap());
    }
    assert_eq!(outs[0], outs[1]);
}

#[test]
fn image_folder_classes_nested_and_ignored_files() {
    let (dir, root) = temp_data();
    png(&root.join("cat/a.png"), 32, 32, 3);
    png(&root.join("cat/deep/b.PNG"), 32, 32, 5);
    png(&root.join("dog/c.png"), 32, 32, 7);
    std::fs::write(root.join("dog/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("README"), "top-level files are not classes").unwrap();
    let out = dir.path().join("f.npy");
    assert_ok(&extract_cli(&root, &out, &[]));
    assert_eq!(npy_rows(&out), 3);
    let y: Array1<i64> = read_npy(dir.path().join("f_labels.npy")).unwrap();
    assert_eq!(y.to_vec(), vec![0, 0, 1]);
}

#[test]
fn corrupt_image_is_an_error_naming_it_or_skipped_with_warning() {
    let (dir, root) = temp_data();
    png(&root.join("a/ok.png"), 24, 24, 3);
    std::fs::write(root.join("a/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    png(&root.join("b/ok.png"), 24, 24, 9);
    let out = dir.path().join("f.npy");
    assert_error(&extract_cli(&root, &out, &[]), &["broken.png"]);
    assert!(!out.exists());
    let o = extract_cli(&root, &out, &["--skip-invalid"]);
    assert_ok(&o);
    let e = stderr(&o);
    assert!(
        e.contains("warning: skipped") && e.contains("broken.png"),
        "{e}"
    );
    assert!(e.contains("skipped 1 file(s)"), "{e}");
    assert_eq!(npy_rows(&out), 2);
}

#[test]
fn mixed_sizes_need_resize() {
    let (dir, root) = temp_data();
    png(&root.join("a/1.png"), 30, 30, 3);
    png(&root.join("a/2.png"), 40, 32, 3);
    let out = dir.path().join("f.npy");
    assert_error(&extract_cli(&root, &out, &[]), &["--resize"]);
    let o = extract_cli(
        &root,
        &out,
        &["--resize", "64x48", "--cell", "8", "--block", "2"],
    );
    assert_ok(&o);
    let x: Array2<f32> = read_npy(&out).unwrap();
    // 48 rows x 64 cols: 6x8 cells of 8x8, 5x7 blocks of 2x2, 9 bins.
    assert_eq!(x.dim(), (2, 5 * 7 * 2 * 2 * 9));
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.npy");
    let f = fashion_mnist();
    // (data, out, more arguments, what the error names)
    let cases: [(&Path, &Path, &[&str], &str); 6] = [
        (Path::new("/no/such/place"), &out, &[], "/no/such/place"),
        (&f, &out, &["--cell", "0"], "cell_rows"),
        (&f, &out, &["--cell", "16"], "too small"),
        (&f, Path::new("/no/such/dir/f.npy"), &[], "does not exist"),
        (&f, &out, &["--block-norm", "L3"], "block_norm"),
        (&f, &out, &["--resize", "0x10"], "invalid size"),
    ];
    for (data, to, more, needle) in cases {
        assert_error(&extract_cli(data, to, more), &[needle]);
    }
    assert!(!out.exists());
}

#[test]
fn hog_image_writes_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.png");
    png(&src, 64, 48, 11);
    let out = dir.path().join("hog.png");
    let o = run([
        "hog-image",
        src.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cell",
        "8",
        "--block",
        "2",
    ]);
    assert_ok(&o);
    let img = image::open(&out).unwrap().to_luma8();
    assert_eq!(img.dimensions(), (64, 48));
    assert!(img.pixels().any(|p| p.0[0] > 0), "blank visualisation");
}

#[test]
fn help_lists_every_subcommand() {
    let s = stdout(&run(["--help"]));
    for sub in ["extract", "hog-image", "bench-hog"] {
        assert!(s.contains(sub), "{sub} missing from --help");
    }
    let s = stdout(&run(["extract", "--help"]));
    for opt in [
        "--data",
        "--out",
        "--orientations",
        "--cell-rows",
        "--block-norm",
        "--transform-sqrt",
        "--resize",
        "--threads",
        "--skip-invalid",
    ] {
        assert!(s.contains(opt), "{opt} missing from extract --help");
    }
}

/// `train --normalize l2`: the per-sample normaliser runs after HOG (every feature row the SVM
/// sees has unit length), is recorded in the model file and timed in `--json`'s stages, and the
/// saved model evaluates to the accuracy `train` reported. A bad norm is a one-line error.
#[test]
fn train_normalize_l2_is_a_stage() {
    use hogsvm::classifier::Classifier;
    use hogsvm::data::Split;
    use hogsvm::pipeline::stages::normalize::Norm;
    use hogsvm::pipeline::ClassicalModel;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let json = dir.path().join("r.json");
    let o = common::train_cli(
        &fashion_mnist(),
        &model,
        &[
            "--normalize",
            "l2",
            "--threads",
            "2",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_ok(&o);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(names(&r["train"]["stages"]), ["hog", "normalize", "svm"]);
    assert_eq!(r["train"]["dims"], r["train"]["hog_features"]);
    let m = ClassicalModel::load(&model).unwrap();
    assert_eq!(m.normalize(), Some(&Norm::L2));
    let test = common::split(Split::Test);
    let x = m.features(&test).unwrap();
    for row in x.rows() {
        let n: f32 = row.dot(&row).sqrt();
        assert!((n - 1.0).abs() < 1e-5, "row norm {n}");
    }
    let acc = m.evaluate(&test).unwrap().accuracy;
    assert_eq!(Some(acc), r["accuracy"].as_f64());
    let o = common::train_cli(&fashion_mnist(), &model, &["--normalize", "l3"]);
    assert_error(&o, &["normalize", "l3"]);
}

/// Every classical flag given to `train --model cnn` is refused by name (they used to be checked
/// one by one, and some, like --tol, were silently ignored).
#[test]
fn classical_flags_are_refused_for_the_cnn() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    for (flags, named) in [
        (&["--tol", "0.1"][..], "--tol"),
        (&["--no-transform-sqrt"][..], "--no-transform-sqrt"),
        (&["--extra-cell", "7"][..], "--extra-cell"),
        (&["--normalize", "l2"][..], "--normalize"),
    ] {
        let mut args = vec!["--model", "cnn", "--epochs", "1"];
        args.extend_from_slice(flags);
        let o = common::train_cli(&fashion_mnist(), &model, &args);
        assert_error(&o, &[named, "classical option"]);
    }
    assert!(!model.exists());
}
