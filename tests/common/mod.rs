//! Helpers shared by the end-to-end tests: run the real binaries over a temp `KILN_HOME`.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `kilnd` binary of this build: the workspace puts it beside `kiln` (`scripts/test` builds
/// both; `cargo test -p kiln` alone does not build the daemon's package).
pub fn kilnd_bin() -> PathBuf {
    let kiln = Path::new(env!("CARGO_BIN_EXE_kiln"));
    let kilnd = kiln.with_file_name("kilnd");
    assert!(
        kilnd.is_file(),
        "{} is missing: build the daemon too (`cargo build -p kilnd`, or run scripts/test)",
        kilnd.display()
    );
    kilnd
}

/// A command for binary `bin` with `KILN_HOME` set and `kilnd` found beside it. A daemon it
/// starts listens on a free port, and stops by itself once the temp home is removed.
pub fn command(bin: impl AsRef<std::ffi::OsStr>, home: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("KILN_HOME", home)
        .env("KILN_KILND", kilnd_bin())
        .env("KILN_CONTROL_PORT", "0")
        .env("KILN_INFERENCE_BIND", "127.0.0.1:0");
    cmd
}

pub fn kiln(home: &Path, args: &[&str]) -> Output {
    command(env!("CARGO_BIN_EXE_kiln"), home)
        .args(args)
        .output()
        .expect("run kiln")
}

pub fn kilnd(home: &Path, args: &[&str]) -> Output {
    command(kilnd_bin(), home)
        .args(args)
        .output()
        .expect("run kilnd")
}

/// stdout parsed as JSON (the command may have failed: check the status separately).
pub fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out:?}"))
}

/// stdout parsed as JSON, after asserting the command succeeded.
pub fn json(out: &Output) -> Value {
    assert!(out.status.success(), "command failed: {out:?}");
    json_of(out)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
