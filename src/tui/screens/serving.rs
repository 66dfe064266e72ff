//! The serving screen: deployments with live stats, canaries in progress, the journal, and
//! test requests.
//!
//! ```text
//! ┌ Deployments · inference at 127.0.0.1:8000 ──────────────────────────────┐
//! │ MODEL        VER  SINCE        REQ/S   P50ms  P99ms  ERRORS  QUEUE      │
//! │ fmnist-cnn   v3   11-29 16:40  120.5   0.41   1.9    0       0          │
//! └──────────────────────────────────────────────────────────────────────────┘
//! ┌ Canary (p promote · a abort) ───────────────────────────────────────────┐  ← only while
//! │ canary fmnist-cnn v3→v4 10% · since 11-29 17:00                         │    one runs
//! │ ━━━━━━━━━━━━━━━━━━━━━━─────────────────────── 42% to promotion          │
//! │   stable    v3  req 1080  err 0  p99 1.90ms                             │
//! │   candidate v4  req 120   err 1  p99 2.10ms                             │
//! │ shadow fmnist-cnn v3→v4 · since 11-29 17:10                             │  ← a shadow
//! │ ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ window over: p promote · a abort │
//! │   disagreement 3.2% of 1,234 rows                                       │
//! │   stable    v3  req 1234  err 0  p99 1.90ms                             │
//! │   shadow    v4  req 1234  err 0  p99 2.05ms                             │
//! └──────────────────────────────────────────────────────────────────────────┘
//! ┌ Journal ─────────────────────────────┐┌ Test request (t) ───────────────┐
//! │ 11-29 16:40 fmnist-cnn v2→v3 deploy  ││ sample #4: Sneaker (0.97)       │
//! │ 11-29 16:02 fmnist-cnn –→v2 deploy   ││ true label: Sneaker ✓           │
//! └──────────────────────────────────────┘└──────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph, Row, Table, TableState};

use crate::tui::action::Action;
use crate::tui::app::App;
use crate::tui::theme::Theme;
use crate::tui::widgets::{grouped, month_day, panel, placeholder};
use kiln_core::api::{DeploymentView, JournalEntry, TryOutcome, TryResult};
use kiln_core::deploy::{Action as Switch, CanaryView};

/// Share of the body the deployments table takes.
const TABLE_PCT: u16 = 45;
/// Lines one canary takes in the canary panel…
const CANARY_LINES: u16 = 4;
/// …and one shadow (its disagreement rate has a line of its own).
const SHADOW_LINES: u16 = 5;

fn canary_lines(c: &CanaryView) -> u16 {
    if c.shadow { SHADOW_LINES } else { CANARY_LINES }
}

/// Draws the serving screen.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.serving, &app.theme);
    if state.unavailable {
        let text = "serving is not available from this kilnd (no /api/v1/deployments yet)";
        placeholder(frame, area, panel(" Serving ", false, theme), text, theme.muted);
        return;
    }
    let canary_rows = canary_height(&state.canaries, area.height);
    let [top, canaries, bottom] = if canary_rows == 0 {
        let [top, bottom] = Layout::vertical([
            Constraint::Percentage(TABLE_PCT),
            Constraint::Percentage(100 - TABLE_PCT),
        ])
        .areas(area);
        [top, Rect::default(), bottom]
    } else {
        Layout::vertical([
            Constraint::Fill(TABLE_PCT),
            Constraint::Length(canary_rows),
            Constraint::Fill(100 - TABLE_PCT),
        ])
        .areas(area)
    };
    let [journal, tried] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(bottom);
    render_deployments(frame, top, app);
    render_canaries(frame, canaries, app);
    render_journal(frame, journal, app);
    render_try(frame, tried, app);
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |x| format!("{x:.2}"))
}

fn render_deployments(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.serving, &app.theme);
    let Some(d) = &state.deployments else {
        placeholder(
            frame,
            area,
            panel(" Deployments ", false, theme),
            "loading…",
            theme.muted,
        );
        return;
    };
    let title = match (&d.inference_address, &d.inference_error) {
        (Some(address), _) => format!(" Deployments · inference at {address} "),
        (None, Some(error)) => format!(" Deployments · inference endpoint down: {error} "),
        (None, None) => " Deployments ".to_owned(),
    };
    if d.deployments.is_empty() {
        let key = app.keymap.hint(Action::Deploy);
        let text = format!("Nothing deployed. Select a version on the models screen (1) and press {key}.");
        placeholder(frame, area, panel(title, true, theme), &text, theme.muted);
        return;
    }
    let rows: Vec<Row> = d.deployments.iter().map(|x| deployment_row(x, theme)).collect();
    let header = Row::new(["MODEL", "VER", "SINCE", "REQ/S", "P50ms", "P99ms", "ERRORS", "QUEUE"]).style(theme.header);
    let table = Table::new(rows, DEPLOYMENT_WIDTHS)
        .header(header)
        .block(panel(title, true, theme))
        .row_highlight_style(theme.selected);
    let mut table_state = TableState::default().with_selected(Some(state.selected));
    frame.render_stateful_widget(table, area, &mut table_state);
}

