//! One layer of the folded network (convolution with batch norm folded in, or dense), in float
//! (the reference, used for calibration) and in int8, with the helpers both share: im2col over
//! NHWC images, 2x2 max-pooling, per-image affine u8 quantisation.
//!
//! Layout: activations are NHWC (channels last), so im2col copies runs of `c` values; the
//! weights are `k x n` with `k` in (ky, kx, channel) order for a convolution and in NHWC flatten
//! order for the first dense layer after the convolutions. The model file and ONNX keep the
//! float model's own orders ([`Layer::file_weight`]).

use serde::{Deserialize, Serialize};

use super::gemm::{gemm_u8i8, Isa, PackedB};

/// Affine u8 quantisation: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    /// Step between two codes.
    pub scale: f32,
    /// The code of 0.0.
    pub zero_point: u8,
}

impl QParams {
    /// The parameters covering `[lo, hi]` widened to contain 0 (so that 0, the padding and the
    /// ReLU floor, is exact); min/max calibration.
    pub fn from_range(lo: f32, hi: f32) -> QParams {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = (hi - lo) / 255.0;
        if !(scale.is_finite() && scale > 0.0) {
            return QParams {
                scale: 1.0,
                zero_point: 0,
            };
        }
        let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
        QParams { scale, zero_point }
    }

    /// The code of `x` (ONNX QuantizeLinear: divide, round half to even, saturate).
    #[inline]
    pub fn quantize(self, x: f32) -> u8 {
        // Round half to even by adding and taking away 1.5 * 2^23 (exact below 2^22 in
        // magnitude, hence the clamp, which changes no code): `round_ties_even` is a libm call
        // on x86-64 without SSE4.1.
        const MAGIC: f32 = 12_582_912.0;
        let v = (x / self.scale).clamp(-512.0, 512.0);
        ((v + MAGIC) - MAGIC + f32::from(self.zero_point)).clamp(0.0, 255.0) as u8
    }

    /// The value of code `q`.
    pub fn dequantize(self, q: u8) -> f32 {
        self.scale * (f32::from(q) - f32::from(self.zero_point))
    }
}

/// What a layer does to its input's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geom {
    /// A `kh x kw` convolution, stride 1, padding 1, over `c_in` channels, then ReLU and 2x2
    /// max-pooling (floor).
    Conv {
        /// Kernel rows.
        kh: usize,
        /// Kernel columns.
        kw: usize,
        /// Input channels.
        c_in: usize,
    },
    /// A dense layer; `from` is the (rows, cols, channels) of the conv output it flattens, if it
    /// is the first dense layer after convolutions.
    Dense {
        /// The flattened feature map's shape.
        from: Option<(usize, usize, usize)>,
    },
}

/// A layer with float weights, `k x n` (see the module docs for the order).
#[derive(Debug, Clone)]
pub struct Layer<W> {
    /// The float model's name for it (`conv0`, `fc0`, `out`).
    pub name: String,
    /// Convolution or dense.
    pub geom: Geom,
    /// Inputs per output.
    pub k: usize,
    /// Outputs (channels).
    pub n: usize,
    /// Weights, `k x n`.
    pub w: Vec<W>,
    /// Bias, `n` (batch norm's shift folded in for a convolution).
    pub bias: Vec<f32>,
    /// Whether ReLU follows.
    pub relu: bool,
}

/// The float layer (reference and calibration).
pub type FloatLayer = Layer<f32>;

/// The int8 layer: weights quantised per output channel, symmetric, and packed for the GEMM.
#[derive(Debug, Clone)]
pub struct QLayer {
    /// Weights in [-127, 127], `k x n`, and their layout.
    pub layer: Layer<i8>,
    /// Per output channel: `weight = w_scale * code`.
    pub w_scale: Vec<f32>,
    /// The weights packed for [`gemm_u8i8`].
    pub packed: PackedB,
}

