//! Colour photos through the real binary (issue 26): the data layer keeps colour (`--color
//! auto|gray|rgb`), colour HOG in `extract`, `train`, `predict`, `eval` and `hog-image`, the
//! model file records the colour kind, a model reads images of the other kind by the one rule,
//! one size rule, defaults sized to the images, and bad photo input as one-line errors.

mod common;

use std::path::Path;

use common::{assert_error, assert_ok, fixtures, run, stderr, stdout};
use hogsvm::model::container::metadata;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A `w x h` RGB PNG whose pattern depends on `class` (stripes along rows or columns) and `i`.
fn rgb_png(path: &Path, w: u32, h: u32, class: u32, i: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| {
        let t = if class == 0 { x } else { y };
        let v = ((t * 23 + i * 7) % 64 * 4) as u8;
        image::Rgb([v, 255 - v, ((x + y + i) % 7 * 30) as u8])
    })
    .save(path)
    .unwrap();
}

/// `n` images per class of two classes, `w x h`, under `root`.
fn rgb_folder(root: &Path, n: u32, w: u32, h: u32) {
    for class in 0..2 {
        for i in 0..n {
            rgb_png(&root.join(format!("c{class}/{i:03}.png")), w, h, class, i);
        }
    }
}

/// Colour end to end: RGB features (colour HOG), a model that records 3 channels, `predict`,
/// `eval`, `hog-image`; gray images given to a colour model follow the rule.
#[test]
fn colour_folders_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    rgb_folder(&root, 8, 48, 40);
    // extract: colour by default for a colour folder; gray when asked, with other features.
    let rgb = dir.path().join("rgb.npy");
    let gray = dir.path().join("gray.npy");
    assert_ok(&run([
        "extract",
        "--data",
        s(&root),
        "--out",
        s(&rgb),
        "--cell",
        "8",
        "--block",
        "2",
    ]));
    assert_ok(&run([
        "extract",
        "--data",
        s(&root),
        "--out",
        s(&gray),
        "--cell",
        "8",
        "--block",
        "2",
        "--color",
        "gray",
    ]));
    let a: ndarray::Array2<f32> = ndarray_npy::read_npy(&rgb).unwrap();
    let b: ndarray::Array2<f32> = ndarray_npy::read_npy(&gray).unwrap();
    assert_eq!(a.dim(), b.dim());
    assert_ne!(a, b, "colour HOG differs from the luma's");
    // train records the colour kind; predict and eval read it.
    let m = dir.path().join("m.safetensors");
    let o = run([
        "train",
        "--data",
        s(&root),
        "--test-split",
        "0.25",
        "--out",
        s(&m),
    ]);
    assert_ok(&o);
    let meta = metadata(&std::fs::read(&m).unwrap()).unwrap();
    assert_eq!(meta["input"]["channels"], 3);
    assert_eq!(meta["input"]["rows"], 40);
    // The default HOG cells follow the image size: max(3, round(40 * 3 / 28)) = 4.
    assert_eq!(meta["config"]["hog"]["cell_rows"], 4);
    assert_ok(&run(["eval", "--model", s(&m), "--data", s(&root)]));
    let p = run(["predict", "--model", s(&m), s(&root), "--format", "json"]);
    assert_ok(&p);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&p)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 16);
    // A gray copy of an image is read as colour by repeating its value: the same label as the
    // colour model gives the repeated image.
    let img = image::open(root.join("c0/000.png")).unwrap().into_luma8();
    let g = dir.path().join("g/x/gray.png");
    std::fs::create_dir_all(g.parent().unwrap()).unwrap();
    img.save(&g).unwrap();
    let rep = dir.path().join("r/x/repeated.png");
    std::fs::create_dir_all(rep.parent().unwrap()).unwrap();
    image::DynamicImage::ImageLuma8(img)
        .into_rgb8()
        .save(&rep)
        .unwrap();
    let answer = |p: &Path| {
        let o = run(["predict", "--model", s(&m), s(p), "--format", "json"]);
        assert_ok(&o);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        (v[0]["label"].clone(), v[0]["score"].clone())
    };
    assert_eq!(answer(&g), answer(&rep));
    // The ONNX export says the model takes 3 channels.
    let onnx = dir.path().join("m.onnx");
    assert_ok(&run(["export", "--model", s(&m), "--out", s(&onnx)]));
    let bytes = std::fs::read(&onnx).unwrap();
    let key = b"\"image_channels\":3";
    assert!(
        bytes.windows(key.len()).any(|w| w == key),
        "image_channels in hogsvm.hog"
    );
    // hog-image draws colour HOG by default for a colour image.
    let out = dir.path().join("hog.png");
    assert_ok(&run([
        "hog-image",
        s(&root.join("c1/001.png")),
        "--out",
        s(&out),
    ]));
    let pic = image::open(&out).unwrap();
    assert_eq!((pic.width(), pic.height()), (48, 40));
}

