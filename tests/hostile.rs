//! The defect classes of the hostile-input review (issue 25), one test each, through the real
//! binary: what is at an output path, outputs that are inputs, what a model file declares, its
//! checksum, non-finite values, memory a valid flag would ask for, thread counts, non-regular
//! inputs, phantom classes, the ONNX batch, signals, late checks and wrong messages.
//! docs/ROBUSTNESS.md lists each promise with its test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use common::{
    assert_error, assert_ok, bin, edit_meta, fashion_mnist, map_tensor, run, stderr, train_cli,
    train_fixture,
};

/// A quick classical model of the fixture (4x4 cells, 2x2 blocks, PCA 16) in `dir`.
fn classical(dir: &Path) -> PathBuf {
    let m = dir.join("m.safetensors");
    train_fixture(&m, &words("--cell 4 --block 2 --pca 16 --max-iter 50"));
    m
}

/// A one-epoch CNN of the fixture (channels 4, 8; hidden 8) in `dir`.
fn cnn(dir: &Path) -> PathBuf {
    let m = dir.join("cnn.safetensors");
    train_fixture(
        &m,
        &words("--model cnn --channels 4,8 --hidden 8 --epochs 1 --se none --threads 2"),
    );
    m
}

/// A command line's words.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mkfifo(p: &Path) -> bool {
    Command::new("mkfifo")
        .arg(p)
        .status()
        .is_ok_and(|s| s.success())
}

/// Class 1: a write replaced what was at `--out` (a device, a FIFO, a link) with a regular file.
#[cfg(unix)]
#[test]
fn outputs_write_through_devices_fifos_and_links() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let m = classical(dir.path());
    // /dev/null: every writer, and it stays a character device.
    let null = Path::new("/dev/null");
    for args in [
        vec!["export", "--model", s(&m), "--out", "/dev/null"],
        vec![
            "eval",
            "--model",
            s(&m),
            "--data",
            s(&fashion_mnist()),
            "--scores",
            "/dev/null",
        ],
        vec![
            "extract",
            "--data",
            s(&fashion_mnist()),
            "--out",
            "/dev/null",
            "--labels",
            "/dev/null",
        ],
    ] {
        assert_ok(&run(&args));
        assert!(std::fs::metadata(null)
            .unwrap()
            .file_type()
            .is_char_device());
    }
    // A symbolic link stays a link; the file it names is replaced.
    let real = dir.path().join("real.onnx");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.path().join("link.onnx");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_ok(&run(["export", "--model", s(&m), "--out", s(&link)]));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::metadata(&real).unwrap().len() > 100);
    // A FIFO gets the bytes through; it stays a FIFO.
    let fifo = dir.path().join("fifo.onnx");
    if mkfifo(&fifo) {
        let f2 = fifo.clone();
        let reader = std::thread::spawn(move || std::fs::read(f2).unwrap());
        assert_ok(&run(["export", "--model", s(&m), "--out", s(&fifo)]));
        assert_eq!(reader.join().unwrap(), std::fs::read(&real).unwrap());
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
    }
    // A folder is refused, with nothing left in it.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    assert_error(
        &run(["export", "--model", s(&m), "--out", s(&sub)]),
        &["is a folder"],
    );
    assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 0);
}

/// Class 2: an output path equal to an input overwrote it with exit 0.
#[test]
fn outputs_that_are_inputs_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let m = classical(dir.path());
    let before = std::fs::read(&m).unwrap();
    let fm = fashion_mnist();
    let alias = dir.path().join(".").join("m.safetensors");
    for (args, needle) in [
        (
            vec![
                "eval",
                "--model",
                s(&m),
                "--data",
                s(&fm),
                "--scores",
                s(&m),
            ],
            "--scores names the same file as the input --model",
        ),
        (
            vec!["export", "--model", s(&m), "--out", s(&alias)],
            "--out names the same file as the input --model",
        ),
        (
            vec![
                "quantize",
                "--model",
                s(&m),
                "--mode",
                "dynamic",
                "--out",
                s(&m),
            ],
            "--out names the same file as the input --model",
        ),
        (
            vec![
                "prune",
                "--model",
                s(&m),
                "--out",
                s(&m),
                "--finetune-epochs",
                "0",
            ],
            "--out names the same file as the input --model",
        ),
    ] {
        assert_error(&run(&args), &[needle]);
    }
    let j = dir.path().join("m2");
    assert_error(
        &train_cli(&fm, &j, &["--json", s(&j)]),
        &["--json and --out name the same file"],
    );
    assert_eq!(std::fs::read(&m).unwrap(), before);
    assert!(!j.exists());
}

