//! Parallel coordinates of a study: one vertical axis per tuned parameter plus one for the
//! objective, each trial a braille polyline through its values, so the eye sees which
//! parameter ranges the good trials share.
//!
//! ```text
//! ┌ params → val_accuracy ── best ── selected ─────┐
//! │ ⡇⠢⡀     ⡇        ⡇     ⢀⠔⡇                     │
//! │ ⡇  ⠑⠢⢄⣀⡇⣀⡠⠤⠒⠊⠉⠉⡇⠤⠔⠊⠁  ⡇                     │
//! │ ⡇       ⡇        ⡇       ⡇                     │
//! │ lr    batch_si optimize  val_acc               │
//! └────────────────────────────────────────────────┘
//! ```
//!
//! Every axis is normalised to 0–1 on its own: linear for uniform and int ranges, log scale
//! for log-uniform, the option's index for a choice; the objective axis puts better up. A
//! value that cannot be placed (missing, not in the space) leaves a gap in its trial's line,
//! and a trial without an objective value yet is not drawn.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::canvas::{Canvas, Context, Line as Segment};
use ratatui::widgets::{Block, Paragraph};
use serde_json::Value;

use crate::tui::state::studies::trial_best;
use crate::tui::theme::Theme;
use kiln_core::api::StudyView;
use kiln_core::study::{Direction, ParamSpace};

/// How many of the best trials stand out.
pub const BEST_SHOWN: usize = 3;

/// One trial's line: its height on every axis (params in spec order, the objective last).
#[derive(Debug, Clone, PartialEq)]
pub struct Polyline {
    pub number: u32,
    pub points: Vec<Option<f64>>,
    /// 0 for the best trial, 1 for the next…
    pub rank: usize,
}

/// Where `value` sits on a parameter's axis, from 0 (low / first option) to 1.
pub fn axis_position(space: &ParamSpace, value: &Value) -> Option<f64> {
    let linear = |v: f64, low: f64, high: f64| if high > low { (v - low) / (high - low) } else { 0.5 };
    let at = match space {
        ParamSpace::Uniform { low, high } => linear(value.as_f64()?, *low, *high),
        ParamSpace::Int { low, high } => linear(value.as_f64()?, *low as f64, *high as f64),
        ParamSpace::LogUniform { low, high } => {
            let v = value.as_f64().filter(|v| *v > 0.0)?;
            linear(
                v.ln(),
                low.max(f64::MIN_POSITIVE).ln(),
                high.max(f64::MIN_POSITIVE).ln(),
            )
        }
        ParamSpace::Choice(options) => {
            let i = options.iter().position(|o| same(o, value))?;
            if options.len() > 1 {
                i as f64 / (options.len() - 1) as f64
            } else {
                0.5
            }
        }
    };
    at.is_finite().then_some(at.clamp(0.0, 1.0))
}

/// JSON equality that also takes `64` and `64.0` as the same option.
fn same(a: &Value, b: &Value) -> bool {
    a == b || matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

/// The lines of every trial with an objective value, worst first (so the best draw on top).
pub fn polylines(study: &StudyView) -> Vec<Polyline> {
    let objective = study.spec.objective;
    let mut scored: Vec<(u32, f64, Vec<Option<f64>>)> = study
        .trials
        .iter()
        .filter_map(|t| {
            let best = trial_best(study, t)?;
            let params = study
                .spec
                .params
                .iter()
                .map(|p| t.params.get(&p.name).and_then(|v| axis_position(&p.space, v)))
                .collect();
            Some((t.number, best, params))
        })
        .collect();
    let (lo, hi) = scored
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v, _)| {
            (lo.min(*v), hi.max(*v))
        });
    let height = |v: f64| {
        let up = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        match objective.direction {
            Direction::Maximize => up,
            Direction::Minimize => 1.0 - up,
        }
    };
    scored.sort_by(|a, b| height(b.1).total_cmp(&height(a.1)).then(a.0.cmp(&b.0)));
    let mut lines: Vec<Polyline> = scored
        .into_iter()
        .enumerate()
        .map(|(rank, (number, best, mut points))| {
            points.push(Some(height(best)));
            Polyline { number, points, rank }
        })
        .collect();
    lines.reverse();
    lines
}

/// The axis names: each parameter (without `config.`) and the objective's metric.
pub fn axis_names(study: &StudyView) -> Vec<String> {
    let mut names: Vec<String> = study
        .spec
        .params
        .iter()
        .map(|p| p.name.strip_prefix("config.").unwrap_or(&p.name).to_owned())
        .collect();
    names.push(study.spec.objective.metric.to_string());
    names
}

