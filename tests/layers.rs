//! Per-layer statistics end to end (issue #20): real `kiln train` jobs on a slice of
//! Fashion-MNIST write `layers` metric records, and a run with an absurd learning rate is
//! marked exploding (in its metrics and its log) before the divergence check ends it.

use std::path::Path;

use kiln_core::inspect::{LayerHealth, LayerStats};
use kiln_core::jobs::MetricRecord;
use kiln_core::kinds::MetricKind;
use serde_json::Value;

mod common;
use common::{json_of, kiln};

/// `kiln train mlp --data fashion-mnist …` with `args`, followed to its end.
fn train(home: &Path, args: &[&str]) -> Value {
    let mut full = vec!["train", "mlp", "--data", "fashion-mnist", "--epochs", "1", "--json"];
    full.extend_from_slice(args);
    json_of(&kiln(home, &full))
}

fn records(home: &Path, job: &Value) -> Vec<MetricRecord> {
    let path = home
        .join("jobs")
        .join(job.as_str().expect("job id"))
        .join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).expect("metrics.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn layers(records: &[MetricRecord]) -> Vec<(&MetricRecord, &[LayerStats])> {
    records
        .iter()
        .filter(|r| r.kind == MetricKind::Layers)
        .map(|r| (r, r.layers.as_deref().expect("a layers record carries layers")))
        .collect()
}

#[test]
fn a_normal_run_records_finite_statistics_for_every_layer_and_none_when_asked_not_to() {
    let home = tempfile::tempdir().expect("tempdir");
    let done = train(home.path(), &["--limit", "2000", "--name", "fm"]);
    assert_eq!(done["state"], "succeeded", "{done}");
    let all = records(home.path(), &done["job"]);
    let recorded = layers(&all);
    assert!(
        recorded.len() >= 2,
        "the first step and the epoch's end at least: {recorded:?}"
    );
    for (record, stats) in &recorded {
        let names: Vec<&str> = stats.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["hidden.0", "hidden.1", "output"], "step {}", record.step);
        for s in *stats {
            let figures = [s.weight_norm, s.grad_norm, s.update_ratio];
            assert!(
                figures.iter().all(|f| f.is_finite() && *f >= 0.0 && *f < f64::MAX),
                "{s:?}"
            );
            assert!(s.weight_norm > 0.0 && s.grad_norm > 0.0, "{s:?}");
            match s.name.starts_with("hidden") {
                true => assert!(s.dead.is_some_and(|d| (0.0..=1.0).contains(&d)), "{s:?}"),
                false => assert_eq!(s.dead, None, "the output layer has no ReLU"),
            }
        }
    }
    let (first, last) = (recorded[0].1, recorded[recorded.len() - 1].1);
    for (f, l) in first.iter().zip(last) {
        assert_ne!(LayerHealth::of(f, l), LayerHealth::Exploding, "{f:?} → {l:?}");
    }
    let train_lines = all.iter().filter(|r| r.kind == MetricKind::Train).count();
    assert!(train_lines >= 1 && all.iter().all(|r| r.kind != MetricKind::Train || r.layers.is_none()));

    let quiet = train(home.path(), &["--limit", "500", "--name", "fm", "--no-layer-stats"]);
    assert_eq!(quiet["state"], "succeeded", "{quiet}");
    assert!(
        layers(&records(home.path(), &quiet["job"])).is_empty(),
        "--no-layer-stats records none"
    );
}

#[test]
fn an_absurd_learning_rate_is_marked_exploding_before_the_divergence_ends_the_job() {
    let home = tempfile::tempdir().expect("tempdir");
    let done = train(
        home.path(),
        &["--limit", "2000", "--lr", "1e4", "--optimizer", "sgd", "--name", "boom"],
    );
    assert_eq!(done["state"], "failed", "{done}");
    let message = done["message"].as_str().unwrap_or("");
    assert!(message.starts_with("diverged at step"), "{done}");
    let diverged_at: u64 = message
        .trim_start_matches("diverged at step ")
        .split(':')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no step in {message}"));
    let all = records(home.path(), &done["job"]);
    let recorded = layers(&all);
    let first = recorded.first().map(|(_, s)| *s).expect("a first layers record");
    let exploding = recorded.iter().find(|(record, stats)| {
        record.step <= diverged_at
            && stats
                .iter()
                .zip(first)
                .any(|(l, f)| LayerHealth::of(f, l) == LayerHealth::Exploding)
    });
    assert!(
        exploding.is_some(),
        "no layers record marked exploding by step {diverged_at}: {recorded:?}"
    );
    let job = done["job"].as_str().expect("job id");
    let log = std::fs::read_to_string(home.path().join("jobs").join(job).join("worker.log")).expect("log");
    assert!(
        log.lines()
            .any(|l| l.starts_with("kilnd worker: layer ") && l.contains(": exploding gradients (grad norm ")),
        "the worker logs the explosion: {log}"
    );
}
