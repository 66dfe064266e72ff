//! Promote from the curve: a training job keeps the checkpoint of every epoch beside its
//! validation record, so any point of its validation curve can become a version later.
//!
//! ```text
//! jobs/<id>/checkpoints/epochs/<n>.safetensors   the weights at the end of epoch n
//! jobs/<id>/checkpoints/epochs/<n>.json          step, their SHA-256, and the version draft
//! ```
//!
//! The weights are written first and the record last, each atomically, so a record names
//! complete weights; registration checks their digest. The newest
//! `[training] keep_epoch_checkpoints` training jobs (default 10) keep theirs: a job starting
//! removes the epoch folders of older finished jobs beyond that. Study trials keep only their
//! best epoch (`kiln studies promote`), as before.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use kiln_core::api::EpochCheckpoint;
use kiln_core::jobs::{JobDir, JobId, JobRequest, JobSpec, MetricRecord};
use kiln_core::kinds::MetricKind;
use kiln_core::registry::{CheckpointLink, Extras, Registry, Trained, VersionManifest};
use kiln_core::study::BestCheckpoint;
use kiln_engine::checkpoint::Checkpoint;
use serde::{Deserialize, Serialize};

/// `<n>.json`: what registering epoch `n` needs besides its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EpochRecord {
    step: u64,
    /// `sha256:<hex>` of `<n>.safetensors`.
    sha256: String,
    checkpoint: BestCheckpoint,
}

/// The folder of `job`'s epoch checkpoints.
pub fn dir(job: &JobDir) -> PathBuf {
    job.checkpoints().join("epochs")
}

/// Keeps each epoch's checkpoint of one training job (the worker's side).
pub struct Keeper {
    dir: PathBuf,
    template: BestCheckpoint,
    /// The epoch whose validation record arrived, waiting for its end-of-epoch checkpoint.
    pending: Option<(u64, BestCheckpoint)>,
}

impl Keeper {
    pub fn new(job: &JobDir, template: BestCheckpoint) -> Self {
        Self {
            dir: dir(job),
            template,
            pending: None,
        }
    }

    pub fn observe(&mut self, record: &MetricRecord) {
        if record.kind != MetricKind::Val {
            return;
        }
        let mut checkpoint = self.template.clone();
        checkpoint.epoch = record.epoch;
        // Not NaN, which JSON cannot hold.
        checkpoint.value = record.val_loss.unwrap_or_default();
        checkpoint.draft.metrics = crate::worker::val_metrics(record);
        self.pending = Some((record.step, checkpoint));
    }

    /// Keeps `checkpoint` when it ends the epoch whose validation record came last. A failure
    /// (e.g. a full disk) is reported in the job's log and training goes on: these copies are
    /// extras, the job's own checkpoint is not.
    pub fn save(&mut self, checkpoint: &Checkpoint<'_>) {
        let position = checkpoint.position;
        let Some((step, kept)) = self
            .pending
            .take_if(|(_, b)| position.batch == 0 && b.epoch == position.epoch)
        else {
            return;
        };
        let epoch = kept.epoch;
        if let Err(e) = self.write(step, kept, &checkpoint.model_bytes) {
            eprintln!("kilnd worker: epoch {epoch}'s checkpoint was not kept (it cannot be registered later): {e:#}");
            let _ = std::fs::remove_file(self.dir.join(format!("{epoch}.safetensors")));
        }
    }

    fn write(&self, step: u64, checkpoint: BestCheckpoint, weights: &[u8]) -> anyhow::Result<()> {
        kiln_core::fsx::create_dir_durably(&self.dir)?;
        let epoch = checkpoint.epoch;
        kiln_core::fsx::write_atomic(&self.dir.join(format!("{epoch}.safetensors")), weights)?;
        let record = EpochRecord {
            step,
            sha256: hex(weights),
            checkpoint,
        };
        kiln_core::fsx::write_atomic(
            &self.dir.join(format!("{epoch}.json")),
            &serde_json::to_vec_pretty(&record)?,
        )?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    kiln_core::registry::sha256(bytes).to_string()
}

/// Removes the epoch checkpoints of finished jobs older than the newest `keep` that have
/// them (`current`, starting now, counts as one).
pub fn prune(home: &Path, keep: usize, current: &JobId) {
    let mut kept = 1;
    for job in kiln_core::jobs::list(home).iter().rev() {
        let epochs = dir(job);
        if &job.id == current || !epochs.is_dir() {
            continue;
        }
        let finished = job.status().is_ok_and(|s| s.state.is_final());
        if kept < keep || !finished {
            kept += usize::from(finished);
            continue;
        }
        if let Err(e) = std::fs::remove_dir_all(&epochs) {
            eprintln!("kilnd worker: cannot remove {}: {e}", epochs.display());
        }
    }
}

/// The epochs of `job` whose checkpoints are kept, in order.
pub fn list(job: &JobDir) -> Vec<EpochCheckpoint> {
    let mut epochs: Vec<EpochCheckpoint> = std::fs::read_dir(dir(job))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let epoch: usize = name.to_str()?.strip_suffix(".json")?.parse().ok()?;
            let record = read_record(&entry.path()).ok()?;
            Some(EpochCheckpoint {
                epoch,
                step: record.step,
                metrics: record.checkpoint.draft.metrics,
            })
        })
        .collect();
    epochs.sort_by_key(|e| e.epoch);
    epochs
}

