//! `kiln train` and `kiln eval`: submit a job to the daemon (starting it when none answers)
//! and follow it to its end with a progress bar, or return at once with `--detach`.
//!
//! While following, Ctrl-C cancels the job (the worker checkpoints and ends as `cancelled`);
//! a terminal hang-up leaves it running in the daemon, where `kiln jobs` finds it again.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use super::CliError;
use kiln_core::client::Client;
use kiln_core::home::kiln_home;
use kiln_core::jobs::{JobId, JobKind, JobSpec, JobState, JobStatus, MetricRecord};
use kiln_core::names::{ModelRef, Name};
use kiln_core::registry::EvalReport;

/// `kiln train` arguments.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Architecture: mlp, cnn, rnn or mf (not needed with --resume).
    #[arg(required_unless_present = "resume")]
    arch: Option<String>,
    /// Dataset: fashion-mnist, fortunes[:cat,…], ratings-synth or csv:<file>.
    #[arg(long, required_unless_present = "resume")]
    data: Option<String>,
    /// Folder (or file) holding the dataset, when not the default.
    #[arg(long)]
    data_path: Option<PathBuf>,
    /// Epochs to train [default: 3; with --resume: the resumed job's].
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// adam, adamw or sgd (with momentum 0.9).
    #[arg(long, default_value = "adam", value_parser = ["adam", "adamw", "sgd"])]
    optimizer: String,
    /// Learning-rate schedule: cosine (decay to 0 over the run) or constant.
    #[arg(long, default_value = "cosine", value_parser = ["cosine", "constant"])]
    schedule: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// cpu or cuda:N (default: cuda:0 when libtorch sees a GPU, else cpu).
    #[arg(long)]
    device: Option<String>,
    /// Use at most N training samples (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Model to register the result under (default: <data>-<arch>).
    #[arg(long)]
    name: Option<Name>,
    /// Architecture config overrides as JSON, e.g. '{"hidden": 64}'.
    #[arg(long)]
    config: Option<String>,
    /// Fine-tune from a stored version (recorded as the parent).
    #[arg(long)]
    from: Option<ModelRef>,
    /// Continue an earlier job from its last checkpoint.
    #[arg(long, conflicts_with_all = ["arch", "data", "from"])]
    resume: Option<JobId>,
    /// Print the job id and return at once; the daemon runs the job.
    #[arg(long)]
    detach: bool,
}

/// `kiln eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// `<model>[@<version|alias>]`.
    reference: ModelRef,
    /// Dataset to score on (its test split when it has one, else the validation split).
    #[arg(long)]
    data: String,
    #[arg(long)]
    data_path: Option<PathBuf>,
    /// Score only the first N rows.
    #[arg(long)]
    limit: Option<usize>,
    /// Print the job id and return at once; the daemon runs the eval.
    #[arg(long)]
    detach: bool,
}

fn failure(message: impl Into<String>) -> CliError {
    CliError {
        code: 1,
        message: message.into(),
    }
}

fn bad_input(message: impl Into<String>) -> CliError {
    CliError {
        code: 2,
        message: message.into(),
    }
}

fn spec_from(args: &TrainArgs, client: &Client) -> Result<JobSpec, CliError> {
    let id = JobId::generate();
    if let Some(old) = &args.resume {
        let old_job = client.get(&format!("/api/v1/jobs/{old}"))?;
        let mut spec: JobSpec = serde_json::from_value(old_job["spec"].clone()).map_err(|e| failure(e.to_string()))?;
        spec.id = id;
        spec.resume = Some(old.clone());
        spec.epochs = args.epochs.unwrap_or(spec.epochs);
        return Ok(spec);
    }
    let (Some(arch), Some(data)) = (&args.arch, &args.data) else {
        return Err(bad_input("name an architecture and --data, or --resume <job>"));
    };
    let config = match &args.config {
        Some(text) => serde_json::from_str(text).map_err(|e| bad_input(format!("--config is not valid JSON: {e}")))?,
        None => json!({}),
    };
    let epochs = args.epochs.unwrap_or(3);
    if epochs == 0 || args.batch_size == 0 || args.lr.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(bad_input(
            "--epochs and --batch-size must be at least 1 and --lr above 0",
        ));
    }
    let model = match &args.name {
        Some(name) => name.clone(),
        None => default_name(data, arch)?,
    };
    Ok(JobSpec {
        id,
        kind: JobKind::Train,
        reference: None,
        arch: arch.clone(),
        config,
        data: data.clone(),
        data_path: args.data_path.clone(),
        epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        optimizer: args.optimizer.clone(),
        schedule: args.schedule.clone(),
        seed: args.seed,
        device: args.device.clone(),
        limit: args.limit,
        model,
        from: args.from.as_ref().map(ToString::to_string),
        resume: None,
    })
}

