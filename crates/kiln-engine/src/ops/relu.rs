//! ReLU whose backward is libtorch's `threshold_backward` (one kernel; burn's generic
//! `relu_backward` is a comparison, a bool tensor and a masked fill).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::libtorch::{LibTorch, TchTensor};
use burn::tensor::Tensor;

use super::{Lowered, lower, on_libtorch, raise};

#[derive(Debug)]
struct ReluBackward;

impl Backward<LibTorch, 1> for ReluBackward {
    /// The output: its positive entries are where the gradient flows.
    type State = TchTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let output = ops.state;
        unary::<LibTorch, _>(ops.parents, ops.node, grads, |grad: TchTensor| {
            // aten::threshold_backward(grad_output, self = output, 0); tch's receiver is `self`.
            TchTensor::new(output.tensor.threshold_backward(&grad.tensor, 0.0))
        });
    }
}

/// `max(x, 0)`, in place when nothing else holds `x` (as burn-tch does).
fn forward(x: TchTensor) -> TchTensor {
    on_libtorch();
    x.unary_ops(|mut t| t.relu_(), |t| t.relu())
}

/// Rectified linear unit.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match lower(x) {
        Lowered::Autodiff(x) => {
            let prepared = ReluBackward
                .prepare::<NoCheckpointing>([x.node()])
                .compute_bound()
                .stateful();
            let output = match prepared {
                OpsKind::Tracked(prep) => {
                    let output = forward(x.into_primitive());
                    // The state's handle keeps later ops from overwriting the output in place.
                    prep.finish(output.clone(), output)
                }
                OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
            };
            raise(Lowered::Autodiff(output))
        }
        Lowered::Plain(x) => raise(Lowered::Plain(forward(x))),
        other => burn::tensor::activation::relu(raise(other)),
    }
}
