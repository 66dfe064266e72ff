//! Model compression, measured (issue 17): on a `cnn` trained on Fashion-MNIST, each
//! compression runs as the real daemon job and is measured by it against the parent on the
//! same test split, in the same process, on the same device (the reference of every ratio is
//! the f32 parent computed by the same serving code path, timed alternately with the child):
//!
//! 1. **int8**: weight blob ≥ 3.5× smaller, test accuracy drop ≤ 1.0 point.
//! 2. **50% structured** (filters and hidden units) + 1 fine-tune epoch: accuracy drop
//!    ≤ 1.5 points, batch-64 forward ≥ 1.3× faster than the parent on the CPU.
//! 3. **80% unstructured** + 1 fine-tune epoch: zstd-compressed blob ≥ 3× smaller than the
//!    parent's zstd-compressed blob, accuracy drop ≤ 1.0 point.
//! 4. **bf16**: size, and whether bf16 computes faster than f32 here (the job measures it and
//!    computes in f32 when it is not).
//!
//! Run: `scripts/bench compress` (`-- --epochs 3 --limit 60000` are the defaults: the parent
//! trains on every training image; smaller values give a quick look, with a weaker parent).

use std::time::{Duration, Instant};

use kiln_core::api::{JobRequest, VersionManifest};
use kiln_core::client::Blocking;
use kiln_core::compression::{Comparison, CompressRequest, Method, Precision, PruneSettings, QuantizeSettings};
use kiln_core::jobs::{JobState, TrainRequest};
use kiln_core::kinds::{Arch, DataSource, DeviceName};
use kiln_core::names::{ModelRef, Name};

mod common;

/// Runs a job to its end; returns the version it registered.
fn run(client: &Blocking, request: JobRequest) -> (ModelRef, f64) {
    let started = Instant::now();
    let view = client.run(|c| c.submit(&request)).expect("submit");
    loop {
        let view = client.run(|c| c.job(&view.id)).expect("job");
        if view.status.state.is_final() {
            assert_eq!(view.status.state, JobState::Succeeded, "{}", view.status.message);
            let version = view.status.version.expect("a registered version");
            return (version, started.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn manifest(client: &Blocking, reference: &ModelRef) -> VersionManifest {
    client
        .run(|c| c.version(&reference.model, &reference.selector))
        .expect("version")
        .version
}

fn compress(client: &Blocking, parent: &ModelRef, method: Method) -> (VersionManifest, f64) {
    let mut request = CompressRequest::new(parent.clone(), method);
    request.device = Some(DeviceName::Cpu);
    let (child, seconds) = run(client, JobRequest::Compress(request));
    (manifest(client, &child), seconds)
}

fn quantize(precision: Precision) -> Method {
    Method::Quantize(QuantizeSettings { precision })
}

fn report(m: &VersionManifest) -> &Comparison {
    &m.draft.compression.as_ref().expect("a compression report").report
}

/// Accuracy points the child lost against the parent.
fn drop_points(r: &Comparison) -> f64 {
    (r.parent.accuracy.unwrap_or(0.0) - r.child.accuracy.unwrap_or(0.0)) * 100.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// `figure` against a target it must reach (`at_least`) or stay under.
fn line(what: &str, figure: f64, target: f64, at_least: bool, unit: &str) {
    let met = if at_least { figure >= target } else { figure <= target };
    let relation = if at_least { "≥" } else { "≤" };
    println!(
        "  {what:<44} {figure:>7.2}{unit}  (target {relation} {target}{unit}: {})",
        verdict(met)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (epochs, limit) = (common::flag("--epochs", 3), common::flag("--limit", 60_000));
    let home = tempfile::tempdir().expect("temp home");
    let _daemon = common::start_kilnd(home.path());
    let client = Blocking::new(home.path()).expect("client");

    let model: Name = "fmnist-cnn".parse().expect("name");
    let mut train = TrainRequest::new(Arch::Cnn, DataSource::FashionMnist, model.clone());
    train.epochs = epochs;
    train.limit = Some(limit);
    train.device = Some(DeviceName::Cpu);
    let (parent, seconds) = run(&client, JobRequest::Train(train));
    println!("parent {parent}: cnn, {epochs} epoch(s) on {limit} Fashion-MNIST images, {seconds:.0} s");

    let (int8, seconds) = compress(&client, &parent, quantize(Precision::Int8));
    let r = report(&int8);
    println!(
        "\nint8 (job {seconds:.0} s; {}; test split {} rows, p50 batch 64 {:.2}x the parent's speed)",
        int8.draft.compression.as_ref().map_or("", |c| c.compute_note.as_str()),
        r.rows,
        r.parent.p50_ms_batch64 / r.child.p50_ms_batch64
    );
    println!(
        "  parent test accuracy {:.4}; int8 child {:.4}",
        r.parent.accuracy.unwrap_or(0.0),
        r.child.accuracy.unwrap_or(0.0)
    );
    for note in &r.notes {
        println!("  {note}");
    }
    line(
        "weight blob, times smaller",
        r.parent.size_bytes as f64 / r.child.size_bytes as f64,
        3.5,
        true,
        "x",
    );
    line("test accuracy drop, points", drop_points(r), 1.0, false, "");

    let mut structured = PruneSettings::new(0.5);
    structured.structured = true;
    let (child, seconds) = compress(&client, &parent, Method::Prune(structured));
    let r = report(&child);
    println!(
        "\n50% structured + 1 fine-tune epoch (job {seconds:.0} s; {} → {} parameters; config {})",
        r.parent.params, r.child.params, child.draft.architecture.config
    );
    line("test accuracy drop, points", drop_points(r), 1.5, false, "");
    line(
        "batch-64 forward, times faster (cpu)",
        r.parent.p50_ms_batch64 / r.child.p50_ms_batch64,
        1.3,
        true,
        "x",
    );
    println!(
        "  (batch 1: {:.3} ms against {:.3} ms, {:.2}x)",
        r.child.p50_ms_batch1,
        r.parent.p50_ms_batch1,
        r.parent.p50_ms_batch1 / r.child.p50_ms_batch1
    );

    let (child, seconds) = compress(&client, &parent, Method::Prune(PruneSettings::new(0.8)));
    let r = report(&child);
    println!(
        "\n80% unstructured + 1 fine-tune epoch (job {seconds:.0} s; {} of {} weights non-zero)",
        r.child.nonzeros, r.child.params
    );
    line(
        "zstd blob, times smaller than the parent's",
        r.parent.size_zstd_bytes as f64 / r.child.size_zstd_bytes as f64,
        3.0,
        true,
        "x",
    );
    line("test accuracy drop, points", drop_points(r), 1.0, false, "");

    let (child, seconds) = compress(&client, &parent, quantize(Precision::Bf16));
    let r = report(&child);
    println!(
        "\nbf16 (job {seconds:.0} s): {:.2}x smaller, accuracy drop {:.2} points; {}",
        r.parent.size_bytes as f64 / r.child.size_bytes as f64,
        drop_points(r),
        child.draft.compression.as_ref().map_or("", |c| c.compute_note.as_str())
    );
    for note in &r.notes {
        println!("  {note}");
    }
}
