//! Parity with scikit-image 0.26 `hog`: every element of every golden vector, max abs
//! difference <= 1e-5, same length and order.
//!
//! The golden files in fixtures/hog-golden/ are written only by scripts/golden.sh (scikit-image
//! in a venv). `HOGSVM_REGEN_GOLDEN=1 cargo test --release --test hog_parity` runs that script
//! first, then checks against the fresh files.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Once;

use hogsvm::hog::{bins::BinTable, naive, visualize, BlockNorm, Hog, HogParams, ImageRef, Pixels};
use ndarray::{ArrayD, Axis};
use ndarray_npy::{read_npy, ReadNpyExt};
use serde::Deserialize;

const TOL: f64 = 1e-5;

#[derive(Deserialize)]
struct Manifest {
    skimage_version: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    kind: String,
    orientations: usize,
    cell_rows: usize,
    cell_cols: usize,
    block_rows: usize,
    block_cols: usize,
    block_norm: String,
    transform_sqrt: bool,
    input: String,
    hog: String,
    vis: Option<String>,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hog-golden")
}

fn regenerate_if_asked() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("HOGSVM_REGEN_GOLDEN").is_some() {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/golden.sh");
            let st = std::process::Command::new("bash")
                .arg(script)
                .status()
                .expect("run scripts/golden.sh");
            assert!(st.success(), "scripts/golden.sh failed");
        }
    });
}

fn manifest() -> Manifest {
    regenerate_if_asked();
    let text = std::fs::read_to_string(golden_dir().join("manifest.json"))
        .expect("fixtures/hog-golden/manifest.json (run scripts/golden.sh)");
    serde_json::from_str(&text).expect("valid manifest")
}

fn params(c: &Case) -> HogParams {
    HogParams::default()
        .orientations(c.orientations)
        .cell(c.cell_rows, c.cell_cols)
        .block(c.block_rows, c.block_cols)
        .block_norm(c.block_norm.parse::<BlockNorm>().unwrap())
        .transform_sqrt(c.transform_sqrt)
}

/// The case's images, `(n, rows, cols)` or `(n, rows, cols, channels)`, in the input's type.
enum Images {
    U8(ArrayD<u8>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
}

fn load_images(c: &Case) -> Images {
    let p = golden_dir().join(&c.input);
    if c.kind.ends_with("u8") {
        Images::U8(read_npy(&p).unwrap())
    } else if c.kind.ends_with("f64") {
        Images::F64(read_npy(&p).unwrap())
    } else {
        Images::F32(read_npy(&p).unwrap())
    }
}

/// One view per image of `a` (standard layout, as `read_npy` gives it).
fn refs_of<'a, T>(a: &'a ArrayD<T>, wrap: fn(&'a [T]) -> Pixels<'a>) -> Vec<ImageRef<'a>> {
    let s = a.shape();
    let ch = if s.len() == 4 { s[3] } else { 1 };
    a.axis_iter(Axis(0))
        .map(|im| ImageRef::new(wrap(im.to_slice().unwrap()), s[1], s[2], ch).unwrap())
        .collect()
}

impl Images {
    fn refs(&self) -> Vec<ImageRef<'_>> {
        match self {
            Images::U8(a) => refs_of(a, Pixels::U8),
            Images::F32(a) => refs_of(a, Pixels::F32),
            Images::F64(a) => refs_of(a, Pixels::F64),
        }
    }
}

