//! The job supervisor: starts queued jobs as `kilnd worker` processes (own process group,
//! stderr to `worker.log`) within a per-device limit, reaps them, records how a worker that
//! died without a final status ended, and re-adopts workers that outlived a daemon restart
//! (matched by pid and process start time, so a reused pid is not mistaken for one).
//!
//! It keeps an index of the live jobs (queued or running) in memory and looks only at those:
//! a finished job's folder is read once (at start-up, or when it ends) and its view kept, so
//! a tick costs the same with ten thousand finished jobs on disk as with none. With no live
//! job the ticker sleeps until a submission wakes it.
//!
//! Each tick publishes what changed: job states and new metric lines (`job`, `metrics`
//! events), and a `registry` event when a job that registered or scored a version ends.
//!
//! With the slurm executor ([`slurm_jobs`]) queued jobs go to `sbatch` instead, all at once
//! (Slurm does the queueing), and a job's worker is its Slurm job: watched with `squeue`,
//! cancelled with `scancel`, re-adopted after a restart from its `slurm.json`.

mod slurm_jobs;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard};

use kiln_core::api::{Event, JobView, MetricsChunk, RegistryChanged};
use kiln_core::jobs::{self, JobDir, JobError, JobId, JobKind, JobRequest, JobSpec, JobState, JobStatus, SlurmJob};
use kiln_core::registry::now_rfc3339;
use kiln_engine::device::SPIN_COUNT_SET_BY_KILND;

use super::slurm::{self, Sbatch};
use crate::events::Hub;

/// A worker this daemon is responsible for.
enum Worker {
    /// Started by this daemon: exit status known.
    Child(Child),
    /// Started by an earlier daemon: only its pid and start time are known.
    Adopted { pid: u32, start: Option<u64> },
    /// Being handed to `sbatch` (which runs outside the supervisor's lock).
    Submitting,
    /// A Slurm job, on a node of Slurm's choosing: it ends when Slurm says so.
    Slurm { job_id: u64 },
}

impl Worker {
    /// The local process id; `None` for a Slurm job (its pid is on a node).
    fn pid(&self) -> Option<u32> {
        match self {
            Self::Child(child) => Some(child.id()),
            Self::Adopted { pid, .. } => Some(*pid),
            Self::Submitting | Self::Slurm { .. } => None,
        }
    }

    fn is_slurm(&self) -> bool {
        matches!(self, Self::Submitting | Self::Slurm { .. })
    }

    /// How the local process ended, once it has (a Slurm job's end is read from Slurm).
    fn ended(&mut self) -> Option<String> {
        match self {
            Self::Child(child) => match child.try_wait() {
                Ok(Some(exit)) => Some(match exit.signal() {
                    Some(sig) => format!("was killed by signal {sig}"),
                    None => format!("exited with code {}", exit.code().unwrap_or(-1)),
                }),
                _ => None,
            },
            Self::Adopted { pid, start } => {
                (!alive(*pid, *start)).then(|| "ended (exit status unknown: adopted after a daemon restart)".to_owned())
            }
            Self::Submitting | Self::Slurm { .. } => None,
        }
    }
}

/// A queued or running job, as the supervisor tracks it.
struct Live {
    dir: JobDir,
    /// Written once when the job was created: read once, kept.
    spec: JobSpec,
    /// The device it runs on (`auto` when it lets the worker choose): the concurrency key.
    device: String,
    worker: Option<Worker>,
    /// Asked to cancel: a worker that then dies without a status was cancelled, not failed.
    cancelling: bool,
    /// The Slurm job running it, as last written to `slurm.json`.
    slurm: Option<SlurmJob>,
    /// The status (as shown) and Slurm job as last published, and how far its metrics were
    /// sent.
    published: Option<(JobStatus, Option<SlurmJob>)>,
    metrics_offset: u64,
}

