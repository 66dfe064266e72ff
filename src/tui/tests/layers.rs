//! The layers pane: `layers` metric records fold into each run's layer history without
//! touching the loss chart, `L` swaps the pane in for the chart, a layer's health is marked
//! from its first and latest records, and the status line warns when a job's gradients explode.

use insta::assert_snapshot;
use ratatui::crossterm::event::KeyCode;
use serde_json::{Value, json};

use super::fixtures::{decode, job};
use super::{draw, feed, key, keys, populated};
use crate::tui::action::Action;
use crate::tui::app::App;
use crate::tui::event::DaemonMsg;
use crate::tui::state::layers::LayerHistory;
use kiln_core::inspect::LayerHealth;

/// The fixtures' running cnn job.
const RUNNING: &str = "j1764434400-ab12";

/// A `layers` record at `step` for the cnn's four layers.
fn layers_record(step: u64, grad: f64, dead: f64) -> Value {
    json!({ "kind": "layers", "step": step, "epoch": 1, "time": 1000.0 + step as f64 / 20.0, "layers": [
        { "name": "convs.0", "weight_norm": 4.1, "grad_norm": grad, "update_ratio": 1.2e-3, "dead": 0.0 },
        { "name": "convs.1", "weight_norm": 7.9, "grad_norm": 0.31, "update_ratio": 9.0e-4, "dead": dead },
        { "name": "hidden", "weight_norm": 11.3, "grad_norm": 0.2, "update_ratio": 8.1e-4, "dead": 0.02 },
        { "name": "output", "weight_norm": 3.0, "grad_norm": 0.4, "update_ratio": 1.0e-3 },
    ]})
}

/// Layer records every 100 steps up to `last`: `convs.0`'s gradient norm steady at 0.5, then
/// (with `explode`) growing a hundredfold a record over the last three; `convs.1` ends with
/// `dead` of its channels dead.
fn layer_records(last: u64, explode: bool, dead: f64) -> Vec<Value> {
    let steps: Vec<u64> = (1..=last / 100).map(|i| i * 100).collect();
    let n = steps.len();
    steps
        .iter()
        .enumerate()
        .map(|(i, &step)| {
            let grown = (i + 3).saturating_sub(n) as i32;
            let grad = if explode {
                0.5 * 100f64.powi(grown)
            } else {
                0.5 + 0.01 * i as f64
            };
            let dead = if i + 1 == n { dead } else { 0.1 };
            layers_record(step, grad, dead)
        })
        .collect()
}

fn metrics(job: &str, records: Vec<Value>) -> DaemonMsg {
    DaemonMsg::Metrics {
        chunk: decode(json!({ "job": job, "records": records, "next": 8192 })),
        pushed: false,
    }
}

/// The populated console on the jobs screen, the running job's layers recorded.
fn with_layers(explode: bool, dead: f64) -> App {
    let mut app = populated();
    key(&mut app, KeyCode::Char('2'));
    feed(&mut app, vec![metrics(RUNNING, layer_records(1400, explode, dead))]);
    app
}

fn status_line(screen: &str) -> &str {
    // The test backend quotes each row.
    screen.lines().last().unwrap_or_default().trim_matches('"')
}

#[test]
fn layers_records_feed_the_layer_history_and_leave_the_loss_chart_alone() {
    let plain = populated();
    let app = with_layers(false, 0.1);
    let (before, after) = (
        &plain.jobs.runs[&super::fixtures::job_id(RUNNING)],
        &app.jobs.runs[&super::fixtures::job_id(RUNNING)],
    );
    assert_eq!(
        after.train.len(),
        before.train.len(),
        "layers records are not training-loss points"
    );
    assert_eq!(after.val.len(), before.val.len());
    let names: Vec<&str> = after.layers.watch.layers().iter().map(|w| w.name()).collect();
    assert_eq!(names, ["convs.0", "convs.1", "hidden", "output"]);
    assert!(
        after
            .layers
            .watch
            .layers()
            .iter()
            .all(|w| w.health() == LayerHealth::Ok)
    );
    assert_eq!(app.jobs.layer_warning(), None);
}

