//! The control API (`/api/v1/…`, JSON, bearer token). Errors are `{"error": "..."}` with the
//! right status code; no request can take the daemon down.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_core::jobs::{JobDir, JobError, JobId, JobKind, JobSpec};
use kiln_core::names::{ModelRef, Name, NameError};
use kiln_core::registry::{ModelSummary, Registry, RegistryError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::supervisor::job_view;
use crate::serve::DeployError;

/// An error answer: status code plus message.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let code = match &e {
            RegistryError::InvalidName(_) => StatusCode::BAD_REQUEST,
            e if e.is_not_found() => StatusCode::NOT_FOUND,
            RegistryError::AliasInUse { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(code, e.to_string())
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        let code = if matches!(e, JobError::Unknown(_)) {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Self(code, e.to_string())
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        Self(StatusCode::BAD_REQUEST, e.to_string())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// All routes, behind the token check.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/models", get(list_models))
        .route("/api/v1/models/{model}", get(get_model))
        .route(
            "/api/v1/models/{model}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route("/api/v1/blobs/{digest}", get(get_blob))
        .route("/api/v1/jobs", get(list_jobs).post(create_job))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/jobs/{id}/metrics", get(job_metrics))
        .route("/api/v1/jobs/{id}/log", get(job_log))
        .route("/api/v1/telemetry", get(telemetry))
        .route("/api/v1/events", get(events))
        .route("/api/v1/deployments", get(list_deployments).post(deploy))
        .route("/api/v1/deployments/journal", get(journal))
        .route("/api/v1/deployments/{model}/rollback", post(rollback))
        .route("/api/v1/deployments/{model}/try", post(try_sample))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such route; see /api/v1/health".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match super::bearer(request.headers()) {
        Some(token) if super::constant_time_eq(token.as_bytes(), state.token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError(StatusCode::UNAUTHORIZED, "wrong bearer token".into()).into_response(),
        None => ApiError(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (see $KILN_HOME/daemon/token)".into(),
        )
        .into_response(),
    }
}

async fn health(State(state): State<AppState>) -> ApiResult {
    Ok(Json(json!({
        "kiln": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "home": state.home,
        "running_jobs": state.supervisor.running_ids(),
    })))
}

fn registry(state: &AppState) -> Result<Registry, ApiError> {
    Ok(Registry::open(&state.home)?)
}

async fn list_models(State(state): State<AppState>) -> ApiResult {
    let listing = registry(&state)?.scan()?;
    let models: Vec<ModelSummary> = listing.models.iter().map(ModelSummary::from).collect();
    Ok(Json(json!({ "models": models, "problems": listing.problems })))
}

async fn get_model(State(state): State<AppState>, Path(model): Path<String>) -> ApiResult {
    let (detail, problems) = registry(&state)?.model(&Name::new(&model)?)?;
    Ok(Json(json!({ "model": detail, "problems": problems })))
}

async fn get_version(State(state): State<AppState>, Path((model, version)): Path<(String, String)>) -> ApiResult {
    let registry = registry(&state)?;
    let reference: ModelRef = format!("{model}@{version}").parse()?;
    let number = registry.resolve(&reference)?;
    let manifest = registry.version(&reference.model, number)?;
    Ok(Json(
        json!({ "version": manifest, "evals": registry.evals(&reference.model, number)? }),
    ))
}

async fn list_jobs(State(state): State<AppState>) -> ApiResult {
    let jobs: Vec<Value> = kiln_core::jobs::list(&state.home)
        .iter()
        .filter_map(|j| job_view(j).ok())
        .collect();
    Ok(Json(json!({ "jobs": jobs })))
}

fn open_job(state: &AppState, id: &str) -> Result<JobDir, ApiError> {
    let id: JobId = id.parse()?;
    Ok(JobDir::open(&state.home, &id)?)
}

async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(job_view(&open_job(&state, &id)?)?))
}

/// Body: a job spec without `id` (the daemon assigns it).
async fn create_job(
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(mut body) =
        body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body is not valid JSON: {e}")))?;
    let object = body
        .as_object_mut()
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "request body must be a JSON object".into()))?;
    object.insert("id".into(), json!(JobId::generate()));
    if object.get("kind").and_then(Value::as_str) == Some("eval") && !object.contains_key("model") {
        // The model an eval job belongs to is the one it scores.
        let model = object.get("reference").and_then(Value::as_str).unwrap_or("");
        object.insert("model".into(), json!(model.split('@').next().unwrap_or("")));
    }
    let spec: JobSpec = serde_json::from_value(body)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid job spec: {e}")))?;
    check_spec(&spec).map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let job = state.supervisor.submit(&spec)?;
    Ok((StatusCode::CREATED, Json(job_view(&job)?)))
}

