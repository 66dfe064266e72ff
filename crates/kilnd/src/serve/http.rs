//! The inference listener: Open Inference Protocol (KServe v2) REST routes and `/metrics`.
//!
//! `{m}` is the deployment serving model `m` (the version the journal and the `production`
//! alias point at); `/v2/models/{m}/versions/{v}/…` must name that same version. Errors are
//! `{"error": "..."}`: 400 bad input, 401 bad token, 404 unknown model or version, 413 body
//! too large, 503 queue full or not ready, 504 timed out.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kiln_core::api::ErrorBody;
use kiln_core::api::kserve::{Live, ModelMetadata, ModelReady, Ready, ServerMetadata, TensorMetadata};

use super::Server;
use super::batcher::{Deployment, Refused, Timing};
use super::canary::{self, Canary};
use super::tensor::{InferRequest, Rows, TensorSpec, argmax, softmax};

/// An error answer in the protocol's shape.
struct InferError(StatusCode, String);

impl IntoResponse for InferError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

fn bad(message: impl Into<String>) -> InferError {
    InferError(StatusCode::BAD_REQUEST, message.into())
}

pub fn router(server: Arc<Server>) -> Router {
    let body_limit = server.limits.body_bytes;
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(|| async { Json(Live { live: true }) }))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}", get(model_metadata_v))
        .route("/v2/models/{model}/versions/{version}/ready", get(model_ready_v))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_v))
        .route("/metrics", get(metrics))
        .fallback(|| async { InferError(StatusCode::NOT_FOUND, "no such route; see GET /v2".into()) })
        .layer(middleware::from_fn_with_state(server.clone(), require_token))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(server)
}

/// With an inference token configured, every route needs `Authorization: Bearer <token>`.
async fn require_token(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    let Some(token) = &server.token else {
        return next.run(request).await;
    };
    if crate::auth::carries(request.headers(), token) {
        next.run(request).await
    } else {
        InferError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong inference bearer token".into(),
        )
        .into_response()
    }
}

async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "kiln".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec!["binary_tensor_data".into()],
    })
}

async fn server_ready(State(server): State<Arc<Server>>) -> Response {
    let ready = server.is_ready();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(Ready { ready })).into_response()
}

/// The deployment for `model` (and `version`, when named).
fn find(server: &Server, model: &str, version: Option<&str>) -> Result<Arc<Deployment>, InferError> {
    let deployment = server.get(model).ok_or_else(|| {
        InferError(
            StatusCode::NOT_FOUND,
            format!("model '{model}' is not deployed; `kiln deploy {model}@<version>` serves it"),
        )
    })?;
    match version {
        Some(v) if v != deployment.version.to_string() => Err(InferError(
            StatusCode::NOT_FOUND,
            format!(
                "version '{v}' of '{model}' is not being served (version {} is)",
                deployment.version
            ),
        )),
        _ => Ok(deployment),
    }
}

/// Where an inference request goes: during a canary, a share of the unversioned requests
/// (and those naming its version) go to the candidate.
fn route(server: &Server, model: &str, version: Option<&str>) -> Result<Arc<Deployment>, InferError> {
    match server.route(model, version) {
        Some(d) if version.is_none_or(|v| v == d.version.to_string()) => Ok(d),
        _ => find(server, model, version),
    }
}

fn metadata(d: &Deployment) -> Json<ModelMetadata> {
    let tensor = |spec: &TensorSpec| TensorMetadata {
        name: spec.name.into(),
        datatype: spec.datatype.name().into(),
        shape: spec.shape.clone(),
    };
    Json(ModelMetadata {
        name: d.model.to_string(),
        versions: vec![d.version.to_string()],
        platform: "kiln_libtorch".into(),
        inputs: vec![tensor(&d.signature.input)],
        outputs: d.signature.outputs.iter().map(tensor).collect(),
    })
}

async fn model_metadata(
    State(s): State<Arc<Server>>,
    Path(model): Path<String>,
) -> Result<Json<ModelMetadata>, InferError> {
    Ok(metadata(&*find(&s, &model, None)?))
}

