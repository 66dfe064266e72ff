//! Job routes. A submission is checked before anything queues: the architecture and every
//! other closed set are typed (an unknown one does not even decode), and the dataset must be
//! installed, the version to evaluate or fine-tune from must exist, the job to resume must
//! have left a checkpoint. Only then does the daemon assign an id and write the job folder.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kiln_core::api::{
    EpochList, EvalRequest, JobList, JobRequest, JobView, LogChunk, MetricsChunk, Since, TrainRequest, VersionManifest,
};
use kiln_core::compression::CompressRequest;
use kiln_core::jobs::{JobDir, JobId};
use kiln_core::kinds::DeviceName;
use kiln_core::names::ModelRef;
use kiln_core::registry::RegistryError;
use kiln_engine::data::{self, DataError};

use super::{ApiError, AppState, Body, Query, blocking, registry};
use crate::epochs::RegisterError;

pub async fn list(State(state): State<AppState>) -> Result<Json<JobList>, ApiError> {
    let supervisor = state.supervisor.clone();
    blocking(move || {
        Ok(Json(JobList {
            jobs: supervisor.list(),
        }))
    })
    .await
}

fn job_id(id: &str) -> Result<JobId, ApiError> {
    Ok(id.parse()?)
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.supervisor.get(&job_id(&id)?)?))
}

/// Queues a job after checking it can run; answers 201 with its view.
pub async fn create(
    State(state): State<AppState>,
    Body(request): Body<JobRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let checking = state.clone();
    let request = blocking(move || check(&checking, request)).await?;
    Ok((StatusCode::CREATED, Json(state.supervisor.submit(request)?)))
}

fn check(state: &AppState, mut request: JobRequest) -> Result<JobRequest, ApiError> {
    if let JobRequest::Train(train) = &mut request {
        pin_data(train)?;
    }
    match &request {
        JobRequest::Train(train) => check_train(state, train)?,
        JobRequest::Eval(eval) => check_eval(state, eval)?,
        JobRequest::Compress(compress) => check_compress(state, compress)?,
    }
    Ok(request)
}

fn check_train(state: &AppState, t: &TrainRequest) -> Result<(), ApiError> {
    t.check_limits().map_err(ApiError::unprocessable)?;
    if !t.config.is_object() {
        return Err(ApiError::unprocessable(format!(
            "config must be a JSON object of {} settings, e.g. {{\"hidden\": 64}}, not {}",
            t.arch, t.config
        )));
    }
    check_device(state, t.device)?;
    if let Some(old) = &t.resume
        && !state.supervisor.resumable(old)?
    {
        return Err(ApiError::conflict(format!(
            "job {old} left no training checkpoint to resume from"
        )));
    }
    if let Some(parent) = &t.from {
        exists(state, parent)?;
        signed_parent(state, parent)?;
    }
    available(&t.data, t.data_path.as_deref())
}

/// An empty pin becomes the dataset's files as they are now; a given pin must still hold
/// (422 naming the file that changed).
fn pin_data(t: &mut TrainRequest) -> Result<(), ApiError> {
    let Some(pin) = &t.pin else {
        return Ok(());
    };
    let now = data::file_digests(&t.data, t.data_path.as_deref()).map_err(|e| match e {
        DataError::Missing { .. } => ApiError::not_found(e.to_string()),
        other => ApiError::unprocessable(other.to_string()),
    })?;
    if pin.is_empty() {
        if now.is_empty() {
            return Err(ApiError::unprocessable(format!(
                "{} is generated, not read from files: there is nothing to pin",
                t.data
            )));
        }
        t.pin = Some(now);
        return Ok(());
    }
    data::check_pin(&now, pin).map_err(ApiError::unprocessable)
}

/// A CUDA device asked for exists. With the slurm executor the job runs on a node with the
/// GPUs `--gres` gives it, not this machine's: the worker checks there.
fn check_device(state: &AppState, device: Option<DeviceName>) -> Result<(), ApiError> {
    if state.supervisor.uses_slurm() {
        return Ok(());
    }
    if let Some(DeviceName::Cuda(index)) = device {
        let gpus = tch::Cuda::device_count();
        if index as i64 >= gpus {
            return Err(ApiError::unprocessable(format!(
                "device cuda:{index} requested but libtorch sees {gpus} CUDA device(s); use --device cpu"
            )));
        }
    }
    Ok(())
}

fn check_eval(state: &AppState, e: &EvalRequest) -> Result<(), ApiError> {
    if e.limit == Some(0) {
        return Err(ApiError::unprocessable("limit must be at least 1"));
    }
    exists(state, &e.reference)?;
    available(&e.data, e.data_path.as_deref())
}

