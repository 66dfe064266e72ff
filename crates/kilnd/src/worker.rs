//! `kilnd worker --job <id>`: runs one training or evaluation job in its own process and
//! leaves a final status. A libtorch abort, an OOM or a NaN blow-up ends this process only.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, anyhow, bail};
use burn::tensor::Device;
use kiln_core::jobs::{
    EvalRequest, JobDir, JobId, JobKind, JobRequest, JobState, JobStatus, MetricRecord, TrainRequest,
};
use kiln_core::kinds::MetricKind;
use kiln_core::kinds::{Arch, DeviceName};
use kiln_core::layers::LayerWatch;
use kiln_core::names::ModelRef;
use kiln_core::registry::{
    DatasetRef, Extras, Registry, Trained, VersionDraft, VersionLink, VersionManifest, now_rfc3339,
};
use kiln_core::study::{BestCheckpoint, Objective, TrialTag};

use kiln_engine::checkpoint::{self, Checkpoint, Position};
use kiln_engine::data::{self, DataShape, Dataset, LoadOptions};
use kiln_engine::device::LIBTORCH_VERSION;
use kiln_engine::model::{ArchConfig, ZooModel};
use kiln_engine::task::Task;
use kiln_engine::train::{self, LoopEnd, LoopSettings, LoopSink};
use kiln_engine::weights;

/// Runs the job to its end and records the final status. Returns the final state.
/// When this worker started its job (the provenance's `startedOn`).
pub static STARTED_AT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub fn run(home: &Path, id: &JobId) -> anyhow::Result<JobState> {
    let job = JobDir::open(home, id)?;
    // Detached like nohup: a hang-up (e.g. sent to an orphaned, stopped process group when
    // the daemon dies) must not end the job.
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::new(AtomicBool::new(false)))?;
    // A training job turns SIGTERM into "checkpoint and stop"; the handler is in place before
    // the status says `running`, so a cancel sent as soon as it does is never lost. An eval
    // has nothing to checkpoint, so there a cancel just ends the process.
    let spec = job.spec()?;
    let eval = spec.request.kind() == JobKind::Eval;
    let stop = Arc::new(AtomicBool::new(false));
    if !eval {
        signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    }
    let mut status = job.status()?;
    status.state = JobState::Running;
    status.pid = Some(std::process::id());
    status.pid_start = kiln_core::jobs::process_start_time(std::process::id());
    status.updated_at = now_rfc3339();
    job.write_status(&status)?;
    let _ = STARTED_AT.set(status.updated_at.clone());
    if !eval {
        // A configured signing key that cannot be read fails the job now, not after training.
        crate::signing::configured_signer()?;
    }
    let train = match spec.request {
        JobRequest::Eval(request) => return run_eval(&job, &request, status),
        JobRequest::Compress(request) => return run_compress(home, &job, &request, &stop, status),
        JobRequest::Train(train) => train,
    };
    let spec_trial = train.trial.clone();
    let outcome = execute(home, &job, train, &stop, &mut status);
    if let Ok(latest) = job.status() {
        status.step = latest.step;
        status.epoch = latest.epoch;
    }
    let (state, message) = match outcome {
        Ok(Outcome::TrialDone(best)) => (JobState::Succeeded, trial_done_message(&spec_trial, best)),
        Ok(Outcome::Registered(m)) => {
            status.version = Some(ModelRef::version(m.model.clone(), m.version));
            (JobState::Succeeded, format!("registered {}@{}", m.model, m.version))
        }
        Ok(Outcome::Cancelled(p)) => {
            status.step = p.step;
            match job.prune_order() {
                Some(order) => (
                    JobState::Pruned,
                    format!("pruned at epoch {}: {}", order.epoch, order.reason),
                ),
                None => (
                    JobState::Cancelled,
                    format!(
                        "cancelled at step {} (checkpoint saved; continue with `kiln train --resume {id}`)",
                        p.step
                    ),
                ),
            }
        }
        Ok(Outcome::Diverged(step)) => (
            JobState::Failed,
            format!("diverged at step {step}: the loss became NaN or infinite; lower --lr"),
        ),
        Err(e) => (JobState::Failed, format!("{e:#}")),
    };
    status.state = state;
    status.message = message;
    status.updated_at = now_rfc3339();
    job.write_status(&status)?;
    Ok(state)
}

