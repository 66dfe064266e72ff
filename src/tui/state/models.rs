//! The models screen's data and selection: the model list, every model's versions (fetched
//! once per registry change), a lowercase search index over all versions for `/` filtering,
//! version manifests with their evaluation reports, every version's signature status, the
//! compare mark, and the drill-down into an evaluation (the confusion-matrix cursor here, the
//! samples and the open sample in `inspect.rs`).
//!
//! Filtering never allocates per row beyond the result: each version keeps a prebuilt
//! haystack (`model@v arch dataset aliases task`, and `int8 of v3` for a compressed
//! version), and a query's whitespace-separated terms must all occur in it, as in
//! `kiln::registry::Catalog`.

use std::collections::HashMap;

use super::inspect::InspectState;
use crate::tui::request::Request;
use kiln_core::api::{EvalReport, ModelDetail, ModelList, ModelSummary, Signatures, VersionManifest, VersionView};
use kiln_core::names::{Digest, Name};
use kiln_core::registry::{Aliases, SignatureStatus};

/// The alias a deployment moves and the models table shows.
const PRODUCTION: &str = "production";

/// The version the `production` alias points at.
pub fn production(aliases: &Aliases) -> Option<u32> {
    aliases.iter().find(|(a, _)| a.as_str() == PRODUCTION).map(|(_, v)| *v)
}

/// Which pane has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelsFocus {
    #[default]
    Models,
    Versions,
    /// The detail pane, full width.
    Detail,
    /// The latest evaluation report, its confusion matrix under a cell cursor.
    Matrix,
    /// A samples list of the evaluation (a cell, the hardest, the disagreements).
    Samples,
    /// The sample open beside the list.
    Sample,
}

impl ModelsFocus {
    /// Whether the drill-down into an evaluation has the screen.
    pub fn drilled(self) -> bool {
        matches!(self, Self::Matrix | Self::Samples | Self::Sample)
    }
}

#[derive(Debug, Clone)]
struct IndexRow {
    model: usize,
    version: u32,
    haystack: String,
}

/// One model row that passes the filter, with its passing versions (newest first).
#[derive(Debug, Clone, PartialEq)]
pub struct Visible {
    pub model: usize,
    pub versions: Vec<u32>,
}

/// Everything the models screen shows.
#[derive(Debug, Clone, Default)]
pub struct ModelsState {
    /// `None` until the first answer.
    pub list: Option<ModelList>,
    pub details: HashMap<Name, ModelDetail>,
    pub versions: HashMap<(Name, u32), VersionView>,
    pub reports: HashMap<Digest, EvalReport>,
    /// The daemon does not serve report blobs (`/api/v1/blobs/…` answered 404).
    pub reports_unavailable: bool,
    /// Every version's signature status, by `(model, version)`: `None` until the first
    /// answer (a kilnd without `/api/v1/signatures` never sends one). A failed refetch keeps
    /// the previous answer.
    pub signatures: Option<HashMap<(Name, u32), SignatureStatus>>,
    pub focus: ModelsFocus,
    pub filter: String,
    pub visible: Vec<Visible>,
    pub selected_model: usize,
    pub selected_version: usize,
    pub compare: Option<(Name, u32)>,
    /// The confusion-matrix cursor: (true class, predicted class).
    pub cell: (usize, usize),
    /// The drill-down: samples list and open sample.
    pub inspect: InspectState,
    /// Where esc from the samples list goes back to.
    pub samples_from: ModelsFocus,
    /// A version to select once its model's versions list it (one just registered).
    select_pending: Option<(Name, u32)>,
    index: Vec<IndexRow>,
}

impl ModelsState {
    /// Takes a fresh model list; returns the requests to send: every model's versions, and
    /// the signatures of them all (a version may have been signed or tampered with since).
    pub fn set_list(&mut self, list: ModelList) -> Vec<Request> {
        let names: Vec<Name> = list.models.iter().map(|m| m.name.clone()).collect();
        self.details.retain(|name, _| names.contains(name));
        // Evaluations may have been attached since: fetch versions again as they are viewed.
        self.versions.clear();
        self.list = Some(list);
        self.rebuild_index();
        let mut out: Vec<Request> = names.into_iter().map(Request::Model).collect();
        out.push(Request::Signatures);
        out
    }

    /// Takes every version's signature status, replacing the previous answer.
    pub fn set_signatures(&mut self, signatures: Signatures) {
        let by_version = signatures
            .versions
            .into_iter()
            .map(|s| ((s.model, s.version), s.status))
            .collect();
        self.signatures = Some(by_version);
    }

