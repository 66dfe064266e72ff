//! Chart drawing shared by the jobs, GPU and studies screens: turns bounded series into at most two
//! points per column and draws them with braille lines.
//!
//! ```text
//! ┌ loss · j…-ab12 · ema · log-y · recent ──────────┐
//! │2.30┤⠑⠢⡀                                         │
//! │    │   ⠈⠑⠢⣀⣀  ⠂ val                             │
//! │0.25┤        ⠉⠉⠒⠒⠤⠤⠤⣀⣀⣀⣀                       │
//! │    └──────────────────────────────────── step   │
//! └──────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType};

use crate::tui::series::{Series, Zoom, y_bounds};
use crate::tui::state::jobs::{ChartOptions, RunData};
use crate::tui::theme::Theme;
use kiln_core::jobs::JobId;

/// One line to draw: its points and style.
pub struct Trace {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
    pub scatter: bool,
    /// Draw each point as this character (the jobs screen's epoch markers), not as a line.
    pub symbol: Option<char>,
}

impl Trace {
    /// A line trace.
    pub fn line(name: &str, points: Vec<(f64, f64)>, style: Style) -> Self {
        Self {
            name: name.to_owned(),
            points,
            style,
            scatter: false,
            symbol: None,
        }
    }

    /// Points drawn as `symbol`, one per cell.
    pub fn marks(name: &str, points: Vec<(f64, f64)>, style: Style, symbol: char) -> Self {
        Self {
            name: name.to_owned(),
            points,
            style,
            scatter: true,
            symbol: Some(symbol),
        }
    }
}

/// The axes of one chart.
pub struct Axes {
    pub x_bounds: [f64; 2],
    pub x_labels: [String; 2],
    /// Fixed y range (e.g. 0–100 for percentages); `None` fits the data.
    pub y_fixed: Option<[f64; 2]>,
    /// The y values are log10 of the data: label them with the data's values.
    pub y_log: bool,
}

impl Axes {
    /// X bounds labelled with their values; y fitted to the data.
    pub fn fit(x_bounds: [f64; 2]) -> Self {
        Self {
            x_bounds,
            x_labels: [short(x_bounds[0]), short(x_bounds[1])],
            y_fixed: None,
            y_log: false,
        }
    }
}

/// Draws `traces` on shared axes.
pub fn render_traces(frame: &mut Frame, area: Rect, block: Block<'_>, traces: &[Trace], axes: Axes, theme: &Theme) {
    let all = traces.iter().flat_map(|t| t.points.iter());
    let (lo, hi) = match axes.y_fixed {
        Some([lo, hi]) => (lo, hi),
        None => y_bounds(all).unwrap_or((0.0, 1.0)),
    };
    let x_bounds = axes.x_bounds;
    let datasets: Vec<Dataset> = traces
        .iter()
        .map(|t| {
            Dataset::default()
                .name(t.name.clone())
                .marker(match (t.symbol, t.scatter) {
                    (Some(c), _) => Marker::Custom(c),
                    (None, true) => Marker::Dot,
                    (None, false) => Marker::Braille,
                })
                .graph_type(if t.scatter { GraphType::Scatter } else { GraphType::Line })
                .style(t.style)
                .data(&t.points)
        })
        .collect();
    let label = |v: f64| Span::styled(short(if axes.y_log { 10f64.powf(v) } else { v }), theme.muted);
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .bounds(x_bounds)
                .style(theme.border)
                .labels(axes.x_labels.map(|l| Span::styled(l, theme.muted))),
        )
        .y_axis(
            Axis::default()
                .bounds([lo, hi])
                .style(theme.border)
                .labels([label(lo), label(hi)]),
        )
        .legend_position(None);
    frame.render_widget(chart, area);
}

/// `── train ── val ● kept` in the traces' colours, for the panel title (unnamed traces are
/// left out).
pub fn legend(traces: &[Trace]) -> Line<'static> {
    let spans: Vec<Span> = traces
        .iter()
        .filter(|t| !t.name.is_empty())
        .map(|t| {
            let symbol = t.symbol.map_or_else(|| "──".to_owned(), String::from);
            Span::styled(format!(" {symbol} {} ", t.name), t.style)
        })
        .collect();
    Line::from(spans).right_aligned()
}

/// Compact labels, about three significant figures: `12k`, `59`, `2.3`, `0.253`, `1.2e-4`.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

/// The points as the y axis shows them: log10 of the positive ones when `log_y`.
pub fn transform(points: Vec<(f64, f64)>, log_y: bool) -> Vec<(f64, f64)> {
    if !log_y {
        return points;
    }
    points
        .into_iter()
        .filter(|(_, y)| *y > 0.0)
        .map(|(x, y)| (x, y.log10()))
        .collect()
}

/// The x range a run's chart shows.
pub fn run_range(run: &RunData, zoom: Zoom) -> Option<(f64, f64)> {
    let train = run.train.x_range(zoom);
    let val = run.val.x_range(Zoom::Full);
    match (train, val, zoom) {
        (Some(t), _, Zoom::Recent) => Some(t),
        (Some(t), Some(v), Zoom::Full) => Some((t.0.min(v.0), t.1.max(v.1))),
        (t, v, _) => t.or(v),
    }
}

/// Traces for one run (and an optional overlaid run) under the chart options.
pub fn loss_traces(
    run: &RunData,
    overlay: Option<(&JobId, &RunData)>,
    opts: ChartOptions,
    range: (f64, f64),
    columns: usize,
    theme: &Theme,
) -> Vec<Trace> {
    let env = |s: &Series, zoom: Zoom| transform(s.envelope(zoom, range, columns), opts.log_y);
    let mut traces = Vec::new();
    if opts.smoothing {
        traces.push(Trace::line("train", env(&run.train, opts.zoom), theme.muted));
        traces.push(Trace::line(
            "train ema",
            env(&run.train_ema, opts.zoom),
            theme.loss_train,
        ));
    } else {
        traces.push(Trace::line("train", env(&run.train, opts.zoom), theme.loss_train));
    }
    let mut val = Trace::line("val", env(&run.val, Zoom::Full), theme.loss_val);
    val.scatter = run.val.len() < 3;
    traces.push(val);
    if let Some((id, other)) = overlay {
        let s = if opts.smoothing { &other.train_ema } else { &other.train };
        let id = id.as_str();
        let short_id: String = id.chars().skip(id.chars().count().saturating_sub(10)).collect();
        traces.push(Trace::line(&short_id, env(s, Zoom::Full), theme.loss_overlay));
    }
    traces.retain(|t| !t.points.is_empty());
    traces
}
