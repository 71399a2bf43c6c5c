//! Datasets: IDX files (MNIST / Fashion-MNIST layout) and image folders, loaded into one
//! in-memory form, [`Dataset`]: same-size 8-bit grayscale images with their labels.
//!
//! [`load`] understands:
//! * an IDX images file (`*-images-idx3-ubyte[.gz]`): labels are read from the file of the same
//!   name with `labels-idx1` in place of `images-idx3`;
//! * a folder holding `train-*` and/or `t10k-*` IDX files: the split chosen in [`LoadOptions`];
//! * any other folder: an image folder, `root/<class>/<image>` ([`folder`]).
//!
//! Class names of IDX data come from a `classes.txt` beside the files (one name per line); else,
//! when the folder's name contains "fashion", Fashion-MNIST's ten names; else the label numbers.
//!
//! **Classes come from the data** ([`LoadOptions::classes`]). A training set's classes are those
//! with at least one image, in folder (or label) order: an empty class folder, or a label value
//! no image has (an IDX label file holding 0-9 and one 255), is not a class; the loader leaves it
//! out and names it in [`LoadReport::empty_classes`]. A set read for an existing model (its test
//! set, `eval`) is read with the model's classes: its labels are matched to them by name, a
//! class of the data outside them is an error naming it, and a class the data lack is fine.

pub mod folder;
pub mod idx;
pub mod split;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::hog::ImageRef;

/// Fashion-MNIST's class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// How images are read: their colour kind. `Auto`: colour (RGB) when any image of a folder is
/// colour, else gray; IDX data is gray. Each image is then brought to that kind by the one rule
/// of [`Dataset::with_channels`]: colour to gray by BT.709 luma, gray to colour by repeating the
/// value. An alpha channel is dropped; 16-bit values are scaled to 8 bits (`v * 255 / 65535`,
/// rounded, as the `image` crate converts). A model reads images as the kind it was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Color {
    /// The data's own kind.
    #[default]
    Auto,
    /// 8-bit gray.
    Gray,
    /// 8-bit RGB.
    Rgb,
}

impl Color {
    /// The kind of `channels` values per pixel (1: gray, else RGB).
    pub fn of_channels(channels: usize) -> Color {
        if channels == 1 {
            Color::Gray
        } else {
            Color::Rgb
        }
    }

    /// Values per pixel, when fixed.
    pub fn channels(self) -> Option<usize> {
        match self {
            Color::Auto => None,
            Color::Gray => Some(1),
            Color::Rgb => Some(3),
        }
    }

    /// `auto`, `gray` or `rgb`.
    pub fn name(self) -> &'static str {
        match self {
            Color::Auto => "auto",
            Color::Gray => "gray",
            Color::Rgb => "rgb",
        }
    }
}

impl std::str::FromStr for Color {
    type Err = Error;
    /// `auto`, `gray` (or `grey`), `rgb` (or `color`, `colour`).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Color::Auto),
            "gray" | "grey" => Ok(Color::Gray),
            "rgb" | "color" | "colour" => Ok(Color::Rgb),
            _ => Err(Error::param("color", "expected auto, gray or rgb", s)),
        }
    }
}

/// BT.709 luma of interleaved RGB pixels, as the `image` crate computes it (the decoder's own
/// conversion, so a colour image read as gray and a colour array converted later agree).
pub fn rgb_to_gray(rgb: &[u8]) -> Vec<u8> {
    use image::Pixel;
    rgb.chunks_exact(3)
        .map(|p| image::Rgb([p[0], p[1], p[2]]).to_luma().0[0])
        .collect()
}

