//! Canary deploys end to end, with real training, the real daemon and four clients sending
//! requests in a loop throughout: a candidate that fails (a fault injected through the
//! test-only `KILN_TEST_CANARY_FAULT_PERCENT`) is rolled back automatically, with no failed
//! request but the injected ones; a healthy one is promoted with no failed request; `kiln
//! canary status|abort` work by hand; a daemon restart during a canary aborts it to the
//! version in force, which serves.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::kiln;

fn train(home: &Path) -> String {
    let args = [
        "--json",
        "train",
        "mlp",
        "--data",
        "fashion-mnist",
        "--limit",
        "2000",
        "--epochs",
        "1",
        "--config",
        r#"{"hidden": [32]}"#,
        "--name",
        "fm",
    ];
    let end = common::json(&kiln(home, &args));
    assert_eq!(end["state"], "succeeded", "{end:#}");
    end["version"].as_str().expect("version").to_owned()
}

fn url(home: &Path) -> String {
    let address = std::fs::read_to_string(home.join("daemon/inference_address")).expect("inference address");
    format!("http://{}/v2/models/fm/infer", address.trim())
}

/// Four clients posting one image in a loop until stopped; each returns what it saw:
/// (status, model_version or error).
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Vec<(u16, String)>>>,
}

impl Load {
    fn start(home: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let body =
            json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": vec![0.5; 784]}]})
                .to_string();
        let clients = (0..4)
            .map(|_| {
                let (stop, url, body) = (stop.clone(), url(home), body.clone());
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let (status, answer) = common::http_json("POST", &url, None, Some(body.as_bytes()));
                        let what = match status {
                            200 => answer["model_version"].as_str().unwrap_or("?").to_owned(),
                            _ => answer["error"].as_str().unwrap_or("?").to_owned(),
                        };
                        seen.push((status, what));
                    }
                    seen
                })
            })
            .collect();
        Self { stop, clients }
    }

    fn stop(self) -> Vec<(u16, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.clients
            .into_iter()
            .flat_map(|c| c.join().expect("client thread"))
            .collect()
    }
}

