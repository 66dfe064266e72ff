//! kiln's console: a keyboard-driven terminal UI over kilnd's control API and event stream.
//!
//! ```text
//!  input thread ──Key/Resize──┐
//!  SSE task ─────DaemonMsg────┤
//!  request tasks ─DaemonMsg───┼──▶ one channel ──▶ App::update ──▶ Effects ──▶ requests, contexts (Link)
//!  session, surveys ─DaemonMsg┘                        │                        theme loads, quit
//!                                                      └──▶ render(&App) when something changed
//! ```
//!
//! The kilnd it shows is this box's, or a context's reached over ssh (`kiln --context NAME`,
//! `:ctx NAME`): [`link::Link`] owns that connection and switches it.
//!
//! `kiln` with no subcommand runs [`main`]. The terminal is restored on every exit path,
//! and on panic (ratatui's hook). Nothing here links libtorch; all data comes from kilnd, as
//! the `kiln_core::api` types the daemon serves, held and rendered as they are.

pub mod action;
pub mod app;
pub mod client;
pub mod config;
pub mod deploy;
mod deploy_dialog;
pub mod dialogs;
pub mod event;
pub mod form;
pub mod graphics;
mod inspect;
pub mod keymap;
mod keys;
pub mod link;
mod ops;
pub mod request;
pub mod screens;
pub mod series;
pub mod state;
mod switch;
pub mod theme;
pub mod ui;
pub mod widgets;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ratatui::DefaultTerminal;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use action::Effect;
use app::App;
use config::Config;
use event::Event;
use keymap::Keymap;
use link::Link;
use theme::Theme;

/// Console options from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Theme name or `.toml` path; overrides the config file.
    pub theme: Option<String>,
    /// Disable every mutating action.
    pub readonly: bool,
    /// Open on this context (a `[contexts.NAME]` of config.toml) instead of this box's kilnd.
    pub context: Option<String>,
}

/// Runs the console until the user quits.
pub fn main(options: Options) -> ExitCode {
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the initial state from config and options; start-up problems go to the status line.
pub fn build_app(options: &Options, config_dir: Option<&Path>) -> App {
    let (config, config_problem) = Config::load(config_dir);
    let mut problems: Vec<String> = config_problem.into_iter().collect();
    let mut keymap = Keymap::default();
    problems.extend(keymap.apply_overrides(&config.keymap));
    let name = options
        .theme
        .clone()
        .or(config.theme)
        .unwrap_or_else(|| "dark".to_owned());
    let theme = Theme::load(&name, config_dir).unwrap_or_else(|e| {
        problems.push(e.to_string());
        Theme::default()
    });
    let mut app = App::new(theme, keymap, options.readonly);
    if !problems.is_empty() {
        app.complain(problems.join("; "));
    }
    app
}

fn run(options: Options) -> anyhow::Result<()> {
    let home = kiln_core::home::kiln_home()?;
    let config_dir = config::config_dir();
    let mut app = build_app(&options, config_dir.as_deref());
    let link = Link::new(home, config_dir.clone());
    app.contexts.set_entries(link.list());
    if let Some(name) = options.context.filter(|n| !n.is_empty()) {
        app.context = name;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut terminal = ratatui::try_init()?;
    // Asked before the input thread starts reading the terminal, which answers on stdin.
    let setting = std::env::var(graphics::GRAPHICS_VAR).ok();
    let (graphics, problem) = graphics::Graphics::detect(setting.as_deref(), graphics::in_tmux());
    app.models.inspect.graphics = graphics;
    if let Some(problem) = problem {
        app.complain(problem);
    }
    let result = runtime.block_on(event_loop(&mut terminal, app, link, config_dir));
    ratatui::restore();
    runtime.shutdown_background();
    result
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    mut app: App,
    mut link: Link,
    config_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (tx, mut rx): (UnboundedSender<Event>, UnboundedReceiver<Event>) = unbounded_channel();
    event::spawn_input(tx.clone());
    event::spawn_signals(tx.clone());
    link::spawn_survey_ticks(tx.clone());
    link.switch(&app.context, app.generation, &tx);
    loop {
        if app.dirty {
            terminal.draw(|frame| ui::render(frame, &app))?;
            app.dirty = false;
        }
        let Some(first) = rx.recv().await else { return Ok(()) };
        let mut effects = app.update(first);
        while let Ok(more) = rx.try_recv() {
            effects.extend(app.update(more));
        }
        for effect in effects {
            match effect {
                Effect::Quit => return Ok(()),
                Effect::Request(request) => link.spawn(request, &tx),
                Effect::LoadTheme(name) => switch_theme(&mut app, &name, config_dir.as_deref()),
                Effect::SwitchContext { name, generation } => link.switch(&name, generation, &tx),
                Effect::AttachContext { name, generation } => link.attach(&name, generation, &tx),
                Effect::SurveyContexts => link.survey(&tx),
            }
        }
    }
}

fn switch_theme(app: &mut App, name: &str, config_dir: Option<&Path>) {
    match Theme::load(name, config_dir) {
        Ok(theme) => {
            app.say(format!("theme {}", theme.name));
            app.theme = theme;
        }
        Err(e) => app.complain(e.to_string()),
    }
    app.dirty = true;
}
