//! Training and evaluation jobs on disk: `$KILN_HOME/jobs/<id>/`.
//!
//! ```text
//! jobs/<id>/spec.json       what to run (JobSpec), written once by whoever creates the job
//! jobs/<id>/status.json     the worker's current state (JobStatus), replaced atomically
//! jobs/<id>/metrics.jsonl   one MetricRecord per line, appended by the worker
//! jobs/<id>/worker.log      the worker's stderr
//! jobs/<id>/result.json     an eval job's report, written once at the end
//! jobs/<id>/data.json       a training job's data files and their digests
//! jobs/<id>/checkpoints/    the latest checkpoint, replaced whole each epoch
//! jobs/<id>/slurm.sh        the batch script a Slurm job runs (the slurm executor only)
//! jobs/<id>/slurm.json      the Slurm job running it (SlurmJob), written by the daemon only
//! ```

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsx;
use crate::kinds::{Arch, DataSource, DeviceName, MetricKind, Optimizer, Schedule};
use crate::names::{ModelRef, Name, NameError};

/// What a job does: train a new version, evaluate a stored one, or compress one into a child.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    #[default]
    Train,
    Eval,
    Compress,
}

/// What a client asks the daemon to run (`POST /api/v1/jobs`). It carries no id: the daemon
/// alone assigns one, and stores the request with it as the job's [`JobSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
// Built once per submission and read from a file once per job: boxing the training variant
// would save a few hundred bytes nobody keeps.
#[allow(clippy::large_enum_variant)]
pub enum JobRequest {
    Train(TrainRequest),
    Eval(EvalRequest),
    Compress(crate::compression::CompressRequest),
}

/// Train a new version. Fields a client leaves out take the CLI's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    pub arch: Arch,
    /// Architecture config overrides (merged over what the data implies), a JSON object.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    pub data: DataSource,
    /// Where the dataset's files are, when not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_path: Option<PathBuf>,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default)]
    pub optimizer: Optimizer,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `None` picks CUDA when libtorch sees one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceName>,
    /// Cap on training samples, for quick runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Model to register the result under.
    pub model: Name,
    /// Fine-tune from this version's weights (recorded as the parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ModelRef>,
    /// Continue this earlier job from its last checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<JobId>,
    /// libtorch's intra-op threads for the worker (default: every core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Refuse to train unless the dataset's files still have these digests. An empty list
    /// asks the daemon to pin the files as they are when it accepts the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Vec<crate::registry::DataFile>>,
    /// Set by the daemon on a study's trials: such a job keeps its best checkpoint and
    /// registers nothing (`kiln studies promote` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<crate::study::TrialTag>,
    /// The licence the version is published under (model card and manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<crate::card::License>,
    /// The model card's description (Markdown; kiln writes the front matter and the facts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// Record per-layer statistics (`layers` metric records) while training (default on;
    /// `kiln train --no-layer-stats` turns them off).
    #[serde(default = "yes")]
    pub layer_stats: bool,
}

/// Score a stored version on a dataset and attach the report to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRequest {
    /// The `model@version` (or alias) to score.
    pub reference: ModelRef,
    pub data: DataSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_path: Option<PathBuf>,
    /// Score only the first N rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Which split to score (default: test when the dataset has one, else validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<EvalSplit>,
}

/// The split an evaluation scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EvalSplit {
    Test,
    /// The validation split training scored each epoch on (same seed, same rows).
    Val,
}
crate::kinds::word_enum!(EvalSplit, "split");

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

fn default_epochs() -> usize {
    3
}

fn default_batch_size() -> usize {
    64
}

fn default_lr() -> f64 {
    1e-3
}

fn default_seed() -> u64 {
    42
}

fn yes() -> bool {
    true
}

impl TrainRequest {
    /// A request with every default, to train `arch` on `data` as `model`.
    pub fn new(arch: Arch, data: DataSource, model: Name) -> Self {
        Self {
            arch,
            config: empty_object(),
            data,
            data_path: None,
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            lr: default_lr(),
            optimizer: Optimizer::default(),
            schedule: Schedule::default(),
            seed: default_seed(),
            device: None,
            limit: None,
            model,
            from: None,
            resume: None,
            threads: None,
            pin: None,
            trial: None,
            license: None,
            card: None,
            layer_stats: true,
        }
    }
}

impl TrainRequest {
    /// The numeric limits every training job must meet (the daemon checks them on every
    /// submission; a study spec checks them on every value a trial can get).
    pub fn check_limits(&self) -> Result<(), String> {
        if self.epochs == 0 || self.batch_size == 0 || self.limit == Some(0) {
            return Err("epochs, batch_size and limit must be at least 1".into());
        }
        if let Some(card) = &self.card {
            crate::card::check_text(card).map_err(|e| e.0)?;
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr must be a number above 0, not {}", self.lr));
        }
        Ok(())
    }
}

