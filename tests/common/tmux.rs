//! A terminal for the console tests: a private tmux server (its own socket) running one
//! detached session of a fixed size, read as text and typed into as a person would.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The session (and target) name inside the private server.
const SESSION: &str = "kiln";

/// One tmux server with one session; killed on drop, even when a test fails.
pub struct Terminal {
    socket: String,
    /// The last screen read, for failure messages.
    pub screen: String,
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Fails with the package to install when tmux is missing.
fn require_tmux() {
    match Command::new("tmux").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`tmux -V` failed: {out:?}"),
        Err(e) => panic!(
            "this test drives the console in tmux, which cannot be run ({e}): install the `tmux` package \
             (apt-get install tmux, or run scripts/setup)"
        ),
    }
}

/// `'text'` for sh, with embedded quotes escaped.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The sh command line `env NAME=value… PROGRAM ARGS…`, every word quoted.
pub fn env_line<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    vars: impl IntoIterator<Item = (K, V)>,
    program: &str,
    args: &[&str],
) -> String {
    let mut line = String::from("env");
    for (name, value) in vars {
        let (name, value) = (name.as_ref().to_string_lossy(), value.as_ref().to_string_lossy());
        let pair = format!("{name}={value}");
        line.push(' ');
        line.push_str(&shell_quote(&pair));
    }
    for word in std::iter::once(program).chain(args.iter().copied()) {
        line.push(' ');
        line.push_str(&shell_quote(word));
    }
    line
}

impl Terminal {
    /// Runs the sh command `line` in a detached `columns`×`rows` session of a new server
    /// (its config written into `dir`). The pane stays after the command exits, so its last
    /// words can be read; `prefix` names the server's socket.
    pub fn open(prefix: &str, dir: &Path, columns: u16, rows: u16, line: &str) -> Terminal {
        require_tmux();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let terminal = Terminal {
            socket: format!("{prefix}-{}-{nanos}", std::process::id()),
            screen: String::new(),
        };
        let conf = dir.join("tmux.conf");
        let settings = "set -g remain-on-exit on\nset -g status off\nset -g default-shell /bin/sh\n";
        std::fs::write(&conf, settings).expect("write tmux.conf");
        let conf = conf.to_str().expect("utf-8 temp path").to_owned();
        let (columns, rows) = (columns.to_string(), rows.to_string());
        let out = terminal.tmux(&[
            "-f",
            &conf,
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            &columns,
            "-y",
            &rows,
            line,
        ]);
        assert!(out.status.success(), "tmux new-session failed: {out:?}");
        terminal
    }

    /// Ends the server and what runs in it (again on drop, harmlessly).
    pub fn close(&self) {
        let _ = self.tmux(&["kill-server"]);
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux")
    }

    /// Reads the screen as text.
    pub fn capture(&mut self) -> &str {
        self.capture_with(&[])
    }

    /// Reads the screen with extra `capture-pane` options (`-S -`: from the start of history).
    pub fn capture_with(&mut self, options: &[&str]) -> &str {
        let mut args = vec!["capture-pane", "-p", "-t", SESSION];
        args.extend_from_slice(options);
        let out = self.tmux(&args);
        assert!(out.status.success(), "tmux capture-pane failed: {out:?}");
        self.screen = String::from_utf8_lossy(&out.stdout).into_owned();
        &self.screen
    }

    /// Presses keys by tmux name (`Enter`, `Left`, `BSpace`) or as single characters.
    pub fn press(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", SESSION];
        args.extend_from_slice(keys);
        let out = self.tmux(&args);
        assert!(out.status.success(), "tmux send-keys {keys:?} failed: {out:?}");
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", SESSION, "-l", text]);
        assert!(out.status.success(), "tmux send-keys -l {text:?} failed: {out:?}");
    }

    /// Reads the screen every `poll` until `found` returns something; after `timeout`, the
    /// error says what was awaited (the last screen stays in [`Terminal::screen`]).
    pub fn wait<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        poll: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = found(self.capture()) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(format!("waited {timeout:?} for {what}"));
            }
            std::thread::sleep(poll);
        }
    }
}
