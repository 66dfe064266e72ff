//! Contexts end to end: a real sshd on 127.0.0.1 plays a second box with its own `KILN_HOME`
//! (tests/common/ssh.rs); `kiln --context remote …` starts that box's kilnd over ssh, trains
//! and lists there through the tunnel, and the token never shows in a process's arguments or
//! a log. The tunnel reconnects after its ssh connection is killed.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::ssh::{self, CONTEXT};
use common::{json, stderr};
use kiln_core::client::{Blocking, Client, ClientError};
use kiln_core::context::{self, Session};

/// Every process's command line, joined.
fn all_command_lines() -> String {
    let mut lines = String::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            lines.push_str(&String::from_utf8_lossy(&cmdline).replace('\0', " "));
            lines.push('\n');
        }
    }
    lines
}

/// Every file under `dir`, read (logs, records), for a secret that must not be in them.
fn files_containing(dir: &Path, needle: &str, skip: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path == skip {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(needle)) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn a_context_trains_and_lists_on_the_other_box_and_its_token_stays_secret() {
    let Some(remote) = ssh::remote() else { return };
    let local = tempfile::tempdir().expect("tempdir");

    // Nothing runs there yet: the first command starts the box's kilnd over ssh.
    let trained = remote.kiln(
        local.path(),
        &[
            "--context",
            CONTEXT,
            "train",
            "mlp",
            "--data",
            "fashion-mnist",
            "--limit",
            "1000",
            "--epochs",
            "1",
            "--name",
            "remotefm",
            "--json",
        ],
    );
    assert!(trained.status.success(), "{}", stderr(&trained));
    let done = json(&trained);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["version"], "remotefm@1");

    // The job and the version are the box's: its home has them, this one does not.
    let job = done["job"].as_str().expect("job id");
    assert!(
        remote.home.path().join("jobs").join(job).is_dir(),
        "the job ran on the remote box"
    );
    let there = json(&remote.kiln(local.path(), &["--context", CONTEXT, "models", "ls", "--json"]));
    assert!(there.to_string().contains("remotefm"), "{there}");
    let here = json(&remote.kiln(local.path(), &["models", "ls", "--json"]));
    assert!(
        !here.to_string().contains("remotefm"),
        "the local registry stays apart: {here}"
    );

    // `daemon status` runs on the box itself.
    let status = remote.kiln(local.path(), &["--context", CONTEXT, "daemon", "status", "--json"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert_eq!(
        Path::new(json(&status)["home"].as_str().expect("home")),
        remote.home.path(),
        "status came from the remote kilnd"
    );

    // `kiln contexts` shows this box and the remote one, reachable.
    let listed = json(&remote.kiln(local.path(), &["contexts", "--json"]));
    let rows = listed.as_array().expect("a list");
    assert_eq!(rows.len(), 2, "{listed}");
    assert_eq!(rows[0]["name"], "local");
    assert_eq!(rows[1]["name"], CONTEXT);
    assert_eq!(rows[1]["reachable"], true, "{listed}");
    assert_eq!(
        Path::new(rows[1]["home"].as_str().expect("home")),
        remote.home.path(),
        "{listed}"
    );

    // The token: in no process's arguments while a tunnel is up, and in no log or record.
    let token = std::fs::read_to_string(remote.home.path().join("daemon").join("token")).expect("remote token");
    let token = token.trim();
    assert!(token.len() >= 16, "a real token");
    let config = context::find(Some(remote.config_dir.path()), CONTEXT).expect("context");
    let session = Session::open(CONTEXT, config).expect("open the context");
    let blocking = Blocking::with(Client::remote(session)).expect("runtime");
    blocking.run(|c| c.health()).expect("health through the tunnel");
    assert!(
        !all_command_lines().contains(token),
        "the token is in some process's arguments"
    );
    let token_file = remote.home.path().join("daemon").join("token");
    let leaks = files_containing(remote.home.path(), token, &token_file);
    assert!(leaks.is_empty(), "the token is written in {leaks:?}");
    let leaks = files_containing(local.path(), token, &token_file);
    assert!(leaks.is_empty(), "the token is written in {leaks:?}");
}

#[test]
fn a_killed_tunnel_fails_the_next_request_with_the_reason_then_reconnects() {
    let Some(remote) = ssh::remote() else { return };
    let config = context::find(Some(remote.config_dir.path()), CONTEXT).expect("context");
    let session = Session::open(CONTEXT, config).expect("open the context");
    let blocking = Blocking::with(Client::remote(session.clone())).expect("runtime");
    let first = blocking.run(|c| c.health()).expect("health through the tunnel");

    remote.close_master();
    // The forward went with the master: the next request says so and starts a reconnection.
    let deadline = Instant::now() + Duration::from_secs(30);
    let failure = loop {
        match blocking.run(|c| c.health()) {
            Err(e) => break e,
            Ok(_) => {
                assert!(Instant::now() < deadline, "the tunnel never dropped");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    // A pooled connection is cut ("error sending request"), or the local port refuses.
    assert!(
        matches!(failure, ClientError::Transport(_) | ClientError::Tunnel(_)),
        "{failure}"
    );

    assert!(session.wait_connected(Duration::from_secs(30)), "the tunnel came back");
    let again = blocking.run(|c| c.health()).expect("health through the new tunnel");
    assert_eq!(again.pid, first.pid, "the same remote kilnd answers");
}

#[test]
fn a_stopped_remote_kilnd_is_started_again_by_the_next_command() {
    let Some(remote) = ssh::remote() else { return };
    let local = tempfile::tempdir().expect("tempdir");
    let started = json(&remote.kiln(local.path(), &["--context", CONTEXT, "daemon", "start", "--json"]));
    let stopped = remote.kiln(local.path(), &["--context", CONTEXT, "daemon", "stop", "--json"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert_eq!(json(&stopped)["stopped"], started["pid"]);
    let listed = remote.kiln(local.path(), &["--context", CONTEXT, "models", "ls", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let status = json(&remote.kiln(local.path(), &["--context", CONTEXT, "daemon", "status", "--json"]));
    assert_ne!(status["pid"], started["pid"], "a new kilnd runs there");
}

#[test]
fn unknown_or_broken_contexts_are_named_with_the_fix() {
    let local = tempfile::tempdir().expect("tempdir");
    let config = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        config.path().join("config.toml"),
        "[contexts.lab]\nssh = \"-o BatchMode=yes -p 1 nobody@127.0.0.1\"\n",
    )
    .expect("config");
    let kiln = |args: &[&str]| {
        common::command(env!("CARGO_BIN_EXE_kiln"), local.path())
            .env("KILN_CONFIG_DIR", config.path())
            .args(args)
            .output()
            .expect("run kiln")
    };
    let unknown = kiln(&["--context", "a100", "models", "ls"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("no context named a100"),
        "{}",
        stderr(&unknown)
    );
    assert!(
        stderr(&unknown).contains("lab"),
        "the known contexts are listed: {}",
        stderr(&unknown)
    );

    // Port 1 answers nothing: ssh's own reason comes through.
    let down = kiln(&["--context", "lab", "models", "ls"]);
    assert_eq!(down.status.code(), Some(1), "{}", stderr(&down));
    assert!(stderr(&down).contains("context lab"), "{}", stderr(&down));
    assert!(stderr(&down).contains("ssh"), "{}", stderr(&down));

    let listed = json(&kiln(&["contexts", "--json"]));
    assert_eq!(listed[1]["name"], "lab");
    assert_eq!(listed[1]["reachable"], false);
    assert!(listed[1]["problem"].as_str().is_some_and(|p| !p.is_empty()), "{listed}");
}
