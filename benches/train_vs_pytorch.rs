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
    let mut kiln = Vec::new();
    let mut torch = Vec::new();
    for round in 0..ROUNDS {
        let (k, t) = (kiln_steps(threads), torch_steps(threads));
        println!(
            "round {}: kiln {:.2} steps/s {}| pytorch {:.2} steps/s {}",
            round + 1,
            rate(&k),
            phases(&k),
            rate(&t),
            phases(&t)
        );
        kiln.push(rate(&k));
        torch.push(rate(&t));
    }
    let (k, t) = (median(&mut kiln), median(&mut torch));
    println!(
        "cnn training step, batch {BATCH}, CPU, {threads} threads: kiln {k:.2} steps/s vs PyTorch eager {t:.2} steps/s = {:.3}x (target >= 1.0x)",
        k / t
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

fn torch_steps(threads: usize) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/train_vs_pytorch.py");
    let mut cmd = Command::new("python3");
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
