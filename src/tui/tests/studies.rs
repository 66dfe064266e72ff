//! The studies screen's `update` without a terminal: entering it, study events, the trials'
//! order, and every mutation going through its dialog (or refused in read-only mode).

use ratatui::crossterm::event::KeyCode;

use super::fixtures::{self, job_id, name};
use super::{feed, key, keys, populated};
use crate::tui::action::{Effect, Pending, Screen};
use crate::tui::app::{App, Overlay};
use crate::tui::event::DaemonMsg;
use crate::tui::request::Request;
use crate::tui::state::studies::{StudiesFocus, TrialSort};
use kiln_core::client::ClientError;
use kiln_core::study::{StudyState, TrialState};

/// The populated console on the studies screen, its list loaded.
fn on_studies() -> App {
    let mut app = populated();
    key(&mut app, KeyCode::Char('5'));
    feed(&mut app, vec![fixtures::studies()]);
    app
}

fn numbers(app: &App) -> Vec<u32> {
    app.studies.trials().iter().map(|t| t.number).collect()
}

fn message(app: &App) -> (String, bool) {
    app.message
        .as_ref()
        .map_or((String::new(), false), |m| (m.text.clone(), m.error))
}

#[test]
fn key_5_and_the_palette_show_studies_and_fetch_them() {
    let mut app = populated();
    let effects = key(&mut app, KeyCode::Char('5'));
    assert_eq!(app.screen, Screen::Studies);
    assert!(effects.contains(&Effect::Request(Request::Studies)), "{effects:?}");
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "studies");
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen, Screen::Studies);
    assert!(effects.contains(&Effect::Request(Request::Studies)), "{effects:?}");
    let connected = feed(&mut app, vec![DaemonMsg::Connected { live: true }]);
    assert!(
        connected.contains(&Effect::Request(Request::Studies)),
        "refetched on reconnect"
    );
}

#[test]
fn a_study_event_replaces_that_study_by_name() {
    let mut app = on_studies();
    assert_eq!(app.studies.current().map(|s| s.name().as_str()), Some("fmnist-cnn-wd"));
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(app.studies.current().map(|s| s.name().as_str()), Some("fmnist-mlp-lr"));
    let mut changed = fixtures::study();
    changed.state = StudyState::Stopped;
    changed.trials[4].state = TrialState::Cancelled;
    feed(&mut app, vec![DaemonMsg::Study(Box::new(changed))]);
    assert_eq!(app.studies.rows().len(), 2, "replaced, not added");
    let current = app.studies.current();
    assert_eq!(
        current.map(|s| s.name().as_str()),
        Some("fmnist-mlp-lr"),
        "selection kept"
    );
    assert_eq!(current.map(|s| s.state), Some(StudyState::Stopped));
    let mut new = fixtures::study();
    new.spec.name = name("aaa-first");
    feed(&mut app, vec![DaemonMsg::Study(Box::new(new))]);
    assert_eq!(app.studies.rows().len(), 3, "an unknown study is added");
    assert_eq!(app.studies.current().map(|s| s.name().as_str()), Some("fmnist-mlp-lr"));
}

#[test]
fn s_sorts_trials_best_first_and_back_keeping_the_selected_one() {
    let mut app = on_studies();
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Right);
    assert_eq!(app.studies.focus, StudiesFocus::Trials);
    keys(&mut app, "jj");
    assert_eq!(app.studies.current_trial().map(|t| t.number), Some(2));
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.studies.sort, TrialSort::Best);
    assert_eq!(
        numbers(&app),
        vec![3, 0, 4, 2, 1, 5],
        "maximize: highest first, unscored last"
    );
    assert_eq!(app.studies.current_trial().map(|t| t.number), Some(2));
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(numbers(&app), vec![0, 1, 2, 3, 4, 5]);
    assert!(!app.jobs.chart.smoothing, "s does not touch the jobs chart here");
}

#[test]
fn selecting_a_trial_fetches_its_jobs_metrics() {
    let mut app = on_studies();
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Right);
    let effects = keys(&mut app, "jjjj");
    let job = job_id(&fixtures::trial_job(4));
    assert!(
        effects.contains(&Effect::Request(Request::Metrics { job, since: 0 })),
        "{effects:?}"
    );
    assert!(keys(&mut app, "j").is_empty(), "a queued trial has no job to ask about");
}

