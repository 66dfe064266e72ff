//! `kiln jobs ls|show|logs|wait|cancel|epochs|register` over the control API, and waiting for
//! a job's end (shared with `kiln eval`).

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Subcommand;

use super::daemon::connect;
use super::error::{CANCELLED, CliError, FAILURE};
use super::output::emit;
use super::table;
use kiln_core::api::{EpochList, JobRequest, JobView};
use kiln_core::client::Blocking;
use kiln_core::jobs::{JobId, JobState};

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs.
    Ls,
    /// Show one job's spec and status.
    Show { id: JobId },
    /// Print a job's worker log.
    Logs {
        id: JobId,
        /// Keep printing new lines until the job ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Wait until a job ends. Exit code 0 succeeded, 1 failed, 6 cancelled.
    Wait {
        id: JobId,
        /// Give up after this long (e.g. 90s, 10m); exit code 1.
        #[arg(long)]
        timeout: Option<humantime::Duration>,
    },
    /// Cancel a job (a running worker checkpoints first).
    Cancel { id: JobId },
    /// The epochs of a training job whose checkpoints are kept, with their validation
    /// figures (the newest `[training] keep_epoch_checkpoints` jobs keep them; default 10).
    Epochs { id: JobId },
    /// Register one epoch's checkpoint of a training job as a new version of its model
    /// (promote from the curve); the version records the job, epoch and step.
    Register {
        id: JobId,
        /// The epoch (1-based, as `kiln jobs epochs` lists them).
        #[arg(long)]
        epoch: usize,
    },
}

/// How often a job is polled while waiting or following.
pub const POLL: Duration = Duration::from_millis(250);
/// How often a followed log is polled.
const LOG_POLL: Duration = Duration::from_millis(300);

pub fn run(cmd: &JobsCommand, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    match cmd {
        JobsCommand::Ls => {
            let list = client.run(|c| c.jobs())?;
            emit(json, &list, || list_table(&list.jobs))?;
        }
        JobsCommand::Show { id } => {
            let job = client.run(|c| c.job(id))?;
            emit(json, &job, || show_text(&job))?;
        }
        JobsCommand::Logs { id, follow } => return logs(&client, id, *follow),
        JobsCommand::Wait { id, timeout } => return wait(&client, id, timeout.map(Into::into), json),
        JobsCommand::Cancel { id } => {
            let job = client.run(|c| c.cancel(id))?;
            emit(json, &job, || {
                format!("cancelling job {id} (state was {})", job.status.state)
            })?;
        }
        JobsCommand::Epochs { id } => {
            let list = client.run(|c| c.epochs(id))?;
            emit(json, &list, || epochs_table(&list))?;
        }
        JobsCommand::Register { id, epoch } => {
            let manifest = client.run(|c| c.register_epoch(id, *epoch))?;
            emit(json, &manifest, || {
                format!(
                    "registered {}@{} from epoch {epoch} of job {id} ({}); deploy it with `kiln deploy {}@{}`",
                    manifest.model,
                    manifest.version,
                    figures(&manifest.draft.metrics),
                    manifest.model,
                    manifest.version
                )
            })?;
        }
    }
    Ok(0)
}

fn epochs_table(list: &EpochList) -> String {
    if list.epochs.is_empty() {
        let why = list.note.as_deref().unwrap_or("none is kept");
        return format!(
            "job {} ({}): no epoch checkpoint to register: {why}",
            list.job, list.model
        );
    }
    let rows: Vec<Vec<String>> = list
        .epochs
        .iter()
        .map(|e| vec![e.epoch.to_string(), e.step.to_string(), figures(&e.metrics)])
        .collect();
    table::render(&["EPOCH", "STEP", "VALIDATION"], &rows)
        .trim_end()
        .to_owned()
}

fn figures(metrics: &std::collections::BTreeMap<String, f64>) -> String {
    metrics
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect::<Vec<_>>()
        .join("  ")
}

