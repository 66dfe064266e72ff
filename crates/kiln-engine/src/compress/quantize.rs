//! Int8 weight quantization, symmetric, one scale per output channel: `w ≈ q · scale` with
//! `q ∈ [-127, 127]` and `scale = max|w| / 127` over the channel, so each weight is off by at
//! most `scale / 2`.
//!
//! A quantized weights file is safetensors: every rank ≥ 2 tensor `<name>` is stored as `I8`
//! (same shape) beside an `F32` tensor `<name>.__scale` of one scale per channel; every other
//! tensor stays as it was. The header metadata says `"kiln.quantization": "int8-per-channel"`
//! and `"<name>.axis"` gives the channel axis of each quantized tensor. The output channel is
//! axis 1 for burn's `Linear` (its weight is `[inputs, outputs]`) and axis 0 otherwise (`Conv*`
//! kernels are `[out, in, k…]`, embedding tables are `[rows, dim]`).
//! [`dequantize_safetensors`] turns such a file back into an all-f32 one that
//! [`crate::weights::module_from_safetensors`] loads.

use std::borrow::Cow;
use std::collections::HashMap;

use burn::module::Module;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors, View};

use super::CompressError;
use super::params;
use crate::weights::module_to_safetensors;

/// Metadata key marking a quantized file, and its value.
pub const QUANTIZATION_KEY: &str = "kiln.quantization";
/// The only quantization kiln writes.
pub const INT8_PER_CHANNEL: &str = "int8-per-channel";
/// Suffix of the tensor holding a quantized tensor's scales.
pub const SCALE_SUFFIX: &str = ".__scale";
/// Suffix of the metadata key holding a quantized tensor's channel axis.
pub const AXIS_SUFFIX: &str = ".axis";

/// A tensor as int8 values with one f32 scale per channel along `axis`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedTensor {
    pub shape: Vec<usize>,
    /// Row-major, `values[i] · scales[channel of i]` ≈ the original value.
    pub values: Vec<i8>,
    /// `shape[axis]` scales; 1 for an all-zero channel.
    pub scales: Vec<f32>,
    pub axis: usize,
}

/// How a row-major index maps to its channel: `(i / inner) % channels`.
#[derive(Debug, Clone, Copy)]
struct Channels {
    inner: usize,
    count: usize,
}

impl Channels {
    fn of(shape: &[usize], axis: usize, len: usize) -> Result<Self, String> {
        let Some(&count) = shape.get(axis) else {
            return Err(format!("axis {axis} is past the last axis of a {shape:?} tensor"));
        };
        let total = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if total != Some(len) {
            return Err(format!("{len} values do not fill a {shape:?} tensor"));
        }
        let inner = shape[axis + 1..].iter().product();
        Ok(Self { inner, count })
    }

    fn channel(self, index: usize) -> usize {
        (index / self.inner) % self.count
    }
}