fn read_record(path: &Path) -> anyhow::Result<EpochRecord> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is corrupt", path.display()))
}

/// Why a registration from an epoch failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0:#}")]
    Unprocessable(anyhow::Error),
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// Why `job` has no kept epochs, for listings that come back empty.
pub fn why_none(job: &JobDir, spec: &JobSpec) -> Option<String> {
    let JobRequest::Train(train) = &spec.request else {
        return Some(format!(
            "job {} is not a training job; only training keeps epoch checkpoints",
            job.id
        ));
    };
    if let Some(tag) = &train.trial {
        return Some(format!(
            "a study trial keeps only its best epoch; register it with `kiln studies promote {} --trial {}`",
            tag.study, tag.trial
        ));
    }
    if dir(job).is_dir() {
        return None;
    }
    let finished = job.status().is_ok_and(|s| s.state.is_final());
    Some(if finished {
        format!(
            "no epoch checkpoints are kept for job {}: only the newest [training] keep_epoch_checkpoints training jobs keep them (default {})",
            job.id,
            kiln_core::settings::KEEP_EPOCH_CHECKPOINTS
        )
    } else {
        "none yet: an epoch's checkpoint is kept when the epoch ends".to_owned()
    })
}

/// Registers epoch `epoch` of training job `job` as the next version of its model; its
/// manifest records the job, epoch and step (`checkpoint`) and that epoch's validation figures.
pub fn register(home: &Path, job: &JobDir, epoch: usize) -> Result<VersionManifest, RegisterError> {
    let spec = job.spec().map_err(|e| RegisterError::Failed(e.into()))?;
    let JobRequest::Train(train) = &spec.request else {
        return Err(RegisterError::Unprocessable(anyhow!(
            "job {} is not a training job; only training keeps epoch checkpoints",
            job.id
        )));
    };
    let record_path = dir(job).join(format!("{epoch}.json"));
    if !record_path.is_file() {
        let kept: Vec<String> = list(job).iter().map(|e| e.epoch.to_string()).collect();
        let why = match why_none(job, &spec) {
            Some(why) => why,
            None => format!("the kept epochs are {}", kept.join(", ")),
        };
        return Err(RegisterError::NotFound(format!(
            "job {} has no checkpoint of epoch {epoch}: {why}",
            job.id
        )));
    }
    let record = read_record(&record_path).map_err(RegisterError::Unprocessable)?;
    let weights_path = dir(job).join(format!("{epoch}.safetensors"));
    let weights = std::fs::read(&weights_path)
        .with_context(|| format!("cannot read {}", weights_path.display()))
        .map_err(RegisterError::Unprocessable)?;
    if hex(&weights) != record.sha256 {
        return Err(RegisterError::Unprocessable(anyhow!(
            "{} is corrupt: it does not match the digest its epoch record holds; nothing was registered",
            weights_path.display()
        )));
    }
    let kept = record.checkpoint;
    let mut draft = kept.draft;
    draft.checkpoint = Some(CheckpointLink {
        job: job.id.to_string(),
        epoch,
        step: record.step,
    });
    let registry = Registry::open(home).map_err(|e| RegisterError::Failed(e.into()))?;
    let build = crate::signing::build_of(job, None);
    let signer = crate::signing::signer_for_registration();
    let trained = Trained {
        draft,
        weights: &weights,
        classes: &kept.classes,
        vocab: kept.vocab.as_ref(),
        task: &kept.task,
        description: kept.description,
        extras: Extras {
            card: train.card.as_deref(),
            build: Some(&build),
            signer: signer.as_ref().map(|(_, key)| key),
            exact: false,
        },
    };
    registry
        .register_trained(&train.model, trained)
        .with_context(|| format!("cannot register epoch {epoch} of job {}", job.id))
        .map_err(RegisterError::Failed)
}
