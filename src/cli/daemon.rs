//! `kiln daemon start|status|stop` and `kiln jobs ls|show|logs|wait|cancel`, over the
//! control API.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::{Value, json};

use super::CliError;
use kiln_core::client::{Client, ClientError};
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

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs.
    Ls,
    /// Show one job's spec and status.
    Show { id: String },
    /// Print a job's worker log.
    Logs {
        id: String,
        /// Keep printing new lines until the job ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Wait until a job ends. Exit code 0 succeeded, 1 failed, 6 cancelled.
    Wait {
        id: String,
        /// Give up after this long (e.g. 90s, 10m); exit code 1.
        #[arg(long)]
        timeout: Option<humantime::Duration>,
    },
    /// Cancel a job (a running worker checkpoints first).
    Cancel { id: String },
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::NotRunning { .. } => 3,
            ClientError::Http { status: 404, .. } => 3,
            ClientError::Http { status: 409, .. } => 5,
            ClientError::Http {
                status: 400 | 401 | 422,
                ..
            } => 2,
            _ => 1,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

fn health(home: &Path) -> Result<Value, ClientError> {
    Client::from_home(home)?.get("/api/v1/health")
}

pub fn run_daemon(cmd: &DaemonCommand, json_out: bool) -> Result<u8, CliError> {
    let home = kiln_home()?;
    match cmd {
        DaemonCommand::Start => {
            let info = ensure_running(&home)?;
            print(json_out, &info, || {
                format!(
                    "kilnd {} runs at {} (log: {})",
                    info["pid"],
                    address(&home),
                    log_path(&home).display()
                )
            });
        }
        DaemonCommand::Status => {
            let info = health(&home)?;
            print(json_out, &info, || {
                format!(
                    "kilnd {} runs at {} for {}; supervising {} job(s)",
                    info["pid"],
                    address(&home),
                    home.display(),
                    info["running_jobs"].as_array().map_or(0, Vec::len)
                )
            });
        }
        DaemonCommand::Stop => {
            let info = health(&home)?;
            let pid = info["pid"].as_i64().ok_or_else(|| CliError {
                code: 1,
                message: "kilnd did not report its pid".into(),
            })?;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            let alive = || Path::new(&format!("/proc/{pid}")).exists() || health(&home).is_ok();
            while alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            print(json_out, &json!({ "stopped": pid }), || format!("kilnd {pid} stopped"));
        }
    }
    Ok(0)
}

/// Returns the daemon's health, starting it detached first when none answers.
pub fn ensure_running(home: &Path) -> Result<Value, CliError> {
    if let Ok(info) = health(home) {
        return Ok(info);
    }
    let dir = home.join("daemon");
    kiln_core::fsx::create_dir_durably(&dir).map_err(|e| CliError {
        code: 1,
        message: format!("cannot create {}: {e}", dir.display()),
    })?;
    let _ = std::fs::remove_file(dir.join("address"));
    let mut kilnd = super::train::kilnd_command()?;
    kilnd.arg("--foreground");
    kiln_core::jobs::spawn_detached(kilnd, home, &log_path(home)).map_err(|e| CliError {
        code: 1,
        message: format!("cannot start kilnd: {e}"),
    })?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match health(home) {
            Ok(info) => {
                eprintln!("started kilnd (log: {})", log_path(home).display());
                return Ok(info);
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                let message = format!("kilnd did not come up: {e}; see {}", log_path(home).display());
                return Err(CliError { code: 1, message });
            }
        }
    }
}

fn log_path(home: &Path) -> std::path::PathBuf {
    home.join("daemon").join("daemon.log")
}

fn address(home: &Path) -> String {
    std::fs::read_to_string(home.join("daemon").join("address"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn print(json_out: bool, doc: &Value, text: impl FnOnce() -> String) {
    if json_out {
        println!("{doc}")
    } else {
        println!("{}", text())
    }
}

pub fn run_jobs(cmd: &JobsCommand, json_out: bool) -> Result<u8, CliError> {
    let home = kiln_home()?;
    ensure_running(&home)?;
    let client = Client::from_home(&home)?;
    match cmd {
        JobsCommand::Ls => {
            let list = client.get("/api/v1/jobs")?;
            print(json_out, &list, || {
                let rows: Vec<Vec<String>> = list["jobs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|j| {
                        let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        vec![
                            text(&j["id"]),
                            text(&j["status"]["state"]),
                            text(&j["spec"]["arch"]),
                            text(&j["spec"]["data"]),
                            text(&j["spec"]["model"]),
                            j["status"]["step"].to_string(),
                        ]
                    })
                    .collect();
                super::table::render(&["JOB", "STATE", "ARCH", "DATA", "MODEL", "STEP"], &rows)
                    .trim_end()
                    .to_owned()
            });
        }
        JobsCommand::Show { id } => {
            let job = client.get(&format!("/api/v1/jobs/{id}"))?;
            print(json_out, &job, || {
                serde_json::to_string_pretty(&job).unwrap_or_default()
            });
        }
        JobsCommand::Logs { id, follow } => return logs(&client, id, *follow),
        JobsCommand::Wait { id, timeout } => return wait(&client, id, timeout.map(Into::into), json_out),
        JobsCommand::Cancel { id } => {
            let job = client.post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}))?;
            print(json_out, &job, || {
                format!("cancelling job {id} (state was {})", job["status"]["state"])
            });
        }
    }
    Ok(0)
}

/// Prints the worker log; with `follow`, keeps polling until the job has ended and the log
/// is drained.
fn logs(client: &Client, id: &str, follow: bool) -> Result<u8, CliError> {
    use std::io::Write;
    let mut offset = 0;
    loop {
        let chunk = client.get(&format!("/api/v1/jobs/{id}/log?since={offset}"))?;
        let text = chunk["text"].as_str().unwrap_or_default();
        let next = chunk["next"].as_u64().unwrap_or(offset);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        if next > offset {
            offset = next;
            continue;
        }
        if !follow {
            return Ok(0);
        }
        let view = client.get(&format!("/api/v1/jobs/{id}"))?;
        if view["status"]["state"]
            .as_str()
            .is_some_and(|s| matches!(s, "succeeded" | "failed" | "cancelled"))
        {
            let rest = client.get(&format!("/api/v1/jobs/{id}/log?since={offset}"))?;
            let _ = out.write_all(rest["text"].as_str().unwrap_or_default().as_bytes());
            return Ok(0);
        }
        drop(out);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits for the job to end and exits with its state's code.
fn wait(client: &Client, id: &str, timeout: Option<Duration>, json_out: bool) -> Result<u8, CliError> {
    let (view, status) = super::train::wait_for_end(client, id, timeout.map(|t| Instant::now() + t))?;
    print(json_out, &view, || {
        format!(
            "job {id} {}: {}",
            view["status"]["state"].as_str().unwrap_or("?"),
            status.message
        )
    });
    Ok(super::train::exit_code(status.state))
}