fn check_spec(spec: &JobSpec) -> Result<(), String> {
    match spec.kind {
        JobKind::Eval => {
            let reference = spec
                .reference
                .as_deref()
                .ok_or("an eval job needs `reference` (model@version)")?;
            reference.parse::<ModelRef>().map_err(|e| e.to_string())?;
        }
        JobKind::Train if spec.arch.is_empty() && spec.resume.is_none() => {
            return Err("a training job needs `arch` (mlp, cnn, rnn or mf)".into());
        }
        JobKind::Train => {}
    }
    if spec.data.is_empty() && spec.resume.is_none() {
        return Err("`data` names the dataset (fashion-mnist, fortunes, ratings-synth or csv:<file>)".into());
    }
    if spec.epochs == 0 || spec.batch_size == 0 || spec.lr.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err("epochs and batch_size must be at least 1 and lr above 0".into());
    }
    Ok(())
}

async fn cancel_job(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let job = open_job(&state, &id)?;
    state.supervisor.cancel(&job)?;
    Ok(Json(job_view(&job)?))
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

/// Metric lines after byte offset `since`; `next` is the offset to ask for next time.
async fn job_metrics(State(state): State<AppState>, Path(id): Path<String>, Query(q): Query<Since>) -> ApiResult {
    let job = open_job(&state, &id)?;
    let (records, next) = job.metrics_since(q.since)?;
    Ok(Json(json!({ "records": records, "next": next })))
}

/// Worker log text after byte offset `since` (up to 256 KiB per call).
async fn job_log(State(state): State<AppState>, Path(id): Path<String>, Query(q): Query<Since>) -> ApiResult {
    let job = open_job(&state, &id)?;
    let (text, next) = job.log_since(q.since, 256 << 10)?;
    Ok(Json(json!({ "text": text, "next": next })))
}

#[derive(Deserialize)]
struct TelemetryQuery {
    since_ms: Option<u64>,
}

/// GPU availability, the bounded sample history and the sampler's own cost.
async fn telemetry(State(state): State<AppState>, Query(q): Query<TelemetryQuery>) -> ApiResult {
    let snapshot = state.telemetry.snapshot(q.since_ms);
    let mut doc =
        serde_json::to_value(snapshot).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    doc["sample_cost_us"] = json!(state.telemetry.mean_sample_cost_us());
    Ok(Json(doc))
}

/// The event stream (Server-Sent Events); see `events.rs` for the event names.
async fn events(State(state): State<AppState>) -> impl IntoResponse {
    state.hub.stream()
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Registry(e) => e.into(),
            DeployError::Refused(m) => Self(StatusCode::CONFLICT, m),
            DeployError::Failed(e) => Self(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")),
        }
    }
}

