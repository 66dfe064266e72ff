//! `kiln train` / `kiln eval` end to end with real libtorch on small slices of the real data.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{command, json, json_of, kiln, stderr};

fn train(home: &Path, args: &[&str]) -> Value {
    let mut full = vec!["train"];
    full.extend_from_slice(args);
    full.push("--json");
    json_of(&kiln(home, &full))
}

fn metrics(home: &Path, job: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(home.join("jobs").join(job).join("metrics.jsonl")).expect("metrics");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("metric line"))
        .collect()
}

fn versions(home: &Path) -> usize {
    let ls = json(&kiln(home, &["models", "ls", "--versions", "--json"]));
    ls["versions"].as_array().map_or(0, Vec::len)
}

fn show(home: &Path, reference: &str) -> Value {
    json(&kiln(home, &["models", "show", reference, "--json"]))["version"].clone()
}

#[test]
fn cnn_on_a_slice_of_fashion_mnist_learns_and_registers_a_complete_version() {
    let home = tempfile::tempdir().expect("tempdir");
    let done = train(
        home.path(),
        &[
            "cnn",
            "--data",
            "fashion-mnist",
            "--limit",
            "2000",
            "--epochs",
            "2",
            "--config",
            r#"{"conv_channels": [8], "hidden": 32}"#,
            "--name",
            "fm",
        ],
    );
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["version"], "fm@1");
    let lines = metrics(home.path(), done["job"].as_str().expect("job"));
    let train_losses: Vec<f64> = lines
        .iter()
        .filter(|l| l["kind"] == "train")
        .filter_map(|l| l["train_loss"].as_f64())
        .collect();
    assert!(
        train_losses.len() >= 2 && train_losses.last() < train_losses.first(),
        "loss did not fall: {train_losses:?}"
    );
    let vals: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "val").collect();
    assert_eq!(vals.len(), 2, "one validation line per epoch");
    assert!(
        lines
            .iter()
            .filter(|l| l["kind"] == "train")
            .all(|l| l["lr"].is_number() && l["samples_per_sec"].is_number())
    );

    let v = show(home.path(), "fm@1");
    assert!(v["metrics"]["val_accuracy"].as_f64().unwrap_or(0.0) > 0.5, "{v}");
    assert_eq!(v["architecture"]["config"]["conv_channels"][0], 8);
    assert_eq!(v["dataset"]["id"], "fashion-mnist");
    assert!(v["dataset"]["digest"].as_str().unwrap_or("").starts_with("sha256:"));
    assert_eq!((v["seed"].as_u64(), v["device"].as_str()), (Some(42), Some("cpu")));
    assert_eq!(v["job_id"], done["job"]);

    let report = json(&kiln(
        home.path(),
        &["eval", "fm@1", "--data", "fashion-mnist", "--limit", "1000", "--json"],
    ));
    assert_eq!(report["split"], "test");
    assert!(report["accuracy"].as_f64().unwrap_or(0.0) > 0.5, "{report}");
    assert_eq!(report["confusion_matrix"].as_array().map(Vec::len), Some(10));
    assert_eq!(report["per_class"][9]["class"], "ankle boot");
    assert!(report["macro_f1"].is_number() && report["mean_latency_ms_per_sample"].is_number());
    let model = json(&kiln(home.path(), &["models", "show", "fm@1", "--json"]));
    assert_eq!(
        model["evals"][0]["metrics"]["accuracy"], report["accuracy"],
        "report attached to the version"
    );

    // Fine-tuning starts from the stored weights and records the lineage.
    let config = r#"{"conv_channels": [8], "hidden": 32}"#;
    let tuned = train(
        home.path(),
        &[
            "cnn",
            "--data",
            "fashion-mnist",
            "--limit",
            "500",
            "--epochs",
            "1",
            "--config",
            config,
            "--name",
            "fm",
            "--from",
            "fm@1",
        ],
    );
    assert_eq!(tuned["version"], "fm@2", "{tuned}");
    let v2 = show(home.path(), "fm@2");
    assert_eq!(v2["parent"], serde_json::json!({"model": "fm", "version": 1}));
    let mismatched = train(
        home.path(),
        &[
            "cnn",
            "--data",
            "fashion-mnist",
            "--limit",
            "500",
            "--epochs",
            "1",
            "--name",
            "fm",
            "--from",
            "fm@1",
        ],
    );
    assert_eq!(mismatched["state"], "failed");
    assert!(
        mismatched["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot fine-tune"),
        "{mismatched}"
    );
}