/// An eval job: score the version, attach the report, keep a copy as the job's result.
fn run_eval(job: &JobDir, request: &EvalRequest, mut status: JobStatus) -> anyhow::Result<JobState> {
    let args = crate::evaluate::EvalArgs {
        reference: request.reference.clone(),
        data: request.data.clone(),
        data_path: request.data_path.clone(),
        limit: request.limit,
        split: request.split,
    };
    (status.state, status.message) = match crate::evaluate::run(&args) {
        Ok(report) => {
            job.write_result(&report)?;
            status.version = Some(format!("{}@{}", report.model, report.version).parse()?);
            let figure = match (report.accuracy, report.rmse) {
                (Some(acc), _) => format!("accuracy {acc:.4}"),
                (None, Some(rmse)) => format!("rmse {rmse:.4}"),
                _ => String::new(),
            };
            let message = format!(
                "evaluated {}@{} on {} ({} rows): {figure}",
                report.model, report.version, report.dataset, report.rows
            );
            (JobState::Succeeded, message)
        }
        Err(e) => (JobState::Failed, format!("{e:#}")),
    };
    status.updated_at = now_rfc3339();
    job.write_status(&status)?;
    Ok(status.state)
}

/// A compress job: build, measure and register the child version.
fn run_compress(
    home: &Path,
    job: &JobDir,
    request: &kiln_core::compression::CompressRequest,
    stop: &Arc<AtomicBool>,
    mut status: JobStatus,
) -> anyhow::Result<JobState> {
    let outcome = crate::compress::run(home, job, request, stop, &mut status);
    if let Ok(latest) = job.status() {
        status.step = latest.step;
        status.epoch = latest.epoch;
    }
    (status.state, status.message) = match outcome {
        Ok(crate::compress::Outcome::Registered(m)) => {
            status.version = Some(ModelRef::version(m.model.clone(), m.version));
            let summary = m
                .draft
                .compression
                .as_ref()
                .map(|c| c.summary(Some(request_parent(&m))))
                .unwrap_or_default();
            (
                JobState::Succeeded,
                format!("registered {}@{} ({summary})", m.model, m.version),
            )
        }
        Ok(crate::compress::Outcome::Cancelled) => (
            JobState::Cancelled,
            "cancelled during the fine-tune; nothing registered (run it again to start over)".to_owned(),
        ),
        Err(e) => (JobState::Failed, format!("{e:#}")),
    };
    status.updated_at = now_rfc3339();
    job.write_status(&status)?;
    Ok(status.state)
}

fn request_parent(manifest: &VersionManifest) -> u32 {
    manifest.draft.parent.as_ref().map_or(0, |p| p.version)
}

enum Outcome {
    Registered(Box<VersionManifest>),
    /// A study's trial ran every epoch; its best epoch and value, if any epoch was scored.
    TrialDone(Option<(usize, f64)>),
    Cancelled(Position),
    Diverged(u64),
}

/// Everything resolved before the loop starts.
struct Plan {
    spec: TrainRequest,
    dataset: Dataset,
    arch: ArchConfig,
    device: Device,
    device_name: String,
    parent: Option<(VersionManifest, Vec<u8>)>,
    resume: Option<checkpoint::Restored>,
}

fn execute(
    home: &Path,
    job: &JobDir,
    spec: TrainRequest,
    stop: &Arc<AtomicBool>,
    status: &mut JobStatus,
) -> anyhow::Result<Outcome> {
    if let Some(threads) = spec.threads.or_else(slurm_cpus) {
        tch::set_num_threads(threads.clamp(1, 1024) as i32);
    }
    let registry = Registry::open(home)?;
    let plan = plan(home, &registry, spec)?;
    job.write_data_files(&plan.dataset.files)?;
    status.device = Some(plan.device_name.clone());
    job.write_status(status)?;
    plan.device.seed(plan.spec.seed);
    let model = plan.arch.init(&plan.device);
    match model {
        ZooModel::Mlp(m) => train_and_register(m, &plan, &registry, job, stop),
        ZooModel::Cnn(m) => train_and_register(m, &plan, &registry, job, stop),
        ZooModel::Rnn(m) => train_and_register(m, &plan, &registry, job, stop),
        ZooModel::Mf(m) => train_and_register(m, &plan, &registry, job, stop),
    }
}

