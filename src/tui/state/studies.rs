//! The studies screen's data: every study kilnd reports (kept sorted by name, each replaced
//! whole when a `study` event brings it again), which study and trial are selected, which
//! pane has the focus, and the order the trials table shows.
//!
//! The selected trial's loss curve is not kept here: a trial is an ordinary job, so its
//! metric records live with every other run in [`JobsState::runs`](super::jobs::JobsState).

use kiln_core::api::{StudyList, StudyView};
use kiln_core::jobs::JobId;
use kiln_core::names::Name;
use kiln_core::study::{Trial, TrialState};

/// Which pane the movement keys act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StudiesFocus {
    #[default]
    Studies,
    Trials,
}

/// The order of the trials table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrialSort {
    /// In the order trials were planned.
    #[default]
    Number,
    /// Best objective first (per the study's direction); trials without a value last.
    Best,
}

impl TrialSort {
    /// How the table title names the order.
    pub fn label(self) -> &'static str {
        match self {
            TrialSort::Number => "by number",
            TrialSort::Best => "best first",
        }
    }
}

/// Everything the studies screen shows.
#[derive(Debug, Clone, Default)]
pub struct StudiesState {
    /// `None` until the first answer; sorted by name.
    pub studies: Option<Vec<StudyView>>,
    /// Study folders kilnd could not read.
    pub problems: Vec<String>,
    pub selected: usize,
    /// Row of the trials table, in the table's order.
    pub trial: usize,
    pub focus: StudiesFocus,
    pub sort: TrialSort,
    /// The daemon has no studies route (404).
    pub unavailable: bool,
}

/// A trial's best objective value, if it was validated at all.
pub fn trial_best(study: &StudyView, trial: &Trial) -> Option<f64> {
    study.spec.objective.best(trial.values.iter().copied()).map(|(_, v)| v)
}

impl StudiesState {
    /// The studies in list order.
    pub fn rows(&self) -> &[StudyView] {
        self.studies.as_deref().unwrap_or_default()
    }

    /// The selected study.
    pub fn current(&self) -> Option<&StudyView> {
        self.rows().get(self.selected)
    }

    /// The selected study's trials in table order.
    pub fn trials(&self) -> Vec<&Trial> {
        let Some(study) = self.current() else {
            return Vec::new();
        };
        let mut trials: Vec<&Trial> = study.trials.iter().collect();
        if self.sort == TrialSort::Best {
            let objective = study.spec.objective;
            trials.sort_by(|a, b| match (trial_best(study, a), trial_best(study, b)) {
                (Some(x), Some(y)) if objective.better(x, y) => std::cmp::Ordering::Less,
                (Some(x), Some(y)) if objective.better(y, x) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                _ => a.number.cmp(&b.number),
            });
        }
        trials
    }

    /// The selected trial.
    pub fn current_trial(&self) -> Option<&Trial> {
        self.trials().get(self.trial).copied()
    }

    /// The job of the selected trial's latest attempt, and whether it may still grow.
    pub fn trial_job(&self) -> Option<(JobId, bool)> {
        let trial = self.current_trial()?;
        let active = matches!(trial.state, TrialState::Queued | TrialState::Running);
        Some((trial.job()?.clone(), active))
    }

    /// Replaces the list, keeping the selected study and trial where they still exist.
    pub fn set_list(&mut self, list: StudyList) {
        let keep = self.keep();
        let mut studies = list.studies;
        studies.sort_by(|a, b| a.name().cmp(b.name()));
        self.studies = Some(studies);
        self.problems = list.problems;
        self.unavailable = false;
        self.reselect(keep);
    }

    /// Replaces one study (by name), or adds it.
    pub fn upsert(&mut self, study: StudyView) {
        let keep = self.keep();
        let studies = self.studies.get_or_insert_with(Vec::new);
        match studies.iter_mut().find(|s| s.name() == study.name()) {
            Some(slot) => *slot = study,
            None => {
                studies.push(study);
                studies.sort_by(|a, b| a.name().cmp(b.name()));
            }
        }
        self.reselect(keep);
    }

    /// Selects the study called `name`, when listed.
    pub fn select_name(&mut self, name: &Name) {
        if let Some(i) = self.rows().iter().position(|s| s.name() == name) {
            if i != self.selected {
                self.trial = 0;
            }
            self.selected = i;
        }
    }

    /// Moves the selection of the focused pane.
    pub fn move_selection(&mut self, delta: isize) {
        let clamp = |at: usize, n: usize| (at as isize + delta).clamp(0, n.saturating_sub(1) as isize) as usize;
        match self.focus {
            StudiesFocus::Studies => {
                let next = clamp(self.selected, self.rows().len());
                if next != self.selected {
                    self.trial = 0;
                }
                self.selected = next;
            }
            StudiesFocus::Trials => self.trial = clamp(self.trial, self.trials().len()),
        }
    }

    /// Moves the focus to the other pane.
    pub fn toggle_focus(&mut self) {
        self.focus = match self.focus {
            StudiesFocus::Studies => StudiesFocus::Trials,
            StudiesFocus::Trials => StudiesFocus::Studies,
        };
    }

    /// Switches the trials' order, keeping the selected trial selected.
    pub fn toggle_sort(&mut self) -> &'static str {
        let keep = self.current_trial().map(|t| t.number);
        self.sort = match self.sort {
            TrialSort::Number => TrialSort::Best,
            TrialSort::Best => TrialSort::Number,
        };
        self.select_trial(keep);
        self.sort.label()
    }

    fn keep(&self) -> (Option<Name>, Option<u32>) {
        (
            self.current().map(|s| s.name().clone()),
            self.current_trial().map(|t| t.number),
        )
    }

    fn reselect(&mut self, (study, trial): (Option<Name>, Option<u32>)) {
        if let Some(name) = study {
            self.select_name(&name);
        }
        self.selected = self.selected.min(self.rows().len().saturating_sub(1));
        self.select_trial(trial);
    }

    fn select_trial(&mut self, number: Option<u32>) {
        let trials = self.trials();
        let found = number.and_then(|n| trials.iter().position(|t| t.number == n));
        let last = trials.len().saturating_sub(1);
        self.trial = found.unwrap_or(self.trial).min(last);
    }
}