/// Same-size 8-bit images, gray or colour, with labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Image rows (height).
    pub rows: usize,
    /// Image columns (width).
    pub cols: usize,
    /// Values per pixel: 1 (gray) or 3 (RGB, interleaved: `r g b r g b ...`).
    pub channels: usize,
    /// All pixels, image after image, row-major (`len * rows * cols * channels`).
    pub pixels: Vec<u8>,
    /// Label of each image, an index into `class_names`.
    pub labels: Vec<u32>,
    /// Class names, in label order.
    pub class_names: Vec<String>,
    /// Where each image came from (file path, or `file#index` for IDX).
    pub sources: Vec<String>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// An empty dataset of `rows x cols` images with `channels` values per pixel.
    pub fn empty(rows: usize, cols: usize, channels: usize, class_names: Vec<String>) -> Dataset {
        Dataset {
            rows,
            cols,
            channels,
            pixels: Vec::new(),
            labels: Vec::new(),
            class_names,
            sources: Vec::new(),
        }
    }
    /// Values of one image (`rows * cols * channels`).
    pub fn image_len(&self) -> usize {
        self.rows * self.cols * self.channels
    }
    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }
    /// Image `i` as a HOG input (colour HOG for 3 channels, as scikit-image's `channel_axis=-1`).
    pub fn image_ref(&self, i: usize) -> ImageRef<'_> {
        ImageRef::new(
            crate::hog::Pixels::U8(self.image(i)),
            self.rows,
            self.cols,
            self.channels,
        )
        .expect("dataset images have rows * cols * channels values by construction")
    }
    /// Every image as a HOG input.
    pub fn image_refs(&self) -> Vec<ImageRef<'_>> {
        (0..self.len()).map(|i| self.image_ref(i)).collect()
    }
    /// The colour kind of the images.
    pub fn color(&self) -> Color {
        Color::of_channels(self.channels)
    }
    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Dataset {
            rows: self.rows,
            cols: self.cols,
            channels: self.channels,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
            sources: indices.iter().map(|&i| self.sources[i].clone()).collect(),
        }
    }
    /// Every image mirrored left to right, same labels (sources get a `#mirrored` suffix).
    pub fn mirrored(&self) -> Dataset {
        let mut pixels = self.pixels.clone();
        let c = self.channels.max(1);
        if self.cols > 0 {
            for row in pixels.chunks_exact_mut(self.cols * c) {
                row.reverse();
                // Reversing the row reversed each pixel's channels too: put them back.
                if c > 1 {
                    for px in row.chunks_exact_mut(c) {
                        px.reverse();
                    }
                }
            }
        }
        Dataset {
            pixels,
            sources: self
                .sources
                .iter()
                .map(|s| format!("{s}#mirrored"))
                .collect(),
            ..self.clone()
        }
    }
    /// The same images with `channels` values per pixel ([`Color`]'s one conversion rule):
    /// colour to gray by BT.709 luma (the `image` crate's, as decoding does), gray to colour by
    /// repeating the value (whose colour HOG is its gray HOG). Borrowed when nothing changes.
    pub fn with_channels(&self, channels: usize) -> Cow<'_, Dataset> {
        if channels == self.channels {
            return Cow::Borrowed(self);
        }
        let pixels = match (self.channels, channels) {
            (3, 1) => rgb_to_gray(&self.pixels),
            (1, 3) => self.pixels.iter().flat_map(|&v| [v, v, v]).collect(),
            (from, to) => unreachable!("datasets hold 1 or 3 channels, not {from} -> {to}"),
        };
        Cow::Owned(Dataset {
            channels,
            pixels,
            ..self.clone()
        })
    }
    /// Split into (train, test) with `test_fraction` of each class in the test part (at least
    /// one image of a class with two or more), shuffled by a seeded generator. Order inside each
    /// part follows the original order.
    pub fn stratified_split(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> crate::Result<(Dataset, Dataset)> {
        use rand::SeedableRng;
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(Error::param(
                "test_split",
                "must be a fraction strictly between 0 and 1",
                test_fraction,
            ));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (train, test) = split::stratified_indices(
            &self.labels,
            self.class_names.len(),
            test_fraction,
            &mut rng,
        );
        if test.is_empty() {
            return Err(Error::param(
                "test_split",
                "leaves no test images",
                test_fraction,
            ));
        }
        Ok((self.subset(&train), self.subset(&test)))
    }

    /// Every image resized to `w x h` (width x height; triangle filter, as at loading).
    pub fn resized(&self, w: u32, h: u32) -> Dataset {
        use rayon::prelude::*;
        let resized: Vec<Vec<u8>> = (0..self.len())
            .into_par_iter()
            .map(|i| {
                folder::resize_pixels(
                    self.image(i),
                    self.cols as u32,
                    self.rows as u32,
                    self.channels,
                    (w, h),
                )
            })
            .collect();
        Dataset {
            rows: h as usize,
            cols: w as usize,
            channels: self.channels,
            pixels: resized.concat(),
            labels: self.labels.clone(),
            class_names: self.class_names.clone(),
            sources: self.sources.clone(),
        }
    }

    /// Number of images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.class_names.len()];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }
}

