//! Contexts in the console: the header naming the context, `:ctx` / `:ctx NAME` (unknown
//! names, `local`, a known name), what a switch resets and keeps, messages of a connection the
//! console has left, the banner of a dropped tunnel, and the contexts screen drawn from a few
//! surveys.

use insta::assert_snapshot;
use ratatui::crossterm::event::KeyCode;

use super::{app, draw, feed, key, keys, populated};
use crate::tui::action::{Action, Effect, Screen};
use crate::tui::app::{App, Connection};
use crate::tui::event::{DaemonMsg, Event};
use crate::tui::state::contexts::ContextEntry;
use crate::tui::ui::banner_text;
use kiln_core::context::ContextStatus;

fn entry(name: &str, ssh: &str) -> ContextEntry {
    ContextEntry {
        name: name.to_owned(),
        ssh: Some(ssh.to_owned()),
    }
}

/// A console that knows `a100-1` and `lab` besides this box.
fn with_contexts(mut app: App) -> App {
    app.contexts
        .set_entries(Ok(vec![entry("a100-1", "me@gpu-a100-1"), entry("lab", "-p 2222 lab")]));
    app
}

/// Types `:TEXT` and enter.
fn command(app: &mut App, text: &str) -> Vec<Effect> {
    key(app, KeyCode::Char(':'));
    keys(app, text);
    key(app, KeyCode::Enter)
}

/// A message of the connection of `generation`.
fn stamped(generation: u64, msg: DaemonMsg) -> Event {
    Event::Stamped {
        generation,
        msg: Box::new(msg),
    }
}

/// Switched to `a100-1`, its session open and its event stream live.
fn on_a100() -> App {
    let mut app = with_contexts(populated());
    command(&mut app, "ctx a100-1");
    app.update(stamped(1, DaemonMsg::ContextOpened { name: "a100-1".into() }));
    app.update(stamped(1, DaemonMsg::Connected { live: true }));
    app
}

fn header(screen: &str) -> &str {
    screen.lines().next().unwrap_or_default()
}

#[test]
fn the_header_names_the_context_local_by_default() {
    let mut app = app();
    feed(&mut app, vec![DaemonMsg::Connected { live: true }]);
    let screen = draw(&app, 100, 24);
    assert!(header(&screen).contains("⎈ local  ● live"), "{screen}");
    let screen = draw(&on_a100(), 100, 24);
    assert!(header(&screen).contains("⎈ a100-1  ● live"), "{screen}");
}

#[test]
fn snapshot_header_on_a_context_80x24() {
    let mut app = on_a100();
    feed(&mut app, vec![DaemonMsg::Models(Default::default())]);
    let screen = draw(&app, 80, 24);
    assert!(header(&screen).contains("6 Contexts"), "{screen}");
    assert_snapshot!(screen);
}

#[test]
fn ctx_with_an_unknown_name_lists_the_known_contexts() {
    let mut app = with_contexts(populated());
    let effects = command(&mut app, "ctx nope");
    assert!(effects.is_empty(), "{effects:?}");
    let message = app.message.clone().unwrap_or_else(|| panic!("no message"));
    assert!(message.error);
    assert_eq!(message.text, "unknown context 'nope' (known: local, a100-1, lab)");
    assert_eq!(app.context, "local");
    assert!(app.models.list.is_some(), "nothing was reset");
}

#[test]
fn ctx_name_resets_what_the_old_box_showed_and_asks_the_loop_to_switch() {
    let mut app = with_contexts(populated());
    app.readonly = true;
    key(&mut app, KeyCode::Char('2'));
    let effects = command(&mut app, "ctx a100-1");
    assert_eq!(
        effects,
        vec![Effect::SwitchContext {
            name: "a100-1".into(),
            generation: 1
        }]
    );
    assert_eq!((app.context.as_str(), app.generation), ("a100-1", 1));
    assert!(
        app.models.list.is_none() && app.jobs.jobs.is_none(),
        "models and jobs are forgotten"
    );
    assert!(app.gpu.samples.is_empty() && app.serving.deployments.is_none());
    assert_eq!(app.connection, Connection::Connecting);
    assert!(app.readonly, "read-only survives the switch");
    assert_eq!(app.screen, Screen::Jobs, "the screen stays");
    assert_eq!(
        app.contexts.names(),
        ["local", "a100-1", "lab"],
        "the contexts screen stays"
    );
    let shown = draw(&app, 80, 24);
    assert!(shown.contains("connecting to a100-1 over ssh…"), "{shown}");
    assert!(header(&shown).contains("⎈ a100-1"), "{shown}");
}

