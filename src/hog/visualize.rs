//! The HOG picture of scikit-image's `hog(..., visualize=True)`: for every cell and orientation
//! bin, a line through the cell centre, perpendicular to the bin's middle direction, whose
//! pixels get the cell's (un-normalised) histogram value added.

use super::{Hog, ImageRef};
use crate::error::Result;

/// The visualisation as floats, `rows x cols`, row-major (same values as scikit-image).
#[derive(Debug, Clone, PartialEq)]
pub struct HogImage {
    /// Rows (the input image's).
    pub rows: usize,
    /// Columns (the input image's).
    pub cols: usize,
    /// Pixel values, row-major.
    pub data: Vec<f64>,
}

impl HogImage {
    /// Scale to 0..255 by the maximum (a black image stays black), for saving as PNG.
    pub fn to_gray8(&self) -> image::GrayImage {
        let max = self.data.iter().cloned().fold(0.0f64, f64::max);
        let scale = if max > 0.0 { 255.0 / max } else { 0.0 };
        let px = self
            .data
            .iter()
            .map(|&v| (v * scale).round().clamp(0.0, 255.0) as u8)
            .collect();
        image::GrayImage::from_raw(self.cols as u32, self.rows as u32, px)
            .expect("buffer length is rows * cols by construction")
    }
}

/// Draw the HOG visualisation of `img`.
pub fn hog_image(hog: &Hog, img: ImageRef<'_>) -> Result<HogImage> {
    let (layout, hist) = hog.cell_histograms(img)?;
    let (rows, cols) = (img.rows(), img.cols());
    let mut data = vec![0f64; rows * cols];
    let mut pts = Vec::new();
    let d = directions(hog);
    let mut canvas = Canvas {
        data: &mut data,
        row0: 0,
        rows,
        cols,
        image_rows: rows,
    };
    for r in 0..layout.n_cells_row {
        draw_cell_row(hog, &layout, &hist, &d, r, &mut canvas, &mut pts);
    }
    Ok(HogImage { rows, cols, data })
}

/// The visualisation as [`HogImage::to_gray8`] scales it, produced one band of cell rows at a
/// time: `emit` gets the 8-bit rows in order (a few at a time), so memory holds the image, the
/// cell histograms and one band, never the whole picture (a 16384x16384 image: about 0.6 GB
/// instead of 4.8). Two passes over the histograms (the scale needs the maximum first); the
/// pixels are those of `hog_image(..).to_gray8()` exactly, since each line stays inside its
/// cell's band of rows (for cells of one pixel, where it does not, the whole picture is drawn).
pub fn hog_image_gray8_rows(
    hog: &Hog,
    img: ImageRef<'_>,
    emit: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let p = hog.params();
    if radius(hog) < 0.0 {
        return emit(hog_image(hog, img)?.to_gray8().as_raw());
    }
    let (layout, hist) = hog.cell_histograms(img)?;
    let (rows, cols) = (img.rows(), img.cols());
    let band = p.cell_rows;
    let d = directions(hog);
    let mut buf = vec![0f64; band * cols];
    let mut pts = Vec::new();
    let mut draw = |r: usize, buf: &mut [f64]| {
        buf.fill(0.0);
        let mut canvas = Canvas {
            data: buf,
            row0: r * band,
            rows: band,
            cols,
            image_rows: rows,
        };
        draw_cell_row(hog, &layout, &hist, &d, r, &mut canvas, &mut pts);
    };
    let mut max = 0.0f64;
    for r in 0..layout.n_cells_row {
        draw(r, &mut buf);
        max = buf.iter().cloned().fold(max, f64::max);
    }
    let scale = if max > 0.0 { 255.0 / max } else { 0.0 };
    let mut out = vec![0u8; band * cols];
    for r in 0..layout.n_cells_row {
        draw(r, &mut buf);
        for (o, &v) in out.iter_mut().zip(&buf) {
            *o = (v * scale).round().clamp(0.0, 255.0) as u8;
        }
        emit(&out)?;
    }
    // Rows below the last whole cell are blank.
    let rest = rows - layout.n_cells_row * band;
    if rest > 0 {
        out.fill(0);
        for _ in 0..rest {
            emit(&out[..cols])?;
        }
    }
    Ok(())
}

/// The line's half length, scikit-image's `min(cell) // 2 - 1` (negative for one-pixel cells).
fn radius(hog: &Hog) -> f64 {
    let p = hog.params();
    (p.cell_rows.min(p.cell_cols) / 2) as f64 - 1.0
}

/// Each orientation's line offsets `(dr, dc)` from the cell centre.
fn directions(hog: &Hog) -> Vec<(f64, f64)> {
    let n = hog.params().orientations;
    let radius = radius(hog);
    (0..n)
        .map(|o| {
            let mid = std::f64::consts::PI * (o as f64 + 0.5) / n as f64;
            (radius * mid.sin(), radius * mid.cos())
        })
        .collect()
}

