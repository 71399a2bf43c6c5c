//! Image folders: `root/<class>/<image>` (images may sit in nested folders below a class).
//!
//! Classes are the sub-folders of `root` that hold images, sorted by name; their index is the
//! label (see [`super::LoadOptions::classes`] for empty folders and a model's classes). Files whose
//! extension is not an image format are ignored; hidden files (leading `.`) too. Images are
//! decoded by the `image` crate with decoding limits (a decompression bomb is an error, not an
//! allocation), converted to the folder's colour kind ([`super::Color`]: 8-bit gray by ITU-R
//! BT.709 luma, as `image` does, or 8-bit RGB) and optionally resized. Without a resize every
//! image must have the first image's size.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Dataset, LoadOptions, LoadReport};
use crate::error::{Error, Result};

/// Extensions treated as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "pgm", "ppm", "pbm", "pnm", "qoi",
];

/// Largest width or height accepted when decoding.
pub const MAX_DIMENSION: u32 = 16_384;
/// Largest allocation the decoder may make for one image.
pub const MAX_ALLOC: u64 = 512 << 20;
/// Images above this many pixels must not claim more than [`BOMB_PIXELS_PER_BYTE`] pixels per
/// byte of file: a few hundred bytes declaring a 7168 x 7168 JPEG (found by the fuzzer) is a
/// decompression bomb even within the size limits. Real photos carry far more than a byte per
/// 100 pixels; a flat 3000 x 3000 PNG about one per 1000.
pub const BOMB_MIN_PIXELS: u64 = 2048 * 2048;
/// See [`BOMB_MIN_PIXELS`].
pub const BOMB_PIXELS_PER_BYTE: u64 = 4096;

/// Whether `path` has an image extension.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| {
            let e = e.to_ascii_lowercase();
            IMAGE_EXTENSIONS.contains(&e.as_str())
        })
        .unwrap_or(false)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy().starts_with('.'))
        .unwrap_or(false)
}

/// Entries of a directory, sorted by file name; hidden entries skipped.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let p = e.path();
        if !is_hidden(&p) {
            v.push(p);
        }
    }
    v.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(v)
}