/// A compression is checked on its own, then against its parent (which must exist: a missing
/// parent is a mistake in the request, 422, so the CLI exits 2), then for its data.
fn check_compress(state: &AppState, c: &CompressRequest) -> Result<(), ApiError> {
    c.check().map_err(ApiError::unprocessable)?;
    check_device(state, c.device)?;
    let registry = registry(state)?;
    let version = registry.resolve(&c.reference).map_err(|e| match e {
        RegistryError::UnknownModel(_)
        | RegistryError::UnknownVersion { .. }
        | RegistryError::UnknownAlias { .. }
        | RegistryError::NoVersions(_) => ApiError::unprocessable(format!("cannot compress {}: {e}", c.reference)),
        other => other.into(),
    })?;
    let parent = registry.version(&c.reference.model, version)?;
    c.check_parent(&parent).map_err(ApiError::unprocessable)?;
    signed_parent(state, &c.reference)?;
    let source = crate::compress::data_source(c, &parent).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    available(&source, c.data_path.as_deref())
}

/// The version a reference names exists (404 naming the versions there are, if not).
/// In strict mode (`require_signed`), a job builds only on a parent signed by a trusted key
/// whose files still match.
fn signed_parent(state: &AppState, reference: &ModelRef) -> Result<(), ApiError> {
    if !state.server.signing.require_signed {
        return Ok(());
    }
    let registry = registry(state)?;
    let version = registry.version(&reference.model, registry.resolve(reference)?)?;
    state
        .server
        .signing
        .gate(&registry, &version)
        .map(drop)
        .map_err(|why| ApiError::unprocessable(format!("cannot build on the parent: {why}")))
}

fn exists(state: &AppState, reference: &ModelRef) -> Result<(), ApiError> {
    registry(state)?.resolve(reference)?;
    Ok(())
}

/// The dataset is installed where the job will look (404 saying how to install it, if not).
fn available(source: &kiln_core::kinds::DataSource, path: Option<&std::path::Path>) -> Result<(), ApiError> {
    data::check_available(source, path).map_err(|e| match e {
        DataError::Missing { .. } => ApiError::not_found(e.to_string()),
        other => ApiError::unprocessable(other.to_string()),
    })
}

pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.supervisor.cancel(&job_id(&id)?)?))
}

fn open(state: &AppState, id: &str) -> Result<JobDir, ApiError> {
    Ok(JobDir::open(&state.home, &job_id(id)?)?)
}

/// Metric lines after byte offset `since`; `next` is the offset to ask for next time.
pub async fn metrics(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Since>,
) -> Result<Json<MetricsChunk>, ApiError> {
    let job = open(&state, &id)?;
    blocking(move || {
        let (records, next) = job.metrics_since(q.since)?;
        Ok(Json(MetricsChunk {
            job: job.id,
            records,
            next,
        }))
    })
    .await
}

/// Worker log text after byte offset `since` (up to 256 KiB per call).
pub async fn log(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Since>,
) -> Result<Json<LogChunk>, ApiError> {
    let job = open(&state, &id)?;
    blocking(move || {
        let (text, next) = job.log_since(q.since, 256 << 10)?;
        Ok(Json(LogChunk { text, next }))
    })
    .await
}

/// The epochs of a training job whose checkpoints are kept (promote from the curve).
pub async fn epochs(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<EpochList>, ApiError> {
    let id = job_id(&id)?;
    let home = state.home.clone();
    blocking(move || {
        let job = JobDir::open(&home, &id)?;
        let spec = job.spec()?;
        let model = match &spec.request {
            JobRequest::Train(train) => train.model.clone(),
            _ => {
                return Err(ApiError::unprocessable(format!(
                    "job {id} is not a training job; only training keeps epoch checkpoints"
                )));
            }
        };
        let epochs = crate::epochs::list(&job);
        let note = if epochs.is_empty() {
            crate::epochs::why_none(&job, &spec)
        } else {
            None
        };
        Ok(Json(EpochList {
            job: id,
            model,
            epochs,
            note,
        }))
    })
    .await
}

/// Registers one kept epoch of a training job as the next version of its model.
pub async fn register_epoch(
    State(state): State<AppState>,
    Path((id, epoch)): Path<(String, String)>,
) -> Result<(StatusCode, Json<VersionManifest>), ApiError> {
    let id = job_id(&id)?;
    let epoch: usize = epoch
        .parse()
        .map_err(|_| ApiError::bad_request(format!("'{epoch}' is not an epoch number")))?;
    let home = state.home.clone();
    let hub = state.hub.clone();
    let manifest = blocking(move || {
        let job = JobDir::open(&home, &id)?;
        crate::epochs::register(&home, &job, epoch).map_err(|e| match e {
            RegisterError::NotFound(m) => ApiError::not_found(m),
            RegisterError::Unprocessable(e) => ApiError::unprocessable(format!("{e:#}")),
            RegisterError::Failed(e) => ApiError::internal(format!("{e:#}")),
        })
    })
    .await?;
    hub.publish(&kiln_core::api::Event::Registry(kiln_core::api::RegistryChanged {
        at: kiln_core::registry::now_rfc3339(),
    }));
    Ok((StatusCode::CREATED, Json(manifest)))
}