    /// A version's signature status, when kilnd has told it.
    pub fn signature(&self, model: &Name, version: u32) -> Option<&SignatureStatus> {
        self.signatures.as_ref()?.get(&(model.clone(), version))
    }

    /// Takes one model's versions.
    pub fn set_detail(&mut self, detail: ModelDetail) {
        self.details.insert(detail.record.name.clone(), detail);
        self.rebuild_index();
        if let Some((model, version)) = self.select_pending.clone()
            && self.select_version(&model, version)
        {
            self.select_pending = None;
        }
    }

    /// Selects `model@version` (in the versions pane) as soon as it is listed.
    pub fn select_when_listed(&mut self, model: Name, version: u32) {
        if !self.select_version(&model, version) {
            self.select_pending = Some((model, version));
        }
    }

    /// Selects `model@version` when it is visible; `false` when it is not (yet).
    fn select_version(&mut self, model: &Name, version: u32) -> bool {
        let rows = self.rows();
        let found = self.visible.iter().enumerate().find_map(|(i, v)| {
            let named = rows.get(v.model).is_some_and(|m| &m.name == model);
            let at = v.versions.iter().position(|n| *n == version);
            named.then_some(at.map(|at| (i, at))).flatten()
        });
        let Some((model_row, version_row)) = found else {
            return false;
        };
        self.selected_model = model_row;
        self.selected_version = version_row;
        if self.focus == ModelsFocus::Models {
            self.focus = ModelsFocus::Versions;
        }
        true
    }

    /// Forgets a model the daemon no longer knows.
    pub fn drop_detail(&mut self, model: &Name) {
        self.details.remove(model);
        self.rebuild_index();
    }

    /// Whether the registry is known to be empty (the first-run welcome shows then).
    pub fn is_empty_registry(&self) -> bool {
        self.list
            .as_ref()
            .is_some_and(|l| l.models.is_empty() && l.problems.is_empty())
    }

    /// The model rows, in list order.
    pub fn rows(&self) -> &[ModelSummary] {
        self.list.as_ref().map_or(&[], |l| l.models.as_slice())
    }

    fn rebuild_index(&mut self) {
        let mut index = Vec::new();
        for (i, row) in self.rows().iter().enumerate() {
            let base = format!("{} {}", row.name, row.task).to_lowercase();
            index.push(IndexRow {
                model: i,
                version: 0,
                haystack: base,
            });
            let Some(detail) = self.details.get(&row.name) else {
                continue;
            };
            for v in &detail.versions {
                index.push(IndexRow {
                    model: i,
                    version: v.version,
                    haystack: haystack(v, &detail.aliases, &row.task),
                });
            }
        }
        self.index = index;
        self.apply_filter();
    }

    /// Sets the filter and recomputes what is visible.
    pub fn set_filter(&mut self, filter: &str) {
        self.filter = filter.to_owned();
        self.apply_filter();
    }

    /// Recomputes `visible` from the index (the per-keystroke cost of `/`).
    pub fn apply_filter(&mut self) {
        let query = self.filter.to_lowercase();
        let terms: Vec<&str> = query.split_whitespace().collect();
        let mut visible: Vec<Visible> = Vec::new();
        for row in &self.index {
            let hit = terms.iter().all(|t| row.haystack.contains(t));
            let is_new_model = visible.last().is_none_or(|v| v.model != row.model);
            if row.version == 0 {
                if hit || terms.is_empty() {
                    visible.push(Visible {
                        model: row.model,
                        versions: Vec::new(),
                    });
                }
                continue;
            }
            if !hit {
                continue;
            }
            if is_new_model {
                visible.push(Visible {
                    model: row.model,
                    versions: Vec::new(),
                });
            }
            if let Some(last) = visible.last_mut() {
                last.versions.push(row.version);
            }
        }
        for v in &mut visible {
            v.versions.reverse();
        }
        self.visible = visible;
        self.clamp();
    }

    fn clamp(&mut self) {
        self.selected_model = self.selected_model.min(self.visible.len().saturating_sub(1));
        let n = self.visible.get(self.selected_model).map_or(0, |v| v.versions.len());
        self.selected_version = self.selected_version.min(n.saturating_sub(1));
    }

    /// The selected model's row.
    pub fn current_model(&self) -> Option<&ModelSummary> {
        self.rows().get(self.visible.get(self.selected_model)?.model)
    }

    /// The selected version as `(model, version)`.
    pub fn current_version(&self) -> Option<(Name, u32)> {
        let visible = self.visible.get(self.selected_model)?;
        let version = *visible.versions.get(self.selected_version)?;
        Some((self.rows().get(visible.model)?.name.clone(), version))
    }