impl JobRequest {
    /// Training or evaluation.
    pub fn kind(&self) -> JobKind {
        match self {
            Self::Train(_) => JobKind::Train,
            Self::Eval(_) => JobKind::Eval,
            Self::Compress(_) => JobKind::Compress,
        }
    }

    /// The model the job belongs to: the one it registers or the one it scores.
    pub fn model(&self) -> &Name {
        match self {
            Self::Train(t) => &t.model,
            Self::Eval(e) => &e.reference.model,
            Self::Compress(c) => c.model.as_ref().unwrap_or(&c.reference.model),
        }
    }

    /// The dataset it reads; `None` for a compression that reads its parent's.
    pub fn data(&self) -> Option<&DataSource> {
        match self {
            Self::Train(t) => Some(&t.data),
            Self::Eval(e) => Some(&e.data),
            Self::Compress(c) => c.data.as_ref(),
        }
    }

    /// What the job works on, in a few words: its dataset, or the version it compresses.
    pub fn subject(&self) -> String {
        match self {
            Self::Compress(c) => format!("{} of {}", c.method, c.reference),
            other => other.data().map(ToString::to_string).unwrap_or_default(),
        }
    }

    /// Epochs it trains: a training job's, a pruning's fine-tune; 0 for the rest.
    pub fn epochs(&self) -> usize {
        match self {
            Self::Train(t) => t.epochs,
            Self::Compress(c) => match &c.method {
                crate::compression::Method::Prune(p) => p.finetune_epochs,
                crate::compression::Method::Quantize(_) => 0,
            },
            Self::Eval(_) => 0,
        }
    }

    /// The device asked for, if any (evaluations pick their own).
    pub fn device(&self) -> Option<&DeviceName> {
        match self {
            Self::Train(t) => t.device.as_ref(),
            Self::Eval(_) => None,
            Self::Compress(c) => c.device.as_ref(),
        }
    }

    /// The training request, for a training job.
    pub fn as_train(&self) -> Option<&TrainRequest> {
        match self {
            Self::Train(t) => Some(t),
            Self::Eval(_) | Self::Compress(_) => None,
        }
    }
}

/// `spec.json`: a request with the id the daemon gave it, written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: JobId,
    #[serde(flatten)]
    pub request: JobRequest,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// A study's trial stopped early by the study's rule (its status says at which epoch and why).
    Pruned,
}

crate::kinds::word_enum!(JobState, "job state");
crate::kinds::word_enum!(JobKind, "job kind");

impl JobState {
    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled | Self::Pruned)
    }
}

/// `status.json`: the worker's view of the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub state: JobState,
    /// Why it failed or was cancelled, or what it registered.
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Process start time (clock ticks since boot) to tell a live worker from a reused pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    #[serde(default)]
    pub step: u64,
    #[serde(default)]
    pub epoch: usize,
    /// Steps the whole run will take, once the worker knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_steps: Option<u64>,
    /// Device the job runs on, e.g. `cpu` or `cuda:0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The version registered (training) or scored (evaluation) on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ModelRef>,
    pub updated_at: String,
}

/// `slurm.json`: the Slurm job that runs a job's worker, as the daemon last saw it. Only the
/// daemon writes it (the worker keeps writing `status.json`); its id is what a restarted
/// daemon re-adopts, so a job is never submitted twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJob {
    pub job_id: u64,
    /// Slurm's state word: `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, … (an open set that
    /// grows between Slurm releases), or [`SlurmJob::GONE`].
    pub state: String,
    /// Why it waits or ended, as Slurm says (`Resources`, `Priority`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `exit:signal`, as `scontrol` and `sacct` print it (`1:0`, `0:15`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<String>,
    pub submitted_at: String,
}

/// Slurm's states that end a job for good (a requeued job is not submitted with them).
const SLURM_FINAL_STATES: [&str; 10] = [
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
    SlurmJob::GONE,
];

impl SlurmJob {
    /// kiln's word for a job Slurm no longer knows (it left `squeue` and no accounting
    /// remembers it): it has ended, how is unknown.
    pub const GONE: &'static str = "GONE";

    /// Whether Slurm is done with the job: its processes have ended on the node.
    pub fn has_ended(&self) -> bool {
        SLURM_FINAL_STATES.contains(&self.state.as_str())
    }

    /// Whether Slurm cancelled it (`scancel`, by kiln or by hand).
    pub fn was_cancelled(&self) -> bool {
        self.state == "CANCELLED"
    }

