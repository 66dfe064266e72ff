//! `update` without a terminal: keys and daemon messages in, state and effects out.

use ratatui::crossterm::event::KeyCode;

use super::fixtures::{job_id, name};
use super::{app, feed, fixtures, key, keys, populated};
use crate::tui::action::{Effect, Pending, Screen};
use crate::tui::app::{Connection, Overlay};
use crate::tui::event::DaemonMsg;
use crate::tui::request::Request;
use crate::tui::state::models::ModelsFocus;
use kiln_core::api::{self, JobView, MetricsChunk};
use kiln_core::client::ClientError;
use kiln_core::kinds::{Arch, DataSource};
use kiln_core::registry::SignatureStatus;

#[test]
fn number_keys_and_tab_switch_screens() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('2'));
    assert_eq!(app.screen, Screen::Jobs);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.screen, Screen::Gpu);
    key(&mut app, KeyCode::BackTab);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.screen, Screen::Models);
}

#[test]
fn cancel_goes_through_a_confirm_dialog() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('2'));
    assert!(
        key(&mut app, KeyCode::Char('c')).is_empty(),
        "nothing is sent before confirming"
    );
    let pending = Pending::CancelJob {
        id: job_id("j1764434400-ab12"),
    };
    assert_eq!(app.overlay, Some(Overlay::Confirm(pending)));
    assert!(key(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(app.overlay, None);
    key(&mut app, KeyCode::Char('c'));
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        vec![Effect::Request(Request::CancelJob(job_id("j1764434400-ab12")))]
    );
}

#[test]
fn readonly_refuses_every_mutation_and_says_so() {
    let mut app = populated();
    app.readonly = true;
    key(&mut app, KeyCode::Char('d'));
    assert_eq!(app.overlay, None);
    let text = app.message.as_ref().map(|m| m.text.clone()).unwrap_or_default();
    assert!(text.contains("read-only"), "{text}");
    for (screen, k) in [('2', 'c'), ('2', 'n'), ('4', 'r'), ('1', 'e'), ('1', 'x')] {
        key(&mut app, KeyCode::Char(screen));
        key(&mut app, KeyCode::Char(k));
        assert_eq!(app.overlay, None, "{k} on screen {screen} must be refused");
    }
}

#[test]
fn deploy_opens_the_deploy_dialog_with_the_version_it_replaces() {
    let mut app = populated();
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.models.focus, ModelsFocus::Versions);
    let effects = key(&mut app, KeyCode::Char('d'));
    let gates = Request::CheckGates {
        model: name("fmnist-cnn"),
        version: 3,
    };
    assert_eq!(effects, vec![Effect::Request(gates)], "only the gates are asked for");
    let Some(Overlay::Deploy(dialog)) = &app.overlay else {
        panic!("expected the deploy dialog, got {:?}", app.overlay);
    };
    assert_eq!((dialog.version, dialog.current), (3, Some(3)));
}

#[test]
fn delete_asks_first_and_only_then_sends_the_request() {
    let mut app = populated();
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('x'));
    let expected = Pending::DeleteVersion {
        model: name("fmnist-cnn"),
        version: 3,
    };
    assert_eq!(app.overlay, Some(Overlay::Confirm(expected)));
    assert_eq!(key(&mut app, KeyCode::Esc), vec![], "esc cancels without a request");
    assert_eq!(app.overlay, None);
    key(&mut app, KeyCode::Char('x'));
    let effects = key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        effects,
        vec![Effect::Request(Request::DeleteVersion {
            model: name("fmnist-cnn"),
            version: 3
        })]
    );
}

#[test]
fn filter_narrows_models_and_versions_per_keystroke() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "mf");
    assert_eq!(app.models.visible.len(), 1);
    assert_eq!(app.models.current_model().map(|m| m.name.as_str()), Some("ratings-mf"));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.models.visible.len(), 2);
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "cnn@2");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.models.visible[0].versions, vec![2]);
    assert_eq!(app.filter_input, None);
}

#[test]
fn palette_switches_theme_screens_and_quits() {
    let mut app = populated();
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "theme light");
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::LoadTheme("light".into())]);
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "gpu");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen, Screen::Gpu);
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "q");
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Quit]);
}

