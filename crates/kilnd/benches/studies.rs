//! Hyperparameter studies, measured (DESIGN §7):
//!
//! 1. **TPE + ASHA against random search without early stopping**, same trial budget, on the
//!    Fashion-MNIST `mlp` with the issue's search space, for several seeds: the compute
//!    (trial-epochs, and wall clock) TPE + ASHA spends until a trial first scores random
//!    search's best objective, as a fraction of what random search spent in all (target
//!    ≤ 0.5). The same fraction against the compute random search had spent when it found
//!    its best is printed too (a stricter reading). A seed where TPE + ASHA never reaches
//!    random's best counts as a miss, not as a fraction.
//! 2. **Scheduling overhead**: with one trial at a time, the time from a trial's end (its
//!    final status written) to the next trial's job being submitted and started (the daemon's share, target
//!    ≤ 1 s on CPU) and to its first training step (adds libtorch and data loading).
//! 3. **Concurrent trials**: the same four trials run one at a time (each with every core)
//!    and two at a time (the cores split between them): total training samples/s, as a ratio.
//!
//! Run: `scripts/bench studies` (`-- --seeds 3 --trials 24 --limit 20000 --epochs 6` are the
//! defaults; smaller values give a quick look).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kiln_core::api::{StudyCreate, StudyView};
use kiln_core::client::Blocking;
use kiln_core::jobs::{JobDir, JobId};
use kiln_core::kinds::MetricKind;
use kiln_core::names::Name;
use kiln_core::study::StudyState;

mod common;

struct Settings {
    seeds: u64,
    trials: usize,
    limit: usize,
    epochs: usize,
}

fn settings() -> Settings {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Settings {
        seeds: value("--seeds", 3) as u64,
        trials: value("--trials", 24),
        limit: value("--limit", 20_000),
        epochs: value("--epochs", 6),
    }
}

fn spec(name: &str, s: &Settings, seed: u64, sampler: &str, early_stop: &str) -> String {
    format!(
        r#"name = "{name}"
base = {{ arch = "mlp", data = "fashion-mnist", epochs = {epochs}, limit = {limit}, device = "cpu" }}
objective = {{ metric = "val_accuracy", direction = "maximize" }}
budget = {{ trials = {trials}, concurrent = 2 }}
sampler = "{sampler}"
seed = {seed}
early_stop = {early_stop}
[params]
lr = {{ log_uniform = [1e-4, 3e-2] }}
batch_size = {{ choice = [32, 64, 128] }}
optimizer = {{ choice = ["adam", "adamw", "sgd"] }}
"config.hidden" = {{ choice = [[128], [256, 128], [512, 256]] }}
"#,
        epochs = s.epochs,
        limit = s.limit,
        trials = s.trials,
    )
}

/// Runs a study to its end; returns it and its wall-clock seconds.
fn run_study(client: &Blocking, source: String) -> (StudyView, f64) {
    let started = Instant::now();
    let request = StudyCreate {
        source,
        file: "bench.toml".into(),
    };
    let study = client.run(|c| c.create_study(&request)).expect("create study");
    let name: Name = study.name().clone();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let view = client.run(|c| c.study(&name)).expect("study");
        if view.state != StudyState::Running {
            return (view, started.elapsed().as_secs_f64());
        }
    }
}