fn color(style: Style) -> Color {
    style.fg.unwrap_or(Color::Reset)
}

/// Draws the study's parallel coordinates in `block`; `selected` is the selected trial.
pub fn render(
    frame: &mut Frame,
    area: Rect,
    block: Block<'_>,
    study: &StudyView,
    selected: Option<u32>,
    theme: &Theme,
) {
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let names = axis_names(study);
    if inner.height < 3 || usize::from(inner.width) < names.len() * 2 {
        return;
    }
    let [plot, labels] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    let lines = polylines(study);
    let axes = names.len() as f64;
    let canvas = Canvas::default()
        .marker(Marker::Braille)
        .x_bounds([-0.5, axes - 0.5])
        .y_bounds([0.0, 1.0])
        .paint(|ctx| paint(ctx, &lines, names.len(), selected, theme));
    frame.render_widget(canvas, plot);
    let label_line = Line::styled(axis_labels(&names, labels.width), theme.muted);
    frame.render_widget(Paragraph::new(label_line), labels);
}

/// Axes first, then the other trials, the best ones and the selected one on top.
fn paint(ctx: &mut Context<'_>, lines: &[Polyline], axes: usize, selected: Option<u32>, theme: &Theme) {
    for i in 0..axes {
        let x = i as f64;
        ctx.draw(&Segment::new(x, 0.0, x, 1.0, color(theme.border)));
    }
    // 0: the rest, 1: the best, 2: the selected trial; later layers draw over earlier ones.
    let layer = |l: &Polyline| match (Some(l.number) == selected, l.rank < BEST_SHOWN) {
        (true, _) => 2,
        (false, true) => 1,
        (false, false) => 0,
    };
    for (index, style) in [theme.muted, theme.ok, theme.active].into_iter().enumerate() {
        ctx.layer();
        for line in lines.iter().filter(|l| layer(l) == index) {
            draw_polyline(ctx, line, color(style));
        }
    }
}

fn draw_polyline(ctx: &mut Context<'_>, line: &Polyline, color: Color) {
    for (i, pair) in line.points.windows(2).enumerate() {
        if let [Some(a), Some(b)] = pair {
            let x = i as f64;
            ctx.draw(&Segment::new(x, *a, x + 1.0, *b, color));
        }
    }
}

/// The axis names, each centred under its axis and cut to the room between axes.
pub fn axis_labels(names: &[String], width: u16) -> String {
    let width = usize::from(width);
    let n = names.len().max(1);
    let room = (width / n).saturating_sub(1).max(1);
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        // The canvas puts x = i in braille dot column (i + 0.5) / n * (2 * width - 1).
        let column = (((i as f64 + 0.5) / n as f64) * (2 * width).saturating_sub(1) as f64) as usize / 2;
        let label: String = name.chars().take(room).collect();
        let start = column.saturating_sub(label.chars().count() / 2);
        let used = out.chars().count();
        let pad = if used == 0 { start } else { start.max(used + 1) - used };
        out.push_str(&" ".repeat(pad));
        out.push_str(&label);
    }
    out.chars().take(width).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn axes_are_linear_log_or_by_option() {
        let log = ParamSpace::LogUniform { low: 1e-4, high: 1e-2 };
        assert_eq!(
            axis_position(&log, &json!(1e-3)).map(|v| (v * 100.0).round()),
            Some(50.0)
        );
        let uniform = ParamSpace::Uniform { low: 0.0, high: 0.5 };
        assert_eq!(axis_position(&uniform, &json!(0.25)), Some(0.5));
        let choice = ParamSpace::Choice(vec![json!(32), json!(64), json!(128)]);
        assert_eq!(axis_position(&choice, &json!(128)), Some(1.0));
        assert_eq!(axis_position(&choice, &json!(64.0)), Some(0.5));
        assert_eq!(axis_position(&choice, &json!(7)), None, "not an option: a gap");
        let int = ParamSpace::Int { low: 1, high: 1 };
        assert_eq!(axis_position(&int, &json!(1)), Some(0.5));
    }

    #[test]
    fn labels_sit_under_their_axes() {
        let names = vec!["lr".to_owned(), "batch_size".to_owned(), "val_accuracy".to_owned()];
        assert_eq!(axis_labels(&names, 30), "   lr     batch_siz val_accur");
    }
}
