//! The engine's differentiable layers on libtorch's own kernels, forward and backward.
//!
//! burn 0.22's autodiff computes most backward passes with generic code built from other ops
//! (ReLU's through a comparison and a masked fill, conv2d's weight gradient through a forward
//! convolution of transposed copies) and steps burn-nn's LSTM/GRU through time in Rust, one
//! small kernel chain per step. Each op here registers its own `Backward` on
//! `Autodiff<LibTorch>` (burn's extension point for custom differentiable ops) and calls the
//! kernel PyTorch itself would: `threshold_backward`, `aten::convolution_backward`, and the
//! fused `lstm`/`gru` with libtorch's autograd for their gradients (cuDNN on a GPU); and Adam's
//! step is libtorch's single fused kernel (optimizers are not autodiff ops). A tensor
//! on another backend, or with gradient checkpointing, takes burn's own op instead, which is
//! also the reference the tests compare every gradient with.
//!
//! This keeps burn and burn-tch unpatched: burn-tch is deprecated upstream, and a fork of it
//! would be ours to rebase on every burn release; these ops touch only its public types.

// burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.
#![allow(deprecated)]

mod adam;
mod conv;
mod ffi;
mod relu;
mod rnn;

pub use adam::{FusedAdam, FusedAdamW};
pub use conv::conv2d;
pub use relu::relu;
pub use rnn::{gru, lstm};

use burn::backend::Autodiff;
use burn::backend::libtorch::{LibTorch, TchTensor};
use burn::backend::{
    BackendTensor, DispatchAutodiffContext, DispatchKindConversion, DispatchTensor, DispatchTensorKind,
    GradientCheckpointingStrategy,
};
use burn::tensor::Tensor;

/// The tracked tensor type of `Autodiff<LibTorch>`.
type Tracked = burn::backend::tensor::FloatTensor<Autodiff<LibTorch>>;

/// A float tensor taken apart for a libtorch op.
enum Lowered {
    /// On the autodiff LibTorch device (tracked for gradients or not).
    Autodiff(Tracked),
    /// On a plain LibTorch device (inference).
    Plain(TchTensor),
    /// Anything else: the op raises it back and uses burn's own.
    Other(DispatchTensor),
}

fn lower<const D: usize>(tensor: Tensor<D>) -> Lowered {
    let dispatch = tensor.into_dispatch();
    let no_checkpointing = DispatchAutodiffContext::Enabled(GradientCheckpointingStrategy::Disabled);
    match (&dispatch.kind, dispatch.autodiff) {
        (DispatchTensorKind::Autodiff(inner), context)
            if context == no_checkpointing && matches!(**inner, DispatchTensorKind::LibTorch(_)) =>
        {
            match <DispatchTensor as DispatchKindConversion<Autodiff<LibTorch>>>::try_into_backend(dispatch) {
                Ok(BackendTensor::Float(tensor)) => Lowered::Autodiff(tensor),
                _ => unreachable!("an autodiff LibTorch float converts to its primitive"),
            }
        }
        (DispatchTensorKind::LibTorch(BackendTensor::Float(_)), DispatchAutodiffContext::Disabled) => {
            match <DispatchTensor as DispatchKindConversion<LibTorch>>::try_into_backend(dispatch) {
                Ok(BackendTensor::Float(tensor)) => Lowered::Plain(tensor),
                _ => unreachable!("a LibTorch float converts to its primitive"),
            }
        }
        _ => Lowered::Other(dispatch),
    }
}

/// Back to a burn tensor, unchanged.
fn raise<const D: usize>(tensor: Lowered) -> Tensor<D> {
    match tensor {
        Lowered::Autodiff(tensor) => Tensor::from_primitive::<Autodiff<LibTorch>>(tensor),
        Lowered::Plain(tensor) => Tensor::from_primitive::<LibTorch>(tensor),
        Lowered::Other(tensor) => Tensor::from_dispatch(tensor),
    }
}

#[cfg(test)]
thread_local! {
    /// Ops this thread ran on libtorch's kernels (tests check burn's path was not taken).
    static ON_LIBTORCH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts one op run on libtorch's kernels (test builds only).
fn on_libtorch() {
    #[cfg(test)]
    ON_LIBTORCH.with(|n| n.set(n.get() + 1));
}

/// Dims as libtorch's `i64`s.
fn i64s<const N: usize>(values: [usize; N]) -> [i64; N] {
    values.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

#[cfg(test)]
pub(crate) mod tests;