/// Columns of the deployments table.
const DEPLOYMENT_WIDTHS: [Constraint; 8] = [
    Constraint::Fill(1),
    Constraint::Length(5),
    Constraint::Length(11),
    Constraint::Length(7),
    Constraint::Length(6),
    Constraint::Length(6),
    Constraint::Length(6),
    Constraint::Length(5),
];

fn deployment_row<'a>(x: &DeploymentView, theme: &Theme) -> Row<'a> {
    let s = &x.stats;
    let errors = Line::styled(
        s.errors.to_string(),
        if s.errors > 0 { theme.error } else { theme.base },
    );
    Row::new(vec![
        Line::raw(x.model.to_string()),
        Line::raw(format!("v{}", x.version)),
        Line::raw(month_day(&x.since)),
        Line::raw(format!("{:.1}", s.req_per_s)),
        Line::raw(ms(s.p50_ms)),
        Line::raw(ms(s.p99_ms)),
        errors,
        Line::raw(s.queue_depth.to_string()),
    ])
}

/// Rows of the canary panel: every canary, borders included, but at most half the body
/// (0 when none runs).
fn canary_height(canaries: &[CanaryView], body: u16) -> u16 {
    if canaries.is_empty() {
        return 0;
    }
    let wanted: u16 = canaries.iter().take(8).map(canary_lines).sum::<u16>() + 2;
    wanted.min(body / 2)
}

fn render_canaries(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.serving, &app.theme);
    if state.canaries.is_empty() || area.height < 3 {
        return;
    }
    // The keys are offered only when they apply: the selected model runs a canary.
    let what = if state.canaries.iter().all(|c| c.shadow) {
        "Shadow"
    } else {
        "Canary"
    };
    let keys = keys_hint(app);
    let title = match state.current_canary() {
        Some(_) => format!(" {what} ({keys}) "),
        None => format!(" {what} "),
    };
    let block = panel(title, false, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let selected = state.current().map(|d| &d.model);
    let mut y = inner.y;
    for c in &state.canaries {
        if y >= inner.bottom() {
            break;
        }
        let height = canary_lines(c).min(inner.bottom() - y);
        let rect = Rect { y, height, ..inner };
        render_canary(frame, rect, c, selected == Some(&c.model), app);
        y += height;
    }
}

/// `p promote · a abort`, from the live keymap.
fn keys_hint(app: &App) -> String {
    format!(
        "{} promote · {} abort",
        app.keymap.hint(Action::Promote),
        app.keymap.hint(Action::AbortCanary)
    )
}

/// One canary: what splits the traffic, the way to promotion, and both sides' figures; a
/// shadow: the copies, the way to the end of its window, and how often the versions disagree.
fn render_canary(frame: &mut Frame, area: Rect, c: &CanaryView, selected: bool, app: &App) {
    let theme = &app.theme;
    let shadow_rows = if c.shadow { 1 } else { 0 };
    let [head, gauge, disagreement, sides] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(shadow_rows),
        Constraint::Length(2),
    ])
    .areas(area);
    let name_style = if selected { theme.title } else { theme.base };
    let (kind, split) = if c.shadow {
        ("shadow ", String::new())
    } else {
        ("canary ", format!(" {}%", percent(c.percent)))
    };
    let head_line = Line::from(vec![
        Span::styled(kind, theme.active),
        Span::styled(format!("{} v{}→v{}{split}", c.model, c.stable, c.candidate), name_style),
        Span::styled(format!(" · since {}", month_day(&c.since)), theme.muted),
    ]);
    frame.render_widget(Paragraph::new(head_line), head);
    let progress = if c.progress.is_finite() {
        c.progress.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let label = match (c.shadow, progress >= 1.0) {
        (false, _) => format!("{:.0}% to promotion", progress * 100.0),
        (true, false) => format!("{:.0}% of the window", progress * 100.0),
        (true, true) => format!("window over: {}", keys_hint(app)),
    };
    let bar = LineGauge::default()
        .ratio(progress)
        .label(Span::styled(label, theme.base))
        // Heavier than the unfilled line, so the progress reads without colour too.
        .filled_symbol("━")
        .filled_style(theme.active)
        .unfilled_style(theme.muted);
    frame.render_widget(bar, gauge);
    if c.shadow {
        frame.render_widget(Paragraph::new(disagreement_line(c, theme)), disagreement);
    }
    let lines = vec![
        side_line(
            "stable",
            c.stable,
            c.stable_requests,
            c.stable_errors,
            c.stable_p99_ms,
            theme,
        ),
        side_line(
            if c.shadow { "shadow" } else { "candidate" },
            c.candidate,
            c.candidate_requests,
            c.candidate_errors,
            c.candidate_p99_ms,
            theme,
        ),
    ];
    frame.render_widget(Paragraph::new(lines), sides);
}

