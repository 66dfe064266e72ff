//! The jobs screen.
//!
//! ```text
//! ┌ Jobs (4) ─────────────────────────────────────────────────────────────┐
//! │ JOB              STATE     MODEL        ARCH  PROGRESS     ETA   S/S  │
//! │ j1764434400-ab12 running   fmnist-cnn   cnn   ████░░ 61%   1m10s 1.7k │
//! └───────────────────────────────────────────────────────────────────────┘
//! ┌ loss · j1764434400-ab12 · slurm 12 RUNNING · step → ── train ── val ● kept ┐
//! │ (train, val and overlay curves; see chart.rs; ● kept epoch, ○ not kept, │
//! │  ◉ the epoch cursor; `L` swaps in the layers pane, layers.rs; the Slurm  │
//! │  part only for a job run through Slurm, its reason while it is pending)  │
//! └───────────────────────────────────────────────────────────────────────┘
//!  epoch 2 · step 1,876 · val_loss 0.410 · val_accuracy 0.853 · promotable: R registers it
//! ┌ log ──────────────────────────────────────────────────────────────────┐
//! │ epoch 1: val_loss 0.31 accuracy 0.887                                  │
//! └───────────────────────────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState};

use super::chart::{Axes, Trace, legend, loss_traces, render_traces, run_range, short, transform};
use crate::tui::action::Action;
use crate::tui::app::App;
use crate::tui::series::Zoom;
use crate::tui::state::jobs::{RunData, arch_or_kind, format_duration, progress, subject};
use crate::tui::widgets::{grouped, panel, placeholder};
use kiln_core::api::{JobRequest, JobView};
use kiln_core::jobs::{JobState, MetricRecord};

/// Rows of the body the job list takes at most.
const LIST_MAX: u16 = 10;
/// Rows of the log tail.
const LOG_ROWS: u16 = 6;

/// Draws the jobs screen.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(_) = &app.jobs.jobs else {
        placeholder(frame, area, panel(" Jobs ", false, theme), "loading jobs…", theme.muted);
        return;
    };
    let visible = app.jobs.visible();
    if visible.is_empty() {
        let key = app.keymap.hint(Action::NewTraining);
        let text = if app.jobs.filter.is_empty() {
            format!("No jobs yet. Press {key} to launch a training.")
        } else {
            "No job matches the filter (esc clears it).".to_owned()
        };
        placeholder(frame, area, panel(" Jobs ", true, theme), &text, theme.muted);
        return;
    }
    let list_rows = (visible.len().min(usize::from(LIST_MAX)) as u16 + 3)
        .min(LIST_MAX)
        .min(area.height / 3)
        .max(4);
    let [list, chart, log] = Layout::vertical([
        Constraint::Length(list_rows),
        Constraint::Min(6),
        Constraint::Length(LOG_ROWS.min(area.height.saturating_sub(list_rows + 6))),
    ])
    .areas(area);
    render_list(frame, list, app, &visible);
    // An evaluation keeps its report in the chart's place: it has no layers to show.
    let training = app.jobs.current().is_some_and(|j| j.spec.request.as_train().is_some());
    match app.jobs.chart.layers && training {
        true => super::layers::render(frame, chart, app),
        false => render_chart(frame, chart, app),
    }
    render_log(frame, log, app);
}