fn plan(home: &Path, registry: &Registry, spec: TrainRequest) -> anyhow::Result<Plan> {
    let (device, device_name) = pick_device(spec.device)?;
    let device = device.autodiff();
    let parent = match &spec.from {
        Some(reference) => {
            let version = registry.resolve(reference)?;
            let manifest = registry.version(&reference.model, version)?;
            let weights = manifest
                .draft
                .blobs
                .get("weights")
                .ok_or_else(|| anyhow!("{reference} has no weights"))?;
            let bytes = registry.blobs().read(weights)?;
            Some((manifest, bytes))
        }
        None => None,
    };
    let vocab = match &parent {
        Some((m, _)) => data::stored_vocab(registry, m)?,
        None => None,
    };
    let options = LoadOptions {
        path: spec.data_path.as_deref(),
        seed: spec.seed,
        limit: spec.limit,
        vocab: vocab.as_ref(),
    };
    let dataset = data::load(&spec.data, &options)?;
    if let Some(pin) = &spec.pin {
        data::check_pin(&dataset.files, pin).map_err(|e| anyhow!(e))?;
    }
    let arch = arch_for(&spec, &dataset)?;
    if let Some((m, _)) = &parent
        && m.draft.architecture != arch.architecture()
    {
        bail!(
            "cannot fine-tune from {}@{}: its architecture {} {} differs from this job's {} {}",
            m.model,
            m.version,
            m.draft.architecture.name,
            m.draft.architecture.config,
            arch.arch(),
            arch.config_json()
        );
    }
    let resume = match &spec.resume {
        Some(old) => Some(checkpoint::load(&JobDir::open(home, old)?.checkpoints())?),
        None => None,
    };
    Ok(Plan {
        spec,
        dataset,
        arch,
        device,
        device_name,
        parent,
        resume,
    })
}

/// `cpu`, `cuda:N`, or (when unset) CUDA 0 if libtorch sees a GPU, else CPU.
pub fn pick_device(requested: Option<DeviceName>) -> anyhow::Result<(Device, String)> {
    let gpus = tch::Cuda::device_count();
    match requested {
        Some(DeviceName::Cpu) => Ok((Device::libtorch(), "cpu".into())),
        Some(DeviceName::Cuda(index)) => {
            if index as i64 >= gpus {
                bail!("device cuda:{index} requested but libtorch sees {gpus} CUDA device(s); use --device cpu");
            }
            Ok((Device::libtorch_cuda(index), format!("cuda:{index}")))
        }
        None if gpus > 0 => Ok((Device::libtorch_cuda(0), "cuda:0".into())),
        None => Ok((Device::libtorch(), "cpu".into())),
    }
}

/// The CPUs Slurm gave this job (`sbatch --cpus-per-task`), when it runs as a Slurm job: a
/// node shared with other jobs must not see every core taken by one.
fn slurm_cpus() -> Option<usize> {
    std::env::var("SLURM_CPUS_PER_TASK").ok()?.trim().parse().ok()
}

