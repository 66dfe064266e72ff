//! The samples of an evaluation (one confusion-matrix cell, the hardest, or the rows where two
//! versions disagree), and the sample open beside them as the model saw it (`sample.rs`).
//!
//! ```text
//! ┏ fmnist-cnn@3 · true Trouser → predicted T-shirt ━┓┌ sample #812 · true Trouser · predicted T-shirt ✗ ┐
//! ┃     #  TRUE       PREDICTED    CONF   LOSS       ┃│ ▀▀▄▄▀▀▄▄▀▀   top 3 (half-blocks)               │
//! ┃   812  Trouser    T-shirt     71.2%  1.427       ┃│ ▄▀▀▄▄▀▀▄▄▀   T-shirt  ██████████████   71.2%   │
//! ┃  4031  Trouser    T-shirt     64.0%  1.022       ┃│ ▀▄▄▀▀▄▄▀▀▄   Trouser  █████            24.0%   │
//! ┗ 2 of 2 · by confidence ━━━━━━━━━━━━━━━━━━━━━━━━━━┛└────────────────────────────────────────────────┘
//! ```
//! A terminal at least [`WIDE`] columns wide shows both panes; a narrower one the focused pane.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, TableState};

use super::sample;
use crate::tui::app::App;
use crate::tui::state::inspect::{Loadable, SampleSet, SamplesList};
use crate::tui::state::models::ModelsFocus;
use crate::tui::theme::Theme;
use crate::tui::widgets::{grouped, panel, placeholder};
use kiln_core::inspect::{Inspection, SampleView};

/// Columns from which the list and the sample are shown side by side.
pub const WIDE: u16 = 100;
/// The list's width beside the sample (wider with the other version's answers).
const LIST_WIDTH: u16 = 52;
const DISAGREE_WIDTH: u16 = 68;
/// The other version's answer: `t-shirt/top 66.0%`.
const OTHER_WIDTH: u16 = 17;

/// Draws the samples list and the open sample.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let state = &app.models;
    let Some(list) = &state.inspect.list else {
        let text = "no samples open (enter on a matrix cell lists its samples)";
        placeholder(frame, area, panel(" Samples ", true, &app.theme), text, app.theme.muted);
        return;
    };
    let sample_focused = state.focus == ModelsFocus::Sample;
    if area.width >= WIDE {
        let width = match list.set {
            SampleSet::Disagree { .. } => DISAGREE_WIDTH,
            _ => LIST_WIDTH,
        };
        let [left, right] = Layout::horizontal([Constraint::Length(width), Constraint::Fill(1)]).areas(area);
        render_list(frame, left, app, list, !sample_focused);
        sample::render(frame, right, app, sample_focused);
    } else if sample_focused {
        sample::render(frame, area, app, true);
    } else {
        render_list(frame, area, app, list, true);
    }
}

/// A class name of the list's answer, or its index before the answer.
fn class(list: &SamplesList, index: usize) -> String {
    list.classes()
        .get(index)
        .map_or_else(|| format!("class {index}"), Clone::clone)
}

/// What the list holds, for its title.
pub fn describe(list: &SamplesList) -> String {
    match list.set {
        SampleSet::Cell { truth, predicted } => {
            format!("true {} → predicted {}", class(list, truth), class(list, predicted))
        }
        SampleSet::Hardest => "hardest samples".to_owned(),
        SampleSet::Disagree { other } => format!("where v{other} disagrees"),
    }
}

fn render_list(frame: &mut Frame, area: Rect, app: &App, list: &SamplesList, focused: bool) {
    let theme = &app.theme;
    let title = format!(" {}@{} · {} ", list.model, list.version, describe(list));
    let inspection = match answer(list, theme) {
        Ok(inspection) => inspection,
        Err((text, style)) => {
            placeholder(frame, area, panel(title, focused, theme), &text, style);
            return;
        }
    };
    let other = match list.set {
        SampleSet::Disagree { other } => Some(other),
        _ => None,
    };
    let rows: Vec<Row> = inspection
        .samples
        .iter()
        .map(|s| sample_row(s, other.is_some(), inspection.classes.is_empty(), theme))
        .collect();
    let footer = format!(
        " {} of {} · by {} ",
        inspection.samples.len(),
        grouped(inspection.total as u64),
        list.order
    );
    let block = panel(title, focused, theme).title_bottom(Line::styled(footer, theme.muted));
    let table = Table::new(rows, widths(other.is_some()))
        .header(Row::new(header(other)).style(theme.header))
        .block(block)
        .row_highlight_style(if focused { theme.selected } else { theme.active });
    let mut table_state = TableState::default().with_selected(Some(list.selected));
    frame.render_stateful_widget(table, area, &mut table_state);
}

/// The list's samples, or what its pane says instead (loading, kilnd's refusal, none).
fn answer<'a>(list: &'a SamplesList, theme: &Theme) -> Result<&'a Inspection, (String, Style)> {
    match &list.answer {
        Loadable::Loading => Err(("loading samples…".to_owned(), theme.muted)),
        Loadable::Failed(why) => Err((why.clone(), theme.error)),
        Loadable::Ready(inspection) if inspection.samples.is_empty() => {
            let text = match list.set {
                SampleSet::Disagree { other } => format!("v{other} and v{} agree on every row", list.version),
                _ => "no samples".to_owned(),
            };
            Err((text, theme.muted))
        }
        Loadable::Ready(inspection) => Ok(inspection),
    }
}

/// The columns' names; with `other`, that version's answer after the prediction.
fn header(other: Option<u32>) -> Vec<String> {
    let mut header: Vec<String> = vec!["     #".into(), "TRUE".into(), "PREDICTED".into()];
    header.extend(other.map(|v| format!("v{v}")));
    header.extend(["CONF".into(), "LOSS".into()]);
    header
}

fn widths(disagree: bool) -> Vec<Constraint> {
    let mut widths = vec![Constraint::Length(6), Constraint::Fill(1), Constraint::Fill(1)];
    if disagree {
        widths.push(Constraint::Length(OTHER_WIDTH));
    }
    widths.extend([Constraint::Length(6), Constraint::Length(7)]);
    widths
}

/// One listed sample; a rating has no confidence (its loss is the residual).
fn sample_row<'a>(s: &SampleView, disagree: bool, rating: bool, theme: &Theme) -> Row<'a> {
    let right = s.label == s.prediction;
    let mut cells = vec![
        Cell::from(format!("{:>6}", s.index)),
        Cell::from(s.label.clone()),
        Cell::from(Span::styled(
            s.prediction.clone(),
            if right { theme.ok } else { theme.error },
        )),
    ];
    if disagree {
        let text = s.other.as_ref().map_or_else(
            || "-".to_owned(),
            |o| format!("{} {}", o.prediction, percent(o.confidence)),
        );
        let style = match &s.other {
            Some(o) if o.prediction == s.label => theme.ok,
            _ => theme.error,
        };
        cells.push(Cell::from(Span::styled(text, style)));
    }
    let confidence = if rating { "-".to_owned() } else { percent(s.confidence) };
    cells.push(Cell::from(format!("{confidence:>6}")));
    cells.push(Cell::from(format!("{:>7.3}", s.loss)));
    Row::new(cells)
}

/// `71.2%`.
pub fn percent(p: f32) -> String {
    format!("{:.1}%", p * 100.0)
}
