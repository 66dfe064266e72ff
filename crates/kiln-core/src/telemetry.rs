//! Telemetry samples as the daemon serves them (`GET /api/v1/telemetry`, SSE `telemetry`
//! events). The sampler itself lives in kilnd; these are the wire types both sides share.

use serde::{Deserialize, Serialize};

use crate::jobs::JobId;

/// Whether GPU figures can be read at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GpuAvailability {
    /// NVML loaded; `driver` is the NVIDIA driver version.
    Available { driver: String, count: u32 },
    /// No NVIDIA driver (or NVML failed to start): not an error, just nothing to show.
    NoGpu { reason: String },
}

/// One sample of the whole machine, taken at `at_ms` (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at_ms: u64,
    pub gpus: Vec<GpuSample>,
    pub host: HostSample,
}

/// One GPU at one instant. A figure the device does not report is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    pub index: u32,
    pub name: String,
    pub utilization_pct: Option<u32>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub temperature_c: Option<u32>,
    pub power_w: Option<f64>,
    pub processes: Vec<GpuProcess>,
}

/// A process holding memory on a GPU, tied to its kiln job when it is one of our workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuProcess {
    pub pid: u32,
    pub used_memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
}

/// CPU and memory of the host, and of each running job's worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    /// Mean over all cores, 0–100.
    pub cpu_pct: f32,
    pub cpus: usize,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub jobs: Vec<JobUsage>,
}

/// One worker process's footprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobUsage {
    pub job: JobId,
    pub pid: u32,
    pub rss_bytes: u64,
    /// Share of one core, so a worker using two cores reads 200.
    pub cpu_pct: f32,
}

/// `GET /api/v1/telemetry`: the GPU state and the bounded history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    pub gpu: GpuAvailability,
    /// Seconds between samples.
    pub interval_s: f64,
    pub samples: Vec<Sample>,
    /// The sampler's mean cost per sample, in microseconds.
    #[serde(default)]
    pub sample_cost_us: Option<f64>,
}
