//! Why a compression step was refused or failed.

use crate::weights::WeightsError;

/// A pruning or quantization request that cannot be carried out, with what to change.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("sparsity must be between 0 and 1 (exclusive), not {0}")]
    Sparsity(f64),
    #[error("the model has no weight matrices or kernels to prune (only rank-1 tensors or embeddings)")]
    NothingToPrune,
    #[error("cannot read the values of tensor {name}: {reason}")]
    Tensor { name: String, reason: String },
    #[error("cannot quantize {name}: {reason}")]
    Shape { name: String, reason: String },
    #[error("not a usable weights file: {0}")]
    Format(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

impl From<safetensors::SafeTensorError> for CompressError {
    fn from(error: safetensors::SafeTensorError) -> Self {
        Self::Format(error.to_string())
    }
}