    /// `12 PENDING (Resources)` while it waits or runs, `12 FAILED exit 1:0` once it ended.
    pub fn summary(&self) -> String {
        let mut text = format!("{} {}", self.job_id, self.state);
        match (&self.reason, &self.exit_code, self.has_ended()) {
            (Some(reason), _, false) => text.push_str(&format!(" ({reason})")),
            (_, Some(code), true) => text.push_str(&format!(" exit {code}")),
            _ => {}
        }
        text
    }

    /// `Slurm job 12 ended FAILED with exit code 1:0`, for a job's final message.
    pub fn ending(&self) -> String {
        match (self.state.as_str(), &self.exit_code) {
            (Self::GONE, _) => format!("Slurm job {} ended; Slurm no longer knows how", self.job_id),
            (state, Some(code)) => format!("Slurm job {} ended {state} with exit code {code}", self.job_id),
            (state, None) => format!("Slurm job {} ended {state}", self.job_id),
        }
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    pub kind: MetricKind,
    pub step: u64,
    pub epoch: usize,
    /// Seconds since the Unix epoch.
    pub time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_per_sec: Option<f64>,
    /// A `layers` record's statistics, one per layer with weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<crate::inspect::LayerStats>>,
}

/// A job identifier: `j<unix seconds>-<4 hex>`, valid as a [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Name);

impl JobId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let salt = (now.subsec_nanos() ^ std::process::id().rotate_left(16)) & 0xffff;
        Self(Name::new(&format!("j{}-{salt:04x}", now.as_secs())).unwrap_or_else(|_| unreachable!("id is valid")))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::str::FromStr for JobId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Name::new(s).map(Self)
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job's folder.
#[derive(Debug, Clone)]
pub struct JobDir {
    pub id: JobId,
    pub path: PathBuf,
}

/// Job-folder errors.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("unknown job '{0}': `kiln jobs ls` lists the jobs")]
    Unknown(JobId),
    #[error("job file {} is unreadable: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The scheduler running the job (Slurm) refused an order; says what and how to retry.
    #[error("{0}")]
    Scheduler(String),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> JobError {
    let path = path.to_owned();
    move |source| JobError::Io { action, path, source }
}

impl JobDir {
    /// The folder of job `id` under `home` (which may not exist yet).
    pub fn new(home: &Path, id: JobId) -> Self {
        let path = home.join("jobs").join(id.as_str());
        Self { id, path }
    }

    /// Opens an existing job.
    pub fn open(home: &Path, id: &JobId) -> Result<Self, JobError> {
        let dir = Self::new(home, id.clone());
        if dir.path.join("spec.json").is_file() {
            Ok(dir)
        } else {
            Err(JobError::Unknown(id.clone()))
        }
    }

    /// Creates the folder and writes `spec.json` and a `queued` status.
    pub fn create(home: &Path, spec: &JobSpec) -> Result<Self, JobError> {
        let dir = Self::new(home, spec.id.clone());
        let checkpoints = dir.checkpoints();
        fsx::create_dir_durably(&checkpoints).map_err(io_err("create", &checkpoints))?;
        dir.write_json("spec.json", spec)?;
        dir.write_status(&JobStatus {
            state: JobState::Queued,
            message: String::new(),
            pid: None,
            pid_start: None,
            step: 0,
            epoch: 0,
            total_steps: None,
            device: None,
            version: None,
            updated_at: crate::registry::now_rfc3339(),
        })?;
        Ok(dir)
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }

    /// Written by the daemon before it stops a trial early: the worker ends `pruned` with it.
    pub fn prune_path(&self) -> PathBuf {
        self.path.join("prune.json")
    }

    /// The early-stopping decision for this job, if the daemon made one.
    pub fn prune_order(&self) -> Option<crate::study::PrunedAt> {
        serde_json::from_slice(&fs::read(self.prune_path()).ok()?).ok()
    }

    /// Records an early-stopping decision (crash-safely) for the worker to find.
    pub fn write_prune_order(&self, order: &crate::study::PrunedAt) -> Result<(), JobError> {
        self.write_json("prune.json", order)
    }

    pub fn log_path(&self) -> PathBuf {
        self.path.join("worker.log")
    }

    /// The Slurm job running this one, when the slurm executor submitted it.
    pub fn slurm(&self) -> Option<SlurmJob> {
        serde_json::from_slice(&fs::read(self.path.join("slurm.json")).ok()?).ok()
    }

    /// Records the Slurm job running this one (crash-safely; the daemon alone writes it).
    pub fn write_slurm(&self, job: &SlurmJob) -> Result<(), JobError> {
        self.write_json("slurm.json", job)
    }

