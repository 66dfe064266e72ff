//! `rnn`: token embedding → LSTM or GRU → linear classifier over the last hidden state. The
//! recurrence runs as libtorch's fused `lstm`/`gru` ([`crate::ops`]).

use burn::nn::{Embedding, EmbeddingConfig, Gru, GruConfig, Linear, LinearConfig, Lstm, LstmConfig};
use burn::prelude::*;

use crate::ops;
use serde::{Deserialize, Serialize};

/// Which recurrent cell an [`Rnn`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RnnCell {
    #[default]
    Lstm,
    Gru,
}

/// Sizes of an [`Rnn`]. Tensor names: `embedding.weight`, `lstm.…` or `gru.…`, `output.…`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnConfig {
    /// Vocabulary size, including the padding (0) and unknown (1) tokens.
    pub vocab: usize,
    pub classes: usize,
    #[serde(default = "default_embed")]
    pub embed: usize,
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    #[serde(default)]
    pub cell: RnnCell,
}

fn default_embed() -> usize {
    64
}
fn default_hidden() -> usize {
    128
}

impl RnnConfig {
    pub(super) fn check(&self) -> Option<String> {
        super::zero_sizes(&[
            ("vocab", self.vocab),
            ("classes", self.classes),
            ("embed", self.embed),
            ("hidden", self.hidden),
        ])
        .or_else(|| super::too_large(self.parameters()))
    }

    /// Weights and biases (an LSTM's four gates; a GRU has fewer), or `None` past `u64`.
    fn parameters(&self) -> Option<u64> {
        let (vocab, embed, hidden, classes) = (
            self.vocab as u64,
            self.embed as u64,
            self.hidden as u64,
            self.classes as u64,
        );
        let gates = embed
            .checked_add(hidden)?
            .checked_add(2)?
            .checked_mul(hidden)?
            .checked_mul(4)?;
        vocab
            .checked_mul(embed)?
            .checked_add(gates)?
            .checked_add(hidden.checked_mul(classes)?.checked_add(classes)?)
    }

    /// A freshly initialised model.
    pub fn init(&self, device: &Device) -> Rnn {
        let (lstm, gru) = match self.cell {
            RnnCell::Lstm => (Some(LstmConfig::new(self.embed, self.hidden, true).init(device)), None),
            RnnCell::Gru => (None, Some(GruConfig::new(self.embed, self.hidden, true).init(device))),
        };
        Rnn {
            config: self.clone(),
            embedding: EmbeddingConfig::new(self.vocab, self.embed).init(device),
            lstm,
            gru,
            output: LinearConfig::new(self.hidden, self.classes).init(device),
        }
    }
}

/// A sequence classifier.
#[derive(Module, Debug)]
pub struct Rnn {
    /// The sizes it was built from.
    #[module(skip)]
    pub config: RnnConfig,
    embedding: Embedding,
    lstm: Option<Lstm>,
    gru: Option<Gru>,
    output: Linear,
}

impl Rnn {
    /// Token ids `[batch, steps]` → logits `[batch, classes]`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        let x = self.embedding.forward(tokens);
        let states = match (&self.lstm, &self.gru) {
            (Some(lstm), _) => ops::lstm(lstm, x),
            (None, Some(gru)) => ops::gru(gru, x),
            (None, None) => x,
        };
        let [batch, steps, hidden] = states.dims();
        let last = states
            .slice([0..batch, steps - 1..steps, 0..hidden])
            .reshape([batch, hidden]);
        self.output.forward(last)
    }
}
