//! The jobs screen's layers pane (`L` swaps it with the loss chart): one row per layer of the
//! selected training job, with its gradient norm over the run as a sparkline (log scale, one
//! bar per column: the highest window it covers), the latest figures and a mark when the
//! layer explodes, vanishes or has mostly dead units.
//!
//! ```text
//! ┌ layers · j1764434400-ab12 · gradient norm, log scale ──────────────────────────┐
//! │LAYER     GRAD NORM OVER THE RUN           GRAD   UPDATE  DEAD                 │
//! │hidden.0  ▁▁▁▂▂▃▄▆█                     3.2e+04  1.0e+00    0%  ▲ exploding     │
//! │hidden.1  ▃▃▃▃▃▃▃▃▃                     2.1e-01  1.1e-03   75%  ✕ dead          │
//! │output    ▃▃▃▃▃▃▃▃▃                     4.0e-01  9.0e-04     -                 │
//! └───────────────────────────────────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Row, Table};

use crate::tui::app::App;
use crate::tui::state::layers::LayerHistory;
use crate::tui::theme::Theme;
use crate::tui::widgets::{panel, placeholder};
use kiln_core::api::{JobRequest, JobView};
use kiln_core::inspect::LayerHealth;
use kiln_core::layers::{Watched, sci};

/// Widths of the layer name (`global_bias`), a figure (`3.2e+04`), the dead share and the mark.
const NAME: u16 = 11;
const FIGURE: u16 = 8;
const DEAD: u16 = 4;
const MARK: u16 = 11;
/// Columns: layer, sparkline, grad norm, update ratio, dead share, mark.
const WIDTHS: [Constraint; 6] = [
    Constraint::Length(NAME),
    Constraint::Fill(1),
    Constraint::Length(FIGURE),
    Constraint::Length(FIGURE),
    Constraint::Length(DEAD),
    Constraint::Length(MARK),
];
/// Columns the table leaves between its columns.
const SPACING: u16 = 1;
/// Everything but the sparkline.
const FIXED: u16 = NAME + 2 * FIGURE + DEAD + MARK + 5 * SPACING;

/// Draws the layers pane for the selected job in `area`.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(job) = app.jobs.current() else { return };
    let block = panel(
        format!(" layers · {} · gradient norm, log scale ", job.id),
        false,
        theme,
    );
    let history = app
        .jobs
        .runs
        .get(&job.id)
        .map(|r| &r.layers)
        .filter(|h| !h.watch.is_empty());
    let Some(history) = history else {
        placeholder(frame, area, block, &empty_text(job), theme.muted);
        return;
    };
    let inner = block.inner(area);
    let spark = usize::from(inner.width.saturating_sub(FIXED).max(1));
    let rows: Vec<Row> = history
        .watch
        .layers()
        .iter()
        .enumerate()
        .map(|(i, w)| layer_row(history, i, w, spark, theme))
        .collect();
    let header = Row::new(["LAYER", "GRAD NORM OVER THE RUN", "GRAD", "UPDATE", "DEAD", ""]).style(theme.header);
    let table = Table::new(rows, WIDTHS)
        .header(header)
        .column_spacing(SPACING)
        .block(block);
    frame.render_widget(table, area);
}

/// Why there is nothing to show yet.
fn empty_text(job: &JobView) -> String {
    match &job.spec.request {
        JobRequest::Train(t) if !t.layer_stats => {
            "layer statistics are off for this job (it was started with --no-layer-stats)".into()
        }
        JobRequest::Train(_) if job.is_active() => "waiting for the first layer statistics…".into(),
        JobRequest::Train(_) => "no layer statistics recorded".into(),
        _ => "only training jobs record layer statistics".into(),
    }
}

fn layer_row<'a>(history: &LayerHistory, i: usize, w: &Watched, spark: usize, theme: &Theme) -> Row<'a> {
    let latest = &w.latest;
    let (mark, style) = mark(w.health(), theme);
    let dead = latest.dead.map_or("-".to_owned(), |d| format!("{:.0}%", d * 100.0));
    Row::new(vec![
        Line::raw(w.name().to_owned()),
        Line::styled(history.sparkline(i, spark), theme.loss_train),
        Line::raw(sci(latest.grad_norm)).right_aligned(),
        Line::raw(sci(latest.update_ratio)).right_aligned(),
        Line::raw(dead).right_aligned(),
        Line::styled(mark, style),
    ])
}

/// The mark of a layer's health and its theme slot.
fn mark(health: LayerHealth, theme: &Theme) -> (&'static str, Style) {
    match health {
        LayerHealth::Exploding => ("▲ exploding", theme.error),
        LayerHealth::Vanishing => ("▼ vanishing", theme.warn),
        LayerHealth::Dead => ("✕ dead", theme.warn),
        LayerHealth::Ok => ("", theme.muted),
    }
}
