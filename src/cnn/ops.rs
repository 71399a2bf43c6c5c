//! Convolution and pooling for the CNN. (Placeholder delegating to candle's own ops, until the
//! im2col + GEMM custom ops land.)

use candle_core::{Result, Tensor};

/// 2-D convolution, stride 1, zero padding `padding`, NCHW, no bias.
pub fn conv2d(x: &Tensor, w: &Tensor, padding: usize, need_input_grad: bool) -> Result<Tensor> {
    let _ = need_input_grad;
    x.conv2d(w, padding, 1, 1, 1)
}

/// Max pooling with kernel = stride = `k`.
pub fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    x.max_pool2d(k)
}
