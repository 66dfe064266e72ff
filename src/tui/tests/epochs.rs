//! Promote from the curve: the kept epochs fetched for the selected training job, the epoch
//! cursor over its validation points, and registering a kept checkpoint as a version.

use insta::assert_snapshot;
use ratatui::crossterm::event::KeyCode;
use serde_json::{Value, json};

use super::fixtures::{decode, job_id, name};
use super::{draw, feed, fixtures, key, keys, populated};
use crate::tui::action::{Action, Effect, Pending, Screen};
use crate::tui::app::{App, Overlay};
use crate::tui::event::DaemonMsg;
use crate::tui::request::Request;
use crate::tui::state::models::ModelsFocus;
use kiln_core::client::ClientError;

/// A finished three-epoch training, newer than the fixtures' jobs.
const JOB: &str = "j1764436000-0e03";

fn three_epochs() -> DaemonMsg {
    DaemonMsg::Job(decode(json!({
        "id": JOB,
        "spec": { "id": JOB, "kind": "train", "arch": "cnn", "data": "fashion-mnist", "epochs": 3, "batch_size": 64,
                  "lr": 0.001, "optimizer": "adam", "seed": 42, "model": "fmnist-cnn" },
        "status": { "state": "succeeded", "step": 2814, "epoch": 3, "updated_at": "2026-11-29T17:00:00Z" },
    })))
}

/// `(epoch, step, val_loss, accuracy)` of the three validation points.
const VALS: [(usize, u64, f64, f64); 3] = [(1, 938, 0.52, 0.81), (2, 1876, 0.41, 0.853), (3, 2814, 0.43, 0.849)];

fn val(epoch: usize, step: u64, loss: f64, accuracy: f64) -> Value {
    json!({ "kind": "val", "step": step, "epoch": epoch, "time": 2000.0 + step as f64,
            "val_loss": loss, "accuracy": accuracy })
}

/// Its loss curve: a training record every 67 steps and a validation point per epoch.
fn history() -> DaemonMsg {
    let mut records: Vec<Value> = (1..=42u64)
        .map(|i| {
            json!({ "kind": "train", "step": i * 67, "epoch": (i * 67 / 938) as usize, "time": 2000.0 + i as f64,
                    "train_loss": 2.3 / (1.0 + i as f64 * 0.2) })
        })
        .collect();
    records.extend(VALS.iter().map(|(e, s, l, a)| val(*e, *s, *l, *a)));
    DaemonMsg::Metrics {
        chunk: decode(json!({ "job": JOB, "records": records, "next": 9000 })),
        pushed: false,
    }
}

/// kilnd's kept epochs of `job`: `kept` of them, with a note on the others.
fn epoch_list(job: &str, kept: &[usize]) -> DaemonMsg {
    let epochs: Vec<Value> = VALS
        .iter()
        .filter(|(e, ..)| kept.contains(e))
        .map(|(e, s, l, a)| json!({ "epoch": e, "step": s, "metrics": { "val_loss": l, "val_accuracy": a } }))
        .collect();
    DaemonMsg::Epochs(decode(json!({
        "job": job, "model": "fmnist-cnn", "epochs": epochs,
        "note": "epoch 1: checkpoint removed (checkpoint_keep = 2)",
    })))
}

/// The jobs screen on the three-epoch run, its history and kept epochs 2 and 3 loaded.
fn on_the_run() -> (App, Vec<Effect>) {
    let mut app = populated();
    feed(&mut app, vec![three_epochs()]);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(app.jobs.current().map(|j| j.id.as_str()), Some(JOB));
    let effects = feed(&mut app, vec![history()]);
    feed(&mut app, vec![epoch_list(JOB, &[2, 3])]);
    (app, effects)
}

fn message(app: &App) -> String {
    app.message.as_ref().map(|m| m.text.clone()).unwrap_or_default()
}