impl<W: Copy> Layer<W> {
    /// Output (rows, cols) of this layer for input (rows, cols): the convolution keeps the size
    /// for 3x3 (padding 1) and pooling halves it (floor); dense layers are 1 x 1.
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        match self.geom {
            Geom::Conv { kh, kw, .. } => (
                (h + 2).saturating_sub(kh).div_ceil(2),
                (w + 2).saturating_sub(kw).div_ceil(2),
            ),
            Geom::Dense { .. } => (1, 1),
        }
    }

    /// The weights in the float model's order and shape: `[n, c_in, kh, kw]` for a
    /// convolution, `[n, k]` (NCHW flatten order) for a dense layer.
    pub fn file_weight(&self) -> (Vec<usize>, Vec<W>) {
        let mut out = Vec::with_capacity(self.k * self.n);
        match self.geom {
            Geom::Conv { kh, kw, c_in } => {
                for o in 0..self.n {
                    for ci in 0..c_in {
                        for t in 0..kh * kw {
                            out.push(self.w[(t * c_in + ci) * self.n + o]);
                        }
                    }
                }
                (vec![self.n, c_in, kh, kw], out)
            }
            Geom::Dense { from } => {
                for o in 0..self.n {
                    for f in 0..self.k {
                        out.push(self.w[nhwc_index(from, f) * self.n + o]);
                    }
                }
                (vec![self.n, self.k], out)
            }
        }
    }

    /// The layer from weights in the float model's order (the inverse of
    /// [`Layer::file_weight`]); `file` must have `k * n` values.
    pub fn from_file(
        name: String,
        geom: Geom,
        n: usize,
        file: &[W],
        bias: Vec<f32>,
        relu: bool,
    ) -> Layer<W> {
        let k = file.len() / n.max(1);
        let mut w = vec![file[0]; file.len()];
        match geom {
            Geom::Conv { kh, kw, c_in } => {
                for o in 0..n {
                    for ci in 0..c_in {
                        for t in 0..kh * kw {
                            w[(t * c_in + ci) * n + o] = file[(o * c_in + ci) * kh * kw + t];
                        }
                    }
                }
            }
            Geom::Dense { from } => {
                for o in 0..n {
                    for f in 0..k {
                        w[nhwc_index(from, f) * n + o] = file[o * k + f];
                    }
                }
            }
        }
        Layer {
            name,
            geom,
            k,
            n,
            w,
            bias,
            relu,
        }
    }
}

/// Where NCHW flatten index `f` of a `(rows, cols, channels)` map sits in NHWC order.
fn nhwc_index(from: Option<(usize, usize, usize)>, f: usize) -> usize {
    match from {
        Some((h, w, c)) => {
            let (ch, p) = (f / (h * w), f % (h * w));
            p * c + ch
        }
        None => f,
    }
}

/// im2col of `nimg` NHWC images `h x w x c` for a `kh x kw` convolution with padding 1: one row
/// of `ld` values per output pixel, (ky, kx, channel) order, `pad[img]` outside the image and
/// `fill` in the columns past `kh * kw * c`.
#[allow(clippy::too_many_arguments)]
fn im2col<T: Copy>(
    x: &[T],
    nimg: usize,
    (h, w, c): (usize, usize, usize),
    (kh, kw): (usize, usize),
    pad: &[T],
    fill: T,
    ld: usize,
) -> Vec<T> {
    let (oh, ow) = (
        (h + 2).saturating_sub(kh) + 1,
        (w + 2).saturating_sub(kw) + 1,
    );
    let mut out = vec![fill; nimg * oh * ow * ld];
    for img in 0..nimg {
        let src = &x[img * h * w * c..(img + 1) * h * w * c];
        for y in 0..oh {
            for xo in 0..ow {
                let row = ((img * oh + y) * ow + xo) * ld;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let dst = &mut out[row + (ky * kw + kx) * c..][..c];
                        let (iy, ix) = ((y + ky) as isize - 1, (xo + kx) as isize - 1);
                        if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                            dst.fill(pad[img]);
                        } else {
                            let at = (iy as usize * w + ix as usize) * c;
                            dst.copy_from_slice(&src[at..at + c]);
                        }
                    }
                }
            }
        }
    }
    out
}