/// `  disagreement 3.2% of 1,234 rows · 12 copies skipped`.
fn disagreement_line<'a>(c: &CanaryView, theme: &Theme) -> Line<'a> {
    let mut spans = vec![Span::styled("  disagreement ", theme.muted)];
    match c.disagreement() {
        Some(rate) => {
            let style = if c.disagreements > 0 { theme.warn } else { theme.ok };
            spans.push(Span::styled(format!("{:.1}%", rate * 100.0), style));
            spans.push(Span::styled(format!(" of {} rows", grouped(c.compared)), theme.base));
        }
        None => spans.push(Span::styled("– no rows compared yet", theme.muted)),
    }
    if c.skipped > 0 {
        let copies = if c.skipped == 1 { "copy" } else { "copies" };
        let text = format!(" · {} {copies} skipped (shadow queue full)", grouped(c.skipped));
        spans.push(Span::styled(text, theme.warn));
    }
    Line::from(spans)
}

/// `10` for 10.0, `2.5` for 2.5.
fn percent(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// `  candidate v4  req 120     err 1    p99 2.10ms`
fn side_line<'a>(
    side: &'static str,
    version: u32,
    requests: u64,
    errors: u64,
    p99: Option<f64>,
    theme: &Theme,
) -> Line<'a> {
    let error_style = if errors > 0 { theme.error } else { theme.base };
    let p99 = p99.map_or("-".to_owned(), |x| format!("{x:.2}ms"));
    Line::from(vec![
        Span::styled(format!("  {side:<9} "), theme.muted),
        Span::styled(format!("v{version:<4} "), theme.base),
        Span::styled("req ", theme.muted),
        Span::styled(format!("{requests:<8}"), theme.base),
        Span::styled("err ", theme.muted),
        Span::styled(format!("{errors:<6}"), error_style),
        Span::styled("p99 ", theme.muted),
        Span::styled(p99, theme.base),
    ])
}

fn render_journal(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.serving, &app.theme);
    if state.journal.is_empty() {
        placeholder(
            frame,
            area,
            panel(" Journal ", false, theme),
            "no deploys yet",
            theme.muted,
        );
        return;
    }
    let lines: Vec<Line> = state
        .journal
        .iter()
        .take(area.height.saturating_sub(2) as usize)
        .map(|e| journal_line(e, theme))
        .collect();
    frame.render_widget(Paragraph::new(lines).block(panel(" Journal ", false, theme)), area);
}

/// `11-29 16:40 fmnist-cnn v2→v3 deploy (reason)`; rollbacks stand out.
fn journal_line<'a>(e: &JournalEntry, theme: &Theme) -> Line<'a> {
    let from = e.from.map_or("–".to_owned(), |v| format!("v{v}"));
    let style = match e.action {
        Switch::Rollback | Switch::Abort => theme.warn,
        Switch::Deploy | Switch::Canary | Switch::Shadow => theme.base,
    };
    let action = e.action.to_string();
    let reason = if e.reason.is_empty() || e.reason == action {
        String::new()
    } else {
        format!(" ({})", e.reason)
    };
    let time = month_day(&e.time);
    let to = match (e.action.is_switch(), e.candidate) {
        (false, Some(candidate)) => format!("v{candidate}"),
        _ => format!("v{}", e.to),
    };
    Line::styled(format!("{time} {} {from}→{to} {action}{reason}", e.model), style)
}

fn render_try(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.serving, &app.theme);
    let title = format!(" Test request ({}) ", app.keymap.hint(Action::TryRequest));
    let Some(result) = &state.tried else {
        let text = "send a dataset sample to the selected deployment and compare the prediction with the true label";
        placeholder(frame, area, panel(title, false, theme), text, theme.muted);
        return;
    };
    let lines = try_lines(result, theme);
    frame.render_widget(Paragraph::new(lines).block(panel(title, false, theme)), area);
}

/// The sample, the prediction beside the truth, and a classifier's three likeliest classes.
fn try_lines<'a>(r: &TryResult, theme: &'a Theme) -> Vec<Line<'a>> {
    let head = Line::styled(format!("{}@{} · sample #{}", r.model, r.version, r.index), theme.muted);
    match &r.outcome {
        TryOutcome::Class {
            prediction,
            label,
            correct,
            probabilities,
            classes,
        } => {
            let mut lines = vec![
                head,
                Line::raw(format!("predicted:  {prediction}")),
                Line::styled(
                    format!("true label: {label} {}", if *correct { "✓" } else { "✗" }),
                    if *correct { theme.ok } else { theme.error },
                ),
            ];
            lines.extend(top_classes(probabilities, classes, theme));
            lines
        }
        TryOutcome::Rating { prediction, label } => vec![
            head,
            Line::raw(format!("predicted:  {prediction:.2}")),
            Line::raw(format!("true rating: {label:.2}")),
            Line::styled(format!("  off by {:.2}", (prediction - label).abs()), theme.muted),
        ],
    }
}

fn top_classes<'a>(probabilities: &[f32], classes: &[String], theme: &'a Theme) -> Vec<Line<'a>> {
    let mut top: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.into_iter()
        .take(3)
        .map(|(i, p)| {
            let name = classes.get(i).cloned().unwrap_or_else(|| i.to_string());
            Line::styled(format!("  {name:<14} {p:.3}"), theme.muted)
        })
        .collect()
}