/// All image files below `dir`, recursively, in sorted order.
fn image_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 32 {
        return Err(Error::Dataset {
            path: dir.to_path_buf(),
            reason: "folders nested more than 32 deep (a symlink loop?)".into(),
        });
    }
    for p in sorted_entries(dir)? {
        if p.is_dir() {
            image_files(&p, out, depth + 1)?;
        } else if p.is_file() && is_image_path(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Every image file below `dir` (recursively; hidden entries skipped), in sorted order.
pub fn image_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    image_files(dir, &mut out, 0)?;
    Ok(out)
}

/// Decode one image file to 8-bit grayscale, with limits, optionally resized to `(w, h)`.
pub fn decode_gray(path: &Path, resize: Option<(u32, u32)>) -> Result<image::GrayImage> {
    let (w, h, px) = decode_file(path, resize, 1)?;
    Ok(image::GrayImage::from_raw(w, h, px).expect("w * h gray values"))
}

/// Decode one image file to `channels` (1: gray, 3: RGB) 8-bit values per pixel, with limits,
/// optionally resized to `(w, h)`: its width, height and pixels.
pub fn decode_file(
    path: &Path,
    resize: Option<(u32, u32)>,
    channels: usize,
) -> Result<(u32, u32, Vec<u8>)> {
    let bytes = crate::io::read_file(path, MAX_ALLOC, "image").map_err(|e| match e {
        // A decode error (skippable with --skip-invalid), not an I/O one.
        Error::InvalidFile { path, reason } => Error::Decode { path, reason },
        e => e,
    })?;
    decode_bytes(&bytes, path, resize, channels)
}

/// Decode an image held in memory to 8-bit grayscale (see [`decode_bytes`]).
pub fn decode_gray_bytes(
    bytes: &[u8],
    path: &Path,
    resize: Option<(u32, u32)>,
) -> Result<image::GrayImage> {
    let (w, h, px) = decode_bytes(bytes, path, resize, 1)?;
    Ok(image::GrayImage::from_raw(w, h, px).expect("w * h gray values"))
}

/// Decode an image held in memory (`path` only names it in errors) to `channels` 8-bit values
/// per pixel (1: gray by BT.709 luma; 3: RGB; alpha dropped, 16 bits scaled to 8, as the `image`
/// crate converts), optionally resized to `(w, h)`. The format is guessed from the content, not
/// the name; width, height and allocation are limited ([`MAX_DIMENSION`], [`MAX_ALLOC`]), so a
/// decompression bomb is an error, not an allocation.
pub fn decode_bytes(
    bytes: &[u8],
    path: &Path,
    resize: Option<(u32, u32)>,
    channels: usize,
) -> Result<(u32, u32, Vec<u8>)> {
    let img = decode_dynamic(bytes, path)?;
    // Moves the pixels when the image already has the kind asked for (no copy).
    let (w, h, px) = if channels == 1 {
        let g = img.into_luma8();
        (g.width(), g.height(), g.into_raw())
    } else {
        let c = img.into_rgb8();
        (c.width(), c.height(), c.into_raw())
    };
    Ok(match resize {
        Some(to) if to != (w, h) => (to.0, to.1, resize_pixels(&px, w, h, channels, to)),
        _ => (w, h, px),
    })
}

/// `px` (`w x h`, `channels` values per pixel, 1 or 3) resized to `(tw, th)` by a bilinear
/// (triangle) convolution whose support widens with the downscale factor, so a large photo is
/// low-pass filtered, not sampled (the filter of Pillow's `Image.resize(..., BILINEAR)`; the
/// 8-bit rounding differs from Pillow's by a level here and there), computed with
/// `fast_image_resize` (SIMD, 8-bit fixed point; 4-5x faster than the `image` crate's float
/// resize on 224x224 -> 128x128 colour, docs/BENCHMARKS.md "Photos").
pub fn resize_pixels(px: &[u8], w: u32, h: u32, channels: usize, (tw, th): (u32, u32)) -> Vec<u8> {
    use fast_image_resize as fr;
    let kind = if channels == 1 {
        fr::PixelType::U8
    } else {
        fr::PixelType::U8x3
    };
    // Sizes and lengths are the caller's invariants (a decoded image and a non-zero target), so
    // neither call below can fail: u8 pixels have no alignment, and both kinds are the same.
    let src = fr::images::ImageRef::new(w, h, px, kind).expect("w * h * channels values");
    let mut dst = fr::images::Image::new(tw, th, kind);
    let options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
    fr::Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("same pixel type, non-empty images");
    dst.into_vec()
}

/// Decode with the limits and the bomb check (see [`decode_bytes`]).
fn decode_dynamic(bytes: &[u8], path: &Path) -> Result<image::DynamicImage> {
    let derr = |reason: String| Error::Decode {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(derr("empty file".into()));
    }
    let decoder = limited_decoder(bytes, path)?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    let pixels = w as u64 * h as u64;
    if pixels > BOMB_MIN_PIXELS && pixels > BOMB_PIXELS_PER_BYTE * bytes.len() as u64 {
        return Err(derr(format!(
            "declares {w}x{h} pixels in only {} bytes: refusing a likely decompression bomb",
            bytes.len()
        )));
    }
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| derr(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(derr("image has zero width or height".into()));
    }
    Ok(img)
}

/// The `image` crate's decoder for `bytes`, with hogsvm's limits; it has read the header only.
fn limited_decoder<'a>(bytes: &'a [u8], path: &Path) -> Result<Box<dyn image::ImageDecoder + 'a>> {
    let derr = |reason: String| Error::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| derr(e.to_string()))?;
    if reader.format().is_none() {
        return Err(derr("not an image format hogsvm can read".into()));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| derr(e.to_string()))?;
    Ok(Box::new(decoder))
}

/// Whether the image file at `path` is colour, from its header alone (`None` when the header
/// cannot be read: decoding will say why).
fn is_colour_file(path: &Path) -> Option<bool> {
    use std::io::Read;
    // The header is in the first few KB of every format read here (a JPEG's frame header can
    // follow large metadata blocks: read up to 1 MiB, files are read whole later anyway).
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(1 << 20)
        .read_to_end(&mut head)
        .ok()?;
    let decoder = limited_decoder(&head, path).ok()?;
    Some(image::ImageDecoder::color_type(&decoder).has_color())
}

