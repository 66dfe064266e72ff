//! The Slurm executor: each job's worker runs as a Slurm batch job, through Slurm's own
//! commands (no daemon of kiln's on the nodes, no REST API).
//!
//! * **Submit**: `sbatch --parsable` of a small script written into the job folder
//!   (`slurm.sh`), which `exec`s the same `kilnd worker --job <id>` the local executor starts,
//!   with the absolute path of this `kilnd` and this `KILN_HOME`. Both must therefore be
//!   the same paths on every node: the home on a shared filesystem, kiln installed on each
//!   node (or shared too). The worker logs to the job's `worker.log` as it does locally.
//! * **Watch**: one `squeue --json --me` per poll for every job; a job that has left the
//!   queue is looked up with `scontrol show job`, then `sacct`.
//! * **Cancel**: `scancel`, which sends SIGTERM (the worker checkpoints, as it does locally)
//!   and SIGKILL `KillWait` seconds later.
//!
//! The Slurm job's id and last seen state live in the job folder's `slurm.json`
//! ([`SlurmJob`]), written by the daemon only; a restarted daemon re-adopts it from there.

pub mod parse;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Output};

use kiln_core::jobs::{JobDir, SlurmJob};
use kiln_core::registry::now_rfc3339;
use kiln_core::settings::Daemon;

pub use parse::Observed;

/// How jobs are submitted: the `[daemon]` table's sbatch options.
#[derive(Debug, Clone, Default)]
pub struct Sbatch {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub gres: Option<String>,
    pub time: Option<String>,
    pub extra: Vec<String>,
}

impl Sbatch {
    pub fn from_settings(daemon: &Daemon) -> Self {
        Self {
            partition: daemon.partition.clone(),
            account: daemon.account.clone(),
            gres: daemon.gres.clone(),
            time: daemon.time.clone(),
            extra: daemon.sbatch_args.clone(),
        }
    }

    /// sbatch's arguments for `job`, whose script is `script`. No requeue: a job Slurm
    /// restarted would train again from scratch over its own folder; a node failure ends it
    /// `failed` instead, and `kiln train --resume` continues it.
    fn args(&self, job: &JobDir, script: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--parsable".into(),
            format!("--job-name=kiln-{}", job.id).into(),
            with_value("--output=", job.log_path().as_os_str()),
            "--open-mode=append".into(),
            with_value("--chdir=", job.path.as_os_str()),
            "--no-requeue".into(),
        ];
        for (flag, value) in [
            ("--partition=", &self.partition),
            ("--account=", &self.account),
            ("--gres=", &self.gres),
            ("--time=", &self.time),
        ] {
            if let Some(value) = value {
                args.push(format!("{flag}{value}").into());
            }
        }
        args.extend(self.extra.iter().map(OsString::from));
        args.push(script.into());
        args
    }
}

fn with_value(flag: &str, value: &OsStr) -> OsString {
    let mut arg = OsString::from(flag);
    arg.push(value);
    arg
}

/// Fails unless `sbatch` runs: checked when the daemon starts with the slurm executor.
pub fn check_installed() -> Result<(), String> {
    run(Command::new("sbatch").arg("--version"))
        .map(drop)
        .map_err(|e| format!("the slurm executor needs Slurm's commands on kilnd's PATH: {e}"))
}

