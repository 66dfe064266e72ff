//! Promote from the curve, end to end with real training and the real daemon: a training job
//! keeps every epoch's checkpoint; `kiln jobs register --epoch 1` registers exactly epoch 1's
//! weights with its lineage, and their evaluation on the validation split reproduces that
//! epoch's validation accuracy; a missing epoch or corrupt weights are refused with nothing
//! registered; the retention setting removes older jobs' epochs.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{json, json_of, kiln};

fn train(home: &Path, args: &[&str]) -> Value {
    let mut full = vec!["--json", "train", "mlp", "--data", "fashion-mnist", "--name", "fm"];
    full.extend_from_slice(args);
    let end = json(&kiln(home, &full));
    assert_eq!(end["state"], "succeeded", "{end:#}");
    end
}

/// The validation lines of a job's metrics, by epoch.
fn val_lines(home: &Path, job: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(home.join("jobs").join(job).join("metrics.jsonl")).expect("metrics");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("metric line"))
        .filter(|l| l["kind"] == "val")
        .collect()
}

fn blob(home: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(home.join("registry/blobs/sha256").join(&hex[..2]).join(hex)).expect("blob")
}

#[test]
fn an_epoch_of_the_curve_registers_its_own_weights_with_lineage() {
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    let _daemon = common::start(home);
    let done = train(
        home,
        &[
            "--limit",
            "3000",
            "--epochs",
            "3",
            "--lr",
            "0.002",
            "--config",
            r#"{"hidden": [32]}"#,
        ],
    );
    assert_eq!(done["version"], "fm@1");
    let job = done["job"].as_str().expect("job id").to_owned();

    // Every epoch is kept, with the figures its validation line has.
    let list = json(&kiln(home, &["--json", "jobs", "epochs", &job]));
    let epochs = list["epochs"].as_array().expect("epochs").clone();
    assert_eq!(epochs.len(), 3, "{list:#}");
    let vals = val_lines(home, &job);
    for (kept, line) in epochs.iter().zip(&vals) {
        assert_eq!(
            (&kept["epoch"], &kept["step"]),
            (&line["epoch"], &line["step"]),
            "{kept:#} {line:#}"
        );
        assert_eq!(kept["metrics"]["val_accuracy"], line["accuracy"], "{kept:#} {line:#}");
    }
    let first = epochs[0]["metrics"]["val_accuracy"].as_f64().expect("accuracy");
    let last = epochs[2]["metrics"]["val_accuracy"].as_f64().expect("accuracy");
    assert!(
        (first - last).abs() > 0.003,
        "epochs 1 and 3 must differ for this test: {list:#}"
    );

    // Epoch 1 becomes fm@2: its weights, its figures, its lineage.
    let manifest = json(&kiln(home, &["--json", "jobs", "register", &job, "--epoch", "1"]));
    assert_eq!(
        (manifest["model"].as_str(), manifest["version"].as_u64()),
        (Some("fm"), Some(2))
    );
    assert_eq!(manifest["checkpoint"]["job"], job.as_str(), "{manifest:#}");
    assert_eq!(manifest["checkpoint"]["epoch"], 1);
    assert_eq!(manifest["checkpoint"]["step"], epochs[0]["step"]);
    assert_eq!(
        manifest["metrics"]["val_accuracy"],
        epochs[0]["metrics"]["val_accuracy"]
    );
    let weights = blob(home, manifest["blobs"]["weights"].as_str().expect("weights"));
    let kept = std::fs::read(home.join("jobs").join(&job).join("checkpoints/epochs/1.safetensors")).expect("kept");
    assert!(weights == kept, "fm@2 holds epoch 1's weights");
    let final_version = json(&kiln(home, &["--json", "models", "show", "fm@1"]))["version"].clone();
    assert_ne!(manifest["blobs"]["weights"], final_version["blobs"]["weights"]);

    // Evaluated on the validation split training scored, fm@2 reproduces epoch 1's accuracy.
    let report = json(&kiln(
        home,
        &["--json", "eval", "fm@2", "--data", "fashion-mnist", "--split", "val"],
    ));
    assert_eq!(report["split"], "validation");
    let accuracy = report["accuracy"].as_f64().expect("accuracy");
    assert!((accuracy - first).abs() < 0.002, "eval {accuracy} vs epoch 1's {first}");
    assert!((accuracy - last).abs() > 0.002, "not the last epoch's figure");

    // Bad input: an epoch that was not kept, then corrupt weights; nothing is registered.
    let missing = kiln(home, &["jobs", "register", &job, "--epoch", "7"]);
    assert_eq!(missing.status.code(), Some(3), "{missing:?}");
    assert!(
        common::stderr(&missing).contains("kept epochs are 1, 2, 3"),
        "{missing:?}"
    );
    let two = home.join("jobs").join(&job).join("checkpoints/epochs/2.safetensors");
    let mut bytes = std::fs::read(&two).expect("epoch 2");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&two, bytes).expect("corrupt");
    let corrupt = kiln(home, &["jobs", "register", &job, "--epoch", "2"]);
    assert!(!corrupt.status.success(), "{corrupt:?}");
    assert!(common::stderr(&corrupt).contains("corrupt"), "{corrupt:?}");
    let versions = json(&kiln(home, &["--json", "models", "show", "fm"]));
    assert_eq!(
        versions["model"]["versions"].as_array().map(Vec::len),
        Some(2),
        "{versions:#}"
    );

    // Retention: with one job kept, the next training removes this job's epochs.
    std::fs::create_dir_all(home.join("config")).expect("config dir");
    std::fs::write(
        home.join("config/config.toml"),
        "[training]\nkeep_epoch_checkpoints = 1\n",
    )
    .expect("config");
    train(
        home,
        &["--limit", "500", "--epochs", "1", "--config", r#"{"hidden": [8]}"#],
    );
    let gone = json_of(&kiln(home, &["--json", "jobs", "epochs", &job]));
    assert_eq!(gone["epochs"].as_array().map(Vec::len), Some(0), "{gone:#}");
    assert!(
        gone["note"]
            .as_str()
            .unwrap_or_default()
            .contains("keep_epoch_checkpoints"),
        "{gone:#}"
    );
}
