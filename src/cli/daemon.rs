//! `kiln daemon start|status|stop|connection`, and how every other command reaches kilnd:
//! [`connect`] starts it (detached) when none answers and hands back the blocking client of
//! the control API. With `--context NAME` that daemon is the one of a box reached over ssh
//! ([`kiln_core::context`]): the `daemon` subcommands run there, through ssh, and every other
//! command talks to it through the context's tunnel.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde::Serialize;

use super::error::{CliError, NOT_FOUND};
use super::output::emit;
use kiln_core::api::Health;
use kiln_core::client::{Blocking, Client, ClientError};
use kiln_core::context::{self, Connection, Session};
use kiln_core::home::kiln_home;

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Start kilnd in the background (no-op when one already answers).
    Start,
    /// Show whether kilnd runs, where, and which jobs it supervises.
    Status,
    /// Stop kilnd (running training workers keep going and are re-adopted later).
    Stop,
    /// Print where kilnd listens and its control token as JSON, starting it when none answers:
    /// what `kiln --context` runs on a box over ssh. The token is a secret: keep the output
    /// out of logs.
    Connection,
}

/// The context of this run (`--context` or `KILN_CONTEXT`), set once by `main`.
static CONTEXT: OnceLock<Option<String>> = OnceLock::new();

/// Makes every command of this run talk to context `name` (`None`: this box's kilnd).
pub fn set_context(name: Option<String>) {
    let _ = CONTEXT.set(name.filter(|n| !n.is_empty() && n != context::LOCAL));
}

fn current_context() -> Option<&'static str> {
    CONTEXT.get().and_then(|c| c.as_deref())
}

/// Opens context `name` from the config file: its tunnel, with kilnd started there.
pub fn open_context(name: &str) -> Result<Arc<Session>, CliError> {
    let config = context::find(kiln_core::home::config_dir().as_deref(), name)?;
    Ok(Session::open(name, config)?)
}

/// How long a starting kilnd has to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopping kilnd has to go.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// What `kiln daemon stop --json` prints.
#[derive(Serialize)]
struct Stopped {
    stopped: u32,
}

/// A blocking client for the daemon of `$KILN_HOME`, without starting anything.
fn client() -> Result<Blocking, CliError> {
    let home = kiln_home()?;
    Blocking::new(&home).map_err(runtime_error)
}

fn runtime_error(e: std::io::Error) -> CliError {
    CliError::failure(format!("cannot start the client's runtime: {e}"))
}

/// A blocking client for the daemon of `$KILN_HOME`, starting kilnd first when none answers;
/// with a context, for that box's kilnd (which opening the context starts).
pub fn connect() -> Result<Blocking, CliError> {
    if let Some(name) = current_context() {
        return Blocking::with(Client::remote(open_context(name)?)).map_err(runtime_error);
    }
    let client = client()?;
    ensure_running(&client)?;
    Ok(client)
}

pub fn run(cmd: &DaemonCommand, json: bool) -> Result<u8, CliError> {
    if let Some(name) = current_context() {
        return on_the_box(name, cmd, json);
    }
    let client = client()?;
    let home = kiln_home()?;
    match cmd {
        DaemonCommand::Start => {
            let info = ensure_running(&client)?;
            emit(json, &info, || {
                format!(
                    "kilnd {} runs at {} (log: {})",
                    info.pid,
                    address(&home),
                    log_path(&home).display()
                )
            })?;
        }
        DaemonCommand::Status => {
            let info = client.run(|c| c.health()).map_err(not_running)?;
            emit(json, &info, || {
                format!(
                    "kilnd {} runs at {} for {}; supervising {} job(s)",
                    info.pid,
                    address(&home),
                    home.display(),
                    info.running_jobs.len()
                )
            })?;
        }
        DaemonCommand::Stop => stop(&client, json)?,
        DaemonCommand::Connection => {
            let info = ensure_running(&client)?;
            let connection = connection(&home, info)?;
            emit(true, &connection, String::new)?;
        }
    }
    Ok(0)
}

