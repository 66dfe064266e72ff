//! `kiln daemon start|status|stop`, and how every other command reaches kilnd: [`connect`]
//! starts it (detached) when none answers and hands back the blocking client of the control
//! API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde::Serialize;

use super::error::{CliError, NOT_FOUND};
use super::output::emit;
use kiln_core::api::Health;
use kiln_core::client::{Blocking, ClientError};
use kiln_core::home::kiln_home;

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Start kilnd in the background (no-op when one already answers).
    Start,
    /// Show whether kilnd runs, where, and which jobs it supervises.
    Status,
    /// Stop kilnd (running training workers keep going and are re-adopted later).
    Stop,
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
    Blocking::new(&home).map_err(|e| CliError::failure(format!("cannot start the client's runtime: {e}")))
}

/// A blocking client for the daemon of `$KILN_HOME`, starting kilnd first when none answers.
pub fn connect() -> Result<Blocking, CliError> {
    let client = client()?;
    ensure_running(&client)?;
    Ok(client)
}

pub fn run(cmd: &DaemonCommand, json: bool) -> Result<u8, CliError> {
    let client = client()?;
    let home = client.client().home().to_owned();
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
    }
    Ok(0)
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
    let home = client.client().home();
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