/// Which half of an IDX folder to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Split {
    /// `train-*` files.
    #[default]
    Train,
    /// `t10k-*` files.
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// How to load a dataset.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Resize every image to `(width, height)`.
    pub resize: Option<(u32, u32)>,
    /// Skip image files that fail to decode (each one is listed in the [`LoadReport`]).
    pub skip_invalid: bool,
    /// Split to read from an IDX folder.
    pub split: Split,
    /// The classes to read the data as (a model's; the training set's, for its test set):
    /// labels are matched to them by name, a class with images outside them is an error, and a
    /// class without images is fine. `None`: the classes that have images (see the [module
    /// docs](self)).
    pub classes: Option<Vec<String>>,
    /// Colour kind to read the images as ([`Color`]).
    pub color: Color,
}

/// What loading skipped or found odd, for the caller to report.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Files skipped with `skip_invalid`, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Classes left out for having no image (empty class folders, unused label values).
    pub empty_classes: Vec<String>,
}

/// The IDX files of one split inside `dir`, if present (`.gz` or raw).
pub fn idx_pair(dir: &Path, split: Split) -> Option<(PathBuf, PathBuf)> {
    let find = |stem: String| {
        [format!("{stem}.gz"), stem]
            .into_iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
    };
    let p = split.prefix();
    Some((
        find(format!("{p}-images-idx3-ubyte"))?,
        find(format!("{p}-labels-idx1-ubyte"))?,
    ))
}

/// Whether `dir` holds IDX files for both the train and the test split.
pub fn is_standard_split(dir: &Path) -> bool {
    idx_pair(dir, Split::Train).is_some() && idx_pair(dir, Split::Test).is_some()
}

/// Load a dataset from a file or folder (see the module docs).
pub fn load(path: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    if path.is_dir() {
        if let Some((images, labels)) = idx_pair(path, opts.split) {
            return load_idx(&images, &labels, opts);
        }
        let other = match opts.split {
            Split::Train => Split::Test,
            Split::Test => Split::Train,
        };
        if idx_pair(path, other).is_some() {
            return Err(Error::Dataset {
                path: path.to_path_buf(),
                reason: format!("holds no {}-* IDX files", opts.split.prefix()),
            });
        }
        return folder::load_folder(path, opts);
    }
    if path.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains("images-idx3") {
            return Err(Error::Dataset {
                path: path.to_path_buf(),
                reason: "a file dataset must be an IDX images file (*-images-idx3-ubyte[.gz]); \
                         for images pass their folder"
                    .into(),
            });
        }
        let labels = path.with_file_name(name.replace("images-idx3", "labels-idx1"));
        if !labels.is_file() {
            return Err(Error::Dataset {
                path: path.to_path_buf(),
                reason: format!("labels file {} not found beside it", labels.display()),
            });
        }
        return load_idx(path, &labels, opts);
    }
    Err(crate::io::not_a_file_or_folder(path))
}

/// Visit a dataset in chunks, in order, so that memory stays bounded by the chunk (plus the IDX
/// file itself, which is read whole): image folders are decoded chunk by chunk. A chunk holds
/// `chunk(rows, cols)` images of `rows x cols` pixels (at least one): the caller sizes chunks by
/// bytes, not by count, since a photo can be a thousand times a digit. Until the image size is
/// known (a folder without `resize`), chunks hold one image. `f` gets each chunk (same image size
/// throughout) and the total number of images expected (files found; fewer arrive if some are
/// skipped). Returns the class names and what loading skipped.
pub fn for_each_chunk<F, C>(
    path: &Path,
    opts: &LoadOptions,
    chunk: C,
    mut f: F,
) -> Result<(Vec<String>, LoadReport)>
where
    F: FnMut(&Dataset, usize) -> Result<()>,
    C: Fn(usize, usize) -> usize,
{
    let is_folder = path.is_dir()
        && idx_pair(path, Split::Train).is_none()
        && idx_pair(path, Split::Test).is_none();
    if !is_folder {
        let (ds, report) = load(path, opts)?;
        let n = ds.len();
        let k = chunk(ds.rows, ds.cols).max(1);
        let mut start = 0;
        while start < n {
            let end = (start + k).min(n);
            f(&ds.subset(&(start..end).collect::<Vec<_>>()), n)?;
            start = end;
        }
        return Ok((ds.class_names, report));
    }
    let (files, class_names, mut report) = folder::list_folder(path, opts.classes.as_deref())?;
    let channels = folder::channels_for(&files, opts.color);
    let (mut rows, mut cols) = match opts.resize {
        Some((w, h)) => (h as usize, w as usize),
        None => (0, 0),
    };
    let (mut seen, mut at) = (0, 0);
    while at < files.len() {
        let k = if rows == 0 {
            1
        } else {
            chunk(rows, cols).max(1)
        };
        let part = &files[at..(at + k).min(files.len())];
        at += part.len();
        let mut ds = Dataset::empty(rows, cols, channels, class_names.clone());
        folder::decode_append(part, opts, &mut ds, &mut report)?;
        (rows, cols) = (ds.rows, ds.cols);
        seen += ds.len();
        if !ds.is_empty() {
            f(&ds, files.len())?;
        }
    }
    if seen == 0 {
        return Err(folder::nothing_decoded(path, &report));
    }
    Ok((class_names, report))
}