#[test]
fn first_run_trains_a_cnn_and_jumps_to_jobs() {
    let mut app = app();
    feed(&mut app, vec![DaemonMsg::Models(Default::default())]);
    assert!(app.models.is_empty_registry());
    let effects = key(&mut app, KeyCode::Enter);
    let [Effect::Request(Request::SubmitJob(job))] = effects.as_slice() else {
        panic!("expected one submit, got {effects:?}");
    };
    let Some(train) = job.as_train() else {
        panic!("the first run trains: {job:?}");
    };
    assert_eq!((train.arch, &train.data), (Arch::Cnn, &DataSource::FashionMnist));
    let job: JobView = fixtures::decode(fixtures::job("j1764434999-beef", "queued", 0, 0));
    feed(&mut app, vec![DaemonMsg::Submitted(job)]);
    assert_eq!(app.screen, Screen::Jobs);
    assert_eq!(app.jobs.current().map(|j| j.id.as_str()), Some("j1764434999-beef"));
}

#[test]
fn reconnect_refetches_and_a_disconnect_only_sets_the_banner() {
    let mut app = populated();
    assert!(feed(&mut app, vec![DaemonMsg::Disconnected("connection refused".into())]).is_empty());
    assert_eq!(app.connection, Connection::Down("connection refused".into()));
    assert_eq!(app.models.visible.len(), 2, "stale data stays visible");
    let effects = feed(&mut app, vec![DaemonMsg::Connected { live: true }]);
    for r in [Request::Models, Request::Jobs, Request::Telemetry, Request::Deployments] {
        assert!(effects.contains(&Effect::Request(r.clone())), "{r:?} not refetched");
    }
}

#[test]
fn overlapping_metrics_are_not_counted_twice() {
    let mut app = populated();
    let id = job_id("j1764434400-ab12");
    let before = app.jobs.runs.get(&id).map(|r| r.train.len());
    feed(&mut app, vec![fixtures::metrics("j1764434400-ab12", 70)]);
    assert_eq!(app.jobs.runs.get(&id).map(|r| r.train.len()), before);
}

#[test]
fn missing_routes_become_states_not_errors() {
    let mut app = populated();
    let not_found = ClientError::Http {
        status: 404,
        message: "no such route".into(),
    };
    for request in [Request::Deployments, Request::Telemetry] {
        feed(
            &mut app,
            vec![DaemonMsg::Failed {
                request,
                error: not_found.clone(),
            }],
        );
    }
    assert!(app.serving.unavailable && app.gpu.unavailable);
    assert_eq!(app.message, None);
}

#[test]
fn launch_form_validates_before_sending() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('n'));
    for _ in 0..7 {
        key(&mut app, KeyCode::Down);
    }
    for _ in 0..12 {
        key(&mut app, KeyCode::Backspace);
    }
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    let Some(Overlay::Form(form)) = &app.overlay else {
        panic!("form closed")
    };
    assert!(form.error.as_deref().unwrap_or_default().contains("model name"));
    keys(&mut app, "mine");
    let effects = key(&mut app, KeyCode::Enter);
    assert!(
        matches!(effects.as_slice(), [Effect::Request(Request::SubmitJob(j))] if j.model().as_str() == "mine"),
        "{effects:?}"
    );
}

#[test]
fn a_termination_signal_quits_cleanly() {
    let mut app = populated();
    assert_eq!(app.update(crate::tui::event::Event::Terminate), vec![Effect::Quit]);
}

#[test]
fn help_text_wraps_on_words() {
    let lines = crate::tui::widgets::wrap_words("close the dialog / leave the pane", 12);
    assert_eq!(lines, vec!["close the", "dialog /", "leave the", "pane"]);
}

#[test]
fn pushed_metrics_wait_for_the_fetched_history() {
    let mut app = populated();
    let job = job_id("j1764430000-0001");
    let chunk = |from: u64, to: u64, pushed: bool| {
        let records: Vec<serde_json::Value> = (from..to)
            .map(|s| serde_json::json!({ "kind": "train", "step": s, "epoch": 0, "time": s as f64, "train_loss": 1.0 }))
            .collect();
        let chunk: MetricsChunk =
            fixtures::decode(serde_json::json!({ "job": job, "records": records, "next": to * 10 }));
        DaemonMsg::Metrics { chunk, pushed }
    };
    feed(&mut app, vec![chunk(50, 60, true)]);
    assert!(
        !app.jobs.runs.contains_key(&job),
        "a pushed chunk before the history is not kept"
    );
    feed(&mut app, vec![chunk(1, 55, false), chunk(55, 70, true)]);
    assert_eq!(app.jobs.runs.get(&job).map(|r| r.train.len()), Some(69));
}

