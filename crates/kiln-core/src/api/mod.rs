//! The control-API contract (`/api/v1/…`, DESIGN §4): every request, response and event body,
//! written once. kilnd's handlers return `Json<T>` of these types; the console and the CLI
//! decode the same types through [`crate::client`]. A field renamed here is renamed for all
//! three at compile time.
//!
//! | route | request | response |
//! | --- | --- | --- |
//! | `GET /health` | | [`Health`] |
//! | `GET /models` | | [`ModelList`] |
//! | `GET /versions?filter=` | | [`VersionList`] |
//! | `GET /models/{m}` | | [`ModelView`] |
//! | `GET /models/{m}/versions/{v}` | | [`VersionView`] |
//! | `DELETE /models/{m}/versions/{v}?force=` | | [`VersionRemoved`] |
//! | `PUT /models/{m}/aliases/{a}` | [`AliasRequest`] | [`AliasSet`] |
//! | `DELETE /models/{m}/aliases/{a}` | | [`AliasRemoved`] |
//! | `POST /models/{m}/import` | [`ImportRequest`] | [`VersionManifest`] |
//! | `GET /registry/verify` | | [`VerifyReport`] |
//! | `GET /blobs/{digest}` | | the blob's bytes |
//! | `GET /jobs` · `POST /jobs` | [`JobRequest`] | [`JobList`] · [`JobView`] (201) |
//! | `GET /jobs/{id}` · `POST /jobs/{id}/cancel` | | [`JobView`] |
//! | `GET /jobs/{id}/metrics?since=` | | [`MetricsChunk`] |
//! | `GET /jobs/{id}/log?since=` | | [`LogChunk`] |
//! | `GET /telemetry?since_ms=` | | [`Telemetry`] |
//! | `GET /events` | | Server-Sent [`Event`]s |
//! | `GET /deployments` · `POST /deployments` | [`DeployRequest`] | [`Deployments`] · [`JournalEntry`] |
//! | `GET /deployments/journal?limit=` | | [`Journal`] |
//! | `GET /models/{m}/versions/{v}/inspect?cell=&worst=&disagree=&sort=&limit=` | | [`Inspection`] |
//! | `GET /models/{m}/versions/{v}/samples/{index}` | | [`SampleDetail`] |
//! | `POST /deployments/gates` | [`GateRequest`] | [`GateResult`] |
//! | `GET /canaries` | | [`Canaries`] |
//! | `POST /canaries/{m}/promote` · `POST /canaries/{m}/abort` | | [`JournalEntry`] |
//! | `GET /jobs/{id}/epochs` | | [`EpochList`] |
//! | `POST /jobs/{id}/epochs/{n}/register` | | [`VersionManifest`] |
//! | `POST /deployments/{m}/rollback` | [`RollbackRequest`] | [`JournalEntry`] |
//! | `POST /deployments/{m}/try` | [`TryRequest`] | [`TryResult`] |
//! | `GET /studies` · `POST /studies` | [`StudyCreate`] | [`StudyList`] · [`StudyView`] (201) |
//! | `GET /studies/{s}` | | [`StudyView`] |
//! | `POST /studies/{s}/stop` · `POST /studies/{s}/resume` | | [`StudyView`] |
//! | `POST /studies/{s}/promote` | [`PromoteRequest`] | [`VersionManifest`] |
//!
//! Every error is an [`ErrorBody`] with a 4xx/5xx status.

pub mod kserve;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::deploy::{Batching, DeploymentStats, DeploymentView, GateReport, JournalEntry};
pub use crate::inspect::{InspectQuery, Inspection, SampleDetail};
pub use crate::jobs::{EvalRequest, JobId, JobRequest, JobSpec, JobStatus, MetricRecord, SlurmJob, TrainRequest};
pub use crate::registry::{
    EvalRecord, EvalReport, ModelDetail, ModelSummary, Problem, SignatureStatus, VersionManifest, VersionRow,
    VersionSignature,
};
pub use crate::study::StudyRecord as StudyView;
pub use crate::telemetry::{Sample, Telemetry};

use crate::kinds::Arch;
use crate::names::{Digest, Name, Selector};

/// The prefix of every control-API route.
pub const PREFIX: &str = "/api/v1";

/// An error answer, with its status code on the response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `GET /health`: who answers, for which home, supervising what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// kilnd's version.
    pub kiln: String,
    pub pid: u32,
    pub home: PathBuf,
    pub running_jobs: Vec<JobId>,
}