/// Load an IDX images file and its labels file (classes settled as [`LoadOptions::classes`]
/// says; the report names label values left out).
pub fn load_idx(images: &Path, labels: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let im = idx::read_idx(images)?;
    let lb = idx::read_idx(labels)?;
    if im.dims.len() != 3 {
        return Err(Error::invalid_file(
            images,
            format!(
                "IDX images must have 3 dimensions (n, rows, cols), got {:?}",
                im.dims
            ),
        ));
    }
    if lb.dims.len() != 1 {
        return Err(Error::invalid_file(
            labels,
            format!("IDX labels must have 1 dimension, got {:?}", lb.dims),
        ));
    }
    let (n, rows, cols) = (im.dims[0], im.dims[1], im.dims[2]);
    if lb.dims[0] != n {
        return Err(Error::Dataset {
            path: labels.to_path_buf(),
            reason: format!(
                "{} labels for {n} images in {}",
                lb.dims[0],
                images.display()
            ),
        });
    }
    if n == 0 || rows == 0 || cols == 0 {
        return Err(Error::Dataset {
            path: images.to_path_buf(),
            reason: format!("empty IDX images file ({n} x {rows} x {cols})"),
        });
    }
    let mut labels_u32: Vec<u32> = lb.data.iter().map(|&l| l as u32).collect();
    let max_label = labels_u32.iter().copied().max().unwrap_or(0) as usize;
    let dir = images.parent().unwrap_or(Path::new("."));
    let class_names = class_names_for(dir, max_label + 1)?;
    if class_names.len() <= max_label {
        return Err(Error::Dataset {
            path: labels.to_path_buf(),
            reason: format!(
                "label {max_label} has no name: classes.txt lists {} classes",
                class_names.len()
            ),
        });
    }
    let mut report = LoadReport::default();
    let class_names = settle_classes(
        &mut labels_u32,
        class_names,
        opts.classes.as_deref(),
        &mut report,
        labels,
    )?;
    let stem = images
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sources = (0..n).map(|i| format!("{stem}#{i}")).collect();
    let mut ds = Dataset {
        rows,
        cols,
        channels: 1,
        pixels: im.data,
        labels: labels_u32,
        class_names,
        sources,
    };
    if let Some((w, h)) = opts.resize {
        if (w as usize, h as usize) != (cols, rows) {
            ds = ds.resized(w, h);
        }
    }
    // IDX images are gray; `Color::Rgb` repeats each value.
    if opts.color == Color::Rgb {
        ds = ds.with_channels(3).into_owned();
    }
    Ok((ds, report))
}