/// Every scored epoch of the study, as (unix time, value), in time order.
fn epochs_in_time(home: &Path, study: &StudyView) -> Vec<(f64, f64)> {
    let metric = study.spec.objective.metric;
    let mut points: Vec<(f64, f64)> = study
        .trials
        .iter()
        .flat_map(|t| t.jobs.iter())
        .flat_map(|job| {
            JobDir::new(home, job.clone())
                .metrics_since(0)
                .map(|(r, _)| r)
                .unwrap_or_default()
        })
        .filter(|r| r.kind == MetricKind::Val)
        .filter_map(|r| Some((r.time, metric.of(&r)?)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// Validation images Fashion-MNIST holds out (1/12 of its 60,000 training images, whatever
/// the `limit`): the accuracy's standard error is `sqrt(p (1 - p) / VAL_ROWS)`.
const VAL_ROWS: f64 = 5_000.0;

/// What one seed measured: fractions of random search's compute and wall clock.
struct Comparison {
    random_best: f64,
    tpe_best: f64,
    /// Trial-epochs and seconds TPE + ASHA took to reach random's best, if it did.
    reached: Option<(usize, f64)>,
    /// Trial-epochs it took to come within one standard error of random's best, if it did.
    within_noise: Option<usize>,
    random_epochs: usize,
    random_epochs_to_best: usize,
    random_seconds: f64,
    tpe_epochs: usize,
}

fn compare(home: &Path, random: &StudyView, random_secs: f64, tpe: &StudyView, tpe_started: f64) -> Comparison {
    let random_points = epochs_in_time(home, random);
    let tpe_points = epochs_in_time(home, tpe);
    let random_best = random_points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let random_epochs_to_best = random_points
        .iter()
        .position(|p| p.1 >= random_best)
        .map_or(0, |i| i + 1);
    let reached = tpe_points
        .iter()
        .position(|p| p.1 >= random_best)
        .map(|i| (i + 1, tpe_points[i].0 - tpe_started));
    let noise = (random_best * (1.0 - random_best) / VAL_ROWS).sqrt();
    let within_noise = tpe_points
        .iter()
        .position(|p| p.1 >= random_best - noise)
        .map(|i| i + 1);
    Comparison {
        within_noise,
        random_best,
        tpe_best: tpe_points.iter().map(|p| p.1).fold(f64::MIN, f64::max),
        reached,
        random_epochs: random_points.len(),
        random_epochs_to_best,
        random_seconds: random_secs,
        tpe_epochs: tpe_points.len(),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn search(client: &Blocking, home: &Path, s: &Settings) {
    let mut fractions = Vec::new();
    for seed in 1..=s.seeds {
        let (random, random_secs) = run_study(client, spec(&format!("random-{seed}"), s, seed, "random", "\"none\""));
        let tpe_started = unix_now();
        // Its own seed: TPE's first trials are random draws, and sharing random search's
        // would hand it random's trials for free.
        let (tpe, tpe_secs) = run_study(
            client,
            spec(&format!("tpe-asha-{seed}"), s, seed + 1000, "tpe", "\"asha\""),
        );
        let c = compare(home, &random, random_secs, &tpe, tpe_started);
        let pruned = tpe.count(kiln_core::study::TrialState::Pruned);
        print!(
            "seed {seed}: random {} trial-epochs, {random_secs:.0} s, best {:.4} (after {} epochs); \
             TPE+ASHA {} trial-epochs ({pruned} of {} trials pruned), {tpe_secs:.0} s, best {:.4}",
            c.random_epochs,
            c.random_best,
            c.random_epochs_to_best,
            c.tpe_epochs,
            tpe.trials.len(),
            c.tpe_best
        );
        match c.reached {
            Some((epochs, secs)) => {
                let compute = epochs as f64 / c.random_epochs as f64;
                let clock = secs / c.random_seconds;
                println!(
                    "; reached random's best after {epochs} trial-epochs, {secs:.0} s: {compute:.3}x random's compute, \
                     {clock:.3}x its wall clock, {:.3}x its compute to its own best",
                    epochs as f64 / c.random_epochs_to_best.max(1) as f64
                );
                fractions.push((compute, clock));
            }
            None => println!("; never reached random's best (a miss)"),
        }
        if let Some(epochs) = c.within_noise {
            println!(
                "  (not the target) within one standard error of random's best ({:.4}) after {epochs} trial-epochs: {:.3}x",
                c.random_best - (c.random_best * (1.0 - c.random_best) / VAL_ROWS).sqrt(),
                epochs as f64 / c.random_epochs as f64
            );
        }
    }
    // A seed that never reached random's best counts as an infinite fraction.
    let misses = s.seeds as usize - fractions.len();
    let (mut compute, mut clock): (Vec<f64>, Vec<f64>) = fractions.into_iter().unzip();
    compute.extend(std::iter::repeat_n(f64::INFINITY, misses));
    clock.extend(std::iter::repeat_n(f64::INFINITY, misses));
    let verdict = |x: f64| {
        if x.is_finite() {
            format!("{x:.3}x")
        } else {
            "never (a miss)".to_owned()
        }
    };
    println!(
        "TPE+ASHA vs random search, {} seeds, {} trials of {} epochs, mlp on {} Fashion-MNIST images: \
         median over seeds {} random's trial-epochs and {} its wall clock to reach its best \
         (target <= 0.5x compute), {misses} miss(es)",
        s.seeds,
        s.trials,
        s.epochs,
        s.limit,
        verdict(median(&mut compute)),
        verdict(median(&mut clock)),
    );
}

fn mtime(path: &Path) -> Option<f64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(modified.duration_since(UNIX_EPOCH).ok()?.as_secs_f64())
}

/// When the job's first training step began: its first metric line's time minus the
/// window that line covers.
fn first_step(dir: &JobDir, batch_size: usize) -> Option<f64> {
    let (records, _) = dir.metrics_since(0).ok()?;
    let first = records.iter().find(|r| r.kind == MetricKind::Train)?;
    let window = first.step as f64 * batch_size as f64 / first.samples_per_sec?;
    Some(first.time - window)
}

fn overhead_and_throughput(client: &Blocking, home: &Path, s: &Settings) {
    let grid = |name: &str, concurrent: usize| {
        format!(
            r#"name = "{name}"
base = {{ arch = "mlp", data = "fashion-mnist", epochs = 2, limit = {limit}, device = "cpu", batch_size = 64 }}
objective = {{ metric = "val_accuracy" }}
budget = {{ trials = 4, concurrent = {concurrent} }}
sampler = "grid"
[params]
lr = {{ choice = [1e-3, 2e-3, 3e-3, 4e-3] }}
"#,
            limit = s.limit
        )
    };
    let (serial, serial_secs) = run_study(client, grid("one-at-a-time", 1));
    let (mut daemon_gaps, mut step_gaps) = (Vec::new(), Vec::new());
    let jobs: Vec<JobId> = serial.trials.iter().filter_map(|t| t.job().cloned()).collect();
    for pair in jobs.windows(2) {
        let (prev, next) = (JobDir::new(home, pair[0].clone()), JobDir::new(home, pair[1].clone()));
        let ended = mtime(&prev.path.join("status.json"));
        // The daemon writes the next trial's job folder as it submits it, and starts the
        // worker in the same pass.
        let started = mtime(&next.path.join("spec.json"));
        if let (Some(ended), Some(started), Some(step)) = (ended, started, first_step(&next, 64)) {
            daemon_gaps.push(started - ended);
            step_gaps.push(step - ended);
        }
    }
    println!(
        "scheduling: trial end -> next trial's job submitted and started: median {:.3} s (target <= 1 s), max {:.3} s; \
         -> its first training step: median {:.3} s (adds libtorch and data loading)",
        median(&mut daemon_gaps.clone()),
        daemon_gaps.iter().copied().fold(0.0, f64::max),
        median(&mut step_gaps),
    );
    let (pair, pair_secs) = run_study(client, grid("two-at-a-time", 2));
    println!(
        "concurrency: 4 trials (2 epochs of {} images each) one at a time with every core {serial_secs:.1} s, \
         two at a time with the cores split {pair_secs:.1} s: total throughput {:.3}x one trial alone ({} trials each)",
        s.limit,
        serial_secs / pair_secs,
        pair.trials.len()
    );
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let s = settings();
    let home = tempfile::tempdir().expect("temp home");
    let _daemon = common::start_kilnd(home.path());
    let client = Blocking::new(home.path()).expect("client");
    overhead_and_throughput(&client, home.path(), &s);
    search(&client, home.path(), &s);
}
