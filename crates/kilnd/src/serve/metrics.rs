//! Serving figures: per model and version, requests by status code, histograms of latency,
//! queue wait, forward-pass time and batch size (Prometheus exposition through
//! `prometheus-client`, for `GET /metrics`), and recent latencies for the p50/p99 the control
//! API shows ([`DeploymentStats`]).
//!
//! The request path takes one lock to find its series (a map keyed by model and version,
//! held for a few hundred nanoseconds) and observes on handles cached there, so no label set
//! is built or hashed per request.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kiln_core::deploy::DeploymentStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Seconds: a one-row forward pass on the CPU takes a few hundred microseconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
const RECENT: usize = 2048;
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// The content type of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    model: String,
    version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    model: String,
    version: String,
    code: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn batch_histogram() -> Histogram {
    Histogram::new(BATCH_BUCKETS)
}

type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// The metric families, registered once.
struct Families {
    requests: Family<CodeLabels, Counter>,
    latency: Histograms,
    queue: Histograms,
    forward: Histograms,
    batch: Histograms,
    queue_depth: Family<Labels, Gauge>,
    loaded: Gauge,
}

impl Families {
    fn register(registry: &mut Registry) -> Self {
        let families = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            queue: Family::new_with_constructor(latency_histogram),
            forward: Family::new_with_constructor(latency_histogram),
            batch: Family::new_with_constructor(batch_histogram),
            queue_depth: Family::default(),
            loaded: Gauge::default(),
        };
        let f = &families;
        registry.register(
            "kiln_inference_requests",
            "Inference requests answered, by status code",
            f.requests.clone(),
        );
        registry.register(
            "kiln_inference_request_duration_seconds",
            "Time from request to answer",
            f.latency.clone(),
        );
        registry.register(
            "kiln_inference_queue_duration_seconds",
            "Time a request waited for its forward pass",
            f.queue.clone(),
        );
        registry.register(
            "kiln_inference_forward_duration_seconds",
            "Time of one forward pass (one batch)",
            f.forward.clone(),
        );
        registry.register("kiln_inference_batch_size", "Rows per forward pass", f.batch.clone());
        registry.register(
            "kiln_inference_queue_depth",
            "Requests waiting for a forward pass",
            f.queue_depth.clone(),
        );
        registry.register("kiln_models_loaded", "Deployments being served", f.loaded.clone());
        families
    }
}

/// One model version's handles into the families, and its recent latencies.
struct Series {
    labels: Labels,
    by_code: BTreeMap<u16, Counter>,
    latency: Histogram,
    /// Created with the first forward pass, so a version that never batched shows none.
    batched: Option<Batched>,
    recent: VecDeque<(Instant, f64)>,
}

struct Batched {
    queue: Histogram,
    forward: Histogram,
    batch: Histogram,
}

/// All serving figures.
pub struct Metrics {
    registry: Registry,
    families: Families,
    series: Mutex<BTreeMap<(String, u32), Series>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let families = Families::register(&mut registry);
        Self {
            registry,
            families,
            series: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Metrics {
    fn with<R>(&self, model: &str, version: u32, f: impl FnOnce(&Families, &mut Series) -> R) -> R {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let entry = series.entry((model.to_owned(), version)).or_insert_with(|| {
            let labels = Labels {
                model: model.to_owned(),
                version: version.to_string(),
            };
            Series {
                latency: self.families.latency.get_or_create(&labels).clone(),
                labels,
                by_code: BTreeMap::new(),
                batched: None,
                recent: VecDeque::new(),
            }
        });
        f(&self.families, entry)
    }

    /// One answered request (any status), with its latency.
    pub fn request(&self, model: &str, version: u32, code: u16, latency: Duration) {
        self.with(model, version, |families, s| {
            let counter = s.by_code.entry(code).or_insert_with(|| {
                let labels = CodeLabels {
                    model: s.labels.model.clone(),
                    version: s.labels.version.clone(),
                    code: code.to_string(),
                };
                families.requests.get_or_create(&labels).clone()
            });
            counter.inc();
            let seconds = latency.as_secs_f64();
            s.latency.observe(seconds);
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
        self.with(model, version, |families, s| {
            let labels = &s.labels;
            let batched = s.batched.get_or_insert_with(|| Batched {
                queue: families.queue.get_or_create(labels).clone(),
                forward: families.forward.get_or_create(labels).clone(),
                batch: families.batch.get_or_create(labels).clone(),
            });
            batched.batch.observe(rows as f64);
            batched.forward.observe(forward.as_secs_f64());
            for wait in waits {
                batched.queue.observe(wait.as_secs_f64());
            }
        });
    }

    /// The control API's summary; `queue_depth` is filled in by the caller.
    pub fn stats(&self, model: &str, version: u32) -> DeploymentStats {
        self.with(model, version, |_, s| {
            let requests = s.by_code.values().map(Counter::get).sum();
            let errors = s.by_code.iter().filter(|(c, _)| **c >= 400).map(|(_, n)| n.get()).sum();
            let now = Instant::now();
            let mut window: Vec<f64> = s
                .recent
                .iter()
                .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
                .map(|(_, l)| *l)
                .collect();
            window.sort_by(f64::total_cmp);
            let pick = |q: f64| (!window.is_empty()).then(|| window[((window.len() - 1) as f64 * q) as usize] * 1e3);
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
        let families = &self.families;
        families.queue_depth.clear();
        for (model, version, depth) in queues {
            let labels = Labels {
                model: model.clone(),
                version: version.to_string(),
            };
            families.queue_depth.get_or_create(&labels).set(*depth as i64);
        }
        families.loaded.set(queues.len() as i64);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry) {
            out = format!("# cannot encode the metrics: {e}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_batches_render_per_version_with_their_labels() {
        let metrics = Metrics::default();
        metrics.request("m", 2, 200, Duration::from_micros(300));
        metrics.request("m", 2, 400, Duration::from_micros(50));
        metrics.batch(
            "m",
            2,
            3,
            Duration::from_micros(250),
            [Duration::from_micros(5); 3].into_iter(),
        );
        let text = metrics.render(&[("m".into(), 2, 1)]);
        for line in [
            r#"kiln_inference_requests_total{model="m",version="2",code="400"} 1"#,
            r#"kiln_inference_queue_duration_seconds_count{model="m",version="2"} 3"#,
            r#"kiln_inference_batch_size_bucket{model="m",version="2",le="4"} 1"#,
            r#"kiln_inference_queue_depth{model="m",version="2"} 1"#,
            "kiln_models_loaded 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        let stats = metrics.stats("m", 2);
        assert_eq!((stats.requests, stats.errors), (2, 1));
    }
}
