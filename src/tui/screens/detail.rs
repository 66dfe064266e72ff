//! The version detail pane: manifest, lineage (parents, study trial, training checkpoint),
//! signature status, a compressed version's comparison with its parent (`compression.rs`) and
//! evaluation report with its confusion matrix (enter opens it cell by cell, `eval.rs`); or, when another version is marked (`m`), the
//! two side by side with differing rows highlighted (with the compression reports' figures
//! when one is the compressed child of the other, or both are compressed).
//!
//! ```text
//! ┌ fmnist-cnn@3 · production ──────────────┐   ┌ compare ───────────────────────────┐
//! │ arch cnn · data fashion-mnist · cpu     │   │           fmnist-cnn@2  fmnist-cnn@3│
//! │ lineage ← fmnist-cnn@2 ← fmnist-cnn@1   │   │ accuracy  0.9010        0.9120      │
//! │ eval test: acc 0.912 · macro-F1 0.910   │   │ lr        0.001         0.0005      │
//! │      T-s Tro Pul …                      │   └─────────────────────────────────────┘
//! │ T-s  901   2  14 …                      │
//! └─────────────────────────────────────────┘
//! ```

use std::collections::BTreeSet;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, Wrap};

use super::compression;
use super::models::signature_style;
use crate::tui::app::App;
use crate::tui::state::models::ModelsFocus;
use crate::tui::theme::Theme;
use crate::tui::widgets::{grouped, panel, placeholder, short_time};
use kiln_core::api::{EvalReport, VersionManifest};

/// Draws the detail (or compare) pane.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.models, &app.theme);
    let focused = state.focus == ModelsFocus::Detail;
    let Some((model, version)) = state.current_version() else {
        placeholder(
            frame,
            area,
            panel(" Detail ", focused, theme),
            "no version selected",
            theme.muted,
        );
        return;
    };
    let Some(manifest) = state.manifest(&model, version) else {
        placeholder(frame, area, panel(" Detail ", focused, theme), "loading…", theme.muted);
        return;
    };
    let other = state
        .compare
        .as_ref()
        .filter(|mark| **mark != (model.clone(), version))
        .and_then(|(m, v)| state.manifest(m, *v));
    if let Some(other) = other {
        render_compare(frame, area, app, other, manifest);
        return;
    }
    let lines = detail_lines(app, manifest);
    let title = format!(" {model}@{version} ");
    let paragraph = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(panel(title, focused, theme));
    frame.render_widget(paragraph, area);
}

/// A `key      value` line, the key muted in a fixed-width column.
pub(super) fn kv<'a>(key: &'a str, value: String, theme: &Theme) -> Line<'a> {
    Line::from(vec![Span::styled(format!("{key:<10}"), theme.muted), Span::raw(value)])
}

fn detail_lines<'a>(app: &'a App, m: &'a VersionManifest) -> Vec<Line<'a>> {
    let (state, theme) = (&app.models, &app.theme);
    let d = &m.draft;
    let mut lines = vec![
        kv(
            "model",
            format!(
                "{} · {}",
                d.architecture.name,
                d.dataset.as_ref().map_or("no dataset recorded", |x| x.id.as_str())
            ),
            theme,
        ),
        kv("device", d.device.clone().unwrap_or_else(|| "-".into()), theme),
        kv("metrics", join_numbers(&d.metrics), theme),
        kv("params", join_values(&d.hyperparameters), theme),
        kv(
            "created",
            format!(
                "{} · job {}",
                short_time(&m.created_at),
                d.job_id.as_deref().unwrap_or("-")
            ),
            theme,
        ),
    ];
    let lineage = state.lineage(&m.model, m.version, 5);
    let mut lineage = if lineage.is_empty() {
        "trained from scratch".to_owned()
    } else {
        format!("← {}", lineage.join(" ← "))
    };
    if let Some(c) = &d.checkpoint {
        let step = grouped(c.step);
        lineage = format!("job {} epoch {} (step {step}) · {lineage}", c.job, c.epoch);
    }
    if let Some(s) = &d.study {
        lineage = format!("study {} trial {} (epoch {}) · {lineage}", s.study, s.trial, s.epoch);
    }
    if let Some(c) = &d.compression {
        lineage = format!("{} · {lineage}", c.summary(d.parent.as_ref().map(|p| p.version)));
    }
    lines.push(kv("lineage", lineage, theme));
    if let Some(status) = state.signature(&m.model, m.version) {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<10}", "signature"), theme.muted),
            Span::styled(status.describe(), signature_style(status, theme)),
        ]));
    }
    if let Some(c) = &d.compression {
        lines.extend(compression::detail_lines(m, c, theme));
    }
    lines.extend(eval_lines(app, m));
    lines
}