fn default_name(data: &str, arch: &str) -> Result<Name, CliError> {
    let base = match data.split_once(':') {
        Some(("csv", file)) => Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_default(),
        Some((kind, _)) => kind.to_owned(),
        None => data.to_owned(),
    };
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Name::new(&format!("{}-{arch}", cleaned.trim_matches('-'))).map_err(|e| bad_input(format!("{e}; pass --name")))
}

/// Submits `kiln train` to the daemon and, unless `--detach`, follows it to its end.
pub fn train(args: &TrainArgs, json_out: bool) -> Result<u8, CliError> {
    let home = kiln_home()?;
    super::daemon::ensure_running(&home)?;
    let client = Client::from_home(&home)?;
    let spec = spec_from(args, &client)?;
    let view = submit(&client, &spec)?;
    let id = view["id"].as_str().unwrap_or_default().to_owned();
    eprintln!(
        "job {id} queued: {} on {} → model {} (follow with `kiln jobs logs -f {id}`)",
        spec.arch, spec.data, spec.model
    );
    if args.detach {
        return print_detached(&view, json_out);
    }
    follow(&client, &id, json_out)
}

/// Submits `kiln eval` as an eval job and, unless `--detach`, prints its report.
pub fn eval(args: &EvalArgs, json_out: bool) -> Result<u8, CliError> {
    let home = kiln_home()?;
    super::daemon::ensure_running(&home)?;
    let client = Client::from_home(&home)?;
    let mut body = json!({
        "kind": "eval",
        "reference": args.reference.to_string(),
        "data": args.data,
    });
    if let Some(path) = &args.data_path {
        body["data_path"] = json!(path);
    }
    if let Some(limit) = args.limit {
        body["limit"] = json!(limit);
    }
    let view = client.post("/api/v1/jobs", &body)?;
    let id = view["id"].as_str().unwrap_or_default().to_owned();
    eprintln!("eval job {id} queued: {} on {}", args.reference, args.data);
    if args.detach {
        return print_detached(&view, json_out);
    }
    let (view, status) = wait_for_end(&client, &id, None)?;
    let code = exit_code(status.state);
    match serde_json::from_value::<EvalReport>(view["result"].clone()) {
        Ok(_) if json_out => println!("{}", view["result"]),
        Ok(report) => print!("{}", report.render()),
        Err(_) => {
            let message = view["status"]["message"]
                .as_str()
                .unwrap_or("the eval job ended without a report");
            return Err(CliError {
                code: if code == 0 { 1 } else { code },
                message: message.to_owned(),
            });
        }
    }
    Ok(code)
}

fn submit(client: &Client, spec: &JobSpec) -> Result<Value, CliError> {
    let mut body = serde_json::to_value(spec).map_err(|e| failure(e.to_string()))?;
    if let Some(object) = body.as_object_mut() {
        object.remove("id");
    }
    Ok(client.post("/api/v1/jobs", &body)?)
}

fn print_detached(view: &Value, json_out: bool) -> Result<u8, CliError> {
    if json_out {
        println!("{view}");
    } else {
        println!("{}", view["id"].as_str().unwrap_or_default());
    }
    Ok(0)
}