/// Settle the classes of labelled data (see [`LoadOptions::classes`]): `labels` index `names`;
/// they are rewritten to index the returned names. With `wanted`, the returned names are
/// `wanted` and each data class with examples must be one of them (an error naming `path`
/// otherwise); without, they are the classes with examples, in order, and the others go to
/// `report.empty_classes`.
pub(crate) fn settle_classes(
    labels: &mut [u32],
    names: Vec<String>,
    wanted: Option<&[String]>,
    report: &mut LoadReport,
    path: &Path,
) -> Result<Vec<String>> {
    let mut counts = vec![0usize; names.len()];
    for &l in labels.iter() {
        counts[l as usize] += 1;
    }
    let (map, out): (Vec<Option<u32>>, Vec<String>) = match wanted {
        Some(w) => {
            let mut map = Vec::with_capacity(names.len());
            for (name, &c) in names.iter().zip(&counts) {
                let at = w.iter().position(|x| x == name);
                if at.is_none() && c > 0 {
                    return Err(Error::Dataset {
                        path: path.to_path_buf(),
                        reason: format!(
                            "class `{name}` ({c} images) is not one of the model's {} classes \
                             ({})",
                            w.len(),
                            preview(w)
                        ),
                    });
                }
                map.push(at.map(|i| i as u32));
            }
            (map, w.to_vec())
        }
        None => {
            let mut map = Vec::with_capacity(names.len());
            let mut kept = Vec::new();
            for (name, &c) in names.into_iter().zip(&counts) {
                if c > 0 {
                    map.push(Some(kept.len() as u32));
                    kept.push(name);
                } else {
                    map.push(None);
                    report.empty_classes.push(name);
                }
            }
            (map, kept)
        }
    };
    for l in labels.iter_mut() {
        *l = map[*l as usize].expect("a label with examples is mapped");
    }
    Ok(out)
}

/// Up to five names, then how many more.
fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    match names.len() {
        n if n > 5 => format!("{}, and {} more", shown.join(", "), n - 5),
        _ => shown.join(", "),
    }
}

