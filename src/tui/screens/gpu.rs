//! The GPU screen: per GPU, utilisation, memory, temperature and power as live charts on
//! one time axis (the last ten minutes), the processes on it tied to their kiln job; then
//! the host's CPU and RAM. No GPU is a state, shown plainly.
//!
//! ```text
//! ┌ GPU 0 · NVIDIA H200 · 45% · 30.1/139.8 GiB · 61°C · 210 W ───────────────┐
//! │ util %  ⣀⡠⠔⠊  │ mem %  ⣀⣀⣀⣀ │ temp °C ⠤⠤⠒⠒ │ power W ⡠⠊⠉⠉           │
//! │ pid 4242 (job j…-ab12) 12.0 GiB                                          │
//! └──────────────────────────────────────────────────────────────────────────┘
//! ┌ Host · CPU 37% of 16 · RAM 41.2/125.0 GiB ────────────────────────────────┐
//! │ cpu % chart                        │ job j…-ab12  pid 4242  3.1 GiB 190%  │
//! └──────────────────────────────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};

use super::chart::{Axes, Trace, render_traces};
use crate::tui::app::App;
use crate::tui::state::gpu::GpuState;
use crate::tui::theme::Theme;
use crate::tui::widgets::{panel, placeholder};
use kiln_core::telemetry::{GpuAvailability, GpuProcess, GpuSample, Sample};

/// Rows for the host section.
const HOST_ROWS: u16 = 7;
const GIB: f64 = (1u64 << 30) as f64;

/// Draws the GPU screen.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.gpu, &app.theme);
    if state.unavailable {
        let text = "telemetry is not served by this kilnd (no /api/v1/telemetry)";
        placeholder(frame, area, panel(" GPU ", false, theme), text, theme.muted);
        return;
    }
    let Some(availability) = &state.availability else {
        placeholder(
            frame,
            area,
            panel(" GPU ", false, theme),
            "waiting for telemetry…",
            theme.muted,
        );
        return;
    };
    let [gpus, host] = Layout::vertical([Constraint::Min(3), Constraint::Length(HOST_ROWS)]).areas(area);
    match availability {
        GpuAvailability::NoGpu { reason } => {
            let reason = match reason.strip_prefix("no NVIDIA GPU found") {
                Some(rest) => {
                    let rest = rest.trim_start_matches([' ', ':']);
                    rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')).unwrap_or(rest)
                }
                None => reason,
            };
            let text = format!("no NVIDIA GPU found\n{reason}\nTraining and serving run on the CPU.");
            placeholder(frame, gpus, panel(" GPU ", false, theme), &text, theme.warn);
        }
        GpuAvailability::Available { .. } => render_gpus(frame, gpus, app),
    }
    render_host(frame, host, app);
}

fn render_gpus(frame: &mut Frame, area: Rect, app: &App) {
    let Some(latest) = app.gpu.latest() else {
        placeholder(
            frame,
            area,
            panel(" GPU ", false, &app.theme),
            "no sample yet",
            app.theme.muted,
        );
        return;
    };
    let n = latest.gpus.len().max(1) as u32;
    let areas = Layout::vertical(vec![Constraint::Ratio(1, n); n as usize]).split(area);
    for (gpu, rect) in latest.gpus.iter().zip(areas.iter()) {
        render_gpu(frame, *rect, app, gpu);
    }
}

fn gpu_title(g: &GpuSample) -> String {
    let mut parts = vec![format!(" GPU {} · {}", g.index, g.name)];
    parts.extend(g.utilization_pct.map(|u| format!("{u}%")));
    if let (Some(used), Some(total)) = (g.memory_used_bytes, g.memory_total_bytes) {
        parts.push(format!("{:.1}/{:.1} GiB", used as f64 / GIB, total as f64 / GIB));
    }
    parts.extend(g.temperature_c.map(|t| format!("{t}°C")));
    parts.extend(g.power_w.map(|p| format!("{p:.0} W")));
    format!("{} ", parts.join(" · "))
}

