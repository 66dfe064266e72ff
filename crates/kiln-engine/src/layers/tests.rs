//! Layer statistics on tiny models with real libtorch: the figures against a direct
//! computation, the names against the module tree, dead units, and a diverging run that
//! records its exploding layers before it ends.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{DType, Device, Tensor};
use kiln_core::inspect::{LayerHealth, LayerStats};
use kiln_core::jobs::MetricRecord;
use kiln_core::kinds::{Arch, MetricKind, Schedule};

use super::*;
use crate::checkpoint::{Checkpoint, Position};
use crate::data::{Inputs, Split, Targets};
use crate::model::{ArchConfig, Mlp, MlpConfig};
use crate::ops::tests::autodiff;
use crate::task::{self, Task};
use crate::train::{self, LoopEnd, LoopSettings, LoopSink};

/// `rows` rows of `features` values in [0, 1) and two classes, from a fixed generator.
fn split(rows: usize, features: usize) -> Split {
    let mut rng = crate::data::SplitMix64(11);
    let inputs = (0..rows * features).map(|_| rng.uniform() as f32).collect();
    let targets = (0..rows).map(|i| (i % 2) as i64).collect();
    Split {
        inputs: Inputs::Floats(inputs),
        row_len: features,
        targets: Targets::Classes(targets),
    }
}

fn mlp(hidden: Vec<usize>, device: &Device) -> Mlp {
    device.seed(3);
    MlpConfig {
        inputs: 6,
        hidden,
        classes: 2,
    }
    .init(device)
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    tensor
        .inner()
        .cast(DType::F64)
        .into_data()
        .try_to_vec::<f64>()
        .expect("f64 values")
}

/// Every parameter's layer and values, in visiting order.
fn params<M: Module>(model: &M) -> Vec<(ParamId, String, Vec<f64>)> {
    struct Values(Vec<(ParamId, Vec<f64>)>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push((param.id, values(param.val())));
        }
    }
    let mut visitor = Values(Vec::new());
    model.visit(&mut visitor);
    let layers = param_layers(model);
    visitor
        .0
        .into_iter()
        .zip(layers)
        .map(|((id, v), (_, layer))| (id, layer, v))
        .collect()
}

fn norm<'a>(values: impl Iterator<Item = &'a f64>) -> f64 {
    values.map(|v| v * v).sum::<f64>().sqrt()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1e-9)
}

/// One recorded SGD step of `model` on all of `data`: the record and the parameters and
/// gradients around it.
fn recorded_sgd_step(model: Mlp, data: &Split, lr: f64) -> (LayerStats, Vec<LayerStats>, Vec<f64>, Vec<f64>) {
    let device = autodiff();
    let rows: Vec<usize> = (0..data.len()).collect();
    let mut recorder = LayerRecorder::new(&model);
    assert!(recorder.sample_now());
    let prediction = model.predict_probed(data, &rows, &device, recorder.probe());
    let loss = task::loss(&prediction, data, &rows, &device);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let before_values = params(&model);
    let grad_values: Vec<f64> = grad_values(&model, &grads)
        .into_iter()
        .zip(&before_values)
        .filter(|(_, (_, layer, _))| layer == "hidden.0")
        .flat_map(|(g, _)| g)
        .collect();
    let before = recorder.before(&model, &grads);
    let mut optim: ModuleOptimizer = SgdConfig::new().init();
    let model = optim.step(lr, model, grads);
    let record = recorder.record(before, &model, 1, 0);
    assert_eq!(record.kind, MetricKind::Layers);
    let layers = record.layers.expect("layer statistics");
    let weights: Vec<f64> = before_values
        .iter()
        .filter(|(_, layer, _)| layer == "hidden.0")
        .flat_map(|(_, _, v)| v.clone())
        .collect();
    (layers[0].clone(), layers, weights, grad_values)
}

/// Every parameter's gradient, flattened, in visiting order.
fn grad_values<M: Module>(model: &M, grads: &GradientsParams) -> Vec<Vec<f64>> {
    struct Grads<'a>(&'a GradientsParams, Vec<Vec<f64>>);
    impl ModuleVisitor for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad = self.0.get::<D>(param.id).expect("a gradient for every parameter");
            self.1.push(values(grad));
        }
    }
    let mut visitor = Grads(grads, Vec::new());
    model.visit(&mut visitor);
    visitor.1
}

