//! Deployments: the append-only journal `$KILN_HOME/deployments.jsonl` (DESIGN §2, §5) and the
//! wire types the control API serves about what is deployed.
//!
//! Every switch (deploy or rollback) appends one line; the last entry per model is what is in
//! force, and a restarted daemon restores exactly that.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::names::Name;

/// What a journal entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deploy,
    Rollback,
    /// A canary started: `candidate` takes a share of the requests; `to` (in force) is
    /// unchanged until it is promoted (a `deploy` entry) or aborted.
    Canary,
    /// A canary or shadow ended without promotion (by hand, by its checks, or by a restart);
    /// `to` keeps serving.
    Abort,
    /// A shadow started: `candidate` answers a copy of every request, its answers discarded;
    /// `to` (in force) answers them all until the shadow is promoted or aborted.
    Shadow,
}

impl Action {
    /// Whether the entry switched the version in force.
    pub fn is_switch(self) -> bool {
        matches!(self, Self::Deploy | Self::Rollback)
    }
}
crate::kinds::word_enum!(Action, "journal action");

/// Dynamic-batching settings of one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batching {
    /// Most rows one forward pass takes.
    pub max_batch: usize,
    /// Under load, how long a batch may keep collecting requests that are still arriving, in
    /// microseconds (a lone request never waits; 0: batch only what is already queued).
    pub max_delay_us: u64,
    /// Requests that may wait; one more is answered 503.
    pub queue: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_batch: 64,
            max_delay_us: 2000,
            queue: 256,
        }
    }
}

/// One line of `deployments.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub time: String,
    pub model: Name,
    /// The version that served before (none for a first deploy).
    pub from: Option<u32>,
    pub to: u32,
    pub action: Action,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub batching: Batching,
    /// Who signed the version switched to, when a trusted key did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<Name>,
    /// What the gates measured before the switch (none for a rollback or a restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<GateReport>,
    /// The canary's candidate (`canary` and `abort` entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<u32>,
}

/// `kiln deploy m@v --canary 10% [--for 5m | --requests N]`, or `--shadow [--for …]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CanarySpec {
    /// Share of live requests the candidate answers, in percent (0–100, exclusive); 100 for a
    /// shadow, which gets a copy of every request.
    pub percent: f64,
    /// A shadow: the candidate answers copies, which are compared and discarded; it is
    /// never promoted by itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    /// Promote after this many seconds…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// …or once the candidate has answered this many requests (default: 5 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
}

/// A canary in progress, as `GET /api/v1/canaries` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryView {
    pub model: Name,
    /// The version in force, answering the rest.
    pub stable: u32,
    pub candidate: u32,
    pub percent: f64,
    pub since: String,
    /// Requests and errors since the canary started, per side.
    pub stable_requests: u64,
    pub stable_errors: u64,
    pub candidate_requests: u64,
    pub candidate_errors: u64,
    pub stable_p99_ms: Option<f64>,
    pub candidate_p99_ms: Option<f64>,
    /// 0–1: how far to promotion (a shadow: to the end of its window).
    pub progress: f64,
    /// A shadow: the candidate answers copies only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    /// A shadow's rows answered by both versions, and those they answered differently (a
    /// different class, or ratings 0.5 or more apart).
    #[serde(default)]
    pub compared: u64,
    #[serde(default)]
    pub disagreements: u64,
    /// A shadow's copies not made because the candidate's queue was full (live traffic
    /// never waits for the shadow).
    #[serde(default)]
    pub skipped: u64,
}

impl CanaryView {
    /// A shadow's disagreement rate (0–1), once it has compared rows.
    pub fn disagreement(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.disagreements as f64 / self.compared as f64)
    }
}

/// How long a canary runs, or a shadow copies, with neither `--for` nor `--requests`.
pub const CANARY_SECONDS: u64 = 300;

/// A candidate whose error rate is worse than the version in force's by more than this
/// (points of percent) is rolled back…
pub const CANARY_ERROR_POINTS: f64 = 1.0;
/// …or whose p99 is more than this multiple of the version in force's…
pub const CANARY_P99_LIMIT: f64 = 1.5;
/// …once it has answered at least this many requests.
pub const CANARY_MIN_REQUESTS: u64 = 20;

/// Rows of the candidate's test split both versions answer in the golden check.
pub const GOLDEN_SAMPLES: usize = 1000;
/// How many points of accuracy or macro-F1 (percent of RMSE for ratings) a candidate may lose
/// against the version in force.
pub const GOLDEN_TOLERANCE_PT: f64 = 1.0;
/// Most a candidate's p99 latency at batch 1 may be, as a multiple of the version in force's.
pub const LATENCY_LIMIT: f64 = 1.25;

