//! Adam and AdamW whose step is libtorch's single kernel (`aten::_fused_adam_`/`_fused_adamw_`,
//! what `torch.optim.Adam(fused=True)` runs), where burn's updates a parameter with a dozen
//! elementwise ops and a temporary for most of them. The optimizer state is burn's own
//! (`AdamState`/`AdamWState`: time, first and second moments), so checkpoints written by
//! burn's optimizers resume here and the other way round; the update is the same formula
//! (bias-corrected moments, ε outside the square root, AdamW's decay on the parameter).
//! A parameter off LibTorch takes burn's own step.

use burn::backend::libtorch::TchTensor;
use burn::optim::{
    AdamConfig, AdamState, AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, Optimizer,
};
use burn::tensor::{Device, Tensor};

use super::ffi::{self, AdamSettings};
use super::{Lowered, lower, on_libtorch, raise};

/// burn's defaults, which kiln trains with (`AdamConfig::new()`, `AdamWConfig::new()`).
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;
const ADAMW_WEIGHT_DECAY: f32 = 1e-4;

/// Adam on libtorch's fused step.
#[derive(Clone)]
pub struct FusedAdam {
    fallback: burn::optim::Adam,
}

/// AdamW on libtorch's fused step.
#[derive(Clone)]
pub struct FusedAdamW {
    fallback: AdamW,
}

impl FusedAdam {
    pub fn new() -> Self {
        let config = AdamConfig::new()
            .with_beta_1(BETA_1)
            .with_beta_2(BETA_2)
            .with_epsilon(EPSILON);
        Self {
            fallback: config.build(),
        }
    }
}

impl Default for FusedAdam {
    fn default() -> Self {
        Self::new()
    }
}

impl FusedAdamW {
    pub fn new() -> Self {
        let config = AdamWConfig::new()
            .with_beta_1(BETA_1)
            .with_beta_2(BETA_2)
            .with_epsilon(EPSILON)
            .with_weight_decay(ADAMW_WEIGHT_DECAY);
        Self {
            fallback: config.build(),
        }
    }
}

impl Default for FusedAdamW {
    fn default() -> Self {
        Self::new()
    }
}

fn settings(lr: LearningRate, decoupled: bool) -> AdamSettings {
    AdamSettings {
        lr,
        beta_1: f64::from(BETA_1),
        beta_2: f64::from(BETA_2),
        epsilon: f64::from(EPSILON),
        weight_decay: if decoupled { f64::from(ADAMW_WEIGHT_DECAY) } else { 0.0 },
        decoupled,
    }
}

/// The tensor itself when nobody else holds its storage and it is contiguous (the kernel
/// updates it in place), otherwise a private contiguous copy.
fn private(tensor: TchTensor) -> tch::Tensor {
    match tensor.can_mut() && tensor.tensor.is_contiguous() {
        true => tensor.tensor,
        false => tensor.tensor.contiguous().copy(),
    }
}

/// One step: libtorch's fused kernel when the parameter, its gradient and its moments are on
/// a plain LibTorch device, otherwise `burn` (burn's own step). `wrap` makes the state.
fn step<const D: usize, S>(
    settings: AdamSettings,
    tensor: Tensor<D>,
    grad: Tensor<D>,
    momentum: Option<AdaptiveMomentumState<D>>,
    burn: impl FnOnce(Tensor<D>, Tensor<D>, Option<AdaptiveMomentumState<D>>) -> (Tensor<D>, Option<S>),
    wrap: impl FnOnce(AdaptiveMomentumState<D>) -> S,
) -> (Tensor<D>, Option<S>) {
    let (time, moments) = match momentum {
        Some(state) => (state.time, Some((lower(state.moment_1), lower(state.moment_2)))),
        None => (0, None),
    };
    let (param, grad, exp_avg, exp_avg_sq) = match (lower(tensor), lower(grad), moments) {
        (Lowered::Plain(p), Lowered::Plain(g), Some((Lowered::Plain(m), Lowered::Plain(v)))) => {
            (p, g, private(m), private(v))
        }
        (Lowered::Plain(p), Lowered::Plain(g), None) => {
            let (m, v) = (g.tensor.zeros_like(), g.tensor.zeros_like());
            (p, g, m, v)
        }
        (p, g, moments) => {
            let momentum = moments.map(|(m, v)| AdaptiveMomentumState::new(time, raise(m), raise(v)));
            return burn(raise(p), raise(g), momentum);
        }
    };
    on_libtorch();
    let param = private(param);
    let grad = grad.tensor.contiguous();
    let time = time + 1;
    let step = tch::Tensor::from(time as f32).to_device(param.device());
    ffi::fused_adam(&param, &grad, &exp_avg, &exp_avg_sq, &step, settings)
        .unwrap_or_else(|e| panic!("libtorch fused Adam step failed: {e}"));
    let plain = |t: tch::Tensor| raise::<D>(Lowered::Plain(TchTensor::new(t)));
    let momentum = AdaptiveMomentumState::new(time, plain(exp_avg), plain(exp_avg_sq));
    (plain(param), Some(wrap(momentum)))
}

/// The `Optimizer` impl of one variant: the fused step with burn's state type, and burn's
/// optimizer for a parameter off LibTorch.
macro_rules! fused_optimizer {
    ($name:ident, $burn:ty, $state:ident, decoupled: $decoupled:expr) => {
        impl Optimizer for $name {
            type State<const D: usize> = $state<D>;

            fn step<const D: usize>(
                &self,
                lr: LearningRate,
                tensor: Tensor<D>,
                grad: Tensor<D>,
                state: Option<Self::State<D>>,
            ) -> (Tensor<D>, Option<Self::State<D>>) {
                let wrap = |momentum| $state { momentum };
                let burn = |t, g, m: Option<_>| self.fallback.step(lr, t, g, m.map(wrap));
                let momentum = state.map(|s| s.momentum);
                step(settings(lr, $decoupled), tensor, grad, momentum, burn, wrap)
            }

            fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
                <$burn as Optimizer>::to_device(state, device)
            }
        }
    };
}

fused_optimizer!(FusedAdam, burn::optim::Adam, AdamState, decoupled: false);
fused_optimizer!(FusedAdamW, AdamW, AdamWState, decoupled: true);
