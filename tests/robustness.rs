//! Hostile inputs through the real binary: each ends in one clear error line (exit 2, naming
//! the file and the reason) or a documented skip — never a panic, a hang or a half-written
//! file. docs/ROBUSTNESS.md lists each case with the test that checks it.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;

use common::{
    assert_error, assert_ok, eval_cli, fashion_mnist, fixtures, npy_rows, predict_cli, run, stderr,
    temp_data, train_cli, train_fixture, with_format_version,
};
use ndarray::{Array1, Array2};
use ndarray_npy::{read_npy, write_npy};

/// `extract --cell 4 --block 2` with more arguments.
fn extract(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut a = vec!["--cell", "4", "--block", "2"];
    a.extend_from_slice(extra);
    common::extract_cli(data, out, &a)
}

/// A quick classical model of the fixture at `model`: 4x4 cells, 2x2 blocks, no square root,
/// at most `max_iter` solver iterations.
fn train_quick(model: &Path, max_iter: &str) {
    train_fixture(
        model,
        &[
            "--cell",
            "4",
            "--block",
            "2",
            "--no-transform-sqrt",
            "--max-iter",
            max_iter,
        ],
    );
}

/// A `w x h` grayscale test PNG.
fn gray_png(path: &Path, w: u32, h: u32) {
    common::gray_png(path, w, h, |x, y| (x * 13 + y * 7) as u8);
}

/// A PNG whose header declares `w x h` but carries almost no data.
fn png_bomb(path: &Path, w: u32, h: u32) {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        v.extend_from_slice(&c);
        v.extend_from_slice(&crc32fast::hash(&c).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit gray
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    std::fs::write(path, v).unwrap();
}

#[test]
fn broken_image_files_are_named_errors_or_skipped() {
    let (dir, root) = temp_data();
    gray_png(&root.join("a/good.png"), 28, 28);
    gray_png(&root.join("b/good.png"), 28, 28);
    let mut full = Vec::new();
    image::GrayImage::new(28, 28)
        .write_to(
            &mut std::io::Cursor::new(&mut full),
            image::ImageFormat::Png,
        )
        .unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero.png", vec![]),
        ("truncated.png", full[..full.len() / 2].to_vec()),
        ("text.png", b"this is not an image at all".to_vec()),
        ("garbage.jpg", vec![0xff, 0xd8, 0xff, 0x00, 0x13, 0x37]),
    ];
    let out = dir.path().join("f.npy");
    std::fs::write(&out, b"previous content").unwrap();
    for (name, bytes) in &cases {
        let p = root.join("a").join(name);
        std::fs::write(&p, bytes).unwrap();
        let o = extract(&root, &out, &[]);
        assert_error(&o, &[name]);
        // The earlier output file is untouched, and no temporary file is left.
        assert_eq!(std::fs::read(&out).unwrap(), b"previous content");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        std::fs::remove_file(&p).unwrap();
    }
    for (name, bytes) in &cases {
        std::fs::write(root.join("a").join(name), bytes).unwrap();
    }
    let o = extract(&root, &out, &["--skip-invalid"]);
    assert_ok(&o);
    let e = stderr(&o);
    assert_eq!(
        e.matches("warning: skipped").count(),
        cases.len() + 1,
        "{e}"
    );
    assert!(
        e.contains(&format!("skipped {} file(s)", cases.len())),
        "{e}"
    );
    assert_eq!(npy_rows(&out), 2);
}

#[test]
fn decompression_bomb_is_refused_without_allocating() {
    let (dir, root) = temp_data();
    gray_png(&root.join("a/ok.png"), 28, 28);
    png_bomb(&root.join("a/bomb.png"), 100_000, 100_000);
    let o = extract(&root, &dir.path().join("f.npy"), &[]);
    assert_error(&o, &["bomb.png"]);
    // Within the dimension limit but lying about its data: an error too.
    png_bomb(&root.join("a/bomb.png"), 5000, 5000);
    let o = extract(&root, &dir.path().join("f.npy"), &[]);
    assert_error(&o, &["bomb.png"]);
    std::fs::remove_file(root.join("a/bomb.png")).unwrap();
    // Regression (fuzzer, image_decode target): 799 bytes of JPEG declaring 7168 x 7168
    // decoded for seconds; it is now refused before decoding.
    std::fs::copy(
        fixtures().join("hostile/fuzz-timeout-jpeg-7168x7168.jpg"),
        root.join("a/fuzz.jpg"),
    )
    .unwrap();
    let t = std::time::Instant::now();
    let o = extract(&root, &dir.path().join("f.npy"), &[]);
    assert_error(&o, &["fuzz.jpg", "decompression bomb"]);
    assert!(t.elapsed().as_secs_f64() < 5.0, "took {:?}", t.elapsed());
}

