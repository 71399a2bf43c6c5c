//! Input normalisation and seeded data augmentation, image by image.
//!
//! Every image of a batch gets its own generator, seeded from (seed, epoch, image index), so the
//! augmented batch is the same whatever the number of threads that build it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::config::Augment;

/// A generator for one purpose of one epoch / image: a 64-bit mix of the parts (SplitMix64
/// finaliser), so nearby seeds give unrelated streams.
pub(crate) fn rng_for(parts: &[u64]) -> ChaCha8Rng {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        h ^= p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    ChaCha8Rng::seed_from_u64(h)
}

/// Mean and standard deviation of all pixels scaled to [0, 1] (the normalisation stored with
/// the model). A constant image set gets std 1.
pub(crate) fn pixel_stats(pixels: &[u8]) -> (f32, f32) {
    if pixels.is_empty() {
        return (0.0, 1.0);
    }
    let mut hist = [0u64; 256];
    for &p in pixels {
        hist[p as usize] += 1;
    }
    let n = pixels.len() as f64;
    let mean = hist
        .iter()
        .enumerate()
        .map(|(v, &c)| v as f64 / 255.0 * c as f64)
        .sum::<f64>()
        / n;
    let var = hist
        .iter()
        .enumerate()
        .map(|(v, &c)| (v as f64 / 255.0 - mean).powi(2) * c as f64)
        .sum::<f64>()
        / n;
    let std = var.sqrt();
    (mean as f32, if std > 1e-6 { std as f32 } else { 1.0 })
}

/// Fill `out` (`images.len() * rows * cols`) with the normalised images, augmented when
/// `aug` is given: `(seed, epoch, augment)`; `indices` are the images' positions in the training
/// set (part of each image's seed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare_batch(
    pixels: &[u8],
    rows: usize,
    cols: usize,
    indices: &[usize],
    mean: f32,
    std: f32,
    aug: Option<(u64, u64, &Augment)>,
    out: &mut [f32],
) {
    let n = rows * cols;
    let inv = 1.0 / (255.0 * std);
    let off = mean / std;
    out.par_chunks_mut(n)
        .zip(indices.par_iter())
        .for_each(|(dst, &i)| {
            let src = &pixels[i * n..(i + 1) * n];
            match aug {
                Some((seed, epoch, a)) if a.is_active() => {
                    let mut rng = rng_for(&[seed, 1, epoch, i as u64]);
                    augment_one(src, rows, cols, a, &mut rng, inv, off, dst);
                }
                _ => {
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = s as f32 * inv - off;
                    }
                }
            }
        });
}