#[test]
fn ctx_local_goes_back_to_this_box_and_ctx_alone_lists_the_contexts() {
    let mut app = on_a100();
    let effects = command(&mut app, "ctx local");
    assert_eq!(
        effects,
        vec![Effect::SwitchContext {
            name: "local".into(),
            generation: 2
        }]
    );
    assert_eq!(app.context, "local");
    assert_eq!(banner_text(&app), None, "no ssh banner for this box");
    let effects = command(&mut app, "ctx local");
    assert!(effects.is_empty());
    assert_eq!(
        app.message.as_ref().map(|m| m.text.as_str()),
        Some("already on context local")
    );
    let effects = command(&mut app, "ctx");
    assert_eq!(app.screen, Screen::Contexts);
    assert_eq!(effects, vec![Effect::SurveyContexts]);
}

#[test]
fn messages_of_a_connection_the_console_left_are_dropped() {
    let mut app = with_contexts(populated());
    command(&mut app, "ctx a100-1");
    let effects = app.update(stamped(0, crate::tui::tests::fixtures::models()));
    assert!(effects.is_empty());
    assert!(app.models.list.is_none(), "the old box's models must not show");
    app.update(stamped(1, crate::tui::tests::fixtures::models()));
    assert!(app.models.list.is_some(), "the new box's do");
}

#[test]
fn an_opened_session_is_attached_and_a_failed_one_shows_in_the_banner() {
    let mut app = with_contexts(populated());
    command(&mut app, "ctx a100-1");
    let problem = "context a100-1: ssh me@gpu-a100-1 failed: Connection refused";
    app.update(stamped(
        1,
        DaemonMsg::ContextUnreachable {
            name: "a100-1".into(),
            problem: problem.into(),
        },
    ));
    assert_eq!(
        banner_text(&app).as_deref(),
        Some(" context a100-1: ssh me@gpu-a100-1 failed: Connection refused; reconnecting (data may be stale)")
    );
    let effects = app.update(stamped(1, DaemonMsg::ContextOpened { name: "a100-1".into() }));
    assert_eq!(
        effects,
        vec![Effect::AttachContext {
            name: "a100-1".into(),
            generation: 1
        }]
    );
    let effects = app.update(stamped(1, DaemonMsg::Connected { live: true }));
    assert!(effects.contains(&Effect::Request(crate::tui::request::Request::Models)));
    assert_eq!(banner_text(&app), None);
}

#[test]
fn a_dropped_tunnel_says_so_in_the_banner_not_kilnd_down() {
    let mut app = on_a100();
    let reason = "context a100-1: kilnd did not answer through the tunnel (cannot talk to kilnd: connection \
                  refused); reconnecting";
    feed(&mut app, vec![DaemonMsg::Disconnected(reason.into())]);
    let banner = banner_text(&app).unwrap_or_default();
    assert_eq!(
        banner,
        " context a100-1: kilnd did not answer through the tunnel (cannot talk to kilnd: connection refused); \
         reconnecting (data may be stale)"
    );
    // The first failure of a stream may not name the context: the banner does.
    feed(&mut app, vec![DaemonMsg::Disconnected("the event stream ended".into())]);
    assert_eq!(
        banner_text(&app).as_deref(),
        Some(" context a100-1: the event stream ended; reconnecting (data may be stale)")
    );
    let screen = draw(&app, 100, 24);
    assert!(header(&screen).contains("⎈ a100-1  ✕ unreachable"), "{screen}");
    assert!(!screen.contains("kilnd down"), "{screen}");
    let effects = feed(&mut app, vec![DaemonMsg::Connected { live: true }]);
    assert_eq!(banner_text(&app), None, "the banner clears once it is back");
    assert!(!effects.is_empty(), "and the data refreshes");
}

