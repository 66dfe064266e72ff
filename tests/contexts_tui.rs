//! Contexts in the console end to end, as a person uses them: an sshd on 127.0.0.1 plays
//! another box (`common::ssh`, with a `KILN_HOME` of its own), a model is trained there with
//! `kiln --context remote`, and the real `kiln` console runs in tmux (120×36) on an empty
//! local home. `:ctx remote` switches it to the other box's models; killing kiln's ssh
//! ControlMaster drops the tunnel, which the banner names until it reconnects; the contexts
//! screen (6) shows both boxes reachable; `:ctx local` comes back. `kiln --context remote`
//! opens the console on that box; an unknown context opens it with a banner.
//!
//! Every wait polls the screen against a deadline; a failure prints the last screen and the
//! tails of both kilnd logs and sshd's. Needs tmux, and sshd (`openssh-server`): without
//! sshd the test says SKIPPED and passes (under CI it fails unless excused, see
//! `common::ssh`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::ssh::{CONTEXT, Remote};
use common::tmux::{Terminal, env_line};

/// The terminal the console runs in.
const COLUMNS: u16 = 120;
const ROWS: u16 = 36;
/// How often the screen is read while waiting.
const POLL: Duration = Duration::from_millis(150);
/// While a short-lived state (the banner of a dropped tunnel) is awaited.
const FAST_POLL: Duration = Duration::from_millis(30);
/// Deadline for the console to react to a key, a daemon event or an ssh connection.
const REACT: Duration = Duration::from_secs(60);
/// The model trained on the remote box.
const MODEL: &str = "remotefm";

/// A console in a private tmux server; it goes away on drop, even on failure.
struct Console {
    terminal: Terminal,
    local: PathBuf,
    remote: PathBuf,
    ssh_dir: PathBuf,
}

/// The last `n` lines of a file (empty when it cannot be read).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Console {
    /// `kiln ARGS` (no subcommand: the console) on the empty `local` home, with the config
    /// folder naming the remote context, in a detached tmux session.
    fn open(remote: &Remote, local: &Path, args: &[&str]) -> Console {
        // The same environment `Remote::local_command` gives kiln, on tmux's command line.
        let command = remote.local_command(local);
        let vars = command.get_envs().filter_map(|(name, value)| Some((name, value?)));
        let line = env_line(vars, env!("CARGO_BIN_EXE_kiln"), args);
        Console {
            terminal: Terminal::open("kiln-ctx", local, COLUMNS, ROWS, &line),
            local: local.to_owned(),
            remote: remote.home.path().to_owned(),
            ssh_dir: remote.dir.path().to_owned(),
        }
    }

    /// Presses keys by tmux name (`Enter`) or as single characters.
    fn press(&self, keys: &[&str]) {
        self.terminal.press(keys);
    }

    /// Runs a `:` command.
    fn command(&mut self, text: &str) {
        self.press(&[":"]);
        self.wait_for_text("the command palette", &["Command", "models jobs"]);
        self.terminal.type_text(text);
        self.wait_for_text(&format!(":{text} typed"), &[&format!(":{text}▏")]);
        self.press(&["Enter"]);
    }

    /// Panics with the last screen and the logs of both boxes and of sshd.
    fn fail(&self, why: &str) -> ! {
        panic!(
            "{why}\n──── last screen ────\n{}\n──── local kilnd log (tail) ────\n{}\n──── remote kilnd log (tail) \
             ────\n{}\n──── sshd log (tail) ────\n{}",
            self.terminal.screen,
            tail(&self.local.join("daemon/daemon.log"), 20),
            tail(&self.remote.join("daemon/daemon.log"), 20),
            tail(&self.ssh_dir.join("sshd.log"), 20),
        );
    }

    /// Reads the screen every `poll` until `found` returns something, or fails after REACT.
    fn wait_every<T>(&mut self, what: &str, poll: Duration, found: impl FnMut(&str) -> Option<T>) -> T {
        match self.terminal.wait(what, REACT, poll, found) {
            Ok(v) => v,
            Err(why) => self.fail(&why),
        }
    }

    fn wait_for<T>(&mut self, what: &str, found: impl FnMut(&str) -> Option<T>) -> T {
        self.wait_every(what, POLL, found)
    }

    /// Waits until every one of `texts` is on the screen; returns the screen.
    fn wait_for_text(&mut self, what: &str, texts: &[&str]) -> String {
        self.wait_for(what, |s| texts.iter().all(|t| s.contains(t)).then(|| s.to_owned()))
    }

    /// Fails unless `ok`, showing the screen that was just read.
    fn check(&self, ok: bool, why: &str) {
        if !ok {
            self.fail(why);
        }
    }
}

/// The header (first line) of a screen.
fn header(screen: &str) -> &str {
    screen.lines().next().unwrap_or_default()
}

