//! Histogram of Oriented Gradients, numerically the same as scikit-image's
//! `skimage.feature.hog` (0.26), and fast.
//!
//! Why not `imageproc::hog`: it interpolates votes between bins, uses another normalisation and
//! another output order, so its numbers are not the reference that most published HOG + SVM
//! results use. This module reproduces scikit-image exactly (the rules below; checked against
//! scikit-image itself by the golden tests in `tests/hog_parity.rs`):
//!
//! * gradients are centred differences without the 1/2 factor, zero on the border rows/columns;
//! * unsigned orientation in [0, 180), hard assignment to `[edge[i], edge[i+1])` ([`bins`]);
//! * cell value = sum of magnitudes in the bin / cell area; partial cells are dropped;
//! * blocks slide one cell at a time; L1, L1-sqrt, L2, L2-Hys with `eps = 1e-5`;
//! * output order (block row, block col, cell row, cell col, orientation);
//! * several channels: per pixel, the channel with the largest gradient magnitude (first wins).
//!
//! Speed: for `u8` input without the square-root transform the bin of every possible integer
//! gradient comes from a 511 x 511 table ([`bins::BinTable`]) and the magnitude from an `f32`
//! square root of an exact integer, so there is no `atan2` and no allocation per pixel; buffers
//! live in a reusable [`HogWorkspace`]. Batches run images in parallel with rayon, one workspace
//! per worker; every image is computed independently, so the output is bit-identical for any
//! thread count.
//!
//! ```
//! use hogsvm::hog::{Hog, HogParams, ImageRef};
//! let img = vec![0u8; 28 * 28];
//! let hog = Hog::new(HogParams::default().cell(4, 4).block(2, 2))?;
//! let v = hog.compute(ImageRef::gray_u8(&img, 28, 28)?)?;
//! assert_eq!(v.len(), 1296);
//! # Ok::<(), hogsvm::Error>(())
//! ```

pub mod bins;
pub mod naive;
mod params;
pub mod visualize;

use std::sync::Arc;

use ndarray::Array2;
use rayon::prelude::*;

pub use params::{BlockNorm, HogLayout, HogParams, MAX_ORIENTATIONS};

use crate::error::{Error, Result};
use bins::{BinTable, FloatBinner};

