//! Keeping a study's trials in step with their jobs: state, per-epoch objective, early
//! stopping, one retry after a crash, and the study's own end.

use std::path::Path;

use kiln_core::api::JobView;
use kiln_core::jobs::{JobDir, JobState};
use kiln_core::registry::now_rfc3339;
use kiln_core::study::prune::{self, Decision};
use kiln_core::study::{Objective, SamplerKind, StudyRecord, StudySpec, StudyState, Trial, TrialState, sampler};

use super::{Run, unix_now};
use crate::daemon::supervisor::Supervisor;

/// Attempts a trial gets: the first run and one retry after a crash.
pub const ATTEMPTS: u32 = 2;

/// Trials the study will plan in all (a grid has no more than its combinations).
pub fn trial_budget(spec: &StudySpec) -> usize {
    match spec.sampler {
        SamplerKind::Grid => spec.budget.trials.min(sampler::grid_size(spec)),
        _ => spec.budget.trials,
    }
}

/// Whether the wall-clock budget is spent.
pub fn out_of_time(record: &StudyRecord) -> bool {
    record
        .spec
        .budget
        .wall_clock_secs
        .is_some_and(|limit| record.ran_secs + unix_now().saturating_sub(record.started_unix) >= limit)
}

/// The trial waits for a job (planned, retried or resumed).
pub fn needs_job(trial: &Trial) -> bool {
    !trial.state.is_final() && trial.awaiting_job
}

/// The trial has a job that has not ended: it holds one of the study's slots.
pub fn has_live_job(trial: &Trial) -> bool {
    !trial.state.is_final() && !trial.awaiting_job && trial.job().is_some()
}

/// Syncs every trial that has a live job: its per-epoch values, early stopping, its state.
pub fn trials(run: &mut Run, supervisor: &Supervisor, home: &Path) {
    for index in 0..run.record.trials.len() {
        let trial = &run.record.trials[index];
        if !has_live_job(trial) {
            continue;
        }
        let Some(id) = trial.job().cloned() else { continue };
        let Ok(view) = supervisor.get(&id) else { continue };
        let dir = JobDir::new(home, id.clone());
        let offset = run.offsets.entry(id).or_default();
        let scored = run.record.trials[index].values.len();
        read_values(&mut run.record.trials[index], &dir, offset, run.record.spec.objective);
        // Each new epoch in turn: a tick may bring several, and a rung may be among them.
        for epoch in scored + 1..=run.record.trials[index].values.len() {
            if decide(&mut run.record, index, epoch, supervisor, &view) {
                break;
            }
        }
        let running = run.record.state == StudyState::Running;
        apply_job_state(&mut run.record.trials[index], &view, &dir, running);
    }
}

/// Reads the job's new validation records into the trial's per-epoch objective values.
fn read_values(trial: &mut Trial, dir: &JobDir, offset: &mut u64, objective: Objective) {
    let Ok((records, next)) = dir.metrics_since(*offset) else {
        return;
    };
    *offset = next;
    for record in records {
        let (Some(value), Some(index)) = (objective.metric.of(&record), record.epoch.checked_sub(1)) else {
            continue;
        };
        if index < trial.values.len() {
            trial.values[index] = value;
        } else if index == trial.values.len() {
            trial.values.push(value);
        }
    }
}

/// Applies the early-stopping rule to a trial's `epoch`; on a prune, records the decision
/// (saved with the study) and asks the supervisor to stop the job.
fn decide(record: &mut StudyRecord, index: usize, epoch: usize, supervisor: &Supervisor, view: &JobView) -> bool {
    let trial = &record.trials[index];
    if trial.pruned.is_some() || view.status.state.is_final() {
        return false;
    }
    let mut at_epoch = trial.clone();
    at_epoch.values.truncate(epoch);
    let Decision::Prune(order) = prune::decide(&record.spec, &at_epoch, &record.trials) else {
        return false;
    };
    if let Err(e) = supervisor.prune(&view.id, &order) {
        eprintln!("kilnd: cannot stop pruned trial job {}: {e}", view.id);
    }
    record.trials[index].pruned = Some(order);
    true
}

/// Moves the trial to its job's state; a crashed first attempt is queued for a retry while
/// the study runs.
fn apply_job_state(trial: &mut Trial, view: &JobView, dir: &JobDir, running: bool) {
    let status = &view.status;
    match status.state {
        JobState::Queued => trial.state = TrialState::Queued,
        JobState::Running => {
            trial.state = TrialState::Running;
            trial.started_at.get_or_insert_with(|| status.updated_at.clone());
        }
        JobState::Succeeded => end(trial, TrialState::Completed, &status.message),
        JobState::Pruned => {
            if let Some(order) = dir.prune_order() {
                trial.pruned = Some(order);
            }
            end(trial, TrialState::Pruned, &status.message);
        }
        // Stopped by our own prune order, but ended before it could say so.
        JobState::Cancelled if trial.pruned.is_some() => end(trial, TrialState::Pruned, &status.message),
        JobState::Cancelled => end(trial, TrialState::Cancelled, &status.message),
        JobState::Failed if running && trial.attempt() < ATTEMPTS => {
            let first = status.message.lines().next().unwrap_or_default();
            trial.message = format!("attempt {} failed ({first}); retrying", trial.attempt());
            trial.state = TrialState::Queued;
            trial.awaiting_job = true;
            trial.values.clear();
            trial.pruned = None;
        }
        JobState::Failed => end(trial, TrialState::Failed, &status.message),
    }
}

fn end(trial: &mut Trial, state: TrialState, message: &str) {
    trial.state = state;
    trial.message = message.to_owned();
    trial.ended_at = Some(now_rfc3339());
}

/// Ends a running study once nothing is left to run: every planned trial ended and the
/// budget spent, or the wall clock out with no trial running.
pub fn finish(record: &mut StudyRecord) {
    if record.state != StudyState::Running || record.trials.iter().any(has_live_job) {
        return;
    }
    let timed_out = out_of_time(record);
    let budget_spent = record.trials.len() >= trial_budget(&record.spec) && !record.trials.iter().any(needs_job);
    if !(timed_out || budget_spent) {
        return;
    }
    for trial in record.trials.iter_mut().filter(|t| !t.state.is_final()) {
        end(
            trial,
            TrialState::Cancelled,
            "the study's wall-clock budget ran out before it ran",
        );
    }
    record.ran_secs += unix_now().saturating_sub(record.started_unix);
    record.started_unix = unix_now();
    record.state = StudyState::Completed;
    record.ended_at = Some(now_rfc3339());
    record.message = summary(record, timed_out && !budget_spent);
}

/// `24 trials: 7 completed, 15 pruned, 2 failed; best val_accuracy 0.8812 (trial 9)`.
pub fn summary(record: &StudyRecord, timed_out: bool) -> String {
    let mut text = format!(
        "{} trials: {} completed, {} pruned, {} failed, {} cancelled",
        record.trials.len(),
        record.count(TrialState::Completed),
        record.count(TrialState::Pruned),
        record.count(TrialState::Failed),
        record.count(TrialState::Cancelled),
    );
    if timed_out {
        text.push_str(" (the wall-clock budget ran out)");
    }
    match record.best() {
        Some((trial, value)) => text.push_str(&format!(
            "; best {} {value:.4} (trial {})",
            record.spec.objective.metric, trial.number
        )),
        None => text.push_str("; no trial was scored"),
    }
    text
}
