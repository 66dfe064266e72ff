//! Console tests without a terminal or a daemon: `update` driven by events, and every screen
//! and dialog rendered into a ratatui `TestBackend` and compared with insta snapshots
//! (`tests/snapshots/`; review changes with `cargo insta review` or by reading the diff).

use insta::assert_snapshot;
use kiln::tui::action::{Effect, Pending, Screen};
use kiln::tui::app::{App, Connection, Overlay};
use kiln::tui::client::{ApiError, Request};
use kiln::tui::event::{DaemonMsg, Event};
use kiln::tui::form::LaunchForm;
use kiln::tui::keymap::Keymap;
use kiln::tui::state::models::ModelsFocus;
use kiln::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::{Value, json};

mod fixtures {
    use super::*;

    fn decode<T: serde::de::DeserializeOwned>(v: Value) -> T {
        match serde_json::from_value(v) {
            Ok(t) => t,
            Err(e) => panic!("fixture does not decode: {e}"),
        }
    }

    pub fn manifest(model: &str, version: u32, accuracy: f64, parent: Option<u32>) -> Value {
        let mut m = json!({
            "model": model, "version": version, "created_at": format!("2026-11-29T1{version}:40:00Z"),
            "kiln_version": "0.1.0",
            "architecture": { "name": "cnn", "config": {} },
            "dataset": { "id": "fashion-mnist" },
            "hyperparameters": { "epochs": 2, "batch_size": 64, "lr": 0.001 * f64::from(version) },
            "metrics": { "accuracy": accuracy, "val_loss": 0.3 },
            "job_id": format!("j176443440{version}-ab12"),
            "blobs": {}, "device": "cpu",
        });
        if let Some(p) = parent {
            m["parent"] = json!({ "model": model, "version": p });
        }
        m
    }

    pub fn models() -> DaemonMsg {
        DaemonMsg::Models(decode(json!({
            "models": [
                { "name": "fmnist-cnn", "task": "image-classification", "versions": 3, "latest": 3,
                  "aliases": { "production": 2 } },
                { "name": "ratings-mf", "task": "recommendation", "versions": 1, "latest": 1, "aliases": {} },
            ],
            "problems": [],
        })))
    }

    pub fn detail() -> DaemonMsg {
        DaemonMsg::ModelDetail(decode(json!({
            "record": { "name": "fmnist-cnn", "task": "image-classification", "created_at": "2026-11-29T10:00:00Z" },
            "versions": [manifest("fmnist-cnn", 1, 0.871, None), manifest("fmnist-cnn", 2, 0.902, Some(1)),
                         manifest("fmnist-cnn", 3, 0.912, Some(2))],
            "aliases": { "production": 2 },
        })))
    }

    pub fn version3() -> DaemonMsg {
        DaemonMsg::Version(decode(json!({
            "version": manifest("fmnist-cnn", 3, 0.912, Some(2)),
            "evals": [{ "report": "sha256:aa", "dataset": "fashion-mnist", "split": "test",
                        "created_at": "2026-11-29T13:50:00Z", "metrics": { "accuracy": 0.912, "macro_f1": 0.91 } }],
        })))
    }

    pub fn report() -> DaemonMsg {
        let classes = ["T-shirt", "Trouser", "Pullover"];
        DaemonMsg::Report {
            digest: "sha256:aa".into(),
            report: decode(json!({
                "dataset": "fashion-mnist", "split": "test", "rows": 300, "accuracy": 0.912, "macro_f1": 0.91,
                "per_class": classes.iter().map(|c| json!({"class": c, "precision": 0.9, "recall": 0.91, "f1": 0.905, "support": 100})).collect::<Vec<_>>(),
                "confusion_matrix": [[91, 2, 7], [1, 98, 1], [9, 0, 91]],
            })),
        }
    }

    pub fn job(id: &str, state: &str, step: u64, epoch: usize) -> Value {
        json!({
            "id": id,
            "spec": { "id": id, "arch": "cnn", "data": "fashion-mnist", "epochs": 2, "batch_size": 64, "lr": 0.001,
                      "optimizer": "adam", "seed": 42, "model": "fmnist-cnn" },
            "status": { "state": state, "step": step, "epoch": epoch, "updated_at": "2026-11-29T16:00:00Z" },
        })
    }

