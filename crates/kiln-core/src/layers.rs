//! Watching a training job's per-layer statistics (its `layers` metric records): each layer's
//! first and latest figures, its [`LayerHealth`], and the words a warning says. The worker
//! (log line, status message) and the console (layers pane, status line) share it, so both
//! judge a layer the same way and say so in the same words.

use crate::inspect::{LayerHealth, LayerStats};
use crate::jobs::MetricRecord;
use crate::kinds::MetricKind;

/// One layer's first and latest statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    pub first: LayerStats,
    pub latest: LayerStats,
    /// The step of the latest record.
    pub step: u64,
}

impl Watched {
    /// The layer's name in the module tree (`hidden.0`, `convs.1`, `lstm`).
    pub fn name(&self) -> &str {
        &self.latest.name
    }

    /// Its health, from the first and the latest record.
    pub fn health(&self) -> LayerHealth {
        LayerHealth::of(&self.first, &self.latest)
    }

    /// What is wrong, in a few words: `exploding gradients (grad norm 3.2e+04, 480x its
    /// first)`, `vanishing gradients (grad norm 1.0e-09)`, `62% of units dead`; empty when
    /// the layer is healthy.
    pub fn describe(&self) -> String {
        let (latest, first) = (&self.latest, &self.first);
        match self.health() {
            LayerHealth::Ok => String::new(),
            LayerHealth::Exploding => {
                let growth = latest.grad_norm / first.grad_norm;
                let growth = match growth.is_finite() && first.grad_norm > 0.0 {
                    true => format!(", {}x its first", times(growth)),
                    false => String::new(),
                };
                format!("exploding gradients (grad norm {}{growth})", sci(latest.grad_norm))
            }
            LayerHealth::Vanishing => format!("vanishing gradients (grad norm {})", sci(latest.grad_norm)),
            LayerHealth::Dead => format!("{:.0}% of units dead", latest.dead.unwrap_or(0.0) * 100.0),
        }
    }

    /// The warning a worker logs (and shows as its job's message) when the layer explodes.
    pub fn warning(&self) -> String {
        format!("layer {}: {}{WARNING_END}", self.name(), self.describe())
    }
}

/// How a [`Watched::warning`] ends.
const WARNING_END: &str = " — the run may diverge";

/// Whether a running job's message is a layer's warning (the console raises it in its
/// status line).
pub fn is_warning(message: &str) -> bool {
    message.starts_with("layer ") && message.ends_with(WARNING_END)
}

/// Every layer of one job, in the order they were first recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerWatch {
    layers: Vec<Watched>,
}

impl LayerWatch {
    /// Folds in one metric record (only `layers` records count); returns the layers that
    /// became [`LayerHealth::Exploding`] with it.
    pub fn observe(&mut self, record: &MetricRecord) -> Vec<Watched> {
        let (MetricKind::Layers, Some(stats)) = (record.kind, &record.layers) else {
            return Vec::new();
        };
        let mut exploded = Vec::new();
        for stats in stats {
            match self.layers.iter_mut().find(|w| w.name() == stats.name) {
                Some(watched) => {
                    let before = watched.health();
                    watched.latest = stats.clone();
                    watched.step = record.step;
                    if watched.health() == LayerHealth::Exploding && before != LayerHealth::Exploding {
                        exploded.push(watched.clone());
                    }
                }
                None => {
                    let watched = Watched {
                        first: stats.clone(),
                        latest: stats.clone(),
                        step: record.step,
                    };
                    if watched.health() == LayerHealth::Exploding {
                        exploded.push(watched.clone());
                    }
                    self.layers.push(watched);
                }
            }
        }
        exploded
    }

    /// The layers, in the order they were first recorded.
    pub fn layers(&self) -> &[Watched] {
        &self.layers
    }

    /// Whether no `layers` record was seen yet.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The first layer whose gradients explode, if any.
    pub fn exploding(&self) -> Option<&Watched> {
        self.layers.iter().find(|w| w.health() == LayerHealth::Exploding)
    }
}

/// `3.2e+04`, `1.0e-09`, `inf` (a norm that overflowed: kiln writes it as `f64::MAX`, JSON
/// having no infinity).
pub fn sci(value: f64) -> String {
    if !value.is_finite() || value >= f64::MAX {
        return "inf".into();
    }
    let text = format!("{value:.1e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(digits) => ('-', digits),
                None => ('+', exponent),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => text,
    }
}

/// `480`, `3.1e+05`: how many times, in whole numbers up to ten thousand.
fn times(value: f64) -> String {
    match value < 1e4 {
        true => format!("{value:.0}"),
        false => sci(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &str, grad: f64, dead: Option<f64>) -> LayerStats {
        LayerStats {
            name: name.into(),
            weight_norm: 10.0,
            grad_norm: grad,
            update_ratio: 1e-3,
            dead,
        }
    }

    fn record(step: u64, layers: Vec<LayerStats>) -> MetricRecord {
        MetricRecord {
            kind: MetricKind::Layers,
            step,
            epoch: 0,
            time: step as f64,
            train_loss: None,
            val_loss: None,
            accuracy: None,
            rmse: None,
            lr: None,
            samples_per_sec: None,
            layers: Some(layers),
        }
    }

    #[test]
    fn a_layer_that_explodes_is_reported_once_in_the_words_the_worker_logs() {
        let mut watch = LayerWatch::default();
        assert!(
            watch
                .observe(&record(1, vec![stats("fc1", 66.7, Some(0.1))]))
                .is_empty()
        );
        let exploded = watch.observe(&record(2, vec![stats("fc1", 3.2e4, Some(0.1))]));
        assert_eq!(exploded.len(), 1);
        assert_eq!(
            exploded[0].warning(),
            "layer fc1: exploding gradients (grad norm 3.2e+04, 480x its first) — the run may diverge"
        );
        assert!(is_warning(&exploded[0].warning()) && !is_warning("fine-tuning for 1 epoch(s)"));
        assert!(
            watch.observe(&record(3, vec![stats("fc1", 5e4, None)])).is_empty(),
            "once"
        );
        assert_eq!(watch.exploding().map(Watched::name), Some("fc1"));
        let mut train = record(4, Vec::new());
        train.kind = MetricKind::Train;
        assert!(watch.observe(&train).is_empty());
        assert_eq!(watch.layers()[0].step, 3);
    }

    #[test]
    fn vanishing_and_dead_layers_are_described_and_overflow_reads_inf() {
        let mut watch = LayerWatch::default();
        watch.observe(&record(1, vec![stats("a", 1e-9, None), stats("b", 0.5, Some(0.625))]));
        let described: Vec<String> = watch.layers().iter().map(Watched::describe).collect();
        assert_eq!(
            described,
            ["vanishing gradients (grad norm 1.0e-09)", "62% of units dead"]
        );
        assert_eq!(sci(f64::MAX), "inf");
        assert_eq!(sci(1.5e300), "1.5e+300");
        assert_eq!(sci(0.0), "0.0e+00");
    }
}