/// One size rule: a model without a resize stage refuses an image of another size with one
/// line naming the file and both sizes, unless --resize asks for it.
#[test]
fn one_size_rule_in_predict() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    rgb_folder(&root, 6, 32, 32);
    let m = dir.path().join("m.safetensors");
    assert_ok(&run([
        "train",
        "--data",
        s(&root),
        "--test-split",
        "0.34",
        "--out",
        s(&m),
    ]));
    let big = dir.path().join("big/x/p.png");
    rgb_png(&big, 64, 48, 0, 1);
    let o = run(["predict", "--model", s(&m), s(&big)]);
    assert_error(&o, &["p.png", "64x48", "32x32", "--resize"]);
    assert_ok(&run(["predict", "--model", s(&m), s(&big), "--resize"]));
    assert_error(
        &run(["predict", "--model", s(&m), s(&big), "--resize", "16x16"]),
        &["this model takes 32x32"],
    );
    // A model trained with --resize brings every image to its size.
    let r = dir.path().join("r.safetensors");
    assert_ok(&run([
        "train",
        "--data",
        s(&root),
        "--test-split",
        "0.34",
        "--resize",
        "24x24",
        "--out",
        s(&r),
    ]));
    assert_ok(&run(["predict", "--model", s(&r), s(&big)]));
}

/// Bad photo input: each a one-line error or a documented rule.
#[test]
fn bad_photo_input_is_an_error_or_a_rule() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.npy");
    // A folder mixing gray and colour: RGB, the gray images repeating their value (the rule).
    let mixed = dir.path().join("mixed");
    rgb_png(&mixed.join("a/c.png"), 32, 32, 0, 0);
    common::gray_png(&mixed.join("a/g.png"), 32, 32, |x, y| (x * 5 + y) as u8);
    assert_ok(&run([
        "extract",
        "--data",
        s(&mixed),
        "--out",
        s(&out),
        "--cell",
        "8",
    ]));
    // RGBA, 16-bit, CMYK JPEG: decoded (alpha dropped, 16 bits scaled, CMYK to RGB).
    let kinds = dir.path().join("kinds");
    std::fs::create_dir_all(kinds.join("a")).unwrap();
    std::fs::copy(
        fixtures().join("hostile/cmyk.jpg"),
        kinds.join("a/cmyk.jpg"),
    )
    .unwrap();
    image::RgbaImage::from_pixel(28, 28, image::Rgba([10, 200, 30, 128]))
        .save(kinds.join("a/rgba.png"))
        .unwrap();
    image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_pixel(
        28,
        28,
        image::Rgb([9000, 60000, 0]),
    )
    .save(kinds.join("a/rgb16.png"))
    .unwrap();
    assert_ok(&run([
        "extract",
        "--data",
        s(&kinds),
        "--out",
        s(&out),
        "--cell",
        "7",
    ]));
    // 1x1 and smaller than one block: the block size it needs.
    let tiny = dir.path().join("tiny");
    rgb_png(&tiny.join("a/one.png"), 1, 1, 0, 0);
    assert_error(
        &run(["extract", "--data", s(&tiny), "--out", s(&out)]),
        &["too small for one HOG block", "24x24"],
    );
    // Mismatched sizes without --resize: the first odd file named.
    let sizes = dir.path().join("sizes");
    rgb_png(&sizes.join("a/1.png"), 32, 32, 0, 0);
    rgb_png(&sizes.join("a/2.png"), 40, 32, 0, 0);
    assert_error(
        &run([
            "extract",
            "--data",
            s(&sizes),
            "--out",
            s(&out),
            "--cell",
            "8",
        ]),
        &["2.png", "40x32", "--resize"],
    );
    assert_ok(&run([
        "extract",
        "--data",
        s(&sizes),
        "--out",
        s(&out),
        "--cell",
        "8",
        "--resize",
        "32x32",
    ]));
    // 20000 x 20000: over the decoder's limit, refused before decoding.
    let huge = dir.path().join("huge");
    std::fs::create_dir_all(huge.join("a")).unwrap();
    let mut enc = Vec::new();
    {
        let mut e = png::Encoder::new(&mut enc, 20000, 20000);
        e.set_color(png::ColorType::Grayscale);
        e.set_depth(png::BitDepth::Eight);
        let mut w = e.write_header().unwrap();
        let mut s = w.stream_writer().unwrap();
        use std::io::Write;
        let row = vec![0u8; 20000];
        for _ in 0..20000 {
            s.write_all(&row).unwrap();
        }
        s.finish().unwrap();
    }
    std::fs::write(huge.join("a/big.png"), &enc).unwrap();
    let o = run(["extract", "--data", s(&huge), "--out", s(&out)]);
    assert_error(&o, &["big.png"]);
    assert!(!stderr(&o).is_empty());
    // An unknown --color.
    assert_error(
        &run([
            "extract",
            "--data",
            s(&mixed),
            "--out",
            s(&out),
            "--color",
            "sepia",
        ]),
        &["auto, gray or rgb"],
    );
}

