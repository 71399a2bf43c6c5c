//! HOG hyper-parameters: a plain struct with scikit-image's defaults, a builder, and validation.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Block normalisation, named and computed as in scikit-image (`eps = 1e-5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum BlockNorm {
    /// `v / (sum|v| + eps)`
    L1,
    /// `sqrt(v / (sum|v| + eps))`
    L1Sqrt,
    /// `v / sqrt(sum v^2 + eps^2)`
    L2,
    /// L2, then `min(v, 0.2)`, then L2 again (scikit-image's default).
    #[default]
    L2Hys,
}

impl BlockNorm {
    /// The name scikit-image uses (`"L1"`, `"L1-sqrt"`, `"L2"`, `"L2-Hys"`).
    pub fn skimage_name(self) -> &'static str {
        match self {
            BlockNorm::L1 => "L1",
            BlockNorm::L1Sqrt => "L1-sqrt",
            BlockNorm::L2 => "L2",
            BlockNorm::L2Hys => "L2-Hys",
        }
    }
}

impl std::str::FromStr for BlockNorm {
    type Err = Error;

    /// Parses scikit-image's names, case-insensitively (`l2-hys`, `L1-sqrt`, ...).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "l1" => Ok(BlockNorm::L1),
            "l1-sqrt" | "l1sqrt" => Ok(BlockNorm::L1Sqrt),
            "l2" => Ok(BlockNorm::L2),
            "l2-hys" | "l2hys" => Ok(BlockNorm::L2Hys),
            _ => Err(Error::param(
                "block_norm",
                "one of L1, L1-sqrt, L2, L2-Hys",
                s,
            )),
        }
    }
}

impl std::fmt::Display for BlockNorm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.skimage_name())
    }
}

/// Largest orientation count accepted (bins are stored as `u8`, one value kept for "no bin").
pub const MAX_ORIENTATIONS: usize = 254;

/// HOG parameters. `Default` is scikit-image's `hog()` default: 9 orientations, 8x8 pixels per
/// cell, 3x3 cells per block, L2-Hys, no square-root transform.
///
/// ```
/// use hogsvm::hog::{BlockNorm, HogParams};
/// let p = HogParams::default().cell(4, 4).block(2, 2).block_norm(BlockNorm::L2Hys);
/// assert_eq!(p.feature_len(28, 28).unwrap(), 6 * 6 * 2 * 2 * 9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HogParams {
    /// Number of orientation bins over [0, 180) degrees.
    pub orientations: usize,
    /// Pixels per cell along rows (image height direction).
    pub cell_rows: usize,
    /// Pixels per cell along columns (image width direction).
    pub cell_cols: usize,
    /// Cells per block along rows.
    pub block_rows: usize,
    /// Cells per block along columns.
    pub block_cols: usize,
    /// Block normalisation.
    pub block_norm: BlockNorm,
    /// Take the square root of the image before computing gradients.
    pub transform_sqrt: bool,
}

impl Default for HogParams {
    fn default() -> Self {
        HogParams {
            orientations: 9,
            cell_rows: 8,
            cell_cols: 8,
            block_rows: 3,
            block_cols: 3,
            block_norm: BlockNorm::L2Hys,
            transform_sqrt: false,
        }
    }
}

/// Where the cells and blocks of a HOG descriptor fall for one image size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HogLayout {
    /// Image rows.
    pub rows: usize,
    /// Image columns.
    pub cols: usize,
    /// Whole cells along rows (`rows / cell_rows`, floored).
    pub n_cells_row: usize,
    /// Whole cells along columns.
    pub n_cells_col: usize,
    /// Block positions along rows (`n_cells_row - block_rows + 1`).
    pub n_blocks_row: usize,
    /// Block positions along columns.
    pub n_blocks_col: usize,
    /// Length of the feature vector.
    pub len: usize,
}

