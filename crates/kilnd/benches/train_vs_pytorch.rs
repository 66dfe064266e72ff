//! Training-step benchmark: kiln's `cnn` (batch 64, CPU) against PyTorch eager running the
//! identical architecture and optimizer, same thread count, both in this run (DESIGN §7:
//! target ≥ 1.0×). Rounds alternate between the two to spread machine noise evenly.
//!
//! kiln's side runs here, in-process: the same predict → loss → backward → optimizer code a
//! job runs, on a fixed batch, with the allocator tuning kilnd applies to itself.
//!
//! Needs Python with torch: the libtorch install under `$LIBTORCH/..` (scripts/setup) or
//! `LIBTORCH_USE_PYTORCH`'s Python. Run: `scripts/bench train_vs_pytorch`.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use kiln_core::kinds::{Arch, Optimizer};
use kiln_engine::data::{Inputs, Split, SplitMix64, Targets};
use kiln_engine::model::{ArchConfig, Cnn, ZooModel};
use kiln_engine::task::{self, Task};
use kiln_engine::train;

const ROUNDS: usize = 3;
const BATCH: usize = 64;
const STEPS: usize = 60;
const WARMUP: usize = 10;

fn main() {
    kilnd::alloc::tune();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut kiln, mut torch, mut torch_tuned) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (k, t, tt) = (
            kiln_steps(threads),
            torch_steps(threads, false),
            torch_steps(threads, true),
        );
        println!("round {}: kiln {:.2} steps/s {}", round + 1, rate(&k), phases(&k));
        println!("         pytorch {:.2} steps/s {}", rate(&t), phases(&t));
        println!(
            "         pytorch with kiln's malloc tuning {:.2} steps/s {}",
            rate(&tt),
            phases(&tt)
        );
        kiln.push(rate(&k));
        torch.push(rate(&t));
        torch_tuned.push(rate(&tt));
    }
    let (k, t, tuned) = (median(&mut kiln), median(&mut torch), median(&mut torch_tuned));
    println!(
        "cnn training step, batch {BATCH}, CPU, {threads} threads: kiln {k:.2} steps/s vs PyTorch eager {t:.2} steps/s = {:.3}x (target >= 1.0x)",
        k / t
    );
    println!(
        "  vs PyTorch eager with the same malloc tuning {tuned:.2} steps/s = {:.3}x",
        k / tuned
    );
}

fn rate(doc: &serde_json::Value) -> f64 {
    doc["steps_per_sec"]
        .as_f64()
        .unwrap_or_else(|| panic!("no steps_per_sec in {doc}"))
}

fn phases(doc: &serde_json::Value) -> String {
    let ms = |k: &str| doc[k].as_f64().unwrap_or(f64::NAN);
    format!(
        "(forward {:.1} ms, backward {:.1} ms, optimizer {:.1} ms) ",
        ms("forward_ms"),
        ms("backward_ms"),
        ms("optimizer_ms")
    )
}

/// kiln's `cnn` training step (Fashion-MNIST shape, default config), timed in this process.
fn kiln_steps(threads: usize) -> serde_json::Value {
    tch::set_num_threads(threads as i32);
    let config = serde_json::json!({ "channels": 1, "height": 28, "width": 28, "classes": 10 });
    let arch = ArchConfig::from_json(Arch::Cnn, config).expect("cnn config");
    let device = Device::libtorch().autodiff();
    device.seed(0);
    let ZooModel::Cnn(mut model) = arch.init(&device) else {
        unreachable!("a cnn config builds a cnn");
    };
    let batch = random_batch(BATCH);
    let rows: Vec<usize> = (0..BATCH).collect();
    let mut optim = train::optimizer(Optimizer::Adam);
    // Seconds spent in forward (+ loss), backward and the optimizer step. libtorch CPU ops
    // run synchronously, so wall time between the phases is their cost.
    let mut phases = [0.0f64; 3];
    let mut step = |model: Cnn, phases: &mut [f64; 3]| {
        let t0 = Instant::now();
        let prediction = model.predict(&batch, &rows, &device);
        let loss = task::loss(&prediction, &batch, &rows, &device);
        let _ = loss.clone().into_scalar::<f64>();
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = Instant::now();
        let model = optim.step(1e-3, model, grads);
        let t3 = Instant::now();
        for (slot, (a, b)) in phases.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3)]) {
            *slot += (b - a).as_secs_f64();
        }
        model
    };
    for _ in 0..WARMUP {
        model = step(model, &mut [0.0; 3]);
    }
    let started = Instant::now();
    for _ in 0..STEPS {
        model = step(model, &mut phases);
    }
    let seconds = started.elapsed().as_secs_f64();
    let ms = |s: f64| s * 1000.0 / STEPS as f64;
    serde_json::json!({
        "steps_per_sec": STEPS as f64 / seconds,
        "forward_ms": ms(phases[0]),
        "backward_ms": ms(phases[1]),
        "optimizer_ms": ms(phases[2]),
    })
}

fn random_batch(n: usize) -> Split {
    let mut rng = SplitMix64(7);
    let pixels = (0..n * 784).map(|_| rng.uniform() as f32).collect();
    let labels = (0..n).map(|_| (rng.next_u64() % 10) as i64).collect();
    Split {
        inputs: Inputs::Floats(pixels),
        row_len: 784,
        targets: Targets::Classes(labels),
    }
}

/// PyTorch eager as people run it, or (`tuned`) with the glibc malloc settings kilnd applies
/// to itself (crates/kilnd/src/alloc.rs), to show how much of the ratio that tuning is.
fn torch_steps(threads: usize, tuned: bool) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/train_vs_pytorch.py");
    let mut cmd = Command::new("python3");
    if tuned {
        cmd.env(
            "GLIBC_TUNABLES",
            "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456",
        );
    }
    if let Some(libtorch) = std::env::var_os("LIBTORCH") {
        // LIBTORCH is <site>/torch for the wheel install: its parent is importable.
        if let Some(site) = Path::new(&libtorch).parent() {
            cmd.env("PYTHONPATH", site);
        }
    }
    let args = [BATCH, STEPS, WARMUP, threads].map(|v| v.to_string());
    let out = cmd.arg(script).args(args).output().expect("run python3");
    steps_per_sec(&out, "pytorch")
}

fn steps_per_sec(out: &std::process::Output, who: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{who} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{who} printed {line:?}: {e}"))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
