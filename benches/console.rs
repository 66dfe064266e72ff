//! Console benchmark: the DESIGN §7 console targets, measured in one run and printed as
//! ratios (measured / target; ≤ 1.0 meets the target).
//!
//! * frame time with a 1M-point loss history (target ≤ 2 ms): the jobs screen drawn into a
//!   120×40 `TestBackend` (layout, downsampling, chart rasterising, buffer diff);
//! * filter keystroke over 10,000 versions (≤ 20 ms): `update` for one typed character of
//!   `/` plus the redraw of the models screen;
//! * time to first frame (≤ 150 ms): config + theme + keymap + tokio runtime + first frame,
//!   in process, plus the exec of the `kiln` binary (`kiln --version`) when cargo built it;
//! * RSS (≤ 40 MB): this process's resident size while holding all of the above (the
//!   console's state is what dominates; the real binary adds its code pages);
//! * idle CPU (≤ 0.5 %): 60 s of idle traffic (one telemetry sample a second, which the
//!   console folds in without redrawing off the GPU screen) replayed through `update`.
//!
//! Run: `cargo bench --bench console`.

use std::time::{Duration, Instant};

use kiln::tui::app::App;
use kiln::tui::event::{DaemonMsg, Event};
use kiln::tui::keymap::Keymap;
use kiln::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::{Value, json};

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("bench fixture does not decode: {e}"))
}

fn terminal(w: u16, h: u16) -> Terminal<TestBackend> {
    Terminal::new(TestBackend::new(w, h)).unwrap_or_else(|e| panic!("test backend: {e}"))
}

fn draw(t: &mut Terminal<TestBackend>, app: &App) {
    if let Err(e) = t.draw(|f| kiln::tui::ui::render(f, app)) {
        panic!("draw: {e}");
    }
}

