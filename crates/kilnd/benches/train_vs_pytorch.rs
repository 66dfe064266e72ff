//! Training-step benchmark: kiln's `cnn` (batch 64, CPU) and its `rnn` with an LSTM and with a
//! GRU, each against PyTorch eager running the identical architecture and optimizer, same
//! thread count, all in this run (DESIGN §7). Rounds alternate between kiln and every
//! reference to spread machine noise evenly; each figure is the median round.
//!
//! The references, per model:
//! - PyTorch eager as people run it;
//! - with the glibc malloc tuning kilnd applies to itself;
//! - cnn only: also channels-last and conv → max-pool → ReLU, as kiln's cnn computes;
//! - also with `Adam(fused=True)`, the single-kernel step kiln's Adam runs: the same tuning
//!   as kiln's throughout, so the fair reference and the one the targets name.
//!
//! Each ratio is the median of the per-round ratios (kiln and that reference in one round).
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
use kiln_engine::model::{ArchConfig, ZooModel};
use kiln_engine::task::{self, Task};
use kiln_engine::train;

const ROUNDS: usize = 3;
const BATCH: usize = 64;
const STEPS: usize = 60;
const WARMUP: usize = 10;
/// The rnn's shape: about the fortunes data's (vocabulary, quote length, categories).
const VOCAB: usize = 12_000;
const TOKENS: usize = 48;
const RNN_CLASSES: usize = 8;

/// A PyTorch reference: flags to the script, and whether it gets kiln's malloc tuning.
struct Reference {
    label: &'static str,
    flags: &'static [&'static str],
    tuned: bool,
}

const EAGER: Reference = Reference {
    label: "PyTorch eager",
    flags: &[],
    tuned: false,
};
const TUNED: Reference = Reference {
    label: "PyTorch eager, kiln's malloc tuning",
    flags: &[],
    tuned: true,
};
const CNN_AS_KILN: Reference = Reference {
    label: "  … and channels-last, pool before ReLU",
    flags: &["--channels-last", "--pool-first"],
    tuned: true,
};
const CNN_FUSED_ADAM: Reference = Reference {
    label: "  … and Adam(fused=True)",
    flags: &["--channels-last", "--pool-first", "--fused-adam"],
    tuned: true,
};
const RNN_FUSED_ADAM: Reference = Reference {
    label: "  … and Adam(fused=True)",
    flags: &["--fused-adam"],
    tuned: true,
};

/// A model to train, its references, the one its target is against, and the target.
struct Case {
    name: &'static str,
    references: &'static [Reference],
    fair: usize,
    target: f64,
}

const CASES: [Case; 3] = [
    Case {
        name: "cnn",
        references: &[EAGER, TUNED, CNN_AS_KILN, CNN_FUSED_ADAM],
        fair: 3,
        target: 1.05,
    },
    Case {
        name: "lstm",
        references: &[EAGER, TUNED, RNN_FUSED_ADAM],
        fair: 2,
        target: 1.0,
    },
    Case {
        name: "gru",
        references: &[EAGER, TUNED, RNN_FUSED_ADAM],
        fair: 2,
        target: 1.0,
    },
];