/// Everything the supervisor knows, behind one lock.
#[derive(Default)]
struct Jobs {
    live: BTreeMap<JobId, Live>,
    /// Views of ended jobs, each read once.
    ended: BTreeMap<JobId, Arc<JobView>>,
}

pub struct Supervisor {
    home: PathBuf,
    per_device: usize,
    /// Where queued jobs go: `sbatch` with these options, or (`None`) local workers.
    slurm: Option<Sbatch>,
    /// When Slurm was last asked, and what went wrong then.
    polls: Mutex<slurm_jobs::PollClock>,
    jobs: Mutex<Jobs>,
    hub: Hub,
    /// Woken when a job is submitted, so an idle ticker can sleep.
    wake: tokio::sync::Notify,
}

impl Supervisor {
    /// A supervisor for `home`, indexing the jobs already there (each ended one read once) and
    /// re-adopting live workers of jobs marked running, and Slurm jobs. `slurm` submits new
    /// jobs through `sbatch`; `None` runs them here.
    pub fn new(home: &Path, per_device: usize, hub: Hub, slurm: Option<Sbatch>) -> Self {
        let supervisor = Self {
            home: home.to_owned(),
            per_device: per_device.max(1),
            slurm,
            polls: Mutex::default(),
            jobs: Mutex::new(Jobs::default()),
            hub,
            wake: tokio::sync::Notify::new(),
        };
        supervisor.index_existing();
        supervisor
    }

    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether new jobs go to Slurm.
    pub fn uses_slurm(&self) -> bool {
        self.slurm.is_some()
    }

    fn index_existing(&self) {
        let mut jobs = self.lock();
        let mut unrecorded = slurm_jobs::Unrecorded::new(self.uses_slurm());
        for dir in jobs::list(&self.home) {
            let (Ok(spec), Ok(status)) = (dir.spec(), dir.status()) else {
                continue;
            };
            let slurm = dir
                .slurm()
                .or_else(|| (!status.state.is_final()).then(|| unrecorded.find(&dir)).flatten());
            let shown = as_shown(status.clone(), slurm.as_ref());
            if shown.state.is_final() {
                jobs.ended
                    .insert(dir.id.clone(), Arc::new(view_of(&dir, spec, shown, slurm)));
                continue;
            }
            // A Slurm job's pid is on its node: Slurm, not this machine's /proc, says whether
            // it still runs.
            let worker = match &slurm {
                Some(record) => Some(Worker::Slurm { job_id: record.job_id }),
                None if status.state == JobState::Running => adopt(&dir, &status),
                None => None,
            };
            jobs.live.insert(dir.id.clone(), Live::new(dir, spec, worker, slurm));
        }
    }

    /// Writes a new job folder under a fresh id; the next tick starts it when its device has
    /// room.
    pub fn submit(&self, request: JobRequest) -> Result<JobView, JobError> {
        let spec = JobSpec {
            id: self.fresh_id(),
            request,
        };
        let dir = JobDir::create(&self.home, &spec)?;
        let view = view_of(&dir, spec.clone(), dir.status()?, None);
        self.lock()
            .live
            .insert(dir.id.clone(), Live::new(dir, spec, None, None));
        self.wake.notify_one();
        Ok(view)
    }

