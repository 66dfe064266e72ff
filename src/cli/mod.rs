//! The `kiln` command line: argument parsing, dispatch and exit codes.
//!
//! Exit codes (also in `kiln --help`): 0 success, 1 failure, 2 bad input or usage,
//! 3 not found, 4 corrupt data found, 5 refused (e.g. removing an aliased version),
//! 6 job cancelled.

pub mod daemon;
mod models;
mod serving;
mod table;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use kiln_core::registry::RegistryError;

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
    /// Evaluate a version on a dataset as a daemon job and attach the report to it.
    Eval(train::EvalArgs),
    /// Start, inspect or stop the kilnd daemon.
    #[command(subcommand)]
    Daemon(daemon::DaemonCommand),
    /// List, inspect, follow, wait for and cancel jobs through the daemon.
    #[command(subcommand)]
    Jobs(daemon::JobsCommand),
    /// Serve a version: load, warm up, switch atomically, move `production`.
    Deploy(serving::DeployArgs),
    /// Switch a model back to the version served before (or `--to` an earlier one).
    Rollback(serving::RollbackArgs),
    /// What is being served, with live figures (`--history`: every switch).
    Deployments(serving::DeploymentsArgs),
    /// Send one request to the inference endpoint and print the outputs.
    Predict(serving::PredictArgs),
}

/// Error carrying the exit code it should end the process with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl From<RegistryError> for CliError {
    fn from(e: RegistryError) -> Self {
        let code = match &e {
            RegistryError::InvalidName(_) => 2,
            e if e.is_not_found() => 3,
            e if e.is_corruption() => 4,
            RegistryError::AliasInUse { .. } => 5,
            _ => 1,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl From<kiln_core::home::HomeError> for CliError {
    fn from(e: kiln_core::home::HomeError) -> Self {
        Self {
            code: 1,
            message: e.to_string(),
        }
    }
}

/// `kiln` alone: start kilnd when none answers (the console retries if that fails), then
/// open the console.
fn open_console(cli: &Cli) -> ExitCode {
    if let Ok(home) = kiln_core::home::kiln_home() {
        let _ = daemon::ensure_running(&home);
    }
    crate::tui::main(crate::tui::Options {
        theme: cli.theme.clone(),
        readonly: cli.readonly,
    })
}

/// Runs the CLI and maps the outcome to the documented exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = &cli.command else {
        return open_console(&cli);
    };
    let result = match command {
        Command::Models(cmd) => models::run(cmd, cli.json),
        Command::Train(args) => train::train(args, cli.json),
        Command::Eval(args) => train::eval(args, cli.json),
        Command::Daemon(cmd) => daemon::run_daemon(cmd, cli.json),
        Command::Jobs(cmd) => daemon::run_jobs(cmd, cli.json),
        Command::Deploy(args) => serving::deploy(args, cli.json),
        Command::Rollback(args) => serving::rollback(args, cli.json),
        Command::Deployments(args) => serving::deployments(args, cli.json),
        Command::Predict(args) => serving::predict(args, cli.json),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if cli.json {
                println!("{}", serde_json::json!({ "error": e.message, "code": e.code }));
            }
            eprintln!("kiln: error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