/// Waits for a journal entry of `model` matching `wanted`; returns it.
fn wait_for_entry(home: &Path, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let journal = common::json(&kiln(home, &["--json", "deployments", "--history"]));
        if let Some(entry) = journal["entries"].as_array().into_iter().flatten().find(|e| wanted(e)) {
            return entry.clone();
        }
        assert!(Instant::now() < deadline, "no {what} in the journal: {journal:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn canaries_roll_back_on_errors_promote_when_healthy_and_a_restart_aborts_them() {
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    // A daemon whose canary candidates fail half their requests (test-only setting).
    let faulty = common::start_with(home, &[("KILN_TEST_CANARY_FAULT_PERCENT", "50")]);
    assert_eq!(train(home), "fm@1");
    assert_eq!(train(home), "fm@2");
    assert!(
        kiln(home, &["deploy", "fm@1", "--gate-samples", "200"])
            .status
            .success()
    );

    // The canaries below pass --force: the gates (whose latency check is timed, and these
    // clients load the machine) have their own test; here they must not decide the outcome.

    // 1. A failing candidate is rolled back automatically; clients see only injected faults.
    let load = Load::start(home);
    let started = common::json(&kiln(
        home,
        &[
            "--json",
            "deploy",
            "fm@2",
            "--canary",
            "20%",
            "--requests",
            "100000",
            "--force",
            "--gate-samples",
            "200",
        ],
    ));
    assert_eq!(
        (started["action"].as_str(), started["candidate"].as_u64()),
        (Some("canary"), Some(2))
    );
    let rolled = wait_for_entry(home, "automatic rollback", |e| e["action"] == "abort");
    let reason = rolled["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("rolled back") && reason.contains("error rate"),
        "{rolled:#}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let seen = load.stop();
    let failed: Vec<&(u16, String)> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(!failed.is_empty(), "the fault was injected");
    assert!(
        failed.iter().all(|(s, e)| *s == 500 && e.contains("injected fault")),
        "only injected faults fail: {:?}",
        failed.iter().find(|(s, e)| *s != 500 || !e.contains("injected"))
    );
    assert!(
        seen.iter().any(|(s, v)| *s == 200 && v == "2"),
        "the candidate answered some"
    );
    let tail = &seen[seen.len().saturating_sub(20)..];
    assert!(
        tail.iter().all(|(s, v)| *s == 200 && v == "1"),
        "v1 serves after the rollback: {tail:?}"
    );
    drop(faulty);

    // 2. Without faults, a healthy candidate is promoted; no request fails.
    let _daemon = common::start(home);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !common::json(&kiln(home, &["--json", "deployments"]))["ready"]
        .as_bool()
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "v1 never restored");
        std::thread::sleep(Duration::from_millis(100));
    }
    let load = Load::start(home);
    let canary = kiln(
        home,
        &[
            "deploy",
            "fm@2",
            "--canary",
            "25%",
            "--requests",
            "200",
            "--force",
            "--gate-samples",
            "200",
        ],
    );
    assert!(canary.status.success(), "{canary:?}");
    let promoted = wait_for_entry(home, "promotion", |e| e["action"] == "deploy" && e["to"] == 2);
    assert!(
        promoted["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("canary promoted"),
        "{promoted:#}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let seen = load.stop();
    assert!(
        seen.iter().all(|(s, _)| *s == 200),
        "no request fails: {:?}",
        seen.iter().find(|(s, _)| *s != 200)
    );
    assert!(seen.len() > 200, "{} requests", seen.len());
    let tail = &seen[seen.len().saturating_sub(20)..];
    assert!(
        tail.iter().all(|(_, v)| v == "2"),
        "v2 serves everything once promoted: {tail:?}"
    );

    // 3. By hand: status while it runs, then abort; v2 (in force) keeps serving.
    let started = kiln(
        home,
        &[
            "deploy",
            "fm@1",
            "--canary",
            "10%",
            "--for",
            "10m",
            "--force",
            "--gate-samples",
            "200",
        ],
    );
    assert!(started.status.success(), "{started:?}");
    let status = common::json(&kiln(home, &["--json", "canary", "status"]));
    let running = &status["canaries"][0];
    assert_eq!(
        (running["stable"].as_u64(), running["candidate"].as_u64()),
        (Some(2), Some(1)),
        "{status:#}"
    );
    let busy = kiln(home, &["deploy", "fm@1"]);
    assert_eq!(busy.status.code(), Some(5), "one canary at a time: {busy:?}");

    // 4. A restart during the canary aborts it, journaled; v2 serves.
    assert!(kiln(home, &["daemon", "stop"]).status.success());
    drop(_daemon);
    let _daemon = common::start(home);
    let aborted = wait_for_entry(home, "the restart's abort", |e| {
        e["action"] == "abort" && e["reason"].as_str().is_some_and(|r| r.contains("restarted"))
    });
    assert_eq!(aborted["to"], 2, "{aborted:#}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body =
            json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": vec![0.5; 784]}]});
        let (status, answer) = common::http_json("POST", &url(home), None, Some(body.to_string().as_bytes()));
        if status == 200 {
            assert_eq!(answer["model_version"], "2", "{answer:#}");
            break;
        }
        assert!(Instant::now() < deadline, "not served after the restart: {answer:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let none = common::json(&kiln(home, &["--json", "canary", "status"]));
    assert_eq!(none["canaries"].as_array().map(Vec::len), Some(0), "{none:#}");
    let gone = kiln(home, &["canary", "abort", "fm"]);
    assert_eq!(gone.status.code(), Some(3), "{gone:?}");
}

/// An image that differs from request to request, so two versions can disagree on some.
fn image(i: usize) -> Value {
    let pixels: Vec<f32> = (0..784)
        .map(|j| ((i * 31 + j * (i % 7 + 1)) % 97) as f32 / 97.0)
        .collect();
    json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": pixels}]})
}

fn class_of(url: &str, i: usize) -> (String, i64) {
    let (status, answer) = common::http_json("POST", url, None, Some(image(i).to_string().as_bytes()));
    assert_eq!(status, 200, "{answer:#}");
    let class = answer["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["name"] == "class"))
        .and_then(|t| t["data"][0].as_i64())
        .unwrap_or_else(|| panic!("no class in {answer:#}"));
    (answer["model_version"].as_str().unwrap_or("?").to_owned(), class)
}

fn shadow_status(home: &Path) -> Value {
    let status = common::json(&kiln(home, &["--json", "canary", "status"]));
    status["canaries"][0].clone()
}

#[test]
fn a_shadow_answers_copies_counts_disagreement_and_ends_only_by_hand() {
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    let _daemon = common::start(home);
    assert_eq!(train(home), "fm@1");
    // v2: barely trained (another seed, a tiny learning rate), so it disagrees with v1 often.
    let end = common::json(&kiln(
        home,
        &[
            "--json",
            "train",
            "mlp",
            "--data",
            "fashion-mnist",
            "--limit",
            "256",
            "--epochs",
            "1",
            "--seed",
            "9",
            "--lr",
            "0.00001",
            "--config",
            r#"{"hidden": [32]}"#,
            "--name",
            "fm",
        ],
    ));
    assert_eq!(end["version"], "fm@2", "{end:#}");
    assert!(
        kiln(home, &["deploy", "fm@1", "--gate-samples", "200"])
            .status
            .success()
    );
    let shadow = kiln(
        home,
        &[
            "--json",
            "deploy",
            "fm@2",
            "--shadow",
            "--requests",
            "40",
            "--force",
            "--gate-samples",
            "200",
        ],
    );
    let started = common::json(&shadow);
    assert_eq!(
        (started["action"].as_str(), started["to"].as_u64()),
        (Some("shadow"), Some(1)),
        "{started:#}"
    );

    // Every request is answered by v1; the shadow gets a copy of each of the first 40.
    let infer = url(home);
    let answers: Vec<i64> = (0..40)
        .map(|i| {
            let (version, class) = class_of(&infer, i);
            assert_eq!(version, "1", "the version in force answers everything");
            class
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = shadow_status(home);
        if status["compared"] == 40 {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the copies were not all compared: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (status["shadow"].as_bool(), status["skipped"].as_u64()),
        (Some(true), Some(0)),
        "{status:#}"
    );
    assert_eq!(status["progress"], 1.0, "40 copies end its window: {status:#}");
    assert_eq!(status["candidate_requests"], 40, "{status:#}");

    // The disagreement it counted is what v2 answers for the same images (asked by version,
    // which a shadow whose window ended no longer copies).
    let v2 = infer.replace("/fm/infer", "/fm/versions/2/infer");
    let disagree = (0..40)
        .filter(|&i| class_of(&v2, i) != ("2".to_owned(), answers[i]))
        .count();
    assert!(disagree > 0, "a barely trained v2 disagrees with v1 somewhere");
    let status = shadow_status(home);
    assert_eq!(status["disagreements"].as_u64(), Some(disagree as u64), "{status:#}");
    assert_eq!(
        status["compared"], 40,
        "a finished window copies nothing more: {status:#}"
    );

    // It is never promoted by itself; by hand it is, with its figures journaled.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(shadow_status(home)["candidate"], 2, "still waiting for the operator");
    let promoted = common::json(&kiln(home, &["--json", "canary", "promote", "fm"]));
    assert_eq!(
        (promoted["action"].as_str(), promoted["to"].as_u64()),
        (Some("deploy"), Some(2)),
        "{promoted:#}"
    );
    let reason = promoted["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("shadow of v2 promoted by hand") && reason.contains(&format!("{disagree} of 40 rows")),
        "{reason}"
    );
    assert_eq!(class_of(&infer, 0).0, "2");

    // A shadow refuses other switches while it runs; a restart aborts it to the version in force.
    assert!(
        kiln(
            home,
            &["deploy", "fm@1", "--shadow", "--gate-samples", "200", "--force"]
        )
        .status
        .success()
    );
    assert_eq!(kiln(home, &["rollback", "fm"]).status.code(), Some(5));
    assert!(kiln(home, &["daemon", "stop"]).status.success());
    drop(_daemon);
    let _daemon = common::start(home);
    let aborted = wait_for_entry(home, "the restart's abort", |e| {
        e["action"] == "abort"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("restarted during the shadow"))
    });
    assert_eq!(aborted["to"], 2, "{aborted:#}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, answer) = common::http_json("POST", &url(home), None, Some(image(1).to_string().as_bytes()));
        if status == 200 {
            assert_eq!(answer["model_version"], "2", "{answer:#}");
            break;
        }
        assert!(Instant::now() < deadline, "not served after the restart: {answer:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
