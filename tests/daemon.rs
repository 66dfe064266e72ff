//! The daemon over real HTTP on 127.0.0.1 (port 0): token checks, error answers, and jobs
//! submitted, supervised and re-adopted across a daemon restart.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Daemon, command, start, start_with, xor_csv};

/// GET without the daemon's token, or with another: the status and the answer.
fn get_as(d: &Daemon, path: &str, token: Option<&str>) -> (u16, Value) {
    common::http_json("GET", &format!("{}{path}", d.base), token, None)
}

/// `pid`'s environment, as `NAME=value` strings.
fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    raw.split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn spin_count(pid: u32) -> Option<String> {
    environ(pid)
        .into_iter()
        .find_map(|v| v.strip_prefix("GOMP_SPINCOUNT=").map(str::to_owned))
}

/// Polls the job until its state is one of `want`. Jobs waited on for `running` are sized
/// to run for seconds, many polls long, so that state cannot slip by between two polls.
fn wait_state(d: &Daemon, id: &str, want: &[&str]) -> Value {
    d.wait_state(id, want, Duration::from_secs(240))
}

#[test]
fn requests_need_the_token_and_bad_requests_get_json_errors() {
    let home = tempfile::tempdir().expect("tempdir");
    let d = start(home.path());
    assert_eq!(get_as(&d, "/api/v1/health", None).0, 401);
    assert_eq!(get_as(&d, "/api/v1/health", Some("wrong")).0, 401);
    let (code, body) = d.get("/api/v1/nope");
    assert_eq!(code, 404);
    assert!(body["error"].is_string());
    assert_eq!(d.post("/api/v1/jobs", "{not json").0, 400);
    assert_eq!(d.post("/api/v1/jobs", r#"{"arch": "mlp"}"#).0, 422);
    assert_eq!(d.get("/api/v1/models/..%2Fetc").0, 400);
    assert_eq!(d.get("/api/v1/jobs/unknown-job").0, 404);
    let (code, health) = d.get("/api/v1/health");
    assert_eq!(code, 200, "the daemon keeps serving after bad requests");
    assert_eq!(health["kiln"], env!("CARGO_PKG_VERSION"));
    let second = command(common::kilnd_bin(), home.path())
        .args(["--foreground", "--port", "0"])
        .output()
        .expect("run");
    assert!(
        !second.status.success(),
        "a second daemon on the same KILN_HOME must refuse to start"
    );
}

#[test]
fn a_submitted_job_trains_registers_and_survives_a_daemon_restart() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = xor_csv(home.path());
    let mut d = start(home.path());
    let spec = json!({"kind": "train", "arch": "mlp", "data": format!("csv:{}", data.display()), "epochs": 100, "batch_size": 8,
        "lr": 0.01, "optimizer": "adam", "seed": 1, "model": "xor"});
    let (code, job) = d.post("/api/v1/jobs", &spec.to_string());
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let running = wait_state(&d, &id, &["running"]);
    // Hold the worker still so the job is surely mid-run across the restart.
    let worker = nix::unistd::Pid::from_raw(running["status"]["pid"].as_i64().expect("pid") as i32);
    nix::sys::signal::kill(worker, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    // The daemon serves with its own OpenMP spin count; training keeps libgomp's default.
    assert_eq!(spin_count(d.child.id()).as_deref(), Some("3000"));
    assert_eq!(spin_count(worker.as_raw() as u32), None);

    // kill -9 the daemon mid-job: the worker lives on and the next daemon re-adopts it.
    let _ = d.child.kill();
    let _ = d.child.wait();
    d = start(home.path());
    let (_, health) = d.get("/api/v1/health");
    nix::sys::signal::kill(worker, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    assert_eq!(health["running_jobs"][0], Value::String(id.clone()), "{health}");
    let done = wait_state(&d, &id, &["succeeded", "failed", "cancelled"]);
    assert_eq!(
        done["status"]["state"], "succeeded",
        "the re-adopted job finishes: {done}"
    );
    let (code, version) = d.get("/api/v1/models/xor/versions/1");
    assert_eq!(code, 200, "{version}");
    assert_eq!(version["version"]["job_id"], Value::String(id.clone()));
    let (_, metrics) = d.get(&format!("/api/v1/jobs/{id}/metrics?since=0"));
    assert!(metrics["records"].as_array().is_some_and(|r| !r.is_empty()) && metrics["next"].as_u64() > Some(0));

    // A long job cancelled through the API ends `cancelled` with its checkpoint.
    let long = json!({"kind": "train", "arch": "mlp", "data": format!("csv:{}", data.display()), "epochs": 400, "batch_size": 8,
        "model": "xor"});
    let (_, job) = d.post("/api/v1/jobs", &long.to_string());
    let id = job["id"].as_str().expect("id").to_owned();
    wait_state(&d, &id, &["running"]);
    let (_, cancelled) = d.post(&format!("/api/v1/jobs/{id}/cancel"), "");
    assert!(cancelled["status"].is_object());
    let done = wait_state(&d, &id, &["cancelled", "failed", "succeeded"]);
    assert_eq!(done["status"]["state"], "cancelled", "{done}");
    assert!(
        home.path()
            .join("jobs")
            .join(&id)
            .join("checkpoints/state.json")
            .is_file()
    );
}

#[test]
fn an_operators_openmp_spin_count_is_kept() {
    let home = tempfile::tempdir().expect("tempdir");
    let d = start_with(home.path(), &[("GOMP_SPINCOUNT", "77")]);
    assert_eq!(spin_count(d.child.id()).as_deref(), Some("77"));
    assert!(
        !environ(d.child.id())
            .iter()
            .any(|v| v.starts_with("KILN_SET_GOMP_SPINCOUNT="))
    );
}

#[test]
fn a_killed_worker_fails_its_job_and_the_daemon_carries_on() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = xor_csv(home.path());
    let d = start(home.path());
    let spec = json!({"kind": "train", "arch": "mlp", "data": format!("csv:{}", data.display()), "epochs": 400, "batch_size": 8,
        "lr": 0.01, "optimizer": "adam", "seed": 1, "model": "xor"});
    let (_, job) = d.post("/api/v1/jobs", &spec.to_string());
    let id = job["id"].as_str().expect("id").to_owned();
    let running = wait_state(&d, &id, &["running"]);
    let pid = running["status"]["pid"].as_i64().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let done = wait_state(&d, &id, &["failed", "succeeded", "cancelled"]);
    assert_eq!(done["status"]["state"], "failed");
    assert!(
        done["status"]["message"].as_str().unwrap_or("").contains("signal 9"),
        "{done}"
    );
    assert_eq!(d.get("/api/v1/health").0, 200);
}

#[test]
fn kiln_daemon_start_status_jobs_and_stop() {
    let home = tempfile::tempdir().expect("tempdir");
    let kiln = |args: &[&str]| {
        command(env!("CARGO_BIN_EXE_kiln"), home.path())
            .env("KILN_CONTROL_PORT", "0")
            .args(args)
            .output()
            .expect("kiln")
    };
    assert_eq!(kiln(&["daemon", "status"]).status.code(), Some(3), "not running yet");
    let started = kiln(&["daemon", "start", "--json"]);
    assert!(started.status.success(), "{started:?}");
    let status: Value = serde_json::from_slice(&kiln(&["daemon", "status", "--json"]).stdout).expect("json");
    let pid = status["pid"].as_i64().expect("pid");
    let jobs: Value = serde_json::from_slice(&kiln(&["jobs", "ls", "--json"]).stdout).expect("json");
    assert_eq!(jobs["jobs"], json!([]));
    assert_eq!(kiln(&["jobs", "show", "nope"]).status.code(), Some(3));
    assert!(kiln(&["daemon", "stop"]).status.success());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "kilnd still running after stop"
    );
    assert_eq!(kiln(&["daemon", "status"]).status.code(), Some(3));
}

/// Reads `GET /api/v1/events` over a raw socket, sending each `(event, data)` down a channel.
fn subscribe(d: &Daemon) -> std::sync::mpsc::Receiver<(String, Value)> {
    use std::io::{BufRead, BufReader, Write};
    let address = d.base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    write!(
        stream,
        "GET /api/v1/events HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        d.token
    )
    .expect("send");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let value = serde_json::from_str(data).unwrap_or(Value::Null);
                if tx.send((std::mem::take(&mut event), value)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[test]
fn the_event_stream_follows_a_job_to_success_and_telemetry_reports_the_host() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = xor_csv(home.path());
    let d = start(home.path());
    let events = subscribe(&d);
    std::thread::sleep(Duration::from_millis(300));
    // Seconds of training: its running state spans many supervisor ticks.
    let quick = json!({"kind": "train", "arch": "mlp", "data": format!("csv:{}", data.display()), "epochs": 100, "batch_size": 8,
        "model": "xor"});
    let (code, job) = d.post("/api/v1/jobs", &quick.to_string());
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let (mut states, mut metric_lines, mut telemetry, mut registry) = (Vec::new(), 0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(240);
    while registry == 0 || telemetry == 0 || states.last().map(String::as_str) != Some("succeeded") {
        let left = deadline.saturating_duration_since(Instant::now());
        let (event, data) = events.recv_timeout(left).expect("events stopped before the job ended");
        match event.as_str() {
            "job" if data["id"] == *id => states.push(data["status"]["state"].as_str().unwrap_or("").to_owned()),
            "metrics" if data["job"] == *id => metric_lines += data["records"].as_array().map_or(0, Vec::len),
            "telemetry" => telemetry += 1,
            "registry" => registry += 1,
            _ => {}
        }
    }
    assert!(states.contains(&"running".to_owned()), "{states:?}");
    assert!(metric_lines >= 3, "one val line per epoch at least, got {metric_lines}");
    let (code, _) = d.get("/api/v1/models/xor/versions/1");
    assert_eq!(code, 200, "the version the job registered is served");

    let (code, t) = d.get("/api/v1/telemetry");
    assert_eq!(code, 200);
    assert!(
        matches!(t["gpu"]["state"].as_str(), Some("no_gpu" | "available")),
        "{t}"
    );
    let last = t["samples"]
        .as_array()
        .and_then(|s| s.last())
        .cloned()
        .expect("a sample");
    assert!(last["host"]["memory_total_bytes"].as_u64() > Some(0), "{last}");
    assert!(t["sample_cost_us"].as_f64() > Some(0.0));

    let (_, log) = d.get(&format!("/api/v1/jobs/{id}/log?since=0"));
    assert!(log["text"].is_string() && log["next"].is_u64(), "{log}");

    // SIGTERM ends the open event stream too, so the daemon stops promptly.
    let mut d = d;
    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.child.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "kilnd did not stop with an event stream open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    while events.recv_timeout(Duration::from_secs(5)).is_ok() {}
}

#[test]
fn eval_jobs_run_through_the_daemon_and_attach_their_report() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = xor_csv(home.path());
    let csv_data = format!("csv:{}", data.display());
    let kiln = |args: &[&str]| {
        command(env!("CARGO_BIN_EXE_kiln"), home.path())
            .args(args)
            .output()
            .expect("kiln")
    };
    let trained = kiln(&[
        "train", "mlp", "--data", &csv_data, "--epochs", "2", "--name", "xor", "--detach", "--json",
    ]);
    assert!(trained.status.success(), "{trained:?}");
    let job: Value = serde_json::from_slice(&trained.stdout).expect("json");
    let id = job["id"].as_str().expect("id");
    let waited = kiln(&["jobs", "wait", id, "--timeout", "4m"]);
    assert!(waited.status.success(), "{waited:?}");
    assert!(kiln(&["jobs", "logs", id]).status.success());

    let out = kiln(&["eval", "xor@1", "--data", &csv_data, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(report["rows"].as_u64() > Some(0), "{report}");
    assert!(report["accuracy"].as_f64().is_some());
    let shown: Value = serde_json::from_slice(&kiln(&["models", "show", "xor@1", "--json"]).stdout).expect("json");
    assert_eq!(shown["evals"].as_array().map(Vec::len), Some(1), "{shown}");
    let client = kiln_core::client::Blocking::new(home.path()).expect("client");
    let digest: kiln_core::names::Digest = shown["evals"][0]["report"]
        .as_str()
        .expect("report digest")
        .parse()
        .expect("digest");
    let stored = client.run(|c| c.report(&digest)).expect("blob");
    assert_eq!(Some(stored.accuracy), Some(report["accuracy"].as_f64()), "{stored:?}");
    let absent: kiln_core::names::Digest = format!("sha256:{}", "0".repeat(64)).parse().expect("digest");
    let missing_blob = client.run(|c| c.report(&absent));
    assert!(missing_blob.is_err_and(|e| e.is_not_found()));

    // A version that does not exist is refused at submission: nothing queues.
    let jobs_before = std::fs::read_dir(home.path().join("jobs")).map_or(0, Iterator::count);
    let missing = kiln(&["eval", "xor@7", "--data", &csv_data]);
    assert_eq!(missing.status.code(), Some(3), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("xor"), "{missing:?}");
    let jobs_after = std::fs::read_dir(home.path().join("jobs")).map_or(0, Iterator::count);
    assert_eq!(jobs_before, jobs_after, "a refused eval queued a job");
    assert_eq!(kiln(&["jobs", "wait", "j1-0000"]).status.code(), Some(3));
}

#[test]
fn a_pinned_job_records_its_data_digests_and_a_stale_pin_is_refused_naming_the_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let d = start(home.path());
    let data = xor_csv(home.path());
    let source = format!("csv:{}", data.display());
    // `kiln train --pin` sends an empty pin: the daemon fills in the files as they are now.
    let spec = json!({"kind": "train", "arch": "mlp", "data": source, "epochs": 2, "batch_size": 8,
                      "model": "pinned", "device": "cpu", "pin": []});
    let (code, job) = d.post("/api/v1/jobs", &spec.to_string());
    assert_eq!(code, 201, "{job}");
    let pin = job["spec"]["pin"].clone();
    let digest = format!("{}", kiln_core::registry::sha256(&std::fs::read(&data).expect("read")));
    assert_eq!(pin, json!([{"path": data, "digest": digest}]), "{job:#}");
    let id = job["id"].as_str().expect("id").to_owned();
    let done = wait_state(&d, &id, &["succeeded", "failed"]);
    assert_eq!(done["status"]["state"], "succeeded", "{done:#}");
    let recorded: Value = serde_json::from_slice(
        &std::fs::read(home.path().join("jobs").join(&id).join("data.json")).expect("data.json"),
    )
    .expect("json");
    assert_eq!(recorded, pin, "the job records the digests of the files it read");
    let (_, version) = d.get("/api/v1/models/pinned/versions/1");
    assert_eq!(version["version"]["dataset"]["files"], pin, "{version:#}");

    // The file changes: a job pinned to the old digests is refused before anything queues.
    std::fs::write(&data, "0,0,1\n0,1,0\n1,0,0\n1,1,1\n").expect("rewrite");
    let stale = json!({"kind": "train", "arch": "mlp", "data": source, "model": "pinned", "pin": pin});
    let (code, answer) = d.post("/api/v1/jobs", &stale.to_string());
    assert_eq!(code, 422, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains("xor.csv changed") && error.contains(&digest), "{error}");
    let generated = json!({"kind": "train", "arch": "mf", "data": "ratings-synth", "model": "r", "pin": []});
    let (code, answer) = d.post("/api/v1/jobs", &generated.to_string());
    assert_eq!(code, 422, "{answer}");
    assert!(
        answer["error"].as_str().is_some_and(|e| e.contains("nothing to pin")),
        "{answer}"
    );
}
