//! Unstructured magnitude pruning: the smallest-magnitude weights of every weight matrix or
//! kernel (rank ≥ 2) are zeroed, counted over the whole model ([`Scope::Global`]) or within
//! each tensor ([`Scope::PerLayer`]). Biases, norm scales (rank 1) and embedding tables (rows
//! looked up, not multiplied) are never pruned.
//!
//! [`magnitude`] decides once; [`apply`] zeroes the chosen weights and is meant to be
//! re-applied after every optimizer step while fine-tuning, so pruned weights stay zero.

use std::cmp::Ordering;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};

use super::CompressError;
use super::params::{self, ParamInfo};

/// Where the sparsity target is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One threshold over all prunable weights: layers with many small weights lose more.
    Global,
    /// Each weight tensor loses the same share of its own weights.
    PerLayer,
}

/// Which tensors besides weight matrices and kernels may be pruned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// Rank-1 tensors: biases (and norm scales).
    pub biases: bool,
    /// Embedding tables.
    pub embeddings: bool,
}

impl Selection {
    fn prunable(self, p: &ParamInfo) -> bool {
        match (p.shape.len() >= 2, p.is_embedding()) {
            (_, true) => self.embeddings,
            (true, false) => true,
            (false, false) => self.biases,
        }
    }
}

/// Zeros and size of one parameter tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSparsity {
    /// Dotted tensor name, as in the weights file (`hidden.0.weight`).
    pub name: String,
    /// Elements in the tensor.
    pub params: usize,
    /// Elements that are exactly zero (for [`Masks::layers`]: that the mask zeroes).
    pub zeros: usize,
}

impl LayerSparsity {
    /// `zeros / params` (0 for an empty tensor).
    pub fn fraction(&self) -> f64 {
        match self.params {
            0 => 0.0,
            n => self.zeros as f64 / n as f64,
        }
    }
}

/// The weights one parameter tensor keeps.
#[derive(Debug, Clone)]
struct LayerMask {
    id: ParamId,
    name: String,
    /// 1 where the weight is kept, 0 where pruned; flat, on the parameter's device.
    keep: Tensor<1>,
    params: usize,
    pruned: usize,
}

/// Which weights of a model [`apply`] zeroes, keyed by parameter id: they hold for the model
/// they were computed from and for every copy, map or fine-tuned version of it (ids survive
/// `Module::map`, `autodiff` and optimizer steps), not for a freshly initialised model.
#[derive(Debug, Clone)]
pub struct Masks {
    layers: Vec<LayerMask>,
}

impl Masks {
    /// Each pruned tensor with the number of weights its mask zeroes, in visiting order.
    pub fn layers(&self) -> Vec<LayerSparsity> {
        let layer = |m: &LayerMask| LayerSparsity {
            name: m.name.clone(),
            params: m.params,
            zeros: m.pruned,
        };
        self.layers.iter().map(layer).collect()
    }

    /// The share of the prunable weights that the masks zero.
    pub fn sparsity(&self) -> f64 {
        let params: usize = self.layers.iter().map(|m| m.params).sum();
        let pruned: usize = self.layers.iter().map(|m| m.pruned).sum();
        match params {
            0 => 0.0,
            n => pruned as f64 / n as f64,
        }
    }

    fn get(&self, id: ParamId) -> Option<&LayerMask> {
        self.layers.iter().find(|m| m.id == id)
    }
}

/// Chooses the `sparsity` share (0 < s < 1) of smallest-magnitude weights of `model` to prune:
/// weight matrices and kernels, plus what `selection` adds.
pub fn magnitude<M: Module>(
    model: &M,
    sparsity: f64,
    scope: Scope,
    selection: Selection,
) -> Result<Masks, CompressError> {
    if !(sparsity > 0.0 && sparsity < 1.0) {
        return Err(CompressError::Sparsity(sparsity));
    }
    let prunable: Vec<ParamInfo> = params::collect(model, true)?
        .into_iter()
        .filter(|p| selection.prunable(p))
        .collect();
    if prunable.is_empty() {
        return Err(CompressError::NothingToPrune);
    }
    let keeps: Vec<Vec<bool>> = match scope {
        Scope::Global => {
            let all = prunable.iter().flat_map(|p| magnitudes(&p.values)).collect();
            let mut cut = Cut::new(all, sparsity);
            prunable.iter().map(|p| cut.keep(&p.values)).collect()
        }
        Scope::PerLayer => prunable
            .iter()
            .map(|p| Cut::new(magnitudes(&p.values).collect(), sparsity).keep(&p.values))
            .collect(),
    };
    let layers = prunable.into_iter().zip(keeps).map(|(p, keep)| layer_mask(p, &keep));
    Ok(Masks {
        layers: layers.collect(),
    })
}

