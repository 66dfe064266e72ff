//! Compressed weights files as stored: half-precision copies, the one conversion every loader
//! goes through back to f32 ([`to_f32`]), per-tensor counts, and the zstd size at rest.

use std::collections::HashMap;

use half::{bf16, f16};
use kiln_core::compression::{LayerState, Precision};
use safetensors::{Dtype, SafeTensors};

use super::CompressError;
use super::quantize::{Owned, QUANTIZATION_KEY, SCALE_SUFFIX, dequantize_safetensors, f32s, write};

/// Every f32 tensor of an f32 safetensors file stored as bf16 or fp16 (`precision`); the
/// rest (none, in a zoo model) copied as it is.
pub fn to_half(bytes: &[u8], precision: Precision) -> Result<Vec<u8>, CompressError> {
    let (dtype, convert): (Dtype, fn(f32) -> [u8; 2]) = match precision {
        Precision::Bf16 => (Dtype::BF16, |v| bf16::from_f32(v).to_le_bytes()),
        Precision::Fp16 => (Dtype::F16, |v| f16::from_f32(v).to_le_bytes()),
        other => return Err(CompressError::Format(format!("{other} is not a half precision"))),
    };
    let (_, header) = SafeTensors::read_metadata(bytes)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes)?;
    let mut tensors = Vec::new();
    for (name, view) in file.iter() {
        let tensor = match view.dtype() {
            Dtype::F32 => Owned {
                dtype,
                shape: view.shape().to_vec(),
                bytes: f32s(view.data()).into_iter().flat_map(convert).collect(),
            },
            _ => Owned::copy(&view),
        };
        tensors.push((name.to_owned(), tensor));
    }
    write(&tensors, metadata)
}

/// Any weights file kiln stores — f32, bf16/fp16, or int8 with per-channel scales — as the
/// all-f32 file burn's loaders read. An all-f32 file is returned as it came.
pub fn to_f32(bytes: Vec<u8>) -> Result<Vec<u8>, CompressError> {
    let (_, header) = SafeTensors::read_metadata(&bytes)?;
    if header
        .metadata()
        .as_ref()
        .is_some_and(|m: &HashMap<String, String>| m.contains_key(QUANTIZATION_KEY))
    {
        return dequantize_safetensors(&bytes);
    }
    let file = SafeTensors::deserialize(&bytes)?;
    if file.iter().all(|(_, view)| view.dtype() != Dtype::BF16 && view.dtype() != Dtype::F16) {
        return Ok(bytes);
    }
    let metadata = header.metadata().clone().unwrap_or_default();
    let mut tensors = Vec::new();
    for (name, view) in file.iter() {
        let values: Option<Vec<f32>> = match view.dtype() {
            Dtype::BF16 => Some(
                view.data()
                    .chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            Dtype::F16 => Some(
                view.data()
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            _ => None,
        };
        let tensor = match values {
            Some(values) => Owned::f32s(view.shape().to_vec(), &values),
            None => Owned::copy(&view),
        };
        tensors.push((name.to_owned(), tensor));
    }
    write(&tensors, metadata)
}

/// Every tensor of a stored weights file (scale tensors of int8 ones aside): shape, elements,
/// non-zero elements and stored precision, in name order.
pub fn layer_states(bytes: &[u8]) -> Result<Vec<LayerState>, CompressError> {
    let file = SafeTensors::deserialize(bytes)?;
    let mut layers = Vec::new();
    for (name, view) in file.iter() {
        if name.ends_with(SCALE_SUFFIX) {
            continue;
        }
        let data = view.data();
        let (precision, nonzeros) = match view.dtype() {
            Dtype::F32 => (Precision::F32, f32s(data).iter().filter(|v| **v != 0.0).count()),
            Dtype::BF16 => (Precision::Bf16, nonzero_pairs(data)),
            Dtype::F16 => (Precision::Fp16, nonzero_pairs(data)),
            Dtype::I8 => (Precision::Int8, data.iter().filter(|b| **b != 0).count()),
            other => {
                return Err(CompressError::Format(format!(
                    "tensor {name} is {other:?}; kiln stores f32, bf16, fp16 or int8"
                )));
            }
        };
        layers.push(LayerState {
            name: name.to_owned(),
            shape: view.shape().to_vec(),
            params: view.shape().iter().product(),
            nonzeros,
            precision,
        });
    }
    layers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(layers)
}

/// Two-byte floats that are not ±0.
fn nonzero_pairs(data: &[u8]) -> usize {
    data.chunks_exact(2)
        .filter(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7fff != 0)
        .count()
}

/// Bytes of `data` compressed by zstd at its default level (3), as an operator's `zstd` would.
pub fn zstd_size(data: &[u8]) -> Result<u64, CompressError> {
    zstd::bulk::compress(data, 3)
        .map(|c| c.len() as u64)
        .map_err(|e| CompressError::Format(format!("zstd: {e}")))
}
