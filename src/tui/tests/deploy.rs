//! The deploy dialog (modes, gate figures, final confirm, force) and the shadow's panel on the
//! serving screen, without a terminal or a daemon.

use insta::assert_snapshot;
use ratatui::crossterm::event::KeyCode;
use serde_json::{Value, json};

use super::fixtures::{decode, name};
use super::{app, draw, feed, fixtures, key, keys, populated};
use crate::tui::action::Effect;
use crate::tui::app::{App, Overlay};
use crate::tui::deploy::{DeployMode, Gates};
use crate::tui::event::DaemonMsg;
use crate::tui::request::Request;
use kiln_core::api::GateResult;
use kiln_core::client::ClientError;
use kiln_core::deploy::CanarySpec;

/// fmnist-cnn@2 in force (the fixtures' production alias), so the newest, v3, is the candidate.
fn v2_in_force() -> DaemonMsg {
    DaemonMsg::Deployments(decode(json!({
        "inference_address": "127.0.0.1:8000", "ready": true, "problems": [],
        "deployments": [{ "model": "fmnist-cnn", "version": 2, "since": "2026-11-29T16:02:00Z",
                          "batching": { "max_batch": 64, "max_delay_us": 2000, "queue": 256 },
                          "stats": { "requests": 1200, "errors": 0, "req_per_s": 120.5, "p50_ms": 0.41,
                                     "p99_ms": 1.9, "queue_depth": 0 } }],
    })))
}

fn check(name: &str, outcome: &str, detail: &str) -> Value {
    json!({ "name": name, "outcome": outcome, "detail": detail })
}

/// What the gates of fmnist-cnn@`version` found against `current`: golden `golden`, latency passed.
fn gates(version: u32, current: Option<u32>, golden: &str) -> DaemonMsg {
    let (checks, current_figures, agreement) = match current {
        Some(c) => (
            vec![
                check(
                    "golden",
                    golden,
                    "accuracy 0.912 vs 0.902 in force (+1.0 pt), macro-F1 0.910 vs 0.900",
                ),
                check(
                    "latency",
                    "passed",
                    "p99 0.41 ms vs 0.40 ms in force (1.03x, limit 1.25x)",
                ),
            ],
            json!({ "version": c, "accuracy": 0.902, "macro_f1": 0.90, "p99_ms": 0.40 }),
            json!(0.973),
        ),
        None => (
            vec![
                check("golden", "skipped", "nothing in force to compare with"),
                check("latency", "skipped", "nothing in force to compare with"),
            ],
            Value::Null,
            Value::Null,
        ),
    };
    let result: GateResult = decode(json!({
        "model": "fmnist-cnn", "version": version, "current": current, "passed": golden != "failed",
        "report": { "checks": checks, "data": "fashion-mnist test", "rows": 1000,
                    "candidate": { "version": version, "accuracy": 0.912, "macro_f1": 0.91, "p99_ms": 0.41 },
                    "current": current_figures, "agreement": agreement, "seconds": 2.1 },
    }));
    DaemonMsg::Gates(Box::new(result))
}

/// The populated console with v2 in force and `d` pressed on the newest version, v3.
fn dialog_open() -> (App, Vec<Effect>) {
    let mut app = populated();
    feed(&mut app, vec![v2_in_force()]);
    key(&mut app, KeyCode::Enter);
    let effects = key(&mut app, KeyCode::Char('d'));
    (app, effects)
}

fn dialog(app: &App) -> &crate::tui::deploy::DeployDialog {
    match &app.overlay {
        Some(Overlay::Deploy(d)) => d,
        other => panic!("expected the deploy dialog, got {other:?}"),
    }
}

fn deploy(version: u32, canary: Option<CanarySpec>, force: bool) -> Vec<Effect> {
    vec![Effect::Request(Request::Deploy {
        model: name("fmnist-cnn"),
        version,
        canary,
        force,
    })]
}