/// Deployments in force with live figures, where inference listens, and restore problems.
async fn list_deployments(State(state): State<AppState>) -> ApiResult {
    let server = &state.server;
    let listener = server.listener.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let problems = server.problems.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(Json(json!({
        "inference_address": listener.as_ref().ok(),
        "inference_error": listener.as_ref().err(),
        "ready": server.is_ready(),
        "deployments": server.views(),
        "problems": problems,
    })))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

/// The journal, newest last (the last `limit` entries when given).
async fn journal(State(state): State<AppState>, Query(q): Query<Limit>) -> ApiResult {
    let (entries, problems) = kiln_core::deploy::read(&state.home).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the journal: {e}"),
        )
    })?;
    let skip = q.limit.map_or(0, |n| entries.len().saturating_sub(n));
    Ok(Json(json!({ "entries": entries[skip..], "problems": problems })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    model: String,
    /// A number or an alias; the newest version when left out.
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    batching: Option<kiln_core::deploy::Batching>,
}

/// Body `{"model", "version"? (number or alias), "batching"?}`: load, warm up, switch.
async fn deploy(State(state): State<AppState>, body: Result<Json<Value>, JsonRejection>) -> ApiResult {
    let Json(body) =
        body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body is not valid JSON: {e}")))?;
    let body: DeployBody = serde_json::from_value(body)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid deploy request: {e}")))?;
    let reference: ModelRef = match &body.version {
        Some(version) => format!("{}@{version}", body.model).parse()?,
        None => body.model.parse()?,
    };
    let version = registry(&state)?.resolve(&reference)?;
    let server = state.server.clone();
    let entry = tokio::task::spawn_blocking(move || {
        server.deploy(
            &reference.model,
            version,
            body.batching,
            kiln_core::deploy::Action::Deploy,
            "deploy",
        )
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(json!(entry)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    #[serde(default)]
    to: Option<u32>,
}

/// Body `{"to"?}`: back to the version before the one in force, or to `to`.
async fn rollback(State(state): State<AppState>, Path(model): Path<String>, body: axum::body::Bytes) -> ApiResult {
    let body: RollbackBody = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid rollback request: {e}")))?
    };
    let model = Name::new(&model)?;
    let server = state.server.clone();
    let entry = tokio::task::spawn_blocking(move || server.rollback(&model, body.to))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(json!(entry)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TryBody {
    #[serde(default)]
    index: usize,
}

/// Body `{"index"?}`: one row of the deployed version's dataset through the live endpoint.
async fn try_sample(State(state): State<AppState>, Path(model): Path<String>, body: axum::body::Bytes) -> ApiResult {
    let body: TryBody = if body.iter().all(u8::is_ascii_whitespace) {
        TryBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))?
    };
    let server = state.server.clone();
    let answer = tokio::task::spawn_blocking(move || crate::serve::sample::try_sample(&server, &model, body.index))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(answer))
}

/// One blob (an eval report, a vocabulary, weights), verified against its digest on the way.
async fn get_blob(State(state): State<AppState>, Path(digest): Path<String>) -> Result<Response, ApiError> {
    let digest: kiln_core::names::Digest = digest.parse()?;
    let registry = registry(&state)?;
    if !registry.blobs().contains(&digest) {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no blob {digest}")));
    }
    let bytes = tokio::task::spawn_blocking(move || registry.blobs().read(&digest))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let kind = if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, kind)], bytes).into_response())
}

#[derive(Deserialize)]
struct Force {
    #[serde(default)]
    force: bool,
}

/// Removes a version (`?force=true` also drops the aliases pointing at it). A version being
/// served is refused: deploy another one first.
async fn delete_version(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    Query(q): Query<Force>,
) -> ApiResult {
    let registry = registry(&state)?;
    let reference: ModelRef = format!("{model}@{version}").parse()?;
    let number = registry.resolve(&reference)?;
    if state
        .server
        .get(reference.model.as_str())
        .is_some_and(|d| d.version == number)
    {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "{}@{number} is being served; deploy or roll back to another version first",
                reference.model
            ),
        ));
    }
    let removed = tokio::task::spawn_blocking(move || {
        let lock = registry.lock()?;
        registry.remove_version(&lock, &reference.model, number, q.force)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(
        json!({ "model": model, "removed": number, "aliases_removed": removed }),
    ))
}