#[test]
fn l_swaps_the_layers_pane_for_the_chart_and_the_help_and_palette_know_it() {
    let mut app = with_layers(false, 0.1);
    assert!(!draw(&app, 80, 24).contains("GRAD NORM OVER THE RUN"));
    keys(&mut app, "L");
    let screen = draw(&app, 80, 24);
    assert!(
        screen.contains("layers · j1764434400-ab12") && screen.contains("GRAD NORM OVER THE RUN"),
        "{screen}"
    );
    keys(&mut app, "L");
    assert!(draw(&app, 80, 24).contains("loss · j1764434400-ab12"));
    keys(&mut app, ":layers");
    key(&mut app, KeyCode::Enter);
    assert!(app.jobs.chart.layers, "the palette runs the action by its name");
    let help = app.keymap.help_rows();
    assert!(
        help.iter().any(|(keys, a)| *a == Action::ToggleLayers && keys == "L"),
        "{help:?}"
    );
}

#[test]
fn an_exploding_layer_is_marked_in_the_pane_and_warned_of_in_the_status_line() {
    let mut app = with_layers(true, 0.75);
    keys(&mut app, "L");
    let screen = draw(&app, 80, 24);
    let row = screen.lines().find(|l| l.contains("convs.0")).unwrap_or_default();
    assert!(row.contains("▲ exploding") && row.contains("5.0e+03"), "{screen}");
    let dead = screen.lines().find(|l| l.contains("convs.1")).unwrap_or_default();
    assert!(dead.contains("✕ dead") && dead.contains("75%"), "{screen}");
    assert!(
        status_line(&screen).starts_with(" ⚠ job j1764434400-ab12 layer convs.0: exploding gradients (grad norm"),
        "{screen}"
    );
    assert_snapshot!("snapshot_jobs_layers_exploding_80x24", screen);
    assert_snapshot!("snapshot_jobs_layers_exploding_120x36", draw(&app, 120, 36));
    // It stays while the job is selected, whatever else is pressed.
    keys(&mut app, "s");
    assert!(status_line(&draw(&app, 80, 24)).contains("⚠ job"));
}

#[test]
fn a_running_jobs_warning_raises_the_status_line_before_its_metrics_are_loaded() {
    let mut app = populated();
    let mut other = job("j1764438000-b0b0", "running", 30, 0);
    other["status"]["message"] =
        json!("layer hidden.0: exploding gradients (grad norm 3.2e+04, 480x its first) — the run may diverge");
    let mut phase = job("j1764437000-c0c0", "running", 30, 0);
    phase["status"]["message"] = json!("fine-tuning for 1 epoch(s)");
    feed(
        &mut app,
        vec![DaemonMsg::Job(decode(phase)), DaemonMsg::Job(decode(other))],
    );
    key(&mut app, KeyCode::Char('1'));
    let screen = draw(&app, 120, 36);
    assert!(
        status_line(&screen).starts_with(" ⚠ job j1764438000-b0b0 layer hidden.0: exploding gradients"),
        "{screen}"
    );
}

#[test]
fn a_job_without_layer_statistics_says_why_the_pane_is_empty() {
    let mut app = populated();
    let mut quiet = job("j1764439000-d0d0", "running", 30, 0);
    quiet["spec"]["layer_stats"] = json!(false);
    feed(&mut app, vec![DaemonMsg::Job(decode(quiet))]);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('g'));
    keys(&mut app, "L");
    let screen = draw(&app, 100, 30);
    assert!(screen.contains("layer statistics are off for this job"), "{screen}");
    key(&mut app, KeyCode::Char('j'));
    assert!(draw(&app, 100, 30).contains("waiting for the first layer statistics…"));
}

#[test]
fn the_sparkline_draws_each_layers_gradient_norm_on_a_log_scale() {
    let mut history = LayerHistory::default();
    for record in layer_records(1000, true, 0.1) {
        history.add(&decode(record));
    }
    assert_eq!(
        history.sparkline(0, 10),
        "▁▁▁▁▁▁▁▁▅█",
        "steady, then a hundredfold a record"
    );
    assert_eq!(
        history.sparkline(1, 10),
        "▅▅▅▅▅▅▅▅▅▅",
        "flat: mid-height, not noise stretched"
    );
    assert_eq!(history.sparkline(0, 4).chars().count(), 4, "downsampled to the width");
    assert_eq!(history.sparkline(9, 4), "", "no such layer");
}
