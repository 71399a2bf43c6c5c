//! Times the stages of `extract` on an image folder of colour images, one after another:
//! decode, resize, colour HOG (8x8 cells, 2x2 blocks), per image. For one thread:
//! `RAYON_NUM_THREADS=1 cargo run --release --example photo_stages -- DIR SIZE`.
use hogsvm::data::folder;
use hogsvm::hog::{Hog, HogParams, ImageRef};
use std::time::Instant;

fn main() -> hogsvm::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[1]);
    let size: u32 = args[2].parse().unwrap();
    let files = folder::image_files_in(dir)?;
    let bytes: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let t = Instant::now();
    let mut decoded = Vec::new();
    for (b, p) in bytes.iter().zip(&files) {
        decoded.push(folder::decode_bytes(b, p, None, 3)?);
    }
    let dec = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut small = Vec::new();
    for (w, h, px) in &decoded {
        small.push(folder::resize_pixels(px, *w, *h, 3, (size, size)));
    }
    let res = t.elapsed().as_secs_f64();
    let hog = Hog::new(HogParams::default().cell(8, 8).block(2, 2))?;
    let t = Instant::now();
    let refs: Vec<ImageRef> = small
        .iter()
        .map(|p| {
            ImageRef::new(hogsvm::hog::Pixels::U8(p), size as usize, size as usize, 3).unwrap()
        })
        .collect();
    let f = hog.compute_batch(&refs)?;
    let hg = t.elapsed().as_secs_f64();
    let n = files.len() as f64;
    println!(
        "{} images: decode {:.3} ms, resize {:.3} ms, hog {:.3} ms per image (features {})",
        n,
        dec / n * 1e3,
        res / n * 1e3,
        hg / n * 1e3,
        f.ncols()
    );
    Ok(())
}