fn class_names_for(dir: &Path, n_classes: usize) -> Result<Vec<String>> {
    let f = dir.join("classes.txt");
    if f.is_file() {
        let text = crate::io::read_text(&f, "classes.txt")?;
        return Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect());
    }
    let is_fashion = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase().contains("fashion"))
        .unwrap_or(false);
    if is_fashion && n_classes <= 10 {
        return Ok(FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect());
    }
    Ok((0..n_classes).map(|i| i.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_reverses_every_row() {
        let ds = Dataset {
            rows: 2,
            cols: 3,
            channels: 1,
            pixels: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
            labels: vec![0, 1],
            class_names: vec!["a".into(), "b".into()],
            sources: vec!["x".into(), "y".into()],
        };
        let m = ds.mirrored();
        assert_eq!(m.pixels, vec![3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]);
        assert_eq!(m.labels, ds.labels);
        assert_eq!(m.sources[1], "y#mirrored");
        assert_eq!(m.mirrored().pixels, ds.pixels);
    }

    fn write_raw_idx(dir: &Path, prefix: &str, n: usize, gz: bool) {
        let images = idx::IdxArray {
            dims: vec![n, 4, 5],
            data: (0..n * 20).map(|v| v as u8).collect(),
        };
        let labels = idx::IdxArray {
            dims: vec![n],
            data: (0..n).map(|v| (v % 3) as u8).collect(),
        };
        for (name, arr) in [
            (format!("{prefix}-images-idx3-ubyte"), images),
            (format!("{prefix}-labels-idx1-ubyte"), labels),
        ] {
            let mut bytes = Vec::new();
            idx::write_idx(&mut bytes, &arr).unwrap();
            if gz {
                use std::io::Write;
                let f = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
                let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
                e.write_all(&bytes).unwrap();
                e.finish().unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    #[test]
    fn raw_and_gzip_idx_folders_and_files() {
        let dir = tempfile::tempdir().unwrap();
        write_raw_idx(dir.path(), "train", 6, false);
        write_raw_idx(dir.path(), "t10k", 3, true);
        assert!(is_standard_split(dir.path()));
        let (train, _) = load(dir.path(), &LoadOptions::default()).unwrap();
        assert_eq!((train.len(), train.rows, train.cols), (6, 4, 5));
        assert_eq!(train.labels, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(train.class_names, vec!["0", "1", "2"]);
        assert_eq!(
            train.image(1),
            &(20..40).map(|v| v as u8).collect::<Vec<_>>()[..]
        );
        let test_opts = LoadOptions {
            split: Split::Test,
            ..Default::default()
        };
        let (test, _) = load(dir.path(), &test_opts).unwrap();
        assert_eq!(test.len(), 3);
        // An images file given directly finds its labels beside it.
        let (direct, _) = load(
            &dir.path().join("train-images-idx3-ubyte"),
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(direct, train);
        // classes.txt names the classes.
        std::fs::write(dir.path().join("classes.txt"), "zero\none\ntwo\n").unwrap();
        let (named, _) = load(dir.path(), &LoadOptions::default()).unwrap();
        assert_eq!(named.class_names, vec!["zero", "one", "two"]);
        // Resize.
        let opts = LoadOptions {
            resize: Some((8, 6)),
            ..Default::default()
        };
        let (big, _) = load(dir.path(), &opts).unwrap();
        assert_eq!((big.rows, big.cols, big.pixels.len()), (6, 8, 6 * 48));
    }

    #[test]
    fn stratified_split_keeps_class_proportions() {
        let dir = tempfile::tempdir().unwrap();
        write_raw_idx(dir.path(), "train", 30, false);
        let (ds, _) = load(dir.path(), &LoadOptions::default()).unwrap();
        let (tr, te) = ds.stratified_split(0.2, 1).unwrap();
        assert_eq!(tr.len() + te.len(), 30);
        assert_eq!(te.class_counts(), vec![2, 2, 2]);
        let (tr2, te2) = ds.stratified_split(0.2, 1).unwrap();
        assert_eq!((tr, te), (tr2, te2));
        assert!(ds.stratified_split(1.0, 1).is_err());
    }

    #[test]
    fn chunks_concatenate_to_the_whole_dataset() {
        let dir = tempfile::tempdir().unwrap();
        for (c, n) in [("a", 4), ("b", 3), ("c", 5)] {
            std::fs::create_dir_all(dir.path().join(c)).unwrap();
            for i in 0..n {
                image::GrayImage::from_fn(6, 5, |x, y| image::Luma([(x + y * 7 + i * 3) as u8]))
                    .save(dir.path().join(c).join(format!("{i}.png")))
                    .unwrap();
            }
        }
        let (whole, _) = load(dir.path(), &LoadOptions::default()).unwrap();
        for chunk in [1, 3, 5, 100] {
            let mut pixels = Vec::new();
            let mut labels = Vec::new();
            let mut sizes = Vec::new();
            let (names, _) = for_each_chunk(
                dir.path(),
                &LoadOptions::default(),
                |_, _| chunk,
                |d, total| {
                    assert_eq!(total, 12);
                    assert!(d.len() <= chunk);
                    sizes.push(d.len());
                    pixels.extend_from_slice(&d.pixels);
                    labels.extend_from_slice(&d.labels);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(names, whole.class_names);
            assert_eq!(
                (pixels.clone(), labels.clone()),
                (whole.pixels.clone(), whole.labels.clone())
            );
            assert_eq!(sizes.iter().sum::<usize>(), 12);
            // Until the image size is known, one image.
            assert_eq!(sizes[0], 1);
        }
        // IDX data chunks the same way.
        write_raw_idx(dir.path(), "train", 7, true);
        let mut n = 0;
        for_each_chunk(
            dir.path(),
            &LoadOptions::default(),
            |_, _| 3,
            |d, total| {
                assert_eq!(total, 7);
                n += d.len();
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(n, 7);
    }

    #[test]
    fn label_count_mismatch_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_raw_idx(dir.path(), "train", 4, false);
        let labels = idx::IdxArray {
            dims: vec![3],
            data: vec![0, 1, 2],
        };
        let mut bytes = Vec::new();
        idx::write_idx(&mut bytes, &labels).unwrap();
        std::fs::write(dir.path().join("train-labels-idx1-ubyte"), bytes).unwrap();
        let e = load(dir.path(), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 labels for 4 images"), "{e}");
    }

    #[test]
    fn rgb_and_16_bit_images_become_8_bit_gray() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        image::RgbImage::from_pixel(10, 8, image::Rgb([255, 0, 0]))
            .save(a.join("red.png"))
            .unwrap();
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(10, 8, image::Luma([65535]))
            .save(a.join("white16.png"))
            .unwrap();
        let gray = LoadOptions {
            color: Color::Gray,
            ..Default::default()
        };
        let (ds, report) = load(dir.path(), &gray).unwrap();
        assert!(report.skipped.is_empty());
        assert_eq!((ds.len(), ds.rows, ds.cols, ds.channels), (2, 8, 10, 1));
        assert!(
            ds.image(0).iter().all(|&v| v > 40 && v < 80),
            "BT.709 red luma"
        );
        assert!(ds.image(1).iter().all(|&v| v == 255));
        // The same folder read as gray equals the colour read converted by the one rule.
        let (rgb, _) = load(dir.path(), &LoadOptions::default()).unwrap();
        assert_eq!(rgb.with_channels(1).pixels, ds.pixels);
    }

    /// Colour through the data layer: `auto` is RGB when any image is colour (the gray one
    /// repeats its value; alpha dropped; 16 bits scaled), gray otherwise; `rgb` and `gray`
    /// force the kind; the conversions are exact inverses where they can be.
    #[test]
    fn colour_kinds_follow_the_data_or_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        image::RgbaImage::from_pixel(6, 4, image::Rgba([10, 200, 30, 7]))
            .save(a.join("rgba.png"))
            .unwrap();
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(6, 4, image::Luma([32896]))
            .save(a.join("gray16.png"))
            .unwrap();
        let (ds, _) = load(dir.path(), &LoadOptions::default()).unwrap();
        assert_eq!((ds.channels, ds.color()), (3, Color::Rgb));
        assert_eq!(
            &ds.image(0)[..3],
            &[128, 128, 128],
            "gray16 (sorted first): 32896 -> 128"
        );
        assert_eq!(
            &ds.image(1)[..6],
            &[10, 200, 30, 10, 200, 30],
            "alpha dropped"
        );
        // A gray-only folder is gray; forced rgb repeats the value.
        std::fs::remove_file(a.join("rgba.png")).unwrap();
        let (g, _) = load(dir.path(), &LoadOptions::default()).unwrap();
        assert_eq!(g.channels, 1);
        let rgb = LoadOptions {
            color: Color::Rgb,
            ..Default::default()
        };
        let (c, _) = load(dir.path(), &rgb).unwrap();
        assert_eq!(c.channels, 3);
        assert_eq!(c.pixels, g.with_channels(3).pixels);
        assert_eq!(c.with_channels(1).pixels, g.pixels);
        // Mirroring keeps each pixel's channels in order; resizing keeps the channels.
        let px = Dataset {
            rows: 1,
            cols: 2,
            channels: 3,
            pixels: vec![1, 2, 3, 4, 5, 6],
            labels: vec![0],
            class_names: vec!["a".into()],
            sources: vec!["x".into()],
        };
        assert_eq!(px.mirrored().pixels, vec![4, 5, 6, 1, 2, 3]);
        assert_eq!(px.resized(4, 2).channels, 3);
        assert_eq!(px.resized(4, 2).pixels.len(), 4 * 2 * 3);
        assert!("purple".parse::<Color>().is_err());
        assert_eq!("RGB".parse::<Color>().unwrap(), Color::Rgb);
    }

    #[test]
    fn empty_class_folders_are_reported_and_no_images_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let e = load(dir.path(), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no images found"), "{e}");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&b).unwrap();
        image::GrayImage::new(4, 4).save(b.join("x.png")).unwrap();
        // Classes come from the data: the empty folder is left out and reported.
        let (ds, report) = load(dir.path(), &LoadOptions::default()).unwrap();
        assert_eq!(ds.class_names, vec!["b"]);
        assert_eq!(ds.labels, vec![0]);
        assert_eq!(report.empty_classes, vec!["empty"]);
        // Read as a model's classes: the data may hold a subset; a class outside them is an
        // error naming it.
        let model = |names: &[&str]| LoadOptions {
            classes: Some(names.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let (ds, report) = load(dir.path(), &model(&["a", "b", "c"])).unwrap();
        assert_eq!((ds.class_names.len(), ds.labels.clone()), (3, vec![1]));
        assert!(report.empty_classes.is_empty());
        let e = load(dir.path(), &model(&["a", "c"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("class `b` (1 images) is not one of the model's 2 classes"),
            "{e}"
        );
    }

    /// Defect class: phantom classes. Label values no image has are not classes: an IDX label
    /// file holding 0..2 and one 255 gives 4 classes, not 256.
    #[test]
    fn unused_label_values_are_not_classes() {
        let dir = tempfile::tempdir().unwrap();
        write_raw_idx(dir.path(), "train", 6, false);
        let labels = idx::IdxArray {
            dims: vec![6],
            data: vec![0, 1, 2, 0, 255, 2],
        };
        let mut bytes = Vec::new();
        idx::write_idx(&mut bytes, &labels).unwrap();
        std::fs::write(dir.path().join("train-labels-idx1-ubyte"), bytes).unwrap();
        let (ds, report) = load(dir.path(), &LoadOptions::default()).unwrap();
        assert_eq!(ds.class_names, vec!["0", "1", "2", "255"]);
        assert_eq!(ds.labels, vec![0, 1, 2, 0, 3, 2]);
        assert_eq!(report.empty_classes.len(), 252);
    }
}
