//! Pieces the daemon and serving benchmarks share.

#![allow(dead_code)] // each bench uses a different subset

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_core::jobs::{JobId, JobRequest, JobSpec, TrainRequest};
use kiln_core::kinds::{Arch, DataSource, DeviceName};

/// One epoch of the default `cnn` on the first `limit` Fashion-MNIST images, on CPU, as model
/// `bench`.
/// The number after `name` on the command line (`-- --rounds 5`), or `default`.
pub fn flag(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn cnn_job(limit: usize, seed: u64) -> JobSpec {
    let mut train = TrainRequest::new(Arch::Cnn, DataSource::FashionMnist, "bench".parse().expect("name"));
    train.epochs = 1;
    train.seed = seed;
    train.device = Some(DeviceName::Cpu);
    train.limit = Some(limit);
    JobSpec {
        id: JobId::generate(),
        request: JobRequest::Train(train),
    }
}

/// The contents of `path` once kilnd has written it (a minute at most).
pub fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed and reaped when dropped (a server a benchmark started).
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kilnd --foreground` on `home` with both listeners on free ports, once its control API
/// is up.
pub fn start_kilnd(home: &Path) -> Process {
    let daemon = Process(
        Command::new(env!("CARGO_BIN_EXE_kilnd"))
            .env("KILN_HOME", home)
            .env("KILN_INFERENCE_BIND", "127.0.0.1:0")
            .args(["--foreground", "--port", "0"])
            .stderr(Stdio::null())
            .spawn()
            .expect("start kilnd"),
    );
    wait_for_file(&home.join("daemon/address"));
    daemon
}