async fn model_metadata_v(
    State(s): State<Arc<Server>>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<ModelMetadata>, InferError> {
    Ok(metadata(&*route(&s, &model, Some(&version))?))
}

fn ready(d: &Deployment) -> Json<ModelReady> {
    Json(ModelReady {
        name: d.model.to_string(),
        ready: true,
    })
}

async fn model_ready(State(s): State<Arc<Server>>, Path(model): Path<String>) -> Result<Json<ModelReady>, InferError> {
    Ok(ready(&*find(&s, &model, None)?))
}

async fn model_ready_v(
    State(s): State<Arc<Server>>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<ModelReady>, InferError> {
    Ok(ready(&*route(&s, &model, Some(&version))?))
}

async fn infer(
    State(s): State<Arc<Server>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run_infer(s, model, None, headers, body).await
}

async fn infer_v(
    State(s): State<Arc<Server>>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run_infer(s, model, Some(version), headers, body).await
}

async fn run_infer(
    server: Arc<Server>,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let deployment = match route(&server, &model, version.as_deref()) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let shadow = server.shadow_for(&deployment);
    // The version that answered: during a canary, the candidate runs some of the batches of
    // the version in force's queue.
    let mut served_by = deployment.version;
    let response = match infer_on(&server, &deployment, shadow, &headers, body, started, &mut served_by).await {
        Ok(_) if server.injects_fault(&deployment.model, served_by) => InferError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected fault (KILN_TEST_CANARY_FAULT_PERCENT, a test-only setting)".into(),
        )
        .into_response(),
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    let code = response.status().as_u16();
    server
        .metrics
        .request(deployment.model.as_str(), served_by, code, started.elapsed());
    response
}

async fn infer_on(
    server: &Server,
    deployment: &Deployment,
    shadow: Option<Arc<Canary>>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    started: Instant,
    served_by: &mut u32,
) -> Result<Response, InferError> {
    let body = body.map_err(|e| InferError(e.status(), format!("cannot read the request body: {}", e.body_text())))?;
    let (json_part, binary) = split_binary(headers, &body)?;
    let mut request = match super::fast_json::parse(json_part) {
        Some(request) => request,
        None => serde_json::from_slice::<InferRequest>(json_part)
            .map_err(|e| bad(format!("request is not a valid infer request: {e}")))?,
    };
    let outputs = deployment.signature.requested(&request).map_err(bad)?;
    let rows = deployment.signature.rows(&mut request, binary).map_err(bad)?;
    let deadline = started + server.limits.timeout;
    let timed_out = || {
        InferError(
            StatusCode::GATEWAY_TIMEOUT,
            format!("no answer within {:?}", server.limits.timeout),
        )
    };
    if Instant::now() >= deadline {
        return Err(timed_out());
    }
    let copy = shadow.and_then(|c| mirror(c, &rows, deadline));
    let answer = deployment.submit(rows, deadline).map_err(|refused| match refused {
        Refused::Full => InferError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the queue for {} is full; retry shortly", deployment.model),
        ),
        Refused::Closed => InferError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the deployment is shutting down".into(),
        ),
    })?;
    let served = match tokio::time::timeout_at(deadline.into(), answer).await {
        Ok(Ok(Ok(served))) => served,
        Ok(Ok(Err(failed))) => {
            *served_by = failed.version;
            return Err(InferError(StatusCode::INTERNAL_SERVER_ERROR, failed.message));
        }
        // The batcher drops requests whose deadline passed while they were queued.
        Ok(Err(_)) if Instant::now() >= deadline => return Err(timed_out()),
        Ok(Err(_)) => {
            return Err(InferError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the batcher dropped the request".into(),
            ));
        }
        Err(_) => return Err(timed_out()),
    };
    if let Some(copy) = copy {
        copy.compare_later(server.metrics.clone(), &served.rows, deadline);
    }
    *served_by = served.version;
    let mut response = respond(deployment, served.version, &request, &outputs, &served.rows);
    response
        .headers_mut()
        .insert("server-timing", server_timing(served.timing));
    Ok(response)
}

/// A copy of a request on its way to a shadow.
struct ShadowCopy {
    shadow: Arc<Canary>,
    answer: tokio::sync::oneshot::Receiver<super::batcher::Answer>,
    sent: Instant,
}

/// Sends a copy of `rows` to the shadow's candidate, unless its queue is full (then the copy
/// is counted as skipped: live traffic never waits for a shadow).
fn mirror(shadow: Arc<Canary>, rows: &Rows, deadline: Instant) -> Option<ShadowCopy> {
    let copy = Rows {
        batch: rows.batch,
        width: rows.width,
        values: rows.values.clone(),
    };
    let sent = Instant::now();
    let answer = shadow.candidate.submit(copy, deadline).ok();
    shadow.note_copy(answer.is_some());
    answer.map(|answer| ShadowCopy { shadow, answer, sent })
}

impl ShadowCopy {
    /// Waits for the shadow's answer off the request's path, then records its latency (as the
    /// candidate's request) and whether it agrees with `in_force`'s rows.
    fn compare_later(self, metrics: Arc<super::metrics::Metrics>, in_force: &[Vec<f32>], deadline: Instant) {
        let in_force: Vec<f32> = in_force.iter().map(|row| canary::answer(row)).collect();
        tokio::spawn(async move {
            let candidate = &self.shadow.candidate;
            let (code, rows) = match tokio::time::timeout_at(deadline.into(), self.answer).await {
                Ok(Ok(Ok(served))) => (200, Some(served.rows)),
                Ok(Ok(Err(_))) => (500, None),
                Ok(Err(_)) | Err(_) => (504, None),
            };
            metrics.request(candidate.model.as_str(), candidate.version, code, self.sent.elapsed());
            if let Some(rows) = rows {
                let answers: Vec<f32> = rows.iter().map(|row| canary::answer(row)).collect();
                self.shadow.compare(&in_force, &answers);
            }
        });
    }
}

