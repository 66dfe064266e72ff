//! The deploy gates, measured (issue 19): what the golden check (1,000 rows of the
//! candidate's test split, both versions) and the latency check (p99 at batch 1, both
//! versions, alternately) add to a deploy of a `cnn` on the CPU. Target: ≤ 2 s.
//!
//! The reference is the same switch without gates, measured in the same run against the same
//! daemon: a rollback, which loads, warms up and switches exactly like a deploy but runs no
//! gates. Rounds alternate gated deploys and plain rollbacks; medians are reported, with the
//! gates' own time as the daemon measured it (journaled in every entry). The first gated
//! deploy also reads the dataset (the split is kept for later deploys); it is shown apart.
//!
//! Run: `scripts/bench gates` (`-- --rounds 5 --limit 6000` are the defaults).

use std::time::{Duration, Instant};

use kiln_core::api::{DeployRequest, JobRequest, JournalEntry, RollbackRequest};
use kiln_core::client::Blocking;
use kiln_core::jobs::{JobState, TrainRequest};
use kiln_core::kinds::{Arch, DataSource, DeviceName};
use kiln_core::names::{ModelRef, Name, Selector};

mod common;

fn train(client: &Blocking, model: &Name, limit: usize, seed: u64) -> ModelRef {
    let mut train = TrainRequest::new(Arch::Cnn, DataSource::FashionMnist, model.clone());
    train.epochs = 1;
    train.limit = Some(limit);
    train.seed = seed;
    train.device = Some(DeviceName::Cpu);
    let request = JobRequest::Train(train);
    let view = client.run(|c| c.submit(&request)).expect("submit");
    loop {
        let view = client.run(|c| c.job(&view.id)).expect("job");
        if view.status.state.is_final() {
            assert_eq!(view.status.state, JobState::Succeeded, "{}", view.status.message);
            return view.status.version.expect("a registered version");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A gated deploy of `version` (forced, so a candidate that happens to be worse still
/// switches and is timed): wall seconds and the entry.
fn deploy(client: &Blocking, model: &Name, version: u32) -> (f64, JournalEntry) {
    let request = DeployRequest {
        model: model.clone(),
        version: Some(Selector::Version(version)),
        batching: None,
        force: true,
        gate_samples: Some(kiln_core::deploy::GOLDEN_SAMPLES),
        canary: None,
    };
    let started = Instant::now();
    let entry = client.run(|c| c.deploy(&request)).expect("deploy");
    (started.elapsed().as_secs_f64(), entry)
}

fn rollback(client: &Blocking, model: &Name) -> f64 {
    let started = Instant::now();
    client
        .run(|c| c.rollback(model, &RollbackRequest { to: None }))
        .expect("rollback");
    started.elapsed().as_secs_f64()
}

fn number(reference: &ModelRef) -> u32 {
    match reference.selector {
        Selector::Version(v) => v,
        _ => panic!("a job registers a numbered version, not {reference}"),
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
    let (rounds, limit) = (common::flag("--rounds", 5).max(1), common::flag("--limit", 6000));
    let home = tempfile::tempdir().expect("temp home");
    let _daemon = common::start_kilnd(home.path());
    let client = Blocking::new(home.path()).expect("client");
    let model: Name = "gated-cnn".parse().expect("name");
    let v1 = number(&train(&client, &model, limit, 1));
    let v2 = number(&train(&client, &model, limit, 2));
    println!("two cnn versions, 1 epoch on {limit} Fashion-MNIST images each");

    let (first_wall, first) = deploy(&client, &model, v1);
    println!(
        "first deploy (nothing in force: golden and latency skipped; v1's split read and scored): {first_wall:.2} s, gates {:.2} s",
        first.gates.as_ref().map_or(0.0, |g| g.seconds)
    );
    let (cold_wall, cold) = deploy(&client, &model, v2);
    let cold_gates = cold.gates.as_ref().map_or(0.0, |g| g.seconds);
    println!("first gated deploy (v2's split read once: another seed): {cold_wall:.2} s, gates {cold_gates:.2} s");
    if let Some(g) = &cold.gates {
        println!("{}", g.summary());
    }

    let (mut gated, mut plain, mut gates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        plain.push(rollback(&client, &model)); // back to v1, no gates
        let (wall, entry) = deploy(&client, &model, v2); // v1 → v2, gated
        gated.push(wall);
        gates.push(entry.gates.as_ref().map_or(0.0, |g| g.seconds));
    }
    let (gated, plain, gates) = (median(&mut gated), median(&mut plain), median(&mut gates));
    println!("\nmedians over {rounds} rounds (a rollback is the same switch without gates):");
    println!(
        "  switch without gates (rollback)              {:>7.1} ms (reference)",
        plain * 1000.0
    );
    println!(
        "  deploy with gates                            {:>7.1} ms ({:.1}x the reference)",
        gated * 1000.0,
        gated / plain
    );
    let added = gated - plain;
    let met = |x: f64| if x <= 2.0 { "met" } else { "NOT met" };
    println!(
        "  added by the gates (deploy − rollback)       {added:>7.2} s  (target ≤ 2 s: {})",
        met(added)
    );
    println!(
        "  the gates' own time, as journaled            {gates:>7.2} s  (target ≤ 2 s: {}; first, with the split read: {cold_gates:.2} s)",
        met(gates)
    );
}
