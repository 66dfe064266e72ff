//! The eval report view (enter on a version's detail): headline figures, the confusion matrix
//! under a cell cursor, and calibration, the expected calibration error with a reliability
//! diagram (beside the matrix when it fits, else under it).
//!
//! ```text
//! ┏ fmnist-cnn@3 · eval fashion-mnist test (300 rows) ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
//! ┃accuracy 0.9120 · macro-F1 0.9100 · ECE 0.0420                                            ┃
//! ┃t\p   T-sh Trou Pull   F1     calibration ECE 0.0420                                       ┃
//! ┃T-sh    91    2    7 0.905    conf     accuracy (░ short of its confidence)  acc  conf rows┃
//! ┃Trou  [  1]  98    1 0.905    0.9–1.0  ██████████████████░░ 0.912 0.958   250          ┃
//! ┃true Trouser → predicted T-shirt: 1 sample · enter lists them                             ┃
//! ┃w the hardest samples · v where the version marked with m disagrees · esc back            ┃
//! ┗━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┛
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::detail::fmt_number;
use crate::tui::action::Action;
use crate::tui::app::App;
use crate::tui::inspect::NO_PREDICTIONS;
use crate::tui::theme::Theme;
use crate::tui::widgets::{grouped, panel, placeholder};
use kiln_core::api::EvalReport;
use kiln_core::inspect::Calibration;

/// Cells of a reliability bar (accuracy 1.0 fills them all).
const CALIBRATION_BAR: usize = 20;
/// Width of the reliability diagram: bin, bar, accuracy, confidence, rows.
const CALIBRATION_WIDTH: u16 = 9 + CALIBRATION_BAR as u16 + 20;
/// Columns between the matrix and the diagram.
const GAP: u16 = 4;
/// Width of the matrix's row-label column.
const LABEL: usize = 5;

/// Draws the eval report view of the selected version.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let (Some((model, version)), Some(report)) = (app.models.current_version(), app.current_report()) else {
        placeholder(
            frame,
            area,
            panel(" Eval ", true, theme),
            "loading the report…",
            theme.muted,
        );
        return;
    };
    let title = format!(
        " {model}@{version} · eval {} {} ({} rows) ",
        report.dataset,
        report.split,
        grouped(report.rows as u64)
    );
    let block = panel(title, true, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [head, body, foot] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1), Constraint::Length(3)]).areas(inner);
    frame.render_widget(Paragraph::new(figures(report, theme)), head);
    render_body(frame, body, app, report);
    frame.render_widget(Paragraph::new(footer(app, report)), foot);
}

/// The matrix, and the reliability diagram beside or under it.
fn render_body(frame: &mut Frame, area: Rect, app: &App, report: &EvalReport) {
    let theme = &app.theme;
    let matrix = matrix_lines(report, theme, Some(app.models.cell));
    let calibration = report
        .calibration
        .as_ref()
        .map_or_else(Vec::new, |c| calibration_lines(c, theme));
    let matrix_width = matrix.iter().map(Line::width).max().unwrap_or(0) as u16;
    if matrix_width + GAP + CALIBRATION_WIDTH <= area.width {
        let [left, _, right] = Layout::horizontal([
            Constraint::Length(matrix_width),
            Constraint::Length(GAP),
            Constraint::Fill(1),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(matrix), left);
        frame.render_widget(Paragraph::new(calibration), right);
    } else {
        let mut lines = matrix;
        if !calibration.is_empty() {
            lines.push(Line::raw(""));
            lines.extend(calibration);
        }
        frame.render_widget(Paragraph::new(lines), area);
    }
}

/// `accuracy 0.9120 · macro-F1 0.9100 · ECE 0.0420`.
fn figures<'a>(report: &EvalReport, theme: &'a Theme) -> Line<'a> {
    let ece = report.calibration.as_ref().map(|c| c.ece);
    let spans: Vec<String> = [
        ("accuracy", report.accuracy),
        ("macro-F1", report.macro_f1),
        ("rmse", report.rmse),
        ("mae", report.mae),
        ("ECE", ece),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| format!("{name} {}", fmt_number(v))))
    .collect();
    Line::styled(spans.join(" · "), theme.base)
}

/// What the cell under the cursor holds and what the keys do with it.
fn footer<'a>(app: &App, report: &'a EvalReport) -> Vec<Line<'a>> {
    let theme = &app.theme;
    let key = |a: Action| Span::styled(app.keymap.hint(a), theme.key);
    let (truth, predicted) = app.models.cell;
    let mut head = Vec::new();
    if let Some(count) = report.confusion_matrix.get(truth).and_then(|r| r.get(predicted)) {
        let samples = if *count == 1 { "sample" } else { "samples" };
        head.push(Span::raw(format!(
            "true {} → predicted {}: {} {samples} · ",
            class_name(report, truth),
            class_name(report, predicted),
            grouped(*count as u64)
        )));
        head.extend([key(Action::Select), Span::raw(" lists them")]);
    }
    let keys = vec![
        key(Action::Hardest),
        Span::raw(" the hardest samples · "),
        key(Action::Disagree),
        Span::raw(" where the version marked with "),
        key(Action::MarkCompare),
        Span::raw(" disagrees · "),
        key(Action::Back),
        Span::raw(" back"),
    ];
    let mut lines = vec![Line::from(head), Line::from(keys)];
    if report.predictions.is_none() {
        lines.push(Line::styled(NO_PREDICTIONS, theme.warn));
    }
    lines
}

