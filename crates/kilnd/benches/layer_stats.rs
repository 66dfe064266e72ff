//! What per-layer statistics cost a training job (issue #20: steps/s with them on ≥ 0.97× off).
//!
//! The `mlp` (six epochs over the 55,000 training images) and the `cnn` (one epoch over
//! 30,000; default configs, Adam, batch 64, CPU, every core) train on Fashion-MNIST in this
//! process through the loop a job runs (`train::run`), with a sink that appends every metric
//! record to a file as the worker does. Each round trains the same model twice from the same
//! seed, statistics off and on, alternating which goes first; a side's rate is its steps
//! between its first and last `train` records over the time between them (start-up and the
//! tiny validation pass are left out), so the once-a-second `layers` records and the sampled
//! dead-unit probes inside that interval are what it pays. The verdict is the median of the
//! per-round ratios (this shared machine's speed drifts).
//!
//! Run: `scripts/bench layer_stats` (`-- --rounds 8`, `-- mlp` for one model).

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use kiln_core::jobs::MetricRecord;
use kiln_core::kinds::{Arch, DataSource, MetricKind, Optimizer, Schedule};
use kiln_engine::checkpoint::{Checkpoint, Position};
use kiln_engine::data::{self, Dataset, LoadOptions};
use kiln_engine::model::{ArchConfig, ZooModel};
use kiln_engine::task::Task;
use kiln_engine::train::{self, LoopEnd, LoopSettings, LoopSink};

mod common;

const TARGET: f64 = 0.97;
/// Validation rows per epoch: enough to run the pass, too few to matter.
const VAL_ROWS: usize = 64;

/// A model, how much of the data one side trains on, and for how many epochs (five seconds
/// or more a side on an idle two-core machine: several `layers` records each).
struct Case {
    arch: Arch,
    rows: usize,
    epochs: usize,
}

const CASES: [Case; 2] = [
    Case {
        arch: Arch::Mlp,
        rows: 55_000,
        epochs: 6,
    },
    Case {
        arch: Arch::Cnn,
        rows: 30_000,
        epochs: 1,
    },
];

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    kilnd::alloc::tune();
    let rounds = common::flag("--rounds", 6);
    let names: Vec<String> = CASES.iter().map(|c| c.arch.to_string()).collect();
    let wanted: Vec<String> = std::env::args().filter(|a| names.contains(a)).collect();
    let dataset = load();
    let mut summary = Vec::new();
    for case in CASES
        .iter()
        .filter(|c| wanted.is_empty() || wanted.iter().any(|w| *w == c.arch.to_string()))
    {
        let (mut ratios, mut offs, mut ons, mut records) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for round in 1..=rounds {
            // Alternate which side goes first, so drift in machine speed favours neither.
            let (off, on) = if round % 2 == 1 {
                let off = steps_per_sec(case, &dataset, false);
                (off, steps_per_sec(case, &dataset, true))
            } else {
                let on = steps_per_sec(case, &dataset, true);
                (steps_per_sec(case, &dataset, false), on)
            };
            records = on.1;
            println!(
                "{} round {round}: off {:.1} steps/s, on {:.1} steps/s ({:.4}x)",
                case.arch,
                off.0,
                on.0,
                on.0 / off.0
            );
            ratios.push(on.0 / off.0);
            offs.push(off.0);
            ons.push(on.0);
        }
        let ratio = median(&mut ratios);
        let verdict = if ratio >= TARGET { "met" } else { "NOT MET" };
        summary.push(format!(
            "{} on Fashion-MNIST, batch 64, Adam, CPU: layer statistics on {:.1} steps/s vs off {:.1} steps/s, \
             median of {rounds} rounds = {ratio:.4}x ({records} layers records a run; target >= {TARGET}x: {verdict})",
            case.arch,
            median(&mut ons),
            median(&mut offs),
        ));
    }
    println!("{}", summary.join("\n"));
}

/// Fashion-MNIST, every training row; the validation split cut to [`VAL_ROWS`].
fn load() -> Dataset {
    let options = LoadOptions {
        path: None,
        seed: 7,
        limit: None,
        vocab: None,
    };
    let mut dataset = data::load(&DataSource::FashionMnist, &options).expect("Fashion-MNIST (dataset-fashion-mnist)");
    dataset.val.truncate(VAL_ROWS);
    dataset
}

/// One side of a round: steps/s between the first and last `train` records, and the number
/// of `layers` records written.
fn steps_per_sec(case: &Case, dataset: &Dataset, layer_stats: bool) -> (f64, usize) {
    let shape = match case.arch {
        Arch::Cnn => serde_json::json!({ "channels": 1, "height": 28, "width": 28, "classes": 10 }),
        _ => serde_json::json!({ "inputs": 784, "classes": 10 }),
    };
    let config = ArchConfig::from_json(case.arch, shape).expect("bench config");
    let device = Device::libtorch().autodiff();
    device.seed(7);
    let mut train = dataset.train.clone();
    train.truncate(case.rows);
    let settings = LoopSettings {
        epochs: case.epochs,
        batch_size: 64,
        lr: 1e-3,
        schedule: Schedule::Cosine,
        seed: 7,
        masks: None,
        layer_stats,
    };
    let mut sink = FileSink::new();
    match config.init(&device) {
        ZooModel::Mlp(m) => run(m, &settings, &train, dataset, &device, &mut sink),
        ZooModel::Cnn(m) => run(m, &settings, &train, dataset, &device, &mut sink),
        _ => unreachable!("the bench trains an mlp or a cnn"),
    }
    sink.rate()
}

fn run<M: Task>(
    model: M,
    settings: &LoopSettings,
    train: &data::Split,
    dataset: &Dataset,
    device: &Device,
    sink: &mut FileSink,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let optim = train::optimizer(Optimizer::Adam);
    let end = train::run(
        model,
        optim,
        settings,
        train,
        &dataset.val,
        Position::default(),
        device,
        &stop,
        sink,
    )
    .expect("training");
    assert!(
        matches!(end, LoopEnd::Finished { .. }),
        "the bench run ended early: {end:?}"
    );
}

/// Appends every record to a file, as the worker does, and keeps the `train` ones.
struct FileSink {
    file: tempfile::NamedTempFile,
    train: Vec<MetricRecord>,
    layers: usize,
}

impl FileSink {
    fn new() -> Self {
        Self {
            file: tempfile::NamedTempFile::new().expect("temp file"),
            train: Vec::new(),
            layers: 0,
        }
    }

    /// Steps/s between the first and last `train` records, and the `layers` records written.
    fn rate(&self) -> (f64, usize) {
        let (first, last) = match (self.train.first(), self.train.last()) {
            (Some(first), Some(last)) if last.time > first.time => (first, last),
            _ => panic!("too short a run to measure: {} train records", self.train.len()),
        };
        ((last.step - first.step) as f64 / (last.time - first.time), self.layers)
    }
}

impl LoopSink for FileSink {
    fn metric(&mut self, record: &MetricRecord) {
        let mut line = serde_json::to_vec(record).expect("a record serializes");
        line.push(b'\n');
        self.file.write_all(&line).expect("append a record");
        match record.kind {
            MetricKind::Train => self.train.push(record.clone()),
            MetricKind::Layers => self.layers += 1,
            MetricKind::Val => {}
        }
    }

    fn checkpoint(&mut self, _checkpoint: &Checkpoint<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