/// `Server-Timing` (W3C) of an answer, in milliseconds: how long the request waited in the
/// queue, and how long the forward pass that answered it took. A client can tell from it how
/// much of what it waited was the model, and how much the queue, the network and HTTP.
fn server_timing(timing: Timing) -> HeaderValue {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let value = format!(
        "queue;dur={:.3}, forward;dur={:.3}",
        ms(timing.queue),
        ms(timing.forward)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("forward"))
}

/// Splits a binary-extension body into its JSON header and the tensor bytes after it.
fn split_binary<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), InferError> {
    match headers.get("inference-header-content-length") {
        None => Ok((body, &[])),
        Some(value) => {
            let length: usize = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|&n| n <= body.len())
                .ok_or_else(|| bad("Inference-Header-Content-Length is not a length within the body"))?;
            Ok(body.split_at(length))
        }
    }
}

/// Builds the response: JSON data, or the binary extension when the client asked for it.
/// Serialized straight from borrowed typed fields: building a `serde_json::Value` first cost
/// an allocation per key and value of every answer.
fn respond(
    d: &Deployment,
    version: u32,
    request: &InferRequest,
    outputs: &[&TensorSpec],
    rows: &[Vec<f32>],
) -> Response {
    let mut binary = Vec::new();
    let tensors: Vec<OutputTensor> = outputs
        .iter()
        .map(|spec| {
            let (shape, data) = output_values(d, spec, rows);
            let mut tensor = OutputTensor {
                name: spec.name,
                datatype: spec.datatype.name(),
                shape,
                parameters: None,
                data: None,
            };
            if request.binary_output(spec.name) {
                let before = binary.len();
                data.append_bytes(&mut binary);
                tensor.parameters = Some(BinaryData {
                    binary_data_size: binary.len() - before,
                });
            } else {
                tensor.data = Some(data);
            }
            tensor
        })
        .collect();
    let answer = InferResponse {
        model_name: d.model.as_str(),
        model_version: version,
        id: request.id.as_deref(),
        outputs: tensors,
    };
    let mut body = match serde_json::to_vec(&answer) {
        Ok(body) => body,
        Err(e) => {
            return InferError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot write the answer: {e}"),
            )
            .into_response();
        }
    };
    let content_type = if binary.is_empty() {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let header_length = body.len();
    body.extend_from_slice(&binary);
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if !binary.is_empty() {
        headers.insert("inference-header-content-length", HeaderValue::from(header_length));
    }
    response
}

/// The infer answer (Open Inference Protocol `$inference_response`).
#[derive(serde::Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    #[serde(serialize_with = "as_string")]
    model_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<OutputTensor>,
}

#[derive(serde::Serialize)]
struct OutputTensor {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<OutputData>,
}

#[derive(serde::Serialize)]
struct BinaryData {
    binary_data_size: usize,
}

/// Versions are strings in the protocol.
fn as_string<S: serde::Serializer>(version: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(version)
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum OutputData {
    Floats(Vec<f32>),
    Ints(Vec<i64>),
}

impl OutputData {
    /// Appends the values as the binary extension writes them: little-endian, packed.
    fn append_bytes(&self, out: &mut Vec<u8>) {
        match self {
            Self::Floats(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            Self::Ints(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        }
    }
}

/// One output tensor from the model's raw rows (logits for classifiers, ratings for `mf`).
fn output_values(d: &Deployment, spec: &TensorSpec, rows: &[Vec<f32>]) -> (Vec<usize>, OutputData) {
    let batch = rows.len();
    match (spec.name, d.signature.classes) {
        ("probabilities", Some(classes)) => {
            let data = rows.iter().flat_map(|r| softmax(r)).collect();
            (vec![batch, classes], OutputData::Floats(data))
        }
        ("class", Some(_)) => {
            let data = rows.iter().map(|r| argmax(r) as i64).collect();
            (vec![batch], OutputData::Ints(data))
        }
        _ => {
            let data = rows.iter().map(|r| r.first().copied().unwrap_or(f32::NAN)).collect();
            (vec![batch], OutputData::Floats(data))
        }
    }
}

async fn metrics(State(server): State<Arc<Server>>) -> Response {
    let text = server.metrics.render(&server.queues());
    ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], text).into_response()
}
