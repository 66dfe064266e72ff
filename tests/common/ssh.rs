//! A second box for the contexts tests: an OpenSSH server on 127.0.0.1 (a free port, host and
//! user keys made here, nothing of the machine's own ssh set-up read or changed), and a second
//! `KILN_HOME` whose kilnd the first reaches through `kiln --context`.
//!
//! When `sshd` is not installed the tests say so on stderr and skip; under CI (`CI=true`)
//! a missing sshd fails them instead, unless `KILN_SSHD_UNAVAILABLE` says why it could not be
//! installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The name the tests give the remote context.
pub const CONTEXT: &str = "remote";

/// An sshd serving this machine as "another box", and a config folder naming it.
pub struct Remote {
    /// sshd's keys, config and log; the client's ssh_config.
    pub dir: TempDir,
    /// The remote box's `KILN_HOME`.
    pub home: TempDir,
    /// A config folder (`KILN_CONFIG_DIR`) whose config.toml has `[contexts.remote]`.
    pub config_dir: TempDir,
    pub port: u16,
    sshd: Child,
}

impl Drop for Remote {
    fn drop(&mut self) {
        // The remote kilnd stops by itself once its home is gone.
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        self.close_master();
    }
}

/// Starts the remote box, or says why it cannot (the caller skips, or fails under CI).
pub fn remote() -> Option<Remote> {
    match Remote::start() {
        Ok(remote) => Some(remote),
        Err(why) => {
            let excused = std::env::var("KILN_SSHD_UNAVAILABLE").ok();
            if std::env::var("CI").is_ok_and(|v| v == "true") && excused.is_none() {
                panic!("sshd is needed for the contexts tests under CI and could not be started: {why}");
            }
            eprintln!(
                "SKIPPED: no sshd to play the remote box: {why}{}",
                excused.map(|e| format!(" ({e})")).unwrap_or_default()
            );
            None
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Remote {
    fn start() -> Result<Self, String> {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or("sshd is not installed (Debian: openssh-server)")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        for key in ["host_key", "user_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-f")
                .arg(d.join(key)))?;
        }
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).map_err(|e| e.to_string())?;
        // sshd's privilege separation needs this folder (a package's service would make it).
        let _ = std::fs::create_dir_all("/run/sshd");
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| {
                let out = Command::new("id").arg("-un").output().ok()?;
                Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            })
            .ok_or("cannot tell the user name")?;
        // A port picked free may be taken before sshd binds it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(
                d.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                     AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nStrictModes no\n\
                     UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\nAllowTcpForwarding yes\n",
                    d = d.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            let mut child = Command::new(&sshd)
                .arg("-D")
                .arg("-f")
                .arg(d.join("sshd_config"))
                .arg("-E")
                .arg(d.join("sshd.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", sshd.display()))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            let listening = loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if !listening {
                let _ = child.kill();
                let _ = child.wait();
                last = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
                continue;
            }
            std::fs::write(
                d.join("ssh_config"),
                format!(
                    "Host kiln-remote\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  \
                     IdentityFile {d}/user_key\n  IdentitiesOnly yes\n  UserKnownHostsFile /dev/null\n  \
                     StrictHostKeyChecking no\n  LogLevel ERROR\n",
                    d = d.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            let home = tempfile::tempdir().map_err(|e| e.to_string())?;
            let config_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let remote = Self {
                dir,
                home,
                config_dir,
                port,
                sshd: child,
            };
            remote.write_config(&[])?;
            remote.check_login()?;
            return Ok(remote);
        }
        Err(format!("sshd did not listen: {}", last.trim()))
    }

    /// The `ssh` setting of the context: the test's own ssh_config and its alias.
    pub fn ssh_setting(&self) -> String {
        format!("-F {} kiln-remote", self.dir.path().join("ssh_config").display())
    }

    /// Writes config.toml with `[contexts.remote]` (and `extra` lines after it).
    pub fn write_config(&self, extra: &[&str]) -> Result<(), String> {
        let kiln = Path::new(env!("CARGO_BIN_EXE_kiln"));
        let home = self.home.path();
        let text = format!(
            "[contexts.{CONTEXT}]\nssh = \"{ssh}\"\nkiln_home = \"{home}\"\ncontrol_port = 0\nkiln = \"{kiln}\"\n\
             [contexts.{CONTEXT}.env]\nKILN_CONFIG_DIR = \"{home}/config\"\nKILN_INFERENCE_BIND = \"127.0.0.1:0\"\n{extra}\n",
            ssh = self.ssh_setting(),
            home = home.display(),
            kiln = kiln.display(),
            extra = extra.join("\n"),
        );
        std::fs::write(self.config_dir.path().join("config.toml"), text).map_err(|e| e.to_string())
    }

    /// One login, so a broken set-up is reported here rather than as a kiln failure.
    fn check_login(&self) -> Result<(), String> {
        run(Command::new("ssh")
            .args(["-F"])
            .arg(self.dir.path().join("ssh_config"))
            .args(["-o", "BatchMode=yes", "kiln-remote", "true"]))
    }

    /// `kiln` of the local box (its own temp `KILN_HOME`) with this config folder.
    pub fn kiln(&self, local_home: &Path, args: &[&str]) -> std::process::Output {
        self.local_command(local_home).args(args).output().expect("run kiln")
    }

    /// The local `kiln` command, with the config folder naming the remote context.
    pub fn local_command(&self, local_home: &Path) -> Command {
        let mut cmd = super::command(env!("CARGO_BIN_EXE_kiln"), local_home);
        cmd.env("KILN_CONFIG_DIR", self.config_dir.path());
        cmd
    }

    /// Ends kiln's ssh ControlMaster for this box (the shared connection every tunnel goes
    /// through): what a dropped network or a killed ssh does to the tunnel.
    pub fn close_master(&self) {
        let _ = Command::new("ssh")
            .arg("-F")
            .arg(self.dir.path().join("ssh_config"))
            .args(["-o", "BatchMode=yes", "-o"])
            .arg(format!("ControlPath={}/%C", kiln_control_dir().display()))
            .args(["-O", "exit", "kiln-remote"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Where kiln keeps its ssh ControlMaster sockets (as `kiln_core::context` picks it).
fn kiln_control_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"))
        .join("kiln")
        .join("ssh")
}
