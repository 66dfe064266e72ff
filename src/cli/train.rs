//! `kiln train` and `kiln eval`: run the engine (`kilnd`) in the foreground and show progress.
//!
//! Until the daemon lands, `kiln train` is the job's supervisor: it writes the job folder,
//! starts `kilnd worker` in its own process group, follows `metrics.jsonl`, turns Ctrl-C into
//! SIGTERM (the worker checkpoints and ends as `cancelled`), and leaves the worker running if
//! the terminal hangs up.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::CliError;
use crate::home::kiln_home;
use crate::jobs::{JobDir, JobId, JobSpec, JobState, JobStatus, MetricRecord};
use crate::names::{ModelRef, Name};

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

fn spec_from(args: &TrainArgs, home: &Path) -> Result<JobSpec, CliError> {
    let id = JobId::generate();
    if let Some(old) = &args.resume {
        let old_job = JobDir::open(home, old).map_err(|e| CliError {
            code: 3,
            message: e.to_string(),
        })?;
        let mut spec = old_job.spec().map_err(|e| failure(e.to_string()))?;
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

/// Runs `kiln train` to the job's end.
pub fn train(args: &TrainArgs, json_out: bool) -> Result<u8, CliError> {
    let home = kiln_home()?;
    let spec = spec_from(args, &home)?;
    let job = JobDir::create(&home, &spec).map_err(|e| failure(e.to_string()))?;
    let mut child = crate::jobs::spawn_worker(kilnd_command()?, &home, &job)
        .map_err(|e| failure(format!("cannot start kilnd worker: {e}")))?;
    eprintln!(
        "job {} started: {} on {} → model {}",
        spec.id, spec.arch, spec.data, spec.model
    );
    let signals = Signals::register()?;
    let mut offset = 0;
    let mut cancel_sent = false;
    let exit = loop {
        let (records, next) = job.metrics_since(offset).map_err(|e| failure(e.to_string()))?;
        offset = next;
        for record in &records {
            if !json_out {
                eprintln!("{}", progress_line(record, spec.epochs));
            }
        }
        if signals.hangup.load(Ordering::Relaxed) {
            // The terminal went away: leave the worker running in its own process group.
            return Ok(0);
        }
        if signals.interrupt.load(Ordering::Relaxed) && !cancel_sent {
            cancel_sent = true;
            eprintln!("cancelling job {} (the worker saves a checkpoint first)…", spec.id);
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        if let Some(status) = child.try_wait().map_err(|e| failure(e.to_string()))? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (records, _) = job.metrics_since(offset).map_err(|e| failure(e.to_string()))?;
    for record in records.iter().filter(|_| !json_out) {
        eprintln!("{}", progress_line(record, spec.epochs));
    }
    let status = final_status(&job, exit)?;
    report(&spec, &job, &status, json_out)
}

/// The worker's last word, or a `failed` status written here if it died without one.
fn final_status(job: &JobDir, exit: std::process::ExitStatus) -> Result<JobStatus, CliError> {
    let mut status = job.status().map_err(|e| failure(e.to_string()))?;
    if !status.state.is_final() {
        use std::os::unix::process::ExitStatusExt;
        let how = match exit.signal() {
            Some(sig) => format!("was killed by signal {sig}"),
            None => format!("exited with code {}", exit.code().unwrap_or(-1)),
        };
        status.state = JobState::Failed;
        status.message = format!("the worker {how} without finishing; see {}", job.log_path().display());
        status.updated_at = crate::registry::now_rfc3339();
        job.write_status(&status).map_err(|e| failure(e.to_string()))?;
    }
    Ok(status)
}

fn report(spec: &JobSpec, job: &JobDir, status: &JobStatus, json_out: bool) -> Result<u8, CliError> {
    if json_out {
        println!(
            "{}",
            json!({ "job": spec.id, "state": status.state, "message": status.message, "version": status.version, "step": status.step, "device": status.device })
        );
    } else {
        let state = serde_json::to_value(status.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!("job {} {state}: {}", spec.id, status.message);
        if status.state == JobState::Failed {
            eprintln!("worker log: {}", job.log_path().display());
        }
    }
    Ok(match status.state {
        JobState::Succeeded => 0,
        JobState::Cancelled => 6,
        _ => 1,
    })
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

/// Runs `kiln eval` through `kilnd eval`, passing its output and exit code through.
pub fn eval(args: &EvalArgs, json_out: bool) -> Result<u8, CliError> {
    let mut cmd = kilnd_command()?;
    cmd.args(["eval", &args.reference.to_string(), "--data", &args.data]);
    if let Some(path) = &args.data_path {
        cmd.arg("--data-path").arg(path);
    }
    if let Some(limit) = args.limit {
        cmd.args(["--limit", &limit.to_string()]);
    }
    if json_out {
        cmd.arg("--json");
    }
    run_passthrough(cmd)
}

/// Runs a `kilnd` command with inherited stdio and returns its exit code as ours.
pub fn run_passthrough(mut cmd: Command) -> Result<u8, CliError> {
    let status = cmd.status().map_err(|e| failure(format!("cannot run kilnd: {e}")))?;
    Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1))
}
