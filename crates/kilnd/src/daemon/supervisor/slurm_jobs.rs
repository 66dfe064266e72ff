//! The supervisor's side of the slurm executor: handing queued jobs to `sbatch`, recording
//! what `squeue` says about them, and ending a job once its Slurm job has ended.
//!
//! The worker writes `status.json` on its node as it does locally; the daemon writes only
//! `slurm.json`, and touches `status.json` only after Slurm says the job ended (its worker
//! is gone): to end a job whose worker left no final status, or to add Slurm's exit code to
//! a failure the worker recorded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kiln_core::jobs::{JobDir, JobId, JobState, SlurmJob};
use kiln_core::registry::now_rfc3339;

use super::{Jobs, Live, Supervisor, Worker, finish_as, finish_unknown, kilnd_for_children};
use crate::daemon::slurm::{self, Lookup};

/// How often Slurm is asked about the jobs it runs: `squeue` costs its controller a little
/// for every caller, and a job's state changes on the scale of seconds.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// What one poll learned, by Slurm job id.
pub(super) type Polled = HashMap<u64, Lookup>;

/// When Slurm was last asked, and the last error it gave (reported once, not every poll).
#[derive(Debug, Default)]
pub(super) struct PollClock {
    at: Option<Instant>,
    error: Option<String>,
}

impl Supervisor {
    /// Asks Slurm about every live Slurm job, when a poll is due.
    pub(super) fn poll_slurm(&self) -> Option<Polled> {
        let ids: Vec<u64> = self.lock().live.values().filter_map(Live::slurm_id).collect();
        if ids.is_empty() || !self.poll_due() {
            return None;
        }
        let result = slurm::poll(&ids);
        let mut clock = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(polled) => {
                clock.error = None;
                Some(polled)
            }
            Err(e) => {
                if clock.error.as_ref() != Some(&e) {
                    eprintln!("kilnd: cannot read the Slurm jobs' states (retrying every {POLL_EVERY:?}): {e}");
                }
                clock.error = Some(e);
                None
            }
        }
    }

    fn poll_due(&self) -> bool {
        let mut clock = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        let due = clock.at.is_none_or(|at| at.elapsed() >= POLL_EVERY);
        if due {
            clock.at = Some(Instant::now());
        }
        due
    }

    /// Submits each job with `sbatch`, outside the lock (the controller may be slow), then
    /// records its Slurm job, or ends it `failed` with sbatch's message.
    pub(super) fn submit_to_slurm(&self, queued: Vec<JobDir>) {
        let Some(sbatch) = &self.slurm else { return };
        for dir in queued {
            // Absolute paths: the node runs the script from its own working directory.
            let home = std::path::absolute(&self.home).unwrap_or_else(|_| self.home.clone());
            let dir = JobDir::new(&home, dir.id);
            let outcome = kilnd_for_children()
                .map_err(|e| format!("cannot find kilnd's own binary: {e}"))
                .and_then(|kilnd| slurm::submit(sbatch, &kiln_core::jobs::worker_command(kilnd, &home, &dir), &dir));
            if let Some(job_id) = self.record_submission(&dir.id, outcome) {
                let _ = slurm::cancel(job_id);
            }
        }
    }

    /// Records a submission's outcome; returns the Slurm job to cancel when the job was
    /// cancelled while it was being submitted.
    fn record_submission(&self, id: &JobId, outcome: Result<SlurmJob, String>) -> Option<u64> {
        let mut jobs = self.lock();
        let live = jobs.live.get_mut(id)?;
        match outcome {
            Ok(record) => {
                let job_id = record.job_id;
                live.worker = Some(Worker::Slurm { job_id });
                live.slurm = Some(record);
                live.cancelling.then_some(job_id)
            }
            Err(e) => {
                live.worker = None;
                let (state, message) = if live.cancelling {
                    (JobState::Cancelled, "cancelled before it started".to_owned())
                } else {
                    (JobState::Failed, refused(&e))
                };
                finish_as(&live.dir, state, &message);
                None
            }
        }
    }
}