/// 2x2 max-pooling (floor) of `nimg` NHWC maps `h x w x c`.
fn max_pool2(x: &[f32], nimg: usize, (h, w, c): (usize, usize, usize)) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = Vec::with_capacity(nimg * oh * ow * c);
    for img in 0..nimg {
        let base = img * h * w * c;
        for y in 0..oh {
            for xo in 0..ow {
                let at = |dy: usize, dx: usize| base + ((2 * y + dy) * w + 2 * xo + dx) * c;
                let (a, b, d, e) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
                out.extend((0..c).map(|ch| x[a + ch].max(x[b + ch]).max(x[d + ch]).max(x[e + ch])));
            }
        }
    }
    out
}

/// The conv output's size before pooling.
fn conv_out(h: usize, w: usize, kh: usize, kw: usize) -> (usize, usize) {
    (
        (h + 2).saturating_sub(kh) + 1,
        (w + 2).saturating_sub(kw) + 1,
    )
}

impl FloatLayer {
    /// The layer on `nimg` inputs (NHWC maps of `(h, w)` and this layer's input channels, or
    /// vectors of `k`): for a convolution the pooled output, else the `n` outputs per image.
    pub fn forward(&self, x: &[f32], nimg: usize, (h, w): (usize, usize)) -> Vec<f32> {
        let (a, m) = match self.geom {
            Geom::Conv { kh, kw, c_in } => {
                let pad = vec![0.0; nimg];
                let a = im2col(x, nimg, (h, w, c_in), (kh, kw), &pad, 0.0, self.k);
                let (oh, ow) = conv_out(h, w, kh, kw);
                (a, nimg * oh * ow)
            }
            Geom::Dense { .. } => (x.to_vec(), nimg),
        };
        let mut y = vec![0.0f32; m * self.n];
        for (row, out) in a.chunks_exact(self.k).zip(y.chunks_exact_mut(self.n)) {
            out.copy_from_slice(&self.bias);
            for (&v, wr) in row.iter().zip(self.w.chunks_exact(self.n)) {
                for (o, &wv) in out.iter_mut().zip(wr) {
                    *o += v * wv;
                }
            }
            if self.relu {
                out.iter_mut().for_each(|o| *o = o.max(0.0));
            }
        }
        self.pool(y, nimg, h, w)
    }

    /// Quantise the weights per output channel, symmetric: `scale = max |w| / 127`.
    pub fn quantize(&self, isa: Isa) -> QLayer {
        let mut w_scale = vec![0.0f32; self.n];
        for (j, s) in w_scale.iter_mut().enumerate() {
            let m = (0..self.k).fold(0.0f32, |m, r| m.max(self.w[r * self.n + j].abs()));
            *s = if m > 0.0 && m.is_finite() {
                m / 127.0
            } else {
                1.0
            };
        }
        let w: Vec<i8> = self
            .w
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                (v / w_scale[i % self.n])
                    .round_ties_even()
                    .clamp(-127.0, 127.0) as i8
            })
            .collect();
        QLayer::new(
            Layer {
                name: self.name.clone(),
                geom: self.geom,
                k: self.k,
                n: self.n,
                w,
                bias: self.bias.clone(),
                relu: self.relu,
            },
            w_scale,
            isa,
        )
    }
}

impl<W: Copy> Layer<W> {
    /// Pool a convolution's output (`m x n` in NHWC order); a dense layer's passes through.
    fn pool(&self, y: Vec<f32>, nimg: usize, h: usize, w: usize) -> Vec<f32> {
        match self.geom {
            Geom::Conv { kh, kw, .. } => {
                let (oh, ow) = conv_out(h, w, kh, kw);
                max_pool2(&y, nimg, (oh, ow, self.n))
            }
            Geom::Dense { .. } => y,
        }
    }
}

impl QLayer {
    /// The layer from its quantised weights (`k x n`), packing them for `isa`.
    pub fn new(layer: Layer<i8>, w_scale: Vec<f32>, isa: Isa) -> QLayer {
        let packed = PackedB::new(isa, &layer.w, layer.k, layer.n);
        QLayer {
            layer,
            w_scale,
            packed,
        }
    }

