//! Orientation binning that reproduces scikit-image's bins exactly, without `atan2` per pixel.
//!
//! scikit-image computes `theta = arctan2(g_row, g_col) * (180 / pi) % 180` in float64 (floor
//! modulo, so a tiny negative angle can round to exactly 180.0 and fall in no bin), and puts a
//! pixel in bin `i` when `edge[i] <= theta < edge[i + 1]`, where the edges are `180. /
//! orientations * i` in float64 (see [`edges`]).
//!
//! * For `u8` images without the square-root transform, gradients are integers in `[-255, 255]`,
//!   so a 511 x 511 table built once with that exact formula gives every bin ([`BinTable`]).
//! * For float gradients, [`FloatBinner`] folds the gradient into the upper half-plane and
//!   compares it with the edge directions (sign of a cross product). Only when a gradient lies
//!   within a relative 1e-9 of an edge (far wider than the formula's rounding error) does it fall
//!   back to the exact formula, so the result is always the formula's.
//!
//! `Bin == orientations` means "no bin" (the pixel is not counted), as in scikit-image.
//!
//! "The formula" means it evaluated with the C library's `atan2` (which Rust's `f64::atan2` calls):
//! the angle correctly rounded for the gradients that matter. NumPy's own SIMD `arctan2`, which
//! scikit-image gets on CPUs with AVX-512, is an ulp off for some gradients that lie on a bin edge
//! in exact arithmetic (square roots of 183 and 61: 60 degrees) and puts them in the bin below;
//! there scikit-image's output depends on the CPU, and hogsvm follows the correctly rounded angle
//! (docs/BENCHMARKS.md, "Bin edges and NumPy's arctan2").

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// `180 / pi` as Python computes it.
const RAD2DEG: f64 = 180.0 / std::f64::consts::PI;

/// Floor modulo by 180 with numpy's semantics (result in `[0, 180]`, sign of the divisor).
#[inline]
pub(crate) fn floor_mod_180(a: f64) -> f64 {
    let m = a % 180.0;
    if m == 0.0 {
        0.0
    } else if m < 0.0 {
        m + 180.0
    } else {
        m
    }
}

/// scikit-image's orientation in degrees for one gradient, computed with its exact formula.
#[inline]
pub(crate) fn skimage_theta(g_row: f64, g_col: f64) -> f64 {
    floor_mod_180(g_row.atan2(g_col) * RAD2DEG)
}

/// Bin edges as scikit-image 0.26 compares with them: `180. / n * i` in `f64`. (An earlier
/// reading had them rounded to `f32`, as C `float`s; measured against scikit-image on gradients
/// constructed between the readings, only the `f64` one agrees: docs/BENCHMARKS.md.)
pub(crate) fn edges(orientations: usize) -> Vec<f64> {
    (0..=orientations)
        .map(|i| 180.0 / orientations as f64 * i as f64)
        .collect()
}

/// The bin of angle `theta` given the edges, `n` when it falls in none.
#[inline]
pub(crate) fn bin_of_theta(theta: f64, edges: &[f64]) -> usize {
    let n = edges.len() - 1;
    (0..n)
        .find(|&i| theta >= edges[i] && theta < edges[i + 1])
        .unwrap_or(n)
}

/// Exact bins for every integer gradient pair in `[-255, 255]^2`.
///
/// Stored with a row stride of 512 (a power of two) so that an index masked to 18 bits is
/// always in bounds: the hot loop needs no bounds check.
#[derive(Debug)]
pub struct BinTable {
    orientations: usize,
    bins: Box<[u8; TABLE_LEN]>,
    /// Whether some gradient falls in no bin (possible when the last f32 edge is below 180).
    has_no_bin: bool,
}

/// Row stride of the table (gradients run from -255 to 255, 511 values).
pub(crate) const TABLE_SIDE: usize = 512;
/// Table length, a power of two.
pub(crate) const TABLE_LEN: usize = TABLE_SIDE * TABLE_SIDE;

/// Index of gradient `(g_row, g_col)` in the table.
#[inline(always)]
pub(crate) fn table_index(g_row: i32, g_col: i32) -> u32 {
    ((g_row + 255) as u32) * TABLE_SIDE as u32 + (g_col + 255) as u32
}

impl BinTable {
    fn build(orientations: usize) -> Self {
        let e = edges(orientations);
        // Built on the heap (a 256 KiB array literal would pass through the stack).
        let mut bins: Box<[u8; TABLE_LEN]> = vec![0u8; TABLE_LEN]
            .into_boxed_slice()
            .try_into()
            .expect("length is TABLE_LEN");
        let mut has_no_bin = false;
        for gr in -255i32..=255 {
            for gc in -255i32..=255 {
                let b = bin_of_theta(skimage_theta(gr as f64, gc as f64), &e);
                has_no_bin |= b == orientations;
                bins[table_index(gr, gc) as usize] = b as u8;
            }
        }
        BinTable {
            orientations,
            bins,
            has_no_bin,
        }
    }

    /// The shared table for `orientations` bins (built once per process, then cached).
    pub fn get(orientations: usize) -> Arc<BinTable> {
        static CACHE: OnceLock<Mutex<HashMap<usize, Arc<BinTable>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        // A poisoned lock only means another thread panicked while inserting; the map is
        // still a valid cache.
        let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(orientations)
            .or_insert_with(|| Arc::new(BinTable::build(orientations)))
            .clone()
    }

