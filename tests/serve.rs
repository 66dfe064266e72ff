//! The inference endpoint over real HTTP (KServe v2 on 127.0.0.1, port 0) and deploy /
//! rollback through the real `kiln` and `kilnd` binaries.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{command, json, kiln, kilnd, stderr};

fn fixture(name: &str) -> String {
    common::fixture(name).to_str().expect("utf8").to_owned()
}

const ROW: [f32; 4] = [0.5, -1.0, 2.0, 0.25];

/// A home with `tiny` versions 1 (hidden 8) and 2 (hidden 9) imported from PyTorch files.
fn home_with_two_versions() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    for (file, hidden) in [("mlp-4-8-3.pt", 8), ("mlp-4-9-3.pt", 9)] {
        let config = format!(r#"{{"inputs": 4, "hidden": [{hidden}], "classes": 3}}"#);
        let out = kiln(
            home.path(),
            &[
                "models",
                "import",
                "tiny",
                &fixture(file),
                "--arch",
                "mlp",
                "--config",
                &config,
            ],
        );
        assert!(out.status.success(), "{out:?}");
    }
    home
}

fn inference(home: &Path) -> String {
    let address = std::fs::read_to_string(home.join("daemon/inference_address")).expect("inference address");
    format!("http://{}", address.trim())
}

fn post(url: &str, body: impl Into<Vec<u8>>) -> (u16, Value) {
    common::http_json("POST", url, None, Some(&body.into()))
}

/// Posts `length` bytes to `url` (`http://host:port/path`) from a plain socket and returns the
/// answer's status code. The status is read while the body is still being sent: a server
/// refusing an oversized body answers and closes before the rest arrives, so the sending side
/// may see a broken pipe (which an HTTP client would report instead of the 413).
fn post_oversized(url: &str, length: usize) -> u16 {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("URL path"));
    let mut stream = TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut sender = stream.try_clone().expect("clone");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    let send = std::thread::spawn(move || {
        let chunk = vec![b' '; 1 << 16];
        let _ = sender.write_all(head.as_bytes());
        let mut left = length;
        while left > 0 {
            let n = left.min(chunk.len());
            if sender.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    });
    let mut status = String::new();
    BufReader::new(&mut stream).read_line(&mut status).expect("status line");
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = send.join();
    status
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status:?}"))
}

fn get(url: &str) -> (u16, String) {
    common::http("GET", url, None, None)
}

fn infer_body(shape: &[usize], datatype: &str, data: Value) -> String {
    json!({ "id": "t1", "inputs": [{ "name": "input", "shape": shape, "datatype": datatype, "data": data }] })
        .to_string()
}

/// softmax of what `kilnd predict` (the in-process forward) gives for ROW.
fn in_process(home: &Path, reference: &str) -> Vec<f64> {
    let input = serde_json::to_string(&[ROW]).expect("json");
    let out = json(&kilnd(home, &["predict", reference, "--input", &input]));
    let logits: Vec<f64> = out["outputs"][0]
        .as_array()
        .expect("row")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect();
    let max = logits.iter().copied().fold(f64::MIN, f64::max);
    let sum: f64 = logits.iter().map(|v| (v - max).exp()).sum();
    logits.iter().map(|v| (v - max).exp() / sum).collect()
}

fn probabilities(answer: &Value) -> Vec<f64> {
    let outputs = answer["outputs"].as_array().expect("outputs");
    let probs = outputs
        .iter()
        .find(|o| o["name"] == "probabilities")
        .expect("probabilities");
    probs["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    assert!(
        got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5),
        "{got:?} vs {want:?}"
    );
}

