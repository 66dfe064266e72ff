//! The gates before a switch. After the candidate has loaded and warmed up, and before any
//! request reaches it:
//!
//! * **golden**: the candidate and the version in force answer the same rows of the
//!   candidate's test split (default 1,000); the candidate may lose at most 1 point of
//!   accuracy or macro-F1 (for ratings: 1% of RMSE). Their agreement is reported.
//! * **latency**: the candidate's p99 at batch 1 may be at most 1.25× the version in force's,
//!   both timed the same way, alternately, on the same rows, on one thread, leaving out the
//!   time that thread waited for a CPU (see [`RunQueue`]): on a box that is training, the
//!   scheduler's time slices otherwise are the p99, whatever the models cost.
//!
//! Both versions run on copies loaded for the check, so live traffic is not disturbed and
//! the serving instances' figures are not either. A first deploy (nothing in force) or a
//! version with no recorded dataset runs what makes sense and says what was skipped.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::tensor::Device;
use kiln_core::deploy::{GOLDEN_TOLERANCE_PT, GateCheck, GateFigures, GateOutcome, GateReport, LATENCY_LIMIT};
use kiln_core::kinds::DataSource;
use kiln_core::names::Digest;
use kiln_core::registry::{EvalReport, Registry, VersionManifest};
use kiln_engine::data::{self, LoadOptions, Split, Targets};
use kiln_engine::eval;
use kiln_engine::loaded::LoadedModel;

/// One-row forward passes timed per version for the latency check (after warm-up).
const LATENCY_ROUNDS: usize = 200;
const WARM_UP: usize = 10;
/// Latency passes before the check fails: each must exceed the limit.
const LATENCY_PASSES: usize = 5;

/// Test splits already loaded, by (dataset, seed, vocabulary): a second deploy of the same
/// model does not read its dataset again.
#[derive(Default)]
pub struct Splits {
    loaded: Mutex<HashMap<SplitKey, Arc<Golden>>>,
}

/// Dataset id, seed (a CSV's split depends on it), vocabulary blob (text rows depend on it)
/// and rows.
type SplitKey = (String, u64, Option<Digest>, usize);

/// The rows the golden check uses and the class names.
pub struct Golden {
    pub split: Split,
    pub classes: Vec<String>,
    pub name: String,
}