/// Whether the header says the console is on `context` and live.
fn live_on(screen: &str, context: &str) -> bool {
    header(screen).contains(&format!("⎈ {context}  ● live"))
}

/// The models screen of an empty registry, fully loaded.
fn first_run(screen: &str) -> bool {
    screen.contains("Welcome to kiln") && screen.contains("Your registry is empty")
}

/// A row of the contexts table naming `context` (in its CONTEXT column) as reachable.
fn reachable_row(screen: &str, context: &str) -> bool {
    screen.lines().any(|line| {
        let words: Vec<&str> = line
            .trim_matches(|c: char| c.is_whitespace() || "│┃".contains(c))
            .split_whitespace()
            .collect();
        let name = match words.as_slice() {
            ["⎈", name, ..] | [name, ..] => *name,
            [] => return false,
        };
        name == context && words.contains(&"●")
    })
}

/// Trains MODEL on the remote box through `kiln --context remote`.
fn train_remotely(remote: &Remote, local: &Path) {
    let out = remote
        .local_command(local)
        .args(["--context", CONTEXT, "train", "mlp", "--data", "fashion-mnist"])
        .args(["--limit", "1000", "--epochs", "1", "--name", MODEL, "--json"])
        .output()
        .expect("run kiln train");
    assert!(
        out.status.success(),
        "kiln --context {CONTEXT} train failed: {}\nremote kilnd log:\n{}",
        common::stderr(&out),
        tail(&remote.home.path().join("daemon/daemon.log"), 20)
    );
}

#[test]
fn switch_to_a_remote_box_survive_a_dropped_tunnel_and_come_back() {
    let Some(remote) = common::ssh::remote() else { return };
    let local = tempfile::tempdir().expect("tempdir for the local KILN_HOME");
    train_remotely(&remote, local.path());
    remote.close_master();

    let mut console = Console::open(&remote, local.path(), &[]);
    let screen = console.wait_for("the local models screen, empty", |s| {
        (live_on(s, "local") && first_run(s)).then(|| s.to_owned())
    });
    console.check(!screen.contains(MODEL), "the local box has no remotefm");

    console.command(&format!("ctx {CONTEXT}"));
    console.wait_for("the remote box's models, remotefm among them", |s| {
        (live_on(s, CONTEXT) && s.contains(MODEL)).then_some(())
    });

    remote.close_master();
    let banner = format!("context {CONTEXT}:");
    let screen = console.wait_every("the banner of the dropped tunnel", FAST_POLL, |s| {
        s.lines()
            .nth(1)
            .is_some_and(|l| l.contains(&banner))
            .then(|| s.to_owned())
    });
    console.check(
        screen.contains("reconnecting (data may be stale)") && !screen.contains("kilnd down"),
        "the banner names the context and says it reconnects",
    );
    let dropped = Instant::now();
    console.wait_for("the tunnel back: banner gone, remotefm still shown", |s| {
        let banner_gone = !s.lines().nth(1).is_some_and(|l| l.contains(&banner));
        (banner_gone && live_on(s, CONTEXT) && s.contains(MODEL)).then_some(())
    });
    let banner_line = screen.lines().nth(1).unwrap_or_default().trim();
    eprintln!("banner «{banner_line}» cleared within {:?}", dropped.elapsed());

    console.press(&["6"]);
    console.wait_for("both contexts reachable on the contexts screen", |s| {
        (s.contains("Contexts (2)") && reachable_row(s, "local") && reachable_row(s, CONTEXT)).then_some(())
    });

    console.command("ctx local");
    let screen = console.wait_for("the local models screen again", |s| {
        (live_on(s, "local") && first_run(s)).then(|| s.to_owned())
    });
    console.check(
        !screen.contains(MODEL),
        "nothing of the remote box is left on this one's screen",
    );
}

#[test]
fn the_console_opens_on_the_context_it_is_given_and_an_unknown_one_is_a_banner() {
    let Some(remote) = common::ssh::remote() else { return };
    let local = tempfile::tempdir().expect("tempdir for the local KILN_HOME");
    let mut console = Console::open(&remote, local.path(), &["--context", CONTEXT]);
    console.wait_for("the remote box's (empty) models screen", |s| {
        (live_on(s, CONTEXT) && first_run(s)).then_some(())
    });
    console.check(
        !local.path().join("daemon/address").exists(),
        "no local kilnd was started for a console on another box",
    );
    drop(console);

    let mut console = Console::open(&remote, local.path(), &["--context", "nope"]);
    console.wait_for("the banner of an unknown context, naming the known ones", |s| {
        let banner = s.lines().nth(1).unwrap_or_default();
        (banner.contains("context nope: no context named nope in") && banner.contains("remote")).then_some(())
    });
    console.command("ctx remote");
    console.wait_for("the remote box reached after all", |s| {
        (live_on(s, CONTEXT) && first_run(s)).then_some(())
    });
}
