//! The dead-unit probe: a model's forward pass hands it each ReLU layer's output, and on a
//! sampled batch it adds up, per unit, the outputs seen in the window. ReLU outputs are never
//! negative, so a unit whose sum is still 0 at the end of the window never fired.
//!
//! A unit is an output feature of a linear layer (`[batch, features]`) or a channel of a
//! convolution (`[batch, channels, height, width]`: a channel fires when any position of any
//! example is positive). The sum runs over a `[rows, units]` view with the units last: for a
//! convolution's channels-last output that is its memory order, one pass over contiguous rows
//! (a max over the other axes one at a time costs 20 times as much, which the `cnn` felt).

use burn::tensor::Tensor;

/// Each probed ReLU layer's per-unit output sum over the sampled batches of the window.
#[derive(Debug, Default)]
pub struct Probe {
    /// Whether this forward pass is sampled.
    pub(super) on: bool,
    /// `(layer, output sum per unit)`, in the order the forward pass met them.
    pub(super) sums: Vec<(String, Tensor<1>)>,
}

impl Probe {
    /// A probe that notes nothing (plain forward passes).
    pub fn off() -> Self {
        Self::default()
    }

    /// Passes `output`, the output of ReLU layer `name` (units on axis 1), through; when the
    /// batch is sampled, adds each unit's outputs over the batch to the window's.
    pub fn relu<const D: usize>(&mut self, name: impl FnOnce() -> String, output: Tensor<D>) -> Tensor<D> {
        if self.on {
            self.note(name(), &output);
        }
        output
    }

    fn note<const D: usize>(&mut self, name: String, output: &Tensor<D>) {
        let dims = output.dims();
        let Some(&units) = dims.get(1) else { return };
        let rows = dims.iter().product::<usize>() / units.max(1);
        // Units last: [batch, positions…, units]; axis 1 moves to the end.
        let axes: [usize; D] = std::array::from_fn(|i| match i {
            0 => 0,
            i if i + 1 == D => 1,
            i => i + 1,
        });
        // Off the autodiff graph: the sums are statistics, not part of the loss.
        let batch = output
            .clone()
            .inner()
            .permute(axes)
            .reshape([rows, units])
            .sum_dim(0)
            .reshape([units]);
        match self.sums.iter_mut().find(|(n, _)| *n == name) {
            Some((_, window)) => {
                let so_far = std::mem::replace(window, batch.clone());
                *window = so_far + batch;
            }
            None => self.sums.push((name, batch)),
        }
    }

    /// The share of each probed layer's units that never fired, as one-element tensors
    /// (read with the other statistics in one transfer).
    pub(super) fn dead_shares(&self) -> Vec<(String, Tensor<1>)> {
        self.sums
            .iter()
            .map(|(name, sum)| {
                let dead = sum.clone().lower_equal_elem(0.0).float().mean();
                (name.clone(), dead.cast(burn::tensor::DType::F64))
            })
            .collect()
    }

    /// Forgets the window's sums.
    pub(super) fn clear(&mut self) {
        self.sums.clear();
    }
}
