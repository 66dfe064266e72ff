//! The study runner: turns a study spec into trials, each an ordinary job that the
//! supervisor runs, and keeps `$KILN_HOME/studies/<name>/state.json` in step with them.
//!
//! Every supervisor tick it syncs each study's live trials from their job folders (state,
//! per-epoch objective), applies the early-stopping rule to new epochs, retries a crashed
//! trial once, plans and submits new trials while slots and budget allow, and ends the
//! study when nothing is left to run. Each change is saved crash-safely before it acts:
//! a trial is written `queued` with its parameters before its job is submitted, and a job
//! carries its trial's tag, so after a daemon kill -9 the next daemon adopts the job it finds
//! for a trial instead of submitting another — no trial is lost or run twice.

mod place;
mod sync;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_core::api::{Event, StudyView};
use kiln_core::jobs::{JobDir, JobId, JobRequest};
use kiln_core::names::Name;
use kiln_core::registry::{Extras, Registry, Trained, VersionManifest, now_rfc3339};
use kiln_core::study::state::{self as study_state, StudyDir, StudyError};
use kiln_core::study::{
    BestCheckpoint, SpecError, StudyLink, StudyRecord, StudySpec, StudyState, Trial, TrialState, spec,
};

use super::supervisor::Supervisor;
use super::telemetry::TelemetryStore;
use crate::events::Hub;