#[test]
fn kept_epochs_are_fetched_once_the_history_is_in() {
    let mut app = populated();
    feed(&mut app, vec![three_epochs()]);
    key(&mut app, KeyCode::Char('2'));
    let effects = key(&mut app, KeyCode::Char('g'));
    let epochs = Effect::Request(Request::Epochs(job_id(JOB)));
    assert!(!effects.contains(&epochs), "not before the history: {effects:?}");
    let effects = feed(&mut app, vec![history()]);
    assert!(effects.contains(&epochs), "{effects:?}");
    assert!(
        !feed(&mut app, vec![history()]).contains(&epochs),
        "one request at a time"
    );
}

#[test]
fn a_new_validation_point_or_the_end_of_the_job_asks_again() {
    // The populated console asked for the running job's kept epochs with its history.
    let mut app = populated();
    let running = "j1764434400-ab12";
    let epochs = Effect::Request(Request::Epochs(job_id(running)));
    feed(&mut app, vec![epoch_list(running, &[1])]);
    let chunk = json!({ "job": running, "records": [val(2, 1876, 0.41, 0.853)], "next": 5000 });
    let pushed = DaemonMsg::Metrics {
        chunk: decode(chunk),
        pushed: true,
    };
    assert!(feed(&mut app, vec![pushed]).contains(&epochs), "a new validation point");
    feed(&mut app, vec![epoch_list(running, &[1, 2])]);
    let ended: kiln_core::api::JobView = decode(fixtures::job(running, "succeeded", 1876, 2));
    assert!(
        feed(&mut app, vec![DaemonMsg::Job(ended)]).contains(&epochs),
        "the job ended"
    );

    // A kilnd without the route answers 404: no promotable point, and nothing said.
    let not_found = ClientError::Http {
        status: 404,
        message: "no such route".into(),
    };
    let failed = DaemonMsg::Failed {
        request: Request::Epochs(job_id(running)),
        error: not_found,
    };
    feed(&mut app, vec![failed]);
    assert_eq!(app.message, None);
    assert_eq!(app.jobs.epochs.list(&job_id(running)), None);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char(']'));
    let screen = draw(&app, 100, 30);
    assert!(screen.contains("epoch 1 · step 938 · val_loss 0.420"), "{screen}");
    assert!(screen.contains("· not kept") && !screen.contains("● kept"), "{screen}");
}

#[test]
fn the_cursor_moves_over_the_validation_points_and_marks_the_kept_ones() {
    let (mut app, _) = on_the_run();
    let screen = draw(&app, 100, 30);
    for text in [
        "[ ] move over the validation points",
        "2 kept checkpoints (●)",
        "● kept",
        "○",
    ] {
        assert!(screen.contains(text), "{text:?} missing:\n{screen}");
    }
    assert!(!screen.contains('◉'), "no cursor yet:\n{screen}");

    key(&mut app, KeyCode::Char(']'));
    let screen = draw(&app, 100, 30);
    let first = "epoch 1 · step 938 · val_loss 0.520 · val_accuracy 0.810 · not kept: epoch 1: checkpoint removed";
    assert!(screen.contains(first), "{screen}");
    assert!(screen.contains('◉'), "{screen}");

    key(&mut app, KeyCode::Char(']'));
    let screen = draw(&app, 100, 30);
    let second = "epoch 2 · step 1,876 · val_loss 0.410 · val_accuracy 0.853 · promotable: R registers it";
    assert!(screen.contains(second), "{screen}");

    keys(&mut app, "]]]");
    assert_eq!(
        app.jobs.cursor_point().map(|(_, p, _)| p.epoch),
        Some(3),
        "stops at the last"
    );
    keys(&mut app, "[[[[");
    assert_eq!(
        app.jobs.cursor_point().map(|(_, p, _)| p.epoch),
        Some(1),
        "stops at the first"
    );

    // Another job has a cursor of its own.
    key(&mut app, KeyCode::Char('j'));
    assert!(app.jobs.cursor_point().is_none());
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(app.jobs.cursor_point().map(|(_, p, _)| p.epoch), Some(1));
}

