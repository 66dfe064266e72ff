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

/// Metadata key marking a file whose sparse tensors are stored packed, and its value.
pub const SPARSE_KEY: &str = "kiln.sparse";
pub const SPARSE_BITMASK: &str = "bitmask";
/// Suffix of the tensor holding a packed tensor's bitmask of non-zero positions.
pub const MASK_SUFFIX: &str = ".__mask";
/// Suffix of the metadata key holding a packed tensor's shape (`784,256`).
pub const SHAPE_SUFFIX: &str = ".shape";

/// Stores every f32 tensor of an f32 file that is at least a quarter zeros packed: its
/// non-zero values in order (`<name>`, F32, 1-D) and a bitmask of where they go
/// (`<name>.__mask`, U8, bit `i % 8` of byte `i / 8`), its shape in the metadata. A pruned
/// model at 80% sparsity takes under a quarter of its dense bytes at rest; [`to_f32`] unpacks.
pub fn to_sparse(bytes: &[u8]) -> Result<Vec<u8>, CompressError> {
    let (_, header) = SafeTensors::read_metadata(bytes)?;
    let mut metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes)?;
    let mut tensors = Vec::new();
    for (name, view) in file.iter() {
        let values = match view.dtype() {
            Dtype::F32 => f32s(view.data()),
            _ => {
                tensors.push((name.to_owned(), Owned::copy(&view)));
                continue;
            }
        };
        let zeros = values.iter().filter(|v| **v == 0.0).count();
        if zeros * 4 < values.len() {
            tensors.push((name.to_owned(), Owned::copy(&view)));
            continue;
        }
        let mut mask = vec![0u8; values.len().div_ceil(8)];
        let mut kept = Vec::with_capacity(values.len() - zeros);
        for (i, v) in values.iter().enumerate().filter(|(_, v)| **v != 0.0) {
            mask[i / 8] |= 1 << (i % 8);
            kept.push(*v);
        }
        let shape: Vec<String> = view.shape().iter().map(ToString::to_string).collect();
        metadata.insert(format!("{name}{SHAPE_SUFFIX}"), shape.join(","));
        tensors.push((name.to_owned(), Owned::f32s(vec![kept.len()], &kept)));
        let mask = Owned {
            dtype: Dtype::U8,
            shape: vec![mask.len()],
            bytes: mask,
        };
        tensors.push((format!("{name}{MASK_SUFFIX}"), mask));
    }
    metadata.insert(SPARSE_KEY.to_owned(), SPARSE_BITMASK.to_owned());
    write(&tensors, metadata)
}

/// A tensor's shape and row-major values.
type Dense = (Vec<usize>, Vec<f32>);

/// A packed tensor's shape and dense values.
fn unpack(
    file: &SafeTensors<'_>,
    metadata: &HashMap<String, String>,
    name: &str,
) -> Result<Option<Dense>, CompressError> {
    let Some(shape) = metadata.get(&format!("{name}{SHAPE_SUFFIX}")) else {
        return Ok(None);
    };
    let bad = |why: &str| CompressError::Format(format!("packed tensor {name}: {why}"));
    let shape: Vec<usize> = shape
        .split(',')
        .map(|d| d.parse().map_err(|_| bad("its shape is not a list of sizes")))
        .collect::<Result<_, _>>()?;
    let len = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad("its shape overflows"))?;
    let mask = file
        .tensor(&format!("{name}{MASK_SUFFIX}"))
        .map_err(|_| bad("its bitmask is missing"))?;
    let values = f32s(file.tensor(name)?.data());
    let mask = mask.data();
    if mask.len() != len.div_ceil(8) {
        return Err(bad("its bitmask does not fit its shape"));
    }
    let mut dense = vec![0.0f32; len];
    let mut next = values.iter();
    for (i, slot) in dense.iter_mut().enumerate() {
        if mask[i / 8] & (1 << (i % 8)) != 0 {
            *slot = *next.next().ok_or_else(|| bad("fewer values than its bitmask marks"))?;
        }
    }
    if next.next().is_some() {
        return Err(bad("more values than its bitmask marks"));
    }
    Ok(Some((shape, dense)))
}

/// Any weights file kiln stores — f32, packed sparse f32, bf16/fp16, or int8 with
/// per-channel scales — as the all-f32 dense file burn's loaders read. An all-f32 dense file
/// is returned as it came.
pub fn to_f32(bytes: Vec<u8>) -> Result<Vec<u8>, CompressError> {
    let (_, header) = SafeTensors::read_metadata(&bytes)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    if metadata.contains_key(QUANTIZATION_KEY) {
        return dequantize_safetensors(&bytes);
    }
    if metadata.contains_key(SPARSE_KEY) {
        let file = SafeTensors::deserialize(&bytes)?;
        let mut plain = metadata.clone();
        plain.retain(|k, _| k != SPARSE_KEY && !k.ends_with(SHAPE_SUFFIX));
        let mut tensors = Vec::new();
        for (name, view) in file.iter() {
            if name.ends_with(MASK_SUFFIX) {
                continue;
            }
            let tensor = match unpack(&file, &metadata, name)? {
                Some((shape, dense)) => Owned::f32s(shape, &dense),
                None => Owned::copy(&view),
            };
            tensors.push((name.to_owned(), tensor));
        }
        return to_f32(write(&tensors, plain)?);
    }
    let file = SafeTensors::deserialize(&bytes)?;
    if file
        .iter()
        .all(|(_, view)| view.dtype() != Dtype::BF16 && view.dtype() != Dtype::F16)
    {
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
    let (_, header) = SafeTensors::read_metadata(bytes)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes)?;
    let mut layers = Vec::new();
    for (name, view) in file.iter() {
        if name.ends_with(SCALE_SUFFIX) || name.ends_with(MASK_SUFFIX) {
            continue;
        }
        if let Some((shape, dense)) = unpack(&file, &metadata, name)? {
            layers.push(LayerState {
                name: name.to_owned(),
                params: dense.len(),
                nonzeros: dense.iter().filter(|v| **v != 0.0).count(),
                shape,
                precision: Precision::F32,
            });
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
