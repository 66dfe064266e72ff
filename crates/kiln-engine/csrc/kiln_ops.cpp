// The libtorch entry points kiln needs that tch does not wrap (see src/ops/ffi.rs):
// aten::convolution_backward, autograd's grad() with explicit output gradients, and the
// single-kernel Adam/AdamW step (aten::_fused_adam_, _fused_adamw_). Tensors
// cross as `at::Tensor*` exactly as in tch's own C API (torch-sys/libtch/torch_api.h), so tch
// owns and frees every tensor returned here. Errors come back as a malloc'd message, never as
// a C++ exception unwinding into Rust.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace {

char *error_message(const char *what) {
  return strdup(what == nullptr ? "unknown libtorch error" : what);
}

// Returns a heap copy of `t` for tch, or null for an undefined tensor.
at::Tensor *give(const at::Tensor &t) {
  return t.defined() ? new at::Tensor(t) : nullptr;
}

}  // namespace

extern "C" {

// Gradients of a 2-d convolution (no transpose) with respect to its input, weight and bias;
// `mask` says which are wanted. Unwanted ones come back null.
char *kiln_conv2d_backward(const at::Tensor *grad_output, const at::Tensor *input,
                           const at::Tensor *weight, const int64_t *stride,
                           const int64_t *padding, const int64_t *dilation, int64_t groups,
                           int want_input, int want_weight, int want_bias,
                           at::Tensor **grad_input, at::Tensor **grad_weight,
                           at::Tensor **grad_bias) {
  try {
    std::vector<int64_t> bias_sizes{weight->size(0)};
    auto grads = at::convolution_backward(
        *grad_output, *input, *weight,
        want_bias ? at::OptionalIntArrayRef(bias_sizes) : at::OptionalIntArrayRef(),
        at::IntArrayRef(stride, 2), at::IntArrayRef(padding, 2), at::IntArrayRef(dilation, 2),
        /*transposed=*/false, /*output_padding=*/{0, 0}, groups,
        {want_input != 0, want_weight != 0, want_bias != 0});
    *grad_input = want_input ? give(std::get<0>(grads)) : nullptr;
    *grad_weight = want_weight ? give(std::get<1>(grads)) : nullptr;
    *grad_bias = want_bias ? give(std::get<2>(grads)) : nullptr;
    return nullptr;
  } catch (const std::exception &e) {
    return error_message(e.what());
  }
}

// torch::autograd::grad(outputs, inputs, grad_outputs): the gradient of `inputs` (leaves that
// require grad) given the gradient of each output. The graph is freed afterwards. An input the
// outputs do not depend on comes back null.
char *kiln_autograd_grad(const at::Tensor *const *outputs, const at::Tensor *const *grad_outputs,
                         int n_outputs, const at::Tensor *const *inputs, int n_inputs,
                         at::Tensor **grads) {
  try {
    std::vector<at::Tensor> outs, gouts, ins;
    for (int i = 0; i < n_outputs; ++i) {
      outs.push_back(*outputs[i]);
      gouts.push_back(*grad_outputs[i]);
    }
    for (int i = 0; i < n_inputs; ++i) ins.push_back(*inputs[i]);
    auto result = torch::autograd::grad(outs, ins, gouts, /*retain_graph=*/false,
                                        /*create_graph=*/false, /*allow_unused=*/true);
    for (int i = 0; i < n_inputs; ++i) grads[i] = give(result[i]);
    return nullptr;
  } catch (const std::exception &e) {
    return error_message(e.what());
  }
}

// One Adam (or, `decoupled`, AdamW) step of one parameter, in place on `param`, `exp_avg` and
// `exp_avg_sq` (contiguous, unshared); `step` holds the step number counting this one.
char *kiln_fused_adam(const at::Tensor *param, const at::Tensor *grad, const at::Tensor *exp_avg,
                      const at::Tensor *exp_avg_sq, const at::Tensor *step, double lr,
                      double beta1, double beta2, double weight_decay, double eps,
                      int decoupled) {
  try {
    std::vector<at::Tensor> params{*param}, grads{*grad}, avgs{*exp_avg}, sqs{*exp_avg_sq},
        steps{*step}, none;
    if (decoupled) {
      at::_fused_adamw_(params, grads, avgs, sqs, none, steps, lr, beta1, beta2, weight_decay,
                        eps, /*amsgrad=*/false, /*maximize=*/false);
    } else {
      at::_fused_adam_(params, grads, avgs, sqs, none, steps, lr, beta1, beta2, weight_decay,
                       eps, /*amsgrad=*/false, /*maximize=*/false);
    }
    return nullptr;
  } catch (const std::exception &e) {
    return error_message(e.what());
  }
}

}  // extern "C"
