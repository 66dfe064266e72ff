//! `kilnd bench-train`: times the real training step (the same predict → loss → backward →
//! optimizer code a job runs) on a fixed batch, for `benches/train_vs_pytorch.rs`.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::time::Instant;

use anyhow::anyhow;
use burn::optim::GradientsParams;
use burn::tensor::Device;

use crate::engine::data::{Inputs, Split, SplitMix64, Targets};
use crate::engine::model::{ArchConfig, ZooModel};
use crate::engine::task::{self, Task};
use crate::engine::train;

/// Arguments of `kilnd bench-train`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// libtorch intra-op threads (match the PyTorch side).
    #[arg(long)]
    pub threads: Option<i32>,
}

/// Runs the `cnn` (Fashion-MNIST shape, default config) training step; returns steps/s.
pub fn run(args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    let config = serde_json::json!({ "channels": 1, "height": 28, "width": 28, "classes": 10 });
    let arch = ArchConfig::from_json("cnn", config)?;
    let device = Device::libtorch().autodiff();
    device.seed(0);
    let ZooModel::Cnn(model) = arch.init(&device) else {
        return Err(anyhow!("cnn config built another model"));
    };
    let batch = random_batch(args.batch_size);
    let rows: Vec<usize> = (0..args.batch_size).collect();
    let mut optim = train::optimizer("adam").map_err(|e| anyhow!(e))?;
    let mut model = model;
    // Seconds spent in forward (+ loss), backward and the optimizer step. libtorch CPU ops
    // run synchronously, so wall time between the phases is their cost.
    let mut phases = [0.0f64; 3];
    let mut step = |model: crate::engine::model::Cnn, phases: &mut [f64; 3]| {
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
    for _ in 0..args.warmup {
        model = step(model, &mut [0.0; 3]);
    }
    let started = Instant::now();
    for _ in 0..args.steps {
        model = step(model, &mut phases);
    }
    let seconds = started.elapsed().as_secs_f64();
    let ms = |s: f64| s * 1000.0 / args.steps as f64;
    Ok(serde_json::json!({
        "steps_per_sec": args.steps as f64 / seconds,
        "forward_ms": ms(phases[0]),
        "backward_ms": ms(phases[1]),
        "optimizer_ms": ms(phases[2]),
        "threads": tch::get_num_threads(),
        "batch_size": args.batch_size,
        "steps": args.steps,
    }))
}

fn random_batch(n: usize) -> Split {
    let mut rng = SplitMix64(7);
    let pixels = (0..n * 784).map(|_| rng.uniform() as f32).collect();
    let labels = (0..n).map(|_| (rng.next() % 10) as i64).collect();
    Split {
        inputs: Inputs::Floats(pixels),
        row_len: 784,
        targets: Targets::Classes(labels),
    }
}
