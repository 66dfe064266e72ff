//! `mf`: matrix factorisation for ratings, `r̂ = μ + b_u + b_i + ⟨p_u, q_i⟩`.

use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Sizes of an [`Mf`]. Tensor names: `users.weight`, `items.weight`, `user_bias.weight`,
/// `item_bias.weight`, `global_bias`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfConfig {
    pub users: usize,
    pub items: usize,
    #[serde(default = "default_factors")]
    pub factors: usize,
}

fn default_factors() -> usize {
    32
}

impl MfConfig {
    pub(super) fn check(&self) -> Option<String> {
        super::zero_sizes(&[("users", self.users), ("items", self.items), ("factors", self.factors)])
            .or_else(|| super::too_large(self.parameters()))
    }

    /// Factors and biases, or `None` past `u64`.
    fn parameters(&self) -> Option<u64> {
        let rows = (self.users as u64).checked_add(self.items as u64)?;
        rows.checked_mul((self.factors as u64).checked_add(1)?)?.checked_add(1)
    }

    /// A freshly initialised model with small random factors and zero biases.
    pub fn init(&self, device: &Device) -> Mf {
        let factors = |n| {
            EmbeddingConfig::new(n, self.factors)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.1 })
                .init(device)
        };
        let bias = |n| {
            EmbeddingConfig::new(n, 1)
                .with_initializer(Initializer::Zeros)
                .init(device)
        };
        Mf {
            config: self.clone(),
            users: factors(self.users),
            items: factors(self.items),
            user_bias: bias(self.users),
            item_bias: bias(self.items),
            global_bias: Param::from_tensor(Tensor::zeros([1], device)),
        }
    }
}

/// A biased matrix-factorisation recommender.
#[derive(Module, Debug)]
pub struct Mf {
    /// The sizes it was built from.
    #[module(skip)]
    pub config: MfConfig,
    users: Embedding,
    items: Embedding,
    user_bias: Embedding,
    item_bias: Embedding,
    global_bias: Param<Tensor<1>>,
}

impl Mf {
    /// `(user, item)` id pairs `[batch, 2]` → predicted ratings `[batch]`.
    pub fn forward(&self, pairs: Tensor<2, Int>) -> Tensor<1> {
        let [batch, _] = pairs.dims();
        let users = pairs.clone().slice([0..batch, 0..1]);
        let items = pairs.slice([0..batch, 1..2]);
        let dot = (self.users.forward(users.clone()) * self.items.forward(items.clone())).sum_dim(2);
        let bias = self.user_bias.forward(users) + self.item_bias.forward(items);
        (dot + bias).reshape([batch]) + self.global_bias.val()
    }
}
