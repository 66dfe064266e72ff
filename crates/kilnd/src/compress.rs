//! A compress job (`kiln prune`, `kiln quantize`), run by `kilnd worker`: build the smaller
//! child from the parent's weights, fine-tune it when pruned, measure it against the parent
//! on the same split and device, and register it as a child version carrying that comparison.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, anyhow, bail};
use burn::tensor::Device;
use kiln_core::compression::{
    Comparison, CompressRequest, Compression, Figures, Method, Precision, PruneScope, PruneSettings,
};
use kiln_core::jobs::{JobDir, JobStatus, MetricRecord};
use kiln_core::kinds::DataSource;
use kiln_core::names::ModelRef;
use kiln_core::registry::{EvalReport, Extras, Registry, Trained, VersionLink, VersionManifest, now_rfc3339};

use kiln_engine::checkpoint::{Checkpoint, Position};
use kiln_engine::compress::{self, Scope, Selection};
use kiln_engine::data::{self, Dataset, LoadOptions, Split};
use kiln_engine::device::LIBTORCH_VERSION;
use kiln_engine::eval;
use kiln_engine::loaded::{LoadedModel, half_dtype};
use kiln_engine::model::{ArchConfig, ZooModel};
use kiln_engine::task::Task;
use kiln_engine::train::{self, LoopEnd, LoopSettings, LoopSink};
use kiln_engine::weights;

/// How a compress job ended.
pub enum Outcome {
    Registered(Box<VersionManifest>),
    Cancelled,
}

/// Timed forward passes per batch size and model, after warm-up.
const LATENCY_RUNS: usize = 30;

/// The parent, its data, and where the work runs.
struct Plan<'a> {
    request: &'a CompressRequest,
    parent: VersionManifest,
    parent_bytes: Vec<u8>,
    dataset: Dataset,
    device: Device,
    device_name: String,
}

/// Runs the job; `status` is kept current with the phase in `message`.
pub fn run(
    home: &std::path::Path,
    job: &JobDir,
    request: &CompressRequest,
    stop: &Arc<AtomicBool>,
    status: &mut JobStatus,
) -> anyhow::Result<Outcome> {
    if let Some(threads) = request.threads {
        tch::set_num_threads(threads.clamp(1, 1024) as i32);
    }
    let registry = Registry::open(home)?;
    let plan = plan(&registry, request)?;
    status.device = Some(plan.device_name.clone());
    phase(
        job,
        status,
        &format!("{} of {}@{}", request.method, plan.parent.model, plan.parent.version),
    )?;
    let parent = LoadedModel::from_bytes(plan.parent.clone(), plan.parent_bytes.clone(), plan.device.clone())?;
    let child = match &request.method {
        Method::Prune(settings) => match prune(&plan, settings, job, stop, status)? {
            Some(child) => child,
            None => return Ok(Outcome::Cancelled),
        },
        Method::Quantize(q) => quantize(&plan, &parent, q.precision)?,
    };
    phase(job, status, "measuring the child against its parent")?;
    let loaded = child.load(&plan)?;
    let mut child = child;
    let report = compare(&plan, &parent, &loaded, &child.bytes, &mut child.notes)?;
    let manifest = register(&registry, &plan, job, child, report)?;
    Ok(Outcome::Registered(Box::new(manifest)))
}

fn phase(job: &JobDir, status: &mut JobStatus, message: &str) -> anyhow::Result<()> {
    status.message = message.to_owned();
    status.updated_at = now_rfc3339();
    job.write_status(status)?;
    Ok(())
}

fn plan<'a>(registry: &Registry, request: &'a CompressRequest) -> anyhow::Result<Plan<'a>> {
    let version = registry.resolve(&request.reference)?;
    let parent = registry.version(&request.reference.model, version)?;
    request.check().map_err(|e| anyhow!(e))?;
    request.check_parent(&parent).map_err(|e| anyhow!(e))?;
    let digest = parent
        .draft
        .blobs
        .get("weights")
        .ok_or_else(|| anyhow!("{}@{version} has no weights blob", parent.model))?;
    let parent_bytes = registry.blobs().read(digest)?;
    let source = data_source(request, &parent)?;
    let vocab = data::stored_vocab(registry, &parent)?;
    let options = LoadOptions {
        path: request.data_path.as_deref(),
        seed: parent.draft.seed.unwrap_or(0),
        limit: request.limit,
        vocab: vocab.as_ref(),
    };
    let dataset = data::load(&source, &options)?;
    let (device, device_name) = crate::worker::pick_device(request.device)?;
    Ok(Plan {
        request,
        parent,
        parent_bytes,
        dataset,
        device,
        device_name,
    })
}