fn message(app: &App) -> String {
    app.message.as_ref().map(|m| m.text.clone()).unwrap_or_default()
}

fn journal(action: &str, candidate: u32) -> DaemonMsg {
    DaemonMsg::JournalEntry(decode(json!({
        "time": "2026-11-29T17:00:00Z", "model": "fmnist-cnn", "from": 2, "to": 2, "action": action,
        "candidate": candidate, "reason": "",
        "gates": { "checks": [check("golden", "passed", ""), check("latency", "passed", "")], "rows": 1000,
                   "candidate": { "version": candidate }, "seconds": 2.0 },
    })))
}

#[test]
fn d_opens_the_dialog_and_asks_for_the_gates() {
    let (app, effects) = dialog_open();
    let gates = Request::CheckGates {
        model: name("fmnist-cnn"),
        version: 3,
    };
    assert_eq!(effects, vec![Effect::Request(gates)]);
    let d = dialog(&app);
    assert_eq!((d.version, d.current, d.mode), (3, Some(2), DeployMode::Switch));
    assert_eq!(d.gates, Gates::Running);
    let screen = draw(&app, 80, 24);
    for text in [
        "Deploy fmnist-cnn@3, replacing fmnist-cnn@2 in production?",
        "› switch now",
        "canary 10%",
        "shadow",
        "running the gates…",
        "enter/y yes (once the gates pass)",
    ] {
        assert!(screen.contains(text), "{text:?} missing:\n{screen}");
    }
}

#[test]
fn the_gate_figures_are_shown_and_enter_starts_a_canary() {
    let (mut app, _) = dialog_open();
    assert!(feed(&mut app, vec![gates(3, Some(2), "passed")]).is_empty());
    let screen = draw(&app, 80, 24);
    for text in [
        "gates · fashion-mnist test · 1,000 rows · 2.1s",
        "golden    passed    accuracy 0.912 vs 0.902",
        "latency   passed    p99 0.41 ms",
        "v3 candidate   v2 in force",
        "accuracy     0.9120         0.9020",
        "97.3% of 1,000 rows",
        "enter/y yes · ↑↓ mode · esc/n no",
    ] {
        assert!(screen.contains(text), "{text:?} missing:\n{screen}");
    }
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(dialog(&app).mode, DeployMode::Canary);
    let canary = CanarySpec {
        percent: 10.0,
        shadow: false,
        seconds: None,
        requests: None,
    };
    assert_eq!(key(&mut app, KeyCode::Enter), deploy(3, Some(canary), false));
    assert_eq!(app.overlay, None);
    assert_eq!(message(&app), "starting a canary of fmnist-cnn@3 (10% of requests)…");

    let effects = feed(&mut app, vec![journal("canary", 3)]);
    assert!(effects.contains(&Effect::Request(Request::Canaries)), "{effects:?}");
    assert_eq!(
        message(&app),
        "canary of fmnist-cnn@3 started: 10% of requests · gates: golden passed, latency passed"
    );
}

#[test]
fn a_shadow_asks_for_a_copy_of_every_request() {
    let (mut app, _) = dialog_open();
    feed(&mut app, vec![gates(3, Some(2), "passed")]);
    keys(&mut app, "jjj");
    assert_eq!(
        dialog(&app).mode,
        DeployMode::Shadow,
        "the choice stops at the last mode"
    );
    let shadow = CanarySpec {
        percent: 100.0,
        shadow: true,
        seconds: None,
        requests: None,
    };
    assert_eq!(key(&mut app, KeyCode::Char('y')), deploy(3, Some(shadow), false));
    feed(&mut app, vec![journal("shadow", 3)]);
    assert!(
        message(&app).starts_with("shadow of fmnist-cnn@3 started"),
        "{}",
        message(&app)
    );
}