#[test]
fn rnn_classifies_fortunes_above_chance_and_eval_reuses_its_vocabulary() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = "fortunes:computers,definitions,people";
    let done = train(
        home.path(),
        &[
            "rnn",
            "--data",
            data,
            "--epochs",
            "4",
            "--lr",
            "0.005",
            "--config",
            r#"{"embed": 32, "hidden": 48}"#,
            "--name",
            "fortune",
        ],
    );
    assert_eq!(done["state"], "succeeded", "{done}");
    let v = show(home.path(), "fortune@1");
    let accuracy = v["metrics"]["val_accuracy"].as_f64().unwrap_or(0.0);
    assert!(accuracy > 0.45, "3 classes: chance is ~0.33, got {accuracy}");
    assert!(
        v["blobs"]["vocab"].is_string(),
        "the tokenizer is stored with the version"
    );
    let report = json(&kiln(home.path(), &["eval", "fortune@1", "--data", data, "--json"]));
    assert!(
        (report["accuracy"].as_f64().unwrap_or(0.0) - accuracy).abs() < 1e-9,
        "eval {report} vs training {accuracy}"
    );
}

#[test]
fn mf_recovers_planted_ratings_close_to_the_noise_floor() {
    let home = tempfile::tempdir().expect("tempdir");
    let done = train(
        home.path(),
        &[
            "mf",
            "--data",
            "ratings-synth",
            "--epochs",
            "12",
            "--batch-size",
            "256",
            "--lr",
            "0.01",
            "--config",
            r#"{"factors": 8}"#,
        ],
    );
    assert_eq!(done["state"], "succeeded", "{done}");
    let v = show(home.path(), "ratings-synth-mf@1");
    let rmse = v["metrics"]["val_rmse"].as_f64().unwrap_or(f64::MAX);
    // The planted noise has σ = 0.2 (the best any model can do); predicting the mean scores ≈ 1.0.
    assert!(
        rmse < 0.4,
        "validation RMSE {rmse} should be within 2σ of the noise floor"
    );
}

#[test]
fn same_seed_same_metrics() {
    // One model per kind of layer: linear + ReLU, conv + max-pool (libtorch's convolution
    // backward, channels-last), and the fused LSTM and GRU.
    let runs: [&[&str]; 4] = [
        &[
            "mlp",
            "--data",
            "fashion-mnist",
            "--limit",
            "1500",
            "--config",
            r#"{"hidden": [32]}"#,
        ],
        &[
            "cnn",
            "--data",
            "fashion-mnist",
            "--limit",
            "600",
            "--config",
            r#"{"conv_channels": [4, 8], "hidden": 16}"#,
        ],
        &[
            "rnn",
            "--data",
            "fortunes:computers,people",
            "--config",
            r#"{"embed": 16, "hidden": 16}"#,
        ],
        &[
            "rnn",
            "--data",
            "fortunes:computers,people",
            "--config",
            r#"{"embed": 16, "hidden": 16, "cell": "gru"}"#,
        ],
    ];
    let home = tempfile::tempdir().expect("tempdir");
    for run in runs {
        let args = [run, &["--epochs", "1", "--seed", "5"]].concat();
        let first = train(home.path(), &args);
        let second = train(home.path(), &args);
        let a = show(home.path(), first["version"].as_str().expect("version"));
        let b = show(home.path(), second["version"].as_str().expect("version"));
        for key in ["val_loss", "val_accuracy", "train_loss"] {
            let (x, y) = (
                a["metrics"][key].as_f64().expect(key),
                b["metrics"][key].as_f64().expect(key),
            );
            assert!((x - y).abs() < 1e-5, "{run:?} {key}: {x} vs {y}");
        }
    }
}

