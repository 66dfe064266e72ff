//! A one-request stand-in for kilnd in the unit tests of the CLI and the console: it listens
//! on port 0 for a temp `KILN_HOME`, answers the first request with a canned status and body,
//! and hands back the request line it saw.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

use kiln_core::client::Blocking;

/// A fake daemon that has not answered yet.
pub struct FakeDaemon {
    pub home: tempfile::TempDir,
    seen: JoinHandle<String>,
}

/// Starts a fake daemon that answers once with `status` (e.g. `409 Conflict`) and a JSON `body`.
pub fn answer_once(status: &'static str, body: &'static str) -> FakeDaemon {
    answer_with(status, "application/json", body)
}

/// Starts a fake daemon that answers once with `status` and a body of `content_type`.
pub fn answer_with(status: &'static str, content_type: &'static str, body: &'static str) -> FakeDaemon {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("address: {e}"));
    let dir = home.path().join("daemon");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("daemon dir: {e}"));
    std::fs::write(dir.join("address"), address.to_string()).unwrap_or_else(|e| panic!("address: {e}"));
    std::fs::write(dir.join("token"), "secret").unwrap_or_else(|e| panic!("token: {e}"));
    let seen = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            if first.is_empty() {
                first = line.trim_end().to_owned();
            }
            line.clear();
        }
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = reader.get_mut().write_all(answer.as_bytes());
        first
    });
    FakeDaemon { home, seen }
}

impl FakeDaemon {
    /// A blocking client for this daemon's home.
    pub fn client(&self) -> Blocking {
        Blocking::new(self.home.path()).unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    /// The request line the daemon answered (`DELETE /api/v1/… HTTP/1.1`).
    pub fn request_line(self) -> String {
        self.seen.join().unwrap_or_else(|_| panic!("the fake daemon panicked"))
    }
}