/// Follows a job to its end: metric lines (or a progress bar on a terminal), Ctrl-C cancels
/// it (the worker checkpoints), a hang-up leaves it running in the daemon.
pub fn follow(client: &Client, id: &str, json_out: bool) -> Result<u8, CliError> {
    let signals = Signals::register()?;
    let mut progress = Progress::new(!json_out && std::io::stderr().is_terminal());
    let mut offset = 0;
    let mut cancel_sent = false;
    loop {
        let view = client.get(&format!("/api/v1/jobs/{id}"))?;
        let metrics = client.get(&format!("/api/v1/jobs/{id}/metrics?since={offset}"))?;
        offset = metrics["next"].as_u64().unwrap_or(offset);
        let records: Vec<MetricRecord> = serde_json::from_value(metrics["records"].clone()).unwrap_or_default();
        let status: JobStatus = serde_json::from_value(view["status"].clone()).map_err(|e| failure(e.to_string()))?;
        let epochs = view["spec"]["epochs"].as_u64().unwrap_or(0) as usize;
        if !json_out {
            progress.show(&records, &status, epochs);
        }
        if status.state.is_final() {
            progress.finish();
            return report(id, &status, json_out);
        }
        if signals.hangup.load(Ordering::Relaxed) {
            return Ok(0);
        }
        if signals.interrupt.load(Ordering::Relaxed) && !cancel_sent {
            cancel_sent = true;
            progress.finish();
            eprintln!("cancelling job {id} (the worker saves a checkpoint first)…");
            client.post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}))?;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits, without printing, until the job ends (or `deadline` passes: an error); returns its
/// final view and status.
pub fn wait_for_end(client: &Client, id: &str, deadline: Option<Instant>) -> Result<(Value, JobStatus), CliError> {
    loop {
        let view = client.get(&format!("/api/v1/jobs/{id}"))?;
        let status: JobStatus = serde_json::from_value(view["status"].clone())
            .map_err(|e| failure(format!("kilnd sent an unreadable job status: {e}")))?;
        if status.state.is_final() {
            return Ok((view, status));
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(failure(format!(
                "job {id} is still {:?} after the timeout",
                status.state
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Exit code for a job's final state: 0 succeeded, 6 cancelled, 1 otherwise.
pub fn exit_code(state: JobState) -> u8 {
    match state {
        JobState::Succeeded => 0,
        JobState::Cancelled => 6,
        _ => 1,
    }
}

fn report(id: &str, status: &JobStatus, json_out: bool) -> Result<u8, CliError> {
    if json_out {
        println!(
            "{}",
            json!({ "job": id, "state": status.state, "message": status.message, "version": status.version, "step": status.step, "device": status.device })
        );
    } else {
        let state = serde_json::to_value(status.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!("job {id} {state}: {}", status.message);
        if status.state == JobState::Failed {
            eprintln!("worker log: `kiln jobs logs {id}`");
        }
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
        for record in records {
            if !self.bar || record.kind == "val" {
                self.finish();
                eprintln!("{}", progress_line(record, epochs));
            }
        }
        if let Some(train) = records.iter().rev().find(|r| r.kind == "train") {
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
    if record.kind == "val" {
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
                .map_err(|e| failure(format!("cannot install signal handler: {e}")))
        };
        register(signal_hook::consts::SIGINT, &interrupt)?;
        register(signal_hook::consts::SIGTERM, &interrupt)?;
        register(signal_hook::consts::SIGHUP, &hangup)?;
        Ok(Self { interrupt, hangup })
    }
}

/// `kilnd`, from `KILN_KILND` or beside this executable.
pub fn kilnd_command() -> Result<Command, CliError> {
    if let Some(path) = std::env::var_os("KILN_KILND") {
        return Ok(Command::new(path));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("kilnd")));
    match beside {
        Some(path) if path.is_file() => Ok(Command::new(path)),
        _ => Err(failure(
            "kilnd (which links libtorch and runs the engine) is not installed next to kiln; \
             build it with `cargo build --bin kilnd` or point KILN_KILND at it",
        )),
    }
}

/// Runs a `kilnd` command with inherited stdio and returns its exit code as ours.
pub fn run_passthrough(mut cmd: Command) -> Result<u8, CliError> {
    let status = cmd.status().map_err(|e| failure(format!("cannot run kilnd: {e}")))?;
    Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1))
}