#[test]
fn unusual_image_kinds_become_gray() {
    let (dir, root) = temp_data();
    std::fs::create_dir_all(root.join("x")).unwrap();
    for f in ["cmyk.jpg", "palette.png"] {
        std::fs::copy(fixtures().join("hostile").join(f), root.join("x").join(f)).unwrap();
    }
    image::RgbaImage::from_pixel(28, 28, image::Rgba([10, 200, 30, 128]))
        .save(root.join("x/rgba.PNG"))
        .unwrap();
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(28, 28, |x, _| {
        image::Luma([x as u16 * 2000])
    })
    .save(root.join("x/sixteen.Png"))
    .unwrap();
    gray_png(&root.join("x/odd.name.with.dots.JpEg.png"), 28, 28);
    let out = dir.path().join("f.npy");
    let o = extract(&root, &out, &[]);
    assert_ok(&o);
    assert_eq!(npy_rows(&out), 5);
}

#[test]
fn unicode_and_non_utf8_file_names_work() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("données");
    gray_png(&root.join("猫/émile.png"), 28, 28);
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"bad-\xff\xfe.png");
        gray_png(&root.join("猫").join(name), 28, 28);
    }
    gray_png(&root.join("狗/x.png"), 28, 28);
    let out = dir.path().join("f.npy");
    let o = extract(&root, &out, &[]);
    assert_ok(&o);
    assert_eq!(npy_rows(&out), if cfg!(unix) { 3 } else { 2 });
}

#[test]
fn folder_shapes_one_class_empty_classes_no_images() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.npy");
    // No images at all.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("a")).unwrap();
    std::fs::write(empty.join("a/readme.txt"), "x").unwrap();
    assert_error(&extract(&empty, &out, &[]), &["no images found"]);
    // No class folders.
    let flat = dir.path().join("flat");
    gray_png(&flat.join("x.png"), 28, 28);
    assert_error(&extract(&flat, &out, &[]), &["no class folders"]);
    // One class: extract works; train says why it cannot.
    let one = dir.path().join("one");
    for i in 0..6 {
        gray_png(&one.join(format!("only/{i}.png")), 28, 28);
    }
    let o = extract(&one, &out, &[]);
    assert_ok(&o);
    let o = train_cli(
        &one,
        &dir.path().join("m.safetensors"),
        &["--test-split", "0.3"],
    );
    assert_error(&o, &["2 classes"]);
    // Empty class folders (defect class: phantom classes): one warning line, not classes.
    for i in 0..300 {
        std::fs::create_dir_all(one.join(format!("zzz-empty-{i:03}"))).unwrap();
    }
    let o = extract(&one, &out, &[]);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("300 class(es) without images left out (`zzz-empty-000` and 299 more)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // Two real classes beside them: two classes are trained, not 302.
    for i in 0..6 {
        gray_png(&one.join(format!("other/{i}.png")), 28, 28);
    }
    let m = dir.path().join("m2.safetensors");
    assert_ok(&train_cli(&one, &m, &["--test-split", "0.3"]));
    let model = hogsvm::model::load_any(&m).unwrap();
    assert_eq!(model.classifier().class_names(), ["only", "other"]);
}

fn idx_bytes(magic: [u8; 4], dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

#[test]
fn lying_idx_files_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("f.npy");
    let labels_ok = idx_bytes([0, 0, 8, 1], &[2], &[0, 1]);
    let write = |images: Vec<u8>, labels: &[u8]| {
        std::fs::write(d.join("train-images-idx3-ubyte"), images).unwrap();
        std::fs::write(d.join("train-labels-idx1-ubyte"), labels).unwrap();
    };
    // Header says 3 images, data holds 2.
    write(
        idx_bytes([0, 0, 8, 3], &[3, 28, 28], &[7; 2 * 784]),
        &labels_ok,
    );
    assert_error(
        &extract(d, &out, &[]),
        &["train-images-idx3-ubyte", "holds only"],
    );
    // Enormous declared counts.
    write(
        idx_bytes([0, 0, 8, 3], &[u32::MAX, 60000, 60000], &[]),
        &labels_ok,
    );
    assert_error(
        &extract(d, &out, &[]),
        &["train-images-idx3-ubyte", "more than"],
    );
    // Wrong magic.
    write(
        idx_bytes([1, 2, 8, 3], &[2, 28, 28], &[7; 2 * 784]),
        &labels_ok,
    );
    assert_error(&extract(d, &out, &[]), &["magic"]);
    // Label / image count mismatch.
    write(
        idx_bytes([0, 0, 8, 3], &[2, 28, 28], &[7; 2 * 784]),
        &idx_bytes([0, 0, 8, 1], &[3], &[0, 1, 1]),
    );
    assert_error(&extract(d, &out, &[]), &["3 labels for 2 images"]);
    // A gzip file that is not gzip inside.
    std::fs::remove_file(d.join("train-images-idx3-ubyte")).unwrap();
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), [0x1f, 0x8b, 1, 2, 3]).unwrap();
    let o = extract(d, &out, &[]);
    assert_error(&o, &["train-images-idx3-ubyte.gz"]);
    assert!(!out.exists());
}