fn render_gpu(frame: &mut Frame, area: Rect, app: &App, gpu: &GpuSample) {
    let (state, theme) = (&app.gpu, &app.theme);
    let block = panel(gpu_title(gpu), false, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let procs = gpu.processes.len().min(3) as u16;
    let [charts, list] = Layout::vertical([Constraint::Min(2), Constraint::Length(procs)]).areas(inner);
    let cols = Layout::horizontal([Constraint::Ratio(1, 4); 4]).split(charts);
    let i = gpu.index;
    let pick = |f: fn(&GpuSample) -> Option<f64>| move |s: &Sample| s.gpus.iter().find(|g| g.index == i).and_then(f);
    let figures: [(Metric, Box<Figure>); 4] = [
        (
            Metric::new("util %", theme.gpu_util, true),
            Box::new(pick(|g| g.utilization_pct.map(f64::from))),
        ),
        (Metric::new("mem %", theme.gpu_mem, true), Box::new(pick(mem_pct))),
        (
            Metric::new("temp °C", theme.gpu_temp, false),
            Box::new(pick(|g| g.temperature_c.map(f64::from))),
        ),
        (
            Metric::new("power W", theme.gpu_power, false),
            Box::new(pick(|g| g.power_w)),
        ),
    ];
    for ((metric, value), rect) in figures.into_iter().zip(cols.iter()) {
        render_metric(frame, *rect, app, state, &metric, &*value);
    }
    let lines: Vec<Line> = gpu.processes.iter().take(3).map(|p| process_line(p, theme)).collect();
    frame.render_widget(Paragraph::new(lines), list);
}

/// `pid 4242 (job j…) 12.0 GiB`.
fn process_line<'a>(p: &GpuProcess, theme: &Theme) -> Line<'a> {
    let job = p
        .job
        .as_ref()
        .map_or("not a kiln job".to_owned(), |j| format!("job {j}"));
    let mem = p
        .used_memory_bytes
        .map_or("-".to_owned(), |b| format!("{:.1} GiB", b as f64 / GIB));
    Line::styled(format!("pid {} ({job}) {mem}", p.pid), theme.base)
}

/// Reads one figure from a sample.
type Figure = dyn Fn(&Sample) -> Option<f64>;

fn mem_pct(g: &GpuSample) -> Option<f64> {
    let (used, total) = (g.memory_used_bytes?, g.memory_total_bytes?);
    (total > 0).then(|| used as f64 * 100.0 / total as f64)
}

/// How one figure is drawn.
struct Metric<'a> {
    name: &'a str,
    style: Style,
    /// A percentage: the y axis is fixed at 0–100.
    pct: bool,
}

impl<'a> Metric<'a> {
    fn new(name: &'a str, style: Style, pct: bool) -> Self {
        Self { name, style, pct }
    }
}

fn render_metric(frame: &mut Frame, area: Rect, app: &App, state: &GpuState, metric: &Metric<'_>, value: &Figure) {
    let (name, style) = (metric.name, metric.style);
    let traces: Vec<Trace> = state
        .segments(value)
        .into_iter()
        .map(|points| Trace::line("", points, style))
        .collect();
    let block = Block::default().title(Line::styled(name.to_owned(), app.theme.muted));
    let mut axes = time_axis(state);
    axes.y_fixed = metric.pct.then_some([0.0, 100.0]);
    render_traces(frame, area, block, &traces, axes, &app.theme);
}

/// The shared time axis: seconds before the newest sample, labelled `-5m` … `now`.
fn time_axis(state: &GpuState) -> Axes {
    let span = match (state.samples.front(), state.samples.back()) {
        (Some(a), Some(b)) => ((b.at_ms - a.at_ms.min(b.at_ms)) as f64 / 1000.0).max(10.0),
        _ => 60.0,
    };
    let start = if span >= 120.0 {
        format!("-{:.0}m", span / 60.0)
    } else {
        format!("-{span:.0}s")
    };
    Axes {
        x_bounds: [-span, 0.0],
        x_labels: [start, "now".to_owned()],
        y_fixed: None,
        y_log: false,
    }
}

fn render_host(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.gpu, &app.theme);
    let Some(latest) = state.latest() else {
        placeholder(frame, area, panel(" Host ", false, theme), "no sample yet", theme.muted);
        return;
    };
    let h = &latest.host;
    let title = format!(
        " Host · CPU {:.0}% of {} · RAM {:.1}/{:.1} GiB ",
        h.cpu_pct,
        h.cpus,
        h.memory_used_bytes as f64 / GIB,
        h.memory_total_bytes as f64 / GIB
    );
    let block = panel(title, false, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [cpu, jobs] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(inner);
    let metric = Metric::new("cpu %", theme.cpu, true);
    render_metric(frame, cpu, app, state, &metric, &|s: &Sample| {
        Some(f64::from(s.host.cpu_pct))
    });
    let mut lines = vec![Line::styled("jobs: rss · cpu", theme.muted)];
    lines.extend(h.jobs.iter().map(|j| {
        Line::styled(
            format!(
                "{} pid {} {:.2} GiB {:.0}%",
                j.job,
                j.pid,
                j.rss_bytes as f64 / GIB,
                j.cpu_pct
            ),
            theme.ram,
        )
    }));
    if h.jobs.is_empty() {
        lines.push(Line::styled("no job running", theme.muted));
    }
    frame.render_widget(Paragraph::new(lines), jobs);
}
