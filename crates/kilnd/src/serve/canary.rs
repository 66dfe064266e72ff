//! Canary deploys: the candidate, loaded, warmed up and past its gates, answers a share of a
//! model's live requests while the version in force answers the rest. The share is taken
//! from the version in force's batches (the candidate runs every k-th batch by rows, so the
//! share holds, and both versions batch as fully as one version alone would): see
//! [`super::batcher::Deployment::host`]. A watcher compares the two sides' error rates and p99 latencies since
//! the canary started; a candidate worse beyond the thresholds is rolled back at once (an
//! `abort` journal entry says why), otherwise it is promoted when its time or request count
//! is reached (a `deploy` entry). `kiln canary promote|abort` end it by hand.
//!
//! A shadow (`spec.shadow`) is a canary that answers no one: the version in force answers every
//! request, and the candidate gets a copy of each (when its queue has room; live traffic never
//! waits for it). Its answers are compared with the version in force's and discarded; the
//! disagreement rate and its latency are recorded until its window ends. It is never promoted
//! or rolled back by itself: the operator promotes or aborts it.
//!
//! A canary is not in force: the journal's version in force keeps serving the rest, and a
//! daemon restart during a canary or shadow aborts it to that version (journaled), so the
//! model is never left unserved.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kiln_core::deploy::{
    CANARY_ERROR_POINTS, CANARY_MIN_REQUESTS, CANARY_P99_LIMIT, CanarySpec, CanaryView, DeploymentStats,
};

use super::batcher::Deployment;

pub use kiln_core::deploy::CANARY_SECONDS as DEFAULT_SECONDS;
/// How often the watcher looks.
pub const WATCH: Duration = Duration::from_millis(250);
/// Consecutive looks (3 s) the candidate's p99 must stay over the limit before it is rolled
/// back for it: one slow tail on a busy machine is not a slower model.
const LATENCY_STRIKES: u32 = 12;
/// Below this difference two p99s are the same to the watcher, whatever their ratio.
const P99_FLOOR_MS: f64 = 2.0;

/// One canary in progress.
pub struct Canary {
    pub candidate: Arc<Deployment>,
    pub stable: u32,
    pub spec: CanarySpec,
    pub since: String,
    pub started: Instant,
    /// Figures of each side when the canary started (metrics are cumulative).
    pub stable_base: DeploymentStats,
    pub candidate_base: DeploymentStats,
    /// The canary has ended (promoted or aborted): the watcher stops.
    pub ended: AtomicBool,
    /// Consecutive looks with the candidate's p99 over the limit.
    strikes: AtomicU32,
    /// Gate figures and signer, for the `deploy` entry that promotes it.
    pub gates: Option<kiln_core::deploy::GateReport>,
    pub signer: Option<kiln_core::names::Name>,
    /// A shadow's copies made, rows compared, rows answered differently, and copies not made
    /// because the candidate's queue was full.
    mirrored: AtomicU64,
    compared: AtomicU64,
    disagreements: AtomicU64,
    skipped: AtomicU64,
}

/// What the watcher decided.
pub enum Verdict {
    Continue,
    Promote(String),
    RollBack(String),
}