/// Values per pixel for `files` read as `color` ([`super::Color`]): 1 or 3, or for `Auto`, 3
/// when any file's header says colour (checked in parallel, stopping at the first), else 1.
pub fn channels_for(files: &[(PathBuf, u32)], color: super::Color) -> usize {
    color.channels().unwrap_or_else(|| {
        if files
            .par_iter()
            .any(|(p, _)| is_colour_file(p) == Some(true))
        {
            3
        } else {
            1
        }
    })
}

/// Image files with their labels.
pub type LabelledFiles = Vec<(PathBuf, u32)>;

/// The files of an image folder with their labels, the class names, and the report so far
/// (classes left out). Nothing is decoded yet. Classes are settled as
/// [`LoadOptions::classes`] says: `wanted`, or the class folders that hold images.
pub fn list_folder(
    root: &Path,
    wanted: Option<&[String]>,
) -> Result<(LabelledFiles, Vec<String>, LoadReport)> {
    let mut report = LoadReport::default();
    let mut class_names = Vec::new();
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for p in sorted_entries(root)? {
        if !p.is_dir() {
            continue;
        }
        let label = class_names.len() as u32;
        files.extend(image_files_in(&p)?.into_iter().map(|f| (f, label)));
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        class_names.push(name);
    }
    if class_names.is_empty() {
        return Err(Error::Dataset {
            path: root.to_path_buf(),
            reason: "no class folders (expected root/<class>/<image>)".into(),
        });
    }
    if files.is_empty() {
        return Err(Error::Dataset {
            path: root.to_path_buf(),
            reason: format!(
                "no images found in {} class folder(s) (extensions: {})",
                class_names.len(),
                IMAGE_EXTENSIONS.join(", ")
            ),
        });
    }
    let mut labels: Vec<u32> = files.iter().map(|(_, l)| *l).collect();
    let class_names = super::settle_classes(&mut labels, class_names, wanted, &mut report, root)?;
    for ((_, l), new) in files.iter_mut().zip(labels) {
        *l = new;
    }
    Ok((files, class_names, report))
}

/// Decode `files` (in parallel) and append them to `ds`. The first image of `ds` fixes the
/// size; a later image of another size is an error naming it. Undecodable files are an error,
/// or, with `skip_invalid`, listed in `report`.
pub fn decode_append(
    files: &[(PathBuf, u32)],
    opts: &LoadOptions,
    ds: &mut Dataset,
    report: &mut LoadReport,
) -> Result<()> {
    let decoded: Vec<Result<(u32, u32, Vec<u8>)>> = files
        .par_iter()
        .map(|(p, _)| decode_file(p, opts.resize, ds.channels))
        .collect();
    for ((path, label), img) in files.iter().zip(decoded) {
        let (w, h, px) = match img {
            Ok(i) => i,
            Err(e) if opts.skip_invalid => {
                report.skipped.push((path.clone(), e.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        if ds.rows == 0 {
            ds.rows = h as usize;
            ds.cols = w as usize;
        } else if (h as usize, w as usize) != (ds.rows, ds.cols) {
            return Err(Error::Dataset {
                path: path.clone(),
                reason: format!(
                    "image is {w}x{h} (WxH) but earlier images are {}x{}; pass --resize WxH",
                    ds.cols, ds.rows
                ),
            });
        }
        ds.pixels.extend_from_slice(&px);
        ds.labels.push(*label);
        ds.sources.push(path.to_string_lossy().into_owned());
    }
    Ok(())
}

/// Load an image folder (see the module docs).
pub fn load_folder(root: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let (files, class_names, mut report) = list_folder(root, opts.classes.as_deref())?;
    let mut ds = Dataset::empty(0, 0, channels_for(&files, opts.color), class_names);
    decode_append(&files, opts, &mut ds, &mut report)?;
    if ds.sources.is_empty() {
        return Err(nothing_decoded(root, &report));
    }
    Ok((ds, report))
}

/// The error when every image of a folder was skipped.
pub(crate) fn nothing_decoded(root: &Path, report: &LoadReport) -> Error {
    Error::Dataset {
        path: root.to_path_buf(),
        reason: format!(
            "every image failed to decode ({} skipped)",
            report.skipped.len()
        ),
    }
}
