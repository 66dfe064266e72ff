//! Serving figures: per model and version, requests by status code, histograms of latency,
//! queue wait, forward-pass time and batch size, and recent latencies for p50/p99; rendered
//! as Prometheus text for `GET /metrics` and as [`DeploymentStats`] for the control API.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kiln_core::deploy::DeploymentStats;

/// Seconds: a one-row forward pass on the CPU takes a few hundred microseconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
const RECENT: usize = 2048;
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (slot, bound) in self.counts.iter_mut().zip(bounds) {
            if value <= *bound {
                *slot += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        for (count, bound) in self.counts.iter().zip(bounds) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// One histogram family: its HELP and TYPE lines, then one histogram per model and version.
fn histograms<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    bounds: &[f64],
    each: impl Iterator<Item = (&'a (String, u32), &'a Histogram)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for ((model, version), histogram) in each {
        let labels = format!("model=\"{model}\",version=\"{version}\"");
        histogram.render(out, name, &labels, bounds);
    }
}

#[derive(Default)]
struct Series {
    by_code: BTreeMap<u16, u64>,
    latency: Histogram,
    /// Per request: joining the queue to the start of its forward pass.
    queue: Histogram,
    /// Per forward pass.
    forward: Histogram,
    batch: Histogram,
    recent: VecDeque<(Instant, f64)>,
}

/// All serving figures; one lock, held for a few hundred nanoseconds per request.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, u32), Series>>,
}

impl Metrics {
    fn with<R>(&self, model: &str, version: u32, f: impl FnOnce(&mut Series) -> R) -> R {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        f(series.entry((model.to_owned(), version)).or_default())
    }

    /// One answered request (any status), with its latency.
    pub fn request(&self, model: &str, version: u32, code: u16, latency: Duration) {
        self.with(model, version, |s| {
            *s.by_code.entry(code).or_default() += 1;
            let seconds = latency.as_secs_f64();
            s.latency.observe(&LATENCY_BUCKETS, seconds);
            if s.recent.len() == RECENT {
                s.recent.pop_front();
            }
            s.recent.push_back((Instant::now(), seconds));
        });
    }

    /// One forward pass over `rows` rows that took `forward`, and how long each of its
    /// requests waited in the queue for it.
    pub fn batch(
        &self,
        model: &str,
        version: u32,
        rows: usize,
        forward: Duration,
        waits: impl Iterator<Item = Duration>,
    ) {
        self.with(model, version, |s| {
            s.batch.observe(&BATCH_BUCKETS, rows as f64);
            s.forward.observe(&LATENCY_BUCKETS, forward.as_secs_f64());
            for wait in waits {
                s.queue.observe(&LATENCY_BUCKETS, wait.as_secs_f64());
            }
        });
    }

    /// The control API's summary; `queue_depth` is filled in by the caller.
    pub fn stats(&self, model: &str, version: u32) -> DeploymentStats {
        self.with(model, version, |s| {
            let requests = s.by_code.values().sum();
            let errors = s.by_code.iter().filter(|(c, _)| **c >= 400).map(|(_, n)| n).sum();
            let now = Instant::now();
            let window: Vec<f64> = s
                .recent
                .iter()
                .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
                .map(|(_, l)| *l)
                .collect();
            let mut sorted = window.clone();
            sorted.sort_by(f64::total_cmp);
            let pick = |q: f64| (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q) as usize] * 1e3);
            DeploymentStats {
                requests,
                errors,
                req_per_s: window.len() as f64 / RATE_WINDOW.as_secs_f64(),
                p50_ms: pick(0.5),
                p99_ms: pick(0.99),
                queue_depth: 0,
            }
        })
    }

    /// Prometheus text exposition; `queues` gives each live deployment's queue depth.
    pub fn render(&self, queues: &[(String, u32, usize)]) -> String {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP kiln_inference_requests_total Inference requests answered, by status code.\n");
        out.push_str("# TYPE kiln_inference_requests_total counter\n");
        for ((model, version), s) in series.iter() {
            for (code, n) in &s.by_code {
                let _ = writeln!(
                    out,
                    "kiln_inference_requests_total{{model=\"{model}\",version=\"{version}\",code=\"{code}\"}} {n}"
                );
            }
        }
        let latency = series.iter().map(|(key, s)| (key, &s.latency));
        let name = "kiln_inference_request_duration_seconds";
        let help = "Time from request to answer.";
        histograms(&mut out, name, help, &LATENCY_BUCKETS, latency);
        let batched = || series.iter().filter(|(_, s)| s.batch.count > 0);
        let queue = batched().map(|(key, s)| (key, &s.queue));
        let name = "kiln_inference_queue_duration_seconds";
        let help = "Time a request waited for its forward pass.";
        histograms(&mut out, name, help, &LATENCY_BUCKETS, queue);
        let forward = batched().map(|(key, s)| (key, &s.forward));
        let name = "kiln_inference_forward_duration_seconds";
        let help = "Time of one forward pass (one batch).";
        histograms(&mut out, name, help, &LATENCY_BUCKETS, forward);
        let batch = batched().map(|(key, s)| (key, &s.batch));
        let name = "kiln_inference_batch_size";
        histograms(&mut out, name, "Rows per forward pass.", &BATCH_BUCKETS, batch);
        out.push_str("# HELP kiln_inference_queue_depth Requests waiting for a forward pass.\n");
        out.push_str("# TYPE kiln_inference_queue_depth gauge\n");
        for (model, version, depth) in queues {
            let _ = writeln!(
                out,
                "kiln_inference_queue_depth{{model=\"{model}\",version=\"{version}\"}} {depth}"
            );
        }
        out.push_str("# HELP kiln_models_loaded Deployments being served.\n");
        out.push_str("# TYPE kiln_models_loaded gauge\n");
        let _ = writeln!(out, "kiln_models_loaded {}", queues.len());
        out
    }
}