#[test]
fn divergence_fails_the_job_and_registers_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let done = train(
        home.path(),
        &[
            "mf",
            "--data",
            "ratings-synth",
            "--epochs",
            "1",
            "--lr",
            "1e12",
            "--optimizer",
            "sgd",
            "--limit",
            "3000",
        ],
    );
    assert_eq!(done["state"], "failed");
    assert!(
        done["message"].as_str().unwrap_or("").starts_with("diverged at step"),
        "{done}"
    );
    assert_eq!(versions(home.path()), 0);
}

/// Starts `kiln train` in the background, waits for `min_step`, then sends it SIGINT.
fn cancel_after(home: &Path, min_step: u64, args: &[&str]) -> (String, Value) {
    let child = command(env!("CARGO_BIN_EXE_kiln"), home)
        .arg("train")
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kiln train");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let step = kiln_core::jobs::list(home)
            .first()
            .and_then(|j| j.status().ok())
            .map_or(0, |s| s.step);
        if step >= min_step || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(6), "cancelled jobs exit with 6: {out:?}");
    let doc = json_of(&out);
    (doc["job"].as_str().expect("job").to_owned(), doc)
}

const SLOW_MLP: [&str; 10] = [
    "mlp",
    "--data",
    "fashion-mnist",
    "--limit",
    "20000",
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--name=resumed",
];

#[test]
fn cancel_checkpoints_and_resume_continues_from_the_saved_step() {
    let home = tempfile::tempdir().expect("tempdir");
    let (job, doc) = cancel_after(home.path(), 1, &SLOW_MLP);
    assert_eq!(doc["state"], "cancelled");
    assert_eq!(versions(home.path()), 0, "a cancelled job registers nothing");
    let saved: Value = serde_json::from_slice(
        &std::fs::read(home.path().join("jobs").join(&job).join("checkpoints/state.json")).expect("checkpoint"),
    )
    .expect("json");
    let saved_step = saved["position"]["step"].as_u64().expect("step");
    assert!(saved_step > 0);

    let resumed = train(home.path(), &["--resume", &job, "--epochs", "1"]);
    assert_eq!(resumed["state"], "succeeded", "{resumed}");
    let first = &metrics(home.path(), resumed["job"].as_str().expect("job"))[0];
    assert!(
        first["step"].as_u64().expect("step") > saved_step,
        "resume restarted from scratch: {first}"
    );
    let v = show(home.path(), "resumed@1");
    assert_eq!(v["hyperparameters"]["resumed_from_job"], Value::String(job));
}

#[test]
fn a_corrupt_checkpoint_is_reported_not_loaded() {
    let home = tempfile::tempdir().expect("tempdir");
    let (job, _) = cancel_after(home.path(), 1, &SLOW_MLP);
    let checkpoints = home.path().join("jobs").join(&job).join("checkpoints");
    let weights = std::fs::read_dir(&checkpoints)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .expect("model checkpoint");
    let mut bytes = std::fs::read(&weights).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&weights, bytes).expect("corrupt");
    let resumed = train(home.path(), &["--resume", &job]);
    assert_eq!(resumed["state"], "failed");
    assert!(
        resumed["message"].as_str().unwrap_or("").contains("is corrupt"),
        "{resumed}"
    );
    assert_eq!(versions(home.path()), 0);
}

#[test]
fn a_killed_worker_leaves_a_failed_status_naming_the_signal() {
    let home = tempfile::tempdir().expect("tempdir");
    let child = command(env!("CARGO_BIN_EXE_kiln"), home.path())
        .arg("train")
        .args(SLOW_MLP)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    let pid = loop {
        let status = kiln_core::jobs::list(home.path()).first().and_then(|j| j.status().ok());
        if let Some(pid) = status.and_then(|s| s.pid) {
            break pid;
        }
        assert!(Instant::now() < deadline, "worker never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
    let out = child.wait_with_output().expect("wait");
    let doc = json_of(&out);
    assert_eq!(doc["state"], "failed");
    assert!(doc["message"].as_str().unwrap_or("").contains("signal 9"), "{doc}");
    assert!(stderr(&out).is_empty() || !stderr(&out).contains("panicked"));
}
