//! One evaluated sample as the model saw it: an image drawn in the terminal (`graphics.rs`)
//! beside the top-k probabilities as bars; a quote with the words outside the vocabulary
//! marked; a rating with the user's other ratings; or the raw features.
//!
//! ```text
//! ┌ sample #812 · true Trouser · predicted T-shirt ✗ ─────────────────┐
//! │▀▀▄▄▀▀▄▄▀▀▄▄▀▀  top 3 · half-blocks                                │
//! │▄▀▀▄▄▀▀▄▄▀▀▄▄▀  T-shirt   ████████████████████▊           71.2%    │
//! │▀▄▄▀▀▄▄▀▀▄▄▀▀▄  Trouser   ██████▊                         24.0%    │
//! │                loss 1.427                                         │
//! └───────────────────────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::samples::percent;
use crate::tui::app::App;
use crate::tui::graphics::Picture;
use crate::tui::state::inspect::{Loadable, OpenSample};
use crate::tui::theme::Theme;
use crate::tui::widgets::{panel, placeholder};
use kiln_core::inspect::{SampleDetail, SampleInput, SampleView, Word};

/// Columns between the image and the bars.
const GAP: u16 = 2;
/// The bars' column is never narrower than this beside the image (else it goes under it).
const BARS_MIN: u16 = 30;
/// Widest class-name column of the bars.
const NAME_MAX: usize = 14;
/// Most of the user's other ratings shown.
const OTHER_RATINGS: usize = 12;

/// Draws the open sample (or what stands for it while it loads or failed).
pub fn render(frame: &mut Frame, area: Rect, app: &App, focused: bool) {
    let theme = &app.theme;
    let Some(open) = &app.models.inspect.sample else {
        let text = format!(
            "{} opens the selected sample as the model saw it",
            app.keymap.hint(crate::tui::action::Action::Select)
        );
        placeholder(frame, area, panel(" Sample ", focused, theme), &text, theme.muted);
        return;
    };
    let title = format!(" sample #{} ", open.index);
    let detail = match &open.answer {
        Loadable::Loading => {
            placeholder(frame, area, panel(title, focused, theme), "loading…", theme.muted);
            return;
        }
        Loadable::Failed(why) => {
            placeholder(frame, area, panel(title, focused, theme), why, theme.error);
            return;
        }
        Loadable::Ready(detail) => detail,
    };
    let block = panel(heading(&detail.sample, theme), focused, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    match &detail.input {
        SampleInput::Image { .. } => render_image(frame, inner, app, open, detail),
        SampleInput::Text { words, .. } => render_text(frame, inner, theme, words, &detail.sample),
        SampleInput::Rating {
            user,
            item,
            rating,
            others,
        } => {
            let lines = rating_lines(theme, (*user, *item, *rating), others, &detail.sample);
            frame.render_widget(Paragraph::new(lines), inner);
        }
        SampleInput::Features { values } => {
            let lines = feature_lines(theme, values, &detail.sample, inner.width);
            frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        }
    }
}

/// `sample #812 · true Trouser · predicted T-shirt ✗`.
fn heading<'a>(sample: &SampleView, theme: &'a Theme) -> Line<'a> {
    let right = sample.label == sample.prediction;
    Line::from(vec![
        Span::styled(
            format!(" sample #{} · true {} · predicted ", sample.index, sample.label),
            theme.title,
        ),
        Span::styled(
            format!("{} {} ", sample.prediction, if right { "✓" } else { "✗" }),
            if right { theme.ok } else { theme.error },
        ),
    ])
}

/// The picture at its encoded size, the bars beside it (or under it when narrow).
fn render_image(frame: &mut Frame, area: Rect, app: &App, open: &OpenSample, detail: &SampleDetail) {
    let theme = &app.theme;
    let mut side = vec![Line::from(vec![
        Span::styled(format!("top {}", detail.sample.top.len()), theme.header),
        Span::styled(format!(" · {}", app.models.inspect.graphics.name()), theme.muted),
    ])];
    let picture: Result<&Picture, &str> = match &open.picture {
        Some(Ok(picture)) => Ok(picture),
        Some(Err(why)) => Err(why.as_str()),
        None => Err("not encoded"),
    };
    let size = picture.map_or(ratatui::layout::Size::new(0, 0), |p| p.size);
    let beside = area.width >= size.width + GAP + BARS_MIN;
    let (image_area, bars_area) = if beside {
        let [image, _, bars] = Layout::horizontal([
            Constraint::Length(size.width),
            Constraint::Length(GAP),
            Constraint::Fill(1),
        ])
        .areas(area);
        (image, bars)
    } else {
        let [image, bars] = Layout::vertical([Constraint::Length(size.height), Constraint::Fill(1)]).areas(area);
        (image, bars)
    };
    match picture {
        Ok(picture) => {
            let at = Rect {
                height: image_area.height.min(size.height),
                ..image_area
            };
            frame.render_widget(picture, at);
        }
        Err(why) => side.push(Line::styled(format!("cannot draw the image: {why}"), theme.error)),
    }
    side.extend(bar_lines(&detail.sample, theme, bars_area.width));
    frame.render_widget(Paragraph::new(side), bars_area);
}