/// Why a study request was refused.
#[derive(Debug, thiserror::Error)]
pub enum StudyFailure {
    /// The spec cannot run (422): names the line and the fix.
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Study(#[from] StudyError),
    /// The request does not fit the study's state (409).
    #[error("{0}")]
    Conflict(String),
    /// Something the request names does not exist (404).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

/// One study as the runner holds it.
struct Run {
    dir: StudyDir,
    record: StudyRecord,
    /// How far each trial job's metrics have been read.
    offsets: HashMap<JobId, u64>,
}

/// Every study of the home, behind one lock.
pub struct Studies {
    home: PathBuf,
    hub: Hub,
    telemetry: Arc<TelemetryStore>,
    runs: Mutex<BTreeMap<Name, Run>>,
    /// Studies that could not be read, with why.
    problems: Vec<String>,
    /// Jobs already tagged for a trial when the daemon started: (study, trial, attempt) → job.
    orphans: Mutex<HashMap<(Name, u32, u32), JobId>>,
    /// Where trials run: this machine's GPUs, or Slurm's nodes.
    executor: place::Executor,
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Studies {
    /// Loads every study under `home`; jobs the supervisor knows that carry a trial tag are
    /// indexed so a trial whose submission was not recorded adopts its job.
    pub fn new(home: &Path, hub: Hub, telemetry: Arc<TelemetryStore>, supervisor: &Supervisor) -> Self {
        let mut runs = BTreeMap::new();
        let mut problems = Vec::new();
        for dir in study_state::list(home) {
            match dir.load() {
                Ok(record) => {
                    runs.insert(dir.name.clone(), Run::new(dir, record));
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        let orphans = supervisor
            .list()
            .into_iter()
            .filter_map(|view| {
                let tag = view.spec.request.as_train()?.trial.clone()?;
                Some(((tag.study, tag.trial, tag.attempt), view.id))
            })
            .collect();
        Self {
            home: home.to_owned(),
            hub,
            telemetry,
            runs: Mutex::new(runs),
            problems,
            orphans: Mutex::new(orphans),
            executor: if supervisor.uses_slurm() {
                place::Executor::Slurm
            } else {
                place::Executor::Local {
                    gpus: usize::try_from(tch::Cuda::device_count()).unwrap_or(0),
                }
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Name, Run>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every study by name, and the ones that could not be read.
    pub fn list(&self) -> (Vec<StudyView>, Vec<String>) {
        let studies = self.lock().values().map(|r| r.record.clone()).collect();
        (studies, self.problems.clone())
    }

    /// One study.
    pub fn get(&self, name: &Name) -> Result<StudyView, StudyFailure> {
        self.lock()
            .get(name)
            .map(|r| r.record.clone())
            .ok_or_else(|| StudyError::Unknown(name.clone()).into())
    }

    /// Checks a spec (syntax, every parameter value against the architecture and the
    /// training options, the dataset), writes the study folder and starts its first trials.
    pub fn create(&self, supervisor: &Supervisor, source: &str, file: &str) -> Result<StudyView, StudyFailure> {
        let spec = spec::parse(source, file)?;
        check_with_engine(&spec, file)?;
        let record = StudyRecord {
            spec,
            source_file: file.to_owned(),
            state: StudyState::Running,
            message: String::new(),
            created_at: now_rfc3339(),
            started_unix: unix_now(),
            ran_secs: 0,
            ended_at: None,
            trials: Vec::new(),
        };
        let mut runs = self.lock();
        if runs.contains_key(record.name()) {
            return Err(StudyError::Exists(record.name().clone()).into());
        }
        let dir = StudyDir::create(&self.home, source, &record)?;
        let name = record.name().clone();
        runs.insert(name.clone(), Run::new(dir, record));
        let run = runs
            .get_mut(&name)
            .ok_or_else(|| StudyFailure::Internal("study vanished".into()))?;
        self.advance(run, supervisor);
        Ok(run.record.clone())
    }

    /// Stops a running study: no new trials; live trials are cancelled (they checkpoint) and
    /// `resume` continues them.
    pub fn stop(&self, supervisor: &Supervisor, name: &Name) -> Result<StudyView, StudyFailure> {
        let mut runs = self.lock();
        let run = runs.get_mut(name).ok_or_else(|| StudyError::Unknown(name.clone()))?;
        if run.record.state != StudyState::Running {
            return Err(StudyFailure::Conflict(format!(
                "study {name} is {}, not running",
                run.record.state
            )));
        }
        run.record.ran_secs += unix_now().saturating_sub(run.record.started_unix);
        run.record.state = StudyState::Stopped;
        run.record.message = "stopped by the operator; `kiln studies resume` continues it".into();
        self.save(run)?;
        for trial in run.record.trials.iter().filter(|t| !t.state.is_final()) {
            if let Some(job) = trial.job() {
                let _ = supervisor.cancel(job);
            }
        }
        Ok(run.record.clone())
    }

    /// Resumes a stopped study: trials its stop cancelled continue from their checkpoints.
    pub fn resume(&self, supervisor: &Supervisor, name: &Name) -> Result<StudyView, StudyFailure> {
        let mut runs = self.lock();
        let run = runs.get_mut(name).ok_or_else(|| StudyError::Unknown(name.clone()))?;
        if run.record.state != StudyState::Stopped {
            return Err(StudyFailure::Conflict(format!(
                "study {name} is {}; only a stopped study resumes",
                run.record.state
            )));
        }
        run.record.state = StudyState::Running;
        run.record.started_unix = unix_now();
        run.record.message = String::new();
        run.record.ended_at = None;
        for trial in run
            .record
            .trials
            .iter_mut()
            .filter(|t| t.state == TrialState::Cancelled)
        {
            trial.state = TrialState::Queued;
            trial.awaiting_job = true;
            trial.message = "resumed".into();
            trial.ended_at = None;
        }
        self.save(run)?;
        self.advance(run, supervisor);
        Ok(run.record.clone())
    }

    /// One pass over every study with work: sync, prune, retry, launch, finish.
    pub fn tick(&self, supervisor: &Supervisor) -> bool {
        let mut submitted = false;
        let mut runs = self.lock();
        for run in runs.values_mut() {
            let live = run.record.state == StudyState::Running || run.record.trials.iter().any(|t| !t.state.is_final());
            if live {
                submitted |= self.advance(run, supervisor);
            }
        }
        submitted
    }

    /// Whether any study has something to do (a tick is due even with no live job).
    pub fn busy(&self) -> bool {
        self.lock().values().any(|r| r.record.state == StudyState::Running)
    }

    /// Syncs, decides and launches for one study; saves and publishes when anything changed.
    /// Returns whether it submitted a job.
    fn advance(&self, run: &mut Run, supervisor: &Supervisor) -> bool {
        let before = run.record.clone();
        sync::trials(run, supervisor, &self.home);
        let submitted = self.launch(run, supervisor);
        sync::finish(&mut run.record);
        if run.record != before
            && let Err(e) = self.save(run)
        {
            eprintln!("kilnd: {e}");
        }
        submitted
    }

    fn save(&self, run: &Run) -> Result<(), StudyError> {
        run.dir.save(&run.record)?;
        self.hub.publish(&Event::Study(Box::new(run.record.clone())));
        Ok(())
    }

    /// Starts trials while the study has free slots and budget: first trials waiting for a
    /// job (requeued, retried), then newly planned ones.
    fn launch(&self, run: &mut Run, supervisor: &Supervisor) -> bool {
        if run.record.state != StudyState::Running || sync::out_of_time(&run.record) {
            return false;
        }
        let mut submitted = false;
        loop {
            let live = run.record.trials.iter().filter(|t| sync::has_live_job(t)).count();
            if live >= run.record.spec.budget.concurrent {
                return submitted;
            }
            let Some(number) = self.next_trial(run) else {
                return submitted;
            };
            let Some(device) = place::device(&run.record, &self.telemetry, self.executor) else {
                return submitted;
            };
            match self.submit(run, supervisor, number, device) {
                Ok(()) => submitted = true,
                Err(e) => {
                    let trial = &mut run.record.trials[number as usize];
                    trial.state = TrialState::Failed;
                    trial.message = format!("could not submit its job: {e}");
                    trial.ended_at = Some(now_rfc3339());
                }
            }
        }
    }

    /// The trial to give a job next: one waiting (requeued or retried), else a new one
    /// planned now (saved before its job exists). `None` when the budget is spent.
    fn next_trial(&self, run: &mut Run) -> Option<u32> {
        if let Some(t) = run.record.trials.iter().find(|t| sync::needs_job(t)) {
            return Some(t.number);
        }
        let planned = run.record.trials.len();
        if planned >= sync::trial_budget(&run.record.spec) {
            return None;
        }
        let number = planned as u32;
        let params = kiln_core::study::sampler::suggest(&run.record.spec, number, &run.record.trials);
        run.record.trials.push(Trial::planned(number, params));
        if let Err(e) = self.save(run) {
            eprintln!("kilnd: {e}");
            run.record.trials.pop();
            return None;
        }
        Some(number)
    }

    /// Submits (or, after a restart, adopts) the job of trial `number`'s next attempt.
    fn submit(
        &self,
        run: &mut Run,
        supervisor: &Supervisor,
        number: u32,
        device: place::Placement,
    ) -> Result<(), String> {
        let spec = run.record.spec.clone();
        let trial = &run.record.trials[number as usize];
        let attempt = trial.attempt() + 1;
        let key = (spec.name.clone(), number, attempt);
        let adopted = self.orphans.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        let id = match adopted {
            Some(id) => id,
            None => {
                let request = place::request(&spec, trial, attempt, &device, &self.home)?;
                supervisor
                    .submit(JobRequest::Train(request))
                    .map_err(|e| e.to_string())?
                    .id
            }
        };
        let trial = &mut run.record.trials[number as usize];
        trial.jobs.push(id);
        trial.awaiting_job = false;
        trial.device = Some(device.name);
        if let Err(e) = self.save(run) {
            eprintln!("kilnd: {e}");
        }
        Ok(())
    }

    /// Registers a trial's best checkpoint (the study's best trial when `trial` is `None`) as
    /// the next version of the study's model; its lineage names the study, trial and params.
    pub fn promote(&self, name: &Name, trial: Option<u32>) -> Result<VersionManifest, StudyFailure> {
        let record = self.get(name)?;
        let number = match trial {
            Some(n) => n,
            None => record
                .best()
                .map(|(t, _)| t.number)
                .ok_or_else(|| StudyFailure::Conflict(format!("study {name} has no scored trial yet")))?,
        };
        let trial = record.trials.get(number as usize).ok_or_else(|| {
            StudyFailure::NotFound(format!(
                "study {name} has no trial {number} (it has {})",
                record.trials.len()
            ))
        })?;
        let (job, best, weights) = best_checkpoint(&self.home, &record, trial)?;
        let mut draft = best.draft;
        draft
            .hyperparameters
            .extend(trial.params.iter().map(|(k, v)| (format!("study.{k}"), v.clone())));
        draft.study = Some(StudyLink {
            study: name.clone(),
            trial: number,
            params: trial.params.clone(),
            job: job.to_string(),
            epoch: best.epoch,
        });
        let registry = Registry::open(&self.home).map_err(|e| StudyFailure::Internal(e.to_string()))?;
        let build = crate::signing::build_of(&JobDir::new(&self.home, job.clone()), None);
        let signer = crate::signing::signer_for_registration();
        let trained = Trained {
            draft,
            weights: &weights,
            classes: &best.classes,
            vocab: best.vocab.as_ref(),
            task: &best.task,
            description: best.description,
            extras: Extras {
                card: record.spec.base.card.as_deref(),
                build: Some(&build),
                signer: signer.as_ref().map(|(_, key)| key),
                exact: false,
            },
        };
        registry
            .register_trained(&record.spec.base.model, trained)
            .map_err(|e| StudyFailure::Internal(format!("cannot register trial {number}: {e}")))
    }
}

/// The trial's best checkpoint over its attempts: job, record, weights.
fn best_checkpoint(
    home: &Path,
    record: &StudyRecord,
    trial: &Trial,
) -> Result<(JobId, BestCheckpoint, Vec<u8>), StudyFailure> {
    let objective = record.spec.objective;
    let mut best: Option<(JobId, BestCheckpoint)> = None;
    for job in &trial.jobs {
        let dir = JobDir::new(home, job.clone()).checkpoints();
        let Ok(bytes) = std::fs::read(dir.join("best.json")) else {
            continue;
        };
        let Ok(candidate) = serde_json::from_slice::<BestCheckpoint>(&bytes) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|(_, b)| objective.better(candidate.value, b.value))
        {
            best = Some((job.clone(), candidate));
        }
    }
    let (job, checkpoint) = best.ok_or_else(|| {
        StudyFailure::Conflict(format!(
            "trial {} of {} has no scored epoch to promote (state {})",
            trial.number,
            record.name(),
            trial.state
        ))
    })?;
    let path = JobDir::new(home, job.clone()).checkpoints().join("best.safetensors");
    let weights =
        std::fs::read(&path).map_err(|e| StudyFailure::Internal(format!("cannot read {}: {e}", path.display())))?;
    Ok((job, checkpoint, weights))
}

/// The checks that need the engine: every architecture config a trial can get, and the
/// dataset being installed.
fn check_with_engine(spec: &StudySpec, file: &str) -> Result<(), SpecError> {
    let at = |line: Option<usize>, message: String| SpecError {
        file: file.to_owned(),
        line,
        message,
    };
    let base_line = spec.lines.get("base").copied();
    kiln_engine::model::ArchConfig::check_overrides(spec.base.arch, &spec.base.config)
        .map_err(|e| at(base_line, format!("base: {e}")))?;
    for param in spec.params.iter().filter(|p| p.name.starts_with("config.")) {
        for value in spec::corner_values(&param.space) {
            let request = spec::apply(&spec.base, &BTreeMap::from([(param.name.clone(), value.clone())]))
                .map_err(|e| at(Some(param.line), format!("parameter `{}`: {e}", param.name)))?;
            kiln_engine::model::ArchConfig::check_overrides(spec.base.arch, &request.config)
                .map_err(|e| at(Some(param.line), format!("parameter `{}` = {value}: {e}", param.name)))?;
        }
    }
    kiln_engine::data::check_available(&spec.base.data, spec.base.data_path.as_deref())
        .map_err(|e| at(base_line, format!("base: {e}")))
}

impl Run {
    fn new(dir: StudyDir, record: StudyRecord) -> Self {
        Self {
            dir,
            record,
            offsets: HashMap::new(),
        }
    }
}