/// The jobs table; a SLURM column (`12 PENDING (Resources)`) when any job ran through Slurm.
fn list_table(jobs: &[JobView]) -> String {
    let slurm = jobs.iter().any(|j| j.slurm.is_some());
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let (what, model) = match &j.spec.request {
                JobRequest::Train(t) => (t.arch.to_string(), t.model.to_string()),
                JobRequest::Eval(e) => (j.spec.request.kind().to_string(), e.reference.to_string()),
                JobRequest::Compress(c) => (j.spec.request.kind().to_string(), c.reference.to_string()),
            };
            let mut row = vec![
                j.id.to_string(),
                j.status.state.to_string(),
                what,
                j.spec.request.subject(),
                model,
                j.status.step.to_string(),
            ];
            if slurm {
                row.push(j.slurm.as_ref().map_or_else(|| "-".to_owned(), |s| s.summary()));
            }
            row
        })
        .collect();
    let mut header = vec!["JOB", "STATE", "ARCH", "DATA", "MODEL", "STEP"];
    if slurm {
        header.push("SLURM");
    }
    table::render(&header, &rows).trim_end().to_owned()
}

/// `kiln jobs show`: the job as JSON, then its Slurm job in words when it has one.
fn show_text(job: &JobView) -> String {
    let text = serde_json::to_string_pretty(job).unwrap_or_default();
    match &job.slurm {
        Some(slurm) => format!("{text}\nslurm {}", slurm.summary()),
        None => text,
    }
}

/// Prints the worker log; with `follow`, keeps polling until the job has ended and the log
/// is drained.
fn logs(client: &Blocking, id: &JobId, follow: bool) -> Result<u8, CliError> {
    let mut offset = 0;
    loop {
        let chunk = client.run(|c| c.log(id, offset))?;
        print_now(&chunk.text);
        if chunk.next > offset {
            offset = chunk.next;
            continue;
        }
        if !follow {
            return Ok(0);
        }
        if client.run(|c| c.job(id))?.status.state.is_final() {
            print_now(&client.run(|c| c.log(id, offset))?.text);
            return Ok(0);
        }
        std::thread::sleep(LOG_POLL);
    }
}

fn print_now(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Waits for the job to end and exits with its state's code.
fn wait(client: &Blocking, id: &JobId, timeout: Option<Duration>, json: bool) -> Result<u8, CliError> {
    let view = wait_for_end(client, id, timeout.map(|t| Instant::now() + t))?;
    let status = &view.status;
    emit(json, &view, || format!("job {id} {}: {}", status.state, status.message))?;
    Ok(exit_code(status.state))
}

/// Waits, without printing, until the job ends (or `deadline` passes: an error); returns its
/// final view.
pub fn wait_for_end(client: &Blocking, id: &JobId, deadline: Option<Instant>) -> Result<JobView, CliError> {
    loop {
        let view = client.run(|c| c.job(id))?;
        if view.status.state.is_final() {
            return Ok(view);
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(CliError::failure(format!(
                "job {id} is still {} after the timeout",
                view.status.state
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// Exit code for a job's final state: 0 succeeded, 6 cancelled, 1 otherwise.
pub fn exit_code(state: JobState) -> u8 {
    match state {
        JobState::Succeeded => 0,
        JobState::Cancelled => CANCELLED,
        _ => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, slurm: Option<serde_json::Value>) -> JobView {
        let mut view = serde_json::json!({
            "id": id,
            "spec": {"id": id, "kind": "train", "arch": "mlp", "data": "fashion-mnist", "model": "fm"},
            "status": {"state": "queued", "updated_at": "2026-11-29T16:00:00Z"},
        });
        if let Some(slurm) = slurm {
            view["slurm"] = slurm;
        }
        serde_json::from_value(view).expect("a job view")
    }

    #[test]
    fn the_slurm_column_appears_only_when_a_job_ran_through_slurm() {
        let local = job("j1764434400-ab12", None);
        assert!(!list_table(std::slice::from_ref(&local)).contains("SLURM"));
        let pending = job(
            "j1764434401-ab13",
            Some(
                serde_json::json!({"job_id": 12, "state": "PENDING", "reason": "Resources",
                                    "submitted_at": "2026-11-29T16:00:00Z"}),
            ),
        );
        let table = list_table(&[local, pending.clone()]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("SLURM"), "{table}");
        assert!(lines[1].ends_with(" -"), "{table}");
        assert!(lines[2].ends_with("12 PENDING (Resources)"), "{table}");
        assert!(show_text(&pending).ends_with("\nslurm 12 PENDING (Resources)"));
    }
}
