//! Helpers shared by the ops' unit tests: a seeded generator, close and bit-for-bit
//! comparisons, the gradients of a loss Σ y·r, and the thread-count determinism check.

use candle_core::{Device, Tensor, Var};

/// splitmix64 → uniform f32 in [-1, 1).
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub(super) fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.next()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

pub(super) fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shape");
    let (a, b) = (values(a), values(b));
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let err = (x - y).abs() / scale.max(y.abs());
        assert!(
            err <= 1e-4,
            "{what}: element {i}: {x} vs {y} (rel {err}, scale {scale})"
        );
    }
}

pub(super) fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// The values of a tensor, flattened.
pub(super) fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Equal within 1e-4, relative to max(|b|, 1) (for differences of O(1) terms).
pub(super) fn assert_close_abs(a: &Tensor, b: &Tensor, what: &str) {
    for (p, q) in values(a).iter().zip(&values(b)) {
        assert!(
            (p - q).abs() <= 1e-4 * q.abs().max(1.0),
            "{what}: {p} vs {q}"
        );
    }
}

/// The gradients of the loss Σ y·r.
pub(super) fn loss_grads(y: &Tensor, r: &Tensor) -> candle_core::backprop::GradStore {
    (y * r).unwrap().sum_all().unwrap().backward().unwrap()
}

/// Bits of `y`, `m`, `v` and of the gradients of Σ y·r (r drawn from `rng`) for `vars`.
pub(super) fn bits_and_grads(
    rng: &mut Rng,
    [y, m, v]: [&Tensor; 3],
    vars: &[&Var],
) -> Vec<Vec<u32>> {
    let r = rng.tensor(y.dims());
    let g = loss_grads(y, &r);
    let mut out = vec![bits(y), bits(m), bits(v)];
    out.extend(vars.iter().map(|var| bits(g.get(var).unwrap())));
    out
}

/// Runs `f` on 1 thread, then on 2, 3 and 8, and checks that the results are the same.
pub(super) fn assert_same_on_threads<R: PartialEq + Send>(
    f: impl Fn() -> R + Send + Sync,
    what: &str,
) {
    let on = |t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(&f)
    };
    let reference = on(1);
    for t in [2, 3, 8] {
        assert!(
            on(t) == reference,
            "{what}: results differ with {t} threads"
        );
    }
}
