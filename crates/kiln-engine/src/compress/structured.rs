//! Structured pruning: whole hidden units of an `mlp`, whole conv filters and hidden units of
//! a `cnn` are removed and the layers rebuilt smaller — the only pruning that makes dense
//! kernels faster. A unit's importance is the L1 norm of its incoming weights (a filter's
//! kernel, a hidden unit's weight column), as in Li et al., "Pruning Filters for Efficient
//! ConvNets" (2017); the weights the next layer reads from a removed unit go with it.
//!
//! Works on the stored safetensors file (burn layout: `Linear` weights are `[in, out]`, conv
//! kernels `[out, in, kh, kw]`) and returns a new config and file the ordinary loaders read.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use super::CompressError;
use super::quantize::{Owned, f32s, write};
use crate::model::ArchConfig;

/// A row-major f32 tensor.
#[derive(Debug, Clone)]
struct Dense {
    shape: Vec<usize>,
    values: Vec<f32>,
}

impl Dense {
    /// Keeps only the indices `keep` (ascending) along `axis`.
    fn select(&self, axis: usize, keep: &[usize]) -> Self {
        let outer: usize = self.shape[..axis].iter().product();
        let inner: usize = self.shape[axis + 1..].iter().product();
        let along = self.shape[axis];
        let mut values = Vec::with_capacity(outer * keep.len() * inner);
        for o in 0..outer {
            for &k in keep {
                let start = (o * along + k) * inner;
                values.extend_from_slice(&self.values[start..start + inner]);
            }
        }
        let mut shape = self.shape.clone();
        shape[axis] = keep.len();
        Self { shape, values }
    }

    /// L1 norm of each index along `axis`.
    fn l1_along(&self, axis: usize) -> Vec<f64> {
        let inner: usize = self.shape[axis + 1..].iter().product();
        let along = self.shape[axis];
        let mut norms = vec![0.0; along];
        for (i, v) in self.values.iter().enumerate() {
            norms[(i / inner) % along] += f64::from(v.abs());
        }
        norms
    }
}

/// The named tensors of a stored file.
struct Tensors {
    map: HashMap<String, Dense>,
    metadata: HashMap<String, String>,
}

impl Tensors {
    fn read(bytes: &[u8]) -> Result<Self, CompressError> {
        // A packed sparse file (an unstructured child) unpacks to dense f32 first.
        let has_sparse = SafeTensors::read_metadata(bytes)?
            .1
            .metadata()
            .as_ref()
            .is_some_and(|m| m.contains_key(super::files::SPARSE_KEY));
        let unpacked;
        let bytes = match has_sparse {
            true => {
                unpacked = super::files::to_f32(bytes.to_vec())?;
                &unpacked[..]
            }
            false => bytes,
        };
        let (_, header) = SafeTensors::read_metadata(bytes)?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let file = SafeTensors::deserialize(bytes)?;
        let mut map = HashMap::new();
        for (name, view) in file.iter() {
            if view.dtype() != Dtype::F32 {
                return Err(CompressError::Format(format!(
                    "tensor {name} is {:?}; structured pruning needs f32 weights (prune before quantizing)",
                    view.dtype()
                )));
            }
            let dense = Dense {
                shape: view.shape().to_vec(),
                values: f32s(view.data()),
            };
            map.insert(name.to_owned(), dense);
        }
        Ok(Self { map, metadata })
    }

    fn get(&self, name: &str) -> Result<&Dense, CompressError> {
        self.map
            .get(name)
            .ok_or_else(|| CompressError::Format(format!("the weights have no tensor {name}")))
    }

    /// Replaces `name` by its `keep` indices along `axis`.
    fn keep(&mut self, name: &str, axis: usize, keep: &[usize]) -> Result<(), CompressError> {
        let selected = self.get(name)?.select(axis, keep);
        self.map.insert(name.to_owned(), selected);
        Ok(())
    }

    fn bytes(self) -> Result<Vec<u8>, CompressError> {
        let mut names: Vec<&String> = self.map.keys().collect();
        names.sort();
        let tensors: Vec<(String, Owned)> = names
            .into_iter()
            .map(|name| {
                let dense = &self.map[name];
                (name.clone(), Owned::f32s(dense.shape.clone(), &dense.values))
            })
            .collect();
        write(&tensors, self.metadata.clone())
    }
}

/// The `1 - share` most important of `norms`' indices (at least one), ascending.
fn strongest(norms: &[f64], share: f64) -> Vec<usize> {
    let keep = ((norms.len() as f64 * (1.0 - share)).round() as usize).clamp(1, norms.len());
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    let mut kept = order[..keep].to_vec();
    kept.sort_unstable();
    kept
}

/// Removes the `share` (0 < share < 1) least important hidden units (mlp) or filters and
/// hidden units (cnn) of the model `arch` with stored weights `bytes`; returns the smaller
/// model's config and weights.
pub fn prune_units(arch: &ArchConfig, bytes: &[u8], share: f64) -> Result<(ArchConfig, Vec<u8>), CompressError> {
    if !(share > 0.0 && share < 1.0) {
        return Err(CompressError::Sparsity(share));
    }
    let mut tensors = Tensors::read(bytes)?;
    let config = match arch {
        ArchConfig::Mlp(config) => {
            let mut config = config.clone();
            for i in 0..config.hidden.len() {
                let weight = format!("hidden.{i}.weight");
                let keep = strongest(&tensors.get(&weight)?.l1_along(1), share);
                tensors.keep(&weight, 1, &keep)?;
                tensors.keep(&format!("hidden.{i}.bias"), 0, &keep)?;
                let next = match i + 1 < config.hidden.len() {
                    true => format!("hidden.{}.weight", i + 1),
                    false => "output.weight".to_owned(),
                };
                tensors.keep(&next, 0, &keep)?;
                config.hidden[i] = keep.len();
            }
            ArchConfig::Mlp(config)
        }
        ArchConfig::Cnn(config) => {
            let mut config = config.clone();
            let stages = config.conv_channels.len();
            let (h, w) = (config.height >> stages, config.width >> stages);
            for i in 0..stages {
                let weight = format!("convs.{i}.weight");
                let keep = strongest(&tensors.get(&weight)?.l1_along(0), share);
                tensors.keep(&weight, 0, &keep)?;
                tensors.keep(&format!("convs.{i}.bias"), 0, &keep)?;
                if i + 1 < stages {
                    tensors.keep(&format!("convs.{}.weight", i + 1), 1, &keep)?;
                } else {
                    // The hidden layer reads the last stage flattened as [channel, y, x].
                    let rows: Vec<usize> = keep.iter().flat_map(|&c| c * h * w..(c + 1) * h * w).collect();
                    tensors.keep("hidden.weight", 0, &rows)?;
                }
                config.conv_channels[i] = keep.len();
            }
            let keep = strongest(&tensors.get("hidden.weight")?.l1_along(1), share);
            tensors.keep("hidden.weight", 1, &keep)?;
            tensors.keep("hidden.bias", 0, &keep)?;
            tensors.keep("output.weight", 0, &keep)?;
            config.hidden = keep.len();
            ArchConfig::Cnn(config)
        }
        other => {
            return Err(CompressError::Unsupported(format!(
                "structured pruning rebuilds mlp hidden units and cnn filters; {} has no layers kiln can \
                 shrink that way: prune it unstructured (without --structured)",
                other.arch()
            )));
        }
    };
    let rebuilt =
        ArchConfig::from_json(config.arch(), config.config_json()).map_err(|e| CompressError::Format(e.to_string()))?;
    Ok((rebuilt, tensors.bytes()?))
}
