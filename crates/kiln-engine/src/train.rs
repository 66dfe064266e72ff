//! The training loop every `kilnd worker` runs: batches in seeded order, metrics at least
//! once a second (and per-layer statistics, `layers`), a checkpoint each epoch (and on
//! SIGTERM), NaN detection, validation.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig, momentum::MomentumConfig};
use burn::tensor::Device;
use kiln_core::jobs::MetricRecord;
use kiln_core::kinds::{MetricKind, Optimizer, Schedule};

use super::checkpoint::{Checkpoint, Position};
use super::data::Split;
use super::layers::LayerRecorder;
use super::task::{self, BatchScore, Task};
use super::{ops, weights};

/// Settings of one run of the loop.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub schedule: Schedule,
    pub seed: u64,
    /// Pruning masks kept after every optimizer step, so pruned weights stay zero.
    pub masks: Option<super::compress::Masks>,
    /// Record per-layer statistics (`layers` metric records, see [`super::layers`]).
    pub layer_stats: bool,
}

/// How the loop ended.
#[derive(Debug)]
pub enum LoopEnd<M> {
    /// All epochs ran; the trained model and its final validation score.
    Finished { model: M, val: BatchScore, train_loss: f64 },
    /// SIGTERM arrived; a checkpoint was saved at `position`.
    Cancelled { position: Position },
    /// The loss became NaN or infinite at `step`.
    Diverged { step: u64 },
}

