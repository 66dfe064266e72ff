//! The slurm executor end to end: a daemon started with `KILN_EXECUTOR=slurm` submits real
//! `kilnd worker` jobs with `sbatch` to the Slurm cluster `SLURM_CONF` names
//! (`scripts/slurm-local` makes a one-node one; `scripts/test` exports its `SLURM_CONF`).
//!
//! Where Slurm is not available each test says so on stderr (`SKIPPED: …`) and returns; under
//! `CI=true` a missing `SLURM_CONF` with no `KILN_SLURM_UNAVAILABLE` reason fails instead, so
//! CI never passes these tests by skipping them unnoticed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::{Daemon, kiln, start_with, xor_csv};

/// How long a job may take to reach a state: Slurm may keep it pending behind other tests'
/// jobs on a small node, and a loaded machine trains slowly.
const PATIENCE: Duration = Duration::from_secs(600);

/// Why the Slurm tests cannot run here; `None` when they can.
fn unavailable() -> Option<String> {
    if let Some(why) = std::env::var("KILN_SLURM_UNAVAILABLE")
        .ok()
        .filter(|w| !w.trim().is_empty())
    {
        return Some(why);
    }
    match std::env::var_os("SLURM_CONF") {
        Some(conf) => {
            assert!(
                Path::new(&conf).is_file(),
                "SLURM_CONF={} is not a file: run scripts/slurm-local, or unset it",
                conf.to_string_lossy()
            );
            None
        }
        None if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "CI=true but neither SLURM_CONF nor KILN_SLURM_UNAVAILABLE is set: run the tests through \
             scripts/test, which makes a local Slurm with scripts/slurm-local"
        ),
        None => Some("SLURM_CONF is not set (scripts/test sets it up with scripts/slurm-local)".into()),
    }
}