/// `GET /models`: one line per model, and the entries that could not be read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub models: Vec<ModelSummary>,
    pub problems: Vec<Problem>,
}

/// `GET /versions?filter=`: every version matching all the filter's words.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VersionList {
    pub versions: Vec<VersionRow>,
    pub problems: Vec<Problem>,
}

/// Query of `GET /versions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VersionFilter {
    #[serde(default)]
    pub filter: String,
}

/// `GET /models/{m}`: the model with every readable version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    pub model: ModelDetail,
    pub problems: Vec<Problem>,
}

/// `GET /models/{m}/versions/{v}`: the manifest, the aliases pointing at it and its evals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    pub version: VersionManifest,
    #[serde(default)]
    pub aliases: Vec<Name>,
    #[serde(default)]
    pub evals: Vec<EvalRecord>,
}

/// Query of `DELETE /models/{m}/versions/{v}`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct RemoveQuery {
    /// Also remove the aliases pointing at the version (never one a deployment depends on).
    #[serde(default)]
    pub force: bool,
}

/// The answer to removing a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRemoved {
    pub model: Name,
    pub removed: u32,
    pub aliases_removed: Vec<Name>,
}

/// `PUT /models/{m}/aliases/{a}`: point the alias at a version (a number or another alias).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasRequest {
    pub version: Selector,
}

/// The answer to setting an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasSet {
    pub model: Name,
    pub alias: Name,
    pub version: u32,
}

/// The answer to removing an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasRemoved {
    pub model: Name,
    pub alias: Name,
    /// The version it pointed at.
    pub was: u32,
}

/// `POST /models/{m}/import`: external weights become a new version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// An absolute path on the daemon's machine: .safetensors, .bpk or .pt/.pth, or a model
    /// folder (`model.safetensors`, `config.json`, … and maybe `model.sig`, as `kiln models
    /// export` writes and `model_signing sign` signs). A folder's files are kept byte for
    /// byte, so its signature still verifies.
    pub weights: PathBuf,
    /// Required for a weights file; a folder's `config.json` gives it otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// The architecture's config (a JSON object); with `arch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Refuse a folder without a signature by a trusted key over exactly its files.
    #[serde(default)]
    pub require_signature: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<crate::card::License>,
    /// The model card's description (Markdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// The .safetensors file was written by PyTorch (Linear weights are transposed).
    #[serde(default)]
    pub pytorch_layout: bool,
    /// Recorded when the model is new.
    #[serde(default)]
    pub task: String,
    #[serde(default)]
    pub description: String,
}

/// `GET /signatures`: every version's signature status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signatures {
    pub versions: Vec<VersionSignature>,
}

/// `GET|POST /models/{m}/versions/{v}/signature`: a version's status and its signature
/// (the Sigstore bundle, as `model.sig` holds it) when it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureView {
    pub model: Name,
    pub version: u32,
    pub status: SignatureStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<serde_json::Value>,
}

/// `POST /models/{m}/versions/{v}/signature`: a signature made by the client (which holds
/// the private key); the daemon stores it only if a trusted key made it over exactly the
/// version's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    pub bundle: serde_json::Value,
}

/// `GET /registry/verify`: every blob re-hashed, every manifest's blobs looked up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub blobs_checked: usize,
    pub corrupt_blobs: Vec<CorruptBlob>,
    pub missing_blobs: Vec<MissingBlob>,
    pub problems: Vec<Problem>,
    pub ok: bool,
}

/// A blob whose content no longer matches its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorruptBlob {
    pub path: PathBuf,
    pub reason: String,
}

/// A blob a version needs that is not stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingBlob {
    /// `model@version`.
    pub version: String,
    pub role: String,
    pub digest: Digest,
}

/// A job as the API shows it: id, spec, status, an evaluation job's report, and the Slurm
/// job running it under the slurm executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: JobId,
    pub spec: JobSpec,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<EvalReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmJob>,
}

impl JobView {
    /// Whether the job is still queued or running.
    pub fn is_active(&self) -> bool {
        !self.status.state.is_final()
    }
}

/// `GET /jobs`, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// Query of the metrics and log routes: a byte offset to continue from.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Since {
    #[serde(default)]
    pub since: u64,
}

/// New metric lines of a job (`GET /jobs/{id}/metrics`, and the `metrics` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsChunk {
    pub job: JobId,
    pub records: Vec<MetricRecord>,
    /// The byte offset to ask for next time.
    pub next: u64,
}

