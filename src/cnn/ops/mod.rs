//! Fast CPU custom ops for the small CNN: convolution, max pooling and training-mode batch norm.
//!
//! # Why this exists
//!
//! Measured on candle 0.11.1 (CPU, 2 threads, batch 128 of 1×28×28, the three-block
//! conv3x3 → BN → ReLU → max-pool network): a training step was about 5x slower than PyTorch,
//! and about 85% of the step was the backward pass, because
//!
//! * candle's conv2d *input* gradient is a direct nested loop, not im2col + GEMM;
//! * candle's max-pool backward is assembled from ~7 generic ops (upsample, eq, to_dtype,
//!   avg-pool, mul, upsample, mul), each a full pass over the activations;
//! * the gradient with respect to the network input (the image) is computed although nothing
//!   consumes it;
//! * candle-nn's training-mode batch norm is a dozen generic ops with a transpose + copy, and its
//!   backward is the autodiff of all of them.
//!
//! # What it does
//!
//! [`conv2d`], [`max_pool2d`], [`batch_norm_train`], [`batch_norm_eval`] and [`relu`](fn@relu) are
//! candle custom ops (`CustomOp1/2/3`) with hand-written forward and backward kernels:
//!
//! * convolution forward, weight gradient and input gradient are all im2col (or col2im) + one
//!   `gemm` call per fixed chunk of images, parallel across chunks with rayon (weight gradient:
//!   [`DW_CHUNK`] images; forward and input gradient: enough images for about 256 GEMM columns,
//!   i.e. 5 images of 7×7 in the third block, 1 image of 14×14 or 28×28 — one 49-column GEMM per
//!   image was the slowest part of the step); the input gradient is skipped when the caller says
//!   it is not needed (`need_input_grad == false`) or when the input does not track gradients;
//! * max pooling (kernel = stride) forward and backward are single passes; the backward routes
//!   each window's gradient to the first maximal element of the window;
//! * batch norm computes per-channel batch statistics, normalizes and applies the affine in
//!   fused passes, with the analytic backward (two passes over the activations); the eval-mode
//!   variant is one pass;
//! * ReLU is one pass forward and one backward (candle's built-in backward is ~6 passes).
//!
//! * [`max_pool2d_relu`], [`batch_norm_train_pool_relu`] and [`batch_norm_eval_pool_relu`] fuse
//!   the block's tail (batch norm → max-pool → ReLU) into one graph node. candle's backward
//!   allocates a zeroed gradient for every node input and adds the node's gradient into it, so
//!   every full-size intermediate costs several passes in the backward; the fused ops never
//!   form the normalized tensor nor its gradient, and the forward writes only the pooled output.
//!   For k = 2 the forward also keeps one byte per window saying where the window's gradient
//!   goes (its first maximum, or nowhere when the ReLU cuts it), computed with branch-free
//!   selects, so the backward passes do not search the windows again.
//! * [`conv_bn_train_pool_relu`] goes one step further for training: the whole block
//!   (convolution → batch norm → max-pool → ReLU) is one graph node whose op keeps the
//!   convolution output itself, so candle never allocates, zeroes and accumulates a gradient of
//!   the convolution output's size (that bookkeeping was about a tenth of a training step).
//!   Its backward works on fixed chunks of [`DW_CHUNK`] images: each chunk forms its part of the
//!   convolution output's gradient in scratch memory and feeds it to the weight- and
//!   input-gradient GEMMs, so that full-size gradient is never allocated nor copied.
//!
//! The backward passes are themselves custom ops (applied without graph tracking, so they are
//! not differentiable a second time), so a `loss.backward()` never falls back to candle's slow
//! paths for these layers.
//!
//! # Determinism
//!
//! Every output and gradient is bit-identical whatever the rayon thread count: per-image work is
//! independent, GEMMs run single-threaded inside a task (`gemm::Parallelism::None`), and every
//! reduction over the batch (conv weight gradient, batch-norm statistics and parameter
//! gradients) sums in a fixed order over fixed-size pieces that do not depend on the number of
//! threads.
//!
//! # Devices and dtypes
//!
//! The fast paths are CPU + f32 only, on NCHW tensors. On any other device the public functions
//! fall back to candle's own ops (`Tensor::conv2d`, `Tensor::max_pool2d`, generic batch-norm
//! ops), so a CUDA build still works. Other dtypes and bad shapes give a candle error, never a
//! panic.
//!
//! Each rayon worker thread keeps a scratch buffer (the im2col matrix of one image, or of one
//! weight-gradient chunk) that is reused across calls; it grows to the largest size seen
//! (about 2 MB per thread for this network) and is never shrunk.

mod batch_norm;
mod conv;
mod cpu;
mod fused;
mod pool;
mod relu;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

pub(crate) use batch_norm::{batch_norm_eval, batch_norm_train};
pub(crate) use conv::conv2d;
pub(crate) use fused::{batch_norm_eval_pool_relu, conv_bn_train_pool_relu};
pub(crate) use pool::max_pool2d;
pub(crate) use relu::relu;
// Not used outside this module (the fused ops the network does not call, the chunk size), but
// re-exported with the others so that every item named above stays at `ops::NAME`.
#[allow(unused_imports)]
pub(crate) use {
    cpu::DW_CHUNK,
    fused::{batch_norm_train_pool_relu, max_pool2d_relu},
};
// The direct backward entry points the tests check the backward ops through.
#[cfg(test)]
pub(crate) use {
    conv::{conv2d_input_grad, conv2d_weight_grad},
    pool::max_pool2d_backward,
};