#[test]
fn infer_equals_the_in_process_forward_and_bad_requests_get_4xx() {
    let home = home_with_two_versions();
    let deployed = json(&kiln(home.path(), &["deploy", "tiny@1", "--json"]));
    assert_eq!(deployed["to"], 1, "{deployed}");
    let base = inference(home.path());
    let url = format!("{base}/v2/models/tiny/infer");
    let want = in_process(home.path(), "tiny@1");

    let (code, answer) = post(&url, infer_body(&[1, 4], "FP32", json!([ROW])));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["model_version"], "1");
    assert_eq!(answer["id"], "t1");
    assert_close(&probabilities(&answer), &want);
    let flat = post(&url, infer_body(&[1, 4], "FP32", json!(ROW)));
    assert_close(&probabilities(&flat.1), &want);

    // The binary tensor extension, as Triton's clients send by default.
    let header = json!({ "inputs": [{ "name": "input", "shape": [1, 4], "datatype": "FP32",
        "parameters": { "binary_data_size": 16 } }], "outputs": [{ "name": "probabilities",
        "parameters": { "binary_data": true } }] })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend(ROW.iter().flat_map(|v| v.to_le_bytes()));
    let sent = Instant::now();
    let resp = common::exchange(
        "POST",
        &url,
        &[("Inference-Header-Content-Length", header.len().to_string())],
        Some(&body),
    );
    let round_trip = sent.elapsed().as_secs_f64() * 1e3;
    assert_eq!(resp.status, 200);
    // Server-Timing: the queue wait and the forward pass, in ms, within the round trip.
    let timing = resp.header("server-timing").expect("Server-Timing").to_owned();
    let durations: Vec<(&str, f64)> = timing
        .split(", ")
        .map(|metric| {
            let (name, dur) = metric.split_once(";dur=").expect("name;dur=ms");
            (name, dur.parse().expect("milliseconds"))
        })
        .collect();
    assert_eq!(
        durations.iter().map(|d| d.0).collect::<Vec<_>>(),
        ["queue", "forward"],
        "{timing}"
    );
    assert!(durations[1].1 > 0.0, "{timing}");
    assert!(
        durations[0].1 + durations[1].1 <= round_trip,
        "{timing} in {round_trip} ms"
    );
    let json_length: usize = resp
        .header("inference-header-content-length")
        .expect("header")
        .parse()
        .expect("length");
    let bytes = resp.body;
    let binary: Vec<f64> = bytes[json_length..]
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    assert_close(&binary, &want);

    let metadata: Value = serde_json::from_str(&get(&format!("{base}/v2/models/tiny")).1).expect("json");
    assert_eq!(
        metadata["inputs"][0],
        json!({ "name": "input", "datatype": "FP32", "shape": [-1, 4] })
    );
    assert_eq!(get(&format!("{base}/v2/models/tiny/ready")).0, 200);
    assert_eq!(get(&format!("{base}/v2/models/tiny/versions/1/ready")).0, 200);
    assert_eq!(get(&format!("{base}/v2/health/ready")).0, 200);
    assert_eq!(get(&format!("{base}/v2")).0, 200);

    let bad = [
        (
            "wrong shape",
            url.clone(),
            infer_body(&[1, 5], "FP32", json!([[1, 2, 3, 4, 5]])),
            400,
        ),
        (
            "wrong datatype",
            url.clone(),
            infer_body(&[1, 4], "INT64", json!([[1, 2, 3, 4]])),
            400,
        ),
        (
            "data/shape mismatch",
            url.clone(),
            infer_body(&[2, 4], "FP32", json!([ROW])),
            400,
        ),
        ("garbage JSON", url.clone(), "{\"inputs\": [".to_owned(), 400),
        (
            "data nested a million deep",
            url.clone(),
            format!(
                r#"{{"inputs":[{{"name":"input","shape":[1,4],"datatype":"FP32","data":{}"#,
                "[".repeat(1 << 20)
            ),
            400,
        ),
        (
            "unknown model",
            format!("{base}/v2/models/nope/infer"),
            infer_body(&[1, 4], "FP32", json!([ROW])),
            404,
        ),
        (
            "unknown version",
            format!("{base}/v2/models/tiny/versions/9/infer"),
            infer_body(&[1, 4], "FP32", json!([ROW])),
            404,
        ),
    ];
    for (what, url, body, want_code) in bad {
        let (code, answer) = post(&url, body);
        assert_eq!(code, want_code, "{what}: {answer}");
        assert!(answer["error"].is_string(), "{what}: {answer}");
    }
    let code = post_oversized(&url, 17 << 20);
    assert_eq!(code, 413, "an oversized body");

    let (code, again) = post(&url, infer_body(&[1, 4], "FP32", json!([ROW])));
    assert_eq!(code, 200, "the endpoint keeps serving after bad requests: {again}");
    let (_, metrics) = get(&format!("{base}/metrics"));
    assert!(
        metrics.contains(r#"kiln_inference_requests_total{model="tiny",version="1",code="400"} 5"#),
        "{metrics}"
    );
    assert!(metrics.contains("kiln_inference_batch_size_bucket"), "{metrics}");
    assert!(metrics.contains("kiln_models_loaded 1"), "{metrics}");
    // The four answered requests each waited in the queue once, for one of their forward passes.
    let count = |name: &str| -> u64 {
        let line = format!("{name}_count{{model=\"tiny\",version=\"1\"}} ");
        let value = metrics.lines().find_map(|l| l.strip_prefix(line.as_str()));
        value.expect("a count").parse().expect("an integer")
    };
    assert_eq!(count("kiln_inference_queue_duration_seconds"), 4, "{metrics}");
    let forward_passes = count("kiln_inference_forward_duration_seconds");
    assert!((1..=4).contains(&forward_passes), "{metrics}");
    dashboard_reads_only_what_metrics_has(&metrics);
}