    pub fn eval_job() -> Value {
        json!({
            "id": "j1764440000-e001",
            "spec": { "kind": "eval", "reference": "fmnist-cnn@1", "data": "fashion-mnist" },
            "status": { "state": "succeeded", "step": 10, "epoch": 0, "updated_at": "2026-11-29T16:00:00Z" },
            "result": { "model": "fmnist-cnn", "version": 1, "dataset": "fashion-mnist", "split": "test", "rows": 300,
                        "accuracy": 0.871, "macro_f1": 0.86,
                        "per_class": [{"class": "Coat", "precision": 0.8, "recall": 0.9, "f1": 0.85, "support": 150},
                                      {"class": "Bag", "precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 150}],
                        "confusion_matrix": [[135, 15], [24, 126]] },
        })
    }

    pub fn jobs() -> DaemonMsg {
        DaemonMsg::Jobs(vec![
            decode(job("j1764434400-ab12", "running", 1400, 1)),
            decode(job("j1764430000-0001", "succeeded", 1876, 2)),
            decode(job("j1764420000-0002", "failed", 10, 0)),
        ])
    }

    pub fn metrics(job: &str, n: u64) -> DaemonMsg {
        let mut records: Vec<Value> = (1..=n)
            .map(|i| {
                json!({ "kind": "train", "step": i * 20, "epoch": (i * 20 / 938) as usize, "time": 1000.0 + i as f64,
                        "train_loss": 2.3 / (1.0 + i as f64 * 0.1), "samples_per_sec": 1700.0 })
            })
            .collect();
        records.push(
            json!({ "kind": "val", "step": 938, "epoch": 1, "time": 1047.0, "val_loss": 0.42, "accuracy": 0.85 }),
        );
        DaemonMsg::Metrics {
            job: job.into(),
            chunk: decode(json!({ "records": records, "next": 4096 })),
        }
    }

    pub fn log(job: &str) -> DaemonMsg {
        DaemonMsg::Log {
            job: job.into(),
            chunk: decode(
                json!({ "text": "loading fashion-mnist (60000 rows)\ndevice cpu, 16 threads\nepoch 1: val_loss 0.420 accuracy 0.850\n", "next": 120 }),
            ),
        }
    }

    pub fn telemetry(gpu: bool) -> DaemonMsg {
        let samples: Vec<Value> = (0..60u64)
            .map(|i| {
                let gpus = if gpu {
                    json!([{ "index": 0, "name": "NVIDIA H200", "utilization_pct": if i == 30 { Value::Null } else { json!(40 + i % 20) },
                             "memory_used_bytes": 30u64 << 30, "memory_total_bytes": 140u64 << 30,
                             "temperature_c": 60 + i % 5, "power_w": 200.0 + i as f64,
                             "processes": [{ "pid": 4242, "used_memory_bytes": 12u64 << 30, "job": "j1764434400-ab12" }] }])
                } else {
                    json!([])
                };
                json!({ "at_ms": 1_000_000 + i * 1000, "gpus": gpus,
                        "host": { "cpu_pct": 30.0 + (i % 10) as f64, "cpus": 16, "memory_used_bytes": 41u64 << 30,
                                  "memory_total_bytes": 125u64 << 30,
                                  "jobs": [{ "job": "j1764434400-ab12", "pid": 4242, "rss_bytes": 3u64 << 30, "cpu_pct": 190.0 }] } })
            })
            .collect();
        let availability = if gpu {
            json!({ "state": "available", "driver": "565.57", "count": 1 })
        } else {
            json!({ "state": "no_gpu", "reason": "NVML could not be loaded (libnvidia-ml.so.1 not found)" })
        };
        DaemonMsg::Telemetry(decode(
            json!({ "gpu": availability, "interval_s": 1.0, "samples": samples }),
        ))
    }

    pub fn deployments() -> DaemonMsg {
        DaemonMsg::Deployments(decode(json!({
            "inference_address": "127.0.0.1:8000",
            "deployments": [{ "model": "fmnist-cnn", "version": 3, "since": "2026-11-29T16:40:00Z",
                              "stats": { "requests": 1200, "errors": 0, "req_per_s": 120.5, "p50_ms": 0.41, "p99_ms": 1.9, "queue_depth": 0 } }],
        })))
    }

    pub fn journal() -> DaemonMsg {
        DaemonMsg::Journal(decode(json!([
            { "time": "2026-11-29T16:02:00Z", "model": "fmnist-cnn", "from": null, "to": 2, "action": "deploy", "reason": "" },
            { "time": "2026-11-29T16:40:00Z", "model": "fmnist-cnn", "from": 2, "to": 3, "action": "deploy", "reason": "" },
        ])))
    }

    pub fn tried() -> DaemonMsg {
        DaemonMsg::Tried {
            model: "fmnist-cnn".into(),
            result: decode(
                json!({ "index": 4, "prediction": 2, "label": 2, "classes": ["T-shirt", "Trouser", "Pullover"],
                                   "probabilities": [0.01, 0.02, 0.97] }),
            ),
        }
    }
}

fn app() -> App {
    App::new(Theme::default(), Keymap::default(), false)
}

fn feed(app: &mut App, msgs: Vec<DaemonMsg>) -> Vec<Effect> {
    msgs.into_iter().flat_map(|m| app.update(Event::from(m))).collect()
}

fn populated() -> App {
    let mut app = app();
    feed(
        &mut app,
        vec![
            DaemonMsg::Connected { live: true },
            fixtures::models(),
            fixtures::detail(),
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

fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn keys(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| key(app, KeyCode::Char(c))).collect()
}

fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(e) => panic!("test backend: {e}"),
    };
    if let Err(e) = terminal.draw(|f| kiln::tui::ui::render(f, app)) {
        panic!("draw failed: {e}");
    }
    terminal.backend().to_string()
}

// ---- update, without a terminal ----

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
        id: "j1764434400-ab12".into(),
    };
    assert_eq!(app.overlay, Some(Overlay::Confirm(pending)));
    assert!(key(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(app.overlay, None);
    key(&mut app, KeyCode::Char('c'));
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        vec![Effect::Request(Request::CancelJob("j1764434400-ab12".into()))]
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
    for (screen, k) in [('2', 'c'), ('2', 'n'), ('4', 'r'), ('1', 'e')] {
        key(&mut app, KeyCode::Char(screen));
        key(&mut app, KeyCode::Char(k));
        assert_eq!(app.overlay, None, "{k} on screen {screen} must be refused");
    }
}

#[test]
fn deploy_asks_with_the_version_it_replaces() {
    let mut app = populated();
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.models.focus, ModelsFocus::Versions);
    key(&mut app, KeyCode::Char('d'));
    let expected = Pending::Deploy {
        model: "fmnist-cnn".into(),
        version: 3,
        current: Some(3),
    };
    assert_eq!(app.overlay, Some(Overlay::Confirm(expected)));
    let effects = key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        effects,
        vec![Effect::Request(Request::Deploy {
            model: "fmnist-cnn".into(),
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
    let [Effect::Request(Request::SubmitJob(body))] = effects.as_slice() else {
        panic!("expected one submit, got {effects:?}");
    };
    assert_eq!(
        (body["arch"].as_str(), body["data"].as_str()),
        (Some("cnn"), Some("fashion-mnist"))
    );
    let job = serde_json::from_value(fixtures::job("j1764434999-beef", "queued", 0, 0));
    feed(
        &mut app,
        vec![DaemonMsg::Submitted(job.unwrap_or_else(|e| panic!("{e}")))],
    );
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
    let before = app.jobs.runs.get("j1764434400-ab12").map(|r| r.train.len());
    feed(&mut app, vec![fixtures::metrics("j1764434400-ab12", 70)]);
    assert_eq!(app.jobs.runs.get("j1764434400-ab12").map(|r| r.train.len()), before);
}

#[test]
fn missing_routes_become_states_not_errors() {
    let mut app = populated();
    let not_found = ApiError::Http {
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
    for _ in 0..6 {
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
    assert!(matches!(effects.as_slice(), [Effect::Request(Request::SubmitJob(b))] if b["model"] == "mine"));
}

// ---- snapshots ----

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
fn snapshot_jobs_eval_result_80x24() {
    let mut app = populated();
    let job = serde_json::from_value(fixtures::eval_job()).unwrap_or_else(|e| panic!("{e}"));
    feed(&mut app, vec![DaemonMsg::Job(job)]);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(app.jobs.current().map(|j| j.id.as_str()), Some("j1764440000-e001"));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn eval_job_results_fill_the_version_detail() {
    let mut app = populated();
    let job = serde_json::from_value(fixtures::eval_job()).unwrap_or_else(|e| panic!("{e}"));
    let version1 = fixtures::manifest("fmnist-cnn", 1, 0.871, None);
    let view = serde_json::from_value(json!({ "version": version1, "evals": [] })).unwrap_or_else(|e| panic!("{e}"));
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
fn snapshot_serving_empty_80x24() {
    let mut app = app();
    let none = serde_json::from_value(json!({ "inference_address": "127.0.0.1:8000", "deployments": [] }));
    feed(&mut app, vec![DaemonMsg::Deployments(none.unwrap_or_default())]);
    key(&mut app, KeyCode::Char('4'));
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn snapshot_serving_unavailable_80x24() {
    let mut app = app();
    let error = ApiError::Http {
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
    app.overlay = Some(Overlay::Form(LaunchForm::train("rnn")));
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