/// Worker log text (`GET /jobs/{id}/log`, up to 256 KiB per call).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogChunk {
    pub text: String,
    pub next: u64,
}

/// Query of `GET /telemetry`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct TelemetryQuery {
    /// Only samples after this Unix millisecond.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

/// `GET /deployments`: what serves, where inference listens, and restore problems.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deployments {
    /// Where the inference API listens (`None` when it could not bind).
    pub inference_address: Option<String>,
    /// Why the inference API is not listening.
    pub inference_error: Option<String>,
    /// Every deployment in force has been restored and serves.
    pub ready: bool,
    pub deployments: Vec<DeploymentView>,
    pub problems: Vec<String>,
}

/// `POST /deployments`: load, warm up, switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub model: Name,
    /// A number or an alias; the newest version when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Selector>,
    /// The daemon's defaults when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batching: Option<Batching>,
    /// Switch even if a gate fails (journaled with the figures).
    #[serde(default)]
    pub force: bool,
    /// Rows of the candidate's test split the golden check uses (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_samples: Option<usize>,
    /// Start a canary instead of switching at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::deploy::CanarySpec>,
}

/// `POST /deployments/gates`: run a deploy's gates without switching (the deploy dialog shows
/// the figures before its final confirm; `kiln deploy --dry-run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRequest {
    pub model: Name,
    /// A number or an alias; the newest version when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Selector>,
    /// Rows of the candidate's test split the golden check uses (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_samples: Option<usize>,
}

/// What the gates found for `model@version` against the version in force (`current`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub model: Name,
    pub version: u32,
    pub current: Option<u32>,
    pub report: GateReport,
    /// Every check passed or was skipped: a deploy would switch without `--force`.
    pub passed: bool,
}

/// `GET /jobs/{id}/epochs`: the epochs of a training job whose checkpoints are kept, each
/// of which can be registered as a version (promote from the curve).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochList {
    pub job: JobId,
    pub model: Name,
    pub epochs: Vec<EpochCheckpoint>,
    /// Why some or all epochs have no checkpoint (e.g. removed by the retention setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One kept epoch: where training was, and its validation figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochCheckpoint {
    /// 1-based, as the metrics' `epoch`.
    pub epoch: usize,
    pub step: u64,
    /// `val_loss`, `val_accuracy` or `val_rmse`, as the job's validation record had them.
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// `GET /canaries`: canaries and shadows in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Canaries {
    pub canaries: Vec<crate::deploy::CanaryView>,
}

/// Query of `GET /deployments/journal`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct JournalQuery {
    /// Only the last N entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `GET /deployments/journal`, newest last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub entries: Vec<JournalEntry>,
    pub problems: Vec<String>,
}

/// `POST /deployments/{m}/rollback`: back to the version served before, or to `to`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
}

/// `POST /deployments/{m}/try`: one row of the deployed version's own dataset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TryRequest {
    /// The row (modulo the split's size).
    #[serde(default)]
    pub index: usize,
}

/// A prediction on one dataset row through the live endpoint, beside the truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TryResult {
    pub model: Name,
    pub version: u32,
    pub dataset: String,
    /// `test` or `validation`.
    pub split: String,
    pub index: usize,
    #[serde(flatten)]
    pub outcome: TryOutcome,
}

/// What the model said about the row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TryOutcome {
    /// A classifier: the predicted and true class names, and every class's probability.
    Class {
        prediction: String,
        label: String,
        correct: bool,
        probabilities: Vec<f32>,
        classes: Vec<String>,
    },
    /// A rating regressor: the predicted and true rating.
    Rating { prediction: f32, label: f32 },
}

/// `POST /studies`: a study spec (TOML) to check and start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyCreate {
    /// The spec file's text.
    pub source: String,
    /// The file's name, for errors (`study.toml line 12: …`).
    #[serde(default = "default_spec_file")]
    pub file: String,
}

fn default_spec_file() -> String {
    "study.toml".into()
}

/// `GET /studies`: every readable study, by name, and the ones that could not be read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyList {
    pub studies: Vec<StudyView>,
    pub problems: Vec<String>,
}

/// `POST /studies/{s}/promote`: register a trial's best checkpoint as a version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The trial's number; the study's best trial when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<u32>,
}

/// Data of the `registry` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryChanged {
    /// When the change was seen (RFC 3339).
    pub at: String,
}

/// Data of the `lagged` event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lagged {
    /// Events this client missed: refetch everything.
    pub missed: u64,
}

