//! HOG speed: hogsvm's fast path vs `imageproc::hog` vs a plain scalar port of scikit-image
//! (`hogsvm::hog::naive`), single-threaded, per image, on real Fashion-MNIST images from
//! fixtures/ at 28x28 (cells 4x4, blocks 2x2) and resized to 64x64 (cells 8x8, blocks 2x2).
//!
//! Run: `cargo bench --bench hog`. scikit-image and OpenCV are timed on the same images by
//! `scripts/peer_hog.sh`; figures go to docs/BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hogsvm::data::{load, LoadOptions};
use hogsvm::hog::{naive, BlockNorm, Hog, HogParams, HogWorkspace, ImageRef};
use imageproc::hog::{hog as ip_hog, HogOptions};

const N: usize = 256;

fn images(side: u32) -> Vec<image::GrayImage> {
    let opts = LoadOptions {
        resize: (side != 28).then_some((side, side)),
        ..Default::default()
    };
    let (ds, _) = load("fixtures/fashion-mnist".as_ref(), &opts).expect("fixtures present");
    (0..N)
        .map(|i| {
            image::GrayImage::from_raw(side, side, ds.image(i).to_vec()).expect("square image")
        })
        .collect()
}

fn bench_config(c: &mut Criterion, side: u32, cell: usize) {
    let imgs = images(side);
    let params = HogParams::default()
        .cell(cell, cell)
        .block(2, 2)
        .block_norm(BlockNorm::L2Hys);
    let hog = Hog::new(params).unwrap();
    let len = hog.feature_len(side as usize, side as usize).unwrap();
    let mut g = c.benchmark_group(format!("hog_{side}x{side}_cell{cell}_block2"));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("hogsvm", |b| {
        let mut ws = HogWorkspace::new();
        let mut out = vec![0f32; len];
        b.iter(|| {
            for im in &imgs {
                let r = ImageRef::gray_u8(im.as_raw(), side as usize, side as usize).unwrap();
                hog.compute_into(r, &mut ws, &mut out).unwrap();
                black_box(&out);
            }
        })
    });
    let ip = HogOptions::new(9, false, cell, 2, 1);
    g.bench_function("imageproc", |b| {
        b.iter(|| {
            for im in &imgs {
                black_box(ip_hog(im, ip).unwrap());
            }
        })
    });
    g.sample_size(10);
    g.bench_function("naive_port", |b| {
        b.iter(|| {
            for im in &imgs {
                let r = ImageRef::gray_u8(im.as_raw(), side as usize, side as usize).unwrap();
                black_box(naive::hog(&params, r).unwrap());
            }
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_config(c, 28, 4);
    bench_config(c, 64, 8);
}

criterion_group!(hog_benches, benches);
criterion_main!(hog_benches);