#[test]
fn a_failed_gate_refuses_enter_and_only_the_force_key_deploys() {
    let (mut app, _) = dialog_open();
    feed(&mut app, vec![gates(3, Some(2), "failed")]);
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "enter does not deploy");
    assert!(dialog(&app).refused);
    let screen = draw(&app, 80, 24);
    for text in [
        "golden    failed",
        "enter refused: a gate failed, nothing was deployed",
        "f force it (kilnd journals the override)",
    ] {
        assert!(screen.contains(text), "{text:?} missing:\n{screen}");
    }
    assert!(!screen.contains("enter/y yes"), "{screen}");
    assert_eq!(key(&mut app, KeyCode::Char('f')), deploy(3, None, true));
    assert_eq!(message(&app), "deploying fmnist-cnn@3, forced past the failed gates…");
}

#[test]
fn the_force_key_does_nothing_while_the_gates_pass_or_run() {
    let (mut app, _) = dialog_open();
    assert!(key(&mut app, KeyCode::Char('f')).is_empty());
    feed(&mut app, vec![gates(3, Some(2), "passed")]);
    assert!(key(&mut app, KeyCode::Char('f')).is_empty());
    assert!(matches!(app.overlay, Some(Overlay::Deploy(_))));
}

#[test]
fn enter_before_the_gates_answer_deploys_once_they_pass() {
    let (mut app, _) = dialog_open();
    key(&mut app, KeyCode::Down);
    assert!(
        key(&mut app, KeyCode::Enter).is_empty(),
        "nothing before the gates answer"
    );
    assert!(draw(&app, 80, 24).contains("deploys as soon as the gates pass"));
    let canary = DeployMode::Canary.canary_spec();
    assert_eq!(
        feed(&mut app, vec![gates(3, Some(2), "passed")]),
        deploy(3, canary, false)
    );
    assert_eq!(app.overlay, None);

    // Failed gates that enter was waiting for refuse it instead.
    let (mut app, _) = dialog_open();
    key(&mut app, KeyCode::Enter);
    assert!(feed(&mut app, vec![gates(3, Some(2), "failed")]).is_empty());
    assert!(dialog(&app).refused);
}

#[test]
fn a_first_deploy_can_only_switch() {
    let mut app = app();
    let detail = json!({
        "record": { "name": "ratings-mf", "task": "recommendation", "created_at": "2026-11-29T10:00:00Z" },
        "versions": [fixtures::manifest("ratings-mf", 1, 0.8, None)], "aliases": {},
    });
    feed(
        &mut app,
        vec![fixtures::models(), DaemonMsg::ModelDetail(decode(detail))],
    );
    keys(&mut app, "jl");
    key(&mut app, KeyCode::Char('d'));
    assert_eq!(dialog(&app).current, None);
    let screen = draw(&app, 80, 24);
    assert!(screen.contains("Deploy ratings-mf@1 to production?"), "{screen}");
    assert_eq!(
        screen.matches("needs a version in force (first deploy)").count(),
        2,
        "canary and shadow disabled:\n{screen}"
    );
    keys(&mut app, "jj");
    assert_eq!(dialog(&app).mode, DeployMode::Switch, "disabled modes are skipped");
    let gates = match gates(1, None, "passed") {
        DaemonMsg::Gates(mut g) => {
            g.model = name("ratings-mf");
            DaemonMsg::Gates(g)
        }
        other => other,
    };
    feed(&mut app, vec![gates]);
    assert!(draw(&app, 80, 24).contains("golden    skipped   nothing in force"));
    let expected = Request::Deploy {
        model: name("ratings-mf"),
        version: 1,
        canary: None,
        force: false,
    };
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Request(expected)]);
}

#[test]
fn gates_that_kilnd_cannot_run_ahead_leave_a_plain_deploy() {
    let (mut app, _) = dialog_open();
    let not_found = ClientError::Http {
        status: 404,
        message: "no such route".into(),
    };
    let failed = DaemonMsg::Failed {
        request: Request::CheckGates {
            model: name("fmnist-cnn"),
            version: 3,
        },
        error: not_found,
    };
    feed(&mut app, vec![failed]);
    assert_eq!(app.message, None, "said in the dialog, not the status line");
    let screen = draw(&app, 80, 24);
    for text in [
        "this kilnd cannot run the gates ahead",
        "enter deploys; kilnd runs the gates itself",
    ] {
        assert!(screen.contains(text), "{text:?} missing:\n{screen}");
    }
    assert_eq!(key(&mut app, KeyCode::Enter), deploy(3, None, false));
}

