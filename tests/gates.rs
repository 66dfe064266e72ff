//! The gates before a switch, end to end with real training, the real daemon and real HTTP:
//! a first deploy says which checks it skipped; a genuinely worse candidate is refused by the
//! golden check with its figures while the version in force keeps answering; `--force`
//! switches anyway and the journal records the override and the figures; a better candidate
//! passes both checks; `--dry-run` reports the gates without switching.

use std::path::Path;

use serde_json::{Value, json};

mod common;
use common::kiln;

fn train(home: &Path, extra: &[&str]) -> String {
    train_mlp(home, "fm", "[64]", extra)
}

/// Trains an mlp with `hidden` layers on Fashion-MNIST as model `name`; the version made.
fn train_mlp(home: &Path, name: &str, hidden: &str, extra: &[&str]) -> String {
    let config = format!(r#"{{"hidden": {hidden}}}"#);
    let mut args = vec![
        "--json",
        "train",
        "mlp",
        "--data",
        "fashion-mnist",
        "--config",
        &config,
        "--name",
        name,
    ];
    args.extend(extra);
    let end = common::json(&kiln(home, &args));
    assert_eq!(end["state"], "succeeded", "{end:#}");
    end["version"].as_str().expect("version").to_owned()
}

fn answered_by(home: &Path) -> Value {
    let address = std::fs::read_to_string(home.join("daemon/inference_address")).expect("inference address");
    let body = json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": vec![0.5; 784]}]});
    let url = format!("http://{}/v2/models/fm/infer", address.trim());
    let (status, answer) = common::http_json("POST", &url, None, Some(body.to_string().as_bytes()));
    assert_eq!(status, 200, "{answer:#}");
    answer["model_version"].clone()
}

/// Held by each test for its whole run: the latency gate times forward passes, and the other
/// test's training and timed passes (a wide model's among them) on the same two cores would
/// be noise these tests do not mean to measure.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn check<'a>(gates: &'a Value, name: &str) -> &'a Value {
    gates["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {gates:#}"))
}

