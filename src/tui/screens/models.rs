//! The models screen.
//!
//! ```text
//! ┏ Models (3) ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
//! ┃ NAME         TASK                  LATEST  PROD  BEST       UPDATED    ┃
//! ┃ fmnist-cnn   image-classification  v3      v2    acc 0.912  11-29 16:40┃
//! ┗━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┛
//! ┌ Versions of fmnist-cnn ─────────────┐┌ fmnist-cnn@4 ───────────────────┐
//! │ V   TAGS        METRIC    SIGNATURE ││ manifest, lineage, signature,   │
//! │ 4   int8 of v3  acc 0.910 unsigned  ││ compression report, eval report,│
//! │ 3   production  acc 0.912 ✓ alice   ││ confusion matrix (or a compare  │
//! └─────────────────────────────────────┘└ with the marked version) ───────┘
//! ```
//! Enter / → moves focus models → versions → full-width detail; enter again drills into the
//! evaluation (the report with a navigable confusion matrix, `eval.rs`; a cell's samples and
//! one sample as the model saw it, `samples.rs`); esc goes back. An empty registry shows the
//! first-run welcome instead.
//!
//! The versions list shows each version's signature badge once kilnd has sent them
//! (`✓ signer` / `unsigned` / `✗ tampered`, …); where the pane is too narrow for both, the
//! badge takes the CREATED column's place (the detail pane beside it shows the date).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::detail;
use crate::tui::app::{App, Connection};
use crate::tui::state::models::{ModelsFocus, ModelsState, production};
use crate::tui::theme::Theme;
use crate::tui::widgets::{month_day, panel, placeholder};
use kiln_core::api::ModelSummary;
use kiln_core::names::Name;
use kiln_core::registry::SignatureStatus;

/// Share of the body the models table takes.
const MODELS_PCT: u16 = 40;
/// Share of the lower half the versions list takes.
const VERSIONS_PCT: u16 = 45;

/// Draws the models screen.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let state = &app.models;
    if state.list.is_none() {
        let text = match app.connection {
            Connection::Down(_) => "no models loaded: kilnd is not reachable",
            _ => "loading models…",
        };
        placeholder(frame, area, panel(" Models ", false, &app.theme), text, app.theme.muted);
        return;
    }
    if state.is_empty_registry() {
        render_welcome(frame, area, app);
        return;
    }
    match state.focus {
        ModelsFocus::Detail => return detail::render(frame, area, app),
        ModelsFocus::Matrix => return super::eval::render(frame, area, app),
        ModelsFocus::Samples | ModelsFocus::Sample => return super::samples::render(frame, area, app),
        ModelsFocus::Models | ModelsFocus::Versions => {}
    }
    let [top, bottom] = Layout::vertical([
        Constraint::Percentage(MODELS_PCT),
        Constraint::Percentage(100 - MODELS_PCT),
    ])
    .areas(area);
    let [left, right] = Layout::horizontal([
        Constraint::Percentage(VERSIONS_PCT),
        Constraint::Percentage(100 - VERSIONS_PCT),
    ])
    .areas(bottom);
    render_models(frame, top, app);
    render_versions(frame, left, app);
    detail::render(frame, right, app);
}

fn render_models(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.models, &app.theme);
    let rows: Vec<Row> = state
        .visible
        .iter()
        .filter_map(|v| state.rows().get(v.model))
        .map(|m| model_row(state, m))
        .collect();
    let problems = state.list.as_ref().map_or(0, |l| l.problems.len());
    let mut title = format!(" Models ({}) ", state.visible.len());
    if !state.filter.is_empty() {
        title.push_str(&format!("/{} ", state.filter));
    }
    if problems > 0 {
        title.push_str(&format!("· {problems} unreadable entries (kiln models ls) "));
    }
    let header = Row::new(["NAME", "TASK", "LATEST", "PROD", "BEST", "UPDATED"]).style(theme.header);
    let focused = state.focus == ModelsFocus::Models;
    let table = Table::new(rows, MODEL_WIDTHS)
        .header(header)
        .block(panel(title, focused, theme))
        .row_highlight_style(if focused { theme.selected } else { theme.active });
    let mut table_state = TableState::default().with_selected(Some(state.selected_model));
    frame.render_stateful_widget(table, area, &mut table_state);
}

/// Columns of the models table.
const MODEL_WIDTHS: [Constraint; 6] = [
    Constraint::Fill(2),
    Constraint::Fill(2),
    Constraint::Length(6),
    Constraint::Length(5),
    Constraint::Length(10),
    Constraint::Length(11),
];