#[test]
fn esc_cancels_and_stale_answers_are_ignored() {
    let (mut app, _) = dialog_open();
    assert!(key(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(app.overlay, None);
    assert_eq!(message(&app), "not deployed");
    assert!(feed(&mut app, vec![gates(3, Some(2), "passed")]).is_empty());
    assert_eq!(app.overlay, None, "gates arriving after esc open nothing");

    let (mut app, _) = dialog_open();
    feed(&mut app, vec![gates(1, Some(2), "failed")]);
    assert_eq!(
        dialog(&app).gates,
        Gates::Running,
        "another version's gates are not these"
    );
}

#[test]
fn snapshot_deploy_dialog_gates_passed_80x24() {
    let (mut app, _) = dialog_open();
    feed(&mut app, vec![gates(3, Some(2), "passed")]);
    key(&mut app, KeyCode::Down);
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_deploy_dialog_gate_failed_80x24() {
    let (mut app, _) = dialog_open();
    feed(&mut app, vec![gates(3, Some(2), "failed")]);
    key(&mut app, KeyCode::Enter);
    assert_snapshot!(draw(&app, 80, 24));
}

/// A shadow of fmnist-cnn: v4 answers copies of v3's requests; `progress` of its window gone.
fn shadow(progress: f64, skipped: u64) -> DaemonMsg {
    DaemonMsg::Canaries(decode(json!([
        { "model": "fmnist-cnn", "stable": 3, "candidate": 4, "percent": 100.0, "since": "2026-11-29T17:10:00Z",
          "stable_requests": 1300, "stable_errors": 0, "candidate_requests": 1290, "candidate_errors": 0,
          "stable_p99_ms": 1.9, "candidate_p99_ms": 2.05, "progress": progress, "shadow": true,
          "compared": 1234, "disagreements": 40, "skipped": skipped },
    ])))
}

#[test]
fn a_shadow_shows_its_disagreement_and_waits_at_the_end_of_its_window() {
    let mut app = populated();
    feed(&mut app, vec![shadow(0.4, 0)]);
    key(&mut app, KeyCode::Char('4'));
    let screen = draw(&app, 80, 24);
    for text in [
        "shadow fmnist-cnn v3→v4 · since",
        "40% of the window",
        "disagreement 3.2% of 1,234 rows",
        "p99 1.90ms",
        "p99 2.05ms",
    ] {
        assert!(screen.contains(text), "{text:?} missing:\n{screen}");
    }
    assert!(
        !screen.contains("to promotion") && !screen.contains("skipped"),
        "{screen}"
    );

    feed(&mut app, vec![shadow(1.0, 12)]);
    let screen = draw(&app, 80, 24);
    for text in ["window over: p promote · a abort", "12 copies skipped"] {
        assert!(screen.contains(text), "{text:?} missing:\n{screen}");
    }
    let entry = DaemonMsg::JournalEntry(decode(json!({
        "time": "2026-11-29T17:20:00Z", "model": "fmnist-cnn", "from": 3, "to": 3, "action": "abort",
        "candidate": 4, "reason": "aborted by operator",
    })));
    feed(&mut app, vec![entry]);
    assert_eq!(message(&app), "shadow ended, in force: fmnist-cnn@3");
}

#[test]
fn snapshot_serving_shadow_window_over_80x24() {
    let mut app = populated();
    feed(&mut app, vec![shadow(1.0, 12)]);
    key(&mut app, KeyCode::Char('4'));
    assert_snapshot!(draw(&app, 80, 24));
}
