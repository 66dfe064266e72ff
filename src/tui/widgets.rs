//! Small building blocks every screen and dialog shares: the bordered panel, the centred
//! placeholder, word wrapping, counts with thousands separators and the short date formats. They depend on nothing but the
//! theme, so screens, dialogs and the frame layout all point here and never at each other.
//!
//! ```text
//! ┏ Models (3) ━━━━━━━━━━━━━┓   ┌ Jobs ───────────────────┐
//! ┃ (focused: thick border) ┃   │      loading jobs…      │   ← placeholder
//! ┗━━━━━━━━━━━━━━━━━━━━━━━━━┛   └─────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Paragraph, Wrap};

use super::theme::Theme;

/// A bordered panel; the focused one stands out.
pub fn panel<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    let border = if focused { theme.border_focus } else { theme.border };
    Block::bordered()
        .border_type(if focused { BorderType::Thick } else { BorderType::Plain })
        .border_style(border)
        .title(title)
        .title_style(theme.title)
}

/// A centred one-paragraph placeholder (loading, empty, unavailable).
pub fn placeholder(frame: &mut Frame, area: Rect, block: Block<'_>, text: &str, style: Style) {
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width.max(1));
    let lines: usize = text.lines().map(|l| l.chars().count().div_ceil(width).max(1)).sum();
    let lines = u16::try_from(lines).unwrap_or(u16::MAX);
    let [_, middle, _] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(lines), Constraint::Fill(1)]).areas(inner);
    frame.render_widget(
        Paragraph::new(text.to_owned())
            .style(style)
            .centered()
            .wrap(Wrap { trim: true }),
        middle,
    );
}

/// Greedy word wrap to `width` columns.
pub fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// `1,234,567`: a count with thousands separators.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A short date-time for tables: `2026-11-29 16:40` from an RFC 3339 string.
pub fn short_time(rfc3339: &str) -> String {
    let s: String = rfc3339.chars().take(16).collect();
    s.replace('T', " ")
}

/// `11-29 16:40` from RFC 3339.
pub fn month_day(rfc3339: &str) -> String {
    short_time(rfc3339)
        .get(5..)
        .map_or_else(|| rfc3339.to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_shorten_to_what_a_column_fits() {
        assert_eq!(short_time("2026-11-29T16:40:12Z"), "2026-11-29 16:40");
        assert_eq!(month_day("2026-11-29T16:40:12Z"), "11-29 16:40");
        assert_eq!(month_day("soon"), "soon");
    }

    #[test]
    fn counts_group_their_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234), "1,234");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