/// One augmented image: flip, rotation and shift are one inverse mapping (output pixel →
/// source position), sampled bilinearly with zero (black) outside; then noise.
#[allow(clippy::too_many_arguments)]
fn augment_one(
    src: &[u8],
    rows: usize,
    cols: usize,
    a: &Augment,
    rng: &mut ChaCha8Rng,
    inv: f32,
    off: f32,
    dst: &mut [f32],
) {
    let flip = a.hflip && rng.gen::<bool>();
    let s = a.shift as i64;
    let (dy, dx) = if s > 0 {
        (rng.gen_range(-s..=s), rng.gen_range(-s..=s))
    } else {
        (0, 0)
    };
    let angle = if a.rotate > 0.0 {
        rng.gen_range(-a.rotate..=a.rotate).to_radians()
    } else {
        0.0
    };
    let px = |y: i64, x: i64| -> f32 {
        if y < 0 || x < 0 || y >= rows as i64 || x >= cols as i64 {
            0.0
        } else {
            src[y as usize * cols + x as usize] as f32
        }
    };
    if angle == 0.0 {
        // Integer shifts and flips: exact copies, no interpolation.
        for y in 0..rows as i64 {
            for x in 0..cols as i64 {
                let sx0 = x - dx;
                let sx = if flip { cols as i64 - 1 - sx0 } else { sx0 };
                dst[y as usize * cols + x as usize] = px(y - dy, sx) * inv - off;
            }
        }
    } else {
        let (sin, cos) = angle.sin_cos();
        let cy = (rows as f32 - 1.0) / 2.0;
        let cx = (cols as f32 - 1.0) / 2.0;
        for y in 0..rows {
            for x in 0..cols {
                // Undo the shift, then the rotation about the centre, then the flip.
                let yy = y as f32 - dy as f32 - cy;
                let xx = x as f32 - dx as f32 - cx;
                let sy = cos * yy + sin * xx + cy;
                let mut sx = -sin * yy + cos * xx + cx;
                if flip {
                    sx = cols as f32 - 1.0 - sx;
                }
                let y0 = sy.floor();
                let x0 = sx.floor();
                let (fy, fx) = (sy - y0, sx - x0);
                let (y0, x0) = (y0 as i64, x0 as i64);
                let v = px(y0, x0) * (1.0 - fy) * (1.0 - fx)
                    + px(y0, x0 + 1) * (1.0 - fy) * fx
                    + px(y0 + 1, x0) * fy * (1.0 - fx)
                    + px(y0 + 1, x0 + 1) * fy * fx;
                dst[y * cols + x] = v * inv - off;
            }
        }
    }
    if a.noise > 0.0 {
        for d in dst.iter_mut() {
            let z: f32 = StandardNormal.sample(rng);
            *d += a.noise * z;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> (Vec<u8>, usize, usize) {
        let (r, c) = (5, 6);
        ((0..r * c).map(|v| (v * 7 % 256) as u8).collect(), r, c)
    }

    /// One augmented image (seed, epoch) in raw pixel units (mean 0, std 1/255).
    fn augment_one(px: &[u8], r: usize, c: usize, seed: u64, epoch: u64, a: &Augment) -> Vec<f32> {
        let mut out = vec![0.0; r * c];
        prepare_batch(
            px,
            r,
            c,
            &[0],
            0.0,
            1.0 / 255.0,
            Some((seed, epoch, a)),
            &mut out,
        );
        out
    }

    #[test]
    fn stats_of_constant_and_known_images() {
        assert_eq!(pixel_stats(&[7; 10]), (7.0 / 255.0, 1.0));
        let (m, s) = pixel_stats(&[0, 255]);
        assert!((m - 0.5).abs() < 1e-6 && (s - 0.5).abs() < 1e-6);
    }

    #[test]
    fn no_augmentation_is_plain_normalisation() {
        let (px, r, c) = image();
        let mut out = vec![0.0; r * c];
        prepare_batch(&px, r, c, &[0], 0.5, 0.25, None, &mut out);
        for (o, &p) in out.iter().zip(&px) {
            assert!((o - (p as f32 / 255.0 - 0.5) / 0.25).abs() < 1e-5);
        }
    }

    #[test]
    fn flip_only_mirrors_or_copies() {
        let (px, r, c) = image();
        let a = Augment {
            hflip: true,
            ..Augment::none()
        };
        let (mut flipped, mut same) = (0, 0);
        for epoch in 0..20 {
            let out = augment_one(&px, r, c, 3, epoch, &a);
            let row0: Vec<f32> = out[..c].to_vec();
            let orig: Vec<f32> = px[..c].iter().map(|&v| v as f32).collect();
            let mirror: Vec<f32> = orig.iter().rev().copied().collect();
            if row0 == orig {
                same += 1;
            } else {
                assert_eq!(row0, mirror);
                flipped += 1;
            }
        }
        assert!(flipped > 0 && same > 0);
    }

    #[test]
    fn shift_moves_content_and_fills_zero() {
        let (r, c) = (8, 8);
        let mut px = vec![0u8; r * c];
        px[3 * c + 4] = 200;
        let a = Augment {
            shift: 2,
            ..Augment::none()
        };
        for epoch in 0..10 {
            let out = augment_one(&px, r, c, 1, epoch, &a);
            // The bright pixel is somewhere within 2 pixels of where it was, and only once.
            let hits: Vec<usize> = (0..r * c).filter(|&i| out[i] == 200.0).collect();
            assert_eq!(hits.len(), 1);
            let (y, x) = (hits[0] / c, hits[0] % c);
            assert!((y as i64 - 3).abs() <= 2 && (x as i64 - 4).abs() <= 2);
            assert_eq!(out.iter().filter(|&&v| v != 0.0).count(), 1);
        }
    }

    #[test]
    fn same_seed_same_batch_whatever_the_threads() {
        let (r, c) = (28, 28);
        let px: Vec<u8> = (0..40 * r * c).map(|v| (v * 31 % 251) as u8).collect();
        let a = Augment {
            hflip: true,
            shift: 2,
            rotate: 10.0,
            noise: 0.1,
        };
        let idx: Vec<usize> = (0..40).rev().collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0.0; 40 * r * c];
            pool.install(|| prepare_batch(&px, r, c, &idx, 0.3, 0.35, Some((9, 2, &a)), &mut out));
            out
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert_eq!(one, run(8));
        // and another epoch differs
        let mut other = vec![0.0; 40 * r * c];
        prepare_batch(&px, r, c, &idx, 0.3, 0.35, Some((9, 3, &a)), &mut other);
        assert_ne!(one, other);
    }

    #[test]
    fn rotation_by_small_angles_keeps_the_centre() {
        let (r, c) = (9, 9);
        let mut px = vec![0u8; r * c];
        px[4 * c + 4] = 255;
        let a = Augment {
            rotate: 30.0,
            ..Augment::none()
        };
        let out = augment_one(&px, r, c, 5, 0, &a);
        // Rotation about the centre leaves the centre pixel where it is.
        assert!((out[4 * c + 4] - 255.0).abs() < 1e-3);
    }
}