#[test]
fn a_worse_candidate_is_refused_by_the_golden_gate_and_force_is_journaled() {
    let _alone = one_at_a_time();
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    // v1: a decent model (two epochs on 6,000 images, about 0.8 accuracy).
    assert_eq!(
        train(home, &["--limit", "6000", "--epochs", "2", "--lr", "0.003"]),
        "fm@1"
    );
    // v2: genuinely worse (a few steps at a tiny learning rate: near chance).
    assert_eq!(
        train(
            home,
            &["--limit", "256", "--epochs", "1", "--lr", "0.00001", "--seed", "3"]
        ),
        "fm@2"
    );

    // A first deploy runs what makes sense and says what it skipped.
    let first = common::json(&kiln(home, &["--json", "deploy", "fm@1", "--gate-samples", "500"]));
    let gates = &first["gates"];
    assert_eq!(check(gates, "golden")["outcome"], "skipped", "{gates:#}");
    assert!(
        check(gates, "golden")["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("first deploy"),
        "{gates:#}"
    );
    assert!(
        gates["candidate"]["accuracy"].as_f64().is_some_and(|a| a > 0.6),
        "{gates:#}"
    );
    assert_eq!(answered_by(home), "1");

    // A dry run shows what a deploy would find, and switches nothing.
    let dry = kiln(
        home,
        &["--json", "deploy", "fm@2", "--dry-run", "--gate-samples", "500"],
    );
    assert_eq!(dry.status.code(), Some(5), "{dry:?}");
    let dry = common::json_of(&dry);
    assert_eq!(
        (dry["passed"].as_bool(), dry["current"].as_u64()),
        (Some(false), Some(1)),
        "{dry:#}"
    );
    assert_eq!(check(&dry["report"], "golden")["outcome"], "failed", "{dry:#}");
    assert_eq!(answered_by(home), "1");

    // The worse candidate is refused with its figures; v1 keeps answering.
    let refused = kiln(home, &["deploy", "fm@2", "--gate-samples", "500"]);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    let message = common::stderr(&refused);
    for needle in [
        "golden FAILED",
        "accuracy",
        "in force",
        "pt",
        "agreement",
        "v1 keeps serving",
        "--force",
    ] {
        assert!(message.contains(needle), "no {needle:?} in: {message}");
    }
    assert_eq!(answered_by(home), "1");
    let journal = common::json(&kiln(home, &["--json", "deployments", "--history"]));
    assert_eq!(
        journal["entries"].as_array().map(Vec::len),
        Some(1),
        "a refusal switches nothing: {journal:#}"
    );

    // --force switches, and the journal keeps the override and the figures.
    let forced = common::json(&kiln(
        home,
        &["--json", "deploy", "fm@2", "--force", "--gate-samples", "500"],
    ));
    assert_eq!(forced["gates"]["forced"], true, "{forced:#}");
    assert_eq!(check(&forced["gates"], "golden")["outcome"], "failed");
    assert_eq!(forced["reason"], "deploy --force");
    assert_eq!(answered_by(home), "2");
    let journal = common::json(&kiln(home, &["--json", "deployments", "--history"]));
    let last = journal["entries"]
        .as_array()
        .and_then(|e| e.last())
        .cloned()
        .unwrap_or_default();
    let (new, old) = (
        last["gates"]["candidate"]["accuracy"].as_f64().unwrap_or(1.0),
        last["gates"]["current"]["accuracy"].as_f64().unwrap_or(0.0),
    );
    assert!(new + 0.01 < old, "the journal keeps the figures: {last:#}");
    assert!(last["gates"]["agreement"].as_f64().is_some(), "{last:#}");

    // Back to the better version: both checks pass (the same rows, timed the same way).
    let better = common::json(&kiln(home, &["--json", "deploy", "fm@1", "--gate-samples", "500"]));
    let gates = &better["gates"];
    assert_eq!(check(gates, "golden")["outcome"], "passed", "{gates:#}");
    assert_eq!(check(gates, "latency")["outcome"], "passed", "{gates:#}");
    assert!(
        gates["current"]["p99_ms"].as_f64().is_some_and(|p| p > 0.0),
        "{gates:#}"
    );
    assert_eq!(gates["rows"], 500);
    assert_eq!(answered_by(home), "1");

    // A rollback is not gated: it goes back to what served before, at once.
    let rolled = common::json(&kiln(home, &["--json", "rollback", "fm"]));
    assert!(rolled["gates"].is_null(), "{rolled:#}");
    assert_eq!(answered_by(home), "2");
}

#[test]
fn a_much_slower_candidate_is_refused_by_the_latency_gate() {
    let _alone = one_at_a_time();
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    for hidden in ["[16]", "[2048, 2048]"] {
        train_mlp(home, "wide", hidden, &["--limit", "1000", "--epochs", "1"]);
    }
    let first = kiln(home, &["--json", "deploy", "wide@1", "--gate-samples", "200"]);
    assert!(first.status.success(), "{first:?}");

    // Two hidden layers of 2,048 cost some 400× the multiply-adds of one of 16 at batch 1:
    // every timed pass fails the 1.25× limit, and the report says it repeated.
    let dry = kiln(
        home,
        &["--json", "deploy", "wide@2", "--dry-run", "--gate-samples", "200"],
    );
    assert_eq!(dry.status.code(), Some(5), "{dry:?}");
    let dry = common::json_of(&dry);
    let latency = check(&dry["report"], "latency");
    assert_eq!(latency["outcome"], "failed", "{dry:#}");
    assert!(
        latency["detail"].as_str().is_some_and(|d| d.contains("pass 5 of 5")),
        "{dry:#}"
    );
    let (new, old) = (
        dry["report"]["candidate"]["p99_ms"].as_f64().unwrap_or(0.0),
        dry["report"]["current"]["p99_ms"].as_f64().unwrap_or(f64::INFINITY),
    );
    assert!(new > 1.25 * old, "{dry:#}");

    let refused = kiln(home, &["deploy", "wide@2", "--gate-samples", "200"]);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    let message = common::stderr(&refused);
    assert!(
        message.contains("latency FAILED") && message.contains("v1 keeps serving"),
        "{message}"
    );
}
