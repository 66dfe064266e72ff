//! The job supervisor: starts queued jobs as `kilnd worker` processes (own process group,
//! stderr to `worker.log`) within a per-device limit, reaps them, records how a worker that
//! died without a final status ended, and re-adopts workers that outlived a daemon restart
//! (matched by pid and process start time, so a reused pid is not mistaken for one).
//!
//! Each tick it also publishes what changed: job states and new metric lines (`job`,
//! `metrics` events) and, once a second, whether the registry changed (`registry`).

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;

use kiln_core::jobs::{self, JobDir, JobError, JobId, JobSpec, JobState, JobStatus};
use kiln_core::registry::now_rfc3339;
use serde_json::{Value, json};

use super::events::Hub;
use kiln_engine::device::SPIN_COUNT_SET_BY_KILND;

/// A worker this daemon is responsible for.
enum Worker {
    /// Started by this daemon: exit status known.
    Child(Child),
    /// Started by an earlier daemon: only its pid and start time are known.
    Adopted { pid: u32, start: Option<u64> },
}

pub struct Supervisor {
    home: PathBuf,
    per_device: usize,
    running: Mutex<HashMap<JobId, (Worker, String)>>,
    /// Jobs asked to cancel: a worker that then dies without a status was cancelled, not failed.
    cancelling: Mutex<HashSet<JobId>>,
    hub: Hub,
    watch: Mutex<Watch>,
}

/// What the last tick saw, to publish only changes.
#[derive(Default)]
struct Watch {
    /// Per job: its status as last published, and how far its metrics were sent.
    jobs: HashMap<JobId, (String, u64)>,
    registry: Option<u64>,
    ticks: u64,
}

impl Supervisor {
    pub fn new(home: &Path, per_device: usize, hub: Hub) -> Self {
        Self {
            home: home.to_owned(),
            per_device: per_device.max(1),
            running: Mutex::new(HashMap::new()),
            cancelling: Mutex::new(HashSet::new()),
            hub,
            watch: Mutex::new(Watch::default()),
        }
    }

    /// Writes a new job folder; the next tick starts it when its device has room.
    pub fn submit(&self, spec: &JobSpec) -> Result<JobDir, JobError> {
        JobDir::create(&self.home, spec)
    }

    /// Re-adopts live workers of jobs marked running; fails those whose worker is gone.
    pub fn adopt_existing(&self) {
        for job in jobs::list(&self.home) {
            let Ok(status) = job.status() else { continue };
            if status.state != JobState::Running {
                continue;
            }
            match status.pid {
                Some(pid) if alive(pid, status.pid_start) => {
                    let device = job.spec().ok().and_then(|s| s.device).unwrap_or_else(|| "auto".into());
                    self.lock().insert(
                        job.id.clone(),
                        (
                            Worker::Adopted {
                                pid,
                                start: status.pid_start,
                            },
                            device,
                        ),
                    );
                }
                _ => finish_unknown(&job, "its worker was gone when the daemon restarted"),
            }
        }
    }

    /// Cancels a job: SIGTERM to a running worker (it checkpoints first), or straight to
    /// `cancelled` for a queued one.
    pub fn cancel(&self, job: &JobDir) -> Result<JobStatus, JobError> {
        let mut status = job.status()?;
        match status.state {
            JobState::Queued => {
                status.state = JobState::Cancelled;
                status.message = "cancelled before it started".into();
                status.updated_at = now_rfc3339();
                job.write_status(&status)?;
            }
            JobState::Running => {
                self.cancelling
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(job.id.clone());
                if let Some(pid) = status.pid {
                    let pid = nix::unistd::Pid::from_raw(pid as i32);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                }
            }
            _ => {}
        }
        Ok(status)
    }

    /// One supervision pass: reap ended workers, then start queued jobs with room.
    pub fn tick(&self) {
        self.reap();
        let jobs = jobs::list(&self.home);
        self.start_queued(&jobs);
        self.publish_changes(&jobs);
    }

    /// Publishes job status changes and new metric lines; once a second, registry changes.
    fn publish_changes(&self, jobs: &[JobDir]) {
        let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        for job in jobs {
            let Ok(status) = job.status() else { continue };
            let text = serde_json::to_string(&status).unwrap_or_default();
            if status.state.is_final() && !watch.jobs.contains_key(&job.id) {
                // Ended before this daemon looked: nothing to stream.
                let end = std::fs::metadata(job.metrics_path()).map_or(0, |m| m.len());
                watch.jobs.insert(job.id.clone(), (text, end));
                continue;
            }
            let (seen, offset) = watch.jobs.entry(job.id.clone()).or_insert_with(|| (String::new(), 0));
            if *seen == text && status.state.is_final() {
                continue;
            }
            if let Ok((records, next)) = job.metrics_since(*offset)
                && !records.is_empty()
            {
                *offset = next;
                self.hub
                    .publish("metrics", &json!({ "job": job.id, "records": records, "next": next }));
            }
            if *seen != text {
                *seen = text;
                if let Ok(view) = job_view(job) {
                    self.hub.publish("job", &view);
                }
            }
        }
        watch.ticks += 1;
        if watch.ticks % 4 == 1 {
            let fingerprint = registry_fingerprint(&self.home);
            if watch.registry.is_some_and(|old| old != fingerprint) {
                self.hub.publish("registry", &json!({ "at": now_rfc3339() }));
            }
            watch.registry = Some(fingerprint);
        }
    }

