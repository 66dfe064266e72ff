//! Model compression (issue "kiln prune / kiln quantize"): unstructured magnitude pruning
//! with masks re-applied while fine-tuning (`prune`), and int8 per-channel weight quantization
//! of safetensors files (`quantize`). Pure engine code over any burn `Module`; jobs and the
//! CLI wire it in.

mod error;
mod files;
mod params;
mod prune;
mod quantize;
mod structured;

#[cfg(test)]
mod tests;

pub use error::CompressError;
pub use files::{layer_states, to_f32, to_half, to_sparse, zstd_size};
pub use prune::{LayerSparsity, Masks, Scope, Selection, apply, cast, magnitude, sparsity_report};
pub use quantize::{
    AXIS_SUFFIX, INT8_PER_CHANNEL, QUANTIZATION_KEY, QuantizedTensor, SCALE_SUFFIX, dequantize, dequantize_safetensors,
    int8_matmul_probe, output_axis, quantize, quantize_model_to_safetensors, quantized_tensors,
};
pub use structured::prune_units;