/// The architecture config: sizes implied by the data, then the user's overrides.
pub fn arch_for(spec: &TrainRequest, dataset: &Dataset) -> anyhow::Result<ArchConfig> {
    let classes = dataset.classes.len();
    let implied = match (spec.arch, &dataset.shape) {
        (
            Arch::Mlp,
            DataShape::Image {
                channels,
                height,
                width,
            },
        ) => serde_json::json!({ "inputs": channels * height * width, "classes": classes }),
        (Arch::Mlp, DataShape::Features(n)) => serde_json::json!({ "inputs": n, "classes": classes }),
        (
            Arch::Cnn,
            DataShape::Image {
                channels,
                height,
                width,
            },
        ) => serde_json::json!({ "channels": channels, "height": height, "width": width, "classes": classes }),
        (Arch::Rnn, DataShape::Tokens { vocab, .. }) => serde_json::json!({ "vocab": vocab, "classes": classes }),
        (Arch::Mf, DataShape::Pairs { users, items }) => serde_json::json!({ "users": users, "items": items }),
        (arch, shape) => bail!(
            "{arch} cannot learn from {} ({shape:?}): {}",
            dataset.id,
            fitting_arch(shape)
        ),
    };
    let mut config = implied.clone();
    if let (Some(target), Some(overrides)) = (config.as_object_mut(), spec.config.as_object()) {
        for (key, value) in overrides {
            if let Some(fixed) = implied.get(key).filter(|v| *v != value) {
                bail!("config key '{key}' is set by the data ({fixed}); remove it from --config");
            }
            target.insert(key.clone(), value.clone());
        }
    }
    Ok(ArchConfig::from_json(spec.arch, config)?)
}

fn fitting_arch(shape: &DataShape) -> &'static str {
    match shape {
        DataShape::Image { .. } => "use cnn or mlp",
        DataShape::Features(_) => "use mlp",
        DataShape::Tokens { .. } => "use rnn",
        DataShape::Pairs { .. } => "use mf",
    }
}

struct WorkerSink<'a> {
    job: &'a JobDir,
    total_steps: u64,
    /// A study trial's best-epoch keeper.
    best: Option<BestKeeper>,
    /// Every epoch's checkpoint, for promote from the curve (not for trials).
    epochs: Option<crate::epochs::Keeper>,
    /// Each layer's first and latest statistics, to warn when one explodes.
    layers: LayerWatch,
    /// The job's message is a layer's warning.
    warned: bool,
}

/// Keeps a trial's best epoch: its weights in `checkpoints/best.safetensors` and what a
/// promotion needs in `checkpoints/best.json`.
struct BestKeeper {
    objective: Objective,
    template: BestCheckpoint,
    best: Option<(usize, f64)>,
    /// An epoch better than any before, waiting for its checkpoint.
    pending: Option<BestCheckpoint>,
}

impl BestKeeper {
    fn observe(&mut self, record: &MetricRecord) {
        let Some(value) = self.objective.metric.of(record) else {
            return;
        };
        if self.best.is_some_and(|(_, b)| !self.objective.better(value, b)) {
            return;
        }
        self.best = Some((record.epoch, value));
        let mut best = self.template.clone();
        best.epoch = record.epoch;
        best.value = value;
        best.draft.metrics = val_metrics(record);
        self.pending = Some(best);
    }

    fn save(&mut self, dir: &Path, checkpoint: &Checkpoint<'_>) -> anyhow::Result<()> {
        let Some(best) = self
            .pending
            .take_if(|b| checkpoint.position.batch == 0 && b.epoch == checkpoint.position.epoch)
        else {
            return Ok(());
        };
        kiln_core::fsx::write_atomic(&dir.join("best.safetensors"), &checkpoint.model_bytes)?;
        kiln_core::fsx::write_atomic(&dir.join("best.json"), &serde_json::to_vec_pretty(&best)?)?;
        Ok(())
    }
}

/// The manifest metrics of one epoch's validation record.
pub(crate) fn val_metrics(record: &MetricRecord) -> std::collections::BTreeMap<String, f64> {
    [
        ("val_loss", record.val_loss),
        ("val_accuracy", record.accuracy),
        ("val_rmse", record.rmse),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
    .collect()
}

fn trial_done_message(trial: &Option<TrialTag>, best: Option<(usize, f64)>) -> String {
    match (trial, best) {
        (Some(tag), Some((epoch, value))) => format!(
            "trial {} finished: best {} {value:.4} at epoch {epoch} (register it with `kiln studies promote {} --trial {}`)",
            tag.trial, tag.objective.metric, tag.study, tag.trial
        ),
        _ => "trial finished without a scored epoch".to_owned(),
    }
}

impl LoopSink for WorkerSink<'_> {
    fn metric(&mut self, record: &MetricRecord) {
        if record.kind == MetricKind::Layers {
            self.layers_record(record);
            return;
        }
        if record.kind == MetricKind::Val
            && let Some(best) = self.best.as_mut()
        {
            best.observe(record);
        }
        if let Some(epochs) = self.epochs.as_mut() {
            epochs.observe(record);
        }
        record_progress(self.job, record, self.total_steps);
    }

    fn checkpoint(&mut self, checkpoint: &Checkpoint<'_>) -> anyhow::Result<()> {
        checkpoint::save(&self.job.checkpoints(), checkpoint)?;
        if let Some(epochs) = self.epochs.as_mut() {
            epochs.save(checkpoint);
        }
        match self.best.as_mut() {
            Some(best) => best.save(&self.job.checkpoints(), checkpoint),
            None => Ok(()),
        }
    }
}