impl HogParams {
    /// An extra descriptor for a multi-scale feature: `CELL` (square cells of that many pixels,
    /// every other parameter as `self`) or `CELL/BLOCK` (also square blocks of that many cells).
    pub fn extra_scale(&self, spec: &str) -> Result<HogParams> {
        let bad = || Error::param("extra_cell", "CELL or CELL/BLOCK, e.g. 4 or 4/2", spec);
        let mut parts = spec.trim().split('/');
        let cell: usize = parts.next().unwrap_or("").parse().map_err(|_| bad())?;
        let mut p = self.cell(cell, cell);
        if let Some(b) = parts.next() {
            let b: usize = b.parse().map_err(|_| bad())?;
            p = p.block(b, b);
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        p.validate()?;
        Ok(p)
    }

    setter! {
        /// Set the number of orientation bins.
        orientations: usize,
        /// Set the block normalisation.
        block_norm: BlockNorm,
        /// Enable or disable the square-root (power law) transform.
        transform_sqrt: bool,
    }
    /// Set pixels per cell (rows, cols).
    pub fn cell(mut self, rows: usize, cols: usize) -> Self {
        self.cell_rows = rows;
        self.cell_cols = cols;
        self
    }
    /// Set cells per block (rows, cols).
    pub fn block(mut self, rows: usize, cols: usize) -> Self {
        self.block_rows = rows;
        self.block_cols = cols;
        self
    }

    /// Check every parameter; an invalid one is a typed error naming it.
    pub fn validate(&self) -> Result<()> {
        if self.orientations == 0 || self.orientations > MAX_ORIENTATIONS {
            return Err(Error::param(
                "orientations",
                format!("must be in 1..={MAX_ORIENTATIONS}"),
                self.orientations,
            ));
        }
        for (name, v) in [
            ("cell_rows", self.cell_rows),
            ("cell_cols", self.cell_cols),
            ("block_rows", self.block_rows),
            ("block_cols", self.block_cols),
        ] {
            if v == 0 {
                return Err(Error::param(name, "must be at least 1", v));
            }
            if v > 1 << 16 {
                return Err(Error::param(name, "must be at most 65536", v));
            }
        }
        Ok(())
    }

    /// Cells and blocks for an image of `rows x cols`, or [`Error::ImageTooSmall`].
    pub fn layout(&self, rows: usize, cols: usize) -> Result<HogLayout> {
        self.validate()?;
        let n_cells_row = rows / self.cell_rows;
        let n_cells_col = cols / self.cell_cols;
        if n_cells_row < self.block_rows || n_cells_col < self.block_cols {
            return Err(Error::ImageTooSmall {
                rows,
                cols,
                min_rows: self.block_rows * self.cell_rows,
                min_cols: self.block_cols * self.cell_cols,
            });
        }
        let n_blocks_row = n_cells_row - self.block_rows + 1;
        let n_blocks_col = n_cells_col - self.block_cols + 1;
        let len = n_blocks_row
            .checked_mul(n_blocks_col)
            .and_then(|v| v.checked_mul(self.block_rows * self.block_cols))
            .and_then(|v| v.checked_mul(self.orientations))
            .ok_or_else(|| Error::param("image size", "feature vector too long", rows * cols))?;
        Ok(HogLayout {
            rows,
            cols,
            n_cells_row,
            n_cells_col,
            n_blocks_row,
            n_blocks_col,
            len,
        })
    }

    /// Length of the feature vector for an image of `rows x cols`.
    pub fn feature_len(&self, rows: usize, cols: usize) -> Result<usize> {
        Ok(self.layout(rows, cols)?.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_scale_parses_cell_and_block() {
        let main = HogParams::default()
            .cell(3, 3)
            .block(3, 3)
            .transform_sqrt(true);
        let e = main.extra_scale("4").unwrap();
        assert_eq!((e.cell_rows, e.block_rows, e.transform_sqrt), (4, 3, true));
        let e = main.extra_scale("4/2").unwrap();
        assert_eq!((e.cell_cols, e.block_cols), (4, 2));
        for bad in ["", "x", "4/", "4/2/1", "0", "4/0"] {
            assert!(main.extra_scale(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_skimage() {
        let p = HogParams::default();
        assert_eq!(
            (
                p.orientations,
                p.cell_rows,
                p.cell_cols,
                p.block_rows,
                p.block_cols
            ),
            (9, 8, 8, 3, 3)
        );
        assert_eq!(p.block_norm, BlockNorm::L2Hys);
        assert!(!p.transform_sqrt);
    }

    #[test]
    fn invalid_parameters_are_typed_errors() {
        let e = HogParams::default().orientations(0).validate().unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidParameter {
                name: "orientations",
                ..
            }
        ));
        let e = HogParams::default().cell(0, 4).validate().unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidParameter {
                name: "cell_rows",
                ..
            }
        ));
        let e = HogParams::default().block(2, 0).validate().unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidParameter {
                name: "block_cols",
                ..
            }
        ));
    }

    #[test]
    fn too_small_image_is_an_error() {
        let e = HogParams::default().layout(23, 100).unwrap_err();
        assert!(matches!(
            e,
            Error::ImageTooSmall {
                min_rows: 24,
                min_cols: 24,
                ..
            }
        ));
        assert!(HogParams::default().layout(24, 24).is_ok());
    }

    #[test]
    fn layout_floors_cells() {
        let l = HogParams::default()
            .cell(5, 3)
            .block(2, 3)
            .layout(23, 17)
            .unwrap();
        assert_eq!((l.n_cells_row, l.n_cells_col), (4, 5));
        assert_eq!((l.n_blocks_row, l.n_blocks_col), (3, 3));
        assert_eq!(l.len, 3 * 3 * 2 * 3 * 9);
    }

    #[test]
    fn block_norm_parses_skimage_names() {
        for n in [
            BlockNorm::L1,
            BlockNorm::L1Sqrt,
            BlockNorm::L2,
            BlockNorm::L2Hys,
        ] {
            assert_eq!(n.skimage_name().parse::<BlockNorm>().unwrap(), n);
        }
        assert!("L3".parse::<BlockNorm>().is_err());
    }
}
