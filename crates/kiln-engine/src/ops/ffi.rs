//! Bindings to `csrc/kiln_ops.cpp`: the libtorch calls tch does not wrap. Tensors cross as
//! tch's own `at::Tensor*` handles, so what comes back is an ordinary `tch::Tensor` that tch
//! frees; a libtorch error comes back as its message, never as an unwinding C++ exception.

// The one FFI boundary of the engine; each call below states what it relies on.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;

use tch::Tensor;
use torch_sys::C_tensor;

unsafe extern "C" {
    fn kiln_conv2d_backward(
        grad_output: *const C_tensor,
        input: *const C_tensor,
        weight: *const C_tensor,
        stride: *const i64,
        padding: *const i64,
        dilation: *const i64,
        groups: i64,
        want_input: c_int,
        want_weight: c_int,
        want_bias: c_int,
        grad_input: *mut *mut C_tensor,
        grad_weight: *mut *mut C_tensor,
        grad_bias: *mut *mut C_tensor,
    ) -> *mut c_char;

    fn kiln_autograd_grad(
        outputs: *const *const C_tensor,
        grad_outputs: *const *const C_tensor,
        n_outputs: c_int,
        inputs: *const *const C_tensor,
        n_inputs: c_int,
        grads: *mut *mut C_tensor,
    ) -> *mut c_char;

    fn kiln_fused_adam(
        param: *const C_tensor,
        grad: *const C_tensor,
        exp_avg: *const C_tensor,
        exp_avg_sq: *const C_tensor,
        step: *const C_tensor,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        decoupled: c_int,
    ) -> *mut c_char;

    fn free(ptr: *mut c_void);
}

/// Adam's settings for [`fused_adam`].
#[derive(Debug, Clone, Copy)]
pub struct AdamSettings {
    pub lr: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    pub weight_decay: f64,
    /// AdamW: weight decay applied to the parameter, not added to the gradient.
    pub decoupled: bool,
}

/// libtorch's single-kernel Adam step (`aten::_fused_adam_`/`_fused_adamw_`), in place on
/// `param`, `exp_avg` and `exp_avg_sq`, which must be contiguous and held by no one else;
/// `step` is the step number including this one (a one-value float tensor).
pub fn fused_adam(
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    step: &Tensor,
    settings: AdamSettings,
) -> Result<(), String> {
    // SAFETY: five live tch handles borrowed for the call; the kernel writes only into the
    // storage of param, exp_avg and exp_avg_sq, which the caller owns exclusively.
    let error = unsafe {
        kiln_fused_adam(
            param.as_ptr(),
            grad.as_ptr(),
            exp_avg.as_ptr(),
            exp_avg_sq.as_ptr(),
            step.as_ptr(),
            settings.lr,
            settings.beta_1,
            settings.beta_2,
            settings.weight_decay,
            settings.epsilon,
            c_int::from(settings.decoupled),
        )
    };
    check(error)
}

/// Which gradients of a convolution to compute.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub input: bool,
    pub weight: bool,
    pub bias: bool,
}

/// Geometry of a 2-d convolution.
#[derive(Debug, Clone, Copy)]
pub struct Conv2dGeometry {
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
}

/// `aten::convolution_backward` for a (non-transposed) 2-d convolution: the gradients of its
/// input, weight and bias given the output's, each `None` where not wanted.
pub fn conv2d_backward(
    grad_output: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    geometry: Conv2dGeometry,
    wanted: Wanted,
) -> Result<[Option<Tensor>; 3], String> {
    let mut out = [ptr::null_mut(); 3];
    let [gi, gw, gb] = &mut out;
    // SAFETY: the three tensors are live tch handles borrowed for the call; the geometry
    // arrays hold the two values the C++ side reads; the out pointers are valid for writes and
    // receive either null or a heap `at::Tensor` that `adopt` hands to tch.
    let error = unsafe {
        kiln_conv2d_backward(
            grad_output.as_ptr(),
            input.as_ptr(),
            weight.as_ptr(),
            geometry.stride.as_ptr(),
            geometry.padding.as_ptr(),
            geometry.dilation.as_ptr(),
            geometry.groups,
            c_int::from(wanted.input),
            c_int::from(wanted.weight),
            c_int::from(wanted.bias),
            gi,
            gw,
            gb,
        )
    };
    check(error)?;
    Ok(out.map(adopt))
}

/// `torch::autograd::grad`: the gradients of `inputs` (leaves that require grad) given those of
/// `outputs`, freeing the graph. `None` for an input the outputs do not depend on.
pub fn autograd_grad(
    outputs: &[&Tensor],
    grad_outputs: &[&Tensor],
    inputs: &[&Tensor],
) -> Result<Vec<Option<Tensor>>, String> {
    if outputs.len() != grad_outputs.len() {
        return Err(format!(
            "{} outputs but {} output gradients",
            outputs.len(),
            grad_outputs.len()
        ));
    }
    let handles = |ts: &[&Tensor]| ts.iter().map(|t| t.as_ptr()).collect::<Vec<_>>();
    let (outs, gouts, ins) = (handles(outputs), handles(grad_outputs), handles(inputs));
    let mut grads = vec![ptr::null_mut(); inputs.len()];
    // SAFETY: every handle is a live tch tensor borrowed for the call, the counts match the
    // arrays, and `grads` has one slot per input for null or a heap `at::Tensor`.
    let error = unsafe {
        kiln_autograd_grad(
            outs.as_ptr(),
            gouts.as_ptr(),
            count(outs.len())?,
            ins.as_ptr(),
            count(ins.len())?,
            grads.as_mut_ptr(),
        )
    };
    check(error)?;
    Ok(grads.into_iter().map(adopt).collect())
}

fn count(n: usize) -> Result<c_int, String> {
    c_int::try_from(n).map_err(|_| format!("{n} tensors is more than one call takes"))
}

/// Takes ownership of a tensor the C++ side allocated (null: none).
fn adopt(handle: *mut C_tensor) -> Option<Tensor> {
    // SAFETY: a non-null handle is a fresh `new at::Tensor` nobody else owns; tch deletes it.
    (!handle.is_null()).then(|| unsafe { Tensor::from_ptr(handle) })
}

/// The C++ side's error message, if any (freeing it).
fn check(error: *mut c_char) -> Result<(), String> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null error is a NUL-terminated string from strdup, ours to free.
    let message = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
    // SAFETY: allocated by malloc (strdup) and read above; freed once.
    unsafe { free(error.cast()) };
    Err(message)
}