    pub fn result_path(&self) -> PathBuf {
        self.path.join("result.json")
    }

    /// An eval job's report, once written and readable.
    pub fn result<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&fs::read(self.result_path()).ok()?).ok()
    }

    /// Writes the job's result atomically.
    pub fn write_result(&self, value: &impl Serialize) -> Result<(), JobError> {
        self.write_json("result.json", value)
    }

    /// Records the digests of the data files the job read (`data.json`).
    pub fn write_data_files(&self, files: &[crate::registry::DataFile]) -> Result<(), JobError> {
        self.write_json("data.json", &files)
    }

    /// The worker log from byte `offset` (at most `max` bytes, cut at a line end when it can
    /// be) and the offset to continue from.
    pub fn log_since(&self, offset: u64, max: usize) -> Result<(String, u64), JobError> {
        let path = self.log_path();
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((String::new(), offset)),
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        file.seek(SeekFrom::Start(offset)).map_err(io_err("seek", &path))?;
        let mut bytes = Vec::new();
        (&mut file)
            .take(max as u64)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        if bytes.len() == max
            && let Some(end) = bytes.iter().rposition(|&b| b == b'\n')
        {
            bytes.truncate(end + 1);
        }
        let next = offset + bytes.len() as u64;
        Ok((String::from_utf8_lossy(&bytes).into_owned(), next))
    }

    pub fn spec(&self) -> Result<JobSpec, JobError> {
        self.read_json("spec.json")
    }

    pub fn status(&self) -> Result<JobStatus, JobError> {
        self.read_json("status.json")
    }

    /// Replaces `status.json` atomically.
    pub fn write_status(&self, status: &JobStatus) -> Result<(), JobError> {
        self.write_json("status.json", status)
    }

    /// Appends one metrics line (a crash can cut only the last line, which readers skip).
    pub fn append_metric(&self, record: &MetricRecord) -> Result<(), JobError> {
        let path = self.metrics_path();
        let mut line = serde_json::to_vec(record).map_err(|e| JobError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        file.write_all(&line).map_err(io_err("append to", &path))
    }

    /// Metric lines after byte `offset`; returns them and the offset to continue from.
    /// A trailing partial line (being written) is left for the next call.
    pub fn metrics_since(&self, offset: u64) -> Result<(Vec<MetricRecord>, u64), JobError> {
        let path = self.metrics_path();
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        file.seek(SeekFrom::Start(offset)).map_err(io_err("seek", &path))?;
        let mut reader = BufReader::new(file);
        let (mut records, mut next) = (Vec::new(), offset);
        let mut line = String::new();
        while reader.read_line(&mut line).map_err(io_err("read", &path))? > 0 {
            if !line.ends_with('\n') {
                break;
            }
            next += line.len() as u64;
            if let Ok(record) = serde_json::from_str(&line) {
                records.push(record);
            }
            line.clear();
        }
        Ok((records, next))
    }

    fn write_json(&self, file: &str, value: &impl Serialize) -> Result<(), JobError> {
        let path = self.path.join(file);
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| JobError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        fsx::write_atomic(&path, &bytes).map_err(io_err("write", &path))
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, file: &str) -> Result<T, JobError> {
        let path = self.path.join(file);
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        serde_json::from_slice(&bytes).map_err(|e| JobError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }
}

/// Every job folder under `home`, oldest first.
pub fn list(home: &Path) -> Vec<JobDir> {
    let mut ids: Vec<JobId> = fs::read_dir(home.join("jobs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    ids.sort();
    ids.into_iter().map(|id| JobDir::new(home, id)).collect()
}

/// Start time of process `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`),
/// which tells a live worker from an unrelated process that reused its pid.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Starts `command` (a `kilnd` invocation) detached for `home`: its own process group, so
/// terminal signals and a daemon restart leave it alone; no stdin or stdout; stderr appended
/// to `log`.
pub fn spawn_detached(mut command: Command, home: &Path, log: &Path) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let log = OpenOptions::new().create(true).append(true).open(log)?;
    command
        .env("KILN_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
}

/// `kilnd worker --job <id>` for `job` under `home`: what every executor runs, a child here
/// or a Slurm batch script on a node.
pub fn worker_command(mut kilnd: Command, home: &Path, job: &JobDir) -> Command {
    kilnd.args(["worker", "--job", job.id.as_str()]).env("KILN_HOME", home);
    kilnd
}

/// Starts `kilnd worker --job <id>` for `job`, detached, logging to its `worker.log`.
pub fn spawn_worker(kilnd: Command, home: &Path, job: &JobDir) -> io::Result<Child> {
    spawn_detached(worker_command(kilnd, home, job), home, &job.log_path())
}