/// Submits `job`, whose worker is `worker` (with an absolute `KILN_HOME` and binary), and
/// records the Slurm job in its folder. The error is sbatch's own message.
pub fn submit(sbatch: &Sbatch, worker: &Command, job: &JobDir) -> Result<SlurmJob, String> {
    let script = job.path.join("slurm.sh");
    kiln_core::fsx::write_atomic(&script, batch_script(worker, job).as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let out = run(Command::new("sbatch").args(sbatch.args(job, &script)))?;
    let first = out.split(';').next().unwrap_or_default().trim();
    let job_id = first
        .parse()
        .map_err(|_| format!("sbatch answered {:?} instead of a job id", out.trim()))?;
    let record = SlurmJob {
        job_id,
        state: "PENDING".into(),
        reason: None,
        exit_code: None,
        submitted_at: now_rfc3339(),
    };
    job.write_slurm(&record).map_err(|e| {
        let _ = cancel(job_id);
        format!("{e} (Slurm job {job_id} was cancelled)")
    })?;
    Ok(record)
}

/// The batch script that runs `worker` on a node: its environment changes, then `exec`, so
/// the worker is the batch step's process and receives `scancel`'s SIGTERM itself.
pub fn batch_script(worker: &Command, job: &JobDir) -> String {
    let mut script = format!(
        "#!/bin/sh\n# kiln job {}, submitted by kilnd to run on the node Slurm picks.\n\
         # KILN_HOME and kilnd must be the same paths on every node (a shared filesystem).\n",
        job.id
    );
    for (key, value) in worker.get_envs() {
        let key = key.to_string_lossy();
        match value {
            Some(value) => script.push_str(&format!("export {key}={}\n", quote(value))),
            None => script.push_str(&format!("unset {key}\n")),
        }
    }
    let words: Vec<String> = std::iter::once(worker.get_program())
        .chain(worker.get_args())
        .map(quote)
        .collect();
    script.push_str(&format!("exec {}\n", words.join(" ")));
    script
}

/// `value` in single quotes for sh.
fn quote(value: &OsStr) -> String {
    format!("'{}'", value.to_string_lossy().replace('\'', r"'\''"))
}

/// Cancels Slurm job `job_id`: SIGTERM now, SIGKILL after Slurm's `KillWait`.
pub fn cancel(job_id: u64) -> Result<(), String> {
    run(Command::new("scancel").arg(job_id.to_string())).map(drop)
}

/// What one poll learned about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Seen(Observed),
    /// Slurm no longer knows it: it left the queue and no accounting remembers it.
    Gone,
}

/// The state of each of `ids`: one `squeue --json` for all, then `scontrol` and `sacct` for
/// those no longer queued. An id missing from the answer could not be looked up (Slurm's
/// controller is down?) and keeps its last known state. Errs when squeue itself fails.
pub fn poll(ids: &[u64]) -> Result<HashMap<u64, Lookup>, String> {
    let queued = parse::squeue(&run(Command::new("squeue").args(["--json", "--me"]))?)?;
    let mut found: HashMap<u64, Lookup> = queued
        .into_iter()
        .filter(|job| ids.contains(&job.job_id))
        .map(|job| (job.job_id, Lookup::Seen(job)))
        .collect();
    for &id in ids {
        if !found.contains_key(&id)
            && let Some(lookup) = left_queue(id)
        {
            found.insert(id, lookup);
        }
    }
    Ok(found)
}

/// The queued and recent jobs named `kiln-…`, by name (none when squeue fails).
pub fn kiln_jobs_by_name() -> HashMap<String, Observed> {
    let answer = run(Command::new("squeue").args(["--json", "--me"])).and_then(|json| parse::squeue(&json));
    match answer {
        Ok(jobs) => jobs
            .into_iter()
            .filter_map(|job| Some((job.name.clone().filter(|n| n.starts_with("kiln-"))?, job)))
            .collect(),
        Err(e) => {
            eprintln!("kilnd: cannot list Slurm's jobs to re-adopt unrecorded ones: {e}");
            HashMap::new()
        }
    }
}

/// A job `squeue` no longer lists: `scontrol` knows it for `MinJobAge` after it ended,
/// `sacct` as long as accounting keeps it. Gone when scontrol says the id is invalid and
/// sacct has no line for it.
fn left_queue(id: u64) -> Option<Lookup> {
    let scontrol = Command::new("scontrol")
        .args(["show", "job", &id.to_string(), "-o"])
        .output();
    let invalid = match &scontrol {
        Ok(out) if out.status.success() => {
            if let Some(job) = parse::scontrol(&String::from_utf8_lossy(&out.stdout)) {
                return Some(Lookup::Seen(job));
            }
            false
        }
        Ok(out) => String::from_utf8_lossy(&out.stderr).contains("Invalid job id"),
        Err(_) => false,
    };
    let sacct =
        run(Command::new("sacct").args(["-j", &id.to_string(), "-X", "-n", "-P", "-o", "JobID,State,ExitCode"]));
    match sacct.ok().and_then(|text| parse::sacct(&text, id)) {
        Some(job) => Some(Lookup::Seen(job)),
        None => invalid.then_some(Lookup::Gone),
    }
}

