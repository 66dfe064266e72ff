//! Hyperparameter studies end to end: the real daemon and workers on a slice of
//! Fashion-MNIST. A study runs with ASHA and prunes a trial, a promoted trial becomes a
//! version with its lineage, a daemon killed with SIGKILL mid-study finishes it with exactly
//! the planned trials, a crashed trial is retried once and then recorded failed, and bad
//! specs are refused with their line before anything queues.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{kiln, start};

fn write(home: &Path, name: &str, text: &str) -> String {
    let path = home.join(name);
    std::fs::write(&path, text).expect("write spec");
    path.display().to_string()
}

/// `kiln --json studies show NAME`.
fn study(home: &Path, name: &str) -> Value {
    common::json(&kiln(home, &["--json", "studies", "show", name]))
}

/// Polls the study until `done` holds for it (or panics after `limit`).
fn wait_for(home: &Path, name: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let view = study(home, name);
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "study never got there: {view:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A random-search study of `trials` trials, two at a time, each 3 epochs of 20,000 images
/// (seconds each: a test can act while trials run), tuning `params` (TOML lines).
fn random_study(name: &str, trials: usize, params: &str) -> String {
    format!(
        r#"name = "{name}"
base = {{ arch = "mlp", data = "fashion-mnist", epochs = 3, limit = 20000, config = {{ hidden = [64] }} }}
objective = {{ metric = "val_accuracy" }}
budget = {{ trials = {trials}, concurrent = 2 }}
sampler = "random"
seed = 3
[params]
{params}
"#
    )
}

/// Waits until some trial of the study has scored an epoch.
fn wait_for_a_scored_epoch(home: &Path, name: &str) -> Value {
    wait_for(home, name, Duration::from_secs(120), |v| {
        trials(v)
            .iter()
            .any(|t| t["values"].as_array().is_some_and(|e| !e.is_empty()))
    })
}

fn completed(view: &Value) -> bool {
    view["state"] == "completed"
}

fn trials(view: &Value) -> &Vec<Value> {
    view["trials"].as_array().expect("trials")
}

/// The jobs tagged for `study`, as (trial, attempt) pairs.
fn trial_jobs(home: &Path, study: &str) -> Vec<(u64, u64)> {
    let jobs = common::json(&kiln(home, &["--json", "jobs", "ls"]));
    let mut tags: Vec<(u64, u64)> = jobs["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["spec"]["trial"]["study"] == study)
        .map(|j| {
            let tag = &j["spec"]["trial"];
            (
                tag["trial"].as_u64().expect("trial"),
                tag["attempt"].as_u64().expect("attempt"),
            )
        })
        .collect();
    tags.sort_unstable();
    tags
}

#[test]
fn a_study_runs_prunes_with_asha_and_promotes_a_trial() {
    let home = tempfile::tempdir().expect("temp home");
    let _daemon = start(home.path());
    let spec = write(home.path(), "study.toml", &common::asha_study("fm-asha"));
    let out = kiln(home.path(), &["--json", "tune", &spec]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let view = common::json_of(&out);
    assert!(completed(&view), "{view:#}");
    let all = trials(&view);
    assert_eq!(all.len(), 6);
    let pruned: Vec<&Value> = all.iter().filter(|t| t["state"] == "pruned").collect();
    assert!(!pruned.is_empty(), "no trial was pruned: {view:#}");
    for trial in &pruned {
        let reason = trial["pruned"]["reason"].as_str().expect("reason");
        assert!(reason.starts_with("ASHA rung"), "{reason}");
        assert!(trial["pruned"]["epoch"].as_u64().is_some_and(|e| e < 4), "{trial:#}");
        let job = trial["jobs"][0].as_str().expect("job");
        let job = common::json(&kiln(home.path(), &["--json", "jobs", "show", job]));
        assert_eq!(job["status"]["state"], "pruned");
        assert!(
            job["status"]["message"].as_str().is_some_and(|m| m.contains("ASHA")),
            "{job:#}"
        );
    }
    // Trial 0 (a good lr) meets at each rung only trials started beside it or after it ended.
    assert_eq!(all[0]["state"], "completed", "{view:#}");
    assert!(
        pruned.iter().any(|t| t["params"]["lr"] == 1e-6),
        "a hopeless lr is pruned: {view:#}"
    );
    assert_eq!(trial_jobs(home.path(), "fm-asha").len(), 6, "one job per trial");
    let best = trials(&view)
        .iter()
        .filter(|t| t["params"]["lr"] == 3e-3)
        .map(|t| t["number"].as_u64().expect("number"))
        .collect::<Vec<_>>();
    assert_eq!(best.len(), 2);

    let out = kiln(home.path(), &["--json", "studies", "promote", "fm-asha"]);
    let manifest = common::json(&out);
    assert_eq!(manifest["model"], "fm-asha");
    let link = &manifest["study"];
    assert_eq!(link["study"], "fm-asha");
    assert!(best.contains(&link["trial"].as_u64().expect("trial")), "{manifest:#}");
    assert_eq!(link["params"]["lr"], 3e-3);
    assert!(
        manifest["metrics"]["val_accuracy"].as_f64().is_some_and(|a| a > 0.6),
        "{manifest:#}"
    );
    assert_eq!(manifest["architecture"]["config"]["hidden"], serde_json::json!([64]));
    // The promoted version serves like any other.
    let out = kiln(home.path(), &["deploy", "fm-asha@1"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
}

#[test]
fn a_daemon_killed_mid_study_finishes_it_with_exactly_the_planned_trials() {
    let home = tempfile::tempdir().expect("temp home");
    let mut daemon = start(home.path());
    let spec = write(
        home.path(),
        "study.toml",
        &random_study(
            "fm-kill",
            5,
            "lr = { log_uniform = [1e-4, 1e-2] }\nbatch_size = { choice = [64, 128] }",
        ),
    );
    let out = kiln(home.path(), &["tune", "--detach", &spec]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    // Mid-study: a trial has scored an epoch and most of the study is still to run.
    wait_for_a_scored_epoch(home.path(), "fm-kill");
    daemon.child.kill().expect("SIGKILL the daemon");
    daemon.child.wait().expect("reap");
    drop(daemon);
    // Read from disk: a CLI call now would start a daemon of its own.
    let state = std::fs::read(home.path().join("studies/fm-kill/state.json")).expect("state.json");
    let before: Value = serde_json::from_slice(&state).expect("state.json is whole");
    assert!(
        !completed(&before),
        "the study ended before the kill: make its trials longer"
    );
    let _daemon = start(home.path());
    let view = wait_for(home.path(), "fm-kill", Duration::from_secs(300), completed);
    assert_eq!(trials(&view).len(), 5, "{view:#}");
    for trial in trials(&view) {
        assert_eq!(trial["state"], "completed", "{trial:#}");
        assert_eq!(trial["jobs"].as_array().map(Vec::len), Some(1), "{trial:#}");
        assert_eq!(trial["values"].as_array().map(Vec::len), Some(3), "{trial:#}");
    }
    assert_eq!(
        trial_jobs(home.path(), "fm-kill"),
        (0..5).map(|t| (t, 1)).collect::<Vec<_>>(),
        "every trial ran exactly once"
    );
}

/// The pid of the running worker of trial `number`'s attempt `attempt`, once it runs.
fn worker_pid(home: &Path, name: &str, number: usize, attempt: usize) -> u32 {
    let view = wait_for(home, name, Duration::from_secs(120), |v| {
        trials(v).get(number).is_some_and(|trial| {
            trial["jobs"].as_array().is_some_and(|j| j.len() == attempt) && trial["state"] == "running"
        })
    });
    let job = trials(&view)[number]["jobs"][attempt - 1]
        .as_str()
        .expect("job")
        .to_owned();
    let status: Value =
        serde_json::from_slice(&std::fs::read(home.join("jobs").join(&job).join("status.json")).expect("status"))
            .expect("status json");
    status["pid"].as_u64().expect("pid") as u32
}

#[test]
fn a_crashed_trial_is_retried_once_then_failed_with_its_log_and_the_study_goes_on() {
    let home = tempfile::tempdir().expect("temp home");
    let _daemon = start(home.path());
    let spec = write(
        home.path(),
        "study.toml",
        r#"
name = "fm-crash"
base = { arch = "mlp", data = "fashion-mnist", epochs = 3, limit = 20000 }
objective = { metric = "val_loss" }
budget = { trials = 2, concurrent = 1 }
sampler = "grid"
[params]
lr = { choice = [1e-3, 2e-3] }
"#,
    );
    assert!(kiln(home.path(), &["tune", "--detach", &spec]).status.success());
    for attempt in [1, 2] {
        let pid = worker_pid(home.path(), "fm-crash", 0, attempt);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the worker");
    }
    let view = wait_for(home.path(), "fm-crash", Duration::from_secs(180), completed);
    let crashed = &trials(&view)[0];
    assert_eq!(crashed["state"], "failed", "{view:#}");
    assert_eq!(
        crashed["jobs"].as_array().map(Vec::len),
        Some(2),
        "retried once: {crashed:#}"
    );
    let message = crashed["message"].as_str().unwrap_or_default();
    assert!(message.contains("killed by signal 9"), "{message}");
    assert!(
        message.contains("last log lines") || message.contains("signal 9"),
        "{message}"
    );
    assert_eq!(trials(&view)[1]["state"], "completed", "the study went on: {view:#}");
    assert!(
        view["message"].as_str().is_some_and(|m| m.contains("1 failed")),
        "{view:#}"
    );
}

#[test]
fn bad_specs_are_refused_naming_the_line_and_nothing_is_queued() {
    let home = tempfile::tempdir().expect("temp home");
    let _daemon = start(home.path());
    let cases = [
        (
            "lr = { choice = [3e-3",
            "lrr = { log_uniform = [1e-4, 1e-2] }",
            "line 8",
            "unknown parameter",
        ),
        (
            "lr = { choice = [3e-3",
            "lr = { log_uniform = [0.0, 1e-2] }",
            "line 8",
            "above 0",
        ),
        (
            "lr = { choice = [3e-3",
            "lr = { uniform = [1e-2, 1e-4] }",
            "line 8",
            "inverted",
        ),
        ("lr = { choice = [3e-3", "lr = { choice = [] }", "line 8", "empty"),
        (
            "lr = { choice = [3e-3",
            "\"config.hiden\" = { choice = [[64]] }",
            "line 8",
            "unknown field `hiden`",
        ),
        (
            "metric = \"val_accuracy\"",
            "objective = { metric = \"val_f1\" }",
            "line 3",
            "unknown objective metric",
        ),
        ("sampler = \"grid\"", "sampler = \"bayes\"", "line 5", "unknown sampler"),
    ];
    for (find, replace, line, why) in cases {
        let text: String = common::asha_study("fm-asha")
            .lines()
            .map(|l| if l.contains(find) { replace } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        let spec = write(home.path(), "bad.toml", &text);
        let out = kiln(home.path(), &["tune", &spec]);
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{replace}: {err}");
        assert!(
            err.contains(&format!("bad.toml {line}")) && err.contains(why),
            "{replace}: {err}"
        );
    }
    let jobs = common::json(&kiln(home.path(), &["--json", "jobs", "ls"]));
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0), "{jobs:#}");
    let studies = common::json(&kiln(home.path(), &["--json", "studies", "ls"]));
    assert_eq!(studies["studies"].as_array().map(Vec::len), Some(0), "{studies:#}");
    assert!(!home.path().join("studies").join("fm-asha").exists());
}

#[test]
fn a_stopped_study_resumes_its_trials_from_their_checkpoints() {
    let home = tempfile::tempdir().expect("temp home");
    let _daemon = start(home.path());
    let spec = write(
        home.path(),
        "study.toml",
        &random_study("fm-stop", 3, "lr = { log_uniform = [1e-3, 5e-3] }"),
    );
    assert!(kiln(home.path(), &["tune", "--detach", &spec]).status.success());
    wait_for_a_scored_epoch(home.path(), "fm-stop");
    let out = kiln(home.path(), &["--json", "studies", "stop", "fm-stop"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stopped = wait_for(home.path(), "fm-stop", Duration::from_secs(60), |v| {
        trials(v)
            .iter()
            .all(|t| t["state"] != "running" && t["state"] != "queued")
    });
    assert_eq!(stopped["state"], "stopped");
    let cancelled: Vec<u64> = trials(&stopped)
        .iter()
        .filter(|t| t["state"] == "cancelled")
        .map(|t| t["number"].as_u64().expect("number"))
        .collect();
    assert!(!cancelled.is_empty(), "{stopped:#}");
    assert_eq!(
        kiln(home.path(), &["studies", "stop", "fm-stop"]).status.code(),
        Some(5),
        "stopping twice is refused"
    );

    assert!(kiln(home.path(), &["studies", "resume", "fm-stop"]).status.success());
    let view = wait_for(home.path(), "fm-stop", Duration::from_secs(240), completed);
    assert_eq!(trials(&view).len(), 3, "{view:#}");
    for trial in trials(&view) {
        assert_eq!(trial["state"], "completed", "{trial:#}");
        assert_eq!(trial["values"].as_array().map(Vec::len), Some(3), "{trial:#}");
    }
    // Each cancelled trial continued from its checkpoint in a second job.
    for number in cancelled {
        let trial = &trials(&view)[number as usize];
        let jobs = trial["jobs"].as_array().expect("jobs");
        assert_eq!(jobs.len(), 2, "{trial:#}");
        let second = common::json(&kiln(
            home.path(),
            &["--json", "jobs", "show", jobs[1].as_str().expect("id")],
        ));
        let first = common::json(&kiln(
            home.path(),
            &["--json", "jobs", "show", jobs[0].as_str().expect("id")],
        ));
        if first["status"]["step"].as_u64().is_some_and(|s| s > 0) {
            assert_eq!(
                second["spec"]["resume"], jobs[0],
                "continued from its checkpoint: {second:#}"
            );
        }
    }
}