#[test]
fn damaged_models_and_mismatched_inputs_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    train_quick(&model, "20");
    let bytes = std::fs::read(&model).unwrap();
    let eval = |m: &Path| eval_cli(m, &fashion_mnist(), &[]);
    assert!(eval(&model).status.success());
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, &bytes[..bytes.len() - 100]).unwrap();
    assert_error(&eval(&bad), &["bad.safetensors", "not a hogsvm model"]);
    let mut flipped = bytes.clone();
    let n = flipped.len() - 10;
    flipped[n] ^= 1;
    std::fs::write(&bad, &flipped).unwrap();
    assert_error(&eval(&bad), &["bad.safetensors", "checksum"]);
    std::fs::write(&bad, b"GIF89a not a model").unwrap();
    assert_error(&eval(&bad), &["bad.safetensors"]);
    // A newer format version (the header is JSON: swap the digit in place).
    std::fs::write(&bad, with_format_version(&bytes, b'7')).unwrap();
    assert_error(&eval(&bad), &["bad.safetensors", "newer", "upgrade hogsvm"]);
    assert_error(
        &eval(&dir.path().join("missing.safetensors")),
        &["missing.safetensors"],
    );
    // Images of another size than the model's, in an image folder with other classes.
    let other = dir.path().join("other");
    gray_png(&other.join("a/x.png"), 40, 40);
    assert_error(
        &eval_cli(&model, &other, &[]),
        &["class `a`", "not one of the model's"],
    );
    // One size rule: predict refuses an image of another size, naming the file and both
    // sizes, unless the user asks for --resize.
    assert_error(
        &predict_cli(&model, &other, &[]),
        &["x.png", "40x40", "28x28", "--resize"],
    );
    assert_ok(&predict_cli(&model, &other, &["--resize"]));
}

#[test]
fn unwritable_outputs_are_errors_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = fashion_mnist();
    assert_error(
        &extract(&data, Path::new("/proc/hogsvm-test.npy"), &[]),
        &["/proc/hogsvm-test.npy"],
    );
    assert_error(
        &extract(&data, &dir.path().join("no/such/dir/f.npy"), &[]),
        &["does not exist"],
    );
    // The output path is a folder.
    let o = extract(&data, dir.path(), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn images_too_small_for_one_block() {
    let (dir, root) = temp_data();
    gray_png(&root.join("a/tiny.png"), 7, 5);
    let o = extract(&root, &dir.path().join("f.npy"), &[]);
    assert_error(&o, &["too small", "8x8"]);
}

#[test]
fn npy_feature_inputs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fm = fashion_mnist();
    let model = d.join("m.safetensors");
    train_quick(&model, "50");
    let x = d.join("x.npy");
    let o = extract(&fm, &x, &["--split", "test"]);
    assert_ok(&o);
    let y = d.join("x_labels.npy");
    let eval_json = |features: &Path, labels: &Path| {
        run([
            OsStr::new("eval"),
            "--json".as_ref(),
            "--model".as_ref(),
            model.as_os_str(),
            "--features".as_ref(),
            features.as_os_str(),
            "--labels".as_ref(),
            labels.as_os_str(),
        ])
    };
    // Features from `extract` give exactly the report `eval --data` gives.
    let a = eval_json(&x, &y);
    assert!(a.status.success(), "{}", stderr(&a));
    let b = eval_cli(&model, &fm, &["--json"]);
    assert!(b.status.success(), "{}", stderr(&b));
    assert_eq!(a.stdout, b.stdout);
    let bad = d.join("bad.npy");
    let check = |features: &Path, labels: &Path, needles: &[&str]| {
        assert_error(&eval_json(features, labels), needles);
    };
    // NaN / infinity.
    let mut feats: Array2<f32> = read_npy(&x).unwrap();
    feats[[7, 3]] = f32::NAN;
    write_npy(&bad, &feats).unwrap();
    check(&bad, &y, &["bad.npy", "row 7, column 3"]);
    // Wrong dtype and shape.
    write_npy(&bad, &Array2::<i32>::zeros((500, 1296))).unwrap();
    check(&bad, &y, &["bad.npy", "float32"]);
    write_npy(&bad, &Array2::<f32>::zeros((500, 81))).unwrap();
    check(&bad, &y, &["1296 columns", "81 columns"]);
    // Labels that do not match.
    write_npy(&bad, &Array1::<i64>::zeros(3)).unwrap();
    check(&x, &bad, &["500 (one per row)"]);
    write_npy(&bad, &Array1::<i64>::from_elem(500, 12)).unwrap();
    check(&x, &bad, &["12"]);
}
