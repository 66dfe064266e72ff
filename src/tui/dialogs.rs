//! The dialogs drawn over a screen: help (generated from the live keymap), the `:` command
//! palette, the confirm dialog, the launch form (training, evaluation or optimize) and the
//! study-spec path input; the deploy dialog has its own module (`deploy_dialog.rs`).
//!
//! ```text
//!        ┌ Confirm ──────────────────────────────┐
//!        │ Deploy fmnist-cnn@3 to production?     │
//!        │          enter/y yes · esc/n no        │
//!        └────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::action::{Action, Pending};
use super::app::{App, Overlay};
use super::deploy_dialog;
use super::form::{Field, FieldValue, LaunchForm};
use super::theme::Theme;
use super::widgets::wrap_words;

/// Draws `overlay` centred over `area`.
pub fn render_overlay(frame: &mut Frame, area: Rect, app: &App, overlay: &Overlay) {
    match overlay {
        Overlay::Help { scroll } => render_help(frame, area, app, *scroll),
        Overlay::Palette(text) => render_palette(frame, area, app, text),
        Overlay::Confirm(pending) => render_confirm(frame, area, &app.theme, pending),
        Overlay::Deploy(dialog) => deploy_dialog::render(frame, area, &app.theme, dialog),
        Overlay::Form(form) => render_form(frame, area, &app.theme, form),
        Overlay::SpecPath(text) => render_spec_path(frame, area, &app.theme, text),
    }
}

pub(super) fn dialog<'a>(title: &'a str, theme: &Theme) -> Block<'a> {
    Block::bordered()
        .border_style(theme.dialog)
        .title(Span::styled(format!(" {title} "), theme.title))
}

pub(super) fn popup(frame: &mut Frame, area: Rect, width: u16, height: u16) -> Rect {
    let rect = area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    );
    frame.render_widget(Clear, rect);
    rect
}

/// Key and action-name columns of the help table.
const HELP_KEYS: u16 = 14;
const HELP_NAME: u16 = 13;

fn render_help(frame: &mut Frame, area: Rect, app: &App, scroll: u16) {
    let theme = &app.theme;
    let rect = popup(frame, area, 100, 40);
    let text_width = usize::from(rect.width.saturating_sub(HELP_KEYS + HELP_NAME + 4)).max(10);
    let rows: Vec<Row> = app
        .keymap
        .help_rows()
        .into_iter()
        .skip(scroll as usize)
        .map(|(keys, action)| {
            let keys = if keys.is_empty() { "(unbound)".to_owned() } else { keys };
            let help = wrap_words(action.help(), text_width);
            let height = help.len().max(1) as u16;
            let help: Vec<Line> = help.into_iter().map(|l| Line::styled(l, theme.base)).collect();
            Row::new(vec![
                Cell::from(Span::styled(keys, theme.key)),
                Cell::from(Span::styled(action.name(), theme.muted)),
                Cell::from(Text::from(help)),
            ])
            .height(height)
        })
        .collect();
    let widths = [
        Constraint::Length(HELP_KEYS),
        Constraint::Length(HELP_NAME),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows, widths).block(dialog("Help: keys (your keymap; ↑/↓ scroll, esc close)", theme));
    frame.render_widget(table, rect);
}

fn render_palette(frame: &mut Frame, area: Rect, app: &App, text: &str) {
    let theme = &app.theme;
    let rect = popup(frame, area, 60, 5);
    let rect = Rect { y: area.y + 2, ..rect };
    frame.render_widget(Clear, rect);
    let lines = vec![
        Line::from(vec![Span::styled(":", theme.key), Span::raw(format!("{text}▏"))]),
        Line::styled(palette_choices(text, &app.contexts.names()), theme.muted),
    ];
    frame.render_widget(Paragraph::new(lines).block(dialog("Command", theme)), rect);
}