fn for_each_image(imgs: &Images, mut f: impl FnMut(usize, ImageRef<'_>)) {
    for (i, im) in imgs.refs().into_iter().enumerate() {
        f(i, im);
    }
}

fn max_abs_diff(a: impl IntoIterator<Item = f64>, b: impl IntoIterator<Item = f64>) -> f64 {
    a.into_iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn golden_files_are_from_skimage_0_26() {
    let m = manifest();
    assert!(
        m.skimage_version.starts_with("0.26"),
        "{}",
        m.skimage_version
    );
    assert!(m.cases.len() >= 20, "only {} cases", m.cases.len());
}

#[test]
fn hog_matches_skimage_on_every_golden_case() {
    let m = manifest();
    let mut checked = 0;
    let mut worst = 0f64;
    for c in &m.cases {
        let hog = Hog::new(params(c)).unwrap();
        let want: ArrayD<f64> = read_npy(golden_dir().join(&c.hog)).unwrap();
        let imgs = load_images(c);
        for_each_image(&imgs, |i, im| {
            let got = hog.compute(im).unwrap();
            let w = want.index_axis(Axis(0), i);
            assert_eq!(got.len(), w.len(), "{}[{i}]: length", c.name);
            let d = max_abs_diff(got.iter().map(|&v| v as f64), w.iter().copied());
            assert!(d <= TOL, "{}[{i}]: max abs diff {d:e} > {TOL:e}", c.name);
            worst = worst.max(d);
            checked += 1;
        });
    }
    eprintln!("hog parity: {checked} images, max abs diff {worst:e}");
    assert!(checked > 100, "checked only {checked} images");
}

#[test]
fn naive_port_matches_skimage_too() {
    for c in &manifest().cases {
        let p = params(c);
        let want: ArrayD<f64> = read_npy(golden_dir().join(&c.hog)).unwrap();
        for_each_image(&load_images(c), |i, im| {
            let got = naive::hog(&p, im).unwrap();
            let w = want.index_axis(Axis(0), i);
            assert_eq!(got.len(), w.len());
            let d = max_abs_diff(got.iter().copied(), w.iter().copied());
            assert!(d <= TOL, "naive {}[{i}]: {d:e}", c.name);
        });
    }
}

#[test]
fn batch_equals_single_image_bit_for_bit() {
    for c in &manifest().cases {
        let hog = Hog::new(params(c)).unwrap();
        let imgs = load_images(c);
        let mut singles = Vec::new();
        for_each_image(&imgs, |_, im| singles.push(hog.compute(im).unwrap()));
        let refs = imgs.refs();
        let batch = hog.compute_batch(&refs).unwrap();
        for (i, s) in singles.iter().enumerate() {
            let row = batch.row(i);
            assert!(
                row.iter().zip(s).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{}[{i}]",
                c.name
            );
        }
        // Into a caller's buffer (dirty on entry): the same bits; a buffer of another length
        // is a shape error.
        let mut out = vec![f32::NAN; batch.len()];
        hog.compute_batch_into(&refs, &mut out).unwrap();
        let flat = batch.as_slice().unwrap();
        assert!(out
            .iter()
            .zip(flat)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let err = hog.compute_batch_into(&refs, &mut out[1..]).unwrap_err();
        assert!(matches!(err, hogsvm::Error::ShapeMismatch { .. }), "{err}");
    }
}

#[test]
fn visualisation_matches_skimage() {
    let m = manifest();
    let mut checked = 0;
    for c in m.cases.iter().filter(|c| c.vis.is_some()) {
        let hog = Hog::new(params(c)).unwrap();
        let want: ArrayD<f64> = read_npy(golden_dir().join(c.vis.as_ref().unwrap())).unwrap();
        for_each_image(&load_images(c), |i, im| {
            let got = visualize::hog_image(&hog, im).unwrap();
            let w = want.index_axis(Axis(0), i);
            assert_eq!((got.rows, got.cols), (w.shape()[0], w.shape()[1]));
            let d = max_abs_diff(got.data.iter().copied(), w.iter().copied());
            assert!(d <= 1e-4, "vis {}[{i}]: {d:e}", c.name);
            checked += 1;
        });
    }
    assert!(checked >= 3);
}

#[test]
fn u8_bin_table_equals_skimage_bins_for_every_gradient() {
    regenerate_if_asked();
    let mut checked = 0;
    for n in [1usize, 4, 6, 7, 8, 9, 11, 12, 13, 17, 18] {
        let path = golden_dir().join(format!("bins-{n}.npy.gz"));
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        let want = ndarray::Array2::<u8>::read_npy(&bytes[..]).unwrap();
        let table = BinTable::get(n);
        assert_eq!(want.dim(), (511, 511));
        for ((i, j), &w) in want.indexed_iter() {
            let (gr, gc) = (i as i32 - 255, j as i32 - 255);
            assert_eq!(
                w as usize,
                table.bin(gr, gc),
                "n={n}: g_row={gr} g_col={gc}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 11);
}