fn render_list(frame: &mut Frame, area: Rect, app: &App, jobs: &[&JobView]) {
    let theme = &app.theme;
    let rows: Vec<Row> = jobs.iter().map(|j| job_row(app, j)).collect();
    let mut title = format!(" Jobs ({}) ", jobs.len());
    if !app.jobs.filter.is_empty() {
        title.push_str(&format!("/{} ", app.jobs.filter));
    }
    let table = Table::new(rows, JOB_WIDTHS)
        .header(Row::new(["JOB", "STATE", "MODEL", "ARCH", "PROGRESS", "ETA", "S/S"]).style(theme.header))
        .block(panel(title, true, theme))
        .row_highlight_style(theme.selected);
    let mut state = TableState::default().with_selected(Some(app.jobs.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

/// Columns of the jobs table.
const JOB_WIDTHS: [Constraint; 7] = [
    Constraint::Length(17),
    Constraint::Length(9),
    Constraint::Fill(1),
    Constraint::Length(4),
    Constraint::Length(11),
    Constraint::Length(6),
    Constraint::Length(6),
];

/// One job: id (◆ when overlaid), state, model, arch, progress, ETA, samples/s.
fn job_row<'a>(app: &App, j: &JobView) -> Row<'a> {
    let theme = &app.theme;
    let run = app.jobs.runs.get(&j.id);
    let (fraction, eta) = progress(j, run);
    let state_style = match j.status.state {
        JobState::Running => theme.active,
        JobState::Succeeded => theme.ok,
        JobState::Failed => theme.error,
        JobState::Queued | JobState::Cancelled | JobState::Pruned => theme.warn,
    };
    let overlay = if app.jobs.overlay.as_ref() == Some(&j.id) {
        "◆"
    } else {
        " "
    };
    Row::new(vec![
        Line::raw(format!("{overlay}{}", j.id)),
        Line::styled(j.status.state.to_string(), state_style),
        Line::raw(subject(j)),
        Line::raw(arch_or_kind(j)),
        Line::raw(bar(fraction, 6)),
        Line::raw(eta.map_or("-".to_owned(), format_duration)),
        Line::raw(run.and_then(RunData::samples_per_sec).map_or("-".to_owned(), short)),
    ])
}

/// `████░░ 61%`.
pub fn bar(fraction: f64, width: usize) -> String {
    let filled = (fraction * width as f64).round() as usize;
    format!(
        "{}{} {:>3.0}%",
        "█".repeat(filled.min(width)),
        "░".repeat(width - filled.min(width)),
        fraction * 100.0
    )
}

fn render_chart(frame: &mut Frame, area: Rect, app: &App) {
    let (jobs, theme) = (&app.jobs, &app.theme);
    let opts = jobs.chart;
    let Some(job) = jobs.current() else { return };
    let title = chart_title(job, opts);
    let block = panel(title, false, theme);
    if let JobRequest::Eval(_) = job.spec.request {
        render_eval(frame, area, app, job);
        return;
    }
    let Some(run) = jobs
        .runs
        .get(&job.id)
        .filter(|r| !r.train.is_empty() || !r.val.is_empty())
    else {
        let text = match (&job.slurm, job.status.state) {
            (Some(slurm), JobState::Queued) => format!("queued in Slurm: job {}", slurm.summary()),
            _ if job.is_active() => "waiting for the first metrics…".to_owned(),
            _ => "no metrics recorded".to_owned(),
        };
        placeholder(frame, area, block, &text, theme.muted);
        return;
    };
    let overlay = jobs
        .overlay
        .as_ref()
        .filter(|o| **o != job.id)
        .and_then(|o| jobs.runs.get(o).map(|r| (o, r)));
    let Some(range) = run_range(run, opts.zoom) else { return };
    let range = match (overlay, opts.zoom) {
        (Some((_, o)), Zoom::Full) => widen(range, o.train.x_range(Zoom::Full)),
        _ => range,
    };
    let [area, info] = if run.val_points.is_empty() {
        [area, Rect::default()]
    } else {
        Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area)
    };
    let columns = area.width.saturating_sub(10).max(10) as usize;
    let mut traces = loss_traces(run, overlay, opts, range, columns, theme);
    traces.extend(epoch_marks(app, job, run));
    let block = block.title(legend(&traces));
    render_epoch_info(frame, info, app);
    let mut axes = Axes::fit([range.0, range.1.max(range.0 + 1.0)]);
    axes.y_log = opts.log_y;
    render_traces(frame, area, block, &traces, axes, theme);
}

/// ` loss · <job> · slurm 12 RUNNING · ema · log-y · recent · step → `: the Slurm job
/// running it, if any, and the toggles that are on.
fn chart_title(job: &JobView, opts: crate::tui::state::jobs::ChartOptions) -> String {
    let mut title = format!(" loss · {} ", job.id);
    if let Some(slurm) = &job.slurm {
        title.push_str(&format!("· slurm {} ", slurm.summary()));
    }
    for (on, text) in [
        (opts.smoothing, "ema"),
        (opts.log_y, "log-y"),
        (opts.zoom == Zoom::Recent, "recent"),
    ] {
        if on {
            title.push_str(&format!("· {text} "));
        }
    }
    title.push_str("· step → ");
    title
}

/// Kept epochs (`●`, promotable), validation points without a kept checkpoint (`○`, once
/// kilnd has said which are kept) and the epoch cursor (`◉`), over the validation curve.
fn epoch_marks(app: &App, job: &JobView, run: &RunData) -> Vec<Trace> {
    let (theme, epochs) = (&app.theme, &app.jobs.epochs);
    let listed = epochs.list(&job.id).is_some();
    let cursor = epochs.cursor(&job.id);
    let (mut kept, mut other, mut under) = (Vec::new(), Vec::new(), Vec::new());
    for (i, r) in run.val_points.iter().enumerate() {
        let Some(loss) = r.val_loss else { continue };
        let point = (r.step as f64, loss);
        if cursor == Some(i) {
            under.push(point);
        } else if epochs.kept(&job.id, r.epoch).is_some() {
            kept.push(point);
        } else if listed {
            other.push(point);
        }
    }
    let log_y = app.jobs.chart.log_y;
    let mut traces = vec![
        Trace::marks("", transform(other, log_y), theme.muted, '○'),
        Trace::marks("kept", transform(kept, log_y), theme.ok, '●'),
        Trace::marks("", transform(under, log_y), theme.key, '◉'),
    ];
    traces.retain(|t| !t.points.is_empty());
    traces
}

/// Under the chart: the validation point under the epoch cursor and whether its checkpoint
/// can be registered, or how to move the cursor.
fn render_epoch_info(frame: &mut Frame, area: Rect, app: &App) {
    if area.height == 0 {
        return;
    }
    let (theme, keymap) = (&app.theme, &app.keymap);
    let key = |a: Action| Span::styled(keymap.hint(a), theme.key);
    let Some((job, point, kept)) = app.jobs.cursor_point() else {
        let kept = app.jobs.current().map_or(0, |j| {
            let points = app.jobs.val_points();
            points
                .iter()
                .filter(|p| app.jobs.epochs.kept(&j.id, p.epoch).is_some())
                .count()
        });
        let mut spans = vec![
            Span::raw(" "),
            key(Action::PrevEpoch),
            Span::raw(" "),
            key(Action::NextEpoch),
            Span::styled(" move over the validation points", theme.muted),
        ];
        if kept > 0 {
            let text = format!(" · {kept} kept checkpoint{} (●)", if kept == 1 { "" } else { "s" });
            spans.push(Span::styled(text, theme.ok));
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
        return;
    };
    let mut spans = vec![Span::styled(format!(" {}", point_figures(point)), theme.base)];
    match kept {
        Some(_) => {
            spans.push(Span::styled(" · promotable: ", theme.ok));
            spans.push(key(Action::RegisterEpoch));
            spans.push(Span::styled(" registers it", theme.ok));
        }
        None => {
            let note = app.jobs.epochs.list(&job.id).and_then(|l| l.note.as_deref());
            let text = note.map_or_else(|| " · not kept".to_owned(), |n| format!(" · not kept: {n}"));
            spans.push(Span::styled(text, theme.muted));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `epoch 2 · step 1,876 · val_loss 0.410 · val_accuracy 0.853`.
fn point_figures(r: &MetricRecord) -> String {
    let mut text = format!("epoch {} · step {}", r.epoch, grouped(r.step));
    let figures = [
        ("val_loss", r.val_loss),
        ("val_accuracy", r.accuracy),
        ("val_rmse", r.rmse),
    ];
    for (name, value) in figures {
        if let Some(v) = value {
            text.push_str(&format!(" · {name} {v:.3}"));
        }
    }
    text
}

fn widen(range: (f64, f64), other: Option<(f64, f64)>) -> (f64, f64) {
    other.map_or(range, |r| (range.0.min(r.0), range.1.max(r.1)))
}

/// An evaluation job has no loss curve: its report takes the chart's place.
fn render_eval(frame: &mut Frame, area: Rect, app: &App, job: &JobView) {
    let theme = &app.theme;
    let title = format!(" evaluation · {} ", subject(job));
    let block = panel(title, false, theme);
    match &job.result {
        Some(report) => {
            let lines = super::detail::report_summary(report, theme);
            frame.render_widget(Paragraph::new(lines).block(block), area);
        }
        None if job.is_active() => placeholder(frame, area, block, "evaluating…", theme.muted),
        None => placeholder(frame, area, block, &job.status.message, theme.muted),
    }
}

fn render_log(frame: &mut Frame, area: Rect, app: &App) {
    if area.height == 0 {
        return;
    }
    let theme = &app.theme;
    let block = panel(" log ", false, theme);
    let Some(job) = app.jobs.current() else { return };
    if app.jobs.log_unavailable {
        placeholder(frame, area, block, "log not served by this kilnd", theme.muted);
        return;
    }
    let rows = area.height.saturating_sub(2) as usize;
    let text: Vec<Line> = app.jobs.runs.get(&job.id).map_or_else(Vec::new, |r| {
        let skip = r.log.len().saturating_sub(rows);
        r.log
            .iter()
            .skip(skip)
            .map(|l| Line::styled(l.clone(), theme.base))
            .collect()
    });
    if text.is_empty() {
        placeholder(frame, area, block, "no log output yet", theme.muted);
        return;
    }
    frame.render_widget(Paragraph::new(text).block(block), area);
}