/// Where the loop reports progress and saves checkpoints.
pub trait LoopSink {
    fn metric(&mut self, record: &MetricRecord);
    fn checkpoint(&mut self, checkpoint: &Checkpoint<'_>) -> anyhow::Result<()>;
}

impl LoopSettings {
    /// The learning rate for `step` (1-based) of a run with `per_epoch` batches an epoch.
    pub fn lr_at(&self, step: u64, per_epoch: usize) -> f64 {
        if self.schedule == Schedule::Constant {
            return self.lr;
        }
        let total = (self.epochs * per_epoch).max(1) as f64;
        let progress = ((step.saturating_sub(1)) as f64 / total).min(1.0);
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Builds the optimizer named in the job spec.
pub fn optimizer(kind: Optimizer) -> ModuleOptimizer {
    match kind {
        // burn's Adam/AdamW (same defaults, same state), stepped by libtorch's fused kernel.
        Optimizer::Adam => ModuleOptimizer::from(ops::FusedAdam::new()),
        Optimizer::Adamw => ModuleOptimizer::from(ops::FusedAdamW::new()),
        Optimizer::Sgd => SgdConfig::new().with_momentum(Some(MomentumConfig::new())).init(),
    }
}

/// Trains `model` from `start`, returning how it ended.
#[allow(clippy::too_many_arguments)]
pub fn run<M: Task>(
    mut model: M,
    mut optim: ModuleOptimizer,
    settings: &LoopSettings,
    train: &Split,
    val: &Split,
    start: Position,
    device: &Device,
    stop: &Arc<AtomicBool>,
    sink: &mut dyn LoopSink,
) -> anyhow::Result<LoopEnd<M>> {
    let mut step = start.step;
    let mut last_train_loss = f64::NAN;
    let mut layers = settings.layer_stats.then(|| LayerRecorder::new(&model));
    for epoch in start.epoch..settings.epochs {
        let order = super::data::permutation(train.len(), settings.seed.wrapping_add(epoch as u64));
        let batches: Vec<&[usize]> = order.chunks(settings.batch_size).collect();
        let first_batch = if epoch == start.epoch { start.batch } else { 0 };
        let mut window = Window::new();
        // The epoch's mean loss is what the manifest records: unlike the once-a-second window
        // it does not depend on timing, so the same seed gives the same figure.
        let mut epoch_loss = Window::new();
        for (index, rows) in batches.iter().enumerate().skip(first_batch) {
            if stop.load(Ordering::Relaxed) {
                let position = Position {
                    epoch,
                    batch: index,
                    step,
                };
                save_checkpoint(sink, &model, &optim, position)?;
                return Ok(LoopEnd::Cancelled { position });
            }
            let sampled = layers.as_mut().is_some_and(LayerRecorder::sample_now);
            let prediction = match layers.as_mut().filter(|_| sampled) {
                Some(recorder) => model.predict_probed(train, rows, device, recorder.probe()),
                None => model.predict(train, rows, device),
            };
            let loss = task::loss(&prediction, train, rows, device);
            let value = loss.clone().into_scalar::<f64>();
            step += 1;
            let diverged = !value.is_finite();
            // Without layer statistics a diverged step ends the run at once; with them its
            // gradients are recorded first (see `layers`).
            if diverged && layers.is_none() {
                return Ok(LoopEnd::Diverged { step });
            }
            let due = window.due() || index + 1 == batches.len();
            let lr = settings.lr_at(step, batches.len());
            let record = layers.as_mut().is_some_and(|l| l.wants(due, value));
            let recorder = layers.as_mut().filter(|_| record);
            model = optimize(model, &mut optim, loss, lr, settings, recorder, (step, epoch), sink);
            if diverged {
                return Ok(LoopEnd::Diverged { step });
            }
            window.add(value, rows.len());
            epoch_loss.add(value, rows.len());
            if due {
                sink.metric(&window.record(step, epoch, lr));
                window = Window::new();
            }
        }
        if epoch_loss.rows > 0 {
            last_train_loss = epoch_loss.mean();
        }
        let val_score = evaluate(&model.valid(), val, 512, device);
        sink.metric(&val_record(&val_score, step, epoch + 1, val));
        save_checkpoint(
            sink,
            &model,
            &optim,
            Position {
                epoch: epoch + 1,
                batch: 0,
                step,
            },
        )?;
    }
    let val = evaluate(&model.valid(), val, 512, device);
    Ok(LoopEnd::Finished {
        model,
        val,
        train_loss: last_train_loss,
    })
}

/// One optimizer step on `loss`; with a `recorder`, the step's `layers` record goes to `sink`.
#[allow(clippy::too_many_arguments)]
fn optimize<M: Task>(
    model: M,
    optim: &mut ModuleOptimizer,
    loss: burn::tensor::Tensor<1>,
    lr: f64,
    settings: &LoopSettings,
    recorder: Option<&mut LayerRecorder>,
    (step, epoch): (u64, usize),
    sink: &mut dyn LoopSink,
) -> M {
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let before = recorder.as_ref().map(|r| r.before(&model, &grads));
    let mut model = optim.step(lr, model, grads);
    if let Some(masks) = &settings.masks {
        model = super::compress::apply(model, masks);
    }
    if let (Some(recorder), Some(before)) = (recorder, before) {
        sink.metric(&recorder.record(before, &model, step, epoch));
    }
    model
}

fn save_checkpoint<M: Task>(
    sink: &mut dyn LoopSink,
    model: &M,
    optim: &ModuleOptimizer,
    position: Position,
) -> anyhow::Result<()> {
    let model_bytes = weights::module_to_safetensors(model)?;
    sink.checkpoint(&Checkpoint {
        model_bytes,
        optim,
        position,
    })
}

/// Scores `model` on every row of `data`, in batches.
pub fn evaluate<M: Task>(model: &M, data: &Split, batch_size: usize, device: &Device) -> BatchScore {
    let rows: Vec<usize> = (0..data.len()).collect();
    let mut total = BatchScore::default();
    for chunk in rows.chunks(batch_size) {
        let prediction = model.predict(data, chunk, device);
        let loss = task::loss(&prediction, data, chunk, device).into_scalar::<f64>();
        total.add(task::score(&prediction, loss, data, chunk, device));
    }
    total
}

fn val_record(score: &BatchScore, step: u64, epoch: usize, data: &Split) -> MetricRecord {
    let ratings = matches!(data.targets, super::data::Targets::Ratings(_));
    MetricRecord {
        kind: MetricKind::Val,
        step,
        epoch,
        time: now(),
        train_loss: None,
        val_loss: Some(score.mean_loss()),
        accuracy: (!ratings).then(|| score.accuracy()),
        rmse: ratings.then(|| score.rmse()),
        lr: None,
        samples_per_sec: None,
        layers: None,
    }
}

/// Running training loss and throughput since the last metric line.
struct Window {
    started: Instant,
    loss_sum: f64,
    rows: usize,
}

impl Window {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            loss_sum: 0.0,
            rows: 0,
        }
    }

    fn add(&mut self, mean_loss: f64, rows: usize) {
        self.loss_sum += mean_loss * rows as f64;
        self.rows += rows;
    }

    fn due(&self) -> bool {
        self.started.elapsed().as_secs_f64() >= 1.0
    }

    fn mean(&self) -> f64 {
        self.loss_sum / self.rows.max(1) as f64
    }

    fn record(&self, step: u64, epoch: usize, lr: f64) -> MetricRecord {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        MetricRecord {
            kind: MetricKind::Train,
            step,
            epoch,
            time: now(),
            train_loss: Some(self.mean()),
            val_loss: None,
            accuracy: None,
            rmse: None,
            lr: Some(lr),
            samples_per_sec: Some(self.rows as f64 / seconds),
            layers: None,
        }
    }
}

/// Seconds since the Unix epoch, as metric records carry them.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}