/// The data named in the request, else the parent's.
pub fn data_source(request: &CompressRequest, parent: &VersionManifest) -> anyhow::Result<DataSource> {
    if let Some(data) = &request.data {
        return Ok(data.clone());
    }
    let Some(dataset) = &parent.draft.dataset else {
        bail!(
            "{}@{} records no dataset (imported?); pass --data to name the data to fine-tune and measure on",
            parent.model,
            parent.version
        );
    };
    dataset.id.parse().map_err(|e| {
        anyhow!(
            "{}@{} was trained on {}, which kiln cannot load again ({e}); pass --data",
            parent.model,
            parent.version,
            dataset.id
        )
    })
}

/// A child on its way to the registry.
struct Child {
    arch: ArchConfig,
    bytes: Vec<u8>,
    compute: Precision,
    compute_note: String,
    notes: Vec<String>,
}

impl Child {
    /// The child loaded as it will compute: the parent's manifest with the child's
    /// architecture (it is numbered and given its `compression` record on registration).
    fn load(&self, plan: &Plan<'_>) -> anyhow::Result<LoadedModel> {
        let mut manifest = plan.parent.clone();
        manifest.version = 0;
        manifest.draft.architecture = self.arch.architecture();
        manifest.draft.compression = None;
        LoadedModel::computing_in(manifest, self.bytes.clone(), self.compute, plan.device.clone())
    }
}

/// The parent's architecture, rebuilt from its manifest.
fn parent_arch(plan: &Plan<'_>) -> anyhow::Result<ArchConfig> {
    let architecture = &plan.parent.draft.architecture;
    Ok(ArchConfig::from_json(architecture.name, architecture.config.clone())?)
}

/// Prunes, then fine-tunes; `None` when a cancel arrived during the fine-tune.
fn prune(
    plan: &Plan<'_>,
    settings: &PruneSettings,
    job: &JobDir,
    stop: &Arc<AtomicBool>,
    status: &mut JobStatus,
) -> anyhow::Result<Option<Child>> {
    let (arch, bytes) = match settings.structured {
        true => compress::prune_units(&parent_arch(plan)?, &plan.parent_bytes, settings.sparsity)?,
        false => (parent_arch(plan)?, plan.parent_bytes.clone()),
    };
    let device = plan.device.clone().autodiff();
    let mut model = arch.init(&device);
    weights::load_bytes(&mut model, bytes)?;
    let pruned = match model {
        ZooModel::Mlp(m) => finetune(m, plan, settings, job, stop, status)?,
        ZooModel::Cnn(m) => finetune(m, plan, settings, job, stop, status)?,
        ZooModel::Rnn(m) => finetune(m, plan, settings, job, stop, status)?,
        ZooModel::Mf(m) => finetune(m, plan, settings, job, stop, status)?,
    };
    let compute_note = match settings.structured {
        true => "f32, dense: the smaller layers are ordinary layers",
        false => "f32, dense: stored packed (non-zero values and a bitmask), unpacked at load",
    };
    let child = |dense: Vec<u8>| -> anyhow::Result<Child> {
        let bytes = match settings.structured {
            true => dense,
            false => compress::to_sparse(&dense)?,
        };
        Ok(Child {
            arch: arch.clone(),
            bytes,
            compute: Precision::F32,
            compute_note: compute_note.into(),
            notes: Vec::new(),
        })
    };
    pruned.map(child).transpose()
}

