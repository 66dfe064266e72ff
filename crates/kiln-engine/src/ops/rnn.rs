//! burn-nn's `Lstm` and `Gru` run as libtorch's fused `lstm`/`gru` (one call for the whole
//! sequence; cuDNN on a GPU) instead of stepping through time in Rust. Their gradients come
//! from libtorch's autograd over that call: the op records the graph on detached leaves in its
//! forward pass and asks autograd for the leaves' gradients in its backward pass. The
//! parameters stay burn's (`input_gate.input_transform.weight`, …), so checkpoints and
//! exported weights are unchanged; the gates are stacked into libtorch's layout with burn ops,
//! which carry the gradients back to each gate.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::{LibTorch, TchTensor};
use burn::nn::activation::Activation;
use burn::nn::{GateController, Gru, Linear, Lstm};
use burn::tensor::Tensor;

use super::{Lowered, ffi, lower, on_libtorch, raise};

/// Which fused recurrence.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Lstm,
    Gru,
}

impl Cell {
    /// Runs the recurrence over batch-first `x` with zero initial state; params are
    /// `[w_ih, w_hh, b_ih, b_hh]` in libtorch's layout. Returns every step's hidden state.
    fn run(self, x: &tch::Tensor, params: &[tch::Tensor], hidden: i64) -> tch::Tensor {
        on_libtorch();
        let batch = x.size()[0];
        let zeros = || tch::Tensor::zeros([1, batch, hidden], (x.kind(), x.device()));
        match self {
            Self::Lstm => x.lstm(&[zeros(), zeros()], params, true, 1, 0.0, true, false, true).0,
            Self::Gru => x.gru(&zeros(), params, true, 1, 0.0, true, false, true).0,
        }
    }
}

/// What the backward pass needs: the recorded output, the leaves that want gradients, and
/// handles on every input and on the output burn holds (so burn never overwrites them in
/// place while libtorch's graph refers to their storage).
#[derive(Debug, Clone)]
struct Recorded {
    graph_output: TchTensor,
    leaves: Vec<Option<TchTensor>>,
    _held: Vec<TchTensor>,
}

#[derive(Debug)]
struct FusedBackward;

impl Backward<LibTorch, 5> for FusedBackward {
    type State = Recorded;

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let recorded = ops.state;
        let wanted: Vec<(usize, &tch::Tensor)> = recorded
            .leaves
            .iter()
            .enumerate()
            .filter_map(|(i, leaf)| leaf.as_ref().map(|leaf| (i, &leaf.tensor)))
            .collect();
        let inputs: Vec<&tch::Tensor> = wanted.iter().map(|(_, leaf)| *leaf).collect();
        let computed = ffi::autograd_grad(&[&recorded.graph_output.tensor], &[&grad.tensor], &inputs)
            .unwrap_or_else(|e| panic!("libtorch recurrent backward failed: {e}"));
        for ((index, _), grad) in wanted.iter().zip(computed) {
            if let (Some(node), Some(grad)) = (&ops.parents[*index], grad) {
                grads.register::<LibTorch>(node.id, TchTensor::new(grad));
            }
        }
    }
}

/// The fused op over `[x, w_ih, w_hh, b_ih, b_hh]`; `Err(x)` when they are not all on one
/// LibTorch side (the caller then runs burn's layer on `x`).
fn fused(cell: Cell, hidden: usize, inputs: [Lowered; 5]) -> Result<Tensor<3>, Lowered> {
    let hidden = i64::try_from(hidden).unwrap_or(i64::MAX);
    match inputs {
        [
            Lowered::Autodiff(x),
            Lowered::Autodiff(w_ih),
            Lowered::Autodiff(w_hh),
            Lowered::Autodiff(b_ih),
            Lowered::Autodiff(b_hh),
        ] => {
            let all = [x, w_ih, w_hh, b_ih, b_hh];
            let prepared = FusedBackward
                .prepare::<NoCheckpointing>(all.each_ref().map(|t| t.node()))
                .compute_bound()
                .stateful();
            let output = match prepared {
                OpsKind::Tracked(prep) => {
                    let leaves: Vec<Option<TchTensor>> = all
                        .iter()
                        .map(|t| {
                            t.is_tracked()
                                .then(|| TchTensor::new(t.primitive().tensor.detach().set_requires_grad(true)))
                        })
                        .collect();
                    let args: Vec<tch::Tensor> = all
                        .iter()
                        .zip(&leaves)
                        .map(|(t, leaf)| match leaf {
                            Some(leaf) => leaf.tensor.shallow_clone(),
                            None => t.primitive().tensor.shallow_clone(),
                        })
                        .collect();
                    let graph_output = tch::with_grad(|| cell.run(&args[0], &args[1..], hidden));
                    let output = TchTensor::new(graph_output.detach());
                    let mut held: Vec<TchTensor> = all.into_iter().map(|t| t.into_primitive()).collect();
                    held.push(output.clone());
                    let recorded = Recorded {
                        graph_output: TchTensor::new(graph_output),
                        leaves,
                        _held: held,
                    };
                    prep.finish(recorded, output)
                }
                OpsKind::UnTracked(prep) => {
                    let args: Vec<tch::Tensor> = all.iter().map(|t| t.primitive().tensor.shallow_clone()).collect();
                    prep.finish(TchTensor::new(tch::no_grad(|| cell.run(&args[0], &args[1..], hidden))))
                }
            };
            Ok(raise(Lowered::Autodiff(output)))
        }
        [
            Lowered::Plain(x),
            Lowered::Plain(w_ih),
            Lowered::Plain(w_hh),
            Lowered::Plain(b_ih),
            Lowered::Plain(b_hh),
        ] => {
            let params = [w_ih, w_hh, b_ih, b_hh].map(|t| t.tensor);
            let output = tch::no_grad(|| cell.run(&x.tensor, &params, hidden));
            Ok(raise(Lowered::Plain(TchTensor::new(output))))
        }
        [x, ..] => Err(x),
    }
}