    /// Worker pid → job, for telemetry.
    pub fn worker_pids(&self) -> HashMap<u32, JobId> {
        self.lock()
            .iter()
            .map(|(id, (worker, _))| {
                let pid = match worker {
                    Worker::Child(child) => child.id(),
                    Worker::Adopted { pid, .. } => *pid,
                };
                (pid, id.clone())
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, (Worker, String)>> {
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reap(&self) {
        let mut running = self.lock();
        let mut ended = Vec::new();
        for (id, (worker, _)) in running.iter_mut() {
            let how = match worker {
                Worker::Child(child) => match child.try_wait() {
                    Ok(Some(exit)) => Some(match exit.signal() {
                        Some(sig) => format!("was killed by signal {sig}"),
                        None => format!("exited with code {}", exit.code().unwrap_or(-1)),
                    }),
                    _ => None,
                },
                Worker::Adopted { pid, start } => (!alive(*pid, *start))
                    .then(|| "ended (exit status unknown: adopted after a daemon restart)".to_owned()),
            };
            if let Some(how) = how {
                ended.push((id.clone(), how));
            }
        }
        for (id, how) in ended {
            running.remove(&id);
            let cancelled = self.cancelling.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            let job = JobDir::new(&self.home, id);
            if cancelled {
                finish_as(&job, JobState::Cancelled, &format!("cancelled; the worker {how}"));
            } else {
                finish_unknown(&job, &format!("the worker {how}"));
            }
        }
    }

    fn start_queued(&self, jobs: &[JobDir]) {
        for job in jobs {
            let Ok(status) = job.status() else { continue };
            if status.state != JobState::Queued {
                continue;
            }
            let device = job.spec().ok().and_then(|s| s.device).unwrap_or_else(|| "auto".into());
            let busy = self.lock().values().filter(|(_, d)| *d == device).count();
            if busy >= self.per_device {
                continue;
            }
            let kilnd = std::env::current_exe().map(|exe| {
                let mut kilnd = Command::new(exe);
                // Training keeps libgomp's default spin unless the operator set one.
                if std::env::var_os(SPIN_COUNT_SET_BY_KILND).is_some() {
                    kilnd.env_remove("GOMP_SPINCOUNT").env_remove(SPIN_COUNT_SET_BY_KILND);
                }
                kilnd
            });
            match kilnd.and_then(|kilnd| jobs::spawn_worker(kilnd, &self.home, job)) {
                Ok(child) => {
                    self.lock().insert(job.id.clone(), (Worker::Child(child), device));
                }
                Err(e) => finish_unknown(job, &format!("could not start its worker: {e}")),
            }
        }
    }

    /// Ids of the jobs whose workers this daemon watches.
    pub fn running_ids(&self) -> Vec<JobId> {
        self.lock().keys().cloned().collect()
    }
}

/// Whether `pid` is alive and (when known) started at `start`.
fn alive(pid: u32, start: Option<u64>) -> bool {
    match jobs::process_start_time(pid) {
        Some(actual) => start.is_none_or(|s| s == actual) && !is_zombie(pid),
        None => false,
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

/// The job as the API shows it: id, spec, status, and an eval job's result.
pub fn job_view(job: &JobDir) -> Result<Value, JobError> {
    let mut view = json!({ "id": job.id, "spec": job.spec()?, "status": job.status()? });
    if let Some(result) = job.result() {
        view["result"] = result;
    }
    Ok(view)
}

/// Changes whenever a model, version, alias or eval report is added, moved or removed: each
/// of those renames an entry into one of these folders, which updates its mtime.
fn registry_fingerprint(home: &Path) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    let models = home.join("registry").join("models");
    let mut stamp = |path: &Path| {
        if let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) {
            path.hash(&mut hasher);
            modified.hash(&mut hasher);
        }
    };
    stamp(&models);
    for entry in std::fs::read_dir(&models).into_iter().flatten().flatten() {
        let dir = entry.path();
        stamp(&dir);
        stamp(&dir.join("versions"));
        stamp(&dir.join("evals"));
    }
    hasher.finish()
}

/// Ends a job whose worker is gone with `state` and `message`, unless it already ended.
fn finish_as(job: &JobDir, state: JobState, message: &str) {
    let Ok(mut status) = job.status() else { return };
    if status.state.is_final() {
        return;
    }
    status.state = state;
    status.message = message.to_owned();
    status.updated_at = now_rfc3339();
    let _ = job.write_status(&status);
}

/// Marks a job failed when its worker ended without writing a final status, with the last
/// lines of its log.
fn finish_unknown(job: &JobDir, how: &str) {
    let Ok(status) = job.status() else { return };
    if status.state.is_final() {
        return;
    }
    let log = std::fs::read_to_string(job.log_path()).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let message = if tail.is_empty() {
        how.to_owned()
    } else {
        format!("{how}; last log lines:\n{}", tail.join("\n"))
    };
    finish_as(job, JobState::Failed, &message);
}