/// One event of `GET /events` (Server-Sent Events: the variant is the `event:` name, the
/// body the `data:` line).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A job's status changed.
    Job(Box<JobView>),
    /// New metric lines.
    Metrics(MetricsChunk),
    /// Models, versions, aliases or evals changed.
    Registry(RegistryChanged),
    /// One telemetry sample, 1 Hz.
    Telemetry(Box<Sample>),
    /// A deploy or rollback.
    Deployment(Box<JournalEntry>),
    /// A study or one of its trials changed.
    Study(Box<StudyView>),
    /// This client fell behind.
    Lagged(Lagged),
}

impl Event {
    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Job(_) => "job",
            Self::Metrics(_) => "metrics",
            Self::Registry(_) => "registry",
            Self::Telemetry(_) => "telemetry",
            Self::Deployment(_) => "deployment",
            Self::Study(_) => "study",
            Self::Lagged(_) => "lagged",
        }
    }

    /// The SSE `data:` line.
    pub fn data(&self) -> serde_json::Result<String> {
        match self {
            Self::Job(v) => serde_json::to_string(v),
            Self::Metrics(v) => serde_json::to_string(v),
            Self::Registry(v) => serde_json::to_string(v),
            Self::Telemetry(v) => serde_json::to_string(v),
            Self::Deployment(v) => serde_json::to_string(v),
            Self::Study(v) => serde_json::to_string(v),
            Self::Lagged(v) => serde_json::to_string(v),
        }
    }

    /// Reads an event back; `Ok(None)` for an event name this version does not know.
    pub fn decode(name: &str, data: &str) -> serde_json::Result<Option<Self>> {
        Ok(Some(match name {
            "job" => Self::Job(serde_json::from_str(data)?),
            "metrics" => Self::Metrics(serde_json::from_str(data)?),
            "registry" => Self::Registry(serde_json::from_str(data)?),
            "telemetry" => Self::Telemetry(serde_json::from_str(data)?),
            "deployment" => Self::Deployment(serde_json::from_str(data)?),
            "study" => Self::Study(serde_json::from_str(data)?),
            "lagged" => Self::Lagged(serde_json::from_str(data)?),
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_as_written() {
        let events = [
            Event::Registry(RegistryChanged {
                at: "2026-11-30T00:00:00Z".into(),
            }),
            Event::Lagged(Lagged { missed: 3 }),
            Event::Metrics(MetricsChunk {
                job: "j1-0001".parse().expect("id"),
                records: Vec::new(),
                next: 10,
            }),
        ];
        for event in events {
            let data = event.data().expect("serialise");
            assert_eq!(Event::decode(event.name(), &data).expect("decode"), Some(event));
        }
        assert_eq!(Event::decode("from-a-newer-daemon", "{}").expect("unknown"), None);
    }

    #[test]
    fn a_job_request_names_its_kind_and_takes_defaults() {
        let request: JobRequest =
            serde_json::from_str(r#"{"kind":"train","arch":"cnn","data":"fashion-mnist","model":"m"}"#).expect("train");
        let JobRequest::Train(train) = &request else {
            panic!("not a training request: {request:?}");
        };
        assert_eq!((train.epochs, train.batch_size, train.seed), (3, 64, 42));
        assert_eq!(request.model().as_str(), "m");
        let unknown =
            serde_json::from_str::<JobRequest>(r#"{"kind":"train","arch":"xyz","data":"fashion-mnist","model":"m"}"#)
                .expect_err("unknown architecture");
        assert!(unknown.to_string().contains("unknown variant `xyz`"), "{unknown}");
        let eval: JobRequest =
            serde_json::from_str(r#"{"kind":"eval","reference":"m@2","data":"fashion-mnist"}"#).expect("eval");
        assert_eq!(eval.model().as_str(), "m");
    }

    #[test]
    fn a_try_result_reads_back_either_outcome() {
        let class = r#"{"model":"m","version":1,"dataset":"d","split":"test","index":0,"prediction":"cat","label":"dog","correct":false,"probabilities":[0.4,0.6],"classes":["cat","dog"]}"#;
        let rating = r#"{"model":"m","version":1,"dataset":"d","split":"test","index":0,"prediction":3.5,"label":4.0}"#;
        for text in [class, rating] {
            let result: TryResult = serde_json::from_str(text).expect(text);
            let again: TryResult =
                serde_json::from_str(&serde_json::to_string(&result).expect("serialise")).expect("read back");
            assert_eq!(result, again);
        }
    }
}
