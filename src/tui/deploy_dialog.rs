//! Drawing the deploy dialog (its state lives in `deploy.rs`): the question, the three modes,
//! what the gates found (each check, both versions' figures), and the keys that apply now.
//!
//! ```text
//! ┌ Confirm deploy ────────────────────────────────────────────────────────────┐
//! │Deploy fmnist-cnn@3, replacing fmnist-cnn@2 in production?                  │
//! │  switch now    v3 takes all traffic at once                                │
//! │› canary 10%    v3 answers 10% of requests, promoted after 5 min            │
//! │  shadow        v3 answers copies of requests, never promoted by itself     │
//! │gates · fashion-mnist test · 1,000 rows · 2.1s                              │
//! │  golden    passed    accuracy 0.912 vs 0.902 in force (+1.0 pt)            │
//! │  latency   passed    p99 0.41 ms vs 0.40 ms in force (1.03x, limit 1.25x)  │
//! │               v3 candidate   v2 in force                                   │
//! │  accuracy     0.9120         0.9020                                        │
//! │  agreement    97.3% of 1,000 rows                                          │
//! │enter/y yes · ↑↓ mode · esc/n no                                            │
//! └────────────────────────────────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::deploy::{DeployDialog, DeployMode, FORCE_KEY, Gates};
use super::dialogs::{dialog, popup};
use super::theme::Theme;
use super::widgets::{grouped, wrap_words};
use kiln_core::api::GateResult;
use kiln_core::deploy::{GateFigures, GateOutcome, GateReport};

/// The dialog's width, borders included.
const WIDTH: u16 = 78;
/// Columns of a mode's label and of a figure's name.
const LABEL: usize = 13;
/// Columns of a check's name and of its outcome.
const CHECK: usize = 9;

/// Draws the dialog centred over `area`.
pub fn render(frame: &mut Frame, area: Rect, theme: &Theme, d: &DeployDialog) {
    let text_width = usize::from(WIDTH.min(area.width).saturating_sub(2)).max(20);
    let mut lines = wrap_words(&d.question(), text_width)
        .into_iter()
        .map(|l| Line::styled(l, theme.base))
        .collect::<Vec<_>>();
    lines.push(Line::raw(""));
    lines.extend(DeployMode::ALL.iter().map(|m| mode_line(d, *m, theme)));
    lines.push(Line::raw(""));
    lines.extend(gate_lines(d, theme, text_width));
    lines.push(Line::raw(""));
    lines.extend(hint_lines(d, theme));
    let rect = popup(frame, area, WIDTH, lines.len() as u16 + 2);
    frame.render_widget(Paragraph::new(lines).block(dialog("Confirm deploy", theme)), rect);
}

/// `› canary 10%   v3 answers 10% …`; a mode that needs a version in force says so.
fn mode_line<'a>(d: &DeployDialog, mode: DeployMode, theme: &Theme) -> Line<'a> {
    let chosen = d.mode == mode;
    let marker = if chosen { "› " } else { "  " };
    let label = format!("{:<LABEL$}", mode.label());
    match d.disabled(mode) {
        Some(why) => Line::styled(format!("{marker}{label} {why}"), theme.muted),
        None => Line::from(vec![
            Span::styled(marker, theme.key),
            Span::styled(label, if chosen { theme.selected } else { theme.base }),
            Span::styled(format!(" {}", mode.describe(d.version)), theme.muted),
        ]),
    }
}

fn gate_lines<'a>(d: &DeployDialog, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    match &d.gates {
        Gates::Running => vec![Line::styled("gates · running the gates…", theme.muted)],
        Gates::Unavailable(why) => {
            let mut lines: Vec<Line> = wrap_words(&format!("gates · {why}"), width)
                .into_iter()
                .map(|l| Line::styled(l, theme.warn))
                .collect();
            lines.push(Line::styled(
                "  enter deploys; kilnd runs the gates itself",
                theme.muted,
            ));
            lines
        }
        Gates::Done(result) => result_lines(result, theme, width),
    }
}