fn key(app: &mut App, code: KeyCode) {
    app.update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn feed(app: &mut App, msg: DaemonMsg) {
    app.update(Event::from(msg));
}

/// A running job with `points` training-loss records (fed in chunks, as the wire does).
fn loss_history(app: &mut App, points: u64) {
    let job = json!({ "id": "j1764434400-ab12",
        "spec": { "id": "j1764434400-ab12", "kind": "train", "arch": "cnn", "data": "fashion-mnist", "epochs": 10,
                  "model": "fmnist-cnn" },
        "status": { "state": "running", "step": points, "epoch": 3, "total_steps": points * 2,
                    "updated_at": "2026-11-29T16:40:00Z" } });
    feed(app, DaemonMsg::Jobs(vec![decode(job)]));
    let chunk = 2_000;
    for start in (0..points).step_by(chunk as usize) {
        let records: Vec<Value> = (start..(start + chunk).min(points))
            .map(|i| {
                let loss = 2.0 / (1.0 + i as f64 * 1e-4) + 0.05 * ((i * 7919 % 1000) as f64 / 1000.0);
                json!({ "kind": "train", "step": i + 1, "epoch": 0, "time": i as f64 * 0.01, "train_loss": loss,
                        "samples_per_sec": 1700.0 })
            })
            .collect();
        feed(
            app,
            DaemonMsg::Metrics {
                chunk: decode(json!({ "job": "j1764434400-ab12", "records": records, "next": start })),
                pushed: false,
            },
        );
    }
}

/// `models` models of `per_model` versions each.
fn registry(app: &mut App, models: usize, per_model: u32) {
    let names: Vec<String> = (0..models).map(|i| format!("model-{i:03}")).collect();
    let rows: Vec<Value> = names
        .iter()
        .map(|n| json!({ "name": n, "task": "image-classification", "versions": per_model, "latest": per_model, "aliases": { "production": 1 } }))
        .collect();
    feed(
        app,
        DaemonMsg::Models(decode(json!({ "models": rows, "problems": [] }))),
    );
    for (m, name) in names.iter().enumerate() {
        let arch = ["mlp", "cnn", "rnn", "mf"][m % 4];
        let versions: Vec<Value> = (1..=per_model)
            .map(|v| {
                json!({ "model": name, "version": v, "created_at": "2026-11-29T16:40:00Z", "kiln_version": "0.1.0",
                             "architecture": { "name": arch, "config": {} }, "dataset": { "id": "fashion-mnist" },
                             "metrics": { "accuracy": 0.8 + f64::from(v) * 1e-3 }, "blobs": {} })
            })
            .collect();
        let detail = json!({ "record": { "name": name, "task": "image-classification", "created_at": "2026-11-29T16:40:00Z" },
                             "versions": versions, "aliases": { "production": 1 } });
        feed(app, DaemonMsg::ModelDetail(decode(detail)));
    }
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len().max(1) as u32
}

fn frame_time(app: &mut App) -> Duration {
    key(app, KeyCode::Char('2'));
    let mut t = terminal(120, 40);
    draw(&mut t, app);
    let mut samples = Vec::new();
    for i in 0..200 {
        if i % 50 == 0 {
            key(app, KeyCode::Char('z'));
        }
        let start = Instant::now();
        draw(&mut t, app);
        samples.push(start.elapsed());
    }
    mean(&samples)
}

fn filter_keystroke(app: &mut App) -> Duration {
    key(app, KeyCode::Char('1'));
    let mut t = terminal(120, 40);
    let mut samples = Vec::new();
    for _ in 0..5 {
        key(app, KeyCode::Char('/'));
        for c in "model-04 cnn 7".chars() {
            let start = Instant::now();
            key(app, KeyCode::Char(c));
            draw(&mut t, app);
            samples.push(start.elapsed());
        }
        for _ in 0..3 {
            let start = Instant::now();
            key(app, KeyCode::Backspace);
            draw(&mut t, app);
            samples.push(start.elapsed());
        }
        key(app, KeyCode::Esc);
    }
    mean(&samples)
}

fn first_frame() -> (Duration, Option<Duration>) {
    let start = Instant::now();
    let app = kiln::tui::build_app(
        &kiln::tui::Options::default(),
        kiln::tui::config::config_dir().as_deref(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let mut t = terminal(120, 40);
    draw(&mut t, &app);
    let in_process = start.elapsed();
    drop(runtime);
    let exec = option_env!("CARGO_BIN_EXE_kiln").map(|bin| {
        let start = Instant::now();
        let _ = std::process::Command::new(bin).arg("--version").output();
        start.elapsed()
    });
    (in_process, exec)
}

fn idle_cpu(app: &mut App) -> f64 {
    key(app, KeyCode::Char('1'));
    let sample: Value = json!({ "at_ms": 0, "gpus": [], "host": { "cpu_pct": 3.0, "cpus": 16, "memory_used_bytes": 1u64 << 30, "memory_total_bytes": 16u64 << 30, "jobs": [] } });
    let cpu0 = cpu_seconds();
    for s in 0..60u64 {
        let mut sample = sample.clone();
        sample["at_ms"] = json!(10_000_000 + s * 1000);
        feed(app, DaemonMsg::Sample(decode(sample)));
    }
    (cpu_seconds() - cpu0) / 60.0 * 100.0
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// `VmRSS` or `VmHWM` (peak) of this process, in MB.
fn rss_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn report(what: &str, measured: f64, target: f64, unit: &str) {
    let verdict = if measured <= target { "ok" } else { "MISSED" };
    println!(
        "{what:<44} {measured:>10.3} {unit:<3} target ≤ {target:<6} ratio {:>6.3}  {verdict}",
        measured / target
    );
}

fn main() {
    let (first, exec) = first_frame();
    let mut app = App::new(Theme::default(), Keymap::default(), false);
    let build = Instant::now();
    loss_history(&mut app, 1_000_000);
    registry(&mut app, 100, 100);
    println!(
        "state: 1,000,000 loss points + 10,000 versions fed through update in {:.2?}",
        build.elapsed()
    );
    report(
        "frame, jobs screen, 1M-point loss history",
        frame_time(&mut app).as_secs_f64() * 1e3,
        2.0,
        "ms",
    );
    report(
        "filter keystroke over 10,000 versions",
        filter_keystroke(&mut app).as_secs_f64() * 1e3,
        20.0,
        "ms",
    );
    let exec_ms = exec.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    report(
        "time to first frame (in process + exec)",
        first.as_secs_f64() * 1e3 + exec_ms,
        150.0,
        "ms",
    );
    if exec.is_none() {
        println!("  (kiln binary not built by cargo here: exec time not included)");
    }
    report("idle CPU (60 s of telemetry ticks)", idle_cpu(&mut app), 0.5, "%");
    report("RSS holding that state", rss_mb("VmRSS:"), 40.0, "MB");
    println!(
        "  (peak {:.1} MB, including the JSON the fixtures were decoded from)",
        rss_mb("VmHWM:")
    );
}