/// Quantizes row-major `data` of `shape` with one scale per index of `axis`.
pub fn quantize(data: &[f32], shape: &[usize], axis: usize) -> Result<QuantizedTensor, CompressError> {
    let channels = Channels::of(shape, axis, data.len()).map_err(|reason| CompressError::Shape {
        name: format!("a {shape:?} tensor"),
        reason,
    })?;
    let mut max = vec![0f32; channels.count];
    for (i, v) in data.iter().enumerate() {
        let m = &mut max[channels.channel(i)];
        *m = m.max(v.abs());
    }
    let scales: Vec<f32> = max.iter().map(|&m| scale_for(m)).collect();
    let values = data
        .iter()
        .enumerate()
        .map(|(i, v)| (v / scales[channels.channel(i)]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    Ok(QuantizedTensor {
        shape: shape.to_vec(),
        values,
        scales,
        axis,
    })
}

/// `max|w| / 127`, or 1 where that would be 0 or not finite (the values then all round to 0
/// or clamp, never NaN).
fn scale_for(max_magnitude: f32) -> f32 {
    let scale = max_magnitude / 127.0;
    match scale.is_finite() && scale > 0.0 {
        true => scale,
        false => 1.0,
    }
}

/// The f32 values `q` stands for, row-major.
pub fn dequantize(q: &QuantizedTensor) -> Vec<f32> {
    let Ok(channels) = Channels::of(&q.shape, q.axis, q.values.len()) else {
        return Vec::new();
    };
    let scale = |i: usize| q.scales.get(channels.channel(i)).copied().unwrap_or(0.0);
    q.values
        .iter()
        .enumerate()
        .map(|(i, &v)| f32::from(v) * scale(i))
        .collect()
}

/// The output-channel axis of a weight held by a layer of type `owner` (`"Linear"`, …).
pub fn output_axis(owner: Option<&str>) -> usize {
    match owner {
        Some("Linear" | "ConvTranspose1d" | "ConvTranspose2d" | "ConvTranspose3d") => 1,
        _ => 0,
    }
}

/// A tensor to write, owning its bytes.
pub(super) struct Owned {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

impl Owned {
    pub(super) fn copy(view: &TensorView<'_>) -> Self {
        Self {
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            bytes: view.data().to_vec(),
        }
    }

    pub(super) fn f32s(shape: Vec<usize>, values: &[f32]) -> Self {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self {
            dtype: Dtype::F32,
            shape,
            bytes,
        }
    }
}

/// `model`'s weights as a quantized safetensors file (layout in the module doc).
pub fn quantize_model_to_safetensors<M: Module>(model: &M) -> Result<Vec<u8>, CompressError> {
    let axes: HashMap<String, usize> = params::collect(model, false)?
        .into_iter()
        .map(|p| (p.name, output_axis(p.owner.as_deref())))
        .collect();
    let plain = module_to_safetensors(model)?;
    let (_, header) = SafeTensors::read_metadata(&plain)?;
    let mut metadata = header.metadata().clone().unwrap_or_default();
    metadata.insert(QUANTIZATION_KEY.to_owned(), INT8_PER_CHANNEL.to_owned());
    let file = SafeTensors::deserialize(&plain)?;
    let mut tensors = Vec::new();
    for (name, view) in file.iter() {
        if view.dtype() != Dtype::F32 || view.shape().len() < 2 {
            tensors.push((name.to_owned(), Owned::copy(&view)));
            continue;
        }
        let axis = axes.get(name).copied().unwrap_or(0);
        let q = quantize(&f32s(view.data()), view.shape(), axis).map_err(|e| named(e, name))?;
        metadata.insert(format!("{name}{AXIS_SUFFIX}"), axis.to_string());
        tensors.push((
            format!("{name}{SCALE_SUFFIX}"),
            Owned::f32s(vec![q.scales.len()], &q.scales),
        ));
        let bytes = q.values.iter().map(|&v| v as u8).collect();
        tensors.push((
            name.to_owned(),
            Owned {
                dtype: Dtype::I8,
                shape: q.shape,
                bytes,
            },
        ));
    }
    write(&tensors, metadata)
}

/// Turns a file [`quantize_model_to_safetensors`] wrote back into an all-f32 safetensors file
/// in burn's layout (tensor names and non-quantization metadata kept).
pub fn dequantize_safetensors(bytes: &[u8]) -> Result<Vec<u8>, CompressError> {
    let (_, header) = SafeTensors::read_metadata(bytes)?;
    let mut metadata = header.metadata().clone().unwrap_or_default();
    if metadata.remove(QUANTIZATION_KEY).as_deref() != Some(INT8_PER_CHANNEL) {
        return Err(CompressError::Format(format!(
            "its metadata lacks \"{QUANTIZATION_KEY}\": \"{INT8_PER_CHANNEL}\"; it is not a file kiln quantized"
        )));
    }
    let file = SafeTensors::deserialize(bytes)?;
    let mut tensors = Vec::new();
    for (name, view) in file.iter() {
        if name.ends_with(SCALE_SUFFIX) {
            continue;
        }
        let tensor = match view.dtype() {
            Dtype::I8 => {
                let axis = metadata.remove(&format!("{name}{AXIS_SUFFIX}"));
                let q = read_quantized(&file, name, &view, axis.as_deref())?;
                Owned::f32s(q.shape.clone(), &dequantize(&q))
            }
            _ => Owned::copy(&view),
        };
        tensors.push((name.to_owned(), tensor));
    }
    write(&tensors, metadata)
}

/// Reassembles quantized tensor `name` from its values, scale tensor and axis metadata.
fn read_quantized(
    file: &SafeTensors<'_>,
    name: &str,
    values: &TensorView<'_>,
    axis: Option<&str>,
) -> Result<QuantizedTensor, CompressError> {
    let missing = |what: String| CompressError::Format(format!("int8 tensor {name} has no {what}"));
    let axis = axis.ok_or_else(|| missing(format!("\"{name}{AXIS_SUFFIX}\" metadata")))?;
    let axis: usize = axis
        .parse()
        .map_err(|_| CompressError::Format(format!("{name}{AXIS_SUFFIX} is {axis:?}, not an axis number")))?;
    let scales = file
        .tensor(&format!("{name}{SCALE_SUFFIX}"))
        .map_err(|_| missing(format!("{name}{SCALE_SUFFIX} tensor")))?;
    let channels = values.shape().get(axis).copied();
    if scales.dtype() != Dtype::F32 || Some(scales.data().len() / 4) != channels {
        return Err(CompressError::Format(format!(
            "{name}{SCALE_SUFFIX} is not one f32 per index of axis {axis} of {name}"
        )));
    }
    let q = QuantizedTensor {
        shape: values.shape().to_vec(),
        values: values.data().iter().map(|&b| b as i8).collect(),
        scales: f32s(scales.data()),
        axis,
    };
    Channels::of(&q.shape, axis, q.values.len())
        .map_err(|reason| CompressError::Format(format!("{name}: {reason}")))?;
    Ok(q)
}

pub(super) fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn named(error: CompressError, name: &str) -> CompressError {
    match error {
        CompressError::Shape { reason, .. } => CompressError::Shape {
            name: name.to_owned(),
            reason,
        },
        other => other,
    }
}

pub(super) fn write(tensors: &[(String, Owned)], metadata: HashMap<String, String>) -> Result<Vec<u8>, CompressError> {
    let views = tensors.iter().map(|(name, tensor)| (name.as_str(), tensor));
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// Times libtorch's int8 weight-only matmul (`_weight_int8pack_mm`: f32 activations, int8
/// weights with one scale per output channel, as kiln stores them) against the f32 matmul it
/// would replace, for a `rows`-row batch through the `[inputs, outputs]` weight `q` (axis 1),
/// on the CPU. Returns the medians of `runs` in milliseconds, f32 first; `Err` when libtorch
/// has no such kernel here.
pub fn int8_matmul_probe(q: &QuantizedTensor, rows: usize, runs: usize) -> Result<(f64, f64), String> {
    let [inputs, outputs] = q.shape[..] else {
        return Err(format!("a {:?} tensor is not a linear layer's weight", q.shape));
    };
    if q.axis != 1 {
        return Err("the scales are not per output column".into());
    }
    let cpu = (tch::Kind::Float, tch::Device::Cpu);
    let dense = tch::Tensor::from_slice(&dequantize(q)).reshape([inputs as i64, outputs as i64]);
    let packed = tch::Tensor::from_slice(&q.values)
        .reshape([inputs as i64, outputs as i64])
        .transpose(0, 1)
        .contiguous();
    let scales = tch::Tensor::from_slice(&q.scales);
    let x = tch::Tensor::randn([rows as i64, inputs as i64], cpu);
    let int8 = |x: &tch::Tensor| {
        x.f_internal_weight_int8pack_mm(&packed, &scales)
            .map_err(|e| e.to_string())
    };
    let reference = x.matmul(&dense);
    let answer = int8(&x)?;
    let gap = (&answer - &reference).abs().max().double_value(&[]);
    let scale = reference.abs().max().double_value(&[]).max(1e-6);
    if gap / scale > 0.05 {
        return Err(format!(
            "its answers are off by {:.1}% of the largest output",
            gap / scale * 100.0
        ));
    }
    let time = |f: &dyn Fn() -> Result<tch::Tensor, String>| -> Result<f64, String> {
        let mut times = Vec::with_capacity(runs);
        for round in 0..runs + 3 {
            let started = std::time::Instant::now();
            drop(std::hint::black_box(f()?));
            if round >= 3 {
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    let f32_ms = time(&|| Ok(x.matmul(&dense)))?;
    let int8_ms = time(&|| int8(&x))?;
    Ok((f32_ms, int8_ms))
}

/// Every int8 tensor of a file [`quantize_model_to_safetensors`] wrote, by name.
pub fn quantized_tensors(bytes: &[u8]) -> Result<Vec<(String, QuantizedTensor)>, CompressError> {
    let (_, header) = SafeTensors::read_metadata(bytes)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes)?;
    let mut found = Vec::new();
    for (name, view) in file.iter().filter(|(_, v)| v.dtype() == Dtype::I8) {
        let axis = metadata.get(&format!("{name}{AXIS_SUFFIX}")).map(String::as_str);
        found.push((name.to_owned(), read_quantized(&file, name, &view, axis)?));
    }
    Ok(found)
}