#[test]
fn promote_asks_first_and_says_what_was_registered() {
    let mut app = on_studies();
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Right);
    keys(&mut app, "jjj");
    assert!(keys(&mut app, "p").is_empty(), "nothing is sent before confirming");
    let pending = Pending::Promote {
        study: name("fmnist-mlp-lr"),
        trial: 3,
        model: name("fmnist-mlp-lr"),
    };
    assert_eq!(app.overlay, Some(Overlay::Confirm(pending)));
    let effects = key(&mut app, KeyCode::Enter);
    let promote = Request::Promote {
        study: name("fmnist-mlp-lr"),
        trial: 3,
    };
    assert_eq!(effects, vec![Effect::Request(promote)]);
    let version = fixtures::decode(fixtures::manifest("fmnist-mlp-lr", 4, 0.889, None));
    let effects = feed(
        &mut app,
        vec![DaemonMsg::Promoted {
            study: name("fmnist-mlp-lr"),
            trial: 3,
            version: Box::new(version),
        }],
    );
    let (text, error) = message(&app);
    assert!(text.starts_with("registered fmnist-mlp-lr@4") && !error, "{text}");
    assert!(
        effects.contains(&Effect::Request(Request::Models)),
        "the registry changed"
    );
}

#[test]
fn stop_asks_first_and_resume_does_not() {
    let mut app = on_studies();
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('c'));
    let pending = Pending::StopStudy {
        study: name("fmnist-mlp-lr"),
        running: 1,
    };
    assert_eq!(app.overlay, Some(Overlay::Confirm(pending)));
    let effects = key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        effects,
        vec![Effect::Request(Request::StopStudy(name("fmnist-mlp-lr")))]
    );
    let mut stopped = fixtures::study();
    stopped.state = StudyState::Stopped;
    let request = Request::StopStudy(name("fmnist-mlp-lr"));
    let study = Box::new(stopped);
    feed(&mut app, vec![DaemonMsg::StudyChanged { request, study }]);
    assert!(
        message(&app).0.starts_with("stopped study fmnist-mlp-lr"),
        "{:?}",
        app.message
    );
    let effects = key(&mut app, KeyCode::Char('r'));
    assert_eq!(
        effects,
        vec![Effect::Request(Request::ResumeStudy(name("fmnist-mlp-lr")))]
    );
}

#[test]
fn readonly_refuses_study_mutations_but_not_viewing() {
    let mut app = on_studies();
    app.readonly = true;
    let mut stopped = fixtures::other_study();
    stopped.state = StudyState::Stopped;
    feed(&mut app, vec![DaemonMsg::Study(Box::new(stopped))]);
    assert!(key(&mut app, KeyCode::Char('r')).is_empty(), "r on a stopped study");
    assert!(message(&app).0.contains("read-only"), "{:?}", app.message);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Right);
    keys(&mut app, "jjj");
    for k in ['p', 'c', 'n'] {
        assert!(key(&mut app, KeyCode::Char(k)).is_empty());
        assert_eq!(app.overlay, None, "{k} must be refused");
        let (text, error) = message(&app);
        assert!(text.contains("read-only") && error, "{k}: {text}");
    }
    assert!(key(&mut app, KeyCode::Char('s')).is_empty());
    assert_eq!(app.studies.sort, TrialSort::Best, "sorting is viewing");
}

#[test]
fn n_takes_a_path_and_a_rejected_spec_names_its_line() {
    let mut app = on_studies();
    key(&mut app, KeyCode::Char('n'));
    assert_eq!(app.overlay, Some(Overlay::SpecPath(String::new())));
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "an empty path is not sent");
    keys(&mut app, "specs/lr.toml");
    let effects = key(&mut app, KeyCode::Enter);
    let create = Request::CreateStudy {
        path: "specs/lr.toml".into(),
    };
    assert_eq!(effects, vec![Effect::Request(create.clone())], "update reads no file");
    let error = ClientError::Http {
        status: 422,
        message: "lr.toml line 9: parameter `lr`: log_uniform needs 0 < low < high".into(),
    };
    feed(&mut app, vec![DaemonMsg::Failed { request: create, error }]);
    let (text, error) = message(&app);
    assert!(error, "{text}");
    assert_eq!(
        text,
        "study not started: lr.toml line 9: parameter `lr`: log_uniform needs 0 < low < high"
    );
}

#[test]
fn a_daemon_without_studies_shows_a_state_not_an_error() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('5'));
    let error = ClientError::Http {
        status: 404,
        message: "no such route".into(),
    };
    let request = Request::Studies;
    feed(&mut app, vec![DaemonMsg::Failed { request, error }]);
    assert!(app.studies.unavailable);
    assert_eq!(app.message, None);
}
