//! The supervisor's tick with history on disk: 10,000 finished jobs and one running (target
//! ≤ 1 ms per tick, whatever the history). The reference, measured in the same run, is what a
//! tick cost before the live-job index: listing every job folder and reading every
//! `status.json` (the old tick read each twice; the reference reads each once, so the ratio
//! is if anything kind to it).
//!
//! Run: `scripts/bench supervisor`.

use std::path::Path;
use std::time::{Duration, Instant};

use kiln_core::jobs::{self, JobDir, JobId, JobRequest, JobSpec, JobState, JobStatus, TrainRequest};
use kiln_core::kinds::{Arch, DataSource};
use kilnd::daemon::Supervisor;
use kilnd::events::Hub;

const FINISHED: usize = 10_000;
const TICKS: usize = 200;
const SCANS: usize = 10;

fn main() {
    let home = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    write_history(home.path());
    println!(
        "wrote {FINISHED} finished jobs and 1 running in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let supervisor = Supervisor::new(home.path(), 1, Hub::new(16), None);
    println!(
        "daemon start-up: indexing every job once took {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let ticks = time(TICKS, || supervisor.tick());
    let scans = time(SCANS, || {
        for dir in jobs::list(home.path()) {
            let _ = dir.status();
        }
    });
    let (tick, scan) = (median(&ticks), median(&scans));
    println!(
        "supervisor tick with {FINISHED} finished jobs + 1 running: median {:.3} ms, p99 {:.3} ms (target <= 1 ms: {})",
        tick.as_secs_f64() * 1e3,
        quantile(&ticks, 0.99).as_secs_f64() * 1e3,
        if tick <= Duration::from_millis(1) {
            "MET"
        } else {
            "NOT MET"
        }
    );
    println!(
        "  reference, a full scan of every job's status as each tick did before: median {:.1} ms = {:.0}x the tick",
        scan.as_secs_f64() * 1e3,
        scan.as_secs_f64() / tick.as_secs_f64()
    );
    println!(
        "  GET /api/v1/jobs over the same history (views of finished jobs kept in memory): {:.1} ms",
        median(&time(SCANS, || drop(supervisor.list()))).as_secs_f64() * 1e3
    );
}

/// Finished jobs written the quick way (no fsync: this is a fixture), plus one job "running"
/// in this very process, so the tick has a live worker to look at.
fn write_history(home: &Path) {
    let request = JobRequest::Train(TrainRequest::new(
        Arch::Mlp,
        DataSource::RatingsSynth,
        "history".parse().expect("name"),
    ));
    for i in 0..FINISHED {
        let id: JobId = format!("j{:010}-{:04x}", 1_700_000_000 + i, i % 0xffff)
            .parse()
            .expect("id");
        write_job(home, &id, &request, JobState::Succeeded, None);
    }
    let running: JobId = "j1900000000-0001".parse().expect("id");
    write_job(home, &running, &request, JobState::Running, Some(std::process::id()));
}

fn write_job(home: &Path, id: &JobId, request: &JobRequest, state: JobState, pid: Option<u32>) {
    let dir = JobDir::new(home, id.clone());
    std::fs::create_dir_all(dir.checkpoints()).expect("job folder");
    let spec = JobSpec {
        id: id.clone(),
        request: request.clone(),
    };
    let status = JobStatus {
        state,
        message: "registered history@1".into(),
        pid,
        pid_start: pid.and_then(jobs::process_start_time),
        step: 100,
        epoch: 1,
        total_steps: Some(100),
        device: Some("cpu".into()),
        version: None,
        updated_at: "2026-11-30T00:00:00Z".into(),
    };
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.path.join(name), bytes).expect("write");
    write("spec.json", serde_json::to_vec(&spec).expect("spec"));
    write("status.json", serde_json::to_vec(&status).expect("status"));
    write("metrics.jsonl", Vec::new());
}

fn time(times: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..times)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect()
}

fn median(values: &[Duration]) -> Duration {
    quantile(values, 0.5)
}

fn quantile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}