/// libtorch's `[w_ih, w_hh, b_ih, b_hh]` from burn gate controllers, in libtorch's gate order.
/// burn's `Linear` weight is `[in, out]`: the gates are stacked along `out`, then transposed.
fn stack(gates: &[&GateController]) -> [Tensor<2>; 2] {
    let weight = |pick: fn(&GateController) -> &Linear| {
        Tensor::cat(gates.iter().map(|g| pick(g).weight.val()).collect(), 1).transpose()
    };
    [weight(|g| &g.input_transform), weight(|g| &g.hidden_transform)]
}

fn biases(gates: &[&GateController]) -> Option<[Tensor<1>; 2]> {
    let bias = |pick: fn(&GateController) -> &Linear| -> Option<Tensor<1>> {
        let parts: Option<Vec<Tensor<1>>> = gates.iter().map(|g| pick(g).bias.as_ref().map(|b| b.val())).collect();
        Some(Tensor::cat(parts?, 0))
    };
    Some([bias(|g| &g.input_transform)?, bias(|g| &g.hidden_transform)?])
}

/// Every step's hidden state of `lstm` over batch-first `x` (`[batch, steps, features]`),
/// from a zero state: what `lstm.forward(x, None).0` returns.
pub fn lstm(lstm: &Lstm, x: Tensor<3>) -> Tensor<3> {
    let standard = lstm.batch_first
        && !lstm.reverse
        && lstm.clip.is_none()
        && !lstm.input_forget
        && matches!(lstm.gate_activation, Activation::Sigmoid(_))
        && matches!(lstm.cell_activation, Activation::Tanh(_))
        && matches!(lstm.hidden_activation, Activation::Tanh(_));
    // libtorch's gate order: input, forget, cell (g), output.
    let gates = lstm
        .forget_gate
        .as_ref()
        .map(|f| [&lstm.input_gate, f, &lstm.cell_gate, &lstm.output_gate]);
    let parts = gates.filter(|_| standard).and_then(|g| Some((stack(&g), biases(&g)?)));
    let Some(([w_ih, w_hh], [b_ih, b_hh])) = parts else {
        return lstm.forward(x, None).0;
    };
    let inputs = [lower(x), lower(w_ih), lower(w_hh), lower(b_ih), lower(b_hh)];
    fused(Cell::Lstm, lstm.d_hidden, inputs).unwrap_or_else(|x| lstm.forward(raise(x), None).0)
}

/// Every step's hidden state of `gru` over batch-first `x`, from a zero state: what
/// `gru.forward(x, None)` returns.
pub fn gru(gru: &Gru, x: Tensor<3>) -> Tensor<3> {
    // libtorch's GRU applies the reset gate after the hidden product (burn's `reset_after`).
    let standard = gru.reset_after
        && gru.clip.is_none()
        && matches!(gru.gate_activation, Activation::Sigmoid(_))
        && matches!(gru.hidden_activation, Activation::Tanh(_));
    // libtorch's gate order: reset, update (z), new.
    let gates = [&gru.reset_gate, &gru.update_gate, &gru.new_gate];
    let parts = standard.then(|| Some((stack(&gates), biases(&gates)?))).flatten();
    let Some(([w_ih, w_hh], [b_ih, b_hh])) = parts else {
        return gru.forward(x, None);
    };
    let inputs = [lower(x), lower(w_ih), lower(w_hh), lower(b_ih), lower(b_hh)];
    fused(Cell::Gru, gru.d_hidden, inputs).unwrap_or_else(|x| gru.forward(raise(x), None))
}