#[test]
fn norms_and_the_sgd_update_ratio_match_a_direct_computation() {
    let device = autodiff();
    let data = split(16, 6);
    let model = mlp(vec![5], &device);
    let lr = 0.1;
    let (first, layers, weights, grads) = recorded_sgd_step(model, &data, lr);
    assert_eq!(
        layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["hidden.0", "output"]
    );
    let (w, g) = (norm(weights.iter()), norm(grads.iter()));
    assert!(close(first.grad_norm, g), "grad norm {} vs {g}", first.grad_norm);
    // Plain SGD moves the weights by lr·g: the ratio is lr·‖g‖/‖w‖.
    assert!(
        close(first.update_ratio, lr * g / w),
        "update ratio {} vs {}",
        first.update_ratio,
        lr * g / w
    );
    let after: Vec<f64> = weights.iter().zip(&grads).map(|(w, g)| w - lr * g).collect();
    assert!(
        close(first.weight_norm, norm(after.iter())),
        "weight norm after the step"
    );
    assert!(first.dead.is_some_and(|d| (0.0..1.0).contains(&d)), "{first:?}");
    assert_eq!(layers[1].dead, None, "the output layer has no ReLU");
}

/// Sets one parameter, by its dotted name, to a constant.
struct SetParam {
    stack: Vec<String>,
    name: &'static str,
    value: f64,
}

impl ModuleMapper for SetParam {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.stack.join(".") != self.name {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let value = tensor.zeros_like().add_scalar(self.value).detach().require_grad();
        Param::from_mapped_value(id, value, mapper)
    }
}

#[test]
fn a_layer_whose_pre_activations_are_all_negative_is_entirely_dead() {
    let device = autodiff();
    let data = split(16, 6);
    let model = mlp(vec![5, 4], &device).map(&mut SetParam {
        stack: Vec::new(),
        name: "hidden.0.bias",
        value: -100.0,
    });
    let (first, layers, _, _) = recorded_sgd_step(model, &data, 0.01);
    assert_eq!(first.dead, Some(1.0), "{first:?}");
    let health = LayerHealth::of(&first, &first);
    assert!(
        matches!(health, LayerHealth::Dead | LayerHealth::Vanishing),
        "{health:?}"
    );
    assert_eq!(layers.len(), 3);
}

#[test]
fn layers_are_named_after_the_module_tree_and_the_probe_uses_the_same_names() {
    let device = autodiff();
    let cases = [
        (
            Arch::Mlp,
            serde_json::json!({"inputs": 6, "classes": 2}),
            vec!["hidden.0", "hidden.1", "output"],
        ),
        (
            Arch::Cnn,
            serde_json::json!({"height": 8, "width": 8, "classes": 2, "conv_channels": [2, 3], "hidden": 4}),
            vec!["convs.0", "convs.1", "hidden", "output"],
        ),
        (
            Arch::Rnn,
            serde_json::json!({"vocab": 10, "classes": 2}),
            vec!["embedding", "lstm", "output"],
        ),
        (
            Arch::Mf,
            serde_json::json!({"users": 3, "items": 4}),
            vec!["users", "items", "user_bias", "item_bias", "global_bias"],
        ),
    ];
    for (arch, config, expected) in cases {
        let config = ArchConfig::from_json(arch, config).expect("config");
        let names = match config.init(&device) {
            crate::model::ZooModel::Mlp(m) => LayerRecorder::new(&m).names().to_vec(),
            crate::model::ZooModel::Cnn(m) => {
                let mut probe = Probe::off();
                probe.on = true;
                let _ = m.forward_probed(Tensor::zeros([2, 1, 8, 8], &device), &mut probe);
                let probed: Vec<&str> = probe.sums.iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(probed, ["convs.0", "convs.1", "hidden"]);
                LayerRecorder::new(&m).names().to_vec()
            }
            crate::model::ZooModel::Rnn(m) => LayerRecorder::new(&m).names().to_vec(),
            crate::model::ZooModel::Mf(m) => LayerRecorder::new(&m).names().to_vec(),
        };
        assert_eq!(names, expected, "{arch}");
    }
}