fn model_row<'a>(state: &ModelsState, m: &ModelSummary) -> Row<'a> {
    let version = |v: u32| format!("v{v}");
    let best = state
        .best_metric(&m.name)
        .map_or("-".to_owned(), |(k, v)| format!("{} {v:.3}", metric_abbrev(&k)));
    Row::new(vec![
        m.name.to_string(),
        m.task.clone(),
        m.latest.map_or("-".to_owned(), version),
        production(&m.aliases).map_or("-".to_owned(), version),
        best,
        state.updated(&m.name).map_or("-".to_owned(), month_day),
    ])
}

fn render_versions(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.models, &app.theme);
    let Some(model) = state.current_model() else {
        let text = "no model matches the filter (esc clears it)";
        placeholder(frame, area, panel(" Versions ", false, theme), text, theme.muted);
        return;
    };
    let versions = state
        .visible
        .get(state.selected_model)
        .map_or(&[][..], |v| v.versions.as_slice());
    let detail = state.details.get(&model.name);
    let columns = VersionColumns::fitting(state, area.width.saturating_sub(2));
    let rows: Vec<Row> = versions
        .iter()
        .map(|v| version_row(app, &model.name, *v, columns))
        .collect();
    let loading = if detail.is_none() { " loading…" } else { "" };
    let focused = state.focus == ModelsFocus::Versions;
    let title = format!(" Versions of {}{loading} ", model.name);
    let table = Table::new(rows, columns.widths())
        .header(Row::new(columns.header()).style(theme.header))
        .block(panel(title, focused, theme))
        .row_highlight_style(if focused { theme.selected } else { theme.active });
    let mut table_state = TableState::default().with_selected(Some(state.selected_version));
    frame.render_stateful_widget(table, area, &mut table_state);
}

/// Width of the versions list's V, METRIC and CREATED columns.
const V_WIDTH: u16 = 4;
const METRIC_WIDTH: u16 = 9;
const CREATED_WIDTH: u16 = 11;
/// Width of the signature column: `✗ untrusted`, or `✓` and a signer of up to 9 characters
/// (a longer name is cut and ends in `…`).
const SIGNATURE_WIDTH: u16 = 11;
/// The TAGS column is never squeezed below this to make room for CREATED beside SIGNATURE.
const TAGS_MIN: u16 = 10;

/// Which optional columns the versions list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VersionColumns {
    signature: bool,
    created: bool,
}

impl VersionColumns {
    /// The columns for a table `inner` cells wide: SIGNATURE once kilnd has sent signatures,
    /// CREATED as long as TAGS keeps [`TAGS_MIN`] beside it (always, without SIGNATURE).
    fn fitting(state: &ModelsState, inner: u16) -> Self {
        let signature = state.signatures.is_some();
        // Five columns, four one-cell gaps between them.
        let all = V_WIDTH + TAGS_MIN + METRIC_WIDTH + SIGNATURE_WIDTH + CREATED_WIDTH + 4;
        Self {
            signature,
            created: !signature || inner >= all,
        }
    }

    fn widths(self) -> Vec<Constraint> {
        let mut widths = vec![
            Constraint::Length(V_WIDTH),
            Constraint::Fill(1),
            Constraint::Length(METRIC_WIDTH),
        ];
        if self.signature {
            widths.push(Constraint::Length(SIGNATURE_WIDTH));
        }
        if self.created {
            widths.push(Constraint::Length(CREATED_WIDTH));
        }
        widths
    }

    fn header(self) -> Vec<&'static str> {
        let mut header = vec!["V", "TAGS", "METRIC"];
        if self.signature {
            header.push("SIGNATURE");
        }
        if self.created {
            header.push("CREATED");
        }
        header
    }
}