fn refused(why: &str) -> String {
    format!(
        "Slurm did not take the job: {why}; check the [daemon] table of config.toml \
         (partition, account, gres, time, sbatch_args)"
    )
}

/// Every queued job not yet submitted, marked as being submitted. Slurm queues them, so no
/// device limit applies; a study paces its own trials.
pub(super) fn take_queued(jobs: &mut Jobs) -> Vec<JobDir> {
    jobs.live
        .values_mut()
        .filter(|l| l.worker.is_none() && l.is_queued())
        .map(|l| {
            l.worker = Some(Worker::Submitting);
            l.dir.clone()
        })
        .collect()
}

/// Saves what a poll said about each live Slurm job whose state, reason or exit code changed.
pub(super) fn record(jobs: &mut Jobs, polled: &Polled) {
    for live in jobs.live.values_mut() {
        let (Some(record), Some(job_id)) = (&live.slurm, live.slurm_id()) else {
            continue;
        };
        let Some(next) = polled.get(&job_id).and_then(|lookup| slurm::updated(record, lookup)) else {
            continue;
        };
        if let Err(e) = live.dir.write_slurm(&next) {
            eprintln!("kilnd: {e}");
        }
        live.slurm = Some(next);
    }
}

impl Live {
    /// Once Slurm says the job ended: a worker that left no final status ended as Slurm says
    /// (cancelled, pruned, or failed with Slurm's state and exit code); a failure the worker
    /// recorded gains Slurm's exit code.
    pub(super) fn reap_slurm(&mut self) {
        let Some(record) = self.slurm.clone().filter(SlurmJob::has_ended) else {
            return;
        };
        self.worker = None;
        let ending = record.ending();
        if let Some(order) = self.dir.prune_order() {
            let message = format!("pruned at epoch {}: {}", order.epoch, order.reason);
            finish_as(&self.dir, JobState::Pruned, &message);
        } else if self.cancelling || record.was_cancelled() {
            finish_as(&self.dir, JobState::Cancelled, &format!("cancelled; {ending}"));
        } else {
            finish_unknown(&self.dir, &ending);
        }
        if record.exit_code.is_some() {
            add_slurm_ending(&self.dir, &ending);
        }
    }
}

/// Appends how Slurm saw the job end to a failure's message, once.
fn add_slurm_ending(dir: &JobDir, ending: &str) {
    let Ok(mut status) = dir.status() else { return };
    if status.state != JobState::Failed || status.message.contains(ending) {
        return;
    }
    status.message = format!("{} ({ending})", status.message);
    status.updated_at = now_rfc3339();
    let _ = dir.write_status(&status);
}

/// Slurm jobs found by name (`kiln-<job id>`) for jobs with no `slurm.json`: a daemon that
/// died between `sbatch` answering and the record being written left them, and they must be
/// adopted, not submitted twice. Slurm is asked once, and only when such a job exists.
pub(super) struct Unrecorded {
    enabled: bool,
    by_name: Option<HashMap<String, slurm::Observed>>,
}

impl Unrecorded {
    pub(super) fn new(enabled: bool) -> Self {
        Self { enabled, by_name: None }
    }

    /// The Slurm job named for `dir`'s job, recorded in its folder.
    pub(super) fn find(&mut self, dir: &JobDir) -> Option<SlurmJob> {
        if !self.enabled {
            return None;
        }
        let jobs = self.by_name.get_or_insert_with(slurm::kiln_jobs_by_name);
        let found = jobs.get(&format!("kiln-{}", dir.id))?;
        let record = SlurmJob {
            job_id: found.job_id,
            state: found.state.clone(),
            reason: found.reason.clone(),
            exit_code: found.exit_code.clone(),
            submitted_at: now_rfc3339(),
        };
        dir.write_slurm(&record).ok()?;
        Some(record)
    }
}