fn magnitudes(values: &[f32]) -> impl Iterator<Item = f32> + '_ {
    values.iter().map(|v| v.abs())
}

fn layer_mask(param: ParamInfo, keep: &[bool]) -> LayerMask {
    let pruned = keep.iter().filter(|k| !**k).count();
    let ones: Vec<f32> = keep.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
    LayerMask {
        id: param.id,
        name: param.name,
        keep: flat_tensor(ones, &param.device),
        params: keep.len(),
        pruned,
    }
}

fn flat_tensor(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// Prunes exactly the `k` smallest magnitudes: every one below `threshold`, then the first
/// `ties` equal to it in visiting order (so equal weights cannot overshoot the target).
struct Cut {
    threshold: f32,
    ties: usize,
}

impl Cut {
    fn new(mut magnitudes: Vec<f32>, sparsity: f64) -> Self {
        let k = (magnitudes.len() as f64 * sparsity).round() as usize;
        let Some(last) = k.checked_sub(1) else {
            return Self {
                threshold: f32::NEG_INFINITY,
                ties: 0,
            };
        };
        let (_, &mut threshold, _) = magnitudes.select_nth_unstable_by(last, f32::total_cmp);
        let below = magnitudes.iter().filter(|m| m.total_cmp(&threshold).is_lt()).count();
        Self {
            threshold,
            ties: k - below,
        }
    }

    /// Which of `values` survive, consuming ties as it goes.
    fn keep(&mut self, values: &[f32]) -> Vec<bool> {
        values.iter().map(|v| self.keeps(v.abs())).collect()
    }

    fn keeps(&mut self, magnitude: f32) -> bool {
        match magnitude.total_cmp(&self.threshold) {
            Ordering::Less => false,
            Ordering::Equal if self.ties > 0 => {
                self.ties -= 1;
                false
            }
            _ => true,
        }
    }
}

/// Zeroes the weights `masks` prune; parameters without a mask are left as they are. Trained
/// parameters stay leaves that require grad, so this can follow every optimizer step.
pub fn apply<M: Module>(model: M, masks: &Masks) -> M {
    model.map(&mut ApplyMasks { masks })
}

struct ApplyMasks<'a> {
    masks: &'a Masks,
}

impl ModuleMapper for ApplyMasks<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.masks.get(param.id) {
            Some(layer) if layer.params == param.shape().num_elements() => {
                let keep = layer.keep.clone();
                param.map(|tensor| masked(tensor, keep))
            }
            _ => param,
        }
    }
}

fn masked<const D: usize>(tensor: Tensor<D>, keep: Tensor<1>) -> Tensor<D> {
    let tracked = tensor.is_require_grad();
    let keep = keep
        .to_device(&tensor.device())
        .cast(tensor.dtype())
        .reshape(tensor.shape());
    // The product is a new graph node; detaching makes it a leaf again, as a parameter must be.
    let zeroed = (tensor.detach() * keep).detach();
    match tracked {
        true => zeroed.require_grad(),
        false => zeroed,
    }
}

/// `model` with every float parameter cast to `dtype` (half-precision inference).
pub fn cast<M: Module>(model: M, dtype: burn::tensor::DType) -> M {
    model.map(&mut Cast { dtype })
}

struct Cast {
    dtype: burn::tensor::DType,
}

impl ModuleMapper for Cast {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.dtype;
        param.map(|tensor| tensor.cast(dtype))
    }
}

/// Every float parameter of `model` with how many of its elements are exactly zero.
pub fn sparsity_report<M: Module>(model: &M) -> Result<Vec<LayerSparsity>, CompressError> {
    let layer = |p: ParamInfo| LayerSparsity {
        zeros: p.values.iter().filter(|v| **v == 0.0).count(),
        params: p.values.len(),
        name: p.name,
    };
    Ok(params::collect(model, true)?.into_iter().map(layer).collect())
}
