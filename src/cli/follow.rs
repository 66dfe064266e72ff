//! Following a training job to its end, as `kiln train` does unless `--detach`: metric lines
//! (or a redrawn progress bar on a terminal) on stderr, the outcome on stdout.
//!
//! While following, Ctrl-C cancels the job (the worker checkpoints and ends as `cancelled`);
//! a terminal hang-up leaves it running in the daemon, where `kiln jobs` finds it again.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::CliError;
use super::jobs::{POLL, exit_code};
use super::output::emit;
use kiln_core::client::Blocking;
use kiln_core::jobs::{JobId, JobState, JobStatus, MetricRecord};
use kiln_core::kinds::MetricKind;
use kiln_core::names::ModelRef;

/// What `kiln train --json` prints when the job has ended.
#[derive(Debug, Serialize)]
struct JobEnd<'a> {
    job: &'a JobId,
    state: JobState,
    message: &'a str,
    version: Option<&'a ModelRef>,
    step: u64,
    device: Option<&'a str>,
}

/// Follows a job to its end: metric lines (or a progress bar on a terminal), Ctrl-C cancels
/// it (the worker checkpoints), a hang-up leaves it running in the daemon.
pub fn follow(client: &Blocking, id: &JobId, json: bool) -> Result<u8, CliError> {
    match follow_to_end(client, id, json)? {
        Some(status) => report(id, &status, json),
        None => Ok(0),
    }
}

/// Shows a job's progress until it ends and returns its final status; `None` when the
/// terminal hung up first (the job keeps running in the daemon).
pub fn follow_to_end(client: &Blocking, id: &JobId, json: bool) -> Result<Option<JobStatus>, CliError> {
    let signals = Signals::register()?;
    let mut progress = Progress::new(!json && std::io::stderr().is_terminal());
    let mut offset = 0;
    let mut cancel_sent = false;
    loop {
        let (view, metrics) =
            client.run(|c| async move { Ok::<_, CliError>((c.job(id).await?, c.metrics(id, offset).await?)) })?;
        offset = metrics.next;
        let epochs = view.spec.request.epochs();
        if !json {
            progress.show(&metrics.records, &view.status, epochs);
        }
        if view.status.state.is_final() {
            progress.finish();
            return Ok(Some(view.status));
        }
        if signals.hangup.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if signals.interrupt.load(Ordering::Relaxed) && !cancel_sent {
            cancel_sent = true;
            progress.finish();
            eprintln!("cancelling job {id} (the worker saves a checkpoint first)…");
            client.run(|c| c.cancel(id))?;
        }
        std::thread::sleep(POLL);
    }
}

fn report(id: &JobId, status: &JobStatus, json: bool) -> Result<u8, CliError> {
    let end = JobEnd {
        job: id,
        state: status.state,
        message: &status.message,
        version: status.version.as_ref(),
        step: status.step,
        device: status.device.as_deref(),
    };
    emit(json, &end, || format!("job {id} {}: {}", status.state, status.message))?;
    if !json && status.state == JobState::Failed {
        eprintln!("worker log: `kiln jobs logs {id}`");
    }
    Ok(exit_code(status.state))
}

/// Training progress on stderr: a redrawn bar on a terminal, one line per record otherwise.
struct Progress {
    bar: bool,
    drawn: bool,
    started: Option<(Instant, u64)>,
    last: Option<MetricRecord>,
}

impl Progress {
    fn new(bar: bool) -> Self {
        Self {
            bar,
            drawn: false,
            started: None,
            last: None,
        }
    }

    fn show(&mut self, records: &[MetricRecord], status: &JobStatus, epochs: usize) {
        // `layers` records are for the console's layers pane; a warning they raise reaches the
        // job's log and message.
        for record in records.iter().filter(|r| r.kind != MetricKind::Layers) {
            if !self.bar || record.kind == MetricKind::Val {
                self.finish();
                eprintln!("{}", progress_line(record, epochs));
            }
        }
        if let Some(train) = records.iter().rev().find(|r| r.kind == MetricKind::Train) {
            self.last = Some(train.clone());
        }
        if self.bar && status.state == JobState::Running {
            let last = self.last.clone();
            self.draw(status, last.as_ref(), epochs);
        }
    }

    fn draw(&mut self, status: &JobStatus, last: Option<&MetricRecord>, epochs: usize) {
        let Some(total) = status.total_steps.filter(|&t| t > 0) else {
            return;
        };
        let (t0, s0) = *self.started.get_or_insert((Instant::now(), status.step));
        let done = status.step.min(total);
        let fraction = done as f64 / total as f64;
        let width = 24;
        let filled = (fraction * width as f64) as usize;
        let rate = (done > s0).then(|| (done - s0) as f64 / t0.elapsed().as_secs_f64());
        let eta = rate
            .map(|r| humantime::format_duration(Duration::from_secs(((total - done) as f64 / r) as u64)).to_string())
            .unwrap_or_else(|| "…".into());
        let loss = last
            .and_then(|r| r.train_loss)
            .map(|l| format!(" loss {l:.4}"))
            .unwrap_or_default();
        let speed = last
            .and_then(|r| r.samples_per_sec)
            .map(|s| format!(" {s:.0}/s"))
            .unwrap_or_default();
        eprint!(
            "\r\x1b[2Kepoch {}/{epochs} [{}{}] {:>3.0}% step {done}/{total}{loss}{speed} ETA {eta}",
            (status.epoch + 1).min(epochs.max(1)),
            "#".repeat(filled),
            "-".repeat(width - filled),
            fraction * 100.0
        );
        self.drawn = true;
    }

    /// Ends the bar's line so ordinary output can follow.
    fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

fn progress_line(record: &MetricRecord, epochs: usize) -> String {
    let fmt = |name: &str, v: Option<f64>| v.map(|v| format!("  {name} {v:.4}")).unwrap_or_default();
    if record.kind == MetricKind::Val {
        return format!(
            "epoch {}/{epochs} done at step {}:{}{}{}",
            record.epoch,
            record.step,
            fmt("val_loss", record.val_loss),
            fmt("accuracy", record.accuracy),
            fmt("rmse", record.rmse)
        );
    }
    let rate = record
        .samples_per_sec
        .map(|r| format!("  {r:.0} samples/s"))
        .unwrap_or_default();
    format!(
        "epoch {}/{epochs} step {}:{}{rate}",
        record.epoch + 1,
        record.step,
        fmt("loss", record.train_loss)
    )
}

struct Signals {
    interrupt: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> Result<Self, CliError> {
        let interrupt = Arc::new(AtomicBool::new(false));
        let hangup = Arc::new(AtomicBool::new(false));
        let register = |sig, flag: &Arc<AtomicBool>| {
            signal_hook::flag::register(sig, flag.clone())
                .map_err(|e| CliError::failure(format!("cannot install signal handler: {e}")))
        };
        register(signal_hook::consts::SIGINT, &interrupt)?;
        register(signal_hook::consts::SIGTERM, &interrupt)?;
        register(signal_hook::consts::SIGHUP, &hangup)?;
        Ok(Self { interrupt, hangup })
    }
}
