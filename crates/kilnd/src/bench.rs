//! `kilnd bench-train`: times the real training step (the same predict → loss → backward →
//! optimizer code a job runs) on a fixed batch, for `benches/train_vs_pytorch.rs`.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::time::Instant;

use anyhow::anyhow;
use burn::optim::GradientsParams;
use burn::tensor::Device;

use kiln_engine::data::{Inputs, Split, SplitMix64, Targets};
use kiln_engine::model::{ArchConfig, ZooModel};
use kiln_engine::task::{self, Task};
use kiln_engine::train;

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
    let mut step = |model: kiln_engine::model::Cnn, phases: &mut [f64; 3]| {
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

/// Arguments of `kilnd bench-serve`.
#[derive(Debug, clap::Args)]
pub struct ServeBenchArgs {
    /// `<model>@<version>` to time.
    pub reference: kiln_core::names::ModelRef,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 4.0)]
    pub seconds: f64,
    /// Batch sizes to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub batch: Vec<usize>,
    /// Also time forward passes that follow this many idle microseconds, as a server's do
    /// between the requests of one client: every other call, interleaved with the back-to-back
    /// ones in the same process, reported as `p50_after_gap_us`; 0: back to back only.
    #[arg(long, default_value_t = 0)]
    pub gap_us: u64,
}

/// The raw in-process forward of a stored version, the reference for the serving benchmark:
/// per batch size, latency (p50/p99) and rows/s (of forward time only) of back-to-back calls,
/// after a quarter second of untimed warm-up; with `--gap-us`, also the p50 of calls that
/// follow an idle gap.
pub fn serve(args: &ServeBenchArgs) -> anyhow::Result<serde_json::Value> {
    let registry = kiln_core::registry::Registry::open(&kiln_core::home::kiln_home()?)?;
    let version = registry.resolve(&args.reference)?;
    let manifest = registry.version(&args.reference.model, version)?;
    let loaded = kiln_engine::loaded::LoadedModel::from_registry(&registry, manifest, Device::libtorch())?;
    let width = loaded
        .row_len()
        .ok_or_else(|| anyhow!("bench-serve needs fixed-width rows"))?;
    let mut rng = SplitMix64(1);
    let row: Vec<f32> = (0..width).map(|_| rng.uniform() as f32).collect();
    let mut doc = serde_json::json!({});
    for &batch in &args.batch {
        anyhow::ensure!(batch > 0, "--batch sizes must be at least 1");
        let flat: Vec<f32> = row.iter().copied().cycle().take(width * batch).collect();
        let forward = || loaded.forward_flat(flat.clone(), batch, width).map_err(|e| anyhow!(e));
        let warm = Instant::now();
        while warm.elapsed().as_secs_f64() < 0.25 {
            forward()?;
        }
        let (mut latencies, mut after_gap) = (Vec::new(), Vec::new());
        let started = Instant::now();
        let gap = std::time::Duration::from_micros(args.gap_us);
        while started.elapsed().as_secs_f64() < args.seconds {
            let idle = !gap.is_zero() && latencies.len() > after_gap.len();
            if idle {
                std::thread::sleep(gap);
            }
            let t = Instant::now();
            forward()?;
            let micros = t.elapsed().as_secs_f64() * 1e6;
            if idle { &mut after_gap } else { &mut latencies }.push(micros);
        }
        let seconds = latencies.iter().sum::<f64>() / 1e6;
        let figures = &mut doc[format!("batch_{batch}")];
        *figures = serde_json::json!({
            "rows_per_s": (latencies.len() * batch) as f64 / seconds,
            "p50_us": quantile(&mut latencies, 0.5),
            "p99_us": quantile(&mut latencies, 0.99),
        });
        if !after_gap.is_empty() {
            figures["p50_after_gap_us"] = quantile(&mut after_gap, 0.5).into();
        }
    }
    Ok(doc)
}

/// The `q` quantile of `values` (sorted in place; at least one value).
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q) as usize]
}
