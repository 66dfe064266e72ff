//! Training-step benchmark: kiln's `cnn` (batch 64, CPU) against PyTorch eager running the
//! identical architecture and optimizer, same thread count, both in this run (DESIGN §7:
//! target ≥ 1.0×). Rounds alternate between the two to spread machine noise evenly.
//!
//! Needs Python with torch: the libtorch install under `$LIBTORCH/..` (scripts/setup) or
//! `LIBTORCH_USE_PYTORCH`'s Python. Run: `scripts/bench train_vs_pytorch`.

use std::path::Path;
use std::process::Command;

const ROUNDS: usize = 3;
const BATCH: usize = 64;
const STEPS: usize = 60;
const WARMUP: usize = 10;

fn main() {
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

fn kiln_steps(threads: usize) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kilnd"))
        .args([
            "bench-train",
            "--batch-size",
            &BATCH.to_string(),
            "--steps",
            &STEPS.to_string(),
        ])
        .args(["--warmup", &WARMUP.to_string(), "--threads", &threads.to_string()])
        .output()
        .expect("run kilnd bench-train");
    steps_per_sec(&out, "kilnd")
}

/// PyTorch eager as people run it, or (`tuned`) with the glibc malloc settings kilnd applies
/// to itself (src/bin/kilnd/alloc.rs), to show how much of the ratio that tuning is.
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