#[test]
fn stream_events_become_the_messages_update_handles() {
    let mut app = populated();
    let lagged = DaemonMsg::from(api::Event::Lagged(api::Lagged { missed: 3 }));
    let effects = feed(&mut app, vec![lagged]);
    assert!(
        effects.contains(&Effect::Request(Request::Models)),
        "lagged refetches: {effects:?}"
    );
    let entry: api::JournalEntry = fixtures::decode(serde_json::json!({
        "time": "2026-11-29T17:00:00Z", "model": "fmnist-cnn", "from": 3, "to": 2, "action": "rollback",
    }));
    feed(&mut app, vec![DaemonMsg::from(api::Event::Deployment(Box::new(entry)))]);
    assert_eq!(
        app.message.as_ref().map(|m| m.text.as_str()),
        Some("rolled back fmnist-cnn@2")
    );
    assert_eq!(app.serving.previous_version(&name("fmnist-cnn")), Some(3));
}

#[test]
fn signatures_are_fetched_with_the_models_stored_and_shown() {
    let mut app = app();
    let effects = feed(&mut app, vec![DaemonMsg::Connected { live: true }, fixtures::models()]);
    assert!(
        effects.contains(&Effect::Request(Request::Signatures)),
        "the model list brings the signatures: {effects:?}"
    );
    feed(&mut app, vec![fixtures::detail()]);
    key(&mut app, KeyCode::Enter);
    let before = super::draw(&app, 80, 24);
    assert!(
        before.contains("CREATED") && !before.contains("SIGNATURE"),
        "no signature column before kilnd answers:\n{before}"
    );

    feed(&mut app, vec![fixtures::signatures()]);
    let signed = SignatureStatus::Signed {
        signer: name("alice"),
        key_hint: fixtures::KEY_HINT.into(),
    };
    assert_eq!(app.models.signature(&name("fmnist-cnn"), 3), Some(&signed));
    assert_eq!(
        app.models.signature(&name("fmnist-cnn"), 2),
        Some(&SignatureStatus::Unsigned)
    );
    let screen = super::draw(&app, 80, 24);
    for badge in ["✓ alice", "unsigned", "✗ tampered", "signature signed by alice"] {
        assert!(screen.contains(badge), "{badge} not shown:\n{screen}");
    }

    // A registry change refetches them with the versions.
    let effects = feed(&mut app, vec![DaemonMsg::RegistryChanged, fixtures::models()]);
    assert!(effects.contains(&Effect::Request(Request::Signatures)), "{effects:?}");
}

#[test]
fn a_failed_signature_fetch_keeps_the_versions_and_the_last_badges() {
    let mut app = populated();
    let error = ClientError::Transport("connection reset".into());
    feed(
        &mut app,
        vec![DaemonMsg::Failed {
            request: Request::Signatures,
            error,
        }],
    );
    assert_eq!(app.message, None, "the badges are not worth an error line");
    assert_eq!(
        app.models.signature(&name("fmnist-cnn"), 2),
        Some(&SignatureStatus::Unsigned)
    );
    key(&mut app, KeyCode::Enter);
    let screen = super::draw(&app, 80, 24);
    assert!(
        screen.contains("✗ tampered") && screen.contains("acc 0.871"),
        "{screen}"
    );

    // A kilnd without the route: the list stands as before, dates and all.
    let mut old = super::app();
    let not_found = ClientError::Http {
        status: 404,
        message: "no such route".into(),
    };
    feed(
        &mut old,
        vec![
            fixtures::models(),
            fixtures::detail(),
            DaemonMsg::Failed {
                request: Request::Signatures,
                error: not_found,
            },
        ],
    );
    assert_eq!(old.models.signatures, None);
    let screen = super::draw(&old, 80, 24);
    assert!(
        screen.contains("11-29 11:40") && !screen.contains("SIGNATURE"),
        "{screen}"
    );
}