/// `kiln --context NAME daemon …`: the same subcommand, run by the box's kiln over ssh, its
/// output and exit code passed through.
fn on_the_box(name: &str, cmd: &DaemonCommand, json: bool) -> Result<u8, CliError> {
    let config = context::find(kiln_core::home::config_dir().as_deref(), name)?;
    let sub = match cmd {
        DaemonCommand::Start => "start",
        DaemonCommand::Status => "status",
        DaemonCommand::Stop => "stop",
        DaemonCommand::Connection => {
            return Err(CliError::bad_input(
                "`daemon connection` prints a box's token: run it on that box, not through --context",
            ));
        }
    };
    let mut args = vec!["daemon", sub];
    if json {
        args.push("--json");
    }
    let mut ssh = config
        .ssh_kiln(&args)
        .map_err(|e| CliError::bad_input(format!("[contexts.{name}] ssh: {e}")))?;
    let status = ssh
        .status()
        .map_err(|e| CliError::failure(format!("cannot run ssh: {e}")))?;
    match status.code() {
        Some(255) => Err(CliError::failure(format!(
            "context {name}: ssh {} failed (above)",
            config.ssh
        ))),
        Some(code) => Ok(u8::try_from(code).unwrap_or(1)),
        None => Err(CliError::failure(format!("context {name}: ssh was killed"))),
    }
}

/// Where this box's kilnd listens and its token, for `daemon connection`.
fn connection(home: &Path, info: Health) -> Result<Connection, CliError> {
    let dir = home.join("daemon");
    let token = std::fs::read_to_string(dir.join("token"))
        .map_err(|e| CliError::failure(format!("cannot read {}: {e}", dir.join("token").display())))?;
    // The inference listener binds just after the control API: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    let inference_address = loop {
        match std::fs::read_to_string(dir.join("inference_address")) {
            Ok(address) if !address.trim().is_empty() => break Some(address.trim().to_owned()),
            _ if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => break None,
        }
    };
    Ok(Connection {
        address: address(home),
        token: token.trim().to_owned(),
        inference_address,
        pid: info.pid,
        home: info.home,
        kiln: info.kiln,
    })
}

/// No daemon answering is "not found" (exit code 3), whatever the socket said.
fn not_running(e: ClientError) -> CliError {
    if e.is_unreachable() {
        CliError {
            code: NOT_FOUND,
            message: e.to_string(),
        }
    } else {
        e.into()
    }
}

/// Sends SIGTERM and waits (a while) for the process and its API to go.
fn stop(client: &Blocking, json: bool) -> Result<(), CliError> {
    let pid = client.run(|c| c.health()).map_err(not_running)?.pid;
    let raw = i32::try_from(pid).map_err(|_| CliError::failure(format!("kilnd reported pid {pid}")))?;
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    let alive = || Path::new(&format!("/proc/{pid}")).exists() || client.run(|c| c.health()).is_ok();
    while alive() && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    emit(json, &Stopped { stopped: pid }, || format!("kilnd {pid} stopped"))
}

/// Returns the daemon's health, starting it detached first when none answers.
fn ensure_running(client: &Blocking) -> Result<Health, CliError> {
    if let Ok(info) = client.run(|c| c.health()) {
        return Ok(info);
    }
    let home = kiln_home()?;
    let home = home.as_path();
    let dir = home.join("daemon");
    kiln_core::fsx::create_dir_durably(&dir)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(dir.join("address"));
    let mut kilnd = kilnd_command()?;
    kilnd.arg("--foreground");
    kiln_core::jobs::spawn_detached(kilnd, home, &log_path(home))
        .map_err(|e| CliError::failure(format!("cannot start kilnd: {e}")))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match client.run(|c| c.health()) {
            Ok(info) => {
                eprintln!("started kilnd (log: {})", log_path(home).display());
                return Ok(info);
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(POLL),
            Err(e) => {
                let message = format!("kilnd did not come up: {e}; see {}", log_path(home).display());
                return Err(CliError::failure(message));
            }
        }
    }
}

/// `kilnd`, from `KILN_KILND` or beside this executable.
fn kilnd_command() -> Result<Command, CliError> {
    if let Some(path) = std::env::var_os("KILN_KILND") {
        return Ok(Command::new(path));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("kilnd")));
    match beside {
        Some(path) if path.is_file() => Ok(Command::new(path)),
        _ => Err(CliError::failure(
            "kilnd (which links libtorch and runs the engine) is not installed next to kiln; \
             build it with `cargo build --bin kilnd` or point KILN_KILND at it",
        )),
    }
}

fn log_path(home: &Path) -> PathBuf {
    home.join("daemon").join("daemon.log")
}

fn address(home: &Path) -> String {
    std::fs::read_to_string(home.join("daemon").join("address"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}