    /// The layer on `nimg` quantised inputs, image `i` coded with `qp[i]`: the int8 product
    /// with i32 sums, then `scale_in * w_scale * (sum - zero_point * column sum) + bias`, ReLU
    /// and, for a convolution, pooling, in f32. (The model runs [`QLayer::conv_image`] and
    /// [`QLayer::dense`] itself; this is the layer alone, for tests.)
    #[cfg(test)]
    pub fn forward(
        &self,
        q: &[u8],
        nimg: usize,
        (h, w): (usize, usize),
        qp: &[QParams],
    ) -> Vec<f32> {
        let mut out = Vec::new();
        match self.layer.geom {
            Geom::Conv { c_in, .. } => {
                let per = h * w * c_in;
                for (img, &p) in q.chunks_exact(per).zip(qp) {
                    self.conv_image(img, (h, w), p, &mut out);
                }
            }
            Geom::Dense { .. } => self.dense(q, nimg, qp, &mut out),
        }
        out
    }

    /// One NHWC image through a convolution: its pooled outputs are appended to `out`.
    ///
    /// Pooling is done on the i32 sums, before the epilogue: the epilogue (a positive scale, a
    /// shift, ReLU) is monotonic in f32 as in the reals, so the maximum of the epilogues is the
    /// epilogue of the maximum, bit for bit, on a quarter of the values.
    pub fn conv_image(&self, q: &[u8], (h, w): (usize, usize), p: QParams, out: &mut Vec<f32>) {
        let l = &self.layer;
        let Geom::Conv { kh, kw, c_in } = l.geom else {
            unreachable!("conv_image on a dense layer")
        };
        let kp = self.packed.kp();
        let (oh, ow) = conv_out(h, w, kh, kw);
        let m = oh * ow;
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (a, acc) = &mut *guard;
            a.resize(m * kp, 0);
            im2col_u8(q, (h, w, c_in), (kh, kw), p.zero_point, kp, a);
            acc.resize(m * l.n, 0);
            gemm_u8i8(a, m, kp, &self.packed, acc, l.n);
            let (ph, pw) = (oh / 2, ow / 2);
            let (mult, zs) = self.epilogue_terms(p);
            let n = l.n;
            let start = out.len();
            out.resize(start + ph * pw * n, 0.0);
            let dst = &mut out[start..];
            let floor = if l.relu { 0.0 } else { f32::NEG_INFINITY };
            for y in 0..ph {
                for x in 0..pw {
                    let row = |dy: usize, dx: usize| {
                        let at = ((2 * y + dy) * ow + 2 * x + dx) * n;
                        &acc[at..at + n]
                    };
                    let (a0, a1, a2, a3) = (row(0, 0), row(0, 1), row(1, 0), row(1, 1));
                    let o = &mut dst[(y * pw + x) * n..][..n];
                    for (j, o) in o.iter_mut().enumerate() {
                        let s = a0[j].max(a1[j]).max(a2[j]).max(a3[j]);
                        *o = ((s - zs[j]) as f32 * mult[j] + l.bias[j]).max(floor);
                    }
                }
            }
        })
    }

    /// `nimg` input vectors through a dense layer: `nimg x n` outputs appended to `out`.
    pub fn dense(&self, q: &[u8], nimg: usize, qp: &[QParams], out: &mut Vec<f32>) {
        let l = &self.layer;
        let kp = self.packed.kp();
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (a, acc) = &mut *guard;
            let a: &[u8] = if kp == l.k {
                q
            } else {
                a.clear();
                a.resize(nimg * kp, 0);
                for (dst, src) in a.chunks_exact_mut(kp).zip(q.chunks_exact(l.k)) {
                    dst[..l.k].copy_from_slice(src);
                }
                a
            };
            acc.resize(nimg * l.n, 0);
            gemm_u8i8(a, nimg, kp, &self.packed, acc, l.n);
            let start = out.len();
            out.resize(start + nimg * l.n, 0.0);
            for ((o, s), &p) in out[start..]
                .chunks_exact_mut(l.n)
                .zip(acc.chunks_exact(l.n))
                .zip(qp)
            {
                let (mult, zs) = self.epilogue_terms(p);
                for j in 0..l.n {
                    let v = (s[j] - zs[j]) as f32 * mult[j] + l.bias[j];
                    o[j] = if l.relu { v.max(0.0) } else { v };
                }
            }
        })
    }

    /// Per output: `scale_in * w_scale` and `zero_point * column sum`.
    fn epilogue_terms(&self, p: QParams) -> (Vec<f32>, Vec<i32>) {
        let zp = i32::from(p.zero_point);
        (
            self.w_scale.iter().map(|&s| p.scale * s).collect(),
            self.packed.col_sums().iter().map(|&s| zp * s).collect(),
        )
    }
}