/// Where lines are drawn: `rows` image rows from `row0` on, `cols` wide, of an image of
/// `image_rows` rows (for numpy's wrap of negative indices).
struct Canvas<'a> {
    data: &'a mut [f64],
    row0: usize,
    rows: usize,
    cols: usize,
    image_rows: usize,
}

/// Add the lines of cell row `r` onto `canvas`; pixels outside it are skipped (negative
/// indices wrap first, as numpy's).
fn draw_cell_row(
    hog: &Hog,
    layout: &super::HogLayout,
    hist: &[f32],
    d: &[(f64, f64)],
    r: usize,
    canvas: &mut Canvas<'_>,
    pts: &mut Vec<(i64, i64)>,
) {
    let p = hog.params();
    let n = p.orientations;
    let cols = canvas.cols;
    for c in 0..layout.n_cells_col {
        let cr = (r * p.cell_rows + p.cell_rows / 2) as f64;
        let cc = (c * p.cell_cols + p.cell_cols / 2) as f64;
        for (o, &(dr, dc)) in d.iter().enumerate() {
            // Python's int() truncates toward zero, as `as i64` does.
            line(
                (cr - dc) as i64,
                (cc + dr) as i64,
                (cr + dc) as i64,
                (cc - dr) as i64,
                pts,
            );
            let v = hist[(r * layout.n_cells_col + c) * n + o] as f64;
            for &(y, x) in pts.iter() {
                // numpy indexing: negative indices count from the end.
                let y = if y < 0 {
                    y + canvas.image_rows as i64
                } else {
                    y
                };
                let x = if x < 0 { x + cols as i64 } else { x };
                let y = y - canvas.row0 as i64;
                if (0..canvas.rows as i64).contains(&y) && (0..cols as i64).contains(&x) {
                    canvas.data[y as usize * cols + x as usize] += v;
                }
            }
        }
    }
}

/// Bresenham line from `(y0, x0)` to `(y1, x1)` inclusive, in the pixel order of
/// `skimage.draw.line`.
fn line(y0: i64, x0: i64, y1: i64, x1: i64, out: &mut Vec<(i64, i64)>) {
    out.clear();
    let (mut x, mut y) = (x0, y0);
    let (mut dx, mut dy) = ((x1 - x0).abs(), (y1 - y0).abs());
    let (mut sx, mut sy) = (
        if x1 - x0 > 0 { 1 } else { -1 },
        if y1 - y0 > 0 { 1 } else { -1 },
    );
    let steep = dy > dx;
    if steep {
        std::mem::swap(&mut x, &mut y);
        std::mem::swap(&mut dx, &mut dy);
        std::mem::swap(&mut sx, &mut sy);
    }
    let mut d = 2 * dy - dx;
    for _ in 0..dx {
        out.push(if steep { (x, y) } else { (y, x) });
        while d >= 0 {
            y += sy;
            d -= 2 * dx;
        }
        x += sx;
        d += 2 * dy;
    }
    out.push((y1, x1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hog::HogParams;

    /// The banded 8-bit picture is `hog_image(..).to_gray8()`, pixel for pixel, for cell sizes
    /// that divide the image or not, and for one-pixel cells (drawn whole).
    #[test]
    fn banded_picture_is_the_whole_picture() {
        let (rows, cols) = (45, 38);
        let px: Vec<u8> = (0..rows * cols)
            .map(|i| ((i * 37 + i / 7) % 256) as u8)
            .collect();
        let img = ImageRef::gray_u8(&px, rows, cols).unwrap();
        for (cr, cc) in [(8, 8), (5, 7), (2, 2), (1, 3), (6, 1)] {
            let hog = Hog::new(HogParams::default().cell(cr, cc).block(1, 1)).unwrap();
            let whole = hog_image(&hog, img).unwrap().to_gray8().into_raw();
            let mut banded = Vec::new();
            hog_image_gray8_rows(&hog, img, &mut |r| {
                banded.extend_from_slice(r);
                Ok(())
            })
            .unwrap();
            assert_eq!(whole, banded, "cells {cr}x{cc}");
        }
    }

    #[test]
    fn line_matches_skimage_doc_example() {
        let mut pts = Vec::new();
        line(1, 1, 8, 8, &mut pts);
        let want: Vec<(i64, i64)> = (1..=8).map(|i| (i, i)).collect();
        assert_eq!(pts, want);
        line(3, 3, 3, 3, &mut pts);
        assert_eq!(pts, vec![(3, 3)]);
        line(0, 0, 1, 4, &mut pts);
        assert_eq!(pts.first(), Some(&(0, 0)));
        assert_eq!(pts.last(), Some(&(1, 4)));
        assert_eq!(pts.len(), 5);
    }
}