/// Class 3: the loader allocated what the metadata declared before checking it against the
/// tensors (a 38 KB file declaring a 16777216-unit hidden layer aborted on a 52 GB allocation).
#[test]
fn declared_sizes_are_checked_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let m = cnn(dir.path());
    let bytes = std::fs::read(&m).unwrap();
    let fm = fashion_mnist();
    let cases = [
        ("/config/hidden", json!([16777216]), "expected [16777216]"),
        (
            "/input",
            json!({"rows": 10_000_000_000_u64, "cols": 10_000_000_000_u64}),
            "overflows",
        ),
        (
            "/config/channels",
            json!([4096, 4096, 4096, 4096]),
            "expected [4096]",
        ),
    ];
    for (i, (pointer, value, needle)) in cases.into_iter().enumerate() {
        let bad = dir.path().join(format!("bad{i}.safetensors"));
        let edited = edit_meta(&bytes, |v| *v.pointer_mut(pointer).unwrap() = value);
        std::fs::write(&bad, edited).unwrap();
        let o = run(["eval", "--model", s(&bad), "--data", s(&fm)]);
        assert_error(&o, &[s(&bad), needle]);
    }
}

/// Class 4: the checksum covered the tensors only; a flipped digit of the normalisation, a class
/// name or an int8 zero point loaded with exit 0.
#[test]
fn a_flipped_metadata_character_is_a_checksum_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = cnn(dir.path());
    let q = dir.path().join("q.safetensors");
    assert_ok(&run([
        "quantize",
        "--model",
        s(&m),
        "--calib",
        s(&fashion_mnist()),
        "--out",
        s(&q),
    ]));
    for (file, pattern) in [
        (&m, &b"\\\"mean\\\":0."[..]),
        (&m, b"Trouser"),
        (&q, b"\\\"zero_point\\\":"),
    ] {
        let mut bytes = std::fs::read(file).unwrap();
        let at = bytes
            .windows(pattern.len())
            .position(|w| w == pattern)
            .expect("in header");
        // The character after the pattern (a digit, or the class name's next letter).
        let i = at + pattern.len() - 1 + usize::from(pattern != b"Trouser");
        bytes[i] = if bytes[i] == b'1' { b'2' } else { b'1' };
        let bad = dir.path().join("bad.safetensors");
        std::fs::write(&bad, &bytes).unwrap();
        assert_error(
            &run(["predict", "--model", s(&bad), s(&fashion_mnist())]),
            &["checksum mismatch"],
        );
    }
}

/// Class 5: non-finite values loaded (a NaN SVM weight predicted NaN and label 0, exit 0), and a
/// CNN whose output overflowed printed a "probability" of -3.4e38.
#[test]
fn non_finite_weights_and_outputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fm = fashion_mnist();
    let m = classical(dir.path());
    let bytes = std::fs::read(&m).unwrap();
    for (tensor, v) in [("svm.weights", f32::NAN), ("svm.intercepts", f32::INFINITY)] {
        let bad = dir.path().join("bad.safetensors");
        std::fs::write(&bad, map_tensor(&bytes, tensor, |_| v)).unwrap();
        assert_error(
            &run(["eval", "--model", s(&bad), "--data", s(&fm)]),
            &[&format!("tensor `{tensor}` holds NaN or infinite values")],
        );
    }
    // Finite weights whose products overflow: every output is infinite or NaN.
    let c = cnn(dir.path());
    let huge = map_tensor(&std::fs::read(&c).unwrap(), "out.weight", |v| {
        v.signum() * 3e38
    });
    let bad = dir.path().join("huge.safetensors");
    std::fs::write(&bad, huge).unwrap();
    assert_error(
        &run(["eval", "--model", s(&bad), "--data", s(&fm)]),
        &["not a finite number"],
    );
}

