//! Every op against burn's own implementation of the same layer (outputs and the gradients of
//! the input and of every parameter, max abs difference ≤ 1e-5), and against central finite
//! differences in f64 on small shapes. Real libtorch throughout.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GruConfig, LstmConfig, PaddingConfig2d};
use burn::tensor::{DType, Device, Gradients, Tensor};

use super::*;

const TOLERANCE: f64 = 1e-5;

pub(crate) fn autodiff() -> Device {
    Device::libtorch().autodiff()
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    let data = tensor.cast(DType::F64).into_data();
    data.to_vec::<f64>().expect("f64 data")
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "sizes differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Casts every parameter to f64 (leaves that require grad, ids kept).
struct ToF64;

impl ModuleMapper for ToF64 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.cast(DType::F64).detach().require_grad(), mapper)
    }
}

/// Adds `delta` to element `index` of parameter number `target` (in visiting order).
struct Nudge {
    target: usize,
    index: usize,
    delta: f64,
    seen: usize,
}

impl ModuleMapper for Nudge {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.seen == self.target {
            true => nudge(tensor, self.index, self.delta).require_grad(),
            false => tensor,
        };
        self.seen += 1;
        Param::from_mapped_value(id, tensor, mapper)
    }
}

fn nudge<const D: usize>(tensor: Tensor<D>, index: usize, delta: f64) -> Tensor<D> {
    let shape = tensor.shape();
    let mut flat = values(tensor.clone().detach());
    flat[index] += delta;
    let device = tensor.device();
    Tensor::<1>::from_data(
        burn::tensor::TensorData::new(flat, [shape.num_elements()]),
        (&device, DType::F64),
    )
    .reshape(shape)
}

/// Each parameter's gradient, flattened, in visiting order.
struct ParamGrads<'a> {
    grads: &'a Gradients,
    found: Vec<Vec<f64>>,
}

impl ModuleVisitor for ParamGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let grad = param.val().grad(self.grads).expect("every parameter gets a gradient");
        self.found.push(values(grad));
    }
}

/// Output, input gradient (if the input is tracked) and parameter gradients of
/// `sum(layer(module, input) * weights)`.
struct Run {
    output: Vec<f64>,
    input_grad: Option<Vec<f64>>,
    param_grads: Vec<Vec<f64>>,
}

fn run<M: Module, const D: usize, const E: usize>(
    module: &M,
    input: &Tensor<D>,
    weights: &Tensor<E>,
    layer: impl Fn(&M, Tensor<D>) -> Tensor<E>,
) -> Run {
    let output = layer(module, input.clone());
    let loss = (output.clone() * weights.clone()).sum();
    let grads = loss.backward();
    let mut visitor = ParamGrads {
        grads: &grads,
        found: Vec::new(),
    };
    module.visit(&mut visitor);
    Run {
        output: values(output.detach()),
        input_grad: input.grad(&grads).map(values),
        param_grads: visitor.found,
    }
}

fn libtorch_ops() -> usize {
    ON_LIBTORCH.with(|n| n.get())
}

/// Ours and burn's give the same output and gradients, and ours ran on libtorch's kernels:
/// in f64 within [`TOLERANCE`] (summation order aside, the same arithmetic), and in f32, as
/// training runs, within 1e-4 of each value's magnitude (f32 rounding of differently ordered
/// sums).
pub(crate) fn same_as_burn<M: Module + Clone, const D: usize, const E: usize>(
    module: &M,
    input: &Tensor<D>,
    weights: &Tensor<E>,
    ours: impl Fn(&M, Tensor<D>) -> Tensor<E>,
    burn: impl Fn(&M, Tensor<D>) -> Tensor<E>,
) {
    let both = |module: &M, input: &Tensor<D>, weights: &Tensor<E>| {
        let before = libtorch_ops();
        let a = run(module, input, weights, &ours);
        let after = libtorch_ops();
        assert!(after > before, "the op fell back to burn's path");
        let b = run(module, input, weights, &burn);
        assert_eq!(libtorch_ops(), after, "the reference ran a libtorch op");
        (a, b)
    };
    let wide = module.clone().map(&mut ToF64);
    let mut wide_input = input.clone().cast(DType::F64).detach();
    if input.is_require_grad() {
        wide_input = wide_input.require_grad();
    }
    let (a, b) = both(&wide, &wide_input, &weights.clone().cast(DType::F64));
    compare(&a, &b, |x, y| max_diff(x, y) <= TOLERANCE);
    let (a, b) = both(module, input, weights);
    compare(&a, &b, |x, y| {
        x.iter().zip(y).all(|(x, y)| (x - y).abs() <= 1e-4 * y.abs().max(1.0))
    });
}

