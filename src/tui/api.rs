//! View copies of what the control API answers, decoded leniently.
//!
//! The console holds these copies and nothing else (STYLE: a UI-free core, the UI keeps
//! view copies). Types the library already shares with the daemon (`VersionManifest`,
//! `JobState`, `MetricRecord`, `telemetry::*`) are reused; the rest are mirrored here with
//! every field optional, so a newer daemon adding fields never breaks an older console.

use std::collections::BTreeMap;

use serde::Deserialize;

use kiln_core::jobs::{JobState, MetricRecord};
use kiln_core::registry::VersionManifest;

/// `GET /api/v1/models`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelList {
    #[serde(default)]
    pub models: Vec<ModelRow>,
    #[serde(default)]
    pub problems: Vec<ProblemView>,
}

/// One model as the list shows it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ModelRow {
    pub name: String,
    #[serde(default)]
    pub task: String,
    #[serde(default)]
    pub versions: usize,
    #[serde(default)]
    pub latest: Option<u32>,
    #[serde(default)]
    pub aliases: BTreeMap<String, u32>,
}

/// A registry entry the daemon could not read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ProblemView {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub reason: String,
}

/// `GET /api/v1/models/{m}` → `model`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelDetailView {
    pub record: ModelRecordView,
    #[serde(default)]
    pub versions: Vec<VersionManifest>,
    #[serde(default)]
    pub aliases: BTreeMap<String, u32>,
}

/// The model record, leniently.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelRecordView {
    pub name: String,
    #[serde(default)]
    pub task: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub created_at: String,
}

/// `GET /api/v1/models/{m}/versions/{v}`: the manifest and its evaluation records (and,
/// from a daemon that inlines them, the full reports).
#[derive(Debug, Clone, Deserialize)]
pub struct VersionView {
    pub version: VersionManifest,
    #[serde(default)]
    pub evals: Vec<EvalRecordView>,
    #[serde(default)]
    pub reports: Vec<EvalReport>,
}

/// One evaluation attached to a version (headline figures; the full report is a blob).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EvalRecordView {
    #[serde(default)]
    pub report: String,
    #[serde(default)]
    pub dataset: String,
    #[serde(default)]
    pub split: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

/// A full evaluation report (the blob an [`EvalRecordView`] points at).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EvalReport {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub dataset: String,
    #[serde(default)]
    pub split: String,
    #[serde(default)]
    pub rows: usize,
    #[serde(default)]
    pub accuracy: Option<f64>,
    #[serde(default)]
    pub macro_f1: Option<f64>,
    #[serde(default)]
    pub per_class: Vec<ClassScore>,
    #[serde(default)]
    pub confusion_matrix: Vec<Vec<usize>>,
    #[serde(default)]
    pub rmse: Option<f64>,
    #[serde(default)]
    pub mae: Option<f64>,
}

/// One class's precision, recall and F1.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ClassScore {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    #[serde(default)]
    pub support: usize,
}

/// `GET /api/v1/jobs/{id}` and SSE `job` events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobView {
    pub id: String,
    #[serde(default)]
    pub spec: JobSpecView,
    pub status: JobStatusView,
    /// An evaluation job's report, once written.
    #[serde(default, deserialize_with = "lenient")]
    pub result: Option<EvalReport>,
}

/// Decodes what it can; anything unexpected becomes `None` instead of failing the whole job.
fn lenient<'de, D: serde::Deserializer<'de>, T: serde::de::DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// A job's status as the console reads it (`status.json`, leniently).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobStatusView {
    pub state: JobState,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub step: u64,
    #[serde(default)]
    pub epoch: usize,
    /// Steps the whole run takes, when the worker knows it.
    #[serde(default)]
    pub total_steps: Option<u64>,
    #[serde(default)]
    pub device: Option<String>,
    /// `model@version` registered on success.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub updated_at: String,
}

impl JobView {
    /// Whether this is an evaluation (not a training) job.
    pub fn is_eval(&self) -> bool {
        self.spec.kind.as_deref() == Some("eval")
    }

    /// Whether the job is still queued or running.
    pub fn is_active(&self) -> bool {
        !self.status.state.is_final()
    }

    /// The state as a lowercase word.
    pub fn state_name(&self) -> &'static str {
        match self.status.state {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// The parts of a job spec the console shows (training and evaluation jobs alike).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct JobSpecView {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub data: String,
    #[serde(default)]
    pub epochs: usize,
    #[serde(default)]
    pub batch_size: usize,
    #[serde(default)]
    pub lr: f64,
    #[serde(default)]
    pub optimizer: String,
    #[serde(default)]
    pub model: String,
    /// For evaluation jobs: the `model@version` scored.
    #[serde(default)]
    pub reference: Option<String>,
}

/// `GET /api/v1/jobs`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JobList {
    #[serde(default)]
    pub jobs: Vec<JobView>,
}

/// `GET /api/v1/jobs/{id}/metrics` and SSE `metrics` events (`job` only on the latter).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MetricsChunk {
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub records: Vec<MetricRecord>,
    #[serde(default)]
    pub next: u64,
}

/// `GET /api/v1/jobs/{id}/log`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogChunk {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub next: u64,
}

/// `GET /api/v1/deployments`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Deployments {
    /// Where the inference API listens (`None` when it could not bind).
    #[serde(default)]
    pub inference_address: Option<String>,
    /// Why the inference API is not listening.
    #[serde(default)]
    pub inference_error: Option<String>,
    #[serde(default)]
    pub deployments: Vec<Deployment>,
}

/// One model in service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Deployment {
    pub model: String,
    pub version: u32,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub stats: ServingStats,
}

/// Live figures of one deployment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServingStats {
    #[serde(default)]
    pub requests: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub req_per_s: f64,
    #[serde(default)]
    pub p50_ms: Option<f64>,
    #[serde(default)]
    pub p99_ms: Option<f64>,
    #[serde(default)]
    pub queue_depth: u64,
}

/// `GET /api/v1/deployments/journal`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Journal {
    #[serde(default)]
    pub entries: Vec<JournalEntry>,
}

/// One deploy or rollback.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct JournalEntry {
    #[serde(default)]
    pub time: String,
    pub model: String,
    #[serde(default)]
    pub from: Option<u32>,
    pub to: u32,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub reason: String,
}

/// `POST /api/v1/deployments/{m}/try`: a prediction on one dataset sample.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TryResult {
    #[serde(default)]
    pub index: Option<u64>,
    #[serde(default)]
    pub version: Option<u32>,
    /// Whether the prediction matched the label (classifiers).
    #[serde(default)]
    pub correct: Option<bool>,
    pub prediction: serde_json::Value,
    #[serde(default)]
    pub label: serde_json::Value,
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub probabilities: Vec<f64>,
}

/// A short date-time for tables: `2026-11-29 16:40` from an RFC 3339 string.
pub fn short_time(rfc3339: &str) -> String {
    let s: String = rfc3339.chars().take(16).collect();
    s.replace('T', " ")
}