#[test]
fn canaries_are_fetched_with_the_deployments_stored_and_shown() {
    let mut app = populated();
    let effects = key(&mut app, KeyCode::Char('4'));
    assert!(effects.is_empty(), "deployments already loaded: {effects:?}");
    let sample: api::Sample = fixtures::decode(serde_json::json!({
        "at_ms": 2_000_000, "gpus": [],
        "host": { "cpu_pct": 30.0, "cpus": 16, "memory_used_bytes": 1u64 << 30, "memory_total_bytes": 2u64 << 30, "jobs": [] },
    }));
    let tick = feed(&mut app, vec![DaemonMsg::Sample(sample)]);
    assert_eq!(
        tick,
        vec![
            Effect::Request(Request::Deployments),
            Effect::Request(Request::Canaries)
        ]
    );
    let before = super::draw(&app, 80, 24);
    assert!(!before.contains("canary"), "no canary panel before one runs:\n{before}");

    feed(&mut app, vec![fixtures::deployments(), fixtures::canaries()]);
    assert_eq!(app.serving.canaries.len(), 1);
    assert_eq!(app.serving.current_canary().map(|c| c.candidate), Some(4));
    let shown = super::draw(&app, 80, 24);
    for text in [
        "canary fmnist-cnn v3→v4 10%",
        "42% to promotion",
        "p promote",
        "a abort",
    ] {
        assert!(shown.contains(text), "{text:?} missing:\n{shown}");
    }

    let error = ClientError::Transport("connection refused".into());
    let failed = DaemonMsg::Failed {
        request: Request::Canaries,
        error,
    };
    feed(&mut app, vec![failed]);
    assert_eq!(app.serving.canaries.len(), 1, "a failed fetch keeps the list");
    assert_eq!(app.message, None, "and says nothing");

    feed(&mut app, vec![DaemonMsg::Canaries(Vec::new())]);
    let after = super::draw(&app, 80, 24);
    assert!(!after.contains("canary") && !after.contains("a abort"), "{after}");
}

#[test]
fn promote_and_abort_of_a_canary_go_through_a_confirm_dialog() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('4'));
    key(&mut app, KeyCode::Char('p'));
    assert_eq!(app.overlay, None, "no canary, nothing to promote");
    assert!(app.message.as_ref().is_some_and(|m| m.error));

    feed(&mut app, vec![fixtures::canaries()]);
    assert!(
        key(&mut app, KeyCode::Char('p')).is_empty(),
        "nothing sent before confirming"
    );
    let promote = Pending::PromoteCanary {
        model: name("fmnist-cnn"),
        stable: 3,
        candidate: 4,
    };
    assert_eq!(app.overlay, Some(Overlay::Confirm(promote)));
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        vec![Effect::Request(Request::PromoteCanary(name("fmnist-cnn")))]
    );

    key(&mut app, KeyCode::Char('a'));
    let abort = Pending::AbortCanary {
        model: name("fmnist-cnn"),
        stable: 3,
        candidate: 4,
    };
    assert_eq!(app.overlay, Some(Overlay::Confirm(abort)));
    assert!(key(&mut app, KeyCode::Esc).is_empty());
    key(&mut app, KeyCode::Char('a'));
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        vec![Effect::Request(Request::AbortCanary(name("fmnist-cnn")))]
    );

    let entry: api::JournalEntry = fixtures::decode(serde_json::json!({
        "time": "2026-11-29T17:05:00Z", "model": "fmnist-cnn", "from": 3, "to": 3, "action": "abort",
        "candidate": 4, "reason": "aborted by operator",
    }));
    let effects = feed(&mut app, vec![DaemonMsg::JournalEntry(entry)]);
    assert!(
        effects.contains(&Effect::Request(Request::Canaries)),
        "a journal entry refetches the canaries: {effects:?}"
    );

    app.readonly = true;
    key(&mut app, KeyCode::Char('a'));
    assert_eq!(app.overlay, None, "read-only refuses aborting a canary");
}

#[test]
fn canary_keys_are_refused_off_the_serving_screen() {
    let mut app = populated();
    feed(&mut app, vec![fixtures::canaries()]);
    key(&mut app, KeyCode::Char('a'));
    assert_eq!(app.overlay, None);
    let text = app.message.as_ref().map(|m| m.text.clone()).unwrap_or_default();
    assert!(text.contains("serving screen"), "{text}");
}