impl WorkerSink<'_> {
    /// Appends a `layers` record (the `train` record of the same step moves the status); a
    /// layer whose gradients start to explode is logged and becomes the job's message while
    /// it runs, until no layer explodes any more.
    fn layers_record(&mut self, record: &MetricRecord) {
        if let Err(e) = self.job.append_metric(record) {
            eprintln!("kilnd worker: cannot record metrics: {e}");
        }
        let exploded = self.layers.observe(record);
        for layer in &exploded {
            eprintln!("kilnd worker: {}", layer.warning());
        }
        let message = match (exploded.first(), self.layers.exploding()) {
            (Some(layer), _) => layer.warning(),
            (None, None) if self.warned => String::new(),
            _ => return,
        };
        self.warned = !message.is_empty();
        if let Ok(mut status) = self.job.status() {
            status.message = message;
            status.updated_at = now_rfc3339();
            let _ = self.job.write_status(&status);
        }
    }
}

/// Appends a metric line and moves the status's step and epoch to it.
pub(crate) fn record_progress(job: &JobDir, record: &MetricRecord, total_steps: u64) {
    if let Err(e) = job.append_metric(record) {
        eprintln!("kilnd worker: cannot record metrics: {e}");
    }
    if let Ok(mut status) = job.status() {
        status.step = record.step;
        status.epoch = record.epoch;
        status.total_steps = Some(total_steps);
        status.updated_at = now_rfc3339();
        let _ = job.write_status(&status);
    }
}

fn train_and_register<M: Task>(
    mut model: M,
    plan: &Plan,
    registry: &Registry,
    job: &JobDir,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    let spec = &plan.spec;
    let mut optim = train::optimizer(spec.optimizer);
    let mut start = Position::default();
    if let Some((manifest, bytes)) = &plan.parent {
        let what = format!("{}@{}", manifest.model, manifest.version);
        weights::module_from_safetensors(&mut model, bytes.clone(), &what)?;
    }
    if let Some(restored) = &plan.resume {
        weights::module_from_safetensors(&mut model, restored.model_bytes.clone(), "checkpoint")?;
        optim = optim
            .load(&restored.optim_path)
            .map_err(|e| anyhow!("cannot load optimizer state: {e:?}"))?;
        start = restored.position;
    }
    let settings = LoopSettings {
        epochs: spec.epochs,
        batch_size: spec.batch_size,
        lr: spec.lr,
        schedule: spec.schedule,
        seed: spec.seed,
        masks: None,
        layer_stats: spec.layer_stats,
    };
    let device = plan.device.clone();
    let total_steps = (plan.dataset.train.len().div_ceil(spec.batch_size.max(1)) * spec.epochs) as u64;
    let best = match &spec.trial {
        Some(tag) => Some(BestKeeper {
            objective: tag.objective,
            template: best_template(plan, job)?,
            best: None,
            pending: None,
        }),
        None => None,
    };
    let epochs = match spec.trial {
        None => epoch_keeper(plan, job)?,
        Some(_) => None,
    };
    let mut sink = WorkerSink {
        job,
        total_steps,
        best,
        epochs,
        layers: LayerWatch::default(),
        warned: false,
    };
    let end = train::run(
        model,
        optim,
        &settings,
        &plan.dataset.train,
        &plan.dataset.val,
        start,
        &device,
        stop,
        &mut sink,
    )?;
    match end {
        LoopEnd::Cancelled { position } => Ok(Outcome::Cancelled(position)),
        LoopEnd::Diverged { step } => Ok(Outcome::Diverged(step)),
        LoopEnd::Finished { .. } if spec.trial.is_some() => {
            Ok(Outcome::TrialDone(sink.best.as_ref().and_then(|b| b.best)))
        }
        LoopEnd::Finished { model, val, train_loss } => {
            let bytes = weights::module_to_safetensors(&model.valid())?;
            let metrics = final_metrics(&plan.dataset, &val, train_loss);
            register(registry, plan, job, &bytes, metrics).map(|m| Outcome::Registered(Box::new(m)))
        }
    }
}