/// Class 6: valid flags asked for more memory than the machine has and aborted (PCA's d x d
/// covariance, the random Fourier weights, many extra cells).
#[test]
fn valid_flags_too_large_for_memory_are_refused_or_cheap() {
    let dir = tempfile::tempdir().unwrap();
    // Six 128x128 images, PCA 2: ~150,000 HOG features, the data-matrix PCA (no 67 GB matrix).
    let root = dir.path().join("six");
    for i in 0..6 {
        common::gray_png(
            &root.join(format!("{}/{i}.png", i % 2)),
            128,
            128,
            |x, y| ((x * (i + 3) + y * 7) % 251) as u8,
        );
    }
    let m = dir.path().join("pca.safetensors");
    assert_ok(&train_cli(
        &root,
        &m,
        &["--test-split", "0.34", "--pca", "2"],
    ));
    // Under a stated budget, the kernel maps and the features are refused up front, naming the
    // stage and the budget.
    let budget = |args: &[&str]| {
        bin()
            .args(args)
            .env("HOGSVM_MEMORY_BUDGET", "2G")
            .output()
            .unwrap()
    };
    let out = dir.path().join("x.safetensors");
    let fm = fashion_mnist();
    let o = budget(&[
        "train",
        "--data",
        s(&fm),
        "--out",
        s(&out),
        "--rff",
        "1048576",
    ]);
    assert_error(&o, &["`rff` stage", "HOGSVM_MEMORY_BUDGET=2G"]);
    let mut many = vec!["train", "--data", s(&fm), "--out", s(&out)];
    for _ in 0..64 {
        many.extend(["--extra-cell", "1"]);
    }
    assert_error(&budget(&many), &["`hog` stage", "more than the budget"]);
    let o = budget(&[
        "train",
        "--data",
        s(&fm),
        "--out",
        s(&out),
        "--model",
        "cnn",
        "--hidden",
        "16777216",
    ]);
    assert_error(&o, &["a CNN of", "more than the budget"]);
    assert!(!out.exists());
    // An unreadable budget is an error naming the variable.
    let o = bin()
        .args(["train", "--data", s(&fm), "--out", s(&out), "--rff", "64"])
        .env("HOGSVM_MEMORY_BUDGET", "lots")
        .output()
        .unwrap();
    assert_error(&o, &["HOGSVM_MEMORY_BUDGET"]);
}

/// Class 7: `--threads 100000` started that many OS threads.
#[test]
fn thread_counts_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.npy");
    let o = run([
        "extract",
        "--data",
        s(&fashion_mnist()),
        "--out",
        s(&out),
        "--threads",
        "100000",
    ]);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(err.contains("100000 threads requested; using"), "{err}");
    assert_eq!(err.matches("threads requested").count(), 1, "{err}");
}

/// Class 9: non-regular inputs were read without bound (`/dev/zero` until memory ran out), a
/// FIFO hung for ever, and `predict` said "no such file or folder" of them.
#[cfg(unix)]
#[test]
fn non_regular_inputs_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fm = fashion_mnist();
    let fifo = dir.path().join("fifo");
    let have_fifo = mkfifo(&fifo);
    let mut paths = vec![PathBuf::from("/dev/zero")];
    if have_fifo {
        paths.push(fifo.clone());
    }
    for p in &paths {
        let kind = if p == &fifo {
            "is a FIFO"
        } else {
            "is a character device"
        };
        assert_error(&run(["eval", "--model", s(p), "--data", s(&fm)]), &[kind]);
        assert_error(&run(["predict", "--model", s(p), s(&fm)]), &[kind]);
        let m = dir.path().join("m.st");
        assert_error(
            &run([
                "compare",
                "--data",
                s(&fm),
                "--config",
                s(p),
                "--out",
                s(&m),
            ]),
            &[kind],
        );
        let model = classical(dir.path());
        assert_error(&run(["predict", "--model", s(&model), s(p)]), &[kind]);
    }
}

/// Class 11: `export --batch` of 2^63 or more wrote a negative dimension.
#[test]
fn onnx_batch_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let m = classical(dir.path());
    let out = dir.path().join("m.onnx");
    for b in ["9223372036854775808", "18446744073709551615", "0"] {
        assert_error(
            &run(["export", "--model", s(&m), "--out", s(&out), "--batch", b]),
            &["batch"],
        );
    }
    assert!(!out.exists());
    assert_ok(&run([
        "export",
        "--model",
        s(&m),
        "--out",
        s(&out),
        "--batch",
        "9223372036854775807",
    ]));
}

