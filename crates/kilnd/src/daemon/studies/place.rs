//! Where a trial runs and the job request that runs it.
//!
//! On the CPU, concurrent trials split the cores (each worker gets `cores / concurrent`
//! intra-op threads, so two trials do not fight over every core). With GPUs, each trial gets
//! a device of its own: the GPU with the fewest of the study's trials, one per GPU unless
//! the budget's `per_gpu` allows more — and then only when telemetry shows that GPU has the
//! free memory another trial of this study takes. With the slurm executor a trial takes what
//! Slurm gives its job (`--gres`, `--cpus-per-task`): it asks for no device or thread count
//! of this machine's.

use std::path::Path;

use kiln_core::jobs::{JobDir, JobState, TrainRequest};
use kiln_core::kinds::DeviceName;
use kiln_core::study::{StudyRecord, StudySpec, Trial, TrialTag, spec};

use super::sync::has_live_job;
use crate::daemon::telemetry::TelemetryStore;

/// A trial's device and threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `cpu` or `cuda:N`, recorded on the trial.
    pub name: String,
    pub device: Option<DeviceName>,
    pub threads: Option<usize>,
}

/// Where trials run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    /// On this machine, which has `gpus` CUDA devices.
    Local { gpus: usize },
    /// As Slurm jobs, on the nodes Slurm picks.
    Slurm,
}

/// Where the study's next trial goes; `None` while no GPU has room for it.
pub fn device(record: &StudyRecord, telemetry: &TelemetryStore, executor: Executor) -> Option<Placement> {
    let gpus = match executor {
        Executor::Local { gpus } => gpus,
        Executor::Slurm => return Some(on_slurm(record.spec.base.device)),
    };
    let budget = record.spec.budget;
    let cpu_threads = (num_cores() / budget.concurrent.max(1)).max(1);
    match record.spec.base.device {
        Some(DeviceName::Cpu) => return Some(cpu(cpu_threads)),
        Some(device @ DeviceName::Cuda(_)) => {
            return Some(Placement {
                name: device.to_string(),
                device: Some(device),
                threads: None,
            });
        }
        None => {}
    }
    if gpus == 0 {
        return Some(cpu(cpu_threads));
    }
    let mut load = vec![0usize; gpus];
    for trial in record.trials.iter().filter(|t| has_live_job(t)) {
        if let Some(index) = trial.device.as_deref().and_then(cuda_index).filter(|&i| i < gpus) {
            load[index] += 1;
        }
    }
    let (index, &count) = load.iter().enumerate().min_by_key(|(_, c)| **c)?;
    let fits = count == 0 || (count < budget.per_gpu && has_memory_for_another(record, telemetry, index));
    fits.then(|| Placement {
        name: format!("cuda:{index}"),
        device: Some(DeviceName::Cuda(index)),
        threads: None,
    })
}

/// A Slurm job's placement: the device the study names, if any, else the worker's own pick
/// on its node.
fn on_slurm(device: Option<DeviceName>) -> Placement {
    Placement {
        name: device.map_or_else(|| "slurm".to_owned(), |d| d.to_string()),
        device,
        threads: None,
    }
}

fn cpu(threads: usize) -> Placement {
    Placement {
        name: "cpu".into(),
        device: Some(DeviceName::Cpu),
        threads: Some(threads),
    }
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cuda_index(name: &str) -> Option<usize> {
    name.strip_prefix("cuda:")?.parse().ok()
}

/// Whether GPU `index` has free memory for one more of the study's trials: at least the
/// most any of its trials there uses now (with a 20% margin), as NVML last reported.
fn has_memory_for_another(record: &StudyRecord, telemetry: &TelemetryStore, index: usize) -> bool {
    let Some(sample) = telemetry.latest() else { return false };
    let Some(gpu) = sample.gpus.iter().find(|g| g.index as usize == index) else {
        return false;
    };
    let (Some(used), Some(total)) = (gpu.memory_used_bytes, gpu.memory_total_bytes) else {
        return false;
    };
    let ours: Vec<&kiln_core::jobs::JobId> = record
        .trials
        .iter()
        .filter(|t| has_live_job(t) && t.device.as_deref().and_then(cuda_index) == Some(index))
        .filter_map(Trial::job)
        .collect();
    let largest = gpu
        .processes
        .iter()
        .filter(|p| p.job.as_ref().is_some_and(|j| ours.contains(&j)))
        .filter_map(|p| p.used_memory_bytes)
        .max();
    // Unknown until the running trial has allocated: wait for telemetry to show it.
    largest.is_some_and(|need| total.saturating_sub(used) >= need + need / 5)
}

/// The training request of trial `trial`'s attempt `attempt` on `placement`. A trial that
/// was cancelled (a stopped study, resumed) continues from its last job's checkpoint; a retry
/// after a crash starts afresh.
pub fn request(
    spec: &StudySpec,
    trial: &Trial,
    attempt: u32,
    placement: &Placement,
    home: &Path,
) -> Result<TrainRequest, String> {
    let mut request = spec::apply(&spec.base, &trial.params)?;
    request.device = placement.device;
    request.threads = placement.threads;
    request.trial = Some(TrialTag {
        study: spec.name.clone(),
        trial: trial.number,
        attempt,
        objective: spec.objective,
    });
    if let Some(last) = trial.job() {
        let dir = JobDir::new(home, last.clone());
        let cancelled = dir.status().is_ok_and(|s| s.state == JobState::Cancelled);
        if cancelled && dir.checkpoints().join("state.json").is_file() {
            request.resume = Some(last.clone());
        }
    }
    Ok(request)
}
