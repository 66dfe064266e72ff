//! Contexts: the kilnd of another box, reached through the system `ssh`, as k9s reaches
//! another cluster. `config.toml` names them:
//!
//! ```toml
//! [contexts.a100-1]
//! ssh = "me@gpu-a100-1"          # what follows `ssh`: a destination or ~/.ssh/config alias,
//!                                # after any options ("-p 2222 me@box")
//! kiln_home = "/data/kiln"       # optional: the remote KILN_HOME
//! control_port = 7420            # optional: the remote kilnd's control port when kiln starts it
//! kiln = "~/.cargo/bin/kiln"     # optional: the remote kiln, when not on ssh's PATH
//! [contexts.a100-1.env]          # optional: more environment for a kilnd kiln starts there
//! KILN_EXECUTOR = "slurm"
//! ```
//!
//! A [`Session`] opens one context: it runs `kiln daemon connection` on the box over ssh
//! (which starts kilnd there when none answers and prints where it listens and its token), then
//! keeps `ssh -N -L` forwarding a free local port to that address. The token travels only on
//! that ssh connection's stdout and stays in this process's memory: it is in no argv, no file
//! and no log. When the box's ssh config has no `ControlPath`, kiln asks for a ControlMaster of
//! its own (socket under the cache folder, kept 10 minutes), so the commands and tunnels of one
//! console or a run of CLI calls share one ssh connection; a configured one is reused as is.
//!
//! A tunnel that dies (network drop, a killed ssh, a restarted remote kilnd) is noticed on the
//! next request: the request fails with the reason, and the session reconnects in the
//! background, so the caller's next try goes through the new tunnel.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::names::Name;

/// The name that means this box's own kilnd (`:ctx local`, `--context local`); no
/// `[contexts.local]` may take it.
pub const LOCAL: &str = "local";

/// One `[contexts.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// The arguments of `ssh` that reach the box: a destination (`me@host`, an alias of
    /// `~/.ssh/config`), optionally after options (`-p 2222 -i key me@host`).
    pub ssh: String,
    /// The remote `KILN_HOME` (default: the remote user's).
    #[serde(default)]
    pub kiln_home: Option<String>,
    /// The control port of a kilnd that kiln starts there (`KILN_CONTROL_PORT`; default 7420).
    #[serde(default)]
    pub control_port: Option<u16>,
    /// The remote `kiln` binary (default: `kiln` on the remote PATH).
    #[serde(default)]
    pub kiln: Option<String>,
    /// More environment for the remote `kiln` and a kilnd it starts.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Why a context could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("no context named {name} in {file}; contexts there: {known}")]
    Unknown { name: String, file: String, known: String },
    #[error("{0}")]
    Config(String),
    #[error("context {context}: {message}")]
    Unreachable { context: String, message: String },
}

/// What `kiln daemon connection --json` prints on the remote box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// `host:port` of the control API, on the remote box.
    pub address: String,
    /// The control API's bearer token.
    pub token: String,
    /// `host:port` of the inference API, when it listens.
    #[serde(default)]
    pub inference_address: Option<String>,
    pub pid: u32,
    pub home: PathBuf,
    /// kiln's version there.
    pub kiln: String,
}

/// The `[contexts]` of `config.toml` in `config_dir`, by name (none when the file has none).
pub fn load(config_dir: Option<&Path>) -> Result<BTreeMap<Name, ContextConfig>, ContextError> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        contexts: BTreeMap<Name, ContextConfig>,
    }
    let Some(path) = config_dir.map(|d| d.join("config.toml")) else {
        return Ok(BTreeMap::new());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(ContextError::Config(format!("cannot read {}: {e}", path.display()))),
    };
    let file: File = toml::from_str(&text).map_err(|e| ContextError::Config(format!("{}: {e}", path.display())))?;
    if file.contexts.keys().any(|n| n.as_str() == LOCAL) {
        return Err(ContextError::Config(format!(
            "{}: [contexts.{LOCAL}]: \"{LOCAL}\" names this box's own kilnd; give the context another name",
            path.display()
        )));
    }
    for (name, config) in &file.contexts {
        config.split_ssh().map_err(|e| {
            ContextError::Config(format!(
                "{}: [contexts.{name}] ssh = {:?}: {e}",
                path.display(),
                config.ssh
            ))
        })?;
    }
    Ok(file.contexts)
}