    /// A manifest from the cached model details.
    pub fn manifest(&self, model: &Name, version: u32) -> Option<&VersionManifest> {
        self.details.get(model)?.versions.iter().find(|v| v.version == version)
    }

    /// Moves the selection in the focused pane by `delta` rows.
    pub fn move_selection(&mut self, delta: isize) {
        let step = |i: usize, n: usize| (i as isize + delta).clamp(0, n.saturating_sub(1) as isize) as usize;
        match self.focus {
            ModelsFocus::Models => {
                self.selected_model = step(self.selected_model, self.visible.len());
                self.selected_version = 0;
            }
            ModelsFocus::Versions | ModelsFocus::Detail | ModelsFocus::Matrix => {
                let n = self.visible.get(self.selected_model).map_or(0, |v| v.versions.len());
                self.selected_version = step(self.selected_version, n);
            }
            ModelsFocus::Samples | ModelsFocus::Sample => self.inspect.move_selection(delta),
        }
    }

    /// Moves the confusion-matrix cursor, staying inside a `classes`×`classes` matrix.
    pub fn move_cell(&mut self, rows: isize, columns: isize, classes: usize) {
        let step = |i: usize, d: isize| (i as isize + d).clamp(0, classes.saturating_sub(1) as isize) as usize;
        self.cell = (step(self.cell.0, rows), step(self.cell.1, columns));
    }

    /// What the selected version still needs fetched (its evals, then their reports).
    pub fn wanted(&self) -> Vec<Request> {
        let Some((model, version)) = self.current_version() else {
            return Vec::new();
        };
        let mut wanted = Vec::new();
        let mut versions = vec![(model, version)];
        if let Some(mark) = self.compare.clone() {
            versions.push(mark);
        }
        for (m, v) in versions {
            match self.versions.get(&(m.clone(), v)) {
                None => wanted.push(Request::Version(m, v)),
                Some(view) if !self.reports_unavailable => wanted.extend(
                    view.evals
                        .iter()
                        .filter(|e| !self.reports.contains_key(&e.report))
                        .map(|e| Request::Report(e.report.clone())),
                ),
                Some(_) => {}
            }
        }
        wanted
    }

    /// Toggles the compare mark on the selected version.
    pub fn toggle_compare(&mut self) -> Option<String> {
        let current = self.current_version()?;
        if self.compare.as_ref() == Some(&current) {
            self.compare = None;
            return Some("compare mark cleared".into());
        }
        let text = format!("marked {}@{} — select another version to compare", current.0, current.1);
        self.compare = Some(current);
        Some(text)
    }

    /// The best headline metric over a model's versions: highest accuracy, else lowest RMSE.
    pub fn best_metric(&self, model: &Name) -> Option<(String, f64)> {
        let detail = self.details.get(model)?;
        let best = |key: &str, higher: bool| {
            detail
                .versions
                .iter()
                .filter_map(|v| v.draft.metrics.get(key).copied())
                .reduce(|a, b| if (b > a) == higher { b } else { a })
                .map(|x| (key.to_owned(), x))
        };
        best("accuracy", true)
            .or_else(|| best("val_accuracy", true))
            .or_else(|| best("rmse", false))
            .or_else(|| best("val_rmse", false))
    }

    /// When the model last got a version.
    pub fn updated(&self, model: &Name) -> Option<&str> {
        Some(self.details.get(model)?.versions.last()?.created_at.as_str())
    }

    /// The parent chain of a version, nearest first (at most `limit` links).
    pub fn lineage(&self, model: &Name, version: u32, limit: usize) -> Vec<String> {
        let mut chain = Vec::new();
        let mut link = self.manifest(model, version).and_then(|m| m.draft.parent.clone());
        while let Some(parent) = link.take() {
            if chain.len() >= limit {
                chain.push("…".to_owned());
                break;
            }
            chain.push(format!("{}@{}", parent.model, parent.version));
            link = self
                .manifest(&parent.model, parent.version)
                .and_then(|m| m.draft.parent.clone());
        }
        chain
    }
}

fn haystack(v: &VersionManifest, aliases: &Aliases, task: &str) -> String {
    let tags: Vec<&str> = aliases
        .iter()
        .filter(|(_, n)| **n == v.version)
        .map(|(a, _)| a.as_str())
        .collect();
    let parent = v.draft.parent.as_ref().map(|p| p.version);
    let origin = v.draft.compression.as_ref().map(|c| c.summary(parent));
    format!(
        "{}@{} {} {} {} {} {}",
        v.model,
        v.version,
        v.draft.architecture.name,
        v.draft.dataset.as_ref().map_or("", |d| d.id.as_str()),
        tags.join(" "),
        task,
        origin.unwrap_or_default()
    )
    .to_lowercase()
}
