//! A plain scalar port of scikit-image's `hog`, line by line: float64 everywhere, `atan2` and a
//! fresh allocation per call. Slow on purpose. It is the oracle that the fast path is tested
//! against (property tests) and the "plain port" baseline in `benches/hog.rs`.

use super::bins::{bin_of_theta, edges, skimage_theta};
use super::{BlockNorm, HogParams, ImageRef, Pixels};
use crate::error::Result;

/// HOG computed the straightforward way (see the module docs). Same output as [`super::Hog`].
pub fn hog(params: &HogParams, img: ImageRef<'_>) -> Result<Vec<f64>> {
    let layout = params.layout(img.rows, img.cols)?;
    let (rows, cols, ch) = (img.rows, img.cols, img.channels);
    let f32_input = matches!(img.pixels, Pixels::F32(_));
    // 1. to float (u8 -> f64 unscaled; f32 stays f32), optional sqrt in that precision.
    let image: Vec<f64> = match img.pixels {
        Pixels::U8(p) => p
            .iter()
            .map(|&v| {
                let v = v as f64;
                if params.transform_sqrt {
                    v.sqrt()
                } else {
                    v
                }
            })
            .collect(),
        Pixels::F32(p) => p
            .iter()
            .map(|&v| if params.transform_sqrt { v.sqrt() } else { v } as f64)
            .collect(),
        Pixels::F64(p) => p
            .iter()
            .map(|&v| if params.transform_sqrt { v.sqrt() } else { v })
            .collect(),
    };
    let sub = |a: f64, b: f64| {
        if f32_input {
            (a as f32 - b as f32) as f64
        } else {
            a - b
        }
    };
    // 2. gradients per channel; 3. pick the channel with the largest magnitude.
    let mut g_row = vec![0f64; rows * cols];
    let mut g_col = vec![0f64; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let mut best = (0.0, 0.0, f64::NEG_INFINITY);
            for k in 0..ch {
                let at = |rr: usize, cc: usize| image[(rr * cols + cc) * ch + k];
                let gr = if r == 0 || r == rows - 1 {
                    0.0
                } else {
                    sub(at(r + 1, c), at(r - 1, c))
                };
                let gc = if c == 0 || c == cols - 1 {
                    0.0
                } else {
                    sub(at(r, c + 1), at(r, c - 1))
                };
                let m = if f32_input {
                    (gr as f32).hypot(gc as f32) as f64
                } else {
                    f64::hypot(gr, gc)
                };
                if m > best.2 {
                    best = (gr, gc, m);
                }
            }
            g_row[r * cols + c] = best.0;
            g_col[r * cols + c] = best.1;
        }
    }
    // 4. histograms: f32 running total, divided by the cell area in f32.
    let n = params.orientations;
    let e = edges(n);
    let (cr, cc) = (params.cell_rows, params.cell_cols);
    let mut hist = vec![0f64; layout.n_cells_row * layout.n_cells_col * n];
    for yi in 0..layout.n_cells_row {
        for xi in 0..layout.n_cells_col {
            for o in 0..n {
                let mut total = 0f32;
                for r in yi * cr..(yi + 1) * cr {
                    for c in xi * cc..(xi + 1) * cc {
                        let (gr, gc) = (g_row[r * cols + c], g_col[r * cols + c]);
                        if bin_of_theta(skimage_theta(gr, gc), &e) == o {
                            total = (total as f64 + f64::hypot(gc, gr)) as f32;
                        }
                    }
                }
                hist[(yi * layout.n_cells_col + xi) * n + o] = (total / (cr * cc) as f32) as f64;
            }
        }
    }
    // 5. blocks.
    let (br, bc) = (params.block_rows, params.block_cols);
    let mut out = Vec::with_capacity(layout.len);
    for r in 0..layout.n_blocks_row {
        for c in 0..layout.n_blocks_col {
            let mut block = Vec::with_capacity(br * bc * n);
            for i in 0..br {
                for j in 0..bc {
                    let cell = (r + i) * layout.n_cells_col + (c + j);
                    block.extend_from_slice(&hist[cell * n..(cell + 1) * n]);
                }
            }
            out.extend(normalise_f64(&block, params.block_norm));
        }
    }
    Ok(out)
}

fn normalise_f64(block: &[f64], norm: BlockNorm) -> Vec<f64> {
    const EPS: f64 = 1e-5;
    let l2 = |b: &[f64]| {
        let s = (b.iter().map(|v| v * v).sum::<f64>() + EPS * EPS).sqrt();
        b.iter().map(|v| v / s).collect::<Vec<_>>()
    };
    match norm {
        BlockNorm::L1 => {
            let s = block.iter().map(|v| v.abs()).sum::<f64>() + EPS;
            block.iter().map(|v| v / s).collect()
        }
        BlockNorm::L1Sqrt => {
            let s = block.iter().map(|v| v.abs()).sum::<f64>() + EPS;
            block.iter().map(|v| (v / s).sqrt()).collect()
        }
        BlockNorm::L2 => l2(block),
        BlockNorm::L2Hys => {
            let v: Vec<f64> = l2(block).into_iter().map(|v| v.min(0.2)).collect();
            l2(&v)
        }
    }
}