/// The context `name` from `config_dir`'s `config.toml`.
pub fn find(config_dir: Option<&Path>, name: &str) -> Result<ContextConfig, ContextError> {
    let mut contexts = load(config_dir)?;
    let file = config_dir.map_or_else(
        || "(no config folder)".to_owned(),
        |d| d.join("config.toml").display().to_string(),
    );
    let known = if contexts.is_empty() {
        "none (add a [contexts.NAME] table with ssh = \"user@host\")".to_owned()
    } else {
        contexts.keys().map(Name::as_str).collect::<Vec<_>>().join(", ")
    };
    Name::new(name)
        .ok()
        .and_then(|n| contexts.remove(&n))
        .ok_or_else(|| ContextError::Unknown {
            name: name.to_owned(),
            file,
            known,
        })
}

impl ContextConfig {
    /// `ssh`'s options and its destination (the last word).
    fn split_ssh(&self) -> Result<(Vec<String>, String), String> {
        let mut words = shlex::split(&self.ssh).ok_or("unbalanced quotes")?;
        let destination = words.pop().ok_or("empty: give a destination such as me@host")?;
        if destination.starts_with('-') {
            return Err("the last word must be the destination (me@host or an ssh config alias)".into());
        }
        Ok((words, destination))
    }

    /// `ssh … kiln ARGS` on the box, with this context's environment.
    pub fn ssh_kiln(&self, args: &[&str]) -> Result<Command, String> {
        Ok(Ssh::new(self)?.command(&self.remote_kiln(args)))
    }

    /// The remote command line (for the remote shell) that runs `kiln ARGS` with this
    /// context's environment.
    fn remote_kiln(&self, args: &[&str]) -> String {
        let mut env: Vec<(String, String)> = self.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(home) = &self.kiln_home {
            env.push(("KILN_HOME".into(), home.clone()));
        }
        if let Some(port) = self.control_port {
            env.push(("KILN_CONTROL_PORT".into(), port.to_string()));
        }
        let mut words = Vec::new();
        if !env.is_empty() {
            words.push("env".to_owned());
            words.extend(env.iter().map(|(k, v)| quote(&format!("{k}={v}"))));
        }
        words.push(quote_path(self.kiln.as_deref().unwrap_or("kiln")));
        words.extend(args.iter().map(|a| quote(a)));
        words.join(" ")
    }
}

/// `word` quoted for a POSIX shell.
fn quote(word: &str) -> String {
    shlex::try_quote(word).map_or_else(|_| format!("'{}'", word.replace('\'', "'\\''")), |q| q.into_owned())
}

/// A path for the remote shell: a leading `~/` is left for the shell to expand.
fn quote_path(path: &str) -> String {
    match path.strip_prefix("~/") {
        Some(rest) => format!("~/{}", quote(rest)),
        None => quote(path),
    }
}

/// The `ssh` invocations of one context: its options, plus kiln's ControlMaster when the
/// user's ssh config sets no ControlPath of its own.
#[derive(Debug, Clone)]
pub struct Ssh {
    options: Vec<String>,
    destination: String,
}

/// How long kiln's own ControlMaster outlives its last use.
const CONTROL_PERSIST: &str = "10m";
/// How long a new tunnel has to listen.
const TUNNEL_TIMEOUT: Duration = Duration::from_secs(20);
/// Between two reconnection attempts.
const RETRY_EVERY: Duration = Duration::from_secs(1);

impl Ssh {
    /// The ssh of `config`; asks `ssh -G` whether a ControlPath is configured.
    pub fn new(config: &ContextConfig) -> Result<Self, String> {
        let (mut options, destination) = config.split_ssh()?;
        options.extend(["-o".into(), "BatchMode=yes".into()]);
        if !has_control_path(&options, &destination)
            && let Some(dir) = control_dir()
        {
            options.extend([
                "-o".into(),
                "ControlMaster=auto".into(),
                "-o".into(),
                format!("ControlPath={}/%C", dir.display()),
                "-o".into(),
                format!("ControlPersist={CONTROL_PERSIST}"),
            ]);
        }
        Ok(Self { options, destination })
    }

