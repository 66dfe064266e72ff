//! Per-layer statistics while training (issue #20): the training loop's [`LayerRecorder`]
//! writes a `layers` metric record about once a second with, for every layer that has
//! weights, its weight norm, the gradient norm and update ratio of the recorded step, and for
//! a layer followed by a ReLU the share of its units that never fired in the window.
//!
//! * **Layers** are named after the module tree: the path to the first module below the
//!   model that is not a list (`hidden.0`, `convs.1`, `output`, `lstm`, `embedding`,
//!   `users`); a parameter held by the model itself is its own layer (`global_bias`). A
//!   layer's figures cover all its parameters together (weights and biases).
//! * **Recorded steps**: the first step this process trains (the baseline that
//!   [`LayerHealth`](kiln_core::inspect::LayerHealth) compares with), every step the
//!   once-a-second `train` record is due (and each epoch's last), a step whose loss is more
//!   than [`LOSS_ALARM`]× the highest loss of any earlier step (a divergence starting: each
//!   such record raises the bar, so a run gets a handful at most), and the step whose loss is
//!   NaN or infinite, recorded before the loop ends the job as diverged.
//! * **Gradient norm**: ‖g‖ of the recorded step's gradients, read before the optimizer
//!   consumes them. **Update ratio**: ‖w_after − w_before‖ / ‖w_before‖ of that step (against
//!   the weights after the step when they were all zero before). Only a recorded step pays
//!   for these: an f64 copy of its weights is kept across the optimizer step. A copy, not a
//!   second handle on the weights: a held handle would make Adam's fused step update a
//!   contiguous copy instead of the weights in place, leaving a `cnn`'s channels-last
//!   convolution weights in the slower layout for the rest of the run.
//! * **The window** is the steps since the previous `layers` record. Dead units are measured
//!   on *sampled* batches of it: the window's first batch, then the first batch to start at
//!   least [`SAMPLE_EVERY`] after the previous sampled one (about ten batches a second; every
//!   batch when a step takes longer). A unit is dead when its ReLU output was zero for every
//!   example (and, for a convolution channel, every position) of every sampled batch.
//! * A figure that overflowed or is NaN is written as `f64::MAX` (JSON has no infinity), which
//!   reads as exploding.

mod probe;
#[cfg(test)]
mod tests;

pub use probe::Probe;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Tensor};
use kiln_core::inspect::LayerStats;
use kiln_core::jobs::MetricRecord;
use kiln_core::kinds::MetricKind;

/// A step whose loss is this many times the highest loss so far is recorded at once.
pub const LOSS_ALARM: f64 = 10.0;
/// The least time between two batches the dead-unit probe samples.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The training loop's side of layer statistics: which steps to record and sample, and the
/// record of a step.
#[derive(Debug)]
pub struct LayerRecorder {
    /// Layer names, in visiting order.
    names: Vec<String>,
    probe: Probe,
    sampled_at: Option<Instant>,
    highest_loss: Option<f64>,
    recorded: bool,
}

/// What a recorded step measured before the optimizer changed the weights.
#[derive(Debug)]
pub struct Before {
    /// Per parameter, in visiting order: its id and an f64 copy of its flattened weights.
    weights: Vec<(ParamId, Tensor<1>)>,
    /// Per parameter: ‖w‖² then ‖g‖², f64 one-element tensors.
    sums: Vec<Tensor<1>>,
}

impl LayerRecorder {
    /// A recorder for `model`'s layers.
    pub fn new<M: Module>(model: &M) -> Self {
        let mut names: Vec<String> = Vec::new();
        for (_, name) in param_layers(model) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Self {
            names,
            probe: Probe::off(),
            sampled_at: None,
            highest_loss: None,
            recorded: false,
        }
    }