/// The contexts screen with three surveys answered: this box (with GPUs, the current one),
/// a reachable box without GPUs, and one whose ssh fails.
fn surveyed() -> App {
    let mut app = with_contexts(app());
    app.contexts.set_entries(Ok(vec![
        entry("a100-1", "me@gpu-a100-1"),
        entry("lab", "-p 2222 lab"),
        entry("spare", "spare"),
    ]));
    feed(&mut app, vec![DaemonMsg::Connected { live: true }]);
    key(&mut app, KeyCode::Char('6'));
    let statuses = [
        ContextStatus {
            name: "local".into(),
            reachable: true,
            kiln: Some("0.1.0".into()),
            pid: Some(4242),
            home: Some("/home/me/.local/share/kiln".into()),
            running_jobs: 1,
            gpus: 2,
            gpu_utilization_pct: Some(45.4),
            deployments: 1,
            ..ContextStatus::default()
        },
        ContextStatus {
            name: "a100-1".into(),
            ssh: Some("me@gpu-a100-1".into()),
            reachable: true,
            kiln: Some("0.1.0".into()),
            pid: Some(77),
            home: Some("/data/kiln".into()),
            running_jobs: 3,
            gpus: 8,
            gpu_utilization_pct: Some(97.0),
            deployments: 2,
            ..ContextStatus::default()
        },
        ContextStatus {
            name: "lab".into(),
            ssh: Some("-p 2222 lab".into()),
            problem: Some("context lab: ssh lab failed: ssh: connect to host lab port 2222: Connection refused".into()),
            ..ContextStatus::default()
        },
    ];
    feed(&mut app, statuses.into_iter().map(DaemonMsg::ContextSurveyed).collect());
    app
}

#[test]
fn snapshot_contexts_screen_100x24() {
    let mut app = surveyed();
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    let screen = draw(&app, 100, 24);
    assert!(screen.contains("2 × 45%") && screen.contains("8 × 97%"), "{screen}");
    assert!(screen.contains("… surveying"), "spare has not answered yet: {screen}");
    assert_snapshot!(screen);
}

#[test]
fn snapshot_contexts_screen_80x24() {
    assert_snapshot!(draw(&surveyed(), 80, 24));
}

#[test]
fn the_contexts_screen_surveys_on_its_ticks_and_enter_switches() {
    let mut app = surveyed();
    assert!(feed(&mut app, vec![DaemonMsg::SurveyTick]) == vec![Effect::SurveyContexts]);
    let effects = key(&mut app, KeyCode::Enter);
    assert!(effects.is_empty(), "enter on the current context switches nothing");
    key(&mut app, KeyCode::Char('j'));
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        vec![Effect::SwitchContext {
            name: "a100-1".into(),
            generation: 1
        }]
    );
    assert_eq!(
        app.screen,
        Screen::Models,
        "a switch from the contexts screen shows the new box's models"
    );
    assert_eq!(
        app.contexts.rows[1].status.as_ref().map(|s| s.gpus),
        Some(8),
        "surveys are kept"
    );
    key(&mut app, KeyCode::Char('1'));
    assert!(
        feed(&mut app, vec![DaemonMsg::SurveyTick]).is_empty(),
        "no surveys off the screen"
    );
}

#[test]
fn a_listing_keeps_the_surveys_of_the_contexts_it_still_names() {
    let mut app = surveyed();
    feed(
        &mut app,
        vec![DaemonMsg::ContextsListed(Ok(vec![entry("a100-1", "me@gpu-a100-1")]))],
    );
    assert_eq!(app.contexts.names(), ["local", "a100-1"]);
    assert!(app.contexts.rows.iter().all(|r| r.status.is_some()));
    feed(
        &mut app,
        vec![DaemonMsg::ContextsListed(Err("config.toml: bad".into()))],
    );
    assert_eq!(
        app.contexts.names(),
        ["local", "a100-1"],
        "a broken file keeps the last list"
    );
    command(&mut app, "ctx lab");
    let message = app.message.clone().map(|m| m.text).unwrap_or_default();
    assert_eq!(
        message,
        "unknown context 'lab' (known: local, a100-1); config.toml: config.toml: bad"
    );
}

#[test]
fn the_palette_offers_ctx_and_the_contexts_and_the_help_names_them() {
    use crate::tui::dialogs::palette_choices;
    let contexts = ["local", "a100-1", "lab"];
    assert!(palette_choices("", &contexts).contains("ctx NAME"));
    assert_eq!(palette_choices("ctx ", &contexts), "contexts: local a100-1 lab");
    assert_eq!(palette_choices("ctx l", &contexts), "contexts: local lab");
    assert!(palette_choices("ctx x", &contexts).starts_with("no such context"));
    assert!(Action::Palette.help().contains(":ctx"));
    assert_eq!(Action::from_name("contexts"), Some(Action::ShowContexts));
    let mut app = app();
    key(&mut app, KeyCode::Char('?'));
    let help = draw(&app, 120, 60);
    assert!(help.contains(":ctx NAME") && help.contains("contexts screen"), "{help}");
}