/// A temp home for `test`, or `None` after saying `SKIPPED` on stderr when Slurm is not
/// here. Written to the stderr stream itself, not through `eprintln!`, which the test harness
/// captures and hides for a passing test.
fn slurm_home(test: &str) -> Option<tempfile::TempDir> {
    use std::io::Write;
    match unavailable() {
        Some(why) => {
            let line = format!("SKIPPED: Slurm is not available here: {why} ({test})\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
        None => Some(tempfile::tempdir().expect("tempdir")),
    }
}

fn slurm_daemon(home: &Path) -> Daemon {
    start_with(home, &[("KILN_EXECUTOR", "slurm")])
}

fn get(d: &Daemon, path: &str) -> Value {
    d.get(path).1
}

fn post(d: &Daemon, path: &str, body: &Value) -> (u16, Value) {
    d.post(path, &body.to_string())
}

/// Submits a job; its id.
fn submit(d: &Daemon, spec: &Value) -> String {
    let (code, job) = post(d, "/api/v1/jobs", spec);
    assert_eq!(code, 201, "{job}");
    job["id"].as_str().expect("id").to_owned()
}

fn wait_for(d: &Daemon, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    d.wait_job(id, what, PATIENCE, done)
}

fn wait_state(d: &Daemon, id: &str, want: &[&str]) -> Value {
    d.wait_state(id, want, PATIENCE)
}

fn wait_final(d: &Daemon, id: &str) -> Value {
    wait_state(d, id, &["succeeded", "failed", "cancelled", "pruned"])
}

/// The Slurm job id once the daemon has submitted the job (it stays in the view after).
fn wait_slurm_id(d: &Daemon, id: &str) -> u64 {
    let job = wait_for(d, id, "got a Slurm job", |job| job["slurm"]["job_id"].is_u64());
    job["slurm"]["job_id"].as_u64().expect("job id")
}

/// `scontrol show job ID -o` (Slurm keeps an ended job `MinJobAge` seconds).
fn scontrol(slurm_id: u64) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", &slurm_id.to_string(), "-o"])
        .output()
        .expect("run scontrol");
    assert!(out.status.success(), "scontrol does not know job {slurm_id}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Slurm's jobs named `name`, from `squeue --json`.
fn squeue_named(name: &str) -> Vec<u64> {
    let out = Command::new("squeue").args(["--json"]).output().expect("run squeue");
    assert!(out.status.success(), "squeue failed: {out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("squeue JSON");
    doc["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["name"] == name)
        .filter_map(|j| j["job_id"].as_u64())
        .collect()
}

/// An mlp on the xor CSV for `epochs` epochs (400 rows in batches of 8: 50 steps an epoch).
fn xor_job(home: &Path, epochs: usize) -> Value {
    json!({"kind": "train", "arch": "mlp", "data": format!("csv:{}", xor_csv(home).display()),
        "epochs": epochs, "batch_size": 8, "lr": 0.01, "optimizer": "adam", "seed": 1, "model": "xor"})
}

#[test]
fn a_short_training_through_slurm_registers_its_version() {
    let Some(home) = slurm_home("a_short_training_through_slurm_registers_its_version") else {
        return;
    };
    let d = slurm_daemon(home.path());
    let id = submit(&d, &xor_job(home.path(), 3));
    let slurm_id = wait_slurm_id(&d, &id);
    assert!(
        scontrol(slurm_id).contains(&format!("JobName=kiln-{id}")),
        "Slurm knows job {slurm_id} by kiln's name"
    );
    let done = wait_final(&d, &id);
    assert_eq!(done["status"]["state"], "succeeded", "{done}");
    assert_eq!(done["status"]["version"], "xor@1", "{done}");
    assert_eq!(done["slurm"]["job_id"], slurm_id, "{done}");
    assert_eq!(done["slurm"]["state"], "COMPLETED", "{done}");
    let version = get(&d, "/api/v1/models/xor/versions/1");
    assert_eq!(version["version"]["job_id"], Value::String(id.clone()), "{version}");

    let script = std::fs::read_to_string(home.path().join("jobs").join(&id).join("slurm.sh")).expect("slurm.sh");
    assert!(script.contains(&format!("'worker' '--job' '{id}'")), "{script}");
    let listed = kiln(home.path(), &["jobs", "ls"]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains("SLURM") && table.contains(&format!("{slurm_id} COMPLETED")),
        "{table}"
    );
}

#[test]
fn a_cancelled_slurm_job_ends_cancelled_through_scancel_with_its_checkpoint() {
    let Some(home) = slurm_home("a_cancelled_slurm_job_ends_cancelled_through_scancel_with_its_checkpoint") else {
        return;
    };
    let d = slurm_daemon(home.path());
    let id = submit(&d, &xor_job(home.path(), 400));
    let slurm_id = wait_slurm_id(&d, &id);
    // `running` is written by the worker on its node: tens of seconds of training follow.
    wait_state(&d, &id, &["running"]);
    let (code, cancelling) = post(&d, &format!("/api/v1/jobs/{id}/cancel"), &json!({}));
    assert_eq!(code, 200, "{cancelling}");
    let done = wait_final(&d, &id);
    assert_eq!(done["status"]["state"], "cancelled", "{done}");
    assert_eq!(done["slurm"]["job_id"], slurm_id, "{done}");
    assert_eq!(done["slurm"]["state"], "CANCELLED", "scancel ended it: {done}");
    assert!(
        scontrol(slurm_id).contains("JobState=CANCELLED"),
        "Slurm recorded the cancel"
    );
    let checkpoint = home.path().join("jobs").join(&id).join("checkpoints/state.json");
    assert!(
        checkpoint.is_file(),
        "the worker checkpointed on scancel's SIGTERM: {done}"
    );
}

#[test]
fn a_failing_slurm_job_ends_failed_with_slurms_exit_code() {
    let Some(home) = slurm_home("a_failing_slurm_job_ends_failed_with_slurms_exit_code") else {
        return;
    };
    let d = slurm_daemon(home.path());
    // The same divergence tests/train.rs checks locally.
    let spec = json!({"kind": "train", "arch": "mf", "data": "ratings-synth", "epochs": 1, "lr": 1e12,
        "optimizer": "sgd", "limit": 3000, "model": "boom"});
    let id = submit(&d, &spec);
    let slurm_id = wait_slurm_id(&d, &id);
    let done = wait_final(&d, &id);
    assert_eq!(done["status"]["state"], "failed", "{done}");
    let message = done["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("diverged at step"),
        "the worker's own reason: {done}"
    );
    assert!(
        message.contains(&format!("Slurm job {slurm_id} ended FAILED with exit code 1:0")),
        "{done}"
    );
    assert_eq!(done["slurm"]["exit_code"], "1:0", "{done}");

    // A job Slurm refuses fails with sbatch's own words.
    let config = home.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(
        config.join("config.toml"),
        "[daemon]\npartition = \"no-such-partition\"\n",
    )
    .expect("config");
    drop(d);
    let d = slurm_daemon(home.path());
    let id = submit(&d, &xor_job(home.path(), 1));
    let done = wait_final(&d, &id);
    assert_eq!(done["status"]["state"], "failed", "{done}");
    let message = done["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("sbatch") && message.contains("partition") && done["slurm"].is_null(),
        "{done}"
    );
}

#[test]
fn a_daemon_restarted_while_a_slurm_job_runs_re_adopts_it_without_resubmitting() {
    let Some(home) = slurm_home("a_daemon_restarted_while_a_slurm_job_runs_re_adopts_it_without_resubmitting") else {
        return;
    };
    let mut d = slurm_daemon(home.path());
    let id = submit(&d, &xor_job(home.path(), 60));
    let slurm_id = wait_slurm_id(&d, &id);
    let running = wait_state(&d, &id, &["running"]);
    // The node is this machine: hold the worker still so the job surely runs across the
    // restart.
    let worker = nix::unistd::Pid::from_raw(running["status"]["pid"].as_i64().expect("pid") as i32);
    nix::sys::signal::kill(worker, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");

    let _ = d.child.kill();
    let _ = d.child.wait();
    d = slurm_daemon(home.path());
    let health = get(&d, "/api/v1/health");
    let adopted = get(&d, &format!("/api/v1/jobs/{id}"));
    assert_eq!(health["running_jobs"][0], Value::String(id.clone()), "{health}");
    assert_eq!(adopted["status"]["state"], "running", "kept, not failed: {adopted}");
    assert_eq!(adopted["slurm"]["job_id"], slurm_id, "{adopted}");

    // A daemon killed between sbatch's answer and writing slurm.json: the next one finds the
    // Slurm job by its name instead of submitting another.
    let _ = d.child.kill();
    let _ = d.child.wait();
    let record = home.path().join("jobs").join(&id).join("slurm.json");
    std::fs::remove_file(&record).expect("remove slurm.json");
    d = slurm_daemon(home.path());
    let adopted = get(&d, &format!("/api/v1/jobs/{id}"));
    nix::sys::signal::kill(worker, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    assert_eq!(adopted["slurm"]["job_id"], slurm_id, "found by name: {adopted}");
    assert!(record.is_file(), "the record is written again");

    let done = wait_final(&d, &id);
    assert_eq!(
        done["status"]["state"], "succeeded",
        "the re-adopted job finishes: {done}"
    );
    assert_eq!(done["slurm"]["job_id"], slurm_id, "never resubmitted: {done}");
    assert_eq!(squeue_named(&format!("kiln-{id}")), [slurm_id], "one Slurm job for it");
    assert_eq!(
        get(&d, "/api/v1/models/xor/versions/1")["version"]["job_id"],
        Value::String(id)
    );
}

#[test]
fn a_studys_trials_run_as_slurm_jobs_and_asha_prunes_them_through_scancel() {
    let Some(home) = slurm_home("a_studys_trials_run_as_slurm_jobs_and_asha_prunes_them_through_scancel") else {
        return;
    };
    let _d = slurm_daemon(home.path());
    let spec = home.path().join("study.toml");
    std::fs::write(&spec, common::asha_study("fm-slurm")).expect("spec");
    let out = kiln(home.path(), &["--json", "tune", &spec.to_string_lossy()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let view = common::json_of(&out);
    assert_eq!(view["state"], "completed", "{view:#}");
    let trials = view["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 6, "{view:#}");
    let mut pruned = 0;
    for trial in trials {
        assert_eq!(
            trial["device"], "slurm",
            "placed by Slurm, not on this machine's devices: {trial:#}"
        );
        let job = trial["jobs"][0].as_str().expect("job");
        let job = common::json(&kiln(home.path(), &["--json", "jobs", "show", job]));
        assert!(job["slurm"]["job_id"].is_u64(), "every trial is a Slurm job: {job:#}");
        if trial["state"] == "pruned" {
            pruned += 1;
            assert_eq!(job["status"]["state"], "pruned", "{job:#}");
            assert!(
                job["status"]["message"].as_str().is_some_and(|m| m.contains("ASHA")),
                "{job:#}"
            );
        }
    }
    assert!(pruned > 0, "ASHA pruned no trial: {view:#}");
}

#[test]
fn a_bad_executor_stops_the_daemon_at_start_naming_the_choices() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = common::command(common::kilnd_bin(), home.path())
        .env("KILN_EXECUTOR", "slrum")
        .args(["--foreground", "--port", "0"])
        .output()
        .expect("run kilnd");
    assert!(!out.status.success(), "{out:?}");
    let said = common::stderr(&out);
    assert!(
        said.contains("KILN_EXECUTOR=slrum") && said.contains("local, slurm"),
        "{said}"
    );
}

#[test]
fn a_job_slurm_holds_back_stays_queued_showing_pending_with_slurms_reason() {
    let Some(home) = slurm_home("a_job_slurm_holds_back_stays_queued_showing_pending_with_slurms_reason") else {
        return;
    };
    let config = home.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    // Extra sbatch arguments from the config: a start an hour away keeps it pending.
    std::fs::write(
        config.join("config.toml"),
        "[daemon]\nsbatch_args = [\"--begin=now+1hour\"]\n",
    )
    .expect("config");
    let d = slurm_daemon(home.path());
    let id = submit(&d, &xor_job(home.path(), 1));
    let pending = wait_for(&d, &id, "was pending for its begin time", |job| {
        job["slurm"]["state"] == "PENDING" && job["slurm"]["reason"] == "BeginTime"
    });
    assert_eq!(pending["status"]["state"], "queued", "{pending}");
    let slurm_id = pending["slurm"]["job_id"].as_u64().expect("job id");
    assert!(scontrol(slurm_id).contains("Reason=BeginTime"), "Slurm holds it back");

    let listed = kiln(home.path(), &["jobs", "ls"]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.contains(&format!("{slurm_id} PENDING (BeginTime)")), "{table}");
    let shown = kiln(home.path(), &["jobs", "show", &id]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!("slurm {slurm_id} PENDING (BeginTime)")),
        "{shown}"
    );

    // Cancelling a job still in Slurm's queue is scancel too, and nothing ever ran.
    let (code, cancelling) = post(&d, &format!("/api/v1/jobs/{id}/cancel"), &json!({}));
    assert_eq!(code, 200, "{cancelling}");
    let done = wait_final(&d, &id);
    assert_eq!(done["status"]["state"], "cancelled", "{done}");
    assert_eq!(done["slurm"]["state"], "CANCELLED", "{done}");
    assert!(
        done["status"]["step"] == 0 && done["status"]["pid"].is_null(),
        "the worker never started: {done}"
    );
}
