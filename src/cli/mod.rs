//! The `kiln` command line: argument parsing, dispatch and exit codes. Every command talks to
//! kilnd through the one client of the control API (`kiln_core::client::Blocking`), starting
//! the daemon first when none answers, and decodes the typed answers of `kiln_core::api`;
//! `--json` prints those answers serialized as they are.
//!
//! Exit codes (also in `kiln --help`): 0 success, 1 failure, 2 bad input or usage,
//! 3 not found, 4 corrupt data found, 5 refused (e.g. removing an aliased version),
//! 6 job cancelled.

mod compress;
mod contexts;
mod daemon;
mod error;
mod follow;
mod inspect;
mod jobs;
mod keys;
mod models;
mod output;
mod serving;
mod signing;
mod studies;
mod table;
mod train;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

pub use error::CliError;

const EXIT_CODES: &str = "Exit codes: 0 success, 1 failure, 2 bad input or usage, 3 not found, \
4 corrupt data found, 5 refused (e.g. removing a version an alias points at), 6 job cancelled.";

/// kiln: a keyboard-driven model-management console for GPU boxes over SSH.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Print results as JSON (one document on stdout).
    #[arg(long, global = true)]
    json: bool,
    /// Console colour theme: dark, light, high-contrast, or a theme file (no subcommand).
    #[arg(long, value_name = "NAME")]
    theme: Option<String>,
    /// Open the console with every mutating action (launch, cancel, deploy, rollback, delete)
    /// disabled.
    #[arg(long)]
    readonly: bool,
    /// Talk to the kilnd of another box: a `[contexts.NAME]` of config.toml, reached over ssh
    /// (`local`: this box). Paths given to commands are that box's paths.
    #[arg(long, global = true, env = "KILN_CONTEXT", value_name = "NAME")]
    context: Option<String>,
    /// Without a subcommand, `kiln` opens the console.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Browse and manage the local model registry.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Train a model as a daemon job, following it (Ctrl-C cancels with a checkpoint;
    /// --detach returns at once).
    Train(train::TrainArgs),
    /// Evaluate a version on a dataset as a daemon job and attach the report to it (with
    /// every row's prediction, for `kiln inspect`).
    Eval(train::EvalArgs),
    /// The samples behind a version's latest evaluation: a confusion-matrix cell, the hardest
    /// rows, or the rows another version disagrees on.
    Inspect(inspect::InspectArgs),
    /// Prune a version into a smaller child version (unstructured, or --structured units and
    /// filters), fine-tune it, and report it against its parent.
    Prune(compress::PruneArgs),
    /// Quantize a version's weights (--int8, --bf16 or --fp16) into a child version, and
    /// report it against its parent.
    Quantize(compress::QuantizeArgs),
    /// Run a hyperparameter study from a spec file: trials as daemon jobs, early stopping,
    /// progress until it ends (Ctrl-C leaves it running; --detach returns at once).
    Tune(studies::TuneArgs),
    /// List, inspect, stop, resume hyperparameter studies and promote a trial to a version.
    #[command(subcommand)]
    Studies(studies::StudiesCommand),
    /// Signing keys and the trust store (in the config folder; no daemon needed).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// This box and every context of config.toml, with live status (reachable, running jobs,
    /// GPU utilisation, deployments).
    Contexts,
    /// Start, inspect or stop the kilnd daemon.
    #[command(subcommand)]
    Daemon(daemon::DaemonCommand),
    /// List, inspect, follow, wait for and cancel jobs through the daemon.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Serve a version: load, warm up, run the gates (golden check, latency), then switch
    /// atomically and move `production` (or, with --canary, share the traffic first).
    Deploy(serving::DeployArgs),
    /// Canaries in progress: `status`, `promote` or `abort`.
    #[command(subcommand)]
    Canary(serving::CanaryCommand),
    /// Switch a model back to the version served before (or `--to` an earlier one).
    Rollback(serving::RollbackArgs),
    /// What is being served, with live figures (`--history`: every switch).
    Deployments(serving::DeploymentsArgs),
    /// Send one request to the inference endpoint and print the outputs.
    Predict(serving::PredictArgs),
    /// Print a shell completion script for kiln to stdout, e.g.
    /// `kiln completions bash > ~/.local/share/bash-completion/completions/kiln`.
    Completions {
        /// The shell to complete in.
        shell: Shell,
    },
    /// Print the kiln(1) manual page (roff) to stdout, e.g. `kiln man | man -l -`.
    Man,
}

