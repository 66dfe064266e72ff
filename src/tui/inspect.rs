//! The models screen's drill-down into an evaluation, as key handling for [`App`]:
//!
//! ```text
//! detail ─enter─▶ eval report ─enter─▶ samples of the cell ─enter─▶ the sample
//!                 (↑↓←→ move the       (s: by confidence ⇄ loss)    (↑↓: the next one)
//!                  cell cursor)
//! w: the hardest samples · v: where the version marked with m disagrees · esc: back a level
//! ```
//!
//! The state lives in `state/inspect.rs` (the lists and the open sample) and `state/models.rs`
//! (the focus and the cell cursor); the panes in `screens/eval.rs` and `screens/samples.rs`.

use super::action::{Action, Effect};
use super::app::App;
use super::state::inspect::SampleSet;
use super::state::models::ModelsFocus;
use kiln_core::api::EvalReport;
use kiln_core::names::Name;

/// Rows a page key moves the cell cursor or the samples list.
const PAGE: isize = 10;
/// What a report without stored predictions tells.
pub const NO_PREDICTIONS: &str =
    "this evaluation kept no per-row predictions: re-run `kiln eval` on the version to inspect its samples";

impl App {
    /// What the drill-down makes of an action on the models screen (`None`: its usual meaning).
    pub(super) fn apply_inspect_action(&mut self, action: Action) -> Option<Vec<Effect>> {
        let effects = match (self.models.focus, action) {
            (_, Action::Hardest) => self.open_samples(SampleSet::Hardest),
            (_, Action::Disagree) => self.open_disagreements(),
            (ModelsFocus::Detail, Action::Select) => self.open_eval(),
            (ModelsFocus::Matrix, _) => return self.on_matrix_action(action),
            (ModelsFocus::Samples | ModelsFocus::Sample, _) => return self.on_samples_action(action),
            _ => return None,
        };
        Some(effects)
    }

    /// The newest full report of `model@version`: fetched as a blob, or the result of an
    /// evaluation job still in the job list.
    pub fn report_of(&self, model: &Name, version: u32) -> Option<&EvalReport> {
        let view = self.models.versions.get(&(model.clone(), version));
        let from_blob = view.and_then(|v| v.evals.iter().rev().find_map(|e| self.models.reports.get(&e.report)));
        let from_jobs = || {
            self.jobs
                .jobs
                .iter()
                .flatten()
                .filter_map(|j| j.result.as_ref())
                .find(|r| r.model == model.as_str() && r.version == version)
        };
        from_blob.or_else(from_jobs)
    }

    /// The selected version's report, the one the eval view shows.
    pub fn current_report(&self) -> Option<&EvalReport> {
        let (model, version) = self.models.current_version()?;
        self.report_of(&model, version)
    }

    /// Enter on the detail pane: the eval report, its matrix under the cell cursor.
    fn open_eval(&mut self) -> Vec<Effect> {
        let Some((model, version)) = self.models.current_version() else {
            return Vec::new();
        };
        let Some(report) = self.report_of(&model, version) else {
            let evaluated = self
                .models
                .versions
                .get(&(model.clone(), version))
                .is_some_and(|v| !v.evals.is_empty());
            let key = self.keymap.hint(Action::NewEval);
            self.complain(if evaluated {
                format!("the report of {model}@{version} is still loading")
            } else {
                format!("{model}@{version} has no evaluation yet: {key} evaluates it")
            });
            return Vec::new();
        };
        let classes = report.confusion_matrix.len();
        self.models.move_cell(0, 0, classes);
        self.models.focus = ModelsFocus::Matrix;
        Vec::new()
    }

    fn on_matrix_action(&mut self, action: Action) -> Option<Vec<Effect>> {
        let classes = self.current_report().map_or(0, |r| r.confusion_matrix.len());
        let (rows, columns) = match action {
            Action::Up => (-1, 0),
            Action::Down => (1, 0),
            Action::PageUp => (-PAGE, 0),
            Action::PageDown => (PAGE, 0),
            Action::Top => (-(1 << 20), 0),
            Action::Bottom => (1 << 20, 0),
            Action::FocusPrev => (0, -1),
            Action::FocusNext => (0, 1),
            Action::Select => return Some(self.open_cell()),
            Action::Back => {
                self.models.focus = ModelsFocus::Detail;
                return Some(Vec::new());
            }
            _ => return None,
        };
        self.models.move_cell(rows, columns, classes);
        Some(Vec::new())
    }