impl Splits {
    fn get(&self, registry: &Registry, version: &VersionManifest, rows: usize) -> Result<Arc<Golden>, String> {
        let dataset = version
            .draft
            .dataset
            .as_ref()
            .ok_or_else(|| "the candidate records no dataset (imported?)".to_owned())?;
        let seed = version.draft.seed.unwrap_or(0);
        let key = (
            dataset.id.clone(),
            seed,
            version.draft.blobs.get("vocab").cloned(),
            rows,
        );
        if let Some(found) = self.lock().get(&key) {
            return Ok(found.clone());
        }
        let source: DataSource = dataset
            .id
            .parse()
            .map_err(|e| format!("kiln cannot load {} again ({e})", dataset.id))?;
        let vocab = data::stored_vocab(registry, version).map_err(|e| format!("{e:#}"))?;
        let options = LoadOptions {
            path: None,
            seed,
            limit: None,
            vocab: vocab.as_ref(),
        };
        let loaded = data::load(&source, &options).map_err(|e| format!("cannot load {}: {e}", dataset.id))?;
        let (split_name, mut split) = match loaded.test {
            Some(test) => ("test", test),
            None => ("validation", loaded.val),
        };
        split.truncate(rows);
        let golden = Arc::new(Golden {
            split,
            classes: loaded.classes,
            name: format!("{} {split_name}", loaded.id),
        });
        self.lock().insert(key, golden.clone());
        Ok(golden)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SplitKey, Arc<Golden>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the gates for `candidate` against `current` (the version in force, if any).
pub fn run(
    registry: &Registry,
    splits: &Splits,
    candidate: &VersionManifest,
    current: Option<&VersionManifest>,
    device: &Device,
    rows: usize,
) -> anyhow::Result<GateReport> {
    let started = Instant::now();
    let mut report = GateReport {
        checks: Vec::new(),
        data: None,
        rows: 0,
        candidate: GateFigures {
            version: candidate.version,
            ..GateFigures::default()
        },
        current: current.map(|c| GateFigures {
            version: c.version,
            ..GateFigures::default()
        }),
        agreement: None,
        forced: false,
        seconds: 0.0,
    };
    let golden = match splits.get(registry, candidate, rows) {
        Ok(golden) => golden,
        Err(why) => {
            for name in ["golden", "latency"] {
                report
                    .checks
                    .push(skipped(name, &format!("{why}: no rows to check on")));
            }
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
    };
    report.data = Some(golden.name.clone());
    report.rows = golden.split.len();
    let new = LoadedModel::from_registry(registry, candidate.clone(), device.clone())?;
    let new_scores = score(&new, &golden, device);
    fill(&mut report.candidate, &new_scores.0);

    // The version in force reads the same examples through its own vocabulary.
    let old = match current {
        Some(current) => match splits.get(registry, current, rows) {
            Ok(theirs) if theirs.split.row_len == golden.split.row_len && theirs.name == golden.name => Some((
                LoadedModel::from_registry(registry, current.clone(), device.clone())?,
                theirs,
            )),
            Ok(_) | Err(_) => None,
        },
        None => None,
    };
    let Some((old, theirs)) = old else {
        let why = match current {
            None => "nothing is in force to compare with (first deploy)".to_owned(),
            Some(c) => format!(
                "v{} in force was not trained on {} rows of this shape",
                c.version, golden.name
            ),
        };
        report.checks.push(skipped("golden", &why));
        report.checks.push(skipped("latency", &why));
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    };
    let old_scores = score(&old, &theirs, device);
    let figures = report.current.get_or_insert_with(GateFigures::default);
    fill(figures, &old_scores.0);
    report.agreement = Some(agreement(&new_scores.1, &old_scores.1));
    report.checks.push(golden_check(&report));

    // A failure must repeat: a busy machine can stretch one pass's tail, a slower model
    // stretches every pass's.
    let mut passes = 0;
    let (new_p99, old_p99, ratio) = loop {
        passes += 1;
        let (new_p99, old_p99) = p99s(&new, &golden.split, &old, &theirs.split, device);
        let ratio = new_p99 / old_p99.max(1e-9);
        if ratio <= LATENCY_LIMIT || passes == LATENCY_PASSES {
            break (new_p99, old_p99, ratio);
        }
    };
    report.candidate.p99_ms = Some(new_p99);
    if let Some(figures) = report.current.as_mut() {
        figures.p99_ms = Some(old_p99);
    }
    let repeated = if passes > 1 {
        format!(", pass {passes} of {LATENCY_PASSES}")
    } else {
        String::new()
    };
    let detail = format!(
        "p99 at batch 1 {new_p99:.3} ms vs {old_p99:.3} ms in force ({ratio:.2}×, limit {LATENCY_LIMIT}×{repeated})"
    );
    report.checks.push(GateCheck {
        name: "latency".into(),
        outcome: if ratio <= LATENCY_LIMIT {
            GateOutcome::Passed
        } else {
            GateOutcome::Failed
        },
        detail,
    });
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn skipped(name: &str, why: &str) -> GateCheck {
    GateCheck {
        name: name.into(),
        outcome: GateOutcome::Skipped,
        detail: why.to_owned(),
    }
}

/// Scores and per-row predictions (classes, or ratings as f64).
fn score(model: &LoadedModel, golden: &Golden, device: &Device) -> (EvalReport, Vec<f64>) {
    let on = eval::ReportOn {
        dataset: &golden.name,
        split: "",
        device: "",
    };
    let name = model.manifest.model.to_string();
    let (report, collected) = eval::report_and_predictions(
        &model.model,
        &name,
        model.manifest.version,
        &golden.split,
        &golden.classes,
        on,
        device,
    );
    let predictions = match golden.split.targets {
        Targets::Classes(_) => collected.predicted_classes.iter().map(|&c| c as f64).collect(),
        Targets::Ratings(_) => collected.predicted_ratings.iter().map(|&r| f64::from(r)).collect(),
    };
    (report, predictions)
}

fn fill(figures: &mut GateFigures, report: &EvalReport) {
    figures.accuracy = report.accuracy;
    figures.macro_f1 = report.macro_f1;
    figures.rmse = report.rmse;
}

/// Share of rows answered alike: the same class, or ratings within 0.5.
fn agreement(a: &[f64], b: &[f64]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| (*x - *y).abs() < 0.5).count();
    same as f64 / a.len().max(1) as f64
}

/// The golden check's verdict from the figures in `report`.
fn golden_check(report: &GateReport) -> GateCheck {
    let new = &report.candidate;
    let old = report.current.clone().unwrap_or_default();
    let agreement = report
        .agreement
        .map_or(String::new(), |a| format!("; agreement {:.1}%", a * 100.0));
    let on = format!(
        " on {} rows of {}",
        report.rows,
        report.data.as_deref().unwrap_or("the data")
    );
    let mut failed = false;
    let mut parts = Vec::new();
    for (label, a, b) in [
        ("accuracy", new.accuracy, old.accuracy),
        ("macro-F1", new.macro_f1, old.macro_f1),
    ] {
        if let (Some(a), Some(b)) = (a, b) {
            let delta = (a - b) * 100.0;
            failed |= delta < -GOLDEN_TOLERANCE_PT;
            parts.push(format!("{label} {a:.4} vs {b:.4} in force ({delta:+.1} pt)"));
        }
    }
    if let (Some(a), Some(b)) = (new.rmse, old.rmse) {
        let worse = (a / b.max(1e-12) - 1.0) * 100.0;
        failed |= worse > GOLDEN_TOLERANCE_PT;
        parts.push(format!("RMSE {a:.4} vs {b:.4} in force ({worse:+.1}%)"));
    }
    GateCheck {
        name: "golden".into(),
        outcome: if failed {
            GateOutcome::Failed
        } else {
            GateOutcome::Passed
        },
        detail: format!(
            "{}{on}{agreement} (tolerance {GOLDEN_TOLERANCE_PT} pt)",
            parts.join(", ")
        ),
    }
}

/// p99 of one-row forward passes, candidate and version in force timed alternately, each
/// pass on this thread alone (one intra-op thread) and less the time it waited for a CPU.
fn p99s(new: &LoadedModel, new_rows: &Split, old: &LoadedModel, old_rows: &Split, device: &Device) -> (f64, f64) {
    // The count is per thread under OpenMP; libtorch gives a thread's first parallel op the
    // count last set by any thread, so the query comes first and the old count goes back.
    let threads = tch::get_num_threads();
    tch::set_num_threads(1);
    let waits = RunQueue::open();
    let timed = |model: &LoadedModel, rows: &Split, row: &[usize]| {
        let waited = waits.seconds();
        let wall = eval::time_forward(&model.model, rows, row, device);
        (wall - (waits.seconds() - waited)).max(0.0)
    };
    let n = new_rows.len().min(old_rows.len()).max(1);
    let mut a = Vec::with_capacity(LATENCY_ROUNDS);
    let mut b = Vec::with_capacity(LATENCY_ROUNDS);
    for i in 0..WARM_UP + LATENCY_ROUNDS {
        let row = [i % n];
        let ta = timed(new, new_rows, &row);
        let tb = timed(old, old_rows, &row);
        if i >= WARM_UP {
            a.push(ta * 1000.0);
            b.push(tb * 1000.0);
        }
    }
    tch::set_num_threads(threads);
    (p99(&mut a), p99(&mut b))
}

/// How long this thread has waited, runnable, for a CPU: Linux's `run_delay`, the second
/// figure of `/proc/thread-self/schedstat` (nanoseconds). Subtracted from a timed pass, it
/// leaves what the pass cost itself, not what other processes took meanwhile. Where the file
/// cannot be read it counts nothing, and passes are timed by the wall clock alone.
struct RunQueue {
    schedstat: Option<std::fs::File>,
}

impl RunQueue {
    /// Opened on the thread it measures: `thread-self` names the thread that opens it.
    fn open() -> Self {
        Self {
            schedstat: std::fs::File::open("/proc/thread-self/schedstat").ok(),
        }
    }

    /// Seconds waited so far.
    fn seconds(&self) -> f64 {
        use std::os::unix::fs::FileExt;
        let Some(file) = &self.schedstat else { return 0.0 };
        let mut buf = [0u8; 96];
        let Ok(len) = file.read_at(&mut buf, 0) else { return 0.0 };
        run_delay_ns(&buf[..len]).map_or(0.0, |ns| ns as f64 / 1e9)
    }
}

/// The run-queue wait in a `schedstat` line: `<on-CPU ns> <waiting ns> <time slices>`.
fn run_delay_ns(line: &[u8]) -> Option<u64> {
    std::str::from_utf8(line).ok()?.split_whitespace().nth(1)?.parse().ok()
}

fn p99(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let at = ((samples.len() as f64 * 0.99).ceil() as usize).saturating_sub(1);
    samples.get(at).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_queue_wait_is_the_second_schedstat_figure() {
        assert_eq!(run_delay_ns(b"612106138 1400083 11\n"), Some(1_400_083));
        assert_eq!(run_delay_ns(b"612106138\n"), None);
        assert_eq!(run_delay_ns(b""), None);
    }

    #[test]
    fn this_threads_wait_is_read_and_never_goes_back() {
        let waits = RunQueue::open();
        assert!(waits.schedstat.is_some(), "Linux has /proc/thread-self/schedstat");
        let before = waits.seconds();
        std::thread::yield_now();
        assert!(waits.seconds() >= before);
    }
}
