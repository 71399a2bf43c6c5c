//! Unit tests across the ops: the determinism argument of the module documentation (bit-identical
//! results on 1, 2, 3 and 8 threads) for the unfused stack, the fused ops and the fused block,
//! and bad arguments.

use candle_core::{DType, Var};

use super::test_util::{assert_same_on_threads, bits, bits_and_grads, Rng};
use super::{
    batch_norm_train, batch_norm_train_pool_relu, conv2d, conv2d_input_grad, conv2d_weight_grad,
    conv_bn_train_pool_relu, max_pool2d, max_pool2d_backward, max_pool2d_relu, relu,
};

/// The variables of the two test stacks: input `(21, 3, rows, cols)`, a 3x3 conv to 6
/// channels, batch norm's gamma and beta, a `k2` x `k2` conv to 5 channels.
fn stack_vars(rng: &mut Rng, (rows, cols): (usize, usize), k2: usize) -> [Var; 5] {
    let mut var = |shape: &[usize]| Var::from_tensor(&rng.tensor(shape)).unwrap();
    let x = var(&[21, 3, rows, cols]);
    let w1 = var(&[6, 3, 3, 3]);
    let w2 = var(&[5, 6, k2, k2]);
    [x, w1, w2, var(&[6]), var(&[6])]
}

/// Forward outputs and all gradients of a small conv → bn → relu → pool stack.
fn run_stack(seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Rng(seed);
    let [x, w1, w2, gamma, beta] = stack_vars(&mut rng, (13, 11), 5);
    let h = conv2d(&x, &w1, 1, true).unwrap();
    let (h, m, v) = batch_norm_train(&h, &gamma, &beta, 1e-5).unwrap();
    let h = relu(&max_pool2d(&h, 2).unwrap()).unwrap();
    let y = conv2d(&h, &w2, 2, true).unwrap();
    bits_and_grads(&mut rng, [&y, &m, &v], &[&x, &w1, &w2, &gamma, &beta])
}

#[test]
fn deterministic_across_thread_counts() {
    assert_same_on_threads(|| run_stack(41), "conv, bn, relu, pool");
}

/// As run_stack, with the fused ops and chunked convolutions.
fn run_fused_stack(seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Rng(seed);
    let [x, w1, w2, gamma, beta] = stack_vars(&mut rng, (12, 10), 3);
    let h = conv2d(&x, &w1, 1, true).unwrap();
    let (h, m, v) = batch_norm_train_pool_relu(&h, &gamma, &beta, 1e-5, 2).unwrap();
    let y = max_pool2d_relu(&conv2d(&h, &w2, 1, true).unwrap(), 2).unwrap();
    bits_and_grads(&mut rng, [&y, &m, &v], &[&x, &w1, &w2, &gamma, &beta])
}

#[test]
fn fused_deterministic_across_thread_counts() {
    assert_same_on_threads(|| run_fused_stack(42), "fused ops");
}

#[test]
fn bad_inputs_are_errors() {
    let mut rng = Rng(51);
    let x = rng.tensor(&[2, 3, 8, 8]);
    let w = rng.tensor(&[4, 3, 3, 3]);
    // channel mismatch, wrong rank, kernel larger than the padded input, dtype
    assert!(conv2d(&x, &rng.tensor(&[4, 2, 3, 3]), 1, true).is_err());
    assert!(conv2d(&rng.tensor(&[3, 8, 8]), &w, 1, true).is_err());
    assert!(conv2d(&x, &rng.tensor(&[4, 3, 3]), 1, true).is_err());
    assert!(conv2d(
        &rng.tensor(&[2, 3, 2, 2]),
        &rng.tensor(&[4, 3, 5, 5]),
        0,
        true
    )
    .is_err());
    assert!(conv2d(&x, &rng.tensor(&[0, 3, 3, 3]), 1, true).is_err());
    assert!(conv2d(&x.to_dtype(DType::F64).unwrap(), &w, 1, true).is_err());
    assert!(conv2d(&x, &w.to_dtype(DType::F16).unwrap(), 1, true).is_err());
    assert!(conv2d_weight_grad(&x, &rng.tensor(&[2, 4, 7, 8]), 3, 3, 1).is_err());
    assert!(conv2d_input_grad(&rng.tensor(&[2, 4, 8, 8]), &w, 1, (9, 8)).is_err());
    assert!(max_pool2d(&x, 0).is_err());
    assert!(max_pool2d(&x, 9).is_err());
    assert!(max_pool2d(&rng.tensor(&[3, 8, 8]), 2).is_err());
    assert!(max_pool2d(&x.to_dtype(DType::F64).unwrap(), 2).is_err());
    assert!(max_pool2d_backward(&x, &rng.tensor(&[2, 3, 3, 4]), 2).is_err());
    let g = rng.tensor(&[3]);
    assert!(batch_norm_train(&x, &rng.tensor(&[4]), &g, 1e-5).is_err());
    assert!(batch_norm_train(&rng.tensor(&[5]), &g, &g, 1e-5).is_err());
    assert!(batch_norm_train(&x.to_dtype(DType::F64).unwrap(), &g, &g, 1e-5).is_err());
    assert!(batch_norm_train(&x, &g, &g, f64::NAN).is_err());
    // Non-contiguous input is accepted and gives the same result.
    let xt = x.transpose(2, 3).unwrap();
    let a = conv2d(&xt, &w, 1, true).unwrap();
    let b = conv2d(&xt.contiguous().unwrap(), &w, 1, true).unwrap();
    assert_eq!(bits(&a), bits(&b));
    // Empty batch is fine.
    let e = conv2d(&rng.tensor(&[0, 3, 8, 8]), &w, 1, true).unwrap();
    assert_eq!(e.dims(), &[0, 4, 8, 8]);
}

#[test]
fn conv_bn_pool_relu_deterministic_across_thread_counts() {
    let run = || {
        let mut rng = Rng(105);
        let x = Var::from_tensor(&rng.tensor(&[21, 3, 12, 10])).unwrap();
        let w1 = Var::from_tensor(&rng.tensor(&[6, 3, 3, 3])).unwrap();
        let w2 = Var::from_tensor(&rng.tensor(&[5, 6, 3, 3])).unwrap();
        let gamma = Var::from_tensor(&rng.tensor(&[6])).unwrap();
        let beta = Var::from_tensor(&rng.tensor(&[6])).unwrap();
        let g2 = Var::from_tensor(&rng.tensor(&[5])).unwrap();
        let b2 = Var::from_tensor(&rng.tensor(&[5])).unwrap();
        let (h, m, v) = conv_bn_train_pool_relu(&x, &w1, &gamma, &beta, 1, false, 1e-5, 2).unwrap();
        let (y, _, _) = conv_bn_train_pool_relu(&h, &w2, &g2, &b2, 1, true, 1e-5, 2).unwrap();
        bits_and_grads(&mut rng, [&y, &m, &v], &[&w1, &w2, &gamma, &beta, &g2, &b2])
    };
    assert_same_on_threads(run, "conv + bn + pool + relu");
}