    /// `ssh OPTIONS DESTINATION REMOTE_COMMAND`.
    pub fn command(&self, remote: &str) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(&self.options).arg(&self.destination).arg("--").arg(remote);
        ssh
    }

    /// Forwards `127.0.0.1:LOCAL` to each remote `host:port`: through the ControlMaster when
    /// one runs (`ssh -O forward`, so the tunnel shares its connection), else with an `ssh -N
    /// -L` of its own.
    fn tunnel(&self, forwards: &[(u16, &str)]) -> Result<Tunnel, String> {
        let specs: Vec<String> = forwards
            .iter()
            .map(|(local, target)| format!("127.0.0.1:{local}:{target}"))
            .collect();
        if self.master_running() {
            let mut ok = true;
            for spec in &specs {
                let mut forward = self.control("forward");
                forward.arg("-L").arg(spec).stdin(Stdio::null());
                ok &= forward.output().is_ok_and(|out| out.status.success());
            }
            if ok {
                return Ok(Tunnel::Shared {
                    ssh: self.clone(),
                    specs,
                });
            }
            Tunnel::Shared {
                ssh: self.clone(),
                specs: specs.clone(),
            }
            .close();
        }
        let mut ssh = Command::new("ssh");
        ssh.args(&self.options)
            .args(["-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=5"])
            .args([
                "-o",
                "ServerAliveCountMax=3",
                "-o",
                "ControlMaster=no",
                "-o",
                "ControlPath=none",
            ]);
        for spec in &specs {
            ssh.arg("-L").arg(spec);
        }
        ssh.arg(&self.destination)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        ssh.spawn().map(Tunnel::Own).map_err(|e| format!("cannot run ssh: {e}"))
    }

    /// `ssh -O COMMAND DESTINATION`: a request to the ControlMaster.
    fn control(&self, command: &str) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(&self.options).args(["-O", command]).arg(&self.destination);
        ssh
    }

    /// Whether a ControlMaster for this destination answers.
    fn master_running(&self) -> bool {
        self.control("check")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|out| out.status.success())
    }

    pub fn destination(&self) -> &str {
        &self.destination
    }
}

/// Whether the user's ssh config gives `destination` a ControlPath (`ssh -G` prints the
/// effective settings without connecting).
fn has_control_path(options: &[String], destination: &str) -> bool {
    let Ok(out) = Command::new("ssh").args(options).arg("-G").arg(destination).output() else {
        return false;
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("controlpath "))
        .any(|path| path.trim() != "none")
}

/// kiln's ControlMaster sockets: `~/.cache/kiln/ssh`, private to the user.
fn control_dir() -> Option<PathBuf> {
    let dir = directories::BaseDirs::new()?.cache_dir().join("kiln").join("ssh");
    std::fs::create_dir_all(&dir).ok()?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
    // Unix sockets have a short path limit (~104 bytes); %C adds 40.
    (dir.as_os_str().len() < 60).then_some(dir)
}

/// Runs `kiln daemon connection --json` on the box (starting kilnd there when none answers).
pub fn remote_connection(name: &str, config: &ContextConfig, ssh: &Ssh) -> Result<Connection, ContextError> {
    let unreachable = |message: String| ContextError::Unreachable {
        context: name.to_owned(),
        message,
    };
    let out = ssh
        .command(&config.remote_kiln(&["daemon", "connection", "--json"]))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| unreachable(format!("cannot run ssh: {e} (is OpenSSH's client installed?)")))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    match out.status.code() {
        Some(0) => {}
        Some(255) => {
            return Err(unreachable(format!(
                "ssh {} failed: {}",
                ssh.destination(),
                last_line(&stderr)
            )));
        }
        Some(127) => {
            let kiln = config.kiln.as_deref().unwrap_or("kiln");
            return Err(unreachable(format!(
                "{kiln} is not installed on {} or not on ssh's PATH (set kiln = \"/path/to/kiln\" in \
                 [contexts.{name}])",
                ssh.destination()
            )));
        }
        code => {
            let how = code.map_or_else(|| "was killed".to_owned(), |c| format!("exited with {c}"));
            return Err(unreachable(format!("the remote kiln {how}: {}", last_line(&stderr))));
        }
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        unreachable(format!(
            "the remote kiln answered something unexpected ({e}); is it the same version?"
        ))
    })
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(nothing on stderr)")
}