/// Runs a Slurm command: its stdout, or an error with what it said.
fn run(command: &mut Command) -> Result<String, String> {
    let name = command.get_program().to_string_lossy().into_owned();
    let out: Output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {name}: {e} (is Slurm's client installed and on PATH?)"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let said = if said.is_empty() {
            format!("it exited with {}", out.status)
        } else {
            said
        };
        return Err(format!("{name} failed: {said}"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The record `record` updated with what Slurm said now; `None` when nothing changed.
pub fn updated(record: &SlurmJob, lookup: &Lookup) -> Option<SlurmJob> {
    let mut next = record.clone();
    match lookup {
        Lookup::Seen(job) => {
            next.state = job.state.clone();
            next.reason = job.reason.clone();
            next.exit_code = job.exit_code.clone().or(next.exit_code);
        }
        Lookup::Gone => {
            next.state = SlurmJob::GONE.into();
            next.reason = None;
        }
    }
    (next != *record).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_script_execs_the_worker_with_its_environment() {
        let home = Path::new("/shared/kiln home");
        let job = JobDir::new(home, "j1764434400-ab12".parse().expect("id"));
        let mut kilnd = Command::new("/opt/kiln/bin/kilnd");
        kilnd.env_remove("GOMP_SPINCOUNT");
        let worker = kiln_core::jobs::worker_command(kilnd, home, &job);
        let script = batch_script(&worker, &job);
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(script.contains("\nunset GOMP_SPINCOUNT\n"), "{script}");
        assert!(script.contains("\nexport KILN_HOME='/shared/kiln home'\n"), "{script}");
        assert!(
            script.ends_with("\nexec '/opt/kiln/bin/kilnd' 'worker' '--job' 'j1764434400-ab12'\n"),
            "{script}"
        );
        assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
    }

    #[test]
    fn sbatch_gets_the_configured_options_before_the_script() {
        let job = JobDir::new(Path::new("/shared/home"), "j1764434400-ab12".parse().expect("id"));
        let sbatch = Sbatch {
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            extra: vec!["--qos=low".into()],
            ..Sbatch::default()
        };
        let args: Vec<String> = sbatch
            .args(&job, &job.path.join("slurm.sh"))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--parsable",
                "--job-name=kiln-j1764434400-ab12",
                "--output=/shared/home/jobs/j1764434400-ab12/worker.log",
                "--open-mode=append",
                "--chdir=/shared/home/jobs/j1764434400-ab12",
                "--no-requeue",
                "--partition=gpu",
                "--gres=gpu:1",
                "--qos=low",
                "/shared/home/jobs/j1764434400-ab12/slurm.sh",
            ]
        );
    }

    #[test]
    fn a_record_changes_only_when_slurm_says_something_new() {
        let record = SlurmJob {
            job_id: 12,
            state: "PENDING".into(),
            reason: None,
            exit_code: None,
            submitted_at: now_rfc3339(),
        };
        let seen = |state: &str, reason: Option<&str>, exit: Option<&str>| {
            Lookup::Seen(Observed {
                job_id: 12,
                name: None,
                state: state.into(),
                reason: reason.map(Into::into),
                exit_code: exit.map(Into::into),
            })
        };
        let waiting = updated(&record, &seen("PENDING", Some("Resources"), None)).expect("new reason");
        assert_eq!(waiting.summary(), "12 PENDING (Resources)");
        assert_eq!(updated(&waiting, &seen("PENDING", Some("Resources"), None)), None);
        let failed = updated(&waiting, &seen("FAILED", Some("NonZeroExitCode"), Some("1:0"))).expect("ended");
        assert!(failed.has_ended());
        assert_eq!(failed.ending(), "Slurm job 12 ended FAILED with exit code 1:0");
        assert_eq!(failed.summary(), "12 FAILED exit 1:0");
        let gone = updated(&waiting, &Lookup::Gone).expect("gone");
        assert!(gone.has_ended() && !gone.was_cancelled());
    }
}
