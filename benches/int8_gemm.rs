//! The int8 GEMM of the quantised CNN (`hogsvm::cnn::quant::gemm`), each path this CPU has,
//! against rten-gemm's u8 x i8 -> i32 GEMM (weights prepacked, one thread) and against the f32
//! GEMM the float CNN uses (the `gemm` crate, one thread), on the default CNN's products for one
//! image (conv1-3: output pixels x (9 · channels in) x channels out) and its first dense layer for
//! 16 images. Throughput is in multiply-adds.
//!
//! Run: `cargo bench --bench int8_gemm`; figures go to docs/BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hogsvm::cnn::quant::gemm::{gemm_u8i8, Isa, PackedB};
use rand::{Rng, SeedableRng};
use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmOptions};
use rten_tensor::NdTensorView;

/// (name, m, k, n).
const SHAPES: [(&str, usize, usize, usize); 4] = [
    ("conv1 784x9x32", 784, 9, 32),
    ("conv2 196x288x64", 196, 288, 64),
    ("conv3 49x576x128", 49, 576, 128),
    ("fc 16x1152x256", 16, 1152, 256),
];

fn bench(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for (name, m, k, n) in SHAPES {
        let kp = k.div_ceil(4) * 4;
        let a: Vec<u8> = (0..m * kp).map(|_| rng.gen()).collect();
        let b: Vec<i8> = (0..k * n).map(|_| rng.gen_range(-127..=127)).collect();
        let mut g = c.benchmark_group(format!("int8_gemm/{name}"));
        g.throughput(Throughput::Elements((m * k * n) as u64));
        let mut out = vec![0i32; m * n];
        for isa in Isa::available() {
            let p = PackedB::new(isa, &b, k, n);
            g.bench_function(isa.name(), |bch| {
                bch.iter(|| gemm_u8i8(black_box(&a), m, kp, &p, &mut out, n))
            });
        }
        // rten-gemm: A unpacked (k columns of the kp-strided rows), B prepacked.
        let exec = GemmExecutor::<u8, i8, i32>::default();
        let a_k: Vec<u8> = a.chunks_exact(kp).flat_map(|r| r[..k].to_vec()).collect();
        let bv = NdTensorView::from_data([k, n], &b[..]);
        let pb = exec.prepack_b(bv);
        g.bench_function("rten-gemm", |bch| {
            pool.install(|| {
                bch.iter(|| {
                    let av = NdTensorView::from_data([m, k], black_box(&a_k[..]));
                    exec.gemm(
                        &mut out,
                        GemmInputA::Unpacked(av),
                        GemmInputB::Packed(&pb),
                        GemmOptions::default(),
                    )
                    .unwrap()
                })
            })
        });
        // f32, as the float CNN multiplies (single-threaded `gemm` crate).
        let af: Vec<f32> = a_k.iter().map(|&v| f32::from(v)).collect();
        let bf: Vec<f32> = b.iter().map(|&v| f32::from(v)).collect();
        let mut of = vec![0f32; m * n];
        g.bench_function("f32 gemm crate", |bch| {
            bch.iter(|| unsafe {
                // SAFETY: row-major m x k, k x n and m x n buffers of exactly those sizes.
                gemm::gemm(
                    m,
                    n,
                    k,
                    of.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    black_box(af.as_ptr()),
                    1,
                    k as isize,
                    bf.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
