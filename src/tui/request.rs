//! What the console asks of kilnd: one [`Request`] per control-API call, typed with the
//! core's names and ids. `update` returns them as effects; `client.rs` carries them out and
//! answers with a `DaemonMsg`.

use std::path::PathBuf;

use kiln_core::deploy::CanarySpec;
use kiln_core::inspect::InspectQuery;
use kiln_core::jobs::{JobId, JobRequest};
use kiln_core::names::{Digest, Name};

/// Something the console asks of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Models,
    Model(Name),
    Version(Name, u32),
    /// An evaluation report blob, by digest.
    Report(Digest),
    /// Every version's signature status (`GET /signatures`), fetched with each model list.
    Signatures,
    Jobs,
    Metrics {
        job: JobId,
        since: u64,
    },
    Log {
        job: JobId,
        since: u64,
    },
    Telemetry,
    Deployments,
    Journal,
    /// Canaries in progress (`GET /canaries`), fetched with the deployments.
    Canaries,
    /// A training or evaluation job (boxed: it is much larger than every other request).
    SubmitJob(Box<JobRequest>),
    CancelJob(JobId),
    /// Run the gates of deploying `model@version` without switching (the deploy dialog).
    CheckGates {
        model: Name,
        version: u32,
    },
    /// Deploy `model@version`: at once (`canary: None`), as a canary or as a shadow; `force`
    /// overrides a failed gate (kilnd journals it).
    Deploy {
        model: Name,
        version: u32,
        canary: Option<CanarySpec>,
        force: bool,
    },
    Rollback {
        model: Name,
        to: Option<u32>,
    },
    Try {
        model: Name,
        index: usize,
    },
    /// Let the candidate of `model`'s canary take all traffic now.
    PromoteCanary(Name),
    /// End `model`'s canary; the version in force takes all traffic again.
    AbortCanary(Name),
    DeleteVersion {
        model: Name,
        version: u32,
    },
    /// Every study (`GET /studies`).
    Studies,
    /// Start the study whose spec is in this file; the runner reads it, `update` never does.
    CreateStudy {
        path: PathBuf,
    },
    StopStudy(Name),
    ResumeStudy(Name),
    /// Register a trial's best checkpoint as a version.
    Promote {
        study: Name,
        trial: u32,
    },
    /// The epochs of a training job whose checkpoints are kept (`GET /jobs/{id}/epochs`).
    Epochs(JobId),
    /// Register a kept epoch checkpoint of a training job as a version of its model.
    RegisterEpoch {
        job: JobId,
        epoch: usize,
    },
    /// Samples of `model@version`'s latest evaluation (a cell, the hardest, the disagreements).
    Inspect {
        model: Name,
        version: u32,
        query: InspectQuery,
    },
    /// One evaluated row as the model saw it.
    Sample {
        model: Name,
        version: u32,
        index: u32,
    },
}
