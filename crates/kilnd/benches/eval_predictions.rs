//! What storing every row's prediction costs an evaluation (issue 20). Target: ≤ 1.10×.
//!
//! A `cnn` is trained through the real daemon; then, in this process, its evaluation on all
//! 10,000 Fashion-MNIST test images runs both ways in alternating rounds, each ending with
//! its report stored as a blob as `kiln eval` does:
//! - the reference: the report alone (the argmax on the device, what `kiln eval` did before);
//! - kiln now: the report with calibration, every row's top classes and loss computed from
//!   the logits read back, and the predictions stored as a zstd-compressed blob.
//!
//! Run: `scripts/bench eval_predictions` (`-- --rounds 7 --limit 6000` are the defaults).

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::time::{Duration, Instant};

use burn::tensor::Device;
use kiln_core::api::JobRequest;
use kiln_core::client::Blocking;
use kiln_core::inspect::Predictions;
use kiln_core::jobs::{JobState, TrainRequest};
use kiln_core::kinds::{Arch, DataSource, DeviceName};
use kiln_core::names::{Name, Selector};
use kiln_core::registry::Registry;
use kiln_engine::data::{self, LoadOptions};
use kiln_engine::eval::{self, ReportOn};
use kiln_engine::loaded::LoadedModel;

mod common;

fn train(client: &Blocking, model: &Name, limit: usize) -> u32 {
    let mut train = TrainRequest::new(Arch::Cnn, DataSource::FashionMnist, model.clone());
    train.epochs = 1;
    train.limit = Some(limit);
    train.device = Some(DeviceName::Cpu);
    let request = JobRequest::Train(train);
    let view = client.run(|c| c.submit(&request)).expect("submit");
    loop {
        let view = client.run(|c| c.job(&view.id)).expect("job");
        if view.status.state.is_final() {
            assert_eq!(view.status.state, JobState::Succeeded, "{}", view.status.message);
            let version = view.status.version.expect("a registered version");
            let Selector::Version(v) = version.selector else {
                panic!("a job registers a numbered version, not {version}")
            };
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (rounds, limit) = (common::flag("--rounds", 7).max(1), common::flag("--limit", 6000));
    let home = tempfile::tempdir().expect("temp home");
    let daemon = common::start_kilnd(home.path());
    let client = Blocking::new(home.path()).expect("client");
    let model: Name = "inspected-cnn".parse().expect("name");
    let version = train(&client, &model, limit);
    drop(daemon);

    let registry = Registry::open(home.path()).expect("registry");
    let manifest = registry.version(&model, version).expect("manifest");
    let seed = manifest.draft.seed.unwrap_or(0);
    let loaded = LoadedModel::from_registry(&registry, manifest, Device::libtorch()).expect("load");
    let options = LoadOptions {
        path: None,
        seed,
        limit: None,
        vocab: None,
    };
    let dataset = data::load(&DataSource::FashionMnist, &options).expect("fashion-mnist");
    let test = dataset.test.as_ref().expect("a test split");
    let on = ReportOn {
        dataset: &dataset.id,
        split: "test",
        device: "cpu",
    };
    let name = model.to_string();
    let store = |report: &kiln_core::registry::EvalReport| {
        let bytes = serde_json::to_vec_pretty(report).expect("json");
        registry.blobs().put_bytes(&bytes).expect("store report");
    };
    let plain = || {
        let started = Instant::now();
        let report = eval::report(
            &loaded.model,
            &name,
            version,
            test,
            &dataset.classes,
            on,
            &loaded.device,
        );
        store(&report);
        started.elapsed().as_secs_f64()
    };
    let with_rows = || {
        let started = Instant::now();
        let (mut report, rows) = eval::report_with_rows(
            &loaded.model,
            &name,
            version,
            test,
            &dataset.classes,
            on,
            &loaded.device,
        );
        let predictions = Predictions {
            data: DataSource::FashionMnist,
            data_path: None,
            seed,
            split: "test".into(),
            classes: dataset.classes.clone(),
            fingerprint: kilnd::inspect::fingerprint(test),
            rows,
        };
        report.predictions = Some(kilnd::inspect::store(&registry, &predictions).expect("store predictions"));
        store(&report);
        started.elapsed().as_secs_f64()
    };
    println!(
        "a cnn (1 epoch on {limit} images) evaluated on all {} test images, both ways, in {rounds} alternating rounds",
        test.len()
    );
    plain();
    with_rows();
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (reference, kiln) = if round % 2 == 0 {
            let r = plain();
            (r, with_rows())
        } else {
            let k = with_rows();
            (plain(), k)
        };
        println!(
            "  round {round}: report only {:.3} s | with every row's prediction stored {:.3} s",
            reference, kiln
        );
        a.push(reference);
        b.push(kiln);
        ratios.push(kiln / reference);
    }
    let ratio = median(&mut ratios);
    println!(
        "evaluation with predictions stored vs without: {ratio:.3}x (median of per-round ratios; {:.3} s vs {:.3} s median; target <= 1.10x) {}",
        median(&mut b),
        median(&mut a),
        if ratio <= 1.10 { "MET" } else { "NOT MET" }
    );
}
