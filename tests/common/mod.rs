//! Helpers shared by the end-to-end tests: run the real binaries over a temp `KILN_HOME`.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod ssh;
pub mod tmux;

/// The `kilnd` binary of this build: the workspace puts it beside `kiln` (`scripts/test` builds
/// both; `cargo test -p kiln` alone does not build the daemon's package).
/// A file under `assets/fixtures`. The checkout comes from cargo's run-time
/// `CARGO_MANIFEST_DIR`: checkouts that share a build cache can share a test binary, whose
/// compile-time path may name another checkout.
#[allow(dead_code)] // not every test binary reads fixtures
pub fn fixture(name: &str) -> PathBuf {
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    root.join("assets/fixtures").join(name)
}

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
        // Hermetic: the tests never read the operator's config.toml, keys or trust store.
        .env("KILN_CONFIG_DIR", home.join("config"))
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
    command(kilnd_bin(), home).args(args).output().expect("run kilnd")
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

/// An HTTP answer: status, headers (names lowercased) and the body (de-chunked).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 exchange over a plain socket (`Connection: close`): the tests speak to both
/// listeners as any client would, with no HTTP library in between.
pub fn exchange(method: &str, url: &str, headers: &[(&str, String)], body: Option<&[u8]>) -> Answer {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&request).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let raw = &answer[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(raw) } else { raw.to_vec() };
    Answer { status, headers, body }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let rest = &body[end + 2..];
        match size {
            Some(size) if size > 0 && rest.len() >= size => {
                out.extend_from_slice(&rest[..size]);
                body = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
            }
            _ => break,
        }
    }
    out
}

/// A JSON request (or none) with an optional bearer token; the status and the body as text.
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<&[u8]>) -> (u16, String) {
    let mut headers = Vec::new();
    if let Some(token) = token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    if body.is_some() {
        headers.push(("Content-Type", "application/json".to_owned()));
    }
    let answer = exchange(method, url, &headers, body);
    (answer.status, answer.text())
}

/// [`http`] with a JSON answer (`Null` when the body is not JSON).
pub fn http_json(method: &str, url: &str, token: Option<&str>, body: Option<&[u8]>) -> (u16, Value) {
    let (code, text) = http(method, url, token, body);
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A `kilnd --foreground` child on a free port, killed when dropped.
pub struct Daemon {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub token: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// `GET path` with the daemon's token: the status and the JSON answer.
    pub fn get(&self, path: &str) -> (u16, Value) {
        http_json("GET", &format!("{}{path}", self.base), Some(&self.token), None)
    }

    /// `POST path` of the JSON `body` with the daemon's token: the status and the answer.
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        http_json(
            "POST",
            &format!("{}{path}", self.base),
            Some(&self.token),
            Some(body.as_bytes()),
        )
    }

    /// Polls job `id` until `done` holds for its view, and returns that view; fails naming
    /// `what` after `patience`.
    pub fn wait_job(&self, id: &str, what: &str, patience: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + patience;
        loop {
            let (_, job) = self.get(&format!("/api/v1/jobs/{id}"));
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} never {what}: {job}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Daemon::wait_job`] until the job's state is one of `want`.
    pub fn wait_state(&self, id: &str, want: &[&str], patience: Duration) -> Value {
        self.wait_job(id, &format!("reached {want:?}"), patience, |job| {
            want.iter().any(|w| job["status"]["state"] == *w)
        })
    }
}

/// A small CSV in `dir` (`xor.csv`: 400 rows of two features, labelled by their sum's side
/// of 1): quick to train on, any executor.
pub fn xor_csv(dir: &Path) -> PathBuf {
    let path = dir.join("xor.csv");
    let mut text = String::from("a,b,label\n");
    for i in 0..400 {
        let (a, b) = ((i * 37 % 100) as f64 / 100.0, (i * 61 % 100) as f64 / 100.0);
        text.push_str(&format!("{a},{b},{}\n", u8::from(a + b > 1.0)));
    }
    std::fs::write(&path, text).expect("csv");
    path
}

/// Starts a daemon for `home` and waits for its address.
pub fn start(home: &Path) -> Daemon {
    start_with(home, &[])
}

/// [`start`] with extra environment variables.
pub fn start_with(home: &Path, env: &[(&str, &str)]) -> Daemon {
    let dir = home.join("daemon");
    let _ = std::fs::remove_file(dir.join("address"));
    let child = command(kilnd_bin(), home)
        .envs(env.iter().copied())
        .args(["--foreground", "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kilnd");
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        if let Ok(a) = std::fs::read_to_string(dir.join("address")) {
            break a;
        }
        assert!(Instant::now() < deadline, "daemon never wrote its address");
        std::thread::sleep(Duration::from_millis(50));
    };
    let token = std::fs::read_to_string(dir.join("token")).expect("token");
    Daemon {
        child,
        base: format!("http://{}", address.trim()),
        token: token.trim().to_owned(),
    }
}

/// A study that ASHA must prune, named `name`: a grid of six trials, two at a time, whose
/// hopeless learning rates reach the first rung after a good one has. Four epochs of 10,000
/// Fashion-MNIST images: about a second an epoch with the cores split in two, so the daemon
/// sees every epoch while the trial still runs.
pub fn asha_study(name: &str) -> String {
    format!(
        r#"name = "{name}"
base = {{ arch = "mlp", data = "fashion-mnist", epochs = 4, limit = 10000, config = {{ hidden = [64] }} }}
objective = {{ metric = "val_accuracy", direction = "maximize" }}
budget = {{ trials = 6, concurrent = 2 }}
sampler = "grid"
early_stop = {{ rule = "asha", min_epochs = 1, reduction_factor = 3 }}
[params]
lr = {{ choice = [3e-3, 1e-6, 3e-3, 1e-6, 1e-6, 1e-6] }}
"#
    )
}