fn main() {
    kilnd::alloc::tune();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut summary = Vec::new();
    for case in CASES
        .iter()
        .filter(|c| wanted.is_empty() || wanted.iter().any(|w| w == c.name))
    {
        let mut kiln = Vec::new();
        // Per reference: its rates, and kiln's rate over it in the same round.
        let mut refs: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); case.references.len()];
        for round in 0..ROUNDS {
            let k = kiln_steps(case.name, threads);
            println!(
                "{} round {}: kiln {:.2} steps/s {}",
                case.name,
                round + 1,
                rate(&k),
                phases(&k)
            );
            kiln.push(rate(&k));
            for (reference, (rates, ratios)) in case.references.iter().zip(&mut refs) {
                let t = torch_steps(case.name, threads, reference);
                println!("    {}: {:.2} steps/s {}", reference.label, rate(&t), phases(&t));
                rates.push(rate(&t));
                ratios.push(rate(&k) / rate(&t));
            }
        }
        let k = median(&mut kiln);
        let mut lines = vec![format!(
            "{} training step, batch {BATCH}, CPU, {threads} threads: kiln {k:.2} steps/s",
            case.name
        )];
        for (i, (reference, (rates, ratios))) in case.references.iter().zip(&mut refs).enumerate() {
            let (t, ratio) = (median(rates), median(ratios));
            let target = match i == case.fair {
                true => format!(" (target >= {:.2}x)", case.target),
                false => String::new(),
            };
            lines.push(format!("  vs {} {t:.2} steps/s: {ratio:.3}x{target}", reference.label));
        }
        summary.push(lines.join("\n"));
    }
    println!("{}", summary.join("\n"));
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

/// kiln's training step for `name` (`cnn`: the Fashion-MNIST shape, default config; `lstm`,
/// `gru`: the rnn with that cell), timed in this process.
fn kiln_steps(name: &str, threads: usize) -> serde_json::Value {
    tch::set_num_threads(threads as i32);
    let (arch, config, batch) = match name {
        "cnn" => (
            Arch::Cnn,
            serde_json::json!({ "channels": 1, "height": 28, "width": 28, "classes": 10 }),
            image_batch(BATCH),
        ),
        cell => (
            Arch::Rnn,
            serde_json::json!({ "vocab": VOCAB, "classes": RNN_CLASSES, "cell": cell }),
            token_batch(BATCH),
        ),
    };
    let arch = ArchConfig::from_json(arch, config).expect("bench config");
    let device = Device::libtorch().autodiff();
    device.seed(0);
    match arch.init(&device) {
        ZooModel::Cnn(model) => time_steps(model, &batch, &device),
        ZooModel::Rnn(model) => time_steps(model, &batch, &device),
        _ => unreachable!("the bench builds a cnn or an rnn"),
    }
}

fn time_steps<M: Task>(mut model: M, batch: &Split, device: &Device) -> serde_json::Value {
    let rows: Vec<usize> = (0..BATCH).collect();
    let mut optim = train::optimizer(Optimizer::Adam);
    // Seconds spent in forward (+ loss), backward and the optimizer step. libtorch CPU ops
    // run synchronously, so wall time between the phases is their cost.
    let mut phases = [0.0f64; 3];
    let mut step = |model: M, phases: &mut [f64; 3]| {
        let t0 = Instant::now();
        let prediction = model.predict(batch, &rows, device);
        let loss = task::loss(&prediction, batch, &rows, device);
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

fn image_batch(n: usize) -> Split {
    let mut rng = SplitMix64(7);
    let pixels = (0..n * 784).map(|_| rng.uniform() as f32).collect();
    let labels = (0..n).map(|_| (rng.next_u64() % 10) as i64).collect();
    Split {
        inputs: Inputs::Floats(pixels),
        row_len: 784,
        targets: Targets::Classes(labels),
    }
}

fn token_batch(n: usize) -> Split {
    let mut rng = SplitMix64(7);
    let ids = (0..n * TOKENS)
        .map(|_| (rng.next_u64() % VOCAB as u64) as i64)
        .collect();
    let labels = (0..n).map(|_| (rng.next_u64() % RNN_CLASSES as u64) as i64).collect();
    Split {
        inputs: Inputs::Ids(ids),
        row_len: TOKENS,
        targets: Targets::Classes(labels),
    }
}

/// One PyTorch reference run; `tuned` ones get the glibc malloc settings kilnd applies to
/// itself (crates/kilnd/src/alloc.rs).
fn torch_steps(name: &str, threads: usize, reference: &Reference) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/train_vs_pytorch.py");
    let mut cmd = Command::new("python3");
    if reference.tuned {
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
    let out = cmd
        .arg(script)
        .arg(name)
        .args(args)
        .args(reference.flags)
        .output()
        .expect("run python3");
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
