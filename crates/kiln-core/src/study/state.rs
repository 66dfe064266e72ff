//! A study's record and its trials, and the folder that holds them:
//! `$KILN_HOME/studies/<name>/{study.toml, state.json}`, each written crash-safely.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Params, StudySpec};
use crate::fsx;
use crate::jobs::JobId;
use crate::names::Name;

/// Where a study is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StudyState {
    /// Starting trials as slots free up.
    Running,
    /// Stopped by the operator (`kiln studies resume` goes on).
    Stopped,
    /// Every planned trial ended, or the wall clock ran out.
    Completed,
}
crate::kinds::word_enum!(StudyState, "study state");

/// Where a trial is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Planned (its parameters chosen), its job not yet running.
    Queued,
    Running,
    /// Ran every epoch.
    Completed,
    /// Stopped early by the study's rule.
    Pruned,
    /// Crashed twice (or could not start).
    Failed,
    /// Cancelled by the operator or by `kiln studies stop`.
    Cancelled,
}
crate::kinds::word_enum!(TrialState, "trial state");

impl TrialState {
    /// Whether the trial has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Pruned | Self::Failed | Self::Cancelled)
    }
}

/// Where and why early stopping ended a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunedAt {
    /// The epoch (rung) whose validation figure decided it.
    pub epoch: usize,
    pub reason: String,
}

/// One trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 0-based, in the order trials were planned.
    pub number: u32,
    pub params: Params,
    pub state: TrialState,
    /// One job per attempt, oldest first.
    #[serde(default)]
    pub jobs: Vec<JobId>,
    /// Waiting for a new job: just planned, retried after a crash, or resumed.
    #[serde(default)]
    pub awaiting_job: bool,
    /// The objective after each epoch (index 0 is epoch 1).
    #[serde(default)]
    pub values: Vec<f64>,
    /// Device the trial was placed on (`cpu`, `cuda:1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned: Option<PrunedAt>,
    /// How it ended (a failure's log tail, a cancel's cause).
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

impl Trial {
    /// A planned trial.
    pub fn planned(number: u32, params: Params) -> Self {
        Self {
            number,
            params,
            state: TrialState::Queued,
            jobs: Vec::new(),
            awaiting_job: true,
            values: Vec::new(),
            device: None,
            pruned: None,
            message: String::new(),
            started_at: None,
            ended_at: None,
        }
    }

    /// The attempt its current job is (1 for the first run).
    pub fn attempt(&self) -> u32 {
        self.jobs.len() as u32
    }

    /// The job of its latest attempt.
    pub fn job(&self) -> Option<&JobId> {
        self.jobs.last()
    }

    /// Epochs it has been validated on.
    pub fn epochs_run(&self) -> usize {
        self.values.len()
    }
}

/// `state.json`: the spec, the trials and how the study stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRecord {
    pub spec: StudySpec,
    /// The spec file as the operator gave it.
    pub source_file: String,
    pub state: StudyState,
    /// Why it stopped or completed.
    #[serde(default)]
    pub message: String,
    pub created_at: String,
    /// Unix seconds when it (last) started running: the wall-clock budget counts from here.
    pub started_unix: u64,
    /// Seconds run before the last resume.
    #[serde(default)]
    pub ran_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    pub trials: Vec<Trial>,
}

impl StudyRecord {
    pub fn name(&self) -> &Name {
        &self.spec.name
    }

    /// The trial with the best objective (completed or pruned), if any has one.
    pub fn best(&self) -> Option<(&Trial, f64)> {
        let objective = self.spec.objective;
        let mut best: Option<(&Trial, f64)> = None;
        for trial in &self.trials {
            if let Some((_, value)) = objective.best(trial.values.iter().copied())
                && best.is_none_or(|(_, b)| objective.better(value, b))
            {
                best = Some((trial, value));
            }
        }
        best
    }

    /// How many trials are in `state`.
    pub fn count(&self, state: TrialState) -> usize {
        self.trials.iter().filter(|t| t.state == state).count()
    }

    /// The best value after each trial in trial order (`None` until a trial has a value).
    pub fn best_so_far(&self) -> Vec<Option<f64>> {
        let objective = self.spec.objective;
        let mut best: Option<f64> = None;
        self.trials
            .iter()
            .map(|t| {
                if let Some((_, v)) = objective.best(t.values.iter().copied())
                    && best.is_none_or(|b| objective.better(v, b))
                {
                    best = Some(v);
                }
                best
            })
            .collect()
    }

    /// Trial-epochs run so far: the compute the study has spent.
    pub fn epochs_spent(&self) -> usize {
        self.trials.iter().map(Trial::epochs_run).sum()
    }
}

/// A study's folder.
#[derive(Debug, Clone)]
pub struct StudyDir {
    pub name: Name,
    pub path: PathBuf,
}

/// Study-folder errors.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("unknown study '{0}': `kiln studies ls` lists the studies")]
    Unknown(Name),
    #[error(
        "a study named '{0}' already exists: `kiln studies resume {0}` continues it, or give the spec another name"
    )]
    Exists(Name),
    #[error("study file {} is unreadable: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StudyDir {
    /// The folder of study `name` under `home` (which may not exist yet).
    pub fn new(home: &Path, name: &Name) -> Self {
        Self {
            name: name.clone(),
            path: home.join("studies").join(name.as_str()),
        }
    }

    /// Creates the folder with the spec's source and the first record; refuses a name in use.
    pub fn create(home: &Path, source: &str, record: &StudyRecord) -> Result<Self, StudyError> {
        let dir = Self::new(home, record.name());
        if dir.path.join("state.json").exists() {
            return Err(StudyError::Exists(record.name().clone()));
        }
        fsx::create_dir_durably(&dir.path).map_err(dir.io("create", &dir.path))?;
        let spec = dir.path.join("study.toml");
        fsx::write_atomic(&spec, source.as_bytes()).map_err(dir.io("write", &spec))?;
        dir.save(record)?;
        Ok(dir)
    }

    pub fn state_path(&self) -> PathBuf {
        self.path.join("state.json")
    }

    /// Replaces `state.json` atomically.
    pub fn save(&self, record: &StudyRecord) -> Result<(), StudyError> {
        let path = self.state_path();
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| StudyError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        fsx::write_atomic(&path, &bytes).map_err(self.io("write", &path))
    }

    pub fn load(&self) -> Result<StudyRecord, StudyError> {
        let path = self.state_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StudyError::Unknown(self.name.clone())),
            Err(e) => return Err(self.io("read", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| StudyError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StudyError {
        let path = path.to_owned();
        move |source| StudyError::Io { action, path, source }
    }
}

/// Every study folder under `home`, by name.
pub fn list(home: &Path) -> Vec<StudyDir> {
    let mut names: Vec<Name> = std::fs::read_dir(home.join("studies"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Name::new(e.file_name().to_str()?).ok())
        .collect();
    names.sort();
    names.iter().map(|n| StudyDir::new(home, n)).collect()
}