thread_local! {
    /// Per-thread im2col and i32 sum buffers, reused from image to image.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<i32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// im2col of one NHWC u8 image for a `kh x kw` convolution with padding 1 (see [`im2col`]),
/// into `a` (`oh * ow` rows of `ld`), `pad` outside the image, 0 past `kh * kw * c`.
fn im2col_u8(
    x: &[u8],
    (h, w, c): (usize, usize, usize),
    (kh, kw): (usize, usize),
    pad: u8,
    ld: usize,
    a: &mut [u8],
) {
    let ow = (w + 2).saturating_sub(kw) + 1;
    let used = kh * kw * c;
    for (r, row) in a.chunks_exact_mut(ld).enumerate() {
        let (y, xo) = (r / ow, r % ow);
        for ky in 0..kh {
            let iy = (y + ky).wrapping_sub(1);
            let dst = &mut row[ky * kw * c..(ky + 1) * kw * c];
            if iy >= h {
                dst.fill(pad);
                continue;
            }
            let line = &x[iy * w * c..(iy + 1) * w * c];
            if xo >= 1 && xo + kw <= w + 1 {
                // Every tap inside: one run of kw * c values.
                dst.copy_from_slice(&line[(xo - 1) * c..(xo - 1 + kw) * c]);
                continue;
            }
            for kx in 0..kw {
                let ix = (xo + kx).wrapping_sub(1);
                let d = &mut dst[kx * c..(kx + 1) * c];
                if ix >= w {
                    d.fill(pad);
                } else {
                    d.copy_from_slice(&line[ix * c..(ix + 1) * c]);
                }
            }
        }
        row[used..].fill(0);
    }
}

/// Code `nimg` equal-sized inputs `x`, image `i` with `qp[i]`.
pub fn quantize_images(x: &[f32], nimg: usize, qp: &[QParams]) -> Vec<u8> {
    let per = x.len() / nimg.max(1);
    x.chunks(per.max(1))
        .zip(qp)
        .flat_map(|(img, &p)| img.iter().map(move |&v| p.quantize(v)))
        .collect()
}

/// Min/max parameters of each of `nimg` equal-sized inputs (dynamic quantisation).
#[cfg(test)]
pub fn per_image_params(x: &[f32], nimg: usize) -> Vec<QParams> {
    let per = x.len() / nimg.max(1);
    x.chunks(per.max(1))
        .map(|img| {
            let (lo, hi) = min_max(img);
            QParams::from_range(lo, hi)
        })
        .collect()
}

/// Smallest and largest value (0, 0 for none).
pub fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter()
        .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_layer(geom: Geom, k: usize, n: usize, relu: bool, seed: u64) -> FloatLayer {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Layer {
            name: "t".into(),
            geom,
            k,
            n,
            w: (0..k * n).map(|_| rng.gen_range(-0.5..0.5)).collect(),
            bias: (0..n).map(|_| rng.gen_range(-0.2..0.2)).collect(),
            relu,
        }
    }

    /// The int8 layer against the float layer on random inputs, within the stated bound: each
    /// weight is off by at most half its step (`w_scale / 2`) and each input by at most half
    /// its step (`scale / 2`), so before ReLU and pooling (which do not increase differences)
    /// an output is off by at most `Σ |x| · w_scale / 2 + Σ |w| · scale / 2 + Σ (scale / 2)
    /// (w_scale / 2)`, plus f32 rounding (1e-4 relative to the sum of |terms|).
    #[test]
    fn int8_layers_stay_within_the_quantisation_bound_of_the_float_layer() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (case, &(geom, h, w, c_in, n)) in [
            (
                Geom::Conv {
                    kh: 3,
                    kw: 3,
                    c_in: 1,
                },
                9,
                8,
                1,
                5,
            ),
            (
                Geom::Conv {
                    kh: 3,
                    kw: 3,
                    c_in: 6,
                },
                7,
                7,
                6,
                16,
            ),
            (Geom::Dense { from: None }, 1, 1, 37, 10),
            (
                Geom::Dense {
                    from: Some((3, 3, 4)),
                },
                1,
                1,
                36,
                19,
            ),
        ]
        .iter()
        .enumerate()
        {
            let k = match geom {
                Geom::Conv { kh, kw, c_in } => kh * kw * c_in,
                Geom::Dense { .. } => c_in,
            };
            let nimg = 3;
            let fl = random_layer(geom, k, n, case % 2 == 0, case as u64);
            let per = h * w * c_in;
            // Signed inputs for even cases (a non-zero zero point), non-negative for odd ones.
            let x: Vec<f32> = (0..nimg * per)
                .map(|_| rng.gen_range(if case % 2 == 0 { -1.5 } else { 0.0 }..2.0))
                .collect();
            for isa in Isa::available() {
                let ql = fl.quantize(isa);
                let qp = per_image_params(&x, nimg);
                let q = quantize_images(&x, nimg, &qp);
                let got = ql.forward(&q, nimg, (h, w), &qp);
                let want = fl.forward(&x, nimg, (h, w));
                assert_eq!(got.len(), want.len());
                // Bound per output channel, for the worst image.
                let smax = qp.iter().fold(0.0f32, |m, p| m.max(p.scale));
                let xmax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for j in 0..n {
                    let ws = ql.w_scale[j];
                    let wsum: f32 = (0..k).map(|r| fl.w[r * n + j].abs()).sum();
                    let bound = k as f32 * xmax * ws / 2.0
                        + wsum * smax / 2.0
                        + k as f32 * smax * ws / 4.0
                        + 1e-4 * (k as f32 * xmax * 0.5 + 1.0);
                    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                        if i % n == j {
                            assert!(
                                (g - e).abs() <= bound,
                                "{} case {case} out {i}: {g} vs {e} (bound {bound})",
                                isa.name()
                            );
                        }
                    }
                }
                // Every path gives the same bits.
                let first = fl.quantize(Isa::Portable).forward(&q, nimg, (h, w), &qp);
                assert_eq!(got, first, "{}", isa.name());
            }
        }
    }

    #[test]
    fn file_order_round_trips_and_conv_weights_land_where_the_float_model_has_them() {
        for geom in [
            Geom::Conv {
                kh: 3,
                kw: 3,
                c_in: 4,
            },
            Geom::Dense {
                from: Some((2, 3, 5)),
            },
            Geom::Dense { from: None },
        ] {
            let k = match geom {
                Geom::Conv { .. } => 36,
                _ => 30,
            };
            let l = random_layer(geom, k, 7, true, 3);
            let (shape, file) = l.file_weight();
            assert_eq!(shape.iter().product::<usize>(), k * 7);
            let back = Layer::from_file("t".into(), geom, 7, &file, l.bias.clone(), true);
            assert_eq!(back.w, l.w);
        }
        // Conv: file [o][ci][ky][kx] is kernel row (ky*kw + kx)*c_in + ci.
        let l = random_layer(
            Geom::Conv {
                kh: 3,
                kw: 3,
                c_in: 2,
            },
            18,
            3,
            true,
            1,
        );
        let (_, file) = l.file_weight();
        let (o, ci, ky, kx) = (2, 1, 0, 2);
        assert_eq!(
            file[((o * 2 + ci) * 3 + ky) * 3 + kx],
            l.w[((ky * 3 + kx) * 2 + ci) * 3 + o]
        );
    }

    #[test]
    fn qparams_keep_zero_exact_and_saturate() {
        let p = QParams::from_range(-1.0, 3.0);
        assert_eq!(p.dequantize(p.quantize(0.0)), 0.0);
        assert_eq!(p.quantize(100.0), 255);
        assert_eq!(p.quantize(-100.0), 0);
        let z = QParams::from_range(0.0, 0.0);
        assert_eq!(z.quantize(0.0), 0);
        assert_eq!(QParams::from_range(0.5, 2.0).zero_point, 0);
    }
}
