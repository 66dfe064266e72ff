//! `mlp`: a multi-layer perceptron for tabular rows or flattened images.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::DType;

use crate::layers::Probe;
use crate::ops;
use serde::{Deserialize, Serialize};

/// Sizes of an [`Mlp`]. Tensor names: `hidden.<i>.{weight,bias}`, `output.{weight,bias}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Features per row (784 for a flattened 28×28 image).
    pub inputs: usize,
    /// Width of each hidden layer.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

fn default_hidden() -> Vec<usize> {
    vec![256, 128]
}

impl MlpConfig {
    pub(super) fn check(&self) -> Option<String> {
        let mut sizes = vec![("inputs", self.inputs), ("classes", self.classes)];
        sizes.extend(self.hidden.iter().map(|h| ("hidden", *h)));
        super::zero_sizes(&sizes).or_else(|| super::too_large(self.parameters()))
    }

    /// Weights and biases, or `None` past `u64`.
    fn parameters(&self) -> Option<u64> {
        let mut widths = vec![self.inputs];
        widths.extend(&self.hidden);
        widths.push(self.classes);
        widths.windows(2).try_fold(0u64, |sum, pair| {
            let (from, to) = (pair[0] as u64, pair[1] as u64);
            sum.checked_add(from.checked_mul(to)?.checked_add(to)?)
        })
    }

    /// A freshly initialised model.
    pub fn init(&self, device: &Device) -> Mlp {
        let mut width = self.inputs;
        let mut hidden = Vec::with_capacity(self.hidden.len());
        for &h in &self.hidden {
            hidden.push(LinearConfig::new(width, h).init(device));
            width = h;
        }
        Mlp {
            config: self.clone(),
            hidden,
            output: LinearConfig::new(width, self.classes).init(device),
        }
    }
}

/// Linear → ReLU layers, then a linear classifier producing logits.
#[derive(Module, Debug)]
pub struct Mlp {
    /// The sizes it was built from.
    #[module(skip)]
    pub config: MlpConfig,
    hidden: Vec<Linear>,
    output: Linear,
}

impl Mlp {
    /// `[batch, inputs]` → logits `[batch, classes]`, f32 whatever precision the weights
    /// compute in (a half-precision copy takes f32 rows and casts them).
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.forward_probed(input, &mut Probe::off())
    }

    /// [`Mlp::forward`], showing each hidden layer's ReLU output to `probe` (`hidden.<i>`).
    pub fn forward_probed(&self, input: Tensor<2>, probe: &mut Probe) -> Tensor<2> {
        let input = super::to_dtype(input, self.output.weight.val().dtype());
        let x = self.hidden.iter().enumerate().fold(input, |x, (i, layer)| {
            probe.relu(|| format!("hidden.{i}"), ops::relu(layer.forward(x)))
        });
        super::to_dtype(self.output.forward(x), DType::F32)
    }
}