#[test]
fn the_first_due_alarming_and_diverged_steps_are_recorded() {
    let device = autodiff();
    let mut recorder = LayerRecorder::new(&mlp(vec![3], &device));
    let stats = |r: &mut LayerRecorder| r.recorded = true;
    assert!(recorder.wants(false, 2.3), "the first step is the baseline");
    stats(&mut recorder);
    assert!(!recorder.wants(false, 2.0));
    assert!(recorder.wants(true, 1.9), "due with the train record");
    assert!(!recorder.wants(false, 22.0), "under ten times the highest loss");
    assert!(recorder.wants(false, 250.0), "a divergence starting");
    assert!(!recorder.wants(false, 2000.0), "the bar rose with it");
    assert!(recorder.wants(false, f64::NAN));
    assert!(
        recorder.sample_now() && !recorder.sample_now(),
        "sampled at most every 100 ms"
    );
}

/// Collects what the loop reports.
#[derive(Default)]
struct Collect(Vec<MetricRecord>);

impl LoopSink for Collect {
    fn metric(&mut self, record: &MetricRecord) {
        self.0.push(record.clone());
    }

    fn checkpoint(&mut self, _checkpoint: &Checkpoint<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}

fn settings(lr: f64, layer_stats: bool) -> LoopSettings {
    LoopSettings {
        epochs: 3,
        batch_size: 8,
        lr,
        schedule: Schedule::Constant,
        seed: 5,
        masks: None,
        layer_stats,
    }
}

fn sgd() -> ModuleOptimizer {
    SgdConfig::new().init()
}

/// Whether any `layers` record up to `step` marks a layer exploding against its first.
fn exploding_by(records: &[MetricRecord], step: u64) -> bool {
    let layers: Vec<&MetricRecord> = records.iter().filter(|r| r.kind == MetricKind::Layers).collect();
    let Some(first) = layers.first().and_then(|r| r.layers.as_ref()) else {
        return false;
    };
    layers.iter().filter(|r| r.step <= step).any(|r| {
        r.layers.iter().flatten().any(|l| {
            let base = first.iter().find(|f| f.name == l.name);
            base.is_some_and(|base| LayerHealth::of(base, l) == LayerHealth::Exploding)
        })
    })
}

#[test]
fn an_absurd_learning_rate_records_exploding_layers_at_once_and_before_a_divergence() {
    let device = autodiff();
    let data = split(64, 6);
    let stop = Arc::new(AtomicBool::new(false));
    // 1e6 blows the gradients up within two steps, then kills every ReLU: the loss stays
    // finite, so only the loss alarm records the steps in between. 1e20 overflows the loss
    // at step 2: that step is recorded before the run ends as diverged.
    for (lr, diverges) in [(1e6, false), (1e20, true)] {
        let mut sink = Collect::default();
        let end = train::run(
            mlp(vec![8], &device),
            sgd(),
            &settings(lr, true),
            &data,
            &data,
            Position::default(),
            &device,
            &stop,
            &mut sink,
        )
        .expect("run");
        let last = match end {
            LoopEnd::Diverged { step } => step,
            _ => 3,
        };
        assert_eq!(matches!(end, LoopEnd::Diverged { .. }), diverges, "lr {lr}: {end:?}");
        assert!(
            exploding_by(&sink.0, last),
            "lr {lr}: no exploding record by step {last}: {:?}",
            sink.0
        );
        let json = serde_json::to_string(&sink.0).expect("records serialize");
        let back: Vec<MetricRecord> = serde_json::from_str(&json).expect("and read back: no NaN or infinity");
        assert_eq!(back.len(), sink.0.len());
    }
}

#[test]
fn without_layer_statistics_nothing_is_recorded_and_training_is_unchanged() {
    let device = autodiff();
    let data = split(64, 6);
    let stop = Arc::new(AtomicBool::new(false));
    let mut losses = Vec::new();
    for on in [false, true] {
        let mut sink = Collect::default();
        // Adam, whose fused step updates weights in place unless a recorded step holds them.
        let end = train::run(
            mlp(vec![8], &device),
            train::optimizer(kiln_core::kinds::Optimizer::Adam),
            &settings(0.05, on),
            &data,
            &data,
            Position::default(),
            &device,
            &stop,
            &mut sink,
        )
        .expect("run");
        assert!(matches!(end, LoopEnd::Finished { .. }), "{end:?}");
        let kinds = sink.0.iter().filter(|r| r.kind == MetricKind::Layers).count();
        assert_eq!(kinds > 0, on, "layers records only when on");
        let val: Vec<Option<f64>> = sink
            .0
            .iter()
            .filter(|r| r.kind == MetricKind::Val)
            .map(|r| r.val_loss)
            .collect();
        losses.push(val);
    }
    assert_eq!(losses[0], losses[1], "statistics do not change what is trained");
}