/// Class 12: an interrupted `extract` left a hidden temporary file as large as the output.
/// Its output here is a FIFO nobody reads, so the features sit finished in their temporary file
/// (in $TMPDIR for a FIFO) while `extract` waits to pass them on: then the signal comes.
#[cfg(unix)]
#[test]
fn a_signal_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("f.npy");
    if !mkfifo(&fifo) {
        return;
    }
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    for sig in ["TERM", "INT", "HUP"] {
        let mut child = bin()
            .args([
                "extract",
                "--data",
                s(&fashion_mnist()),
                "--cell",
                "4",
                "--block",
                "2",
            ])
            .arg("--labels")
            .arg(dir.path().join("labels.npy"))
            .arg("--out")
            .arg(&fifo)
            .env("TMPDIR", &tmp)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let full = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len()) > 1_000_000;
        while !std::fs::read_dir(&tmp)
            .unwrap()
            .any(|e| full(&e.unwrap().path()))
        {
            assert!(
                start.elapsed().as_secs() < 120,
                "no temporary file appeared"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Command::new("kill")
            .args([format!("-{sig}"), child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{sig}: {status:?}");
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{sig}: {left:?}");
        assert!(!dir.path().join("labels.npy").exists());
    }
}

/// Class 13: late checks lost work (a missing output folder reported after training; a
/// learning-curve size below a pipeline's PCA count failed after all training; a failed
/// compare left an empty report folder).
#[test]
fn checks_come_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let fm = fashion_mnist();
    let o = train_cli(
        &fm,
        &dir.path().join("no/such/m.safetensors"),
        &["--model", "cnn"],
    );
    assert_error(&o, &["does not exist"]);
    assert!(!stderr(&o).contains("epoch"), "{}", stderr(&o));
    let report = dir.path().join("report");
    let o = run([
        "compare",
        "--data",
        s(&fm),
        "--out",
        s(&report),
        "--classical",
        "pca=64",
        "--cnn",
        "none",
        "--train-sizes",
        "50,100",
    ]);
    assert_error(&o, &["at 50 training images", "pca"]);
    assert!(!stderr(&o).contains("accuracy"), "{}", stderr(&o));
    assert!(!report.exists());
    // An image folder without a test set is refused before its images are read (the broken
    // image would be the error otherwise).
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(photos.join("a")).unwrap();
    std::fs::write(photos.join("a/broken.png"), b"not a png").unwrap();
    let o = run([
        "train",
        "--data",
        s(&photos),
        "--out",
        s(&dir.path().join("m.safetensors")),
    ]);
    assert_error(&o, &["no test set", "--test-split"]);
}

/// Class 14: wrong or missing messages.
#[test]
fn messages_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let fm = fashion_mnist();
    let c = cnn(dir.path());
    let q = dir.path().join("q.safetensors");
    assert_ok(&run([
        "quantize",
        "--model",
        s(&c),
        "--mode",
        "dynamic",
        "--out",
        s(&q),
    ]));
    let p = dir.path().join("p.safetensors");
    assert_error(
        &run(["prune", "--model", s(&q), "--out", s(&p)]),
        &["this one is a cnn-int8 model"],
    );
    assert_error(
        &run([
            "quantize",
            "--model",
            s(&c),
            "--mode",
            "dynamic",
            "--calib",
            s(&fm),
            "--out",
            s(&p),
        ]),
        &["--calib", "not used by --mode dynamic"],
    );
    let r = dir.path().join("r");
    assert_error(
        &run([
            "compare",
            "--data",
            s(&fm),
            "--out",
            s(&r),
            "--classical",
            "pca=16,c=1,PCA=8",
        ]),
        &["`PCA` is given twice"],
    );
    // More Nystroem landmarks than training rows: a warning, and the model says what it used.
    let m = dir.path().join("ny.safetensors");
    let o = train_cli(
        &fm,
        &m,
        &["--cell", "4", "--block", "2", "--nystroem", "5000"],
    );
    assert_ok(&o);
    assert!(
        stderr(&o).contains("nystroem: 5000 landmarks asked for"),
        "{}",
        stderr(&o)
    );
    let meta = hogsvm::model::container::metadata(&std::fs::read(&m).unwrap()).unwrap();
    assert_eq!(meta["config"]["nystroem"]["dim"], 2000);
}
