//! The job supervisor: starts queued jobs as `kilnd worker` processes (own process group,
//! stderr to `worker.log`) within a per-device limit, reaps them, records how a worker that
//! died without a final status ended, and re-adopts workers that outlived a daemon restart
//! (matched by pid and process start time, so a reused pid is not mistaken for one).

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;

use kiln::jobs::{self, JobDir, JobError, JobId, JobSpec, JobState, JobStatus};
use kiln::registry::now_rfc3339;

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
}

impl Supervisor {
    pub fn new(home: &Path, per_device: usize) -> Self {
        Self {
            home: home.to_owned(),
            per_device: per_device.max(1),
            running: Mutex::new(HashMap::new()),
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
        self.start_queued();
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
            finish_unknown(&JobDir::new(&self.home, id), &format!("the worker {how}"));
        }
    }

    fn start_queued(&self) {
        for job in jobs::list(&self.home) {
            let Ok(status) = job.status() else { continue };
            if status.state != JobState::Queued {
                continue;
            }
            let device = job.spec().ok().and_then(|s| s.device).unwrap_or_else(|| "auto".into());
            let busy = self.lock().values().filter(|(_, d)| *d == device).count();
            if busy >= self.per_device {
                continue;
            }
            let kilnd = std::env::current_exe().map(Command::new);
            match kilnd.and_then(|kilnd| jobs::spawn_worker(kilnd, &self.home, &job)) {
                Ok(child) => {
                    self.lock().insert(job.id.clone(), (Worker::Child(child), device));
                }
                Err(e) => finish_unknown(&job, &format!("could not start its worker: {e}")),
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

/// Marks a job failed when its worker ended without writing a final status, with the last
/// lines of its log.
fn finish_unknown(job: &JobDir, how: &str) {
    let Ok(mut status) = job.status() else { return };
    if status.state.is_final() {
        return;
    }
    let log = std::fs::read_to_string(job.log_path()).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    status.state = JobState::Failed;
    status.message = if tail.is_empty() {
        how.to_owned()
    } else {
        format!("{how}; last log lines:\n{}", tail.join("\n"))
    };
    status.updated_at = now_rfc3339();
    let _ = job.write_status(&status);
}