fn eval_lines<'a>(app: &'a App, m: &VersionManifest) -> Vec<Line<'a>> {
    let (state, theme) = (&app.models, &app.theme);
    let key = (m.model.clone(), m.version);
    let Some(view) = state.versions.get(&key) else {
        return vec![kv("eval", "loading…".into(), theme)];
    };
    let report = app.report_of(&key.0, key.1);
    let Some(record) = view.evals.last() else {
        return match report {
            Some(r) => report_summary(r, theme),
            None => vec![kv("eval", "none yet (e launches an evaluation)".into(), theme)],
        };
    };
    let mut lines = vec![kv(
        "eval",
        format!(
            "{} {} · {}",
            record.dataset,
            record.split,
            join_numbers(&record.metrics)
        ),
        theme,
    )];
    match report {
        Some(report) => {
            lines.extend(report_lines(report, theme));
            lines.extend(drill_down_hint(app, report));
        }
        None => lines.push(Line::styled("full report: not served by this kilnd", theme.muted)),
    }
    lines
}

/// Under a report that can be drilled into: its calibration and the key that opens it.
fn drill_down_hint<'a>(app: &'a App, report: &EvalReport) -> Option<Line<'a>> {
    let theme = &app.theme;
    let ece = report
        .calibration
        .as_ref()
        .map(|c| format!("ECE {} · ", fmt_number(c.ece)));
    if ece.is_none() && report.predictions.is_none() {
        return None;
    }
    let what = if report.predictions.is_some() {
        "the matrix cell by cell, its samples and calibration"
    } else {
        "calibration (no per-row predictions kept: re-run `kiln eval` to inspect samples)"
    };
    Some(Line::from(vec![
        Span::styled(format!("{:<10}", "inspect"), theme.muted),
        Span::raw(ece.unwrap_or_default()),
        Span::styled(app.keymap.hint(crate::tui::action::Action::Select), theme.key),
        Span::raw(format!(" opens {what}")),
    ]))
}

/// Headline figures of a report, then its matrix.
pub fn report_summary<'a>(report: &EvalReport, theme: &'a Theme) -> Vec<Line<'a>> {
    let mut figures = Vec::new();
    for (name, value) in [
        ("accuracy", report.accuracy),
        ("macro-F1", report.macro_f1),
        ("rmse", report.rmse),
        ("mae", report.mae),
    ] {
        if let Some(v) = value {
            figures.push(format!("{name} {}", fmt_number(v)));
        }
    }
    let head = format!(
        "{} {} ({} rows) · {}",
        report.dataset,
        report.split,
        report.rows,
        figures.join(" · ")
    );
    let mut lines = vec![kv("eval", head, theme)];
    lines.extend(report_lines(report, theme));
    lines
}

/// The confusion matrix (rows: truth, columns: predicted) with each class's F1.
pub fn report_lines<'a>(report: &EvalReport, theme: &'a Theme) -> Vec<Line<'a>> {
    super::eval::matrix_lines(report, theme, None)
}