/// `kiln` alone: start kilnd when none answers (the console retries if that fails), then
/// open the console.
fn open_console(cli: &Cli) -> ExitCode {
    let context = cli
        .context
        .clone()
        .filter(|name| !name.is_empty() && name != kiln_core::context::LOCAL);
    // A context's session (which starts its kilnd) opens inside the console, which shows
    // the box as unreachable and retries rather than failing before it opens.
    if context.is_none() {
        let _ = daemon::connect();
    }
    crate::tui::main(crate::tui::Options {
        theme: cli.theme.clone(),
        readonly: cli.readonly,
        context,
    })
}

/// Runs one subcommand; `Ok` carries the exit code.
fn run(command: &Command, json: bool) -> Result<u8, CliError> {
    match command {
        Command::Models(cmd) => models::run(cmd, json),
        Command::Train(args) => train::train(args, json),
        Command::Eval(args) => train::eval(args, json),
        Command::Inspect(args) => inspect::inspect(args, json),
        Command::Prune(args) => compress::prune(args, json),
        Command::Quantize(args) => compress::quantize(args, json),
        Command::Tune(args) => studies::tune(args, json),
        Command::Studies(cmd) => studies::run(cmd, json),
        Command::Keys(cmd) => keys::run(cmd, json),
        Command::Contexts => contexts::run(json),
        Command::Daemon(cmd) => daemon::run(cmd, json),
        Command::Jobs(cmd) => jobs::run(cmd, json),
        Command::Deploy(args) => serving::deploy(args, json),
        Command::Canary(cmd) => serving::canary(cmd, json),
        Command::Rollback(args) => serving::rollback(args, json),
        Command::Deployments(args) => serving::deployments(args, json),
        Command::Predict(args) => serving::predict(args, json),
        Command::Completions { shell } => write_out(&completion_script(*shell)),
        Command::Man => write_out(&man_page()?),
    }
}

/// The completion script for `shell`, generated from the same definitions that parse.
fn completion_script(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut out);
    out
}

/// The kiln(1) roff page, generated from the same definitions that parse.
fn man_page() -> Result<Vec<u8>, CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| CliError::failure(format!("cannot render the manual page: {e}")))?;
    Ok(out)
}

fn write_out(bytes: &[u8]) -> Result<u8, CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::failure(format!("cannot write to stdout: {e}")))?;
    Ok(0)
}

/// Runs the CLI and maps the outcome to the documented exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    daemon::set_context(cli.context.clone());
    let Some(command) = &cli.command else {
        return open_console(&cli);
    };
    match run(command, cli.json) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            e.print(cli.json);
            ExitCode::from(e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn completions_cover_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completion_script(shell)).unwrap_or_else(|e| panic!("{e}"));
            for word in ["models", "train", "deploy", "completions", "verify"] {
                assert!(script.contains(word), "{shell} completions lack {word}");
            }
        }
        let bash = String::from_utf8(completion_script(Shell::Bash)).unwrap_or_default();
        assert!(
            bash.contains("mlp") && bash.contains("adamw"),
            "possible values are completed"
        );
    }

    #[test]
    fn the_manual_page_is_roff_naming_the_subcommands() {
        let page = String::from_utf8(man_page().unwrap_or_else(|e| panic!("{e}"))).unwrap_or_default();
        assert!(page.starts_with(".ie") || page.contains(".TH kiln"), "{page}");
        for word in ["models", "train", "eval", "daemon", "predict", "Exit codes"] {
            assert!(page.contains(word), "the page lacks {word}");
        }
    }
}
