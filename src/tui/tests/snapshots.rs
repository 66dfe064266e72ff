//! Every screen and dialog at 80×24 (and a few larger), empty, populated and in error,
//! rendered into a `TestBackend` and compared with the stored snapshots.

use insta::assert_snapshot;
use ratatui::crossterm::event::KeyCode;
use serde_json::json;

use super::{app, draw, feed, fixtures, key, keys, populated};
use crate::tui::app::Overlay;
use crate::tui::event::DaemonMsg;
use crate::tui::form::LaunchForm;
use crate::tui::request::Request;
use kiln_core::api::{Deployments, JobView, VersionView};
use kiln_core::client::ClientError;
use kiln_core::kinds::Arch;

#[test]
fn snapshot_models_first_run_80x24() {
    let mut app = app();
    feed(
        &mut app,
        vec![
            DaemonMsg::Connected { live: true },
            DaemonMsg::Models(Default::default()),
        ],
    );
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_models_loading_80x24() {
    assert_snapshot!(draw(&app(), 80, 24));
}

#[test]
fn snapshot_models_populated_80x24() {
    let mut app = populated();
    key(&mut app, KeyCode::Enter);
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_models_detail_with_confusion_matrix_100x30() {
    let mut app = populated();
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn snapshot_models_compare_100x30() {
    let mut app = populated();
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('m'));
    key(&mut app, KeyCode::Char('k'));
    assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn snapshot_models_signatures_with_dates_120x36() {
    let mut app = populated();
    key(&mut app, KeyCode::Enter);
    assert_snapshot!(draw(&app, 120, 36));
}

#[test]
fn snapshot_models_detail_of_a_tampered_version_100x30() {
    let mut app = populated();
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('G'));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.models.current_version(), Some((fixtures::name("fmnist-cnn"), 1)));
    assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn signature_badges_are_short_and_truncate_long_signers() {
    use crate::tui::screens::models::{signature_badge, signature_style};
    use kiln_core::registry::SignatureStatus;
    let theme = crate::tui::theme::Theme::default();
    let signed = |signer: &str| SignatureStatus::Signed {
        signer: fixtures::name(signer),
        key_hint: fixtures::KEY_HINT.into(),
    };
    let invalid = SignatureStatus::Invalid {
        reason: "not a bundle".into(),
    };
    let untrusted = SignatureStatus::Untrusted {
        key_hint: "ff".into(),
        reason: "unknown key".into(),
    };
    let cases = [
        (signed("alice"), "✓ alice", theme.ok),
        (signed("release-bot-eu"), "✓ release…", theme.ok),
        (SignatureStatus::Unsigned, "unsigned", theme.muted),
        (untrusted, "✗ untrust…", theme.error),
        (invalid, "✗ bad sig", theme.error),
    ];
    for (status, badge, style) in cases {
        assert_eq!(signature_badge(&status, 10), badge);
        assert_eq!(signature_style(&status, &theme), style, "{status:?}");
    }
}

#[test]
fn snapshot_daemon_down_banner_80x24() {
    let mut app = populated();
    feed(
        &mut app,
        vec![DaemonMsg::Disconnected(
            "cannot talk to kilnd: connection refused".into(),
        )],
    );
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_daemon_never_reached_80x24() {
    let mut app = app();
    feed(
        &mut app,
        vec![DaemonMsg::Disconnected("kilnd is not running for /tmp/k".into())],
    );
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_jobs_empty_80x24() {
    let mut app = app();
    feed(&mut app, vec![DaemonMsg::Jobs(Vec::new())]);
    key(&mut app, KeyCode::Char('2'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_jobs_populated_80x24() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('2'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_jobs_smoothed_log_y_with_overlay_120x36() {
    let mut app = populated();
    feed(&mut app, vec![fixtures::metrics("j1764430000-0001", 90)]);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('o'));
    key(&mut app, KeyCode::Char('k'));
    keys(&mut app, "sy");
    assert_snapshot!(draw(&app, 120, 36));
}

#[test]
fn snapshot_jobs_pending_in_slurm_80x24() {
    let mut app = app();
    let mut pending = fixtures::job("j1764440000-5101", "queued", 0, 0);
    pending["slurm"] = json!({"job_id": 12, "state": "PENDING", "reason": "Resources",
                              "submitted_at": "2026-11-29T16:00:00Z"});
    let mut running = fixtures::job("j1764434400-ab12", "running", 1400, 1);
    running["slurm"] = json!({"job_id": 11, "state": "RUNNING", "submitted_at": "2026-11-29T15:00:00Z"});
    let jobs = vec![fixtures::decode(pending), fixtures::decode(running)];
    feed(
        &mut app,
        vec![DaemonMsg::Connected { live: true }, DaemonMsg::Jobs(jobs)],
    );
    key(&mut app, KeyCode::Char('2'));
    assert_snapshot!(draw(&app, 80, 24));
    key(&mut app, KeyCode::Char('j'));
    let screen = draw(&app, 80, 24);
    assert!(
        screen.contains("loss · j1764434400-ab12 · slurm 11 RUNNING · step →"),
        "{screen}"
    );
}

#[test]
fn snapshot_jobs_eval_result_80x24() {
    let mut app = populated();
    let job: JobView = fixtures::decode(fixtures::eval_job());
    feed(&mut app, vec![DaemonMsg::Job(job)]);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(app.jobs.current().map(|j| j.id.as_str()), Some("j1764440000-e001"));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn eval_job_results_fill_the_version_detail() {
    let mut app = populated();
    let job: JobView = fixtures::decode(fixtures::eval_job());
    let version1 = fixtures::manifest("fmnist-cnn", 1, 0.871, None);
    let view: VersionView = fixtures::decode(json!({ "version": version1, "evals": [] }));
    feed(&mut app, vec![DaemonMsg::Job(job), DaemonMsg::Version(view)]);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('G'));
    key(&mut app, KeyCode::Enter);
    let screen = draw(&app, 100, 30);
    assert!(
        screen.contains("fashion-mnist test (300 rows) · accuracy 0.8710"),
        "{screen}"
    );
    assert!(screen.contains("Coat   135   15 0.850"), "{screen}");
}

#[test]
fn snapshot_gpu_80x24() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('3'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_gpu_none_found_80x24() {
    let mut app = populated();
    feed(&mut app, vec![fixtures::telemetry(false)]);
    key(&mut app, KeyCode::Char('3'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_gpu_waiting_80x24() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_serving_80x24() {
    let mut app = populated();
    feed(&mut app, vec![fixtures::tried()]);
    key(&mut app, KeyCode::Char('4'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_serving_canary_80x24() {
    let mut app = populated();
    feed(&mut app, vec![fixtures::canaries()]);
    key(&mut app, KeyCode::Char('4'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_serving_canary_120x36() {
    let mut app = populated();
    feed(&mut app, vec![fixtures::tried(), fixtures::canaries()]);
    key(&mut app, KeyCode::Char('4'));
    assert_snapshot!(draw(&app, 120, 36));
}

#[test]
fn snapshot_serving_confirm_abort_canary_80x24() {
    let mut app = populated();
    feed(&mut app, vec![fixtures::canaries()]);
    key(&mut app, KeyCode::Char('4'));
    key(&mut app, KeyCode::Char('a'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_serving_empty_80x24() {
    let mut app = app();
    let none = Deployments {
        inference_address: Some("127.0.0.1:8000".into()),
        ready: true,
        ..Deployments::default()
    };
    feed(&mut app, vec![DaemonMsg::Deployments(none)]);
    key(&mut app, KeyCode::Char('4'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_serving_unavailable_80x24() {
    let mut app = app();
    let error = ClientError::Http {
        status: 404,
        message: "no such route".into(),
    };
    feed(
        &mut app,
        vec![DaemonMsg::Failed {
            request: Request::Deployments,
            error,
        }],
    );
    key(&mut app, KeyCode::Char('4'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_dialog_help_80x24() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('?'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_dialog_palette_80x24() {
    let mut app = populated();
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "theme hi");
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_dialog_confirm_rollback_80x24() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('4'));
    key(&mut app, KeyCode::Char('r'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_dialog_launch_form_with_error_80x24() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('2'));
    app.overlay = Some(Overlay::Form(LaunchForm::train(Arch::Rnn)));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    keys(&mut app, "x");
    key(&mut app, KeyCode::Enter);
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_readonly_status_line_80x24() {
    let mut app = populated();
    app.readonly = true;
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('c'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_filter_input_80x24() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "prod");
    assert_snapshot!(draw(&app, 80, 24));
}

/// The studies screen with the list loaded and `path` of keys pressed after `5` (`l`: to the
/// trials pane).
fn studies_app(path: &str) -> crate::tui::app::App {
    let mut app = populated();
    key(&mut app, KeyCode::Char('5'));
    let trial_job = fixtures::trial_job(4);
    feed(&mut app, vec![fixtures::studies(), fixtures::metrics(&trial_job, 40)]);
    for c in path.chars() {
        key(&mut app, KeyCode::Char(c));
    }
    app
}

#[test]
fn snapshot_studies_running_trial_100x30() {
    let app = studies_app("jljjjj");
    assert_eq!(app.studies.current_trial().map(|t| t.number), Some(4));
    assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn snapshot_studies_pruned_trial_best_first_80x24() {
    let app = studies_app("jlsjjj");
    assert_eq!(app.studies.current_trial().map(|t| t.number), Some(1));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_studies_failed_trial_120x36() {
    let app = studies_app("jljj");
    assert_snapshot!(draw(&app, 120, 36));
}

#[test]
fn snapshot_studies_empty_100x30() {
    let mut app = app();
    feed(&mut app, vec![DaemonMsg::Studies(Default::default())]);
    key(&mut app, KeyCode::Char('5'));
    assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn snapshot_studies_new_study_dialog_80x24() {
    let mut app = studies_app("n");
    keys(&mut app, "specs/study.toml");
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_studies_confirm_promote_100x30() {
    let app = studies_app("jljjjp");
    assert_snapshot!(draw(&app, 100, 30));
}

#[test]
fn a_promoted_version_shows_its_study_in_the_lineage() {
    let mut app = populated();
    let mut promoted = fixtures::manifest("fmnist-cnn", 3, 0.912, Some(2));
    promoted["study"] = serde_json::json!({
        "study": "fmnist-mlp-lr", "trial": 2, "params": { "lr": 0.003 }, "job": "j1764434403-ab12", "epoch": 5
    });
    let view: kiln_core::api::ModelView = fixtures::decode(serde_json::json!({ "model": {
        "record": { "name": "fmnist-cnn", "task": "image-classification", "created_at": "2026-11-29T10:00:00Z" },
        "versions": [fixtures::manifest("fmnist-cnn", 1, 0.871, None),
                     fixtures::manifest("fmnist-cnn", 2, 0.902, Some(1)), promoted],
        "aliases": {},
    }, "problems": [] }));
    feed(&mut app, vec![DaemonMsg::ModelDetail(view.model)]);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    let screen = draw(&app, 120, 36);
    assert!(
        screen.contains("study fmnist-mlp-lr trial 2 (epoch 5) · ← fmnist-cnn@2"),
        "{screen}"
    );
}