/// The gates' heading, one line per check, and both versions' figures.
fn result_lines<'a>(result: &GateResult, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let report = &result.report;
    let mut head = String::from("gates");
    if let Some(data) = &report.data {
        head.push_str(&format!(" · {data}"));
    }
    head.push_str(&format!(
        " · {} rows · {:.1}s",
        grouped(report.rows as u64),
        report.seconds
    ));
    let mut lines = vec![Line::styled(head, theme.title)];
    let indent = 2 + 2 * (CHECK + 1);
    for check in &report.checks {
        let style = outcome_style(check.outcome, theme);
        let detail = wrap_words(&check.detail, width.saturating_sub(indent).max(10));
        let mut detail = detail.into_iter();
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<CHECK$} ", check.name), theme.base),
            Span::styled(format!("{:<CHECK$} ", check.outcome.as_str()), style),
            Span::styled(detail.next().unwrap_or_default(), style),
        ]));
        lines.extend(detail.map(|l| Line::styled(format!("{:indent$}{l}", ""), style)));
    }
    lines.extend(figure_lines(report, theme));
    lines
}

fn outcome_style(outcome: GateOutcome, theme: &Theme) -> Style {
    match outcome {
        GateOutcome::Passed => theme.ok,
        GateOutcome::Failed => theme.error,
        GateOutcome::Skipped => theme.muted,
    }
}

/// A figure of both versions, as one table row.
type Figure = (&'static str, fn(&GateFigures) -> Option<f64>, usize);

const FIGURES: [Figure; 4] = [
    ("accuracy", |f| f.accuracy, 4),
    ("macro-F1", |f| f.macro_f1, 4),
    ("rmse", |f| f.rmse, 4),
    ("p99 ms", |f| f.p99_ms, 2),
];

/// Columns of a figure's value.
const VALUE: usize = 15;

/// `v3 candidate   v2 in force`, then the figures either version has, then the agreement.
fn figure_lines<'a>(report: &GateReport, theme: &Theme) -> Vec<Line<'a>> {
    let current = report.current.as_ref();
    let mut header = format!(
        "  {:<LABEL$}{:<VALUE$}",
        "",
        format!("v{} candidate", report.candidate.version)
    );
    if let Some(c) = current {
        header.push_str(&format!("v{} in force", c.version));
    }
    let mut lines = vec![Line::styled(header, theme.header)];
    for (name, get, decimals) in FIGURES {
        let (cand, cur) = (get(&report.candidate), current.and_then(get));
        if cand.is_none() && cur.is_none() {
            continue;
        }
        let show = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.decimals$}"));
        let mut row = format!("{:<VALUE$}", show(cand));
        if current.is_some() {
            row.push_str(&show(cur));
        }
        lines.push(Line::from(vec![
            Span::styled(format!("  {name:<LABEL$}"), theme.muted),
            Span::styled(row, theme.base),
        ]));
    }
    if let Some(agreement) = report.agreement {
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<LABEL$}", "agreement"), theme.muted),
            Span::styled(
                format!("{:.1}% of {} rows", agreement * 100.0, grouped(report.rows as u64)),
                theme.base,
            ),
        ]));
    }
    lines
}

/// The keys that apply now; after a failed gate, that enter does not deploy and how to force.
fn hint_lines<'a>(d: &DeployDialog, theme: &Theme) -> Vec<Line<'a>> {
    let key = |k: &str| Span::styled(k.to_owned(), theme.key);
    let raw = |t: &str| Span::raw(t.to_owned());
    let cancel = [key("esc"), raw("/"), key("n"), raw(" no")];
    if d.failed() {
        let refused = if d.refused {
            "enter refused: a gate failed, nothing was deployed"
        } else {
            "a gate failed: enter does not deploy"
        };
        let mut force = vec![
            key(&FORCE_KEY.to_string()),
            raw(" force it (kilnd journals the override) · "),
        ];
        force.extend(cancel);
        return vec![Line::styled(refused, theme.error), Line::from(force)];
    }
    let mut spans = vec![key("enter"), raw("/"), key("y"), raw(" yes")];
    match d.gates {
        Gates::Running if d.armed => spans = vec![raw("deploys as soon as the gates pass")],
        Gates::Running => spans.push(raw(" (once the gates pass)")),
        Gates::Done(_) | Gates::Unavailable(_) => {}
    }
    spans.extend([raw(" · "), key("↑↓"), raw(" mode · ")]);
    spans.extend(cancel);
    vec![Line::from(spans)]
}