    /// The layers, in the order records list them.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the dead-unit probe samples the batch about to run (and arms it if so).
    pub fn sample_now(&mut self) -> bool {
        let now = Instant::now();
        let due = self.sampled_at.is_none_or(|t| now.duration_since(t) >= SAMPLE_EVERY);
        if due {
            self.sampled_at = Some(now);
        }
        self.probe.on = due;
        due
    }

    /// The probe a sampled forward pass reports its ReLU outputs to.
    pub fn probe(&mut self) -> &mut Probe {
        &mut self.probe
    }

    /// Whether the step with `loss` is recorded, `due` when its `train` record is (or the
    /// loss is not finite).
    pub fn wants(&mut self, due: bool, loss: f64) -> bool {
        let alarm = self.highest_loss.is_some_and(|h| loss > LOSS_ALARM * h);
        if loss.is_finite() {
            self.highest_loss = Some(self.highest_loss.map_or(loss, |h| h.max(loss)));
        }
        !self.recorded || due || alarm || !loss.is_finite()
    }

    /// Measures the weights and the step's gradients before the optimizer step.
    pub fn before<M: Module>(&self, model: &M, grads: &GradientsParams) -> Before {
        let mut visitor = Measure {
            grads: Some(grads),
            held: None,
            weights: Vec::new(),
            sums: Vec::new(),
        };
        model.visit(&mut visitor);
        Before {
            weights: visitor.weights,
            sums: visitor.sums,
        }
    }

    /// The `layers` record of the step measured in `before`, now that `model` is stepped;
    /// starts a new window.
    pub fn record<M: Module>(&mut self, before: Before, model: &M, step: u64, epoch: usize) -> MetricRecord {
        let held: HashMap<ParamId, Tensor<1>> = before.weights.into_iter().collect();
        let mut after = Measure {
            grads: None,
            held: Some(&held),
            weights: Vec::new(),
            sums: Vec::new(),
        };
        model.visit(&mut after);
        let dead = self.probe.dead_shares();
        let layers = self.read(&before.sums, &after, &dead, model);
        self.probe.clear();
        self.sampled_at = None;
        self.recorded = true;
        MetricRecord {
            kind: MetricKind::Layers,
            step,
            epoch,
            time: crate::train::now(),
            train_loss: None,
            val_loss: None,
            accuracy: None,
            rmse: None,
            lr: None,
            samples_per_sec: None,
            layers: Some(layers),
        }
    }

    /// Reads every sum in one transfer and adds them up per layer.
    fn read<M: Module>(
        &self,
        before: &[Tensor<1>],
        after: &Measure<'_>,
        dead: &[(String, Tensor<1>)],
        model: &M,
    ) -> Vec<LayerStats> {
        let mut all: Vec<Tensor<1>> = before.to_vec();
        all.extend(after.sums.iter().cloned());
        all.extend(dead.iter().map(|(_, d)| d.clone()));
        let values = match all.is_empty() {
            true => Vec::new(),
            false => Tensor::cat(all, 0).into_data().try_to_vec::<f64>().unwrap_or_default(),
        };
        let params = param_layers(model);
        let mut sums: HashMap<&str, Sums> = HashMap::new();
        let (before, rest) = values.split_at(values.len().min(2 * params.len()));
        let (after, dead_values) = rest.split_at(rest.len().min(2 * params.len()));
        for (i, (_, layer)) in params.iter().enumerate() {
            let entry = sums.entry(layer.as_str()).or_default();
            entry.weight_before += before.get(2 * i).copied().unwrap_or(f64::NAN);
            entry.grad += before.get(2 * i + 1).copied().unwrap_or(f64::NAN);
            entry.weight_after += after.get(2 * i).copied().unwrap_or(f64::NAN);
            entry.delta += after.get(2 * i + 1).copied().unwrap_or(f64::NAN);
        }
        self.names
            .iter()
            .map(|name| {
                let dead = dead
                    .iter()
                    .position(|(n, _)| n == name)
                    .map(|i| finite(dead_values.get(i).copied().unwrap_or(f64::NAN)));
                sums.get(name.as_str()).copied().unwrap_or_default().stats(name, dead)
            })
            .collect()
    }
}