fn join_numbers(map: &std::collections::BTreeMap<String, f64>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {}", fmt_number(*v)))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn join_values(map: &std::collections::BTreeMap<String, serde_json::Value>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Four significant figures, without trailing noise.
pub fn fmt_number(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// Width of the compare view's change column (shown with compression figures).
const CHANGE_WIDTH: u16 = 16;

fn render_compare(frame: &mut Frame, area: Rect, app: &App, a: &VersionManifest, b: &VersionManifest) {
    let theme = &app.theme;
    let figures = compression::compare_rows(a, b);
    let with_change = !figures.is_empty();
    let row = |key: String, x: String, y: String, change: Option<&compression::Change>| {
        let style = if x == y { theme.base } else { theme.warn };
        let mut cells = vec![Span::styled(key, theme.muted), Span::raw(x), Span::raw(y)];
        if with_change {
            cells.push(compression::change_span(change, theme));
        }
        Row::new(cells).style(style)
    };
    let mut rows: Vec<Row> = compare_rows(a, b)
        .into_iter()
        .map(|(key, x, y)| row(key, x, y, None))
        .collect();
    rows.extend(
        figures
            .into_iter()
            .map(|f| row(f.label.to_owned(), f.first, f.second, f.change.as_ref())),
    );
    let mut header = vec![
        String::new(),
        format!("{}@{} *", a.model, a.version),
        format!("{}@{}", b.model, b.version),
    ];
    let mut widths = vec![Constraint::Length(14), Constraint::Fill(1), Constraint::Fill(1)];
    if with_change {
        header.push(format!("  v{} against v{}", b.version, a.version));
        widths.push(Constraint::Length(CHANGE_WIDTH));
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header))
        .block(panel(
            " Compare (m on the same version: clear) ",
            app.models.focus == ModelsFocus::Detail,
            theme,
        ));
    frame.render_widget(table, area);
}

/// Reads one comparable field of a manifest.
type Field = dyn Fn(&VersionManifest) -> Option<String>;

/// `(key, a, b)` rows for the side-by-side view: identity, what a compressed version was made
/// from, metrics, hyperparameters (the compression reports' figures follow them, from
/// `compression::compare_rows`).
pub fn compare_rows(a: &VersionManifest, b: &VersionManifest) -> Vec<(String, String, String)> {
    let text = |m: &VersionManifest, f: &Field| f(m).unwrap_or("-".into());
    let fixed: [(&str, &Field); 5] = [
        ("arch", &|m| Some(m.draft.architecture.name.to_string())),
        ("dataset", &|m| m.draft.dataset.as_ref().map(|d| d.id.clone())),
        ("device", &|m| m.draft.device.clone()),
        ("parent", &|m| {
            m.draft.parent.as_ref().map(|p| format!("{}@{}", p.model, p.version))
        }),
        ("created", &|m| Some(short_time(&m.created_at))),
    ];
    let mut rows: Vec<(String, String, String)> = fixed
        .iter()
        .map(|(k, f)| ((*k).to_owned(), text(a, f), text(b, f)))
        .collect();
    if a.draft.compression.is_some() || b.draft.compression.is_some() {
        let origin = |m: &VersionManifest| compression::origin(m).unwrap_or("-".into());
        rows.push(("compression".into(), origin(a), origin(b)));
    }
    let metrics: BTreeSet<&String> = a.draft.metrics.keys().chain(b.draft.metrics.keys()).collect();
    for k in metrics {
        let get = |m: &VersionManifest| m.draft.metrics.get(k).map_or("-".into(), |v| fmt_number(*v));
        rows.push((k.clone(), get(a), get(b)));
    }
    let params: BTreeSet<&String> = a
        .draft
        .hyperparameters
        .keys()
        .chain(b.draft.hyperparameters.keys())
        .collect();
    for k in params {
        let get = |m: &VersionManifest| m.draft.hyperparameters.get(k).map_or("-".into(), |v| v.to_string());
        rows.push((k.clone(), get(a), get(b)));
    }
    rows
}