fn compare(a: &Run, b: &Run, close: impl Fn(&[f64], &[f64]) -> bool) {
    assert!(
        close(&a.output, &b.output),
        "outputs differ by {}",
        max_diff(&a.output, &b.output)
    );
    match (&a.input_grad, &b.input_grad) {
        (Some(x), Some(y)) => assert!(close(x, y), "input gradients differ by {}", max_diff(x, y)),
        (None, None) => {}
        other => panic!("one path has an input gradient and the other not: {other:?}"),
    }
    assert_eq!(a.param_grads.len(), b.param_grads.len());
    for (i, (x, y)) in a.param_grads.iter().zip(&b.param_grads).enumerate() {
        assert!(close(x, y), "parameter {i} gradients differ by {}", max_diff(x, y));
    }
}

/// Our gradients (f64) match central differences of the loss at a few elements of the input
/// and of every parameter.
pub(crate) fn same_as_finite_differences<M: Module + Clone, const D: usize, const E: usize>(
    module: M,
    input: Tensor<D>,
    weights: Tensor<E>,
    ours: impl Fn(&M, Tensor<D>) -> Tensor<E>,
) {
    let module = module.map(&mut ToF64);
    let input = input.cast(DType::F64).detach().require_grad();
    let weights = weights.cast(DType::F64);
    let analytic = run(&module, &input, &weights, &ours);
    let loss = |m: &M, x: Tensor<D>| -> f64 { values((ours(m, x) * weights.clone()).sum().detach())[0] };
    const H: f64 = 1e-6;
    let picks = |n: usize| (0..4).map(move |k| (k * 7919 + 3) % n);
    let input_grad = analytic.input_grad.expect("the input is tracked");
    for index in picks(input_grad.len()) {
        let up = loss(&module, nudge(input.clone().detach(), index, H));
        let down = loss(&module, nudge(input.clone().detach(), index, -H));
        let numeric = (up - down) / (2.0 * H);
        let diff = (numeric - input_grad[index]).abs();
        assert!(
            diff <= TOLERANCE,
            "input[{index}]: numeric {numeric} vs analytic {} ({diff})",
            input_grad[index]
        );
    }
    for (target, grad) in analytic.param_grads.iter().enumerate() {
        for index in picks(grad.len()) {
            let at = |delta| {
                let nudged = module.clone().map(&mut Nudge {
                    target,
                    index,
                    delta,
                    seen: 0,
                });
                loss(&nudged, input.clone().detach())
            };
            let numeric = (at(H) - at(-H)) / (2.0 * H);
            let diff = (numeric - grad[index]).abs();
            assert!(
                diff <= TOLERANCE,
                "parameter {target}[{index}]: numeric {numeric} vs analytic {} ({diff})",
                grad[index]
            );
        }
    }
}