/// Zeroes the weights an unstructured pruning removes and fine-tunes with the masks kept;
/// returns the weights, or `None` when cancelled.
fn finetune<M: Task>(
    model: M,
    plan: &Plan<'_>,
    settings: &PruneSettings,
    job: &JobDir,
    stop: &Arc<AtomicBool>,
    status: &mut JobStatus,
) -> anyhow::Result<Option<Vec<u8>>> {
    let masks = match settings.structured {
        true => None,
        false => {
            let scope = match settings.scope {
                PruneScope::Global => Scope::Global,
                PruneScope::Layer => Scope::PerLayer,
            };
            let selection = Selection {
                biases: settings.biases,
                embeddings: settings.embeddings,
            };
            Some(compress::magnitude(&model, settings.sparsity, scope, selection)?)
        }
    };
    let model = match &masks {
        Some(masks) => compress::apply(model, masks),
        None => model,
    };
    if settings.finetune_epochs == 0 {
        return Ok(Some(weights::module_to_safetensors(&model.valid())?));
    }
    let lr = match settings.lr {
        Some(lr) => lr,
        None => plan
            .parent
            .draft
            .hyperparameters
            .get("lr")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(1e-3),
    };
    let loop_settings = LoopSettings {
        epochs: settings.finetune_epochs,
        batch_size: settings.batch_size,
        lr,
        schedule: kiln_core::kinds::Schedule::Cosine,
        seed: plan.parent.draft.seed.unwrap_or(0),
        masks,
        // A fine-tune's pruned weights stay zero: their layers would read as dead or vanishing.
        layer_stats: false,
    };
    let total_steps = (plan.dataset.train.len().div_ceil(settings.batch_size) * settings.finetune_epochs) as u64;
    status.total_steps = Some(total_steps);
    phase(
        job,
        status,
        &format!("fine-tuning for {} epoch(s)", settings.finetune_epochs),
    )?;
    let optimizer = plan
        .parent
        .draft
        .hyperparameters
        .get("optimizer")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let mut sink = FinetuneSink { job, total_steps };
    let end = train::run(
        model,
        train::optimizer(optimizer),
        &loop_settings,
        &plan.dataset.train,
        &plan.dataset.val,
        Position::default(),
        &plan.device.clone().autodiff(),
        stop,
        &mut sink,
    )?;
    match end {
        LoopEnd::Finished { model, .. } => Ok(Some(weights::module_to_safetensors(&model.valid())?)),
        LoopEnd::Cancelled { .. } => Ok(None),
        LoopEnd::Diverged { step } => {
            bail!("the fine-tune diverged at step {step}: the loss became NaN; pass a lower --lr")
        }
    }
}

/// Metrics and progress of a fine-tune; it keeps no checkpoints (a cancelled compress job is
/// run again, not resumed).
struct FinetuneSink<'a> {
    job: &'a JobDir,
    total_steps: u64,
}