/// The forwarding of one link.
enum Tunnel {
    /// Forwards of the ControlMaster (`ssh -O forward`): cancelled when dropped.
    Shared { ssh: Ssh, specs: Vec<String> },
    /// An `ssh -N -L` of its own: killed when dropped.
    Own(Child),
}

impl Tunnel {
    /// Why it is gone, once it is (a shared one is found gone by its refused connections).
    fn ended(&mut self) -> Option<String> {
        match self {
            Self::Shared { .. } => None,
            Self::Own(child) => match child.try_wait() {
                Ok(None) => None,
                Ok(Some(exit)) => Some(exit.to_string()),
                Err(e) => Some(e.to_string()),
            },
        }
    }

    fn close(&mut self) {
        match self {
            Self::Shared { ssh, specs } => {
                for spec in specs.drain(..) {
                    let mut cancel = ssh.control("cancel");
                    let _ = cancel.arg("-L").arg(spec).stdin(Stdio::null()).output();
                }
            }
            Self::Own(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.close();
    }
}

/// An open tunnel to one context's kilnd.
struct Link {
    tunnel: Tunnel,
    control: SocketAddr,
    inference: Option<SocketAddr>,
    token: String,
    remote: Connection,
}

/// Opens a link: the remote connection, then a tunnel that listens.
fn open(name: &str, config: &ContextConfig, ssh: &Ssh) -> Result<Link, ContextError> {
    let unreachable = |message: String| ContextError::Unreachable {
        context: name.to_owned(),
        message,
    };
    let remote = remote_connection(name, config, ssh)?;
    let control_port = free_port().map_err(|e| unreachable(format!("no free local port: {e}")))?;
    let mut forwards = vec![(control_port, remote.address.as_str())];
    let inference_port = match &remote.inference_address {
        Some(address) => {
            let port = free_port().map_err(|e| unreachable(format!("no free local port: {e}")))?;
            forwards.push((port, address.as_str()));
            Some(port)
        }
        None => None,
    };
    let mut tunnel = ssh.tunnel(&forwards).map_err(unreachable)?;
    let control = SocketAddr::from(([127, 0, 0, 1], control_port));
    let deadline = Instant::now() + TUNNEL_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&control, Duration::from_millis(200)).is_ok() {
            break;
        }
        if let Tunnel::Own(child) = &mut tunnel
            && let Ok(Some(exit)) = child.try_wait()
        {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            return Err(unreachable(format!(
                "the ssh tunnel to {} {exit}: {}",
                ssh.destination(),
                last_line(&stderr)
            )));
        }
        if Instant::now() > deadline {
            return Err(unreachable(format!(
                "the ssh tunnel to {} did not listen within {}s",
                ssh.destination(),
                TUNNEL_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // ssh's later complaints (a dropped connection) would fill an unread pipe: let them go.
    if let Tunnel::Own(child) = &mut tunnel {
        drop(child.stderr.take());
    }
    Ok(Link {
        tunnel,
        control,
        inference: inference_port.map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
        token: remote.token.clone(),
        remote,
    })
}

/// A port nothing listens on now.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where the client sends a context's requests, and the token they carry.
#[derive(Debug, Clone)]
pub struct Route {
    pub control: SocketAddr,
    pub token: String,
}

/// One context's connection, kept up for as long as it is held: shared by every client of it.
pub struct Session {
    name: String,
    config: ContextConfig,
    ssh: Ssh,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    link: Option<Link>,
    /// Why there is no link (shown until one is up again).
    problem: Option<String>,
    reconnecting: bool,
    last_attempt: Option<Instant>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects to context `name` (runs ssh; blocks until the tunnel listens or fails).
    pub fn open(name: &str, config: ContextConfig) -> Result<Arc<Self>, ContextError> {
        let ssh = Ssh::new(&config).map_err(|e| ContextError::Config(format!("[contexts.{name}] ssh: {e}")))?;
        let link = open(name, &config, &ssh)?;
        Ok(Arc::new(Self {
            name: name.to_owned(),
            config,
            ssh,
            state: Mutex::new(State {
                link: Some(link),
                ..State::default()
            }),
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &ContextConfig {
        &self.config
    }

    /// `ssh … kiln ARGS` on the box, with the context's environment.
    pub fn remote_kiln(&self, args: &[&str]) -> Command {
        self.ssh.command(&self.config.remote_kiln(args))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where to send a request now; when the tunnel is down, why, after starting a
    /// reconnection in the background.
    pub fn route(self: &Arc<Self>) -> Result<Route, String> {
        let mut state = self.lock();
        if let Some(link) = state.link.as_mut() {
            match link.tunnel.ended() {
                None => {
                    return Ok(Route {
                        control: link.control,
                        token: link.token.clone(),
                    });
                }
                Some(how) => {
                    state.problem = Some(format!("the ssh tunnel to {} ended ({how})", self.ssh.destination()))
                }
            }
            state.link = None;
        }
        self.reconnect(&mut state);
        let problem = state.problem.clone().unwrap_or_else(|| "not connected".into());
        Err(format!("context {}: {problem}; reconnecting", self.name))
    }

    /// Where the box's inference API is forwarded to, when it listens.
    pub fn inference(&self) -> Option<SocketAddr> {
        self.lock().link.as_ref().and_then(|l| l.inference)
    }

    /// What the box's kiln said when the link opened (home, pid, version).
    pub fn remote(&self) -> Option<Connection> {
        self.lock().link.as_ref().map(|l| Connection {
            token: String::new(),
            ..l.remote.clone()
        })
    }

    /// A request through the tunnel found no kilnd (or a stale token): the remote daemon
    /// restarted, or the tunnel broke. Drops the link so the next route reconnects (which
    /// starts the remote kilnd again when it is down).
    pub fn lost(self: &Arc<Self>, why: &str) {
        let mut state = self.lock();
        let old = state.link.take();
        if old.is_some() {
            state.problem = Some(why.to_owned());
        }
        self.reconnect(&mut state);
        drop(state);
        // Cancelling the old forward runs ssh: not under the lock.
        drop(old);
    }

    /// Starts one reconnection in the background unless one runs or one was just tried.
    fn reconnect(self: &Arc<Self>, state: &mut State) {
        if state.reconnecting || state.last_attempt.is_some_and(|t| t.elapsed() < RETRY_EVERY) {
            return;
        }
        state.reconnecting = true;
        state.last_attempt = Some(Instant::now());
        let session = Arc::clone(self);
        std::thread::spawn(move || {
            let result = open(&session.name, &session.config, &session.ssh);
            let mut state = session.lock();
            state.reconnecting = false;
            match result {
                Ok(link) => {
                    state.link = Some(link);
                    state.problem = None;
                }
                Err(e) => state.problem = Some(e.to_string()),
            }
        });
    }

    /// Waits (up to `timeout`) for a reconnection under way to finish; whether a link is up.
    pub fn wait_connected(self: &Arc<Self>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.route().is_ok() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One context at a glance: what `kiln contexts` and the console's contexts screen show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextStatus {
    pub name: String,
    /// The `ssh` setting (`None` for this box).
    #[serde(default)]
    pub ssh: Option<String>,
    pub reachable: bool,
    /// Why it is not reachable, or what went wrong reading it.
    #[serde(default)]
    pub problem: Option<String>,
    /// kilnd's version, pid and home there.
    #[serde(default)]
    pub kiln: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub home: Option<PathBuf>,
    pub running_jobs: usize,
    /// GPUs in the latest telemetry sample, and their mean utilisation.
    pub gpus: usize,
    #[serde(default)]
    pub gpu_utilization_pct: Option<f64>,
    pub deployments: usize,
}

/// Reads one context's figures through `client` (health, the latest telemetry sample, the
/// deployments); an unreachable daemon is a status, not an error.
pub async fn survey(name: &str, ssh: Option<&str>, client: &crate::client::Client) -> ContextStatus {
    let mut status = ContextStatus {
        name: name.to_owned(),
        ssh: ssh.map(str::to_owned),
        ..ContextStatus::default()
    };
    let health = match client.health().await {
        Ok(health) => health,
        Err(e) => {
            status.problem = Some(e.to_string());
            return status;
        }
    };
    status.reachable = true;
    status.kiln = Some(health.kiln);
    status.pid = Some(health.pid);
    status.home = Some(health.home);
    status.running_jobs = health.running_jobs.len();
    match client.telemetry(None).await {
        Ok(telemetry) => {
            if let Some(sample) = telemetry.samples.last() {
                status.gpus = sample.gpus.len();
                let utils: Vec<f64> = sample
                    .gpus
                    .iter()
                    .filter_map(|g| g.utilization_pct)
                    .map(f64::from)
                    .collect();
                status.gpu_utilization_pct =
                    (!utils.is_empty()).then(|| utils.iter().sum::<f64>() / utils.len() as f64);
            }
        }
        Err(e) => status.problem = Some(format!("telemetry: {e}")),
    }
    match client.deployments().await {
        Ok(deployments) => status.deployments = deployments.deployments.len(),
        Err(e) => status.problem = Some(format!("deployments: {e}")),
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ssh: &str) -> ContextConfig {
        ContextConfig {
            ssh: ssh.into(),
            kiln_home: None,
            control_port: None,
            kiln: None,
            env: BTreeMap::new(),
        }
    }

    #[test]
    fn ssh_words_split_into_options_and_a_destination() {
        let (options, destination) = config("-p 2222 -i '/keys/my key' me@box").split_ssh().expect("ok");
        assert_eq!(options, ["-p", "2222", "-i", "/keys/my key"]);
        assert_eq!(destination, "me@box");
        assert!(config("").split_ssh().is_err());
        assert!(config("me@box -v").split_ssh().is_err());
        assert!(config("'unbalanced").split_ssh().is_err());
    }

    #[test]
    fn the_remote_command_quotes_every_word_and_carries_the_environment() {
        let mut c = config("box");
        c.kiln_home = Some("/data/kiln home".into());
        c.control_port = Some(0);
        c.kiln = Some("~/.cargo/bin/kiln".into());
        c.env.insert("KILN_EXECUTOR".into(), "slurm".into());
        assert_eq!(
            c.remote_kiln(&["daemon", "connection", "--json"]),
            "env 'KILN_EXECUTOR=slurm' 'KILN_HOME=/data/kiln home' 'KILN_CONTROL_PORT=0' ~/.cargo/bin/kiln \
             daemon connection --json"
        );
        assert_eq!(config("box").remote_kiln(&["x;rm -rf /"]), "kiln 'x;rm -rf /'");
    }

    #[test]
    fn contexts_load_from_the_config_file_and_unknown_names_list_the_known_ones() {
        let dir = tempfile::tempdir().expect("ok");
        std::fs::write(
            dir.path().join("config.toml"),
            "theme = \"dark\"\n[contexts.a100-1]\nssh = \"me@gpu\"\nkiln_home = \"/data\"\n\
             [contexts.a100-1.env]\nCUDA_VISIBLE_DEVICES = \"1\"\n[contexts.lab]\nssh = \"lab\"\n",
        )
        .expect("ok");
        let all = load(Some(dir.path())).expect("ok");
        assert_eq!(all.len(), 2);
        let a100 = find(Some(dir.path()), "a100-1").expect("ok");
        assert_eq!(a100.kiln_home.as_deref(), Some("/data"));
        assert_eq!(a100.env["CUDA_VISIBLE_DEVICES"], "1");
        let err = find(Some(dir.path()), "nope").expect_err("an error").to_string();
        assert!(err.contains("a100-1, lab"), "{err}");
        std::fs::write(
            dir.path().join("config.toml"),
            "[contexts.x]\nssh = \"box\"\nport = 1\n",
        )
        .expect("ok");
        let err = load(Some(dir.path())).expect_err("an error").to_string();
        assert!(err.contains("port"), "{err}");
    }
}
