//! Console tests without a terminal or a daemon: `update` driven by events (`update.rs`,
//! `studies.rs` for the studies screen, `compression.rs` for the optimize form and the
//! compression reports, `deploy.rs` for the deploy dialog and the shadow panel, `epochs.rs`
//! for promoting from the curve, `inspect.rs` for the drill-down into an evaluation,
//! `layers.rs` for the layers pane, `contexts.rs` for contexts and their screen),
//! and every screen and dialog rendered into a ratatui `TestBackend` and compared with insta
//! snapshots (`snapshots.rs`, files in `snapshots/`; review changes with `cargo insta review`
//! or by reading the diff).

mod compression;
mod contexts;
mod deploy;
mod epochs;
mod fixtures;
mod inspect;
mod layers;
mod snapshots;
mod studies;
mod update;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::tui::action::Effect;
use crate::tui::app::App;
use crate::tui::event::{DaemonMsg, Event};
use crate::tui::keymap::Keymap;
use crate::tui::theme::Theme;

pub(crate) fn app() -> App {
    App::new(Theme::default(), Keymap::default(), false)
}

pub(crate) fn feed(app: &mut App, msgs: Vec<DaemonMsg>) -> Vec<Effect> {
    msgs.into_iter().flat_map(|m| app.update(Event::from(m))).collect()
}

pub(crate) fn populated() -> App {
    let mut app = app();
    feed(
        &mut app,
        vec![
            DaemonMsg::Connected { live: true },
            fixtures::models(),
            fixtures::detail(),
            fixtures::signatures(),
            fixtures::version3(),
            fixtures::report(),
            fixtures::jobs(),
            fixtures::metrics("j1764434400-ab12", 70),
            fixtures::log("j1764434400-ab12"),
            fixtures::telemetry(true),
            fixtures::deployments(),
            fixtures::journal(),
        ],
    );
    app
}

pub(crate) fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

pub(crate) fn keys(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| key(app, KeyCode::Char(c))).collect()
}

pub(crate) fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(e) => panic!("test backend: {e}"),
    };
    if let Err(e) = terminal.draw(|f| crate::tui::ui::render(f, app)) {
        panic!("draw failed: {e}");
    }
    terminal.backend().to_string()
}