    /// Number of orientation bins.
    pub fn orientations(&self) -> usize {
        self.orientations
    }

    /// The raw table, indexed by [`table_index`].
    pub(crate) fn raw(&self) -> &[u8; TABLE_LEN] {
        &self.bins
    }

    /// Whether some integer gradient falls in no bin.
    pub(crate) fn has_no_bin(&self) -> bool {
        self.has_no_bin
    }

    /// Bin of the integer gradient `(g_row, g_col)` (`orientations` = no bin); both must be in
    /// `[-255, 255]`.
    #[inline]
    pub fn bin(&self, g_row: i32, g_col: i32) -> usize {
        self.bins[table_index(g_row, g_col) as usize] as usize
    }
}

/// Compare-based binning of float gradients (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct FloatBinner {
    edges: Vec<f64>,
    /// `(cos, sin)` of the edges strictly inside (0, 180), plus the last edge when it is < 180.
    dirs: Vec<(f64, f64)>,
    /// Bin of a pure row gradient (`g_col == 0`), for `g_row > 0` and `g_row < 0`.
    vertical: (usize, usize),
}

/// Relative distance to an edge under which the exact formula decides.
const TIE_TOL: f64 = 1e-9;

impl FloatBinner {
    pub(crate) fn new(orientations: usize) -> Self {
        let edges = edges(orientations);
        let dirs = edges[1..]
            .iter()
            .filter(|&&e| e < 180.0)
            .map(|&e| {
                let r = e.to_radians();
                (r.cos(), r.sin())
            })
            .collect();
        let vertical = (
            bin_of_theta(skimage_theta(1.0, 0.0), &edges),
            bin_of_theta(skimage_theta(-1.0, 0.0), &edges),
        );
        FloatBinner {
            edges,
            dirs,
            vertical,
        }
    }

    /// The bin of gradient `(g_row, g_col)`, identical to scikit-image's.
    #[inline]
    pub(crate) fn bin(&self, g_row: f64, g_col: f64) -> usize {
        if g_row == 0.0 {
            // theta is +0 for any g_col (atan2 of a signed zero is 0 or +-pi; both map to 0).
            return if g_col.is_nan() {
                self.exact(g_row, g_col)
            } else {
                0
            };
        }
        if g_col == 0.0 {
            return if g_row > 0.0 {
                self.vertical.0
            } else if g_row < 0.0 {
                self.vertical.1
            } else {
                self.exact(g_row, g_col)
            };
        }
        // Fold into the upper half-plane: theta and theta + 180 share a bin.
        let (y, x) = if g_row < 0.0 {
            (-g_row, -g_col)
        } else {
            (g_row, g_col)
        };
        let scale = y.abs() + x.abs();
        if !(scale.is_finite()) || y <= TIE_TOL * scale {
            return self.exact(g_row, g_col);
        }
        let mut bin = 0;
        for &(c, s) in &self.dirs {
            // > 0 when theta is past this edge (counter-clockwise of it).
            let cross = y * c - x * s;
            if cross.abs() <= TIE_TOL * scale {
                return self.exact(g_row, g_col);
            }
            if cross > 0.0 {
                bin += 1;
            } else {
                break;
            }
        }
        bin
    }

    #[cold]
    fn exact(&self, g_row: f64, g_col: f64) -> usize {
        bin_of_theta(skimage_theta(g_row, g_col), &self.edges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_mod_matches_numpy_semantics() {
        assert_eq!(floor_mod_180(-1e-300), 180.0);
        assert_eq!(floor_mod_180(-0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(floor_mod_180(-180.0), 0.0);
        assert_eq!(floor_mod_180(180.0), 0.0);
        assert!((floor_mod_180(-90.0) - 90.0).abs() < 1e-12);
    }

    #[test]
    fn edges_are_float64() {
        let e = edges(7);
        assert_eq!(e[1], 180.0f64 / 7.0);
        assert_ne!(e[1], (180.0f64 / 7.0) as f32 as f64);
        assert_eq!(e[7], 180.0);
        assert_eq!(edges(17)[13], 180.0f64 / 17.0 * 13.0);
    }

    #[test]
    fn tiny_negative_angle_falls_in_no_bin() {
        let e = edges(9);
        assert_eq!(bin_of_theta(skimage_theta(-1e-300, 1.0), &e), 9);
        let fb = FloatBinner::new(9);
        assert_eq!(fb.bin(-1e-300, 1.0), 9);
    }

    #[test]
    fn float_binner_agrees_with_table_on_all_integer_gradients() {
        for n in [1, 2, 3, 4, 6, 7, 8, 9, 12, 18, 36] {
            let t = BinTable::get(n);
            let fb = FloatBinner::new(n);
            for gr in -255..=255 {
                for gc in -255..=255 {
                    assert_eq!(
                        fb.bin(gr as f64, gc as f64),
                        t.bin(gr, gc),
                        "n={n} gr={gr} gc={gc}"
                    );
                }
            }
        }
    }

    #[test]
    fn float_binner_agrees_with_formula_on_random_gradients() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        runner
            .run(&(1usize..40, -1e3f64..1e3, -1e3f64..1e3), |(n, gr, gc)| {
                let fb = FloatBinner::new(n);
                let e = edges(n);
                prop_assert_eq!(fb.bin(gr, gc), bin_of_theta(skimage_theta(gr, gc), &e));
                Ok(())
            })
            .unwrap();
    }
}
