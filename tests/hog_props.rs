//! Invariants of the fast HOG path, checked on random inputs with proptest:
//! it agrees with the plain scalar port, its output is bounded as each norm promises, invalid
//! sizes are errors rather than panics, and batches are bit-identical for 1 and N threads.

use hogsvm::hog::{naive, BlockNorm, Hog, HogParams, ImageRef, Pixels};
use proptest::prelude::*;

fn norm_strategy() -> impl Strategy<Value = BlockNorm> {
    prop_oneof![
        Just(BlockNorm::L1),
        Just(BlockNorm::L1Sqrt),
        Just(BlockNorm::L2),
        Just(BlockNorm::L2Hys)
    ]
}

prop_compose! {
    fn params_strategy()(
        orientations in 1usize..20,
        cr in 1usize..9, cc in 1usize..9,
        br in 1usize..4, bc in 1usize..4,
        norm in norm_strategy(),
        sqrt in any::<bool>(),
    ) -> HogParams {
        HogParams::default().orientations(orientations).cell(cr, cc).block(br, bc)
            .block_norm(norm).transform_sqrt(sqrt)
    }
}

prop_compose! {
    /// Params plus a u8 image (1 or 3 channels) large enough for one block.
    fn case()(p in params_strategy(), extra_r in 0usize..10, extra_c in 0usize..10,
              ch in prop_oneof![Just(1usize), Just(3usize)], seed in any::<u64>())
        -> (HogParams, usize, usize, usize, Vec<u8>) {
        let rows = p.cell_rows * p.block_rows + extra_r;
        let cols = p.cell_cols * p.block_cols + extra_c;
        // Cheap deterministic pseudo-random pixels with flat runs (to create ties).
        let mut s = seed | 1;
        let px = (0..rows * cols * ch).map(|_| {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            if s % 3 == 0 { 128 } else { (s >> 24) as u8 }
        }).collect();
        (p, rows, cols, ch, px)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_equals_naive_port((p, rows, cols, ch, px) in case()) {
        let hog = Hog::new(p).unwrap();
        let im = ImageRef::new(Pixels::U8(&px), rows, cols, ch).unwrap();
        let fast = hog.compute(im).unwrap();
        let slow = naive::hog(&p, im).unwrap();
        prop_assert_eq!(fast.len(), slow.len());
        for (a, b) in fast.iter().zip(&slow) {
            prop_assert!((*a as f64 - b).abs() <= 1e-5, "{} vs {}", a, b);
        }
        // The same pixels as f32 take the float path; it must agree too (u8 -> f64 and
        // f32 arithmetic differ only in rounding, far below the tolerance).
        let f: Vec<f32> = px.iter().map(|&v| v as f32).collect();
        let imf = ImageRef::new(Pixels::F32(&f), rows, cols, ch).unwrap();
        let fast_f = hog.compute(imf).unwrap();
        let slow_f = naive::hog(&p, imf).unwrap();
        for (a, b) in fast_f.iter().zip(&slow_f) {
            prop_assert!((*a as f64 - b).abs() <= 1e-5, "f32: {} vs {}", a, b);
        }
        // As f64 (NumPy's default float type) they are the u8 image's numbers exactly: scikit-image
        // turns u8 into float64 before anything else.
        let d: Vec<f64> = px.iter().map(|&v| v as f64).collect();
        let imd = ImageRef::new(Pixels::F64(&d), rows, cols, ch).unwrap();
        prop_assert_eq!(&naive::hog(&p, imd).unwrap(), &slow);
        let fast_d = hog.compute(imd).unwrap();
        for (a, b) in fast_d.iter().zip(&slow) {
            prop_assert!((*a as f64 - b).abs() <= 1e-5, "f64: {} vs {}", a, b);
        }
        if p.transform_sqrt {
            // The same float path as the u8 image with the square root: the same bits.
            prop_assert_eq!(&fast_d, &fast);
        }
    }

    #[test]
    fn outputs_respect_the_norm((p, rows, cols, ch, px) in case()) {
        let hog = Hog::new(p).unwrap();
        let v = hog.compute(ImageRef::new(Pixels::U8(&px), rows, cols, ch).unwrap()).unwrap();
        let block = p.block_rows * p.block_cols * p.orientations;
        for b in v.chunks(block) {
            prop_assert!(b.iter().all(|x| x.is_finite() && *x >= 0.0));
            let l1: f32 = b.iter().sum();
            let l2: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            match p.block_norm {
                BlockNorm::L1 => prop_assert!(l1 <= 1.0 + 1e-4),
                BlockNorm::L1Sqrt => prop_assert!(l2 <= 1.0 + 1e-4),
                BlockNorm::L2 | BlockNorm::L2Hys => prop_assert!(l2 <= 1.0 + 1e-4),
            }
        }
    }

    #[test]
    fn too_small_or_wrong_buffers_are_errors(rows in 0usize..20, cols in 0usize..20, len in 0usize..500) {
        let hog = Hog::new(HogParams::default()).unwrap();
        let px = vec![0u8; len];
        match ImageRef::gray_u8(&px, rows, cols) {
            Err(_) => prop_assert_ne!(len, rows * cols),
            Ok(im) => {
                // 8x8 cells, 3x3 blocks: anything under 24x24 is too small.
                prop_assert!(hog.compute(im).is_err());
            }
        }
    }
}

#[test]
fn batch_is_bit_identical_for_one_and_many_threads() {
    let (ds, _) = hogsvm::data::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/fashion-mnist").as_ref(),
        &Default::default(),
    )
    .unwrap();
    let hog = Hog::new(HogParams::default().cell(4, 4).block(2, 2)).unwrap();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| hog.compute_batch_u8(&ds.pixels, ds.rows, ds.cols).unwrap())
    };
    let one = run(1);
    assert_eq!(one.dim(), (2000, 1296));
    for t in [2, 3, 8] {
        let many = run(t);
        assert!(
            one.iter()
                .zip(many.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{t} threads differ from 1"
        );
    }
}