/// Pixels of an image, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    /// 8-bit values, used as 0..255 (not rescaled), as scikit-image does.
    U8(&'a [u8]),
    /// 32-bit float values (kept in float32 as scikit-image keeps them: square root and
    /// gradients in f32).
    F32(&'a [f32]),
    /// 64-bit float values, NumPy's default float type: square root, gradients, magnitudes and
    /// angles in f64, as scikit-image computes them for float64 (and integer) images.
    F64(&'a [f64]),
}

/// A borrowed image: row-major, channels interleaved (`rows x cols x channels`).
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    pixels: Pixels<'a>,
    rows: usize,
    cols: usize,
    channels: usize,
}

/// `ImageRef` constructors: `name: element type => Pixels variant, channels;`, each checking the
/// length through [`ImageRef::new`].
macro_rules! image_ctors {
    ($($(#[$doc:meta])* $name:ident: $t:ty => $variant:ident, $channels:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(p: &'a [$t], rows: usize, cols: usize) -> Result<Self> {
                Self::new(Pixels::$variant(p), rows, cols, $channels)
            }
        )*
    };
}

impl<'a> ImageRef<'a> {
    /// A view over `pixels` of shape `rows x cols x channels`; checks the length.
    pub fn new(pixels: Pixels<'a>, rows: usize, cols: usize, channels: usize) -> Result<Self> {
        let len = match pixels {
            Pixels::U8(p) => p.len(),
            Pixels::F32(p) => p.len(),
            Pixels::F64(p) => p.len(),
        };
        if channels == 0 {
            return Err(Error::param("channels", "must be at least 1", 0));
        }
        let want = rows.checked_mul(cols).and_then(|v| v.checked_mul(channels));
        if want != Some(len) {
            return Err(Error::ShapeMismatch {
                what: "image buffer".into(),
                expected: format!("{rows}x{cols}x{channels}"),
                got: format!("{len} values"),
            });
        }
        Ok(ImageRef {
            pixels,
            rows,
            cols,
            channels,
        })
    }
    image_ctors! {
        /// Grayscale `u8`, row-major.
        gray_u8: u8 => U8, 1;
        /// Grayscale `f32`, row-major.
        gray_f32: f32 => F32, 1;
        /// Grayscale `f64`, row-major.
        gray_f64: f64 => F64, 1;
        /// RGB `u8`, interleaved (like scikit-image's `channel_axis=-1`).
        rgb_u8: u8 => U8, 3;
        /// RGB `f32`, interleaved.
        rgb_f32: f32 => F32, 3;
        /// RGB `f64`, interleaved.
        rgb_f64: f64 => F64, 3;
    }
    /// Rows (height).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns (width).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Channels per pixel.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// Reusable per-thread buffers, so that computing many images allocates nothing per image.
#[derive(Debug, Default, Clone)]
pub struct HogWorkspace {
    /// Cell histograms, `(n_cells_row * n_cells_col) x orientations`, twice: even and odd
    /// columns accumulate into separate copies (two independent dependency chains), summed at
    /// the end into the first copy.
    hist: Vec<f32>,
    /// Per-row scratch: histogram slot of each pixel.
    slots: Vec<u32>,
    /// Per-row scratch: gradient magnitude of each pixel.
    mags: Vec<f32>,
    /// Float path: the image converted to f64 (after the optional square root).
    fimg: Vec<f64>,
    /// Per-row scratch: bin-table index of each pixel (fast path).
    gidx: Vec<u32>,
    /// Per-row scratch: column gradient of each pixel (fast path).
    gcol: Vec<i32>,
    /// Block normalisation scratch.
    norm: NormScratch,
    /// Fast path: histogram offset of each pixel's cell, and the layout it was built for.
    cell_off: Vec<u32>,
    cell_off_key: Option<(usize, usize, usize, usize, usize, usize, usize)>,
}

impl HogWorkspace {
    /// An empty workspace; it grows to the sizes it meets.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A validated HOG extractor. Cheap to clone; construct once and reuse.
#[derive(Debug, Clone)]
pub struct Hog {
    params: HogParams,
    table: Arc<BinTable>,
    binner: FloatBinner,
}

impl Hog {
    /// Validate `params` and prepare the lookup tables.
    pub fn new(params: HogParams) -> Result<Self> {
        params.validate()?;
        Ok(Hog {
            params,
            table: BinTable::get(params.orientations),
            binner: FloatBinner::new(params.orientations),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &HogParams {
        &self.params
    }

    /// Layout (cells, blocks, length) for an image size.
    pub fn layout(&self, rows: usize, cols: usize) -> Result<HogLayout> {
        self.params.layout(rows, cols)
    }

    /// Feature length for an image size.
    pub fn feature_len(&self, rows: usize, cols: usize) -> Result<usize> {
        self.params.feature_len(rows, cols)
    }

    /// HOG of one image as a new vector.
    pub fn compute(&self, img: ImageRef<'_>) -> Result<Vec<f32>> {
        let layout = self.layout(img.rows, img.cols)?;
        let mut out = vec![0f32; layout.len];
        self.compute_into(img, &mut HogWorkspace::new(), &mut out)?;
        Ok(out)
    }

    /// HOG of one image into `out` (length [`Hog::feature_len`]), reusing `ws`.
    pub fn compute_into(
        &self,
        img: ImageRef<'_>,
        ws: &mut HogWorkspace,
        out: &mut [f32],
    ) -> Result<()> {
        let layout = self.layout(img.rows, img.cols)?;
        if out.len() != layout.len {
            return Err(Error::ShapeMismatch {
                what: "HOG output buffer".into(),
                expected: layout.len.to_string(),
                got: out.len().to_string(),
            });
        }
        self.cell_histograms_into(img, &layout, ws);
        normalise_blocks_dispatch(self, &layout, &ws.hist, &mut ws.norm, out);
        Ok(())
    }

    /// Un-normalised cell histograms, `n_cells_row x n_cells_col x orientations` (what
    /// scikit-image draws with `visualize=True`).
    pub fn cell_histograms(&self, img: ImageRef<'_>) -> Result<(HogLayout, Vec<f32>)> {
        let layout = self.layout(img.rows, img.cols)?;
        let mut ws = HogWorkspace::new();
        self.cell_histograms_into(img, &layout, &mut ws);
        let n = self.params.orientations;
        let cells = layout.n_cells_row * layout.n_cells_col;
        // The first of the two copies holds the sums (no second allocation for a large image).
        let mut h = std::mem::take(&mut ws.hist);
        h.truncate(cells * n);
        Ok((layout, h))
    }

    /// HOG of a batch of same-size images, one row per image, computed in parallel on the
    /// current rayon pool. The result does not depend on the number of threads.
    pub fn compute_batch(&self, images: &[ImageRef<'_>]) -> Result<Array2<f32>> {
        let (rows, cols) = batch_size(images)?;
        self.batch_with(images.len(), rows, cols, |i| images[i])
    }

    /// Like [`Hog::compute_batch`], into `out` (`images.len() x feature_len`, row-major): for a
    /// caller that reuses one buffer, or fills a larger array (a memory-mapped file) in chunks.
    pub fn compute_batch_into(&self, images: &[ImageRef<'_>], out: &mut [f32]) -> Result<()> {
        let (rows, cols) = batch_size(images)?;
        let layout = self.layout(rows, cols)?;
        let want = images.len() * layout.len;
        if out.len() != want {
            return Err(Error::ShapeMismatch {
                what: "HOG batch output buffer".into(),
                expected: format!(
                    "{} images x {} features = {want} values",
                    images.len(),
                    layout.len
                ),
                got: format!("{} values", out.len()),
            });
        }
        self.batch_into(&layout, out, |i| images[i]);
        Ok(())
    }

    /// HOG of `n` grayscale `u8` images stored back to back (`n x rows x cols`).
    pub fn compute_batch_u8(&self, pixels: &[u8], rows: usize, cols: usize) -> Result<Array2<f32>> {
        let per = rows.checked_mul(cols).unwrap_or(0);
        if per == 0 || !pixels.len().is_multiple_of(per) {
            return Err(Error::ShapeMismatch {
                what: "batch buffer".into(),
                expected: format!("a multiple of {rows}x{cols}"),
                got: format!("{} values", pixels.len()),
            });
        }
        let n = pixels.len() / per;
        self.batch_with(n, rows, cols, |i| ImageRef {
            pixels: Pixels::U8(&pixels[i * per..(i + 1) * per]),
            rows,
            cols,
            channels: 1,
        })
    }

    /// Like [`Hog::compute_batch_u8`], into `out` (`n x feature_len`, row-major), so that a
    /// caller can process a large dataset in chunks (e.g. to drive a progress bar).
    pub fn compute_batch_u8_into(
        &self,
        pixels: &[u8],
        rows: usize,
        cols: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let layout = self.layout(rows, cols)?;
        let per = rows * cols;
        let n = pixels.len() / per;
        if pixels.len() != n * per || out.len() != n * layout.len {
            return Err(Error::ShapeMismatch {
                what: "batch buffers".into(),
                expected: format!(
                    "{n} images of {rows}x{cols} and {} output values",
                    n * layout.len
                ),
                got: format!("{} pixels, {} output values", pixels.len(), out.len()),
            });
        }
        self.batch_into(&layout, out, |i| ImageRef {
            pixels: Pixels::U8(&pixels[i * per..(i + 1) * per]),
            rows,
            cols,
            channels: 1,
        });
        Ok(())
    }

    fn batch_with<'a, F>(&self, n: usize, rows: usize, cols: usize, get: F) -> Result<Array2<f32>>
    where
        F: Fn(usize) -> ImageRef<'a> + Sync,
    {
        let layout = self.layout(rows, cols)?;
        let mut out = Array2::<f32>::zeros((n, layout.len));
        let flat = out
            .as_slice_mut()
            .expect("a freshly allocated Array2 is contiguous");
        self.batch_into(&layout, flat, get);
        Ok(out)
    }

    /// Parallel core of the batch functions: image `i` goes to `out[i * len..(i + 1) * len]`.
    ///
    /// Each worker starts from a clone of one prepared workspace (so per-layout tables are
    /// built once per batch, not once per rayon split), and splits are at least a few images
    /// long so that the per-split cost stays negligible.
    fn batch_into<'a, F>(&self, layout: &HogLayout, out: &mut [f32], get: F)
    where
        F: Fn(usize) -> ImageRef<'a> + Sync,
    {
        if out.is_empty() {
            return;
        }
        let mut template = HogWorkspace::new();
        let band = band_rows(layout.rows, layout.cols, 1);
        self.prepare_cell_offsets(layout, &mut template, 0, band.min(layout.rows));
        out.par_chunks_mut(layout.len)
            .with_min_len(16)
            .enumerate()
            .for_each_init(
                || template.clone(),
                |ws, (i, row)| {
                    self.cell_histograms_into(get(i), layout, ws);
                    normalise_blocks_dispatch(self, layout, &ws.hist, &mut ws.norm, row);
                },
            );
    }

    /// Fill `ws.hist` with the cell histograms (already divided by the cell area).
    fn cell_histograms_into(&self, img: ImageRef<'_>, layout: &HogLayout, ws: &mut HogWorkspace) {
        let band = band_rows(img.rows, img.cols, img.channels);
        self.cell_histograms_in_bands(img, layout, ws, band)
    }

    /// [`Hog::cell_histograms_into`] in bands of `band` rows (an even count, or all rows).
    fn cell_histograms_in_bands(
        &self,
        img: ImageRef<'_>,
        layout: &HogLayout,
        ws: &mut HogWorkspace,
        band: usize,
    ) {
        let n = self.params.orientations;
        let cells = layout.n_cells_row * layout.n_cells_col;
        ws.hist.clear();
        ws.hist.resize(2 * cells * n, 0.0);
        let used_cols = layout.n_cells_col * self.params.cell_cols;
        ws.slots.resize(used_cols, 0);
        ws.mags.resize(used_cols, 0.0);
        ws.gidx.resize(used_cols, 0);
        ws.gcol.resize(used_cols, 0);
        // Bands of rows, so that the per-pixel work arrays of a large image stay small (one band
        // for any image up to BAND_PIXELS). Each pixel adds into its own cell's bins in the
        // same order either way, so the histograms are the same bits.
        for r0 in (0..img.rows).step_by(band) {
            let r1 = (r0 + band).min(img.rows);
            match img.pixels {
                Pixels::U8(p) if !self.params.transform_sqrt => hist_u8_dispatch(
                    self,
                    p,
                    (img.rows, img.cols, img.channels),
                    layout,
                    ws,
                    (r0, r1),
                ),
                Pixels::U8(p) => {
                    // scikit-image: u8 -> float64, then sqrt.
                    let f0 = self.prepare_float_band(layout, ws, (r0, r1));
                    ws.fimg.extend(
                        band_values(p, img, f0, r1)
                            .iter()
                            .map(|&v| (v as f64).sqrt()),
                    );
                    self.hist_float(img, layout, ws, (r0, r1), f0)
                }
                Pixels::F32(p) => {
                    let f0 = self.prepare_float_band(layout, ws, (r0, r1));
                    let v = band_values(p, img, f0, r1).iter();
                    if self.params.transform_sqrt {
                        // float32 stays float32 in scikit-image: sqrt in f32.
                        ws.fimg.extend(v.map(|&v| v.sqrt() as f64));
                    } else {
                        ws.fimg.extend(v.map(|&v| v as f64));
                    }
                    self.hist_float(img, layout, ws, (r0, r1), f0)
                }
                Pixels::F64(p) => {
                    let f0 = self.prepare_float_band(layout, ws, (r0, r1));
                    let v = band_values(p, img, f0, r1);
                    if self.params.transform_sqrt {
                        ws.fimg.extend(v.iter().map(|&v| v.sqrt()));
                    } else {
                        ws.fimg.extend_from_slice(v);
                    }
                    self.hist_float(img, layout, ws, (r0, r1), f0)
                }
            }
        }
        let area = (self.params.cell_rows * self.params.cell_cols) as f32;
        let (even, odd) = ws.hist.split_at_mut(cells * n);
        for (v, &o) in even.iter_mut().zip(odd.iter()) {
            *v = (*v + o) / area;
        }
    }

    /// Cell offsets for the rows `r0..r1`, an empty `ws.fimg`, and the first image row the float
    /// path's `ws.fimg` will hold (one row of halo above the band, for the gradients).
    fn prepare_float_band(
        &self,
        layout: &HogLayout,
        ws: &mut HogWorkspace,
        (r0, r1): (usize, usize),
    ) -> usize {
        self.prepare_cell_offsets(layout, ws, r0, r1);
        ws.fimg.clear();
        r0.saturating_sub(1)
    }

    /// Add one row of (slot, magnitude) pairs into the histograms: even columns into the first
    /// copy, odd columns into the second.
    #[inline]
    fn accumulate_row(hist: &mut [f32], slots: &[u32], mags: &[f32]) {
        let (even, odd) = hist.split_at_mut(hist.len() / 2);
        let mut s = slots.chunks_exact(2);
        let mut m = mags.chunks_exact(2);
        for (sp, mp) in (&mut s).zip(&mut m) {
            even[sp[0] as usize] += mp[0];
            odd[sp[1] as usize] += mp[1];
        }
        for (&sl, &mg) in s.remainder().iter().zip(m.remainder()) {
            even[sl as usize] += mg;
        }
    }

    /// Fast path: u8 pixels, integer gradients, table bins.
    ///
    /// Whole-image passes rather than row by row (a 28-pixel row is too short to amortise a
    /// loop): (1) gradients, magnitudes and table indices over the flat image, vectorised;
    /// (2) table look-ups into histogram slots; (3) accumulation. `grad` gives the pixels'
    /// gradients ([`U8Gradients`]: of the one channel, or of the channel with the largest
    /// magnitude).
    #[inline(always)]
    fn hist_u8(
        &self,
        rows: usize,
        cols: usize,
        layout: &HogLayout,
        ws: &mut HogWorkspace,
        (r0, r1): (usize, usize),
        grad: impl U8Gradients,
    ) {
        let n = self.params.orientations;
        // The band's pixels, `base..base + npx` of the flat image; `r0` is even (see
        // `band_rows`), so a pixel's parity in the band is its parity in the image and
        // `accumulate_row` pairs the same pixels as for the whole image at once.
        let (base, npx) = (r0 * cols, (r1 - r0) * cols);
        let table = self.table.raw();
        self.prepare_cell_offsets(layout, ws, r0, r1);
        ws.mags.resize(npx, 0.0);
        ws.gidx.resize(npx, 0);
        ws.slots.resize(npx, 0);
        let (mags, gidx) = (&mut ws.mags[..npx], &mut ws.gidx[..npx]);
        // (1) Interior rows, every column; the two border columns are redone below.
        let (i0, i1) = (r0.max(1), r1.min(rows.saturating_sub(1)));
        if i0 < i1 {
            let body = (i0 * cols - base)..(i1 * cols - base);
            grad.interior(i0 * cols, &mut mags[body.clone()], &mut gidx[body]);
        }
        // Border rows (no row gradient) and border columns (no column gradient).
        for r in r0..r1 {
            let vertical = r > 0 && r + 1 < rows;
            if !vertical {
                for c in 1..cols.saturating_sub(1) {
                    let k = r * cols + c;
                    let (gr, gc) = grad.at(k, false, true);
                    put(&mut mags[k - base], &mut gidx[k - base], gr, gc);
                }
            }
            for c in [0, cols - 1] {
                let k = r * cols + c;
                let (gr, gc) = grad.at(k, vertical, false);
                put(&mut mags[k - base], &mut gidx[k - base], gr, gc);
            }
        }
        // (2) Histogram slots. Masking the index to the table's power-of-two length removes
        // the bounds check (indices are already in range).
        let slots = &mut ws.slots[..npx];
        let offs = &ws.cell_off[..npx];
        let covers_image = layout.n_cells_row * self.params.cell_rows == rows
            && layout.n_cells_col * self.params.cell_cols == cols;
        if covers_image && !self.table.has_no_bin() {
            for ((s, &gi), &off) in slots.iter_mut().zip(gidx.iter()).zip(offs) {
                *s = off + table[gi as usize & (bins::TABLE_LEN - 1)] as u32;
            }
        } else {
            // Pixels outside every cell, or in no bin, add 0 to slot 0.
            for (((s, m), &gi), &off) in slots
                .iter_mut()
                .zip(mags.iter_mut())
                .zip(gidx.iter())
                .zip(offs)
            {
                let b = table[gi as usize & (bins::TABLE_LEN - 1)] as u32;
                let keep = b < n as u32 && off != u32::MAX;
                *s = if keep { off + b } else { 0 };
                if !keep {
                    *m = 0.0;
                }
            }
        }
        // (3) Accumulate.
        Self::accumulate_row(&mut ws.hist, slots, mags);
    }

    /// Per-pixel histogram offset of the pixel's cell (`u32::MAX` outside every cell) for the
    /// image rows `r0..r1` (row `r0` first), cached in the workspace for the current layout and
    /// band.
    fn prepare_cell_offsets(
        &self,
        layout: &HogLayout,
        ws: &mut HogWorkspace,
        r0: usize,
        r1: usize,
    ) {
        let key = (
            layout.rows,
            layout.cols,
            self.params.cell_rows,
            self.params.cell_cols,
            self.params.orientations,
            r0,
            r1,
        );
        if ws.cell_off_key == Some(key) {
            return;
        }
        let n = self.params.orientations;
        let (cr, cc) = (self.params.cell_rows, self.params.cell_cols);
        let used_rows = layout.n_cells_row * cr;
        ws.cell_off.clear();
        ws.cell_off.resize((r1 - r0) * layout.cols, u32::MAX);
        for r in r0..r1.min(used_rows) {
            let yi = r / cr;
            let row = &mut ws.cell_off[(r - r0) * layout.cols..(r - r0 + 1) * layout.cols];
            for xi in 0..layout.n_cells_col {
                let off = ((yi * layout.n_cells_col + xi) * n) as u32;
                row[xi * cc..(xi + 1) * cc].fill(off);
            }
        }
        ws.cell_off_key = Some(key);
    }

    /// Float path (f32 input, or any input with the square-root transform): gradients in f64
    /// from `ws.fimg`, compare-based bins.
    // `c` indexes the pixel, its cell offset, slot and magnitude together.
    #[allow(clippy::needless_range_loop)]
    /// `ws.fimg` holds the image's rows from `f0` on (the band `r0..r1` and a row of halo on
    /// each side), `ws.cell_off` the band's offsets.
    fn hist_float(
        &self,
        img: ImageRef<'_>,
        layout: &HogLayout,
        ws: &mut HogWorkspace,
        (r0, r1): (usize, usize),
        f0: usize,
    ) {
        let n = self.params.orientations;
        let (rows, cols, ch) = (img.rows, img.cols, img.channels);
        let used_rows = layout.n_cells_row * self.params.cell_rows;
        let used_cols = layout.n_cells_col * self.params.cell_cols;
        // Gradients are differences in the input's precision: f32 inputs subtract in f32.
        let f32_input = matches!(img.pixels, Pixels::F32(_));
        let f = &ws.fimg;
        let diff = |a: f64, b: f64| -> f64 {
            if f32_input {
                (a as f32 - b as f32) as f64
            } else {
                a - b
            }
        };
        let px = |r: usize, c: usize, k: usize| f[((r - f0) * cols + c) * ch + k];
        for r in r0..r1.min(used_rows) {
            let offs = &ws.cell_off[(r - r0) * cols..(r - r0) * cols + used_cols];
            let vertical = r > 0 && r + 1 < rows;
            for c in 0..used_cols {
                let horizontal = c > 0 && c + 1 < cols;
                let (mut best_gr, mut best_gc, mut best_m) = (0f64, 0f64, f64::NEG_INFINITY);
                for k in 0..ch {
                    let gr = if vertical {
                        diff(px(r + 1, c, k), px(r - 1, c, k))
                    } else {
                        0.0
                    };
                    let gc = if horizontal {
                        diff(px(r, c + 1, k), px(r, c - 1, k))
                    } else {
                        0.0
                    };
                    let m = if ch == 1 {
                        0.0
                    } else if f32_input {
                        (gr as f32).hypot(gc as f32) as f64
                    } else {
                        gr.hypot(gc)
                    };
                    if m > best_m {
                        (best_gr, best_gc, best_m) = (gr, gc, m);
                    }
                }
                let bin = self.binner.bin(best_gr, best_gc);
                // f64 squares of image-range gradients neither overflow nor underflow, so the
                // plain formula equals hypot to the last bits that matter here.
                let (bin, m) = if bin < n {
                    (bin, (best_gr * best_gr + best_gc * best_gc).sqrt() as f32)
                } else {
                    (0, 0.0)
                };
                ws.slots[c] = offs[c] + bin as u32;
                ws.mags[c] = m;
            }
            Self::accumulate_row(&mut ws.hist, &ws.slots[..used_cols], &ws.mags[..used_cols]);
        }
    }

    /// Normalise every block of `hist` into `out`, in scikit-image's output order.
    ///
    /// A block's norm is the sum of its cells' norms, so per-cell sums are computed once
    /// (`cells` values instead of `blocks x cells per block`); the factors of all blocks are then
    /// computed together (their square roots vectorise), and the copy out of `hist` is fused
    /// with the scaling (and, for L2-Hys, with the clip and the second sum).
    #[inline(always)]
    fn normalise_blocks(
        &self,
        layout: &HogLayout,
        hist: &[f32],
        scratch: &mut NormScratch,
        out: &mut [f32],
    ) {
        const EPS: f32 = 1e-5;
        let n = self.params.orientations;
        let norm = self.params.block_norm;
        let (br, bc) = (self.params.block_rows, self.params.block_cols);
        let block_len = br * bc * n;
        let row_len = bc * n;
        let cells = layout.n_cells_row * layout.n_cells_col;
        // Per-cell sums (L1: sum of |v|; L2: sum of v^2).
        let l1 = matches!(norm, BlockNorm::L1 | BlockNorm::L1Sqrt);
        scratch.cell.clear();
        scratch
            .cell
            .extend(hist[..cells * n].chunks_exact(n).map(|h| {
                if l1 {
                    lane_sum(h, f32::abs)
                } else {
                    lane_sum(h, |v| v * v)
                }
            }));
        // Per-block factors.
        scratch.block.clear();
        for r in 0..layout.n_blocks_row {
            for c in 0..layout.n_blocks_col {
                let mut s = 0f32;
                for i in 0..br {
                    let first = (r + i) * layout.n_cells_col + c;
                    for &v in &scratch.cell[first..first + bc] {
                        s += v;
                    }
                }
                scratch.block.push(s);
            }
        }
        if l1 {
            scratch.block.iter_mut().for_each(|s| *s = 1.0 / (*s + EPS));
        } else {
            scratch
                .block
                .iter_mut()
                .for_each(|s| *s = 1.0 / (*s + EPS * EPS).sqrt());
        }
        // Copy out of `hist`, scaled.
        let mut b = 0;
        for r in 0..layout.n_blocks_row {
            for c in 0..layout.n_blocks_col {
                let block = &mut out[b * block_len..(b + 1) * block_len];
                let k = scratch.block[b];
                let mut acc = [0f32; 4];
                for (i, dst) in block.chunks_exact_mut(row_len).enumerate() {
                    let first = ((r + i) * layout.n_cells_col + c) * n;
                    let src = &hist[first..first + row_len];
                    match norm {
                        BlockNorm::L1 | BlockNorm::L2 => {
                            dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v * k)
                        }
                        BlockNorm::L1Sqrt => dst
                            .iter_mut()
                            .zip(src)
                            .for_each(|(d, &v)| *d = (v * k).sqrt()),
                        BlockNorm::L2Hys => clip_row(dst, src, k, &mut acc),
                    }
                }
                if norm == BlockNorm::L2Hys {
                    scratch.block[b] = (acc[0] + acc[2]) + (acc[1] + acc[3]);
                }
                b += 1;
            }
        }
        // L2-Hys: second normalisation of the clipped values.
        if norm == BlockNorm::L2Hys {
            scratch
                .block
                .iter_mut()
                .for_each(|s| *s = 1.0 / (*s + EPS * EPS).sqrt());
            for (blk, &k) in out.chunks_exact_mut(block_len).zip(scratch.block.iter()) {
                blk.iter_mut().for_each(|v| *v *= k);
            }
        }
    }
}

/// L2-Hys first stage for one row of a block: `dst = min(src * k, 0.2)`, adding the squares
/// to `acc`. Common row lengths get a fixed-size copy so the loop unrolls completely.
#[inline(always)]
fn clip_row(dst: &mut [f32], src: &[f32], k: f32, acc: &mut [f32; 4]) {
    #[inline(always)]
    fn fixed<const L: usize>(dst: &mut [f32], src: &[f32], k: f32, acc: &mut [f32; 4]) {
        let d: &mut [f32; L] = dst.try_into().expect("row length checked by the caller");
        let s: &[f32; L] = src.try_into().expect("row length checked by the caller");
        for j in 0..L {
            let w = s[j] * k;
            // `if` rather than f32::min: NaN stays NaN, as with numpy's minimum.
            let w = if w > 0.2 { 0.2 } else { w };
            d[j] = w;
            acc[j % 4] += w * w;
        }
    }
    match dst.len() {
        18 => fixed::<18>(dst, src, k, acc),
        27 => fixed::<27>(dst, src, k, acc),
        36 => fixed::<36>(dst, src, k, acc),
        9 => fixed::<9>(dst, src, k, acc),
        _ => {
            for (j, (d, &v)) in dst.iter_mut().zip(src).enumerate() {
                let w = v * k;
                let w = if w > 0.2 { 0.2 } else { w };
                *d = w;
                acc[j % 4] += w * w;
            }
        }
    }
}

// Runtime dispatch: the two hot kernels are compiled twice, for the baseline target and for
// AVX2 + FMA, and the best one the CPU supports is picked at run time (no `target-cpu=native`
// needed). Rust never contracts `a * b + c` into an FMA on its own and every reduction here has
// an explicit order, so both versions give bit-identical results.

/// [`Hog::hist_u8`] compiled for AVX2 + FMA as well as the baseline (chosen at run time), with
/// the channel count a constant for gray and RGB.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn hist_u8_dispatch(
    hog: &Hog,
    p: &[u8],
    (rows, cols, channels): (usize, usize, usize),
    layout: &HogLayout,
    ws: &mut HogWorkspace,
    band: (usize, usize),
) {
    match channels {
        1 => hog.hist_u8(
            rows,
            cols,
            layout,
            ws,
            band,
            BestGradient::<1> { p, cols, ch: 1 },
        ),
        3 => hog.hist_u8(
            rows,
            cols,
            layout,
            ws,
            band,
            BestGradient::<3> { p, cols, ch: 3 },
        ),
        ch => hog.hist_u8(
            rows,
            cols,
            layout,
            ws,
            band,
            BestGradient::<0> { p, cols, ch },
        ),
    }
}

/// Pixel `k`'s magnitude and gradient-table index from its integer gradient.
#[inline(always)]
fn put(m: &mut f32, gi: &mut u32, gr: i32, gc: i32) {
    *m = ((gr * gr + gc * gc) as f32).sqrt();
    *gi = bins::table_index(gr, gc);
}

/// The integer gradients of a u8 image with `CH` interleaved channels (`CH == 0`: a channel
/// count known only at run time, `ch`): central differences per channel, and of the channels
/// the one with the largest magnitude (the first on a tie), as scikit-image's
/// `hog(..., channel_axis=-1)` picks by `argmax` of `hypot` (a monotone function of the
/// integer `gr² + gc²`).
#[derive(Clone, Copy)]
struct BestGradient<'a, const CH: usize> {
    p: &'a [u8],
    cols: usize,
    ch: usize,
}

/// Gradients of the pixels of a u8 image, for [`Hog::hist_u8`].
trait U8Gradients {
    /// Pixel `k`'s gradient (row, column); a direction that is `false` is an image border,
    /// with gradient 0 there.
    fn at(&self, k: usize, vertical: bool, horizontal: bool) -> (i32, i32);

    /// Magnitudes and table indices of the pixels `k0..k0 + mags.len()`, all of them in rows
    /// with a row above and below (their border columns are redone by the caller).
    #[inline(always)]
    fn interior(&self, k0: usize, mags: &mut [f32], gidx: &mut [u32]) {
        interior_by_pixel(self, k0, mags, gidx)
    }
}

/// [`U8Gradients::interior`] one pixel at a time through [`U8Gradients::at`].
#[inline(always)]
fn interior_by_pixel(
    g: &(impl U8Gradients + ?Sized),
    k0: usize,
    mags: &mut [f32],
    gidx: &mut [u32],
) {
    for (i, (m, gi)) in mags.iter_mut().zip(gidx.iter_mut()).enumerate() {
        let (gr, gc) = g.at(k0 + i, true, true);
        put(m, gi, gr, gc);
    }
}

impl<const CH: usize> U8Gradients for BestGradient<'_, CH> {
    #[inline(always)]
    fn at(&self, k: usize, vertical: bool, horizontal: bool) -> (i32, i32) {
        let (p, cols) = (self.p, self.cols);
        let ch = if CH == 0 { self.ch } else { CH };
        let (mut best_gr, mut best_gc, mut best_m2) = (0i32, 0i32, -1i32);
        for c in 0..ch {
            let gr = if vertical {
                p[(k + cols) * ch + c] as i32 - p[(k - cols) * ch + c] as i32
            } else {
                0
            };
            let gc = if horizontal {
                p[(k + 1) * ch + c] as i32 - p[(k - 1) * ch + c] as i32
            } else {
                0
            };
            let m2 = gr * gr + gc * gc;
            if m2 > best_m2 {
                (best_gr, best_gc, best_m2) = (gr, gc, m2);
            }
        }
        (best_gr, best_gc)
    }

    /// For RGB, in chunks of pixels: the per-channel differences over contiguous slices of
    /// interleaved values first (which vectorise), then the choice of channel per pixel.
    #[inline(always)]
    fn interior(&self, k0: usize, mags: &mut [f32], gidx: &mut [u32]) {
        if CH != 3 {
            return interior_by_pixel(self, k0, mags, gidx);
        }
        const CHUNK: usize = 64;
        let (p, cols) = (self.p, self.cols);
        let mut gr = [0i32; 3 * CHUNK];
        let mut gc = [0i32; 3 * CHUNK];
        for (j, (mc, gic)) in mags
            .chunks_mut(CHUNK)
            .zip(gidx.chunks_mut(CHUNK))
            .enumerate()
        {
            let (a, v) = ((k0 + j * CHUNK) * 3, mc.len() * 3);
            let (up, down) = (&p[a - cols * 3..][..v], &p[a + cols * 3..][..v]);
            let (left, right) = (&p[a - 3..][..v], &p[a + 3..][..v]);
            for (g, (&d, &u)) in gr[..v].iter_mut().zip(down.iter().zip(up)) {
                *g = d as i32 - u as i32;
            }
            for (g, (&r, &l)) in gc[..v].iter_mut().zip(right.iter().zip(left)) {
                *g = r as i32 - l as i32;
            }
            let pixels = gr[..v].chunks_exact(3).zip(gc[..v].chunks_exact(3));
            for ((m, gi), (r, c)) in mc.iter_mut().zip(gic.iter_mut()).zip(pixels) {
                let m2 = [
                    r[0] * r[0] + c[0] * c[0],
                    r[1] * r[1] + c[1] * c[1],
                    r[2] * r[2] + c[2] * c[2],
                ];
                let mut best = 0;
                if m2[1] > m2[best] {
                    best = 1;
                }
                if m2[2] > m2[best] {
                    best = 2;
                }
                put(m, gi, r[best], c[best]);
            }
        }
    }
}

/// Largest image (pixels times channels) whose histograms are computed in one pass over whole
/// per-pixel arrays; a larger one goes in bands of rows of about this size (16 MiB of f32
/// magnitudes), so that HOG's memory beyond the image itself does not grow with it.
pub const BAND_PIXELS: usize = 1 << 22;

/// Rows per band for an image of `rows x cols x channels`: all of them up to
/// [`BAND_PIXELS`] values, else an even number (at least 2), so that every band starts on an
/// even pixel index.
fn band_rows(rows: usize, cols: usize, channels: usize) -> usize {
    let per_row = cols.saturating_mul(channels).max(1);
    if rows.saturating_mul(per_row) <= BAND_PIXELS {
        return rows.max(1);
    }
    ((BAND_PIXELS / per_row) & !1).max(2)
}

/// The values of image rows `f0..min(r1 + 1, rows)` (the band `r0..r1` with its halo rows).
fn band_values<'a, T>(p: &'a [T], img: ImageRef<'_>, f0: usize, r1: usize) -> &'a [T] {
    let row = img.cols * img.channels;
    &p[f0 * row..(r1 + 1).min(img.rows) * row]
}

#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn normalise_blocks_dispatch(
    hog: &Hog,
    layout: &HogLayout,
    hist: &[f32],
    scratch: &mut NormScratch,
    out: &mut [f32],
) {
    hog.normalise_blocks(layout, hist, scratch, out)
}

/// The common `(rows, cols)` of a non-empty batch; a typed error naming the first image of
/// another size.
fn batch_size(images: &[ImageRef<'_>]) -> Result<(usize, usize)> {
    let (rows, cols) = match images.first() {
        Some(i) => (i.rows, i.cols),
        None => return Err(Error::param("images", "batch is empty", 0)),
    };
    for (idx, im) in images.iter().enumerate() {
        if (im.rows, im.cols) != (rows, cols) {
            return Err(Error::ShapeMismatch {
                what: format!("image {idx} of the batch"),
                expected: format!("{rows}x{cols} like image 0"),
                got: format!("{}x{}", im.rows, im.cols),
            });
        }
    }
    Ok((rows, cols))
}

/// Scratch space of the block normalisation.
#[derive(Debug, Default, Clone)]
struct NormScratch {
    /// Per-cell sums.
    cell: Vec<f32>,
    /// Per-block sums, then factors.
    block: Vec<f32>,
}

/// Sum of `f(v)` over `v`, accumulated in eight lanes.
#[inline(always)]
fn lane_sum(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for ch in &mut chunks {
        for k in 0..8 {
            acc[k] += f(ch[k]);
        }
    }
    let mut s = 0f32;
    for &x in chunks.remainder() {
        s += f(x);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bands of rows give the same histogram bits as one pass over the whole image, for every
    /// path (gray u8, colour u8, the float paths), odd widths and cell sizes that do not divide
    /// the image included (defect class: memory of a large image grew with it).
    #[test]
    fn banded_histograms_are_the_same_bits() {
        let (rows, cols) = (37, 29);
        let gray: Vec<u8> = (0..rows * cols)
            .map(|i| ((i * 7919 + i / 13 * 31) % 251) as u8)
            .collect();
        let rgb: Vec<u8> = (0..rows * cols * 3)
            .map(|i| ((i * 104729) % 253) as u8)
            .collect();
        let f32s: Vec<f32> = gray.iter().map(|&v| v as f32 / 255.0).collect();
        for (cell, sqrt) in [(4, false), (3, true), (5, false), (8, true)] {
            let hog = Hog::new(
                HogParams::default()
                    .cell(cell, cell)
                    .block(2, 2)
                    .transform_sqrt(sqrt),
            )
            .unwrap();
            for img in [
                ImageRef::gray_u8(&gray, rows, cols).unwrap(),
                ImageRef::new(Pixels::U8(&rgb), rows, cols, 3).unwrap(),
                ImageRef::gray_f32(&f32s, rows, cols).unwrap(),
            ] {
                let layout = hog.layout(rows, cols).unwrap();
                let mut whole = HogWorkspace::new();
                hog.cell_histograms_in_bands(img, &layout, &mut whole, rows);
                for band in [2, 4, 6, 10] {
                    let mut ws = HogWorkspace::new();
                    hog.cell_histograms_in_bands(img, &layout, &mut ws, band);
                    let k = layout.n_cells_row * layout.n_cells_col * hog.params().orientations;
                    assert_eq!(
                        whole.hist[..k]
                            .iter()
                            .map(|v| v.to_bits())
                            .collect::<Vec<_>>(),
                        ws.hist[..k].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "cell {cell}, sqrt {sqrt}, {} channels, band {band}",
                        img.channels()
                    );
                }
            }
        }
        assert_eq!(band_rows(10, 10, 1), 10);
        let b = band_rows(100_000, 3001, 1);
        assert!(b.is_multiple_of(2) && b * 3001 <= BAND_PIXELS);
    }
}