/// The palette's commands; once something is typed, the commands and keymap actions
/// (`:register-epoch`) that start with it; after `ctx `, the contexts.
pub(super) fn palette_choices(text: &str, contexts: &[&str]) -> String {
    const COMMANDS: &str = "models jobs gpu serving studies ctx NAME train theme NAME help q";
    let typed = text.trim_start();
    if let Some(name) = typed.strip_prefix("ctx ") {
        let name = name.trim();
        let matches: Vec<&str> = contexts.iter().copied().filter(|c| c.starts_with(name)).collect();
        return if matches.is_empty() {
            format!("no such context (known: {})", contexts.join(" "))
        } else {
            format!("contexts: {}", matches.join(" "))
        };
    }
    // Nothing typed yet, or an argument being typed (`theme NAME`).
    if typed.is_empty() || typed.contains(' ') {
        return COMMANDS.to_owned();
    }
    let commands = COMMANDS.split(' ').filter(|c| c.starts_with(typed));
    let actions = Action::ALL.iter().map(|a| a.name()).filter(|a| a.starts_with(typed));
    let matches: Vec<&str> = commands.chain(actions).collect();
    if matches.is_empty() {
        "no such command or action (? lists the actions)".to_owned()
    } else {
        matches.join(" ")
    }
}

/// `n` on the studies screen: the path of a spec to start (read by the console, checked by kilnd).
fn render_spec_path(frame: &mut Frame, area: Rect, theme: &Theme, text: &str) {
    let rect = popup(frame, area, 64, 5);
    let lines = vec![
        Line::from(vec![
            Span::styled("spec file ", theme.muted),
            Span::raw(format!("{text}▏")),
        ]),
        Line::from(vec![
            Span::styled("enter", theme.key),
            Span::raw(" start the study · "),
            Span::styled("esc", theme.key),
            Span::raw(" cancel"),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines).block(dialog("New study", theme)), rect);
}

fn render_confirm(frame: &mut Frame, area: Rect, theme: &Theme, pending: &Pending) {
    let rect = popup(frame, area, 56, 6);
    let lines = vec![
        Line::styled(pending.question(), theme.base),
        Line::raw(""),
        Line::from(vec![
            Span::styled("enter", theme.key),
            Span::raw("/"),
            Span::styled("y", theme.key),
            Span::raw(" yes · "),
            Span::styled("esc", theme.key),
            Span::raw("/"),
            Span::styled("n", theme.key),
            Span::raw(" no"),
        ])
        .centered(),
    ];
    let text = Paragraph::new(lines)
        .wrap(Wrap { trim: true })
        .block(dialog("Confirm", theme));
    frame.render_widget(text, rect);
}

/// One form field: label, value (choices show ◀ ▶ and text a cursor when focused).
fn field_row<'a>(f: &'a Field, focused: bool, theme: &Theme) -> Row<'a> {
    let value = match &f.value {
        FieldValue::Choice { .. } if focused => format!("◀ {} ▶", f.text_value()),
        FieldValue::Choice { .. } => f.text_value().to_owned(),
        FieldValue::Text(s) if focused => format!("{s}▏"),
        FieldValue::Text(s) => s.clone(),
    };
    let style = if focused { theme.selected } else { theme.base };
    Row::new(vec![Span::styled(f.label, theme.muted), Span::styled(value, style)])
}

/// The launch form's width.
const FORM_WIDTH: u16 = 56;

fn render_form(frame: &mut Frame, area: Rect, theme: &Theme, form: &LaunchForm) {
    let shown = form.shown_fields().count() as u16;
    // A long error (the core's checks explain themselves) wraps instead of being cut.
    let error_lines = form
        .error
        .as_deref()
        .map_or(1, |e| wrap_words(e, usize::from(FORM_WIDTH - 2)).len().max(1) as u16);
    let rect = popup(frame, area, FORM_WIDTH, shown + error_lines + 4);
    let block = dialog(form.title(), theme);
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let [fields, error, hints] = Layout::vertical([
        Constraint::Length(shown),
        Constraint::Length(error_lines),
        Constraint::Length(2),
    ])
    .areas(inner);
    let rows: Vec<Row> = form
        .shown_fields()
        .map(|(i, f)| field_row(f, i == form.focus, theme))
        .collect();
    frame.render_widget(Table::new(rows, [Constraint::Length(15), Constraint::Fill(1)]), fields);
    if let Some(e) = &form.error {
        let text = Paragraph::new(Span::styled(e.clone(), theme.error)).wrap(Wrap { trim: true });
        frame.render_widget(text, error);
    }
    let hint = Line::from(vec![
        Span::styled("enter", theme.key),
        Span::raw(" launch · "),
        Span::styled("esc", theme.key),
        Span::raw(" cancel · "),
        Span::styled("↑↓", theme.key),
        Span::raw(" field · "),
        Span::styled("←→", theme.key),
        Span::raw(" choose"),
    ]);
    frame.render_widget(Paragraph::new(hint), hints);
}