/// Every series the Grafana dashboard in assets/ queries is one /metrics serves, with the
/// `model` and `version` labels its panels group by.
fn dashboard_reads_only_what_metrics_has(metrics: &str) {
    let path = common::fixture("../grafana/kiln-serving.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 8, "{exprs:?}");
    for expr in exprs {
        let mut rest = expr;
        while let Some(at) = rest.find("kiln_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let served = metrics
                .lines()
                .filter(|l| !l.starts_with('#'))
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")));
            assert!(
                served,
                "the dashboard queries {name}, which /metrics does not serve:\n{metrics}"
            );
        }
        if expr.contains("by (model, version") {
            assert!(metrics.contains(r#"model="tiny",version="1""#));
        }
    }
}

#[test]
fn deploys_and_rollbacks_under_load_fail_no_request_and_a_restart_restores_them() {
    let home = home_with_two_versions();
    json(&kiln(home.path(), &["deploy", "tiny@1", "--json"]));
    let want = [in_process(home.path(), "tiny@1"), in_process(home.path(), "tiny@2")];
    let url = format!("{}/v2/models/tiny/infer", inference(home.path()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let (code, answer) = post(&url, infer_body(&[1, 4], "FP32", json!([ROW])));
                    seen.push((code, answer));
                }
                seen
            })
        })
        .collect();
    for round in 0..5 {
        let d = kiln(home.path(), &["deploy", "tiny@2", "--json"]);
        assert!(d.status.success(), "deploy {round}: {d:?}");
        let r = kiln(home.path(), &["rollback", "tiny", "--json"]);
        assert!(r.status.success(), "rollback {round}: {r:?}");
        assert_eq!(json(&r)["to"], 1);
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<(u16, Value)> = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
    assert!(answers.len() > 20, "only {} requests", answers.len());
    let mut versions = std::collections::BTreeSet::new();
    for (code, answer) in &answers {
        assert_eq!(*code, 200, "a request failed during the switches: {answer}");
        let version: usize = answer["model_version"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("version");
        assert_close(&probabilities(answer), &want[version - 1]);
        versions.insert(version);
    }
    assert_eq!(versions.len(), 2, "both versions answered: {versions:?}");

    let history = json(&kiln(home.path(), &["deployments", "--history", "--json"]));
    assert_eq!(history["entries"].as_array().map(Vec::len), Some(11));
    let shown = json(&kiln(home.path(), &["models", "show", "tiny", "--json"]));
    assert_eq!(shown["model"]["aliases"]["production"], 1, "{shown}");

    // Deploy 2, restart the daemon: version 2 serves again without anyone deploying it.
    json(&kiln(home.path(), &["deploy", "tiny@2", "--json"]));
    assert!(kiln(home.path(), &["daemon", "stop"]).status.success());
    assert!(kiln(home.path(), &["daemon", "start"]).status.success());
    let url = format!("{}/v2/models/tiny/infer", inference(home.path()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let (code, answer) = post(&url, infer_body(&[1, 4], "FP32", json!([ROW])));
        if code == 200 {
            break answer;
        }
        assert!(Instant::now() < deadline, "not restored: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(answer["model_version"], "2");
}

#[test]
fn a_version_that_fails_to_load_leaves_the_old_one_serving() {
    let home = home_with_two_versions();
    json(&kiln(home.path(), &["deploy", "tiny@1", "--json"]));
    let v2 = json(&kiln(home.path(), &["models", "show", "tiny@2", "--json"]));
    let digest = v2["version"]["blobs"]["weights"].as_str().expect("digest");
    let hex = digest.trim_start_matches("sha256:");
    let blob = home.path().join("registry/blobs/sha256").join(&hex[..2]).join(hex);
    let mut bytes = std::fs::read(&blob).expect("blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).expect("corrupt the blob");

    let failed = kiln(home.path(), &["deploy", "tiny@2"]);
    assert!(!failed.status.success());
    let message = String::from_utf8_lossy(&failed.stderr);
    assert!(message.contains("tiny@2") && message.contains("corrupt"), "{message}");
    let (code, answer) = post(
        &format!("{}/v2/models/tiny/infer", inference(home.path())),
        infer_body(&[1, 4], "FP32", json!([ROW])),
    );
    assert_eq!((code, answer["model_version"].clone()), (200, json!("1")), "{answer}");
    let unknown = kiln(home.path(), &["rollback", "tiny"]);
    assert_eq!(
        unknown.status.code(),
        Some(5),
        "nothing before the first deploy: {unknown:?}"
    );

    // The daemon is the single writer: the version being served cannot be removed, forced or
    // not, and `production` cannot be moved off it or removed; another version goes.
    let served = kiln(home.path(), &["models", "rm", "tiny@1", "--force"]);
    assert_eq!(served.status.code(), Some(5), "{served:?}");
    assert!(stderr(&served).contains("being served"), "{served:?}");
    let moved = kiln(home.path(), &["models", "alias", "tiny@2", "production"]);
    assert_eq!(moved.status.code(), Some(5), "{moved:?}");
    let unaliased = kiln(home.path(), &["models", "unalias", "tiny", "production"]);
    assert_eq!(unaliased.status.code(), Some(5), "{unaliased:?}");
    let removed = json(&kiln(home.path(), &["models", "rm", "tiny@2", "--json"]));
    assert_eq!(removed["removed"], 2, "{removed}");
    assert_eq!(
        kiln(home.path(), &["models", "rm", "tiny@2"]).status.code(),
        Some(3),
        "already gone"
    );

    // ... and after a daemon restart the endpoint still serves it.
    assert!(kiln(home.path(), &["daemon", "stop"]).status.success());
    assert!(kiln(home.path(), &["daemon", "start"]).status.success());
    let url = format!("{}/v2/models/tiny/infer", inference(home.path()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let (code, answer) = loop {
        let (code, answer) = post(&url, infer_body(&[1, 4], "FP32", json!([ROW])));
        if code == 200 || Instant::now() > deadline {
            break (code, answer);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((code, answer["model_version"].clone()), (200, json!("1")), "{answer}");
}

#[test]
fn a_public_bind_needs_a_token_and_the_token_is_checked() {
    let home = tempfile::tempdir().expect("tempdir");
    let refused = command(common::kilnd_bin(), home.path())
        .args(["--foreground", "--port", "0", "--inference-bind", "0.0.0.0:0"])
        .output()
        .expect("kilnd");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("token"),
        "{refused:?}"
    );

    let token = "a-long-inference-token-0123456789";
    let out = command(env!("CARGO_BIN_EXE_kiln"), home.path())
        .env("KILN_INFERENCE_TOKEN", token)
        .args(["daemon", "start"])
        .output()
        .expect("kiln");
    assert!(out.status.success(), "{out:?}");
    let url = format!("{}/v2/health/live", inference(home.path()));
    assert_eq!(get(&url).0, 401);
    let (code, body) = common::http("GET", &url, Some(token), None);
    assert_eq!(code, 200, "{body}");
}

#[test]
fn a_test_request_from_the_dataset_shows_prediction_and_label() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = format!("csv:{}", common::xor_csv(home.path()).display());
    let trained = kiln(
        home.path(),
        &[
            "train", "mlp", "--data", &data, "--epochs", "2", "--name", "xor", "--json",
        ],
    );
    assert!(trained.status.success(), "{trained:?}");
    json(&kiln(home.path(), &["deploy", "xor", "--json"]));
    let client = kiln_core::client::Blocking::new(home.path()).expect("client");
    let xor: kiln_core::names::Name = "xor".parse().expect("name");
    let answer = client.run(|c| c.try_sample(&xor, 3)).expect("try");
    assert_eq!(answer.version, 1, "{answer:?}");
    let kiln_core::api::TryOutcome::Class { probabilities, .. } = &answer.outcome else {
        panic!("a classifier's answer: {answer:?}");
    };
    assert_eq!(probabilities.len(), 2, "{answer:?}");
    let nope: kiln_core::names::Name = "nope".parse().expect("name");
    let err = client.run(|c| c.try_sample(&nope, 0)).expect_err("not deployed");
    assert!(err.to_string().contains("not deployed"), "{err}");
}

#[test]
fn a_request_past_its_timeout_gets_504_and_the_endpoint_keeps_serving() {
    let home = home_with_two_versions();
    // Importing started a daemon with the default timeout: start one with 1 ms instead.
    assert!(kiln(home.path(), &["daemon", "stop"]).status.success());
    let started = command(env!("CARGO_BIN_EXE_kiln"), home.path())
        .env("KILN_INFER_TIMEOUT_MS", "1")
        .args(["daemon", "start"])
        .output()
        .expect("kiln");
    assert!(started.status.success(), "{started:?}");
    json(&kiln(home.path(), &["deploy", "tiny@1", "--json"]));
    // 100,000 rows: reading and parsing them alone takes far longer than the 1 ms timeout.
    let rows: Vec<[f32; 4]> = vec![ROW; 100_000];
    let url = format!("{}/v2/models/tiny/infer", inference(home.path()));
    let (code, answer) = post(&url, infer_body(&[100_000, 4], "FP32", json!(rows)));
    let shown: String = answer.to_string().chars().take(300).collect();
    assert_eq!(code, 504, "{shown}");
    assert!(answer["error"].as_str().unwrap_or("").contains("1ms"), "{answer}");
    let (code, _) = get(&format!("{}/v2/health/live", inference(home.path())));
    assert_eq!(code, 200, "the endpoint keeps serving");
}
