//! Drawing the whole console from `&App` (render only borrows state).
//!
//! ```text
//!  kiln  1 Models  2 Jobs  3 GPU  4 Serving  5 Studies  6 Contexts  ⎈ a100-1  ● live
//!  context a100-1: the ssh tunnel … ; reconnecting (data may be stale)   ← only when down
//! ┌──────────────────────────────────────────────────────────────────────┐
//! │                         the current screen                           │
//! └──────────────────────────────────────────────────────────────────────┘
//!  ? help  : command  / filter  tab screen  q quit                [read-only]
//! ```
//! The status line shows, in this order: the filter being typed, the last message, a job's
//! exploding layer (`⚠ job … layer hidden.0: exploding gradients …`), or the key hints.
//! Dialogs (help, palette, confirm, deploy, launch form, spec path) are drawn over it by
//! `dialogs.rs`; the panels and placeholders screens share live in `widgets.rs`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::action::{Action, Screen};
use super::app::{App, Connection};
use super::state::models::ModelsFocus;
use super::{dialogs, screens};

/// Draws one frame.
pub fn render(frame: &mut Frame, app: &App) {
    let banner = banner_text(app);
    let [header, banner_area, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(banner.is_some())),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    render_header(frame, header, app);
    if let Some(text) = banner {
        frame.render_widget(Paragraph::new(text).style(app.theme.banner), banner_area);
    }
    match app.screen {
        Screen::Models => screens::models::render(frame, body, app),
        Screen::Jobs => screens::jobs::render(frame, body, app),
        Screen::Gpu => screens::gpu::render(frame, body, app),
        Screen::Serving => screens::serving::render(frame, body, app),
        Screen::Studies => screens::studies::render(frame, body, app),
        Screen::Contexts => screens::contexts::render(frame, body, app),
    }
    render_status(frame, status, app);
    if let Some(overlay) = &app.overlay {
        dialogs::render_overlay(frame, frame.area(), app, overlay);
    }
}

/// The line under the header while the current kilnd cannot be reached; for another box's,
/// it names the context (the problem is usually its ssh tunnel, not kilnd).
pub fn banner_text(app: &App) -> Option<String> {
    match &app.connection {
        Connection::Down(reason) if app.remote() => {
            let name = &app.context;
            let reason = reason.strip_prefix(&format!("context {name}: ")).unwrap_or(reason);
            let reason = reason.strip_suffix("; reconnecting").unwrap_or(reason);
            Some(format!(" context {name}: {reason}; reconnecting (data may be stale)"))
        }
        Connection::Down(reason) => Some(format!(" kilnd down, retrying (data may be stale): {reason}")),
        Connection::Connecting if app.remote() => Some(format!(" connecting to {} over ssh…", app.context)),
        _ => None,
    }
}

fn render_header(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut spans = vec![Span::styled(" kiln ", theme.title)];
    for (i, screen) in Screen::ALL.iter().enumerate() {
        let style = if *screen == app.screen {
            theme.tab_active
        } else {
            theme.tab
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(format!("{} {}", i + 1, screen.title()), style));
    }
    let (state, style) = match &app.connection {
        Connection::Connecting => ("… connecting", theme.muted),
        Connection::Live => ("● live", theme.ok),
        Connection::Polling => ("○ polling", theme.warn),
        Connection::Down(_) if app.remote() => ("✕ unreachable", theme.error),
        Connection::Down(_) => ("✕ kilnd down", theme.error),
    };
    let context = format!("⎈ {}", app.context);
    let width = context.chars().count() + 2 + state.chars().count();
    let right = Line::from(vec![
        Span::styled(context, theme.title),
        Span::raw("  "),
        Span::styled(state, style),
    ]);
    let [left, right_area] = Layout::horizontal([
        Constraint::Min(0),
        Constraint::Length(u16::try_from(width).unwrap_or(u16::MAX)),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
    frame.render_widget(Paragraph::new(right.right_aligned()), right_area);
}

fn render_status(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let readonly = if app.readonly { " [read-only] " } else { "" };
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(readonly.chars().count() as u16)]).areas(area);
    let line = if let Some(text) = &app.filter_input {
        Line::from(vec![Span::styled("/", theme.key), Span::raw(format!("{text}▏"))])
    } else if let Some(m) = &app.message {
        Line::styled(format!(" {}", m.text), if m.error { theme.error } else { theme.status })
    } else if let Some(warning) = app.jobs.layer_warning() {
        Line::styled(format!(" {warning}"), theme.error)
    } else {
        hints(app)
    };
    frame.render_widget(Paragraph::new(line), left);
    frame.render_widget(Paragraph::new(Span::styled(readonly, theme.warn)), right);
}

/// Key hints for the current screen, from the live keymap.
fn hints(app: &App) -> Line<'static> {
    let mut actions = vec![Action::Help, Action::Palette];
    actions.extend(match app.screen {
        Screen::Models if app.models.focus == ModelsFocus::Matrix => {
            vec![Action::Select, Action::Hardest, Action::Disagree, Action::Back]
        }
        Screen::Models if app.models.focus.drilled() => vec![
            Action::Select,
            Action::ToggleSmoothing,
            Action::Hardest,
            Action::Disagree,
            Action::Back,
        ],
        Screen::Models => vec![
            Action::Filter,
            Action::Deploy,
            Action::MarkCompare,
            Action::Overlay,
            Action::NewTraining,
        ],
        Screen::Jobs => vec![
            Action::Filter,
            Action::NewTraining,
            Action::CancelJob,
            Action::ToggleLayers,
            Action::ToggleSmoothing,
        ],
        Screen::Gpu => vec![Action::Filter, Action::NextScreen],
        Screen::Serving if app.serving.current_canary().is_some() => vec![
            Action::Filter,
            Action::TryRequest,
            Action::Rollback,
            Action::Promote,
            Action::AbortCanary,
        ],
        Screen::Serving => vec![Action::Filter, Action::TryRequest, Action::Rollback],
        Screen::Contexts => vec![Action::Select, Action::Refresh],
        Screen::Studies => vec![
            Action::FocusNext,
            Action::ToggleSmoothing,
            Action::Promote,
            Action::CancelJob,
            Action::NewTraining,
        ],
    });
    actions.push(Action::Quit);
    let mut spans = vec![Span::raw(" ")];
    for a in actions {
        spans.push(Span::styled(app.keymap.hint(a), app.theme.key));
        spans.push(Span::styled(
            format!(" {}  ", short_name(app.screen, a)),
            app.theme.status,
        ));
    }
    Line::from(spans)
}

/// What a key does on `screen`, in a word or two.
fn short_name(screen: Screen, action: Action) -> &'static str {
    match (screen, action) {
        (Screen::Studies, Action::FocusNext) => "pane",
        (Screen::Studies, Action::ToggleSmoothing) => "sort",
        (Screen::Studies, Action::CancelJob) => "stop",
        (Screen::Studies, Action::NewTraining) => "new study",
        (Screen::Models, Action::Overlay) => "optimize",
        (Screen::Models, Action::ToggleSmoothing) => "sort",
        (Screen::Serving, Action::AbortCanary) => "abort",
        (Screen::Contexts, Action::Select) => "switch",
        (_, other) => short_action(other),
    }
}

fn short_action(action: Action) -> &'static str {
    match action {
        Action::Palette => "command",
        Action::Select => "open",
        Action::NewTraining => "train",
        Action::CancelJob => "cancel",
        Action::ToggleSmoothing => "smooth",
        Action::ToggleLogY => "log-y",
        Action::TryRequest => "test",
        Action::NextScreen => "screen",
        other => other.name(),
    }
}