/// A version's short badge in the versions list, at most `width` characters: `✓ signer`,
/// `unsigned`, `✗ untrusted`, `✗ tampered` or `✗ bad sig` (the detail pane says why).
pub fn signature_badge(status: &SignatureStatus, width: usize) -> String {
    let text = match status {
        SignatureStatus::Signed { signer, .. } => format!("✓ {signer}"),
        SignatureStatus::Unsigned => "unsigned".into(),
        SignatureStatus::Untrusted { .. } => "✗ untrusted".into(),
        SignatureStatus::Tampered { .. } => "✗ tampered".into(),
        SignatureStatus::Invalid { .. } => "✗ bad sig".into(),
    };
    if text.chars().count() <= width {
        return text;
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// How a signature status is coloured, in the list and the detail pane: verified in the
/// theme's `ok`, unsigned `muted`, anything wrong in `error`.
pub fn signature_style(status: &SignatureStatus, theme: &Theme) -> Style {
    match status {
        SignatureStatus::Signed { .. } => theme.ok,
        SignatureStatus::Unsigned => theme.muted,
        _ => theme.error,
    }
}

/// One version: number (`*` when marked for compare), aliases and, for a compressed version,
/// what it was made from (`int8 of v3`), headline metric, signature badge, date.
fn version_row<'a>(app: &App, model: &Name, v: u32, columns: VersionColumns) -> Row<'a> {
    let (state, theme) = (&app.models, &app.theme);
    let manifest = state.manifest(model, v);
    let marked = state.compare.as_ref().is_some_and(|(m, x)| m == model && *x == v);
    let tags: Vec<&str> = state.details.get(model).map_or_else(Vec::new, |d| {
        d.aliases
            .iter()
            .filter(|(_, n)| **n == v)
            .map(|(a, _)| a.as_str())
            .collect()
    });
    let metric = manifest
        .and_then(|m| headline(&m.draft.metrics))
        .map_or("-".to_owned(), |(k, x)| format!("{} {x:.3}", metric_abbrev(&k)));
    let created = manifest.map_or("-".to_owned(), |m| month_day(&m.created_at));
    let origin = manifest.and_then(super::compression::origin);
    let mut tags = vec![Span::raw(tags.join(","))];
    if let Some(origin) = origin {
        let gap = if tags.iter().all(|s| s.content.is_empty()) {
            ""
        } else {
            " "
        };
        tags.push(Span::styled(format!("{gap}{origin}"), theme.muted));
    }
    let mark = if marked { "*" } else { " " };
    let mut cells = vec![
        Cell::from(format!("{mark}{v}")),
        Cell::from(Line::from(tags)),
        Cell::from(metric),
    ];
    if columns.signature {
        // A version newer than the last answer has no badge until the next one.
        let badge = state.signature(model, v).map_or_else(Cell::default, |status| {
            let text = signature_badge(status, usize::from(SIGNATURE_WIDTH));
            Cell::from(Span::styled(text, signature_style(status, theme)))
        });
        cells.push(badge);
    }
    if columns.created {
        cells.push(Cell::from(created));
    }
    Row::new(cells).style(if marked { theme.warn } else { theme.base })
}

fn render_welcome(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let key = app.keymap.hint(crate::tui::action::Action::Select);
    let lines = vec![
        Line::styled("Welcome to kiln", theme.title),
        Line::raw(""),
        Line::raw("Your registry is empty. Train a first model and watch the whole loop:"),
        Line::styled(
            "train → watch the loss curve → deploy → send a test request",
            theme.muted,
        ),
        Line::raw(""),
        Line::from(vec![
            Span::raw("Press "),
            Span::styled(key, theme.key),
            Span::raw(" to train a small cnn on Fashion-MNIST (2 epochs, a few minutes on CPU)."),
        ]),
        Line::from(vec![
            Span::raw("Or press "),
            Span::styled(app.keymap.hint(crate::tui::action::Action::NewTraining), theme.key),
            Span::raw(" for the launch form, "),
            Span::styled(app.keymap.hint(crate::tui::action::Action::Help), theme.key),
            Span::raw(" for every key."),
        ]),
    ];
    let block = panel(" Models · first run ", true, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [_, middle, _] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(8), Constraint::Fill(1)]).areas(inner);
    frame.render_widget(Paragraph::new(lines).centered().wrap(Wrap { trim: true }), middle);
}

/// The headline metric of a version: accuracy, else RMSE, else the first.
pub fn headline(metrics: &std::collections::BTreeMap<String, f64>) -> Option<(String, f64)> {
    ["accuracy", "val_accuracy", "rmse", "val_rmse"]
        .iter()
        .find_map(|k| metrics.get(*k).map(|v| ((*k).to_owned(), *v)))
        .or_else(|| metrics.iter().next().map(|(k, v)| (k.clone(), *v)))
}

/// `acc`, `rmse`, … — short names that fit a column.
pub fn metric_abbrev(key: &str) -> &str {
    match key {
        "accuracy" | "val_accuracy" => "acc",
        "val_rmse" => "rmse",
        other => other.get(..4).unwrap_or(other),
    }
}