    /// An id no job has, time-ordered.
    fn fresh_id(&self) -> JobId {
        loop {
            let id = JobId::generate();
            if !JobDir::new(&self.home, id.clone()).path.exists() {
                return id;
            }
        }
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<JobView> {
        type LiveCopy = (JobDir, JobSpec, Option<SlurmJob>);
        let (live, ended): (Vec<LiveCopy>, Vec<Arc<JobView>>) = {
            let jobs = self.lock();
            (
                jobs.live
                    .values()
                    .map(|l| (l.dir.clone(), l.spec.clone(), l.slurm.clone()))
                    .collect(),
                jobs.ended.values().cloned().collect(),
            )
        };
        let mut views: Vec<JobView> = ended.iter().map(|v| (**v).clone()).collect();
        views.extend(live.into_iter().filter_map(|(dir, spec, slurm)| {
            let status = as_shown(dir.status().ok()?, slurm.as_ref());
            Some(view_of(&dir, spec, status, slurm))
        }));
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views
    }

    /// One job.
    pub fn get(&self, id: &JobId) -> Result<JobView, JobError> {
        if let Some(view) = self.lock().ended.get(id) {
            return Ok((**view).clone());
        }
        read_view(&JobDir::open(&self.home, id)?)
    }

    /// Whether `id` names a training job that left a checkpoint to resume from.
    pub fn resumable(&self, id: &JobId) -> Result<bool, JobError> {
        let view = self.get(id)?;
        let dir = JobDir::new(&self.home, id.clone());
        Ok(view.spec.request.kind() == JobKind::Train && dir.checkpoints().join("state.json").is_file())
    }

    /// Cancels a job: SIGTERM to a running worker (it checkpoints first), or straight to
    /// `cancelled` for a queued one. A Slurm job, queued or running, is cancelled with
    /// `scancel`, and ends once Slurm says it has.
    pub fn cancel(&self, id: &JobId) -> Result<JobView, JobError> {
        let dir = JobDir::open(&self.home, id)?;
        let mut jobs = self.lock();
        let mut status = dir.status()?;
        let mut scancel = None;
        match (status.state, jobs.live.get_mut(id)) {
            (_, Some(live)) if live.worker.as_ref().is_some_and(Worker::is_slurm) => {
                live.cancelling = true;
                // Still being submitted: the submission cancels it once it has an id.
                scancel = live.slurm_id();
            }
            (JobState::Queued, _) => {
                status.state = JobState::Cancelled;
                status.message = "cancelled before it started".into();
                status.updated_at = now_rfc3339();
                dir.write_status(&status)?;
            }
            (JobState::Running, Some(live)) => {
                live.cancelling = true;
                if let Some(pid) = status.pid {
                    let pid = nix::unistd::Pid::from_raw(pid as i32);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                }
            }
            _ => {}
        }
        drop(jobs);
        if let Some(job_id) = scancel {
            slurm::cancel(job_id).map_err(|e| {
                JobError::Scheduler(format!(
                    "could not cancel Slurm job {job_id} of job {id}: {e}; retry `kiln jobs cancel {id}`"
                ))
            })?;
        }
        self.wake.notify_one();
        read_view(&dir)
    }

    /// Stops a study's trial early: records `order` in the job folder (so the worker, or
    /// the supervisor if the worker dies first, ends it `pruned`), then cancels it.
    pub fn prune(&self, id: &JobId, order: &kiln_core::study::PrunedAt) -> Result<JobView, JobError> {
        let dir = JobDir::open(&self.home, id)?;
        dir.write_prune_order(order)?;
        // A job handed to Slurm may start any moment: scancel it, and it ends `pruned`.
        let submitted = self
            .lock()
            .live
            .get(id)
            .is_some_and(|l| l.worker.as_ref().is_some_and(Worker::is_slurm));
        if dir.status()?.state == JobState::Queued && !submitted {
            finish_as(
                &dir,
                JobState::Pruned,
                &format!("pruned before it started: {}", order.reason),
            );
            return read_view(&dir);
        }
        self.cancel(id)
    }

    /// Waits until there is work: returns at once while any job is live, else when a job is
    /// submitted.
    pub async fn idle(&self) {
        let notified = self.wake.notified();
        if self.lock().live.is_empty() {
            notified.await;
        }
    }

    /// One supervision pass over the live jobs: learn what Slurm says (every couple of
    /// seconds), reap ended workers, publish changes, move ended jobs to the index, start
    /// queued jobs with room or hand them to Slurm. Slurm's commands run outside the lock.
    pub fn tick(&self) {
        let polled = self.poll_slurm();
        let submissions = self.tick_locked(polled);
        self.submit_to_slurm(submissions);
    }

    /// The part of a tick that holds the lock; returns the jobs to submit to Slurm.
    fn tick_locked(&self, polled: Option<slurm_jobs::Polled>) -> Vec<JobDir> {
        let mut jobs = self.lock();
        if let Some(polled) = polled {
            slurm_jobs::record(&mut jobs, &polled);
        }
        let mut ended = Vec::new();
        for (id, live) in jobs.live.iter_mut() {
            live.reap();
            if let Some(view) = self.publish_changes(live) {
                ended.push((id.clone(), view));
            }
        }
        for (id, view) in ended {
            jobs.live.remove(&id);
            if view.status.state == JobState::Succeeded {
                self.hub
                    .publish(&Event::Registry(RegistryChanged { at: now_rfc3339() }));
            }
            jobs.ended.insert(id, Arc::new(view));
        }
        if self.uses_slurm() {
            return slurm_jobs::take_queued(&mut jobs);
        }
        self.start_queued(&mut jobs);
        Vec::new()
    }

    /// Publishes a live job's new metric lines and status change; returns its final view
    /// once it has ended.
    fn publish_changes(&self, live: &mut Live) -> Option<JobView> {
        let status = live.dir.status().ok()?;
        if let Ok((records, next)) = live.dir.metrics_since(live.metrics_offset)
            && !records.is_empty()
        {
            live.metrics_offset = next;
            let job = live.dir.id.clone();
            self.hub.publish(&Event::Metrics(MetricsChunk { job, records, next }));
        }
        let status = as_shown(status, live.slurm.as_ref());
        let seen = (status, live.slurm.clone());
        if live.published.as_ref() == Some(&seen) {
            return None;
        }
        live.published = Some(seen.clone());
        let (status, slurm) = seen;
        let view = view_of(&live.dir, live.spec.clone(), status.clone(), slurm);
        self.hub.publish(&Event::Job(Box::new(view.clone())));
        status.state.is_final().then_some(view)
    }

    fn start_queued(&self, jobs: &mut Jobs) {
        let mut busy: HashMap<String, usize> = HashMap::new();
        let local = |l: &&Live| l.worker.as_ref().is_some_and(|w| !w.is_slurm());
        for live in jobs.live.values().filter(local) {
            *busy.entry(live.device.clone()).or_default() += 1;
        }
        for live in jobs.live.values_mut().filter(|l| l.worker.is_none()) {
            let queued = live.is_queued();
            let running = busy.entry(live.device.clone()).or_default();
            // A study's trials are paced by the study's own `concurrent`, not the device limit.
            let trial = live.spec.request.as_train().is_some_and(|t| t.trial.is_some());
            if !queued || (*running >= self.per_device && !trial) {
                continue;
            }
            match kilnd_for_children().and_then(|kilnd| jobs::spawn_worker(kilnd, &self.home, &live.dir)) {
                Ok(child) => {
                    live.worker = Some(Worker::Child(child));
                    *running += 1;
                }
                Err(e) => finish_unknown(&live.dir, &format!("could not start its worker: {e}")),
            }
        }
    }

    /// Worker pid → job, for telemetry.
    pub fn worker_pids(&self) -> HashMap<u32, JobId> {
        self.lock()
            .live
            .iter()
            .filter_map(|(id, live)| Some((live.worker.as_ref()?.pid()?, id.clone())))
            .collect()
    }

    /// Ids of the jobs whose workers this daemon watches.
    pub fn running_ids(&self) -> Vec<JobId> {
        self.lock()
            .live
            .iter()
            .filter(|(_, live)| live.worker.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }
}

impl Live {
    fn new(dir: JobDir, spec: JobSpec, worker: Option<Worker>, slurm: Option<SlurmJob>) -> Self {
        let device = spec
            .request
            .device()
            .map_or_else(|| "auto".to_owned(), ToString::to_string);
        Self {
            dir,
            spec,
            device,
            worker,
            cancelling: false,
            slurm,
            published: None,
            metrics_offset: 0,
        }
    }

    /// Whether the status this tick's publish_changes just read says `queued`.
    fn is_queued(&self) -> bool {
        self.published
            .as_ref()
            .is_some_and(|(s, _)| s.state == JobState::Queued)
    }

    /// The Slurm job id, once submitted.
    fn slurm_id(&self) -> Option<u64> {
        match self.worker {
            Some(Worker::Slurm { job_id }) => Some(job_id),
            _ => None,
        }
    }

    /// Records how the worker ended when it has, unless it wrote its own final status.
    fn reap(&mut self) {
        if self.slurm_id().is_some() {
            return self.reap_slurm();
        }
        let Some(how) = self.worker.as_mut().and_then(Worker::ended) else {
            return;
        };
        self.worker = None;
        if let Some(order) = self.dir.prune_order() {
            finish_as(
                &self.dir,
                JobState::Pruned,
                &format!("pruned at epoch {}: {}", order.epoch, order.reason),
            );
        } else if self.cancelling {
            finish_as(&self.dir, JobState::Cancelled, &format!("cancelled; the worker {how}"));
        } else {
            finish_unknown(&self.dir, &format!("the worker {how}"));
        }
    }
}

/// The worker of a job marked running when the daemon starts, if it still runs here; the job
/// is failed otherwise.
fn adopt(dir: &JobDir, status: &JobStatus) -> Option<Worker> {
    let adopted = status
        .pid
        .filter(|&pid| alive(pid, status.pid_start))
        .map(|pid| Worker::Adopted {
            pid,
            start: status.pid_start,
        });
    if adopted.is_none() {
        finish_unknown(dir, "its worker was gone when the daemon restarted");
    }
    adopted
}

/// `kilnd` itself, for the processes the daemon starts (workers, imports). They keep
/// libgomp's default spin unless the operator set one: the daemon's own short spin suits
/// serving, not training.
pub(crate) fn kilnd_for_children() -> std::io::Result<Command> {
    let mut kilnd = Command::new(own_binary()?);
    if std::env::var_os(SPIN_COUNT_SET_BY_KILND).is_some() {
        kilnd.env_remove("GOMP_SPINCOUNT").env_remove(SPIN_COUNT_SET_BY_KILND);
    }
    Ok(kilnd)
}

/// The path of the `kilnd` binary. Once it has been rebuilt or upgraded while the daemon
/// runs, Linux reports the running one as `PATH (deleted)`; workers then start from the
/// binary now at `PATH`, as a fresh daemon would.
fn own_binary() -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    if let Some(live) = exe
        .to_str()
        .and_then(|p| p.strip_suffix(" (deleted)"))
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
    {
        return Ok(live);
    }
    Ok(exe)
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

/// The job as the API shows it, read from its folder.
fn read_view(dir: &JobDir) -> Result<JobView, JobError> {
    let slurm = dir.slurm();
    Ok(view_of(
        dir,
        dir.spec()?,
        as_shown(dir.status()?, slurm.as_ref()),
        slurm,
    ))
}

/// The status as the API shows it: a Slurm job whose worker wrote its final status still
/// runs until Slurm says it ended, which is when a failure learns Slurm's exit code.
fn as_shown(mut status: JobStatus, slurm: Option<&SlurmJob>) -> JobStatus {
    if status.state.is_final() && slurm.is_some_and(|s| !s.has_ended()) {
        status.state = JobState::Running;
    }
    status
}

fn view_of(dir: &JobDir, spec: JobSpec, status: JobStatus, slurm: Option<SlurmJob>) -> JobView {
    let result = if spec.request.kind() == JobKind::Eval {
        dir.result()
    } else {
        None
    };
    JobView {
        id: dir.id.clone(),
        spec,
        status,
        result,
        slurm,
    }
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