/// Squared sums of one layer.
#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    weight_before: f64,
    weight_after: f64,
    grad: f64,
    delta: f64,
}

impl Sums {
    fn stats(self, name: &str, dead: Option<f64>) -> LayerStats {
        let before = self.weight_before.sqrt();
        let after = self.weight_after.sqrt();
        let delta = self.delta.sqrt();
        let base = if before > 0.0 { before } else { after };
        let update_ratio = if delta == 0.0 { 0.0 } else { delta / base };
        LayerStats {
            name: name.to_owned(),
            weight_norm: finite(after),
            grad_norm: finite(self.grad.sqrt()),
            update_ratio: finite(update_ratio),
            dead,
        }
    }
}

/// `value`, or `f64::MAX` when it overflowed or is NaN (JSON has no infinity).
fn finite(value: f64) -> f64 {
    if value.is_finite() { value } else { f64::MAX }
}

/// Σ x², in f64 (an exploding layer's norms overflow f32), as a one-element tensor.
fn squared_sum(tensor: Tensor<1>) -> Tensor<1> {
    tensor.cast(DType::F64).square().sum()
}

/// Measures parameters: before a step (weights held, ‖w‖², ‖g‖²) or after it (‖w‖², ‖Δw‖²).
struct Measure<'a> {
    grads: Option<&'a GradientsParams>,
    held: Option<&'a HashMap<ParamId, Tensor<1>>>,
    weights: Vec<(ParamId, Tensor<1>)>,
    sums: Vec<Tensor<1>>,
}

impl ModuleVisitor for Measure<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // Every handle taken here is dropped before the optimizer step: only fresh tensors
        // (the f64 copy, the sums) are kept.
        let weights = param.val().inner();
        let n = weights.shape().num_elements();
        let flat = weights.reshape([n]).cast(DType::F64);
        let device = flat.device();
        let zero = || Tensor::<1>::zeros([1], (&device, DType::F64));
        self.sums.push(flat.clone().square().sum());
        if let Some(grads) = self.grads {
            let grad = grads.get::<D>(param.id).map(|g| g.reshape([n]));
            self.sums.push(grad.map_or_else(zero, squared_sum));
            self.weights.push((param.id, flat));
        } else if let Some(held) = self.held {
            let delta = held.get(&param.id).map(|old| flat - old.clone());
            self.sums.push(delta.map_or_else(zero, |d| d.square().sum()));
        }
    }
}

/// Each float parameter's id and the layer it belongs to, in visiting order.
fn param_layers<M: Module>(model: &M) -> Vec<(ParamId, String)> {
    let mut visitor = Names::default();
    model.visit(&mut visitor);
    visitor.found
}

/// Walks the module tree, naming each parameter's layer.
#[derive(Default)]
struct Names {
    /// `(field or index, container type)` of each module entered, outermost first.
    stack: Vec<(String, String)>,
    found: Vec<(ParamId, String)>,
}

impl ModuleVisitor for Names {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push((name.to_owned(), container_type.to_owned()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.found.push((param.id, layer_name(&self.stack)));
    }
}

/// The layer a parameter at `path` belongs to: the entries held by the model itself or by a
/// list, up to the first held by another module (`hidden.0` of `hidden.0.weight`, `lstm` of
/// `lstm.input_gate.input_transform.weight`).
fn layer_name(path: &[(String, String)]) -> String {
    let root = path.first().map(|(_, container)| container.as_str());
    let parts: Vec<&str> = path
        .iter()
        .take_while(|(_, c)| Some(c.as_str()) == root || matches!(c.as_str(), "Vec" | "Array" | "Tuple"))
        .map(|(name, _)| name.as_str())
        .collect();
    parts.join(".")
}