/// The quote, the words outside the vocabulary in the `oov` style, then the bars.
fn render_text(frame: &mut Frame, area: Rect, theme: &Theme, words: &[Word], sample: &SampleView) {
    let mut spans = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" "));
        }
        let style = if word.known { theme.base } else { theme.oov };
        spans.push(Span::styled(word.text.clone(), style));
    }
    let unknown = words.iter().filter(|w| !w.known).count();
    let mut lines = vec![
        Line::from(spans),
        Line::raw(""),
        Line::from(vec![
            Span::styled("marked", theme.oov),
            Span::styled(
                format!(": outside the vocabulary ({unknown} of {} words)", words.len()),
                theme.muted,
            ),
        ]),
        Line::raw(""),
    ];
    lines.extend(bar_lines(sample, theme, area.width));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

/// User, item, predicted and true rating, then the user's other ratings.
fn rating_lines<'a>(
    theme: &'a Theme,
    (user, item, rating): (u32, u32, f32),
    others: &[(u32, f32)],
    sample: &SampleView,
) -> Vec<Line<'a>> {
    let kv =
        |key: &str, value: String| Line::from(vec![Span::styled(format!("{key:<11}"), theme.muted), Span::raw(value)]);
    let mut lines = vec![
        kv("user", user.to_string()),
        kv("item", item.to_string()),
        kv("predicted", sample.prediction.clone()),
        kv("true", format!("{rating:.1}")),
        kv("residual", format!("{:+.3}", sample.loss)),
        Line::raw(""),
        Line::styled(format!("the user's other ratings ({})", others.len()), theme.header),
    ];
    if others.is_empty() {
        lines.push(Line::styled("none in this split", theme.muted));
    }
    lines.push(Line::styled(format!("{:<8}{:>6}", "item", "rating"), theme.muted));
    for (other, r) in others.iter().take(OTHER_RATINGS) {
        lines.push(Line::raw(format!("{other:<8}{r:>6.1}")));
    }
    if others.len() > OTHER_RATINGS {
        lines.push(Line::styled(
            format!("… and {} more", others.len() - OTHER_RATINGS),
            theme.muted,
        ));
    }
    lines
}

/// A CSV row's features, then the bars.
fn feature_lines<'a>(theme: &'a Theme, values: &[f32], sample: &SampleView, width: u16) -> Vec<Line<'a>> {
    let text: Vec<String> = values.iter().map(|v| format!("{v:.4}")).collect();
    let mut lines = vec![
        Line::from(vec![
            Span::styled("features  ", theme.muted),
            Span::raw(text.join("  ")),
        ]),
        Line::raw(""),
    ];
    lines.extend(bar_lines(sample, theme, width));
    lines
}

/// One line per top class: name, a bar as long as its probability, the percentage. The
/// true class is `ok`, a wrong prediction `error`. Then the loss (and, when listing
/// disagreements, the other version's answer).
pub fn bar_lines<'a>(sample: &SampleView, theme: &'a Theme, width: u16) -> Vec<Line<'a>> {
    let name_width = sample
        .top
        .iter()
        .map(|t| t.class.chars().count())
        .max()
        .unwrap_or(0)
        .min(NAME_MAX);
    let bar_width = usize::from(width).saturating_sub(name_width + 9).clamp(4, 40);
    let mut lines: Vec<Line> = sample
        .top
        .iter()
        .map(|t| {
            let style = if t.class == sample.label {
                theme.ok
            } else if t.class == sample.prediction {
                theme.error
            } else {
                theme.base
            };
            let name: String = t.class.chars().take(name_width).collect();
            Line::from(vec![
                Span::styled(format!("{name:<name_width$} "), style),
                Span::styled(bar(t.probability, bar_width), style),
                Span::raw(format!(" {:>6}", percent(t.probability))),
            ])
        })
        .collect();
    lines.push(Line::styled(format!("loss {:.3}", sample.loss), theme.muted));
    if let Some(other) = &sample.other {
        lines.push(Line::styled(
            format!(
                "v{} predicted {} ({})",
                other.version,
                other.prediction,
                percent(other.confidence)
            ),
            if other.prediction == sample.label {
                theme.ok
            } else {
                theme.error
            },
        ));
    }
    lines
}

/// `width` cells, the first `p·width` of them filled in eighths.
pub fn bar(p: f32, width: usize) -> String {
    const PARTIAL: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = (f64::from(p.clamp(0.0, 1.0)) * width as f64 * 8.0).round() as usize;
    let (full, rest) = (eighths / 8, eighths % 8);
    let mut out = "█".repeat(full.min(width));
    if full < width {
        out.push(PARTIAL[rest]);
        out.push_str(&" ".repeat(width - full - 1));
    }
    out
}
