//! The Open Inference Protocol (KServe v2) bodies kiln's own tools read and kilnd's metadata
//! routes write: server and model metadata, readiness, and the infer request and answer as a
//! generic client sees them. kilnd reads infer requests and writes infer answers with its own
//! single-pass code on the hot path (`crates/kilnd/src/serve/`), to the same field names.

use serde::{Deserialize, Serialize};

/// `GET /v2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

/// `GET /v2/health/live`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub live: bool,
}

/// `GET /v2/health/ready`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    pub ready: bool,
}

/// `GET /v2/models/{m}/ready`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReady {
    pub name: String,
    pub ready: bool,
}

/// One declared tensor; `-1` marks a dimension of any size (the batch, or a sequence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{m}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// One input of an infer request, with JSON data (flat or nested, row-major).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferInput {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<u64>,
    pub data: serde_json::Value,
}

/// `POST /v2/models/{m}/infer` with JSON tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub inputs: Vec<InferInput>,
}

/// One output of an infer answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferOutput {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<u64>,
    pub data: serde_json::Value,
}

/// The answer to an infer request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferResponse {
    pub model_name: String,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<InferOutput>,
}