impl Canary {
    pub fn new(
        candidate: Arc<Deployment>,
        stable: u32,
        spec: CanarySpec,
        bases: (DeploymentStats, DeploymentStats),
        gates: Option<kiln_core::deploy::GateReport>,
        signer: Option<kiln_core::names::Name>,
    ) -> Self {
        Self {
            candidate,
            stable,
            spec,
            since: kiln_core::registry::now_rfc3339(),
            started: Instant::now(),
            stable_base: bases.0,
            candidate_base: bases.1,
            ended: AtomicBool::new(false),
            strikes: AtomicU32::new(0),
            gates,
            signer,
            mirrored: AtomicU64::new(0),
            compared: AtomicU64::new(0),
            disagreements: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// `canary` or `shadow`, for messages.
    pub fn kind(&self) -> &'static str {
        if self.spec.shadow { "shadow" } else { "canary" }
    }

    /// Whether a shadow still copies requests (its window has not ended).
    pub fn mirroring(&self) -> bool {
        self.spec.shadow && self.progress(self.mirrored.load(Ordering::Relaxed)) < 1.0
    }

    /// Counts a copy made for the shadow (`true`) or not made because its queue was full.
    pub fn note_copy(&self, made: bool) {
        let counter = if made { &self.mirrored } else { &self.skipped };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Compares the shadow's answers with the version in force's, row by row (see [`same`]).
    pub fn compare(&self, in_force: &[f32], shadow: &[f32]) {
        let differ = in_force.iter().zip(shadow).filter(|(a, b)| !same(**a, **b)).count();
        self.compared.fetch_add(in_force.len() as u64, Ordering::Relaxed);
        self.disagreements.fetch_add(differ as u64, Ordering::Relaxed);
    }

    /// The view `kiln canary status` shows, from each side's figures now.
    pub fn view(
        &self,
        model: &kiln_core::names::Name,
        stable: &DeploymentStats,
        candidate: &DeploymentStats,
    ) -> CanaryView {
        let (sr, se) = delta(stable, &self.stable_base);
        let (cr, ce) = delta(candidate, &self.candidate_base);
        CanaryView {
            model: model.clone(),
            stable: self.stable,
            candidate: self.candidate.version,
            percent: self.spec.percent,
            since: self.since.clone(),
            stable_requests: sr,
            stable_errors: se,
            candidate_requests: cr,
            candidate_errors: ce,
            stable_p99_ms: stable.p99_ms,
            candidate_p99_ms: candidate.p99_ms,
            progress: if self.spec.shadow {
                self.progress(self.mirrored.load(Ordering::Relaxed))
            } else {
                self.progress(cr)
            },
            shadow: self.spec.shadow,
            compared: self.compared.load(Ordering::Relaxed),
            disagreements: self.disagreements.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }

    /// How far to the end (0–1), by time or by the candidate's requests (a shadow's copies).
    fn progress(&self, candidate_requests: u64) -> f64 {
        let by_time = self
            .spec
            .seconds
            .map(|s| self.started.elapsed().as_secs_f64() / s.max(1) as f64);
        let by_requests = self.spec.requests.map(|n| candidate_requests as f64 / n.max(1) as f64);
        let progress = match (by_time, by_requests) {
            (None, None) => self.started.elapsed().as_secs_f64() / DEFAULT_SECONDS as f64,
            (a, b) => a.unwrap_or(0.0).max(b.unwrap_or(0.0)),
        };
        progress.clamp(0.0, 1.0)
    }

    /// Compares the two sides since the start: roll back a candidate worse beyond the
    /// thresholds, promote one that reached its end.
    pub fn judge(&self, view: &CanaryView) -> Verdict {
        let rate = |errors: u64, requests: u64| errors as f64 * 100.0 / requests.max(1) as f64;
        let (cand, stab) = (
            rate(view.candidate_errors, view.candidate_requests),
            rate(view.stable_errors, view.stable_requests),
        );
        let figures = format!(
            "v{} answered {} requests ({} errors, {cand:.1}%; p99 {}), v{} answered {} ({} errors, {stab:.1}%; p99 {})",
            view.candidate,
            view.candidate_requests,
            view.candidate_errors,
            ms(view.candidate_p99_ms),
            view.stable,
            view.stable_requests,
            view.stable_errors,
            ms(view.stable_p99_ms)
        );
        if view.candidate_requests >= CANARY_MIN_REQUESTS {
            if cand > stab + CANARY_ERROR_POINTS {
                return Verdict::RollBack(format!(
                    "canary rolled back: its error rate is {:.1} points above v{}'s (limit {CANARY_ERROR_POINTS}): {figures}",
                    cand - stab,
                    view.stable
                ));
            }
            let slower = match (view.candidate_p99_ms, view.stable_p99_ms) {
                (Some(c), Some(s)) => {
                    view.stable_requests >= CANARY_MIN_REQUESTS && c > s * CANARY_P99_LIMIT && c - s > P99_FLOOR_MS
                }
                _ => false,
            };
            let strikes = if slower {
                self.strikes.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                self.strikes.store(0, Ordering::Relaxed);
                0
            };
            if strikes >= LATENCY_STRIKES {
                let ratio = view.candidate_p99_ms.unwrap_or(0.0) / view.stable_p99_ms.unwrap_or(1.0).max(1e-9);
                return Verdict::RollBack(format!(
                    "canary rolled back: its p99 stayed above {CANARY_P99_LIMIT}x v{}'s for 3 s ({ratio:.2}x): {figures}",
                    view.stable
                ));
            }
        }
        if view.progress >= 1.0 {
            return Verdict::Promote(format!("canary promoted at {}%: {figures}", view.percent));
        }
        Verdict::Continue
    }
}

/// Whether two answers to one row agree: the same class (classifiers answer their argmax) or
/// ratings less than 0.5 apart, as the golden gate counts agreement.
pub fn same(a: f32, b: f32) -> bool {
    (a - b).abs() < 0.5
}

/// What a row's output says, for comparing two versions: the argmax class of a classifier's
/// probabilities, or the rating.
pub fn answer(row: &[f32]) -> f32 {
    match row {
        [rating] => *rating,
        probabilities => super::tensor::argmax(probabilities) as f32,
    }
}

/// Whether the `n`-th of a stream goes to a side that takes `percent` of it: when
/// ⌊(n+1)·p⌋ > ⌊n·p⌋, which gives exactly that share, evenly spread.
pub fn takes(n: u64, percent: f64) -> bool {
    let (n, p) = (n as f64, percent / 100.0);
    ((n + 1.0) * p).floor() > (n * p).floor()
}

fn delta(now: &DeploymentStats, base: &DeploymentStats) -> (u64, u64) {
    (
        now.requests.saturating_sub(base.requests),
        now.errors.saturating_sub(base.errors),
    )
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"))
}

/// `KILN_TEST_CANARY_FAULT_PERCENT`: a test-only setting that makes the canary's candidate
/// fail that share of its requests with 500 (to exercise the automatic rollback).
pub fn injected_fault_percent() -> f64 {
    std::env::var("KILN_TEST_CANARY_FAULT_PERCENT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|p| (0.0..=100.0).contains(p))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_sends_exactly_the_share_evenly() {
        let taken: Vec<bool> = (0..100).map(|n| takes(n, 10.0)).collect();
        assert_eq!(taken.iter().filter(|t| **t).count(), 10);
        assert!(taken[9] && !taken[0] && taken[19] && !taken[10]);
        assert_eq!((0..1000).filter(|&n| takes(n, 2.5)).count(), 25);
    }

    #[test]
    fn answers_compare_by_class_or_by_half_a_star() {
        assert_eq!(answer(&[0.1, 0.7, 0.2]), 1.0);
        assert_eq!(answer(&[3.7]), 3.7);
        assert!(same(answer(&[0.6, 0.4]), answer(&[0.9, 0.1])));
        assert!(!same(answer(&[0.4, 0.6]), answer(&[0.9, 0.1])));
        assert!(same(3.7, 3.3) && !same(3.7, 3.1));
    }
}