fn class_name(report: &EvalReport, index: usize) -> String {
    report
        .per_class
        .get(index)
        .map_or_else(|| index.to_string(), |c| c.class.clone())
}

fn abbrev(class: &str) -> String {
    class.chars().filter(|c| !c.is_whitespace()).take(4).collect()
}

/// The confusion matrix (rows: truth, columns: predicted) with each class's F1; `cursor`
/// highlights a cell and its row's and column's labels.
pub fn matrix_lines<'a>(report: &EvalReport, theme: &'a Theme, cursor: Option<(usize, usize)>) -> Vec<Line<'a>> {
    let matrix = &report.confusion_matrix;
    if matrix.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = (0..matrix.len())
        .map(|i| {
            report
                .per_class
                .get(i)
                .map_or_else(|| i.to_string(), |c| abbrev(&c.class))
        })
        .collect();
    let width = matrix
        .iter()
        .flatten()
        .map(|n| n.to_string().len())
        .max()
        .unwrap_or(1)
        .max(names.iter().map(|n| n.chars().count()).max().unwrap_or(1))
        + 1;
    let (at_row, at_column) = cursor.map_or((None, None), |(r, c)| (Some(r), Some(c)));
    let label = |i: usize, on: Option<usize>| if on == Some(i) { theme.key } else { theme.header };
    let mut header = vec![Span::styled(format!("{:<LABEL$}", "t\\p"), theme.muted)];
    header.extend(
        names
            .iter()
            .enumerate()
            .map(|(j, n)| Span::styled(format!("{n:>width$}"), label(j, at_column))),
    );
    header.push(Span::styled("   F1", theme.header));
    let mut lines = vec![Line::from(header)];
    for (i, (row, name)) in matrix.iter().zip(&names).enumerate() {
        let mut spans = vec![Span::styled(format!("{name:<LABEL$}"), label(i, at_row))];
        spans.extend(row.iter().enumerate().map(|(j, n)| {
            let style = match (cursor == Some((i, j)), i == j, *n > 0) {
                (true, _, _) => theme.selected,
                (false, true, _) => theme.ok,
                (false, false, true) => theme.warn,
                (false, false, false) => theme.muted,
            };
            Span::styled(format!("{n:>width$}"), style)
        }));
        let f1 = report
            .per_class
            .get(i)
            .map_or(String::new(), |c| format!(" {:.3}", c.f1));
        spans.push(Span::raw(f1));
        lines.push(Line::from(spans));
    }
    lines
}

/// The expected calibration error and the reliability diagram: one bar per confidence bin
/// that holds rows, as long as the bin's accuracy; `░` fills the rest of the way to its mean
/// confidence (the diagonal of a perfectly calibrated model), so over-confidence shows as
/// shade and under-confidence as bar past it (in the `ok` style).
pub fn calibration_lines<'a>(calibration: &Calibration, theme: &'a Theme) -> Vec<Line<'a>> {
    let mut lines = vec![
        Line::from(vec![
            Span::styled("calibration ", theme.header),
            Span::raw(format!("ECE {}", fmt_number(calibration.ece))),
        ]),
        Line::styled(
            format!(
                "{:<9}{:<w$} {:>5} {:>5} {:>6}",
                "conf",
                "accuracy (░ short of conf)",
                "acc",
                "conf",
                "rows",
                w = CALIBRATION_BAR
            ),
            theme.muted,
        ),
    ];
    for bin in calibration.bins.iter().filter(|b| b.rows > 0) {
        let mut spans = vec![Span::styled(
            format!("{:.1}–{:.1}  ", bin.lower, bin.upper),
            theme.muted,
        )];
        spans.extend(reliability_bar(bin.accuracy, bin.confidence, theme));
        spans.push(Span::raw(format!(
            " {:.3} {:.3} {:>6}",
            bin.accuracy,
            bin.confidence,
            grouped(bin.rows as u64)
        )));
        lines.push(Line::from(spans));
    }
    if calibration.bins.iter().all(|b| b.rows == 0) {
        lines.push(Line::styled("no rows in any bin", theme.muted));
    }
    lines
}

/// [`CALIBRATION_BAR`] cells: `█` up to the accuracy, `░` on to the confidence when the
/// accuracy falls short of it, the `█` past the confidence in `ok` when it exceeds it.
fn reliability_bar<'a>(accuracy: f64, confidence: f64, theme: &'a Theme) -> Vec<Span<'a>> {
    let cells = |x: f64| ((x.clamp(0.0, 1.0) * CALIBRATION_BAR as f64).round() as usize).min(CALIBRATION_BAR);
    let (acc, conf) = (cells(accuracy), cells(confidence));
    let both = acc.min(conf);
    let mut spans = vec![Span::styled("█".repeat(both), theme.active)];
    if acc > conf {
        spans.push(Span::styled("█".repeat(acc - conf), theme.ok));
    } else {
        spans.push(Span::styled("░".repeat(conf - acc), theme.warn));
    }
    spans.push(Span::raw(" ".repeat(CALIBRATION_BAR - acc.max(conf))));
    spans
}
