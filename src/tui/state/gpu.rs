//! The GPU screen's data: whether GPUs can be read at all, and a bounded history of
//! telemetry samples (the last [`HISTORY`] seconds at 1 Hz), oldest first.

use std::collections::VecDeque;

use kiln_core::telemetry::{GpuAvailability, Sample, Telemetry};

/// Samples kept (10 minutes at 1 Hz).
pub const HISTORY: usize = 600;

/// Everything the GPU screen shows.
#[derive(Debug, Clone, Default)]
pub struct GpuState {
    /// `None` until the first telemetry answer.
    pub availability: Option<GpuAvailability>,
    pub interval_s: f64,
    pub samples: VecDeque<Sample>,
    /// The daemon has no telemetry route (404).
    pub unavailable: bool,
}

impl GpuState {
    /// Takes the daemon's history.
    pub fn set(&mut self, telemetry: Telemetry) {
        self.availability = Some(telemetry.gpu);
        self.interval_s = telemetry.interval_s;
        self.samples = telemetry.samples.into_iter().collect();
        self.trim();
        self.unavailable = false;
    }

    /// Appends one live sample (out-of-order or repeated samples are dropped).
    pub fn push(&mut self, sample: Sample) {
        if self.samples.back().is_some_and(|last| last.at_ms >= sample.at_ms) {
            return;
        }
        self.samples.push_back(sample);
        self.trim();
    }

    fn trim(&mut self) {
        while self.samples.len() > HISTORY {
            self.samples.pop_front();
        }
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// Per-sample values of one figure as `(seconds before now, value)` runs, split at
    /// missing values so a gap is drawn as a gap.
    pub fn segments(&self, value: impl Fn(&Sample) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
        let Some(now) = self.latest().map(|s| s.at_ms) else {
            return Vec::new();
        };
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for s in &self.samples {
            let x = -((now - s.at_ms.min(now)) as f64) / 1000.0;
            match value(s) {
                Some(y) if y.is_finite() => {
                    if let Some(seg) = segments.last_mut() {
                        seg.push((x, y));
                    }
                }
                _ => {
                    if segments.last().is_some_and(|seg| !seg.is_empty()) {
                        segments.push(Vec::new());
                    }
                }
            }
        }
        segments.retain(|s| !s.is_empty());
        segments
    }
}