/// The golden colour cases (fixtures/photo-golden, written by scikit-image through
/// scripts/golden.sh): `extract` on a folder of RGB, RGBA and gray PNGs and RGB JPEGs, with
/// `--color auto`, against `skimage.feature.hog(..., channel_axis=-1)` on Pillow's pixels. PNG
/// rows within the manifest's 1e-5; JPEG rows within its decoder bound (Pillow's libjpeg-turbo
/// and hogsvm's zune-jpeg decode to pixels a few levels apart).
#[test]
fn colour_extract_matches_scikit_image_on_the_golden_folder() {
    use ndarray::ArrayD;
    use ndarray_npy::ReadNpyExt;
    let golden = fixtures().join("photo-golden");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden.join("manifest.json")).unwrap())
            .unwrap();
    let files = manifest["files"].as_array().unwrap();
    let (png_tol, jpeg_tol) = (
        manifest["png_tolerance"].as_f64().unwrap(),
        manifest["jpeg_tolerance"].as_f64().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let out = dir.path().join(format!("{name}.npy"));
        let num = |k: &str| case[k].as_u64().unwrap().to_string();
        let mut args = vec![
            "extract".to_string(),
            "--data".into(),
            s(&golden.join("images")).into(),
            "--out".into(),
            s(&out).into(),
            "--cell".into(),
            num("cell"),
            "--block".into(),
            num("block"),
            "--orientations".into(),
            num("orientations"),
            "--block-norm".into(),
            case["block_norm"].as_str().unwrap().into(),
        ];
        args.push(if case["sqrt"].as_bool().unwrap() {
            "--transform-sqrt".into()
        } else {
            "--no-transform-sqrt".into()
        });
        let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_ok(&o);
        let ours = ArrayD::<f32>::read_npy(std::fs::File::open(&out).unwrap()).unwrap();
        let want = ArrayD::<f64>::read_npy(
            std::fs::File::open(golden.join(format!("expected-{name}.npy"))).unwrap(),
        )
        .unwrap();
        assert_eq!(ours.shape(), want.shape(), "{name}");
        assert_eq!(ours.shape()[0], files.len());
        let d = want.shape()[1];
        let (mut worst_png, mut worst_jpeg) = (0f64, 0f64);
        for (i, f) in files.iter().enumerate() {
            let diff = (0..d)
                .map(|j| (ours[[i, j]] as f64 - want[[i, j]]).abs())
                .fold(0.0, f64::max);
            let path = f["path"].as_str().unwrap();
            if f["kind"] == "png" {
                assert!(diff <= png_tol, "{name} {path}: {diff}");
                worst_png = worst_png.max(diff);
            } else {
                assert!(diff <= jpeg_tol, "{name} {path}: {diff}");
                worst_jpeg = worst_jpeg.max(diff);
            }
        }
        eprintln!("{name}: worst PNG difference {worst_png:.2e}, worst JPEG {worst_jpeg:.2e}");
    }
}
