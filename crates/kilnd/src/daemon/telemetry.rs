//! The telemetry sampler: once a second, per GPU utilisation, memory, temperature, power and
//! processes (NVML, loaded at run time through nvml-wrapper; nvidia-smi is never spawned),
//! plus host CPU/RAM and each running worker's RSS (sysinfo), into a bounded history.
//!
//! No NVIDIA driver is a state ([`GpuAvailability::NoGpu`]), not an error: the sampler then
//! reports the host alone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kiln_core::jobs::JobId;
use kiln_core::telemetry::{GpuAvailability, GpuProcess, GpuSample, HostSample, JobUsage, Sample, Telemetry};
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::events::Hub;

/// Samples kept: ten minutes at 1 Hz.
pub const HISTORY: usize = 600;
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What request handlers read: availability, history and the sampler's own cost.
pub struct TelemetryStore {
    gpu: GpuAvailability,
    history: Mutex<VecDeque<Sample>>,
    /// Total time spent sampling and number of samples, for the cost figure.
    cost: Mutex<(Duration, u64)>,
}

impl TelemetryStore {
    /// The history (samples after `since_ms` when given), oldest first.
    pub fn snapshot(&self, since_ms: Option<u64>) -> Telemetry {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let samples = history
            .iter()
            .filter(|s| since_ms.is_none_or(|t| s.at_ms > t))
            .cloned()
            .collect();
        Telemetry {
            gpu: self.gpu.clone(),
            interval_s: INTERVAL.as_secs_f64(),
            samples,
            sample_cost_us: Some(self.mean_sample_cost_us()),
        }
    }

    /// The newest sample, if any.
    pub fn latest(&self) -> Option<kiln_core::telemetry::Sample> {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).back().cloned()
    }

    /// Mean wall time one sample takes, in microseconds.
    pub fn mean_sample_cost_us(&self) -> f64 {
        let (total, count) = *self.cost.lock().unwrap_or_else(|p| p.into_inner());
        if count == 0 {
            0.0
        } else {
            total.as_secs_f64() * 1e6 / count as f64
        }
    }
}

/// Reads the devices; owned by the sampler thread.
pub struct Sampler {
    nvml: Option<Nvml>,
    gpu_names: Vec<String>,
    /// `None` where /proc cannot be read; the host figures then stay empty.
    system: Option<System>,
}

impl Sampler {
    /// Loads NVML when it can; returns the sampler and what it found.
    pub fn new() -> (Self, GpuAvailability) {
        let (nvml, availability) = match Nvml::init() {
            Ok(nvml) => {
                let count = nvml.device_count().unwrap_or(0);
                let driver = nvml.sys_driver_version().unwrap_or_else(|_| "unknown".into());
                (Some(nvml), GpuAvailability::Available { driver, count })
            }
            Err(e) => (
                None,
                GpuAvailability::NoGpu {
                    reason: format!("no NVIDIA GPU found (NVML: {e})"),
                },
            ),
        };
        let gpu_names = nvml
            .as_ref()
            .map(|n| {
                let count = n.device_count().unwrap_or(0);
                (0..count)
                    .map(|i| {
                        n.device_by_index(i)
                            .and_then(|d| d.name())
                            .unwrap_or_else(|_| format!("GPU {i}"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let system = System::new().ok();
        (
            Self {
                nvml,
                gpu_names,
                system,
            },
            availability,
        )
    }

    /// One sample; `workers` maps worker pids to their jobs.
    pub fn sample(&mut self, workers: &HashMap<u32, JobId>) -> Sample {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Sample {
            at_ms,
            gpus: self.gpus(workers),
            host: self.host(workers),
        }
    }

    fn gpus(&self, workers: &HashMap<u32, JobId>) -> Vec<GpuSample> {
        let Some(nvml) = &self.nvml else { return Vec::new() };
        let mut gpus = Vec::new();
        for (index, name) in self.gpu_names.iter().enumerate() {
            let Ok(device) = nvml.device_by_index(index as u32) else {
                continue;
            };
            let memory = device.memory_info().ok();
            let mut processes: Vec<GpuProcess> = device
                .running_compute_processes()
                .into_iter()
                .chain(device.running_graphics_processes())
                .flatten()
                .map(|p| GpuProcess {
                    pid: p.pid,
                    used_memory_bytes: match p.used_gpu_memory {
                        UsedGpuMemory::Used(bytes) => Some(bytes),
                        UsedGpuMemory::Unavailable => None,
                    },
                    job: workers.get(&p.pid).cloned(),
                })
                .collect();
            processes.sort_by_key(|p| p.pid);
            processes.dedup_by_key(|p| p.pid);
            gpus.push(GpuSample {
                index: index as u32,
                name: name.clone(),
                utilization_pct: device.utilization_rates().ok().map(|u| u.gpu),
                memory_used_bytes: memory.as_ref().map(|m| m.used),
                memory_total_bytes: memory.as_ref().map(|m| m.total),
                temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
                power_w: device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
                processes,
            });
        }
        gpus
    }

    fn host(&mut self, workers: &HashMap<u32, JobId>) -> HostSample {
        let Some(system) = self.system.as_mut() else {
            return HostSample {
                cpu_pct: 0.0,
                cpus: 0,
                memory_used_bytes: 0,
                memory_total_bytes: 0,
                jobs: Vec::new(),
            };
        };
        system.refresh_cpu_usage();
        system.refresh_memory();
        let pids: Vec<Pid> = workers.keys().map(|&p| Pid::from_u32(p)).collect();
        let kind = ProcessRefreshKind::nothing().with_memory().with_cpu();
        system.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, kind);
        let mut jobs: Vec<JobUsage> = workers
            .iter()
            .filter_map(|(&pid, job)| {
                let process = system.process(Pid::from_u32(pid))?;
                Some(JobUsage {
                    job: job.clone(),
                    pid,
                    rss_bytes: process.memory(),
                    cpu_pct: process.cpu_usage(),
                })
            })
            .collect();
        jobs.sort_by(|a, b| a.job.cmp(&b.job));
        HostSample {
            cpu_pct: system.global_cpu_usage(),
            cpus: system.cpus().len(),
            memory_used_bytes: system.used_memory(),
            memory_total_bytes: system.total_memory(),
            jobs,
        }
    }
}

/// Starts the sampler thread; `workers` is asked for the current pid → job map each tick.
pub fn start(hub: Hub, workers: impl Fn() -> HashMap<u32, JobId> + Send + 'static) -> Arc<TelemetryStore> {
    let (mut sampler, gpu) = Sampler::new();
    let store = Arc::new(TelemetryStore {
        gpu,
        history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        cost: Mutex::new((Duration::ZERO, 0)),
    });
    let shared = store.clone();
    let spawned = std::thread::Builder::new().name("telemetry".into()).spawn(move || {
        loop {
            let started = Instant::now();
            let sample = sampler.sample(&workers());
            let took = started.elapsed();
            {
                let mut cost = shared.cost.lock().unwrap_or_else(|p| p.into_inner());
                cost.0 += took;
                cost.1 += 1;
            }
            if hub.has_listeners() {
                hub.publish(&kiln_core::api::Event::Telemetry(Box::new(sample.clone())));
            }
            {
                let mut history = shared.history.lock().unwrap_or_else(|p| p.into_inner());
                if history.len() == HISTORY {
                    history.pop_front();
                }
                history.push_back(sample);
            }
            std::thread::sleep(INTERVAL.saturating_sub(started.elapsed()));
        }
    });
    if let Err(e) = spawned {
        eprintln!("kilnd: telemetry disabled: cannot start its thread: {e}");
    }
    store
}
