//! Pieces the daemon and serving benchmarks share.

#![allow(dead_code)] // each bench uses a different subset

use std::path::Path;
use std::time::{Duration, Instant};

use kiln_core::jobs::{JobId, JobKind, JobSpec};
use serde_json::json;

/// One epoch of the default `cnn` on the first `limit` Fashion-MNIST images, on CPU, as model
/// `bench`.
pub fn cnn_job(limit: usize, seed: u64) -> JobSpec {
    JobSpec {
        id: JobId::generate(),
        kind: JobKind::Train,
        reference: None,
        arch: "cnn".into(),
        config: json!({}),
        data: "fashion-mnist".into(),
        data_path: None,
        epochs: 1,
        batch_size: 64,
        lr: 1e-3,
        optimizer: "adam".into(),
        schedule: "cosine".into(),
        seed,
        device: Some("cpu".into()),
        limit: Some(limit),
        model: "bench".parse().expect("name"),
        from: None,
        resume: None,
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
