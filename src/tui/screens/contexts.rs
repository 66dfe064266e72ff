//! The contexts screen: this box and every `[contexts.NAME]` of config.toml at once, each
//! surveyed through its own ssh tunnel every few seconds while the screen shows; the context
//! the console is on is marked, and `enter` switches to the selected one.
//!
//! ```text
//! ┏ Contexts (2) · surveyed every 5 s · enter switches ━━━━━━━━━━━━━━━━━━━━━━━━━┓
//! ┃   CONTEXT   SSH            REACHABLE        KILN   JOBS  GPUS     SERVING  ┃
//! ┃⎈  local     (this box)     ●                0.1.0  1     2 × 45%  1        ┃
//! ┃   a100-1    me@gpu-a100-1  ✕ ssh me@gpu-…   -      -     -        -        ┃
//! ┗━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┛
//! ┌ a100-1 · me@gpu-a100-1 ──────────────────────────────────────────────────────┐
//! │ ✕ ssh me@gpu-a100-1 failed: connect to host gpu-a100-1 port 22: refused      │
//! └──────────────────────────────────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::tui::app::App;
use crate::tui::state::contexts::ContextRow;
use crate::tui::theme::Theme;
use crate::tui::widgets::panel;
use kiln_core::context::ContextStatus;

/// Rows of the panel under the table: the selected context in full.
const DETAIL_ROWS: u16 = 5;
/// How often the loop surveys the contexts while this screen shows (its tick).
pub const SURVEY_EVERY_S: u64 = 5;

/// Columns of the table: mark, context, ssh, reachable, kiln, jobs, GPUs, deployments.
const WIDTHS: [Constraint; 8] = [
    Constraint::Length(1),
    Constraint::Length(12),
    Constraint::Fill(2),
    Constraint::Fill(3),
    Constraint::Length(6),
    Constraint::Length(4),
    Constraint::Length(8),
    Constraint::Length(7),
];

/// Draws the contexts screen.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let [table, detail] = Layout::vertical([Constraint::Min(3), Constraint::Length(DETAIL_ROWS)]).areas(area);
    render_table(frame, table, app);
    render_detail(frame, detail, app);
}

fn render_table(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.contexts, &app.theme);
    let title = format!(
        " Contexts ({}) · surveyed every {SURVEY_EVERY_S} s · enter switches ",
        state.rows.len()
    );
    let rows: Vec<Row> = state
        .rows
        .iter()
        .map(|r| context_row(r, r.entry.name == app.context, theme))
        .collect();
    let header = Row::new(["", "CONTEXT", "SSH", "REACHABLE", "KILN", "JOBS", "GPUS", "SERVING"]).style(theme.header);
    let table = Table::new(rows, WIDTHS)
        .header(header)
        .column_spacing(2)
        .block(panel(title, true, theme))
        .row_highlight_style(theme.selected);
    let mut table_state = TableState::default().with_selected(Some(state.selected));
    frame.render_stateful_widget(table, area, &mut table_state);
}

fn context_row<'a>(row: &'a ContextRow, current: bool, theme: &Theme) -> Row<'a> {
    let mark = if current {
        Span::styled("⎈", theme.active)
    } else {
        Span::raw("")
    };
    let ssh = row.entry.ssh.as_deref().unwrap_or("(this box)");
    let mut cells = vec![
        Cell::from(mark),
        Cell::from(Span::styled(row.entry.name.as_str(), theme.base)),
        Cell::from(Span::styled(ssh, theme.muted)),
    ];
    let Some(s) = &row.status else {
        cells.push(Cell::from(Span::styled("… surveying", theme.muted)));
        return Row::new(cells);
    };
    cells.push(Cell::from(reachable(s, theme)));
    let dash = || "-".to_owned();
    let figures = if s.reachable {
        [
            s.kiln.clone().unwrap_or_else(dash),
            s.running_jobs.to_string(),
            gpus(s),
            s.deployments.to_string(),
        ]
    } else {
        [dash(), dash(), dash(), dash()]
    };
    cells.extend(figures.into_iter().map(|f| Cell::from(Span::styled(f, theme.base))));
    Row::new(cells)
}

/// `●` when it answers (`● telemetry: …` when part of it did not), else `✕ why`.
fn reachable<'a>(s: &ContextStatus, theme: &Theme) -> Line<'a> {
    match (s.reachable, problem(s)) {
        (true, None) => Line::styled("●", theme.ok),
        (true, Some(p)) => Line::styled(format!("● {p}"), theme.warn),
        (false, p) => Line::styled(format!("✕ {}", p.unwrap_or("no answer")), theme.error),
    }
}

/// The survey's problem, without the `context NAME: ` its row already says.
fn problem(s: &ContextStatus) -> Option<&str> {
    let p = s.problem.as_deref()?;
    Some(p.strip_prefix(&format!("context {}: ", s.name)).unwrap_or(p))
}

/// `2 × 45%`: the GPUs and their mean utilisation (`-` without any).
pub fn gpus(s: &ContextStatus) -> String {
    match (s.gpus, s.gpu_utilization_pct) {
        (0, _) => "-".to_owned(),
        (n, Some(pct)) => format!("{n} × {pct:.0}%"),
        (n, None) => format!("{n} × ?"),
    }
}

/// The selected context in full: its problem unshortened, or where its kilnd runs.
fn render_detail(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.contexts, &app.theme);
    let Some(row) = state.current() else { return };
    let title = match &row.entry.ssh {
        Some(ssh) => format!(" {} · ssh {ssh} ", row.entry.name),
        None => format!(" {} · this box ", row.entry.name),
    };
    let mut lines = Vec::new();
    if let Some(problem) = &state.problem {
        lines.push(Line::styled(format!("config.toml: {problem}"), theme.error));
    }
    match &row.status {
        None => lines.push(Line::styled("surveying…", theme.muted)),
        Some(s) => {
            if let Some(problem) = problem(s) {
                let style = if s.reachable { theme.warn } else { theme.error };
                lines.push(Line::styled(
                    format!("{} {problem}", if s.reachable { "●" } else { "✕" }),
                    style,
                ));
            }
            if s.reachable {
                let mut parts = vec![format!("kilnd {}", s.kiln.as_deref().unwrap_or("?"))];
                parts.extend(s.pid.map(|p| format!("pid {p}")));
                parts.extend(s.home.as_ref().map(|h| format!("home {}", h.display())));
                lines.push(Line::styled(parts.join(" · "), theme.base));
            }
        }
    }
    let paragraph = Paragraph::new(lines)
        .block(panel(title, false, theme))
        .wrap(Wrap { trim: true });
    frame.render_widget(paragraph, area);
}