/// What the gates before a switch found: the golden check (both versions answer the same
/// rows of the candidate's test split) and the latency check (p99 at batch 1, measured the
/// same way for both). A failed check refuses the switch unless it is forced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub checks: Vec<GateCheck>,
    /// The data the golden check used, e.g. `fashion-mnist test`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    pub rows: usize,
    pub candidate: GateFigures,
    /// The version in force (none on a first deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<GateFigures>,
    /// Share of rows on which both versions give the same class (ratings: within 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// A failed check was overridden (`--force`).
    #[serde(default)]
    pub forced: bool,
    /// Time the gates took.
    pub seconds: f64,
}

/// One version's figures in a gate report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateFigures {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// p99 latency of one-row forward passes, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateCheck {
    /// `golden` or `latency`.
    pub name: String,
    pub outcome: GateOutcome,
    /// The figures behind the outcome, or why it was skipped.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateOutcome {
    Passed,
    Failed,
    Skipped,
}

impl GateOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

impl GateReport {
    /// The checks that failed.
    pub fn failed(&self) -> impl Iterator<Item = &GateCheck> {
        self.checks.iter().filter(|c| c.outcome == GateOutcome::Failed)
    }

    /// One line per check: `golden passed: accuracy 0.812 vs 0.809 in force (+0.3 pt) …`.
    pub fn summary(&self) -> String {
        let mut lines: Vec<String> = self
            .checks
            .iter()
            .map(|c| {
                let outcome = match c.outcome {
                    GateOutcome::Failed => "FAILED",
                    other => other.as_str(),
                };
                format!("{} {outcome}: {}", c.name, c.detail)
            })
            .collect();
        if self.forced {
            lines.push("forced past the failed gate(s)".into());
        }
        lines.join("\n")
    }
}

/// Live figures of one deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStats {
    pub requests: u64,
    pub errors: u64,
    /// Requests per second over the last 10 seconds.
    pub req_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub queue_depth: usize,
}

/// A deployment in force, as `GET /api/v1/deployments` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentView {
    pub model: Name,
    pub version: u32,
    pub since: String,
    pub batching: Batching,
    pub stats: DeploymentStats,
}

pub fn journal_path(home: &Path) -> PathBuf {
    home.join("deployments.jsonl")
}

/// Appends one entry and syncs it to disk before returning. A line torn by an earlier crash
/// is ended first, so it cannot swallow this one.
pub fn append(home: &Path, entry: &JournalEntry) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(journal_path(home))?;
    if file.metadata()?.len() > 0 {
        let mut last = [0u8];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.insert(0, b'\n');
        }
    }
    file.write_all(&line)?;
    file.sync_data()
}

/// Every readable entry, oldest first, and a note for each line that is not (a crash can cut
/// the last line short; it is skipped, never fatal).
pub fn read(home: &Path) -> io::Result<(Vec<JournalEntry>, Vec<String>)> {
    let text = match fs::read_to_string(journal_path(home)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e),
    };
    let (mut entries, mut problems) = (Vec::new(), Vec::new());
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(entry) => entries.push(entry),
            Err(e) => problems.push(format!(
                "{} line {}: {e}; skipped",
                journal_path(home).display(),
                number + 1
            )),
        }
    }
    Ok((entries, problems))
}

/// The entry in force per model: the last one.
pub fn in_force(entries: &[JournalEntry]) -> BTreeMap<Name, JournalEntry> {
    entries.iter().map(|e| (e.model.clone(), e.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(model: &str, from: Option<u32>, to: u32) -> JournalEntry {
        JournalEntry {
            signer: None,
            gates: None,
            candidate: None,
            time: "2026-01-01T00:00:00Z".into(),
            model: Name::new(model).expect("name"),
            from,
            to,
            action: Action::Deploy,
            reason: String::new(),
            batching: Batching::default(),
        }
    }

    #[test]
    fn the_last_entry_per_model_is_in_force_and_a_torn_line_is_skipped() {
        let home = tempfile::tempdir().expect("tempdir");
        append(home.path(), &entry("a", None, 1)).expect("append");
        append(home.path(), &entry("b", None, 4)).expect("append");
        append(home.path(), &entry("a", Some(1), 2)).expect("append");
        let mut file = OpenOptions::new()
            .append(true)
            .open(journal_path(home.path()))
            .expect("open");
        file.write_all(br#"{"time": "2026"#).expect("torn write");
        append(home.path(), &entry("b", Some(4), 5)).expect("append after a torn line");
        let (entries, problems) = read(home.path()).expect("read");
        assert_eq!(entries.len(), 4);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let force = in_force(&entries);
        assert_eq!(force[&Name::new("a").expect("name")].to, 2);
        assert_eq!(force[&Name::new("b").expect("name")].to, 5);
    }
}
