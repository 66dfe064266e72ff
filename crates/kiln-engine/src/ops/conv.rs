//! conv2d whose gradients come from libtorch's `aten::convolution_backward` (the kernel
//! PyTorch's autograd calls: oneDNN on CPU, cuDNN on CUDA). burn's generic weight gradient is
//! a forward convolution over batch/channel-swapped copies of the input and output gradient.
//!
//! On the CPU the convolution runs channels-last (NHWC strides under the NCHW shape), the
//! layout oneDNN is fastest in: libtorch keeps it through ReLU and max-pool (whose NCHW kernel
//! is scalar and the slowest op of a cnn step), and `reshape` gives row-major order back where
//! a layer needs it. The weight's gradient is returned in the weight's own layout.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::{LibTorch, TchTensor};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use super::ffi::{self, Conv2dGeometry, Wanted};
use super::{Lowered, i64s, lower, on_libtorch, raise};

#[derive(Debug)]
struct Conv2dBackward;

impl Backward<LibTorch, 3> for Conv2dBackward {
    /// Input and weight as the forward pass laid them out, and the geometry.
    type State = (Operand, Operand, Conv2dGeometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, weight_node, bias_node] = ops.parents;
        let (input, weight, geometry) = ops.state;
        let grad = grads.consume::<LibTorch>(&ops.node);
        let wanted = Wanted {
            input: input_node.is_some(),
            weight: weight_node.is_some(),
            bias: bias_node.is_some(),
        };
        let [grad_input, grad_weight, grad_bias] = ffi::conv2d_backward(
            &grad.tensor,
            &input.laid_out.tensor,
            &weight.laid_out.tensor,
            geometry,
            wanted,
        )
        .unwrap_or_else(|e| panic!("libtorch convolution backward failed: {e}"));
        // The parameter's own (row-major) layout, whatever layout the kernel computed in.
        let grad_weight = grad_weight.map(|g| g.contiguous());
        let computed = [grad_input, grad_weight, grad_bias];
        for (node, grad) in [input_node, weight_node, bias_node].into_iter().zip(computed) {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<LibTorch>(node.id, TchTensor::new(grad));
            }
        }
    }
}

/// The symmetric padding a libtorch convolution takes, or `None` where burn pads unevenly.
fn symmetric_padding(conv: &Conv2d) -> Option<[usize; 2]> {
    match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        // burn's `Same` is symmetric for odd kernels at stride and dilation 1.
        PaddingConfig2d::Same
            if conv.stride == [1, 1] && conv.dilation == [1, 1] && conv.kernel_size.iter().all(|k| k % 2 == 1) =>
        {
            Some(conv.kernel_size.map(|k| (k - 1) / 2))
        }
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => Some([top, left]),
        _ => None,
    }
}

/// A convolution operand in the layout the kernel gets, holding burn's tensor so burn never
/// overwrites it in place while the backward pass needs it.
#[derive(Debug, Clone)]
struct Operand {
    laid_out: TchTensor,
    _held: TchTensor,
}

impl Operand {
    fn new(tensor: TchTensor) -> Self {
        Self {
            laid_out: TchTensor::new(laid_out(&tensor.tensor)),
            _held: tensor,
        }
    }
}

/// Channels-last on the CPU (no copy for a tensor already in it), unchanged elsewhere.
fn laid_out(tensor: &tch::Tensor) -> tch::Tensor {
    if tensor.device() != tch::Device::Cpu {
        return tensor.shallow_clone();
    }
    let nhwc = tensor.permute([0, 2, 3, 1]).contiguous();
    let [n, h, w, c] = <[i64; 4]>::try_from(nhwc.size()).unwrap_or_else(|_| unreachable!("conv operands are 4-d"));
    // Explicit strides: with one channel the permuted view is already "contiguous", and
    // permuting back would keep the row-major strides libtorch reads as NCHW.
    nhwc.as_strided([n, c, h, w], [h * w * c, 1, w * c, c], None)
}

fn forward(input: &tch::Tensor, weight: &tch::Tensor, bias: &TchTensor, geometry: Conv2dGeometry) -> TchTensor {
    on_libtorch();
    TchTensor::new(input.conv2d(
        weight,
        Some(&bias.tensor),
        geometry.stride,
        geometry.padding,
        geometry.dilation,
        geometry.groups,
    ))
}

/// `conv`'s forward pass on `input` (`[batch, channels, height, width]`).
pub fn conv2d(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let (Some(padding), Some(bias)) = (symmetric_padding(conv), conv.bias.as_ref()) else {
        return conv.forward(input);
    };
    let geometry = Conv2dGeometry {
        stride: i64s(conv.stride),
        padding: i64s(padding),
        dilation: i64s(conv.dilation),
        groups: i64::try_from(conv.groups).unwrap_or(i64::MAX),
    };
    match [lower(input), lower(conv.weight.val()), lower(bias.val())] {
        [Lowered::Autodiff(x), Lowered::Autodiff(w), Lowered::Autodiff(b)] => {
            let prepared = Conv2dBackward
                .prepare::<NoCheckpointing>([x.node(), w.node(), b.node()])
                .compute_bound()
                .stateful();
            let output = match prepared {
                OpsKind::Tracked(prep) => {
                    let (x, w) = (Operand::new(x.into_primitive()), Operand::new(w.into_primitive()));
                    let output = forward(&x.laid_out.tensor, &w.laid_out.tensor, b.primitive(), geometry);
                    prep.finish((x, w, geometry), output)
                }
                OpsKind::UnTracked(prep) => {
                    let (x, w) = (laid_out(&x.primitive().tensor), laid_out(&w.primitive().tensor));
                    prep.finish(forward(&x, &w, b.primitive(), geometry))
                }
            };
            raise(Lowered::Autodiff(output))
        }
        [Lowered::Plain(x), Lowered::Plain(w), Lowered::Plain(b)] => {
            let output = forward(&laid_out(&x.tensor), &laid_out(&w.tensor), &b, geometry);
            raise(Lowered::Plain(output))
        }
        [x, _, _] => conv.forward(raise(x)),
    }
}
