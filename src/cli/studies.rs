//! `kiln tune study.toml` and `kiln studies ls|show|stop|resume|promote`: hyperparameter
//! studies run by the daemon. `tune` sends the spec's text (the daemon checks it whole and
//! refuses a bad one with its line, exit code 2), then follows the study until it ends:
//! a line per trial that ends and a progress line with the best so far. Ctrl-C leaves the
//! study running in the daemon (`kiln studies stop` stops it).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::daemon::connect;
use super::error::{CANCELLED, CliError};
use super::output::emit;
use super::table;
use kiln_core::api::{PromoteRequest, StudyCreate, StudyView};
use kiln_core::client::Blocking;
use kiln_core::names::Name;
use kiln_core::study::{StudyState, Trial, TrialState, value_text};

const SPEC_HELP: &str = "A study spec (TOML):

  name = \"fmnist-mlp-lr\"
  base = { arch = \"mlp\", data = \"fashion-mnist\", epochs = 6, limit = 20000 }
  objective = { metric = \"val_accuracy\", direction = \"maximize\" }   # val_accuracy | val_rmse | val_loss
  budget = { trials = 24, concurrent = 2, wall_clock = \"30m\" }      # per_gpu = 1
  sampler = \"tpe\"          # grid | random | tpe
  seed = 7
  early_stop = \"asha\"      # none | median | asha, or
                           # { rule = \"asha\", min_epochs = 1, reduction_factor = 3 }
                           # { rule = \"median\", min_epochs = 1, startup_trials = 3 }
  [params]
  lr = { log_uniform = [1e-4, 3e-2] }
  batch_size = { choice = [32, 64, 128] }
  optimizer = { choice = [\"adam\", \"adamw\", \"sgd\"] }
  \"config.hidden\" = { choice = [[128], [256, 128], [512, 256]] }

Parameters: epochs, batch_size, lr, optimizer, schedule, seed, limit, or any architecture
field as \"config.<field>\"; spaces: choice, uniform, log_uniform, int. Trials are jobs
(`kiln jobs ls`); the study's model name is base.model, else the study's name.";

/// `kiln tune` arguments.
#[derive(Debug, Args)]
#[command(after_help = SPEC_HELP)]
pub struct TuneArgs {
    /// The study spec (TOML).
    spec: PathBuf,
    /// Return once the study is accepted instead of following it.
    #[arg(long)]
    detach: bool,
}

#[derive(Debug, Subcommand)]
pub enum StudiesCommand {
    /// List studies.
    Ls,
    /// Show a study and its trials.
    Show { study: Name },
    /// Stop a study: no new trials; running trials are cancelled with a checkpoint.
    Stop { study: Name },
    /// Resume a stopped study (its cancelled trials continue from their checkpoints).
    Resume { study: Name },
    /// Register a trial's best checkpoint as a new version of the study's model.
    Promote {
        study: Name,
        /// The trial's number [default: the study's best trial].
        #[arg(long)]
        trial: Option<u32>,
    },
}

/// How often a followed study is polled.
const POLL: Duration = Duration::from_millis(500);

pub fn tune(args: &TuneArgs, json: bool) -> Result<u8, CliError> {
    let source = std::fs::read_to_string(&args.spec)
        .map_err(|e| CliError::bad_input(format!("cannot read {}: {e}", args.spec.display())))?;
    let file = args
        .spec
        .file_name()
        .map_or_else(|| args.spec.display().to_string(), |f| f.to_string_lossy().into_owned());
    let client = connect()?;
    let request = StudyCreate { source, file };
    let study = client.run(|c| c.create_study(&request))?;
    if args.detach {
        emit(json, &study, || {
            format!(
                "study {} started: {} trials, {} at once; follow it with `kiln studies show {}` or on the Studies screen (5)",
                study.name(),
                study.spec.budget.trials,
                study.spec.budget.concurrent,
                study.name()
            )
        })?;
        return Ok(0);
    }
    follow(&client, study, json)
}

/// Prints each trial's end and the progress until the study ends (or Ctrl-C detaches).
fn follow(client: &Blocking, mut study: StudyView, json: bool) -> Result<u8, CliError> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .map_err(|e| CliError::failure(format!("cannot install signal handler: {e}")))?;
    }
    let started = Instant::now();
    let mut reported: Vec<TrialState> = Vec::new();
    let mut last_progress = String::new();
    loop {
        if !json {
            report_trials(&study, &mut reported);
            let line = progress(&study);
            if line != last_progress {
                eprintln!("[{:>4}s] {line}", started.elapsed().as_secs());
                last_progress = line;
            }
        }
        if study.state != StudyState::Running {
            break;
        }
        if interrupted.load(Ordering::Relaxed) {
            eprintln!(
                "kiln: the study goes on in the daemon; `kiln studies show {0}` follows it, `kiln studies stop {0}` stops it",
                study.name()
            );
            return Ok(0);
        }
        std::thread::sleep(POLL);
        let name = study.name().clone();
        study = client.run(|c| c.study(&name))?;
    }
    emit(json, &study, || study.message.clone())?;
    Ok(if study.state == StudyState::Completed {
        0
    } else {
        CANCELLED
    })
}

/// One line per trial that ended since the last call.
fn report_trials(study: &StudyView, reported: &mut Vec<TrialState>) {
    for trial in &study.trials {
        let number = trial.number as usize;
        if reported.len() <= number {
            reported.resize(number + 1, TrialState::Queued);
        }
        if trial.state.is_final() && !reported[number].is_final() {
            eprintln!("  {}", trial_line(study, trial));
        }
        reported[number] = trial.state;
    }
}

/// `trial 3 pruned at epoch 1 (lr=0.0003 batch_size=64): ASHA …`.
fn trial_line(study: &StudyView, trial: &Trial) -> String {
    let objective = study.spec.objective;
    let best = objective
        .best(trial.values.iter().copied())
        .map(|(_, v)| format!(" {} {v:.4}", objective.metric))
        .unwrap_or_default();
    let how = match (&trial.pruned, trial.state) {
        (Some(p), TrialState::Pruned) => format!("pruned at epoch {}: {}", p.epoch, p.reason),
        (_, TrialState::Failed | TrialState::Cancelled) => {
            format!("{}: {}", trial.state, trial.message.lines().last().unwrap_or_default())
        }
        (_, state) => format!("{state} after {} epochs", trial.epochs_run()),
    };
    format!("trial {}{best} ({}) {how}", trial.number, params_text(trial))
}

fn params_text(trial: &Trial) -> String {
    trial
        .params
        .iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `trials 5/24 done (3 completed, 2 pruned, 0 failed), 2 running; best val_accuracy 0.8712 (trial 2)`.
fn progress(study: &StudyView) -> String {
    let done = study.trials.iter().filter(|t| t.state.is_final()).count();
    let running = study.count(TrialState::Running);
    let best = study
        .best()
        .map(|(t, v)| format!("; best {} {v:.4} (trial {})", study.spec.objective.metric, t.number))
        .unwrap_or_default();
    format!(
        "{}: trials {done}/{} done ({} completed, {} pruned, {} failed), {running} running{best}",
        study.state,
        study.spec.budget.trials,
        study.count(TrialState::Completed),
        study.count(TrialState::Pruned),
        study.count(TrialState::Failed),
    )
}

pub fn run(cmd: &StudiesCommand, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    match cmd {
        StudiesCommand::Ls => {
            let list = client.run(|c| c.studies())?;
            for problem in &list.problems {
                eprintln!("kiln: warning: skipped unreadable study: {problem}");
            }
            emit(json, &list, || list_table(&list.studies))?;
        }
        StudiesCommand::Show { study } => {
            let view = client.run(|c| c.study(study))?;
            emit(json, &view, || show_text(&view))?;
        }
        StudiesCommand::Stop { study } => {
            let view = client.run(|c| c.stop_study(study))?;
            emit(json, &view, || {
                format!("study {study} stopped; `kiln studies resume {study}` continues it")
            })?;
        }
        StudiesCommand::Resume { study } => {
            let view = client.run(|c| c.resume_study(study))?;
            emit(json, &view, || format!("study {study} resumed: {}", progress(&view)))?;
        }
        StudiesCommand::Promote { study, trial } => {
            let request = PromoteRequest { trial: *trial };
            let manifest = client.run(|c| c.promote_trial(study, &request))?;
            emit(json, &manifest, || {
                let link = manifest.draft.study.as_ref();
                format!(
                    "registered {}@{} from trial {} of {study} (epoch {})",
                    manifest.model,
                    manifest.version,
                    link.map_or_else(String::new, |l| l.trial.to_string()),
                    link.map_or(0, |l| l.epoch)
                )
            })?;
        }
    }
    Ok(0)
}

fn list_table(studies: &[StudyView]) -> String {
    let rows: Vec<Vec<String>> = studies
        .iter()
        .map(|s| {
            let done = s.trials.iter().filter(|t| t.state.is_final()).count();
            let best = s
                .best()
                .map(|(t, v)| format!("{v:.4} (trial {})", t.number))
                .unwrap_or_default();
            vec![
                s.name().to_string(),
                s.state.to_string(),
                format!("{done}/{}", s.spec.budget.trials),
                s.count(TrialState::Pruned).to_string(),
                s.spec.objective.metric.to_string(),
                best,
            ]
        })
        .collect();
    table::render(&["STUDY", "STATE", "TRIALS", "PRUNED", "OBJECTIVE", "BEST"], &rows)
        .trim_end()
        .to_owned()
}

fn show_text(study: &StudyView) -> String {
    let objective = study.spec.objective;
    let rows: Vec<Vec<String>> = study
        .trials
        .iter()
        .map(|t| {
            let state = match &t.pruned {
                Some(p) if t.state == TrialState::Pruned => format!("pruned@e{}", p.epoch),
                _ => t.state.to_string(),
            };
            let best = objective
                .best(t.values.iter().copied())
                .map(|(_, v)| format!("{v:.4}"))
                .unwrap_or_default();
            vec![
                t.number.to_string(),
                state,
                best,
                t.epochs_run().to_string(),
                t.device.clone().unwrap_or_default(),
                params_text(t),
            ]
        })
        .collect();
    let header = format!(
        "study {} ({}, sampler {}, early stop {}): {}\n{}",
        study.name(),
        study.state,
        study.spec.sampler,
        study.spec.early_stop,
        objective.metric,
        if study.message.is_empty() {
            progress(study)
        } else {
            study.message.clone()
        }
    );
    let table = table::render(&["TRIAL", "STATE", "BEST", "EPOCHS", "DEVICE", "PARAMS"], &rows);
    let notes: Vec<String> = study
        .trials
        .iter()
        .filter(|t| {
            matches!(t.state, TrialState::Pruned | TrialState::Failed) || !t.message.is_empty() && !t.state.is_final()
        })
        .map(|t| {
            format!(
                "trial {}: {}",
                t.number,
                t.pruned.as_ref().map_or(t.message.as_str(), |p| p.reason.as_str())
            )
        })
        .collect();
    format!("{header}\n\n{}\n{}", table.trim_end(), notes.join("\n"))
        .trim_end()
        .to_owned()
}
