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
    let p = hog.params();
    let n = p.orientations;
    let (rows, cols) = (img.rows(), img.cols());
    let mut data = vec![0f64; rows * cols];
    let radius = (p.cell_rows.min(p.cell_cols) / 2) as f64 - 1.0;
    let d: Vec<(f64, f64)> = (0..n)
        .map(|o| {
            let mid = std::f64::consts::PI * (o as f64 + 0.5) / n as f64;
            (radius * mid.sin(), radius * mid.cos())
        })
        .collect();
    let mut pts = Vec::new();
    for r in 0..layout.n_cells_row {
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
                    &mut pts,
                );
                let v = hist[(r * layout.n_cells_col + c) * n + o] as f64;
                for &(y, x) in &pts {
                    // numpy indexing: negative indices count from the end.
                    let y = if y < 0 { y + rows as i64 } else { y };
                    let x = if x < 0 { x + cols as i64 } else { x };
                    if (0..rows as i64).contains(&y) && (0..cols as i64).contains(&x) {
                        data[y as usize * cols + x as usize] += v;
                    }
                }
            }
        }
    }
    Ok(HogImage { rows, cols, data })
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