impl LoopSink for FinetuneSink<'_> {
    fn metric(&mut self, record: &MetricRecord) {
        crate::worker::record_progress(self.job, record, self.total_steps);
    }

    fn checkpoint(&mut self, _checkpoint: &Checkpoint<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Stores the parent's weights in `precision`, and decides what the child computes in.
fn quantize(plan: &Plan<'_>, parent: &LoadedModel, precision: Precision) -> anyhow::Result<Child> {
    let arch = parent_arch(plan)?;
    match precision {
        Precision::Int8 => {
            let bytes = quantize_int8(&parent.model)?;
            let notes = match plan.device_name.as_str() {
                "cpu" => vec![int8_kernel_note(&bytes)?],
                _ => Vec::new(),
            };
            Ok(Child {
                arch,
                bytes,
                compute: Precision::F32,
                compute_note: "int8 weights with per-channel f32 scales, dequantized to f32 at load".into(),
                notes,
            })
        }
        half => {
            // From the loaded parent: its stored blob may be packed or half already.
            let bytes = compress::to_half(&weights::to_safetensors(&parent.model)?, half)?;
            let (compute, compute_note, notes) = half_compute(plan, parent, &arch, &bytes, half)?;
            Ok(Child {
                arch,
                bytes,
                compute,
                compute_note,
                notes,
            })
        }
    }
}

/// What libtorch's int8 weight-only matmul would do for the largest linear layer here,
/// measured against the f32 matmul the dequantized weights run.
fn int8_kernel_note(bytes: &[u8]) -> anyhow::Result<String> {
    let largest = compress::quantized_tensors(bytes)?
        .into_iter()
        .filter(|(_, q)| q.axis == 1 && q.shape.len() == 2)
        .max_by_key(|(_, q)| q.values.len());
    let Some((name, q)) = largest else {
        return Ok("no linear layer to try libtorch's int8 matmul on".into());
    };
    Ok(match compress::int8_matmul_probe(&q, 64, LATENCY_RUNS) {
        Ok((f32_ms, int8_ms)) => format!(
            "libtorch's int8 weight-only matmul (_weight_int8pack_mm) on {name} at batch 64: {int8_ms:.3} ms \
             against {f32_ms:.3} ms in f32 ({:.2}x); kiln's forward runs the dequantized f32 weights",
            f32_ms / int8_ms.max(1e-9)
        ),
        Err(why) => format!("libtorch's int8 weight-only matmul is not usable here ({why}); dequantized to f32"),
    })
}

fn quantize_int8(model: &ZooModel) -> anyhow::Result<Vec<u8>> {
    Ok(match model {
        ZooModel::Mlp(m) => compress::quantize_model_to_safetensors(m)?,
        ZooModel::Cnn(m) => compress::quantize_model_to_safetensors(m)?,
        ZooModel::Rnn(m) => compress::quantize_model_to_safetensors(m)?,
        ZooModel::Mf(m) => compress::quantize_model_to_safetensors(m)?,
    })
}

/// Half precision computes on CUDA; on the CPU only where a batch-64 forward measured faster
/// than f32 here and now (otherwise the weights are stored in half and computed in f32).
fn half_compute(
    plan: &Plan<'_>,
    parent: &LoadedModel,
    arch: &ArchConfig,
    bytes: &[u8],
    half: Precision,
) -> anyhow::Result<(Precision, String, Vec<String>)> {
    let dtype = half_dtype(half).ok_or_else(|| anyhow!("{half} is not a half precision"))?;
    let mut model = arch.init(&plan.device);
    weights::load_bytes(&mut model, bytes.to_vec())?;
    let model = match model.cast(dtype) {
        Ok(model) => model,
        Err(reason) => {
            let note = format!("stored as {half}, computed in f32: {reason}");
            return Ok((Precision::F32, note, Vec::new()));
        }
    };
    if plan.device_name.starts_with("cuda") {
        return Ok((
            half,
            format!("{half} weights and forward on {}", plan.device_name),
            Vec::new(),
        ));
    }
    let split = report_split(&plan.dataset).1;
    let rows: Vec<usize> = (0..split.len().min(64)).collect();
    let (f32_ms, half_ms) = paired_p50(&parent.model, &model, split, &rows, &plan.device);
    let ratio = half_ms / f32_ms.max(1e-9);
    let measured = format!(
        "a batch-64 forward in {half} took {half_ms:.3} ms against {f32_ms:.3} ms in f32 on this cpu ({ratio:.2}x)"
    );
    Ok(match ratio < 1.0 {
        true => (half, format!("{half} weights and forward on cpu"), vec![measured]),
        false => (
            Precision::F32,
            format!("stored as {half}, computed in f32: {half} is not faster on this cpu"),
            vec![measured],
        ),
    })
}

/// The split the report scores: the test split when the data has one.
fn report_split(dataset: &Dataset) -> (&'static str, &Split) {
    match &dataset.test {
        Some(test) => ("test", test),
        None => ("validation", &dataset.val),
    }
}

/// Median milliseconds of a forward pass over `rows` for `a` and `b`, timed alternately
/// after a warm-up so both see the same machine.
fn paired_p50(a: &ZooModel, b: &ZooModel, split: &Split, rows: &[usize], device: &Device) -> (f64, f64) {
    for _ in 0..3 {
        eval::time_forward(a, split, rows, device);
        eval::time_forward(b, split, rows, device);
    }
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..LATENCY_RUNS {
        ta.push(eval::time_forward(a, split, rows, device));
        tb.push(eval::time_forward(b, split, rows, device));
    }
    (median_ms(ta), median_ms(tb))
}

fn median_ms(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds.get(seconds.len() / 2).copied().unwrap_or(0.0) * 1000.0
}

/// Scores and times parent and child on the same split and device.
fn compare(
    plan: &Plan<'_>,
    parent: &LoadedModel,
    child: &LoadedModel,
    child_bytes: &[u8],
    notes: &mut Vec<String>,
) -> anyhow::Result<(Comparison, EvalReport)> {
    let (split_name, split) = report_split(&plan.dataset);
    let mut split = split.clone();
    if let Some(limit) = plan.request.limit {
        split.truncate(limit);
    }
    if split.is_empty() {
        bail!(
            "the {split_name} split of {} is empty: nothing to measure on",
            plan.dataset.id
        );
    }
    let on = eval::ReportOn {
        dataset: &plan.dataset.id,
        split: split_name,
        device: &plan.device_name,
    };
    let score = |loaded: &LoadedModel, version: u32| {
        let name = loaded.manifest.model.to_string();
        eval::report(
            &loaded.model,
            &name,
            version,
            &split,
            &plan.dataset.classes,
            on,
            &loaded.device,
        )
    };
    let parent_report = score(parent, plan.parent.version);
    let child_report = score(child, 0);
    let one: Vec<usize> = vec![0];
    let batch: Vec<usize> = (0..split.len().min(64)).collect();
    let (p1, c1) = paired_p50(&parent.model, &child.model, &split, &one, &plan.device);
    let (p64, c64) = paired_p50(&parent.model, &child.model, &split, &batch, &plan.device);
    if batch.len() < 64 {
        notes.push(format!(
            "the split has {} rows: \"batch 64\" is a batch of {}",
            split.len(),
            batch.len()
        ));
    }
    let figures = |report: &EvalReport, bytes: &[u8], b1: f64, b64: f64| -> anyhow::Result<Figures> {
        let layers = compress::layer_states(bytes)?;
        Ok(Figures {
            size_bytes: bytes.len() as u64,
            size_zstd_bytes: compress::zstd_size(bytes)?,
            params: layers.iter().map(|l| l.params as u64).sum(),
            nonzeros: layers.iter().map(|l| l.nonzeros as u64).sum(),
            accuracy: report.accuracy,
            macro_f1: report.macro_f1,
            rmse: report.rmse,
            p50_ms_batch1: b1,
            p50_ms_batch64: b64,
        })
    };
    let comparison = Comparison {
        dataset: plan.dataset.id.clone(),
        split: split_name.into(),
        rows: split.len(),
        device: plan.device_name.clone(),
        parent: figures(&parent_report, &plan.parent_bytes, p1, p64)?,
        child: figures(&child_report, child_bytes, c1, c64)?,
        notes: std::mem::take(notes),
    };
    Ok((comparison, child_report))
}

/// Registers the child under the request's model (default: the parent's) with its lineage,
/// its comparison, and its own evaluation attached like any `kiln eval` report.
fn register(
    registry: &Registry,
    plan: &Plan<'_>,
    job: &JobDir,
    child: Child,
    (report, mut eval_report): (Comparison, EvalReport),
) -> anyhow::Result<VersionManifest> {
    let parent = &plan.parent;
    let model = plan.request.model.clone().unwrap_or_else(|| parent.model.clone());
    let classes: Vec<String> = match parent.draft.blobs.get("classes") {
        Some(digest) => serde_json::from_slice(&registry.blobs().read(digest)?)?,
        None => Vec::new(),
    };
    let vocab: Option<serde_json::Value> = match parent.draft.blobs.get("vocab") {
        Some(digest) => Some(serde_json::from_slice(&registry.blobs().read(digest)?)?),
        None => None,
    };
    let mut draft = parent.draft.clone();
    draft.architecture = child.arch.architecture();
    draft.blobs = Default::default();
    draft.parent = Some(VersionLink {
        model: parent.model.clone(),
        version: parent.version,
    });
    draft.job_id = Some(job.id.to_string());
    draft.device = Some(plan.device_name.clone());
    draft.source = None;
    draft.study = None;
    draft.libtorch_version = Some(LIBTORCH_VERSION.to_owned());
    draft.metrics = [
        ("test_accuracy", report.child.accuracy),
        ("test_macro_f1", report.child.macro_f1),
        ("test_rmse", report.child.rmse),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
    .collect();
    draft.compression = Some(Compression {
        method: plan.request.method.clone(),
        layers: compress::layer_states(&child.bytes)?,
        compute: child.compute,
        compute_note: child.compute_note,
        report,
    });
    let record = registry.model_record(&parent.model)?;
    let build = crate::signing::build_of(job, crate::worker::STARTED_AT.get().cloned());
    let signer = crate::signing::signer_for_registration();
    let trained = Trained {
        draft,
        weights: &child.bytes,
        classes: &classes,
        vocab: vocab.as_ref(),
        task: &record.task,
        description: record.description.clone(),
        extras: Extras {
            build: Some(&build),
            signer: signer.as_ref().map(|(_, key)| key),
            ..Extras::default()
        },
    };
    let manifest = registry
        .register_trained(&model, trained)
        .context("cannot register the compressed version")?;
    eval_report.model = manifest.model.to_string();
    eval_report.version = manifest.version;
    let reference = ModelRef::version(manifest.model.clone(), manifest.version);
    crate::evaluate::attach(registry, &reference, manifest.version, &eval_report)?;
    Ok(manifest)
}
