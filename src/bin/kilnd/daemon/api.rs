//! The control API (`/api/v1/…`, JSON, bearer token). Errors are `{"error": "..."}` with the
//! right status code; no request can take the daemon down.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln::jobs::{JobDir, JobError, JobId, JobSpec};
use kiln::names::{ModelRef, Name, NameError};
use kiln::registry::{ModelSummary, Registry, RegistryError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;

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
        .route("/api/v1/models/{model}/versions/{version}", get(get_version))
        .route("/api/v1/jobs", get(list_jobs).post(create_job))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/jobs/{id}/metrics", get(job_metrics))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such route; see /api/v1/health".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError(StatusCode::UNAUTHORIZED, "wrong bearer token".into()).into_response(),
        None => ApiError(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (see $KILN_HOME/daemon/token)".into(),
        )
        .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

fn job_view(job: &JobDir) -> Result<Value, ApiError> {
    Ok(json!({ "id": job.id, "spec": job.spec()?, "status": job.status()? }))
}

async fn list_jobs(State(state): State<AppState>) -> ApiResult {
    let jobs: Vec<Value> = kiln::jobs::list(&state.home)
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
    job_view(&open_job(&state, &id)?).map(Json)
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
    let spec: JobSpec = serde_json::from_value(body)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid job spec: {e}")))?;
    if spec.epochs == 0 || spec.batch_size == 0 || spec.lr.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "epochs and batch_size must be at least 1 and lr above 0".into(),
        ));
    }
    let job = state.supervisor.submit(&spec)?;
    Ok((StatusCode::CREATED, Json(job_view(&job)?)))
}

async fn cancel_job(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let job = open_job(&state, &id)?;
    state.supervisor.cancel(&job)?;
    job_view(&job).map(Json)
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