#[test]
fn r_registers_a_kept_epoch_after_asking_and_the_new_version_is_selected() {
    let (mut app, _) = on_the_run();
    keys(&mut app, "]]");
    assert!(keys(&mut app, "R").is_empty(), "nothing sent before confirming");
    let pending = Pending::RegisterEpoch {
        job: job_id(JOB),
        model: name("fmnist-cnn"),
        epoch: 2,
        step: 1876,
    };
    assert_eq!(app.overlay, Some(Overlay::Confirm(pending)));
    assert!(draw(&app, 100, 30).contains("Register epoch 2 (step 1,876) of job"));
    let register = Request::RegisterEpoch {
        job: job_id(JOB),
        epoch: 2,
    };
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Request(register)]);

    let mut registered = fixtures::manifest("fmnist-cnn", 4, 0.853, None);
    registered["checkpoint"] = json!({ "job": JOB, "epoch": 2, "step": 1876 });
    let answer = DaemonMsg::EpochRegistered {
        job: job_id(JOB),
        epoch: 2,
        version: Box::new(decode(registered.clone())),
    };
    let effects = feed(&mut app, vec![answer]);
    assert_eq!(effects, vec![Effect::Request(Request::Models)]);
    assert_eq!(
        message(&app),
        format!("registered fmnist-cnn@4 from job {JOB} epoch 2 — deploy it from the models screen")
    );

    let detail: kiln_core::api::ModelView = decode(json!({ "model": {
        "record": { "name": "fmnist-cnn", "task": "image-classification", "created_at": "2026-11-29T10:00:00Z" },
        "versions": [fixtures::manifest("fmnist-cnn", 1, 0.871, None), fixtures::manifest("fmnist-cnn", 2, 0.902, Some(1)),
                     fixtures::manifest("fmnist-cnn", 3, 0.912, Some(2)), registered],
        "aliases": { "production": 2 },
    }, "problems": [] }));
    feed(&mut app, vec![fixtures::models(), DaemonMsg::ModelDetail(detail.model)]);
    assert_eq!(app.models.current_version(), Some((name("fmnist-cnn"), 4)));
    assert_eq!(app.models.focus, ModelsFocus::Versions);
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Enter);
    let screen = draw(&app, 120, 36);
    assert!(screen.contains(&format!("job {JOB} epoch 2 (step 1,876)")), "{screen}");
    assert_eq!(app.screen, Screen::Models);
}

#[test]
fn r_on_a_point_without_a_checkpoint_says_why_and_readonly_refuses() {
    let (mut app, _) = on_the_run();
    key(&mut app, KeyCode::Char('R'));
    assert!(message(&app).contains("move the epoch cursor ([ / ]) onto a validation point"));
    key(&mut app, KeyCode::Char(']'));
    key(&mut app, KeyCode::Char('R'));
    assert_eq!(app.overlay, None);
    assert_eq!(
        message(&app),
        format!("epoch 1 of {JOB} has no kept checkpoint: epoch 1: checkpoint removed (checkpoint_keep = 2)")
    );
    app.readonly = true;
    key(&mut app, KeyCode::Char(']'));
    key(&mut app, KeyCode::Char('R'));
    assert_eq!(app.overlay, None);
    assert!(message(&app).contains("read-only"), "{}", message(&app));
}

#[test]
fn the_epoch_actions_are_in_the_help_and_the_palette() {
    let (mut app, _) = on_the_run();
    let rows = app.keymap.help_rows();
    for (keys, action) in [
        ("[", Action::PrevEpoch),
        ("]", Action::NextEpoch),
        ("R", Action::RegisterEpoch),
    ] {
        assert!(
            rows.contains(&(keys.to_owned(), action)),
            "{action:?} not bound to {keys}"
        );
    }
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "reg");
    assert!(draw(&app, 80, 24).contains("register-epoch"));
    keys(&mut app, "ister-epoch");
    key(&mut app, KeyCode::Enter);
    assert!(message(&app).contains("onto a validation point"), "{}", message(&app));
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "next-epoch");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.jobs.cursor_point().map(|(_, p, _)| p.epoch), Some(1));
}

#[test]
fn snapshot_jobs_epoch_cursor_on_a_kept_epoch_100x30() {
    let (mut app, _) = on_the_run();
    keys(&mut app, "]]");
    assert_snapshot!(draw(&app, 100, 30));
}