    /// Enter on a matrix cell: its samples.
    fn open_cell(&mut self) -> Vec<Effect> {
        if self.current_report().is_none_or(|r| r.confusion_matrix.is_empty()) {
            let key = self.keymap.hint(Action::Hardest);
            self.complain(format!("no confusion matrix here: {key} lists the hardest samples"));
            return Vec::new();
        }
        let (truth, predicted) = self.models.cell;
        self.open_samples(SampleSet::Cell { truth, predicted })
    }

    /// `v`: the samples where the marked version and the selected one disagree.
    fn open_disagreements(&mut self) -> Vec<Effect> {
        let Some((model, version)) = self.models.current_version() else {
            return Vec::new();
        };
        let key = self.keymap.hint(Action::MarkCompare);
        match self.models.compare.clone() {
            Some((marked, other)) if marked == model && other != version => {
                self.open_samples(SampleSet::Disagree { other })
            }
            Some((marked, _)) if marked != model => {
                self.complain(format!(
                    "{marked} is marked: mark ({key}) a version of {model} to list where it disagrees with v{version}"
                ));
                Vec::new()
            }
            _ => {
                self.complain(format!(
                    "mark a version with {key}, then select another version of the model to list where they disagree"
                ));
                Vec::new()
            }
        }
    }

    /// Opens a samples list of the selected version, refusing at once when its report is
    /// known to have kept no predictions.
    fn open_samples(&mut self, set: SampleSet) -> Vec<Effect> {
        let Some((model, version)) = self.models.current_version() else {
            self.complain("no version selected");
            return Vec::new();
        };
        if self.report_of(&model, version).is_some_and(|r| r.predictions.is_none()) {
            self.complain(NO_PREDICTIONS);
            return Vec::new();
        }
        let focus = self.models.focus;
        if !matches!(focus, ModelsFocus::Samples | ModelsFocus::Sample) {
            self.models.samples_from = focus;
        }
        self.models.focus = ModelsFocus::Samples;
        vec![Effect::Request(self.models.inspect.open(model, version, set))]
    }

    fn on_samples_action(&mut self, action: Action) -> Option<Vec<Effect>> {
        let in_sample = self.models.focus == ModelsFocus::Sample;
        let delta = match action {
            Action::Up => -1,
            Action::Down => 1,
            Action::PageUp => -PAGE,
            Action::PageDown => PAGE,
            Action::Top => -(1 << 20),
            Action::Bottom => 1 << 20,
            Action::Select | Action::FocusNext => return Some(self.open_sample()),
            Action::FocusPrev if in_sample => {
                self.models.focus = ModelsFocus::Samples;
                return Some(Vec::new());
            }
            Action::ToggleSmoothing => return Some(self.toggle_sample_order()),
            Action::Back => {
                self.samples_back();
                return Some(Vec::new());
            }
            _ => return None,
        };
        self.models.inspect.move_selection(delta);
        // Moving in the sample pane browses: the next sample opens at once.
        Some(if in_sample { self.open_sample() } else { Vec::new() })
    }

    fn open_sample(&mut self) -> Vec<Effect> {
        let open = self.models.inspect.sample.as_ref().map(|s| s.index);
        let selected = self.models.inspect.selected().map(|s| s.index);
        if selected.is_none() {
            return Vec::new();
        }
        self.models.focus = ModelsFocus::Sample;
        if open == selected {
            return Vec::new();
        }
        self.models
            .inspect
            .open_sample()
            .map(Effect::Request)
            .into_iter()
            .collect()
    }

    fn toggle_sample_order(&mut self) -> Vec<Effect> {
        let Some((order, request)) = self.models.inspect.toggle_order() else {
            return Vec::new();
        };
        self.say(format!("samples by {order}"));
        vec![Effect::Request(request)]
    }

    fn samples_back(&mut self) {
        if self.models.focus == ModelsFocus::Sample {
            self.models.focus = ModelsFocus::Samples;
            return;
        }
        self.models.inspect.close();
        self.models.focus = self.models.samples_from;
    }
}