thread_local! {
    /// Test data comes from this thread's own generator: the device's is shared by tests
    /// running in parallel, so draws from it interleave unpredictably.
    static DATA: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Restarts this thread's test data at `seed`.
pub(crate) fn seed(seed: u64) {
    DATA.with(|d| d.set(seed));
}

/// Standard normal values (Box-Muller over SplitMix64), from this thread's generator.
pub(crate) fn normal<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    let mut rng = crate::data::SplitMix64(DATA.with(|d| d.get()));
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| {
            let (u, v) = (rng.uniform().max(f64::MIN_POSITIVE), rng.uniform());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect();
    DATA.with(|d| d.set(rng.0));
    Tensor::from_data(burn::tensor::TensorData::new(values, shape), device)
}

/// A module with no parameters, for ReLU.
#[derive(Module, Debug)]
struct Nothing {}

#[test]
fn relu_matches_burn_and_finite_differences() {
    let device = autodiff();
    device.seed(1);
    seed(1);
    let x = normal([3, 4, 5], &device).require_grad();
    let w = normal([3, 4, 5], &device);
    same_as_burn(
        &Nothing {},
        &x,
        &w,
        |_, x| relu(x),
        |_, x| burn::tensor::activation::relu(x),
    );
    same_as_finite_differences(Nothing {}, x, w, |_, x| relu(x));
}

fn convs(device: &Device) -> Vec<Conv2d> {
    vec![
        // The cnn's stage: 3×3, same padding.
        Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init(device),
        // Stride, valid padding, a non-square kernel.
        Conv2dConfig::new([3, 2], [3, 2]).with_stride([2, 1]).init(device),
        // Explicit symmetric padding with dilation.
        Conv2dConfig::new([3, 5], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(2, 1, 2, 1))
            .with_dilation([2, 1])
            .init(device),
    ]
}

#[test]
fn conv2d_matches_burn_and_finite_differences() {
    let device = autodiff();
    device.seed(2);
    seed(2);
    for conv in convs(&device) {
        let x = normal([2, 3, 9, 8], &device).require_grad();
        let w = normal(conv.forward(x.clone().detach()).dims(), &device);
        same_as_burn(&conv, &x, &w, conv2d, |c, x| c.forward(x));
        // An input that wants no gradient (the first layer's images): weights and bias only.
        let images = x.clone().detach();
        same_as_burn(&conv, &images, &w, conv2d, |c, x| c.forward(x));
        same_as_finite_differences(conv, x, w, conv2d);
    }
}

/// burn's LSTM from a zero state in the input's dtype (its own zeros are f32, which an f64
/// run cannot mix with).
fn burn_lstm(lstm: &burn::nn::Lstm, x: Tensor<3>) -> Tensor<3> {
    let [batch, _, _] = x.dims();
    let (device, dtype) = (x.device(), x.dtype());
    let zeros = || Tensor::zeros([batch, lstm.d_hidden], (&device, dtype));
    lstm.forward(x, Some(burn::nn::LstmState::new(zeros(), zeros()))).0
}

fn burn_gru(gru: &burn::nn::Gru, x: Tensor<3>) -> Tensor<3> {
    let [batch, _, _] = x.dims();
    let zeros = Tensor::zeros([batch, gru.d_hidden], (&x.device(), x.dtype()));
    gru.forward(x, Some(zeros))
}

#[test]
fn lstm_matches_burn_and_finite_differences() {
    let device = autodiff();
    device.seed(3);
    seed(3);
    let lstm = LstmConfig::new(4, 6, true).init(&device);
    let x = normal([3, 5, 4], &device).require_grad();
    let w = normal([3, 5, 6], &device);
    same_as_burn(&lstm, &x, &w, super::lstm, burn_lstm);
    same_as_finite_differences(lstm, x, w, super::lstm);
}

#[test]
fn gru_matches_burn_and_finite_differences() {
    let device = autodiff();
    device.seed(4);
    seed(4);
    let gru = GruConfig::new(4, 6, true).init(&device);
    let x = normal([3, 5, 4], &device).require_grad();
    let w = normal([3, 5, 6], &device);
    same_as_burn(&gru, &x, &w, super::gru, burn_gru);
    same_as_finite_differences(gru, x, w, super::gru);
}

#[test]
fn inference_outputs_match_burn_without_autodiff() {
    let device = Device::libtorch();
    device.seed(5);
    seed(5);
    let check = |ours: Tensor<3>, theirs: Tensor<3>| {
        let diff = max_diff(&values(ours), &values(theirs));
        assert!(diff <= TOLERANCE, "outputs differ by {diff}");
    };
    let x = normal([2, 7, 4], &device);
    let lstm = LstmConfig::new(4, 6, true).init(&device);
    check(super::lstm(&lstm, x.clone()), lstm.forward(x.clone(), None).0);
    let gru = GruConfig::new(4, 6, true).init(&device);
    check(super::gru(&gru, x.clone()), gru.forward(x.clone(), None));
    check(relu(x.clone()), burn::tensor::activation::relu(x));
    let images = normal([2, 3, 9, 8], &device);
    for conv in convs(&device) {
        let diff = max_diff(
            &values(conv2d(&conv, images.clone())),
            &values(conv.forward(images.clone())),
        );
        assert!(diff <= TOLERANCE, "conv outputs differ by {diff}");
    }
}

#[test]
fn layers_outside_the_fused_forms_take_burns_path() {
    let device = autodiff();
    device.seed(6);
    seed(6);
    // An LSTM with clipping and a GRU with the reset gate applied before the product have no
    // libtorch kernel: the ops must give burn's answer, not a fused approximation.
    let lstm = LstmConfig::new(4, 6, true).with_clip(Some(0.1)).init(&device);
    let gru = GruConfig::new(4, 6, true).with_reset_after(false).init(&device);
    let x = normal([3, 5, 4], &device).require_grad();
    let w = normal([3, 5, 6], &device);
    let before = libtorch_ops();
    let (a, b) = (
        run(&lstm, &x, &w, super::lstm),
        run(&lstm, &x, &w, |m, x| m.forward(x, None).0),
    );
    assert_eq!(max_diff(&a.output, &b.output), 0.0);
    let (a, b) = (
        run(&gru, &x, &w, super::gru),
        run(&gru, &x, &w, |m, x| m.forward(x, None)),
    );
    assert_eq!(max_diff(&a.output, &b.output), 0.0);
    assert_eq!(libtorch_ops(), before, "a layer outside the fused forms ran fused");
}

#[test]
fn libtorch_errors_come_back_as_messages() {
    let opts = (tch::Kind::Float, tch::Device::Cpu);
    let grad = tch::Tensor::ones([1, 4, 5, 5], opts);
    let input = tch::Tensor::ones([1, 3, 5, 5], opts);
    // A weight whose input channels disagree with the input's.
    let weight = tch::Tensor::ones([4, 2, 3, 3], opts);
    let geometry = ffi::Conv2dGeometry {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    let wanted = ffi::Wanted {
        input: true,
        weight: true,
        bias: true,
    };
    let err = ffi::conv2d_backward(&grad, &input, &weight, geometry, wanted).expect_err("mismatched channels");
    assert!(!err.is_empty());
    // A leaf that does not require grad.
    let leaf = tch::Tensor::ones([2], opts);
    let out = &leaf * 2.0;
    let err = ffi::autograd_grad(&[&out], &[&tch::Tensor::ones([2], opts)], &[&leaf]).expect_err("no graph");
    assert!(!err.is_empty());
    let err = ffi::autograd_grad(&[&out], &[], &[&leaf]).expect_err("counts differ");
    assert!(err.contains("1 outputs but 0"), "{err}");
}

mod optimizer {
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
    use burn::tensor::{Device, Tensor};

    use super::{autodiff, libtorch_ops, max_diff, normal, seed, values};
    use crate::ops::{FusedAdam, FusedAdamW};

    /// Two linear layers, so parameters of rank 1 and 2.
    #[derive(Module, Debug)]
    struct Net {
        a: Linear,
        b: Linear,
    }

    fn net(device: &Device) -> Net {
        Net {
            a: LinearConfig::new(6, 5).init(device),
            b: LinearConfig::new(5, 3).init(device),
        }
    }

    fn train(mut model: Net, optim: &mut ModuleOptimizer, steps: usize, device: &Device) -> Net {
        for step in 0..steps {
            super::seed(100 + step as u64);
            let x: Tensor<2> = normal([8, 6], device);
            let target: Tensor<2> = normal([8, 3], device);
            let out = model.b.forward(model.a.forward(x).tanh());
            let loss = (out - target).powi_scalar(2).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        model
    }

    fn weights(model: &Net) -> Vec<f64> {
        [model.a.weight.val(), model.b.weight.val()]
            .into_iter()
            .flat_map(|w| values(w.detach()))
            .chain(
                [model.a.bias.as_ref(), model.b.bias.as_ref()]
                    .into_iter()
                    .flatten()
                    .flat_map(|b| values(b.val().detach())),
            )
            .collect()
    }

    #[test]
    fn fused_adam_and_adamw_match_burns_step_for_step() {
        let device = autodiff();
        device.seed(9);
        seed(9);
        let start = net(&device);
        let pairs = [
            (ModuleOptimizer::from(FusedAdam::new()), AdamConfig::new().init()),
            (ModuleOptimizer::from(FusedAdamW::new()), AdamWConfig::new().init()),
        ];
        for (mut fused, mut burn) in pairs {
            let before = libtorch_ops();
            let ours = train(start.clone(), &mut fused, 6, &device);
            assert!(
                libtorch_ops() >= before + 6 * 4,
                "every parameter step ran the fused kernel"
            );
            let theirs = train(start.clone(), &mut burn, 6, &device);
            let diff = max_diff(&weights(&ours), &weights(&theirs));
            assert!(diff <= 1e-6, "parameters differ by {diff} after 6 steps");
            assert!(
                max_diff(&weights(&ours), &weights(&start)) > 1e-3,
                "training moved the weights"
            );
        }
    }

    #[test]
    fn optimizer_state_moves_between_burns_adam_and_the_fused_one() {
        // A checkpoint written before kiln fused Adam resumes on the fused step, and back.
        let device = autodiff();
        device.seed(10);
        seed(10);
        let mut burn = AdamConfig::new().init();
        let model = train(net(&device), &mut burn, 3, &device);
        let record = burn.to_record();
        let mut fused = ModuleOptimizer::from(FusedAdam::new()).load_record(record);
        let ours = train(model.clone(), &mut fused, 3, &device);
        let theirs = train(model, &mut burn, 3, &device);
        let diff = max_diff(&weights(&ours), &weights(&theirs));
        assert!(diff <= 1e-6, "resumed parameters differ by {diff}");
        let mut back = AdamConfig::new().init().load_record(fused.to_record());
        let again = train(ours.clone(), &mut back, 1, &device);
        let reference = train(ours, &mut fused, 1, &device);
        assert!(max_diff(&weights(&again), &weights(&reference)) <= 1e-6);
    }

    #[test]
    fn a_parameter_held_elsewhere_is_not_overwritten() {
        let device = autodiff();
        device.seed(11);
        seed(11);
        let model = net(&device);
        // A copy sharing the parameters' storage, as a checkpoint being written holds.
        let held = model.clone();
        let snapshot = weights(&held);
        let mut fused = ModuleOptimizer::from(FusedAdam::new());
        let trained = train(model, &mut fused, 2, &device);
        assert_eq!(weights(&held), snapshot, "the held copy changed");
        assert!(max_diff(&weights(&trained), &snapshot) > 1e-4);
    }
}
