//! The serving screen's data: deployments with live stats, canaries in progress, the recent
//! journal, the last test-request result.

use std::collections::VecDeque;

use kiln_core::api::{DeploymentView, Deployments, JournalEntry, TryResult};
use kiln_core::deploy::CanaryView;
use kiln_core::names::Name;

/// Journal entries kept.
pub const JOURNAL: usize = 100;

/// Everything the serving screen shows.
#[derive(Debug, Clone, Default)]
pub struct ServingState {
    /// `None` until the first answer.
    pub deployments: Option<Deployments>,
    /// Newest first.
    pub journal: VecDeque<JournalEntry>,
    pub selected: usize,
    /// The daemon has no deployments route (404): serving is not available.
    pub unavailable: bool,
    /// What the last test request brought back.
    pub tried: Option<TryResult>,
    /// Next dataset sample to send.
    pub next_sample: usize,
    /// A deployments request is on its way (the 1 Hz refresh skips a tick then).
    pub fetching: bool,
    /// Canaries in progress, as last fetched (a failed fetch keeps the previous list).
    pub canaries: Vec<CanaryView>,
    /// The last canary this console started, `(model, candidate, percent)`: the journal
    /// entry that reports it does not carry the share.
    pub sent_canary: Option<(Name, u32, f64)>,
}

impl ServingState {
    /// Takes a fresh deployment list.
    pub fn set(&mut self, deployments: Deployments) {
        self.unavailable = false;
        self.deployments = Some(deployments);
        let n = self.rows().len();
        self.selected = self.selected.min(n.saturating_sub(1));
    }

    /// Takes a fresh journal (newest last on the wire).
    pub fn set_journal(&mut self, entries: Vec<JournalEntry>) {
        self.journal = entries.into_iter().rev().take(JOURNAL).collect();
    }

    /// Records one new journal entry.
    pub fn push_entry(&mut self, entry: JournalEntry) {
        if self.journal.front() == Some(&entry) {
            return;
        }
        self.journal.push_front(entry);
        self.journal.truncate(JOURNAL);
    }

    /// The deployments, in the daemon's order.
    pub fn rows(&self) -> &[DeploymentView] {
        self.deployments.as_ref().map_or(&[], |d| d.deployments.as_slice())
    }

    /// The selected deployment.
    pub fn current(&self) -> Option<&DeploymentView> {
        self.rows().get(self.selected)
    }

    /// Moves the selection.
    pub fn move_selection(&mut self, delta: isize) {
        let n = self.rows().len();
        self.selected = (self.selected as isize + delta).clamp(0, n.saturating_sub(1) as isize) as usize;
    }

    /// The canary of `model`, if one runs.
    pub fn canary(&self, model: &Name) -> Option<&CanaryView> {
        self.canaries.iter().find(|c| &c.model == model)
    }

    /// The canary of the selected deployment's model, if one runs.
    pub fn current_canary(&self) -> Option<&CanaryView> {
        self.current().and_then(|d| self.canary(&d.model))
    }

    /// The share of requests of the canary of `model@candidate` this console started.
    pub fn sent_percent(&self, model: &Name, candidate: u32) -> Option<f64> {
        self.sent_canary
            .as_ref()
            .filter(|(m, c, _)| m == model && *c == candidate)
            .map(|(_, _, p)| *p)
    }

    /// The version `model` ran before its current one, from the journal.
    pub fn previous_version(&self, model: &Name) -> Option<u32> {
        self.journal.iter().find(|e| &e.model == model).and_then(|e| e.from)
    }
}
