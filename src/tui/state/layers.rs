//! The layers pane's data for one run: each layer's first and latest statistics (kiln-core's
//! [`LayerWatch`], which also judges its health) and a bounded history of its gradient norm,
//! on a log scale, for the sparkline.

use kiln_core::jobs::MetricRecord;
use kiln_core::layers::LayerWatch;

use crate::tui::series::{Series, Zoom};

/// Buckets of gradient-norm history kept per layer (the whole run, downsampled).
const BUCKETS: usize = 512;
/// Gradient norms at or below this read as this on the log scale (a zero is still drawn).
const FLOOR: f64 = 1e-30;
/// The least span of the sparkline's scale, in decades: noise within one decade stays low.
const MIN_DECADES: f64 = 1.0;
/// Sparkline levels, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One run's layer statistics.
#[derive(Debug, Clone, Default)]
pub struct LayerHistory {
    pub watch: LayerWatch,
    /// `log10(grad norm)` by step, one series per layer in the watch's order.
    grads: Vec<Series>,
}

impl LayerHistory {
    /// Folds in one metric record (only `layers` records count).
    pub fn add(&mut self, record: &MetricRecord) {
        self.watch.observe(record);
        for stats in record.layers.iter().flatten() {
            let Some(i) = self.watch.layers().iter().position(|w| w.name() == stats.name) else {
                continue;
            };
            while self.grads.len() <= i {
                self.grads.push(Series::new(BUCKETS, 0));
            }
            self.grads[i].push(record.step as f64, stats.grad_norm.max(FLOOR).log10());
        }
    }

    /// Layer `i`'s gradient norm over the run in `width` columns: one bar per column (its
    /// highest window) on a log scale spanning the layer's own range (at least one decade).
    pub fn sparkline(&self, i: usize, width: usize) -> String {
        let Some(series) = self.grads.get(i) else {
            return String::new();
        };
        let Some(range) = series.x_range(Zoom::Full) else {
            return String::new();
        };
        let points = series.envelope(Zoom::Full, range, width);
        let mut columns: Vec<Option<f64>> = vec![None; points.len().min(width)];
        let span = (range.1 - range.0).max(f64::EPSILON);
        let last = columns.len().saturating_sub(1) as f64;
        for (x, y) in points {
            let column = (((x - range.0) / span) * last).round() as usize;
            if let Some(slot) = columns.get_mut(column) {
                *slot = Some(slot.map_or(y, |s: f64| s.max(y)));
            }
        }
        let (lo, hi) = columns
            .iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
                (lo.min(*y), hi.max(*y))
            });
        // A range under a decade is widened around its middle: a steady layer draws mid-height.
        let pad = ((MIN_DECADES - (hi - lo)) / 2.0).max(0.0);
        let (lo, hi) = (lo - pad, hi + pad);
        columns
            .iter()
            .map(|y| match y {
                Some(y) => {
                    let level = ((y - lo) / (hi - lo) * (BARS.len() - 1) as f64).round();
                    BARS[(level.max(0.0) as usize).min(BARS.len() - 1)]
                }
                None => ' ',
            })
            .collect()
    }
}