fn final_metrics(
    dataset: &Dataset,
    val: &kiln_engine::task::BatchScore,
    train_loss: f64,
) -> std::collections::BTreeMap<String, f64> {
    let mut metrics = std::collections::BTreeMap::from([("val_loss".to_owned(), val.mean_loss())]);
    if train_loss.is_finite() {
        metrics.insert("train_loss".into(), train_loss);
    }
    if dataset.classes.is_empty() {
        metrics.insert("val_rmse".into(), val.rmse());
        metrics.insert("val_mae".into(), val.mae());
    } else {
        metrics.insert("val_accuracy".into(), val.accuracy());
    }
    metrics
}

fn task_name(shape: &DataShape) -> &'static str {
    match shape {
        DataShape::Image { .. } => "image-classification",
        DataShape::Features(_) => "classification",
        DataShape::Tokens { .. } => "text-classification",
        DataShape::Pairs { .. } => "rating-regression",
    }
}

/// The keeper of every epoch's checkpoint, unless `[training] keep_epoch_checkpoints` is 0;
/// older jobs' epoch checkpoints beyond that many are removed first.
fn epoch_keeper(plan: &Plan, job: &JobDir) -> anyhow::Result<Option<crate::epochs::Keeper>> {
    let keep = match kiln_core::settings::Settings::load() {
        Ok(settings) => settings.training.keep_epoch_checkpoints,
        Err(e) => {
            eprintln!("kilnd worker: {e}; keeping the default number of jobs' epoch checkpoints");
            kiln_core::settings::KEEP_EPOCH_CHECKPOINTS
        }
    };
    let home = job.path.parent().and_then(Path::parent).unwrap_or(Path::new("."));
    crate::epochs::prune(home, keep, &job.id);
    if keep == 0 {
        return Ok(None);
    }
    Ok(Some(crate::epochs::Keeper::new(job, best_template(plan, job)?)))
}

/// What a trial's best checkpoint needs to become a version, its weights and metrics aside.
fn best_template(plan: &Plan, job: &JobDir) -> anyhow::Result<BestCheckpoint> {
    let vocab = match &plan.dataset.vocab {
        Some(vocab) => Some(serde_json::to_value(vocab)?),
        None => None,
    };
    Ok(BestCheckpoint {
        epoch: 0,
        value: f64::NAN,
        draft: draft(plan, job, Default::default()),
        classes: plan.dataset.classes.clone(),
        vocab,
        task: task_name(&plan.dataset.shape).into(),
        description: format!("{} on {}", plan.arch.arch(), plan.dataset.id),
    })
}

