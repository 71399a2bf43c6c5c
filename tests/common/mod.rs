//! Helpers shared by the integration tests (`mod common;` in each): the real `hogsvm` binary,
//! fixture paths, fixture splits, PNG folders, thread pools and model-file surgery.

// Each test crate uses only some of these.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hogsvm::data::{load, Dataset, LoadOptions, Split};

/// The `hogsvm` binary cargo built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hogsvm"))
}

/// Run the binary with `args` and wait for it.
pub fn run<I>(args: I) -> Output
where
    I: IntoIterator,
    I::Item: AsRef<OsStr>,
{
    bin().args(args).output().expect("run hogsvm")
}

/// The crate root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// fixtures/.
pub fn fixtures() -> PathBuf {
    root().join("fixtures")
}

/// fixtures/fashion-mnist: 2,000 training and 500 test images in IDX files.
pub fn fashion_mnist() -> PathBuf {
    fixtures().join("fashion-mnist")
}

/// One split of the Fashion-MNIST fixture.
pub fn split(s: Split) -> Dataset {
    load(
        &fashion_mnist(),
        &LoadOptions {
            split: s,
            ..Default::default()
        },
    )
    .unwrap()
    .0
}

/// The binary's stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The binary's stdout, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The run succeeded; stderr is the message when it did not.
pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// `needle` is in `text` (which is the message when it is not).
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "`{needle}` not in: {text}");
}

/// Exit code 2, exactly one line on stderr starting `hogsvm: error: `, no panic, and every
/// needle in it.
pub fn assert_error(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "not one line: {e}");
    assert!(e.starts_with("hogsvm: error: "), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    for n in needles {
        assert!(e.contains(n), "`{n}` not in: {e}");
    }
}

/// `hogsvm SUBCOMMAND --data DATA --out OUT` with more arguments.
pub fn data_out_cli(subcommand: &str, data: &Path, out: &Path, more: &[&str]) -> Output {
    bin()
        .args([subcommand, "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(more)
        .output()
        .unwrap()
}

/// `hogsvm train --data DATA --out OUT` with more arguments.
pub fn train_cli(data: &Path, out: &Path, more: &[&str]) -> Output {
    data_out_cli("train", data, out, more)
}

/// `hogsvm train` on the fixture's training split, writing `out` with more arguments; it must
/// succeed. Its output.
pub fn train_fixture(out: &Path, more: &[&str]) -> Output {
    let o = train_cli(&fashion_mnist(), out, more);
    assert_ok(&o);
    o
}

/// A temporary folder, and the path of a `data` folder in it (not created) for an image tree.
pub fn temp_data() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    (dir, root)
}

/// Rows of the f32 `.npy` matrix at `path`.
pub fn npy_rows(path: &Path) -> usize {
    let x: ndarray::Array2<f32> = ndarray_npy::read_npy(path).unwrap();
    x.nrows()
}

/// The `name` of each object in the JSON array `list` (a report's stages).
pub fn names(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

/// `hogsvm extract --data DATA --out OUT` with more arguments.
pub fn extract_cli(data: &Path, out: &Path, more: &[&str]) -> Output {
    data_out_cli("extract", data, out, more)
}

/// `hogsvm eval --model MODEL --data DATA` with more arguments.
pub fn eval_cli(model: &Path, data: &Path, more: &[&str]) -> Output {
    bin()
        .args(["eval", "--model"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .args(more)
        .output()
        .unwrap()
}

/// `hogsvm predict --model MODEL INPUT` with more arguments (before the input).
pub fn predict_cli(model: &Path, input: &Path, more: &[&str]) -> Output {
    bin()
        .arg("predict")
        .args(more)
        .arg("--model")
        .arg(model)
        .arg(input)
        .output()
        .unwrap()
}

/// A `w x h` grayscale PNG at `path` with pixels `ink(x, y)`, creating its folder.
pub fn gray_png(path: &Path, w: u32, h: u32, ink: impl Fn(u32, u32) -> u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([ink(x, y)]))
        .save(path)
        .unwrap();
}

/// Image `i` of `ds` as a PNG at `path`, creating its folder.
pub fn save_image(ds: &Dataset, i: usize, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_raw(ds.cols as u32, ds.rows as u32, ds.image(i).to_vec())
        .unwrap()
        .save(path)
        .unwrap();
}

/// The number in a file name like `folder/017.png`.
pub fn file_number(file: &str) -> usize {
    Path::new(file)
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `f` on a rayon pool of `threads` threads.
pub fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// Model file bytes with `from` in the header replaced by `to`, of the same length (the header
/// is JSON, so the header length stays valid), then sealed again with a fresh checksum
/// (`container::with_metadata`): what the loader's own checks of the content see, as for a
/// file written that way.
pub fn patch_header(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    use hogsvm::model::container::{metadata, with_metadata};
    assert_eq!(from.len(), to.len(), "same-length patch");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("text in header");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    with_metadata(&out, &metadata(&out).unwrap()).unwrap()
}

/// Model file bytes whose header claims format version `digit`.
pub fn with_format_version(bytes: &[u8], digit: u8) -> Vec<u8> {
    let mut to = b"\\\"format_version\\\":2".to_vec();
    *to.last_mut().unwrap() = digit;
    patch_header(bytes, b"\\\"format_version\\\":2", &to)
}

/// Model file bytes with the metadata JSON changed by `edit`, sealed again with a fresh
/// checksum (as a file written that way would be).
pub fn edit_meta(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    use hogsvm::model::container::{metadata, with_metadata};
    let mut meta = metadata(bytes).unwrap();
    edit(&mut meta);
    with_metadata(bytes, &meta).unwrap()
}

/// Model file bytes with every f32 value of tensor `name` mapped by `f`, sealed again.
pub fn map_tensor(bytes: &[u8], name: &str, f: impl Fn(f32) -> f32) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let t = &header[name];
    assert_eq!(t["dtype"], "F32", "{name}");
    let (a, b) = (
        t["data_offsets"][0].as_u64().unwrap() as usize,
        t["data_offsets"][1].as_u64().unwrap() as usize,
    );
    let mut out = bytes.to_vec();
    for c in out[8 + n + a..8 + n + b].chunks_exact_mut(4) {
        let v = f(f32::from_le_bytes(c.try_into().unwrap()));
        c.copy_from_slice(&v.to_le_bytes());
    }
    edit_meta(&out, |_| {})
}
