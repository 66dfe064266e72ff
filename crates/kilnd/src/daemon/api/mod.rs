//! The control API (`/api/v1/…`, JSON, bearer token): the routes of `kiln_core::api`, each
//! handler returning `Json<T>` of the contract's type. Errors are [`ErrorBody`]s with the
//! right status code; a body or query that does not decode becomes one here, in one place
//! ([`Body`], [`Query`]); no request can take the daemon down.
//!
//! While kilnd runs it is the single writer of `$KILN_HOME`: every mutation — version and
//! alias removal, aliases, imports, jobs, deploys and rollbacks — arrives here and passes
//! the same checks, whichever client sent it.

mod inspect;
mod jobs;
mod registry;
mod serving;
mod studies;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kiln_core::api::{ErrorBody, Health, Telemetry, TelemetryQuery};
use kiln_core::jobs::JobError;
use kiln_core::names::NameError;
use kiln_core::registry::{Registry, RegistryError};
use serde::de::DeserializeOwned;

use super::AppState;
use crate::serve::DeployError;

/// An error answer: status code plus message.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self(StatusCode::UNPROCESSABLE_ENTITY, message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self(StatusCode::CONFLICT, message.into())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
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
        Self::bad_request(e.to_string())
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Registry(e) => e.into(),
            DeployError::Refused(m) => Self::conflict(m),
            DeployError::Failed(e) => Self::unprocessable(format!("{e:#}")),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(format!("the request's work stopped: {e}"))
    }
}

/// A JSON request body of the contract's type `T`. An empty body reads as `{}`, so routes
/// whose fields are all optional take no body at all. Malformed JSON is a 400; JSON of the
/// wrong shape (a missing field, an unknown architecture) a 422 naming the problem.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError(e.status(), format!("cannot read the request body: {e}")))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text).map(Body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::unprocessable(format!("invalid request: {e}")),
            _ => ApiError::bad_request(format!("request body is not valid JSON: {e}")),
        })
    }
}

/// A query string of the contract's type `T`; one that does not decode is a 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
    }
}

/// The registry of the daemon's home.
fn registry(state: &AppState) -> Result<Registry, ApiError> {
    Ok(Registry::open(&state.home)?)
}

/// Runs blocking file or compute work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await?
}

/// All routes, behind the token check.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/telemetry", get(telemetry))
        .route("/api/v1/events", get(events))
        .route("/api/v1/models", get(registry::list_models))
        .route("/api/v1/versions", get(registry::list_versions))
        .route("/api/v1/models/{model}", get(registry::get_model))
        .route(
            "/api/v1/models/{model}/versions/{version}",
            get(registry::get_version).delete(registry::delete_version),
        )
        .route(
            "/api/v1/models/{model}/aliases/{alias}",
            delete(registry::remove_alias).put(registry::set_alias),
        )
        .route("/api/v1/models/{model}/import", post(registry::import))
        .route("/api/v1/registry/verify", get(registry::verify))
        .route("/api/v1/signatures", get(registry::list_signatures))
        .route(
            "/api/v1/models/{model}/versions/{version}/signature",
            get(registry::get_signature).post(registry::sign),
        )
        .route("/api/v1/blobs/{digest}", get(registry::get_blob))
        .route("/api/v1/jobs", get(jobs::list).post(jobs::create))
        .route("/api/v1/jobs/{id}", get(jobs::get))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/jobs/{id}/metrics", get(jobs::metrics))
        .route("/api/v1/jobs/{id}/log", get(jobs::log))
        .route(
            "/api/v1/models/{model}/versions/{version}/inspect",
            get(inspect::inspect),
        )
        .route(
            "/api/v1/models/{model}/versions/{version}/samples/{index}",
            get(inspect::sample),
        )
        .route("/api/v1/jobs/{id}/epochs", get(jobs::epochs))
        .route("/api/v1/jobs/{id}/epochs/{epoch}/register", post(jobs::register_epoch))
        .route("/api/v1/studies", get(studies::list).post(studies::create))
        .route("/api/v1/studies/{study}", get(studies::get))
        .route("/api/v1/studies/{study}/stop", post(studies::stop))
        .route("/api/v1/studies/{study}/resume", post(studies::resume))
        .route("/api/v1/studies/{study}/promote", post(studies::promote))
        .route("/api/v1/deployments", get(serving::list).post(serving::deploy))
        .route("/api/v1/deployments/journal", get(serving::journal))
        .route("/api/v1/deployments/gates", post(serving::check_gates))
        .route("/api/v1/canaries", get(serving::canaries))
        .route("/api/v1/canaries/{model}/promote", post(serving::promote_canary))
        .route("/api/v1/canaries/{model}/abort", post(serving::abort_canary))
        .route("/api/v1/deployments/{model}/rollback", post(serving::rollback))
        .route("/api/v1/deployments/{model}/try", post(serving::try_sample))
        .fallback(|| async { ApiError::not_found("no such route; see /api/v1/health") })
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if crate::auth::carries(request.headers(), &state.token) {
        return next.run(request).await;
    }
    let why = match crate::auth::bearer(request.headers()) {
        Some(_) => "wrong bearer token",
        None => "missing bearer token (see $KILN_HOME/daemon/token)",
    };
    ApiError(StatusCode::UNAUTHORIZED, why.into()).into_response()
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        kiln: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        home: state.home.clone(),
        running_jobs: state.supervisor.running_ids(),
    })
}

/// GPU availability, the bounded sample history and the sampler's own cost.
async fn telemetry(State(state): State<AppState>, Query(q): Query<TelemetryQuery>) -> Json<Telemetry> {
    Json(state.telemetry.snapshot(q.since_ms))
}

/// The event stream (Server-Sent Events of `kiln_core::api::Event`).
async fn events(State(state): State<AppState>) -> impl IntoResponse {
    state.hub.stream()
}