/// The manifest of what `plan` trains, with no blobs yet.
fn draft(plan: &Plan, job: &JobDir, metrics: std::collections::BTreeMap<String, f64>) -> VersionDraft {
    let spec = &plan.spec;
    let mut hyperparameters = std::collections::BTreeMap::from([
        ("epochs".to_owned(), serde_json::json!(spec.epochs)),
        ("batch_size".to_owned(), serde_json::json!(spec.batch_size)),
        ("lr".to_owned(), serde_json::json!(spec.lr)),
        ("optimizer".to_owned(), serde_json::json!(spec.optimizer)),
        ("schedule".to_owned(), serde_json::json!(spec.schedule)),
        ("train_rows".to_owned(), serde_json::json!(plan.dataset.train.len())),
    ]);
    if let Some(old) = &spec.resume {
        hyperparameters.insert("resumed_from_job".into(), serde_json::json!(old));
    }
    VersionDraft {
        architecture: plan.arch.architecture(),
        dataset: Some(DatasetRef {
            id: plan.dataset.id.clone(),
            digest: Some(plan.dataset.digest.clone()),
            files: plan.dataset.files.clone(),
        }),
        hyperparameters,
        seed: Some(spec.seed),
        metrics,
        parent: plan.parent.as_ref().map(|(m, _)| VersionLink {
            model: m.model.clone(),
            version: m.version,
        }),
        job_id: Some(job.id.to_string()),
        blobs: Default::default(),
        device: Some(plan.device_name.clone()),
        source: None,
        libtorch_version: Some(LIBTORCH_VERSION.to_owned()),
        study: None,
        compression: None,
        license: spec.license.clone(),
        checkpoint: None,
    }
}

fn register(
    registry: &Registry,
    plan: &Plan,
    job: &JobDir,
    weights: &[u8],
    metrics: std::collections::BTreeMap<String, f64>,
) -> anyhow::Result<VersionManifest> {
    let vocab = match &plan.dataset.vocab {
        Some(vocab) => Some(serde_json::to_value(vocab)?),
        None => None,
    };
    let build = crate::signing::build_of(job, STARTED_AT.get().cloned());
    let signer = crate::signing::signer_for_registration();
    let trained = Trained {
        draft: draft(plan, job, metrics),
        weights,
        classes: &plan.dataset.classes,
        vocab: vocab.as_ref(),
        task: task_name(&plan.dataset.shape),
        description: format!("{} on {}", plan.arch.arch(), plan.dataset.id),
        extras: Extras {
            card: plan.spec.card.as_deref(),
            build: Some(&build),
            signer: signer.as_ref().map(|(_, key)| key),
            exact: false,
        },
    };
    registry
        .register_trained(&plan.spec.model, trained)
        .context("cannot register the trained version")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::inspect::LayerStats;
    use kiln_core::jobs::JobSpec;
    use kiln_core::kinds::DataSource;

    fn layers(step: u64, grad: f64) -> MetricRecord {
        let stats = |name: &str, grad: f64| LayerStats {
            name: name.into(),
            weight_norm: 20.0,
            grad_norm: grad,
            update_ratio: 1e-3,
            dead: None,
        };
        MetricRecord {
            kind: MetricKind::Layers,
            step,
            epoch: 0,
            time: step as f64,
            train_loss: None,
            val_loss: None,
            accuracy: None,
            rmse: None,
            lr: None,
            samples_per_sec: None,
            layers: Some(vec![stats("hidden.0", grad), stats("output", 0.4)]),
        }
    }

    #[test]
    fn an_exploding_layer_is_the_running_jobs_message_while_it_explodes() {
        let home = tempfile::tempdir().expect("tempdir");
        let request = TrainRequest::new(Arch::Mlp, DataSource::FashionMnist, "fm".parse().expect("name"));
        let spec = JobSpec {
            id: JobId::generate(),
            request: JobRequest::Train(request),
        };
        let job = JobDir::create(home.path(), &spec).expect("job");
        let mut sink = WorkerSink {
            job: &job,
            total_steps: 100,
            best: None,
            epochs: None,
            layers: LayerWatch::default(),
            warned: false,
        };
        sink.metric(&layers(1, 0.5));
        assert_eq!(
            job.status().expect("status").message,
            "",
            "a healthy layer says nothing"
        );
        sink.metric(&layers(2, 5e4));
        let message = job.status().expect("status").message;
        assert_eq!(
            message,
            "layer hidden.0: exploding gradients (grad norm 5.0e+04, 1.0e+05x its first) — the run may diverge"
        );
        sink.metric(&layers(3, 0.6));
        assert_eq!(
            job.status().expect("status").message,
            "",
            "cleared once no layer explodes"
        );
        let (records, _) = job.metrics_since(0).expect("metrics");
        assert_eq!(records.len(), 3, "every record kept");
        assert_eq!(records[1], layers(2, 5e4));
    }
}
