//! The contexts screen's data: this box (`local`) and every `[contexts.NAME]` of config.toml,
//! each with its latest survey ([`ContextStatus`]), and which row is selected. The same list
//! checks the name of `:ctx NAME`.
//!
//! The list is read by the loop (config.toml at start-up, and again on every refresh of the
//! contexts screen), never here: this is state, not I/O.

use kiln_core::context::{ContextStatus, LOCAL};

/// One context as config.toml names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    pub name: String,
    /// What follows `ssh` (`None` for this box).
    pub ssh: Option<String>,
}

impl ContextEntry {
    /// This box's own kilnd.
    pub fn local() -> Self {
        Self {
            name: LOCAL.to_owned(),
            ssh: None,
        }
    }
}

/// One row of the contexts screen.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextRow {
    pub entry: ContextEntry,
    /// `None` until its first survey answers.
    pub status: Option<ContextStatus>,
}

/// Everything the contexts screen shows.
#[derive(Debug, Clone)]
pub struct ContextsState {
    /// `local` first, then config.toml's contexts by name.
    pub rows: Vec<ContextRow>,
    pub selected: usize,
    /// Why config.toml's contexts could not be read (the rows are the last ones read).
    pub problem: Option<String>,
}

impl Default for ContextsState {
    fn default() -> Self {
        Self {
            rows: vec![ContextRow {
                entry: ContextEntry::local(),
                status: None,
            }],
            selected: 0,
            problem: None,
        }
    }
}

impl ContextsState {
    /// Takes the contexts config.toml names now (or why it could not be read); each survey
    /// already shown stays until the next one answers.
    pub fn set_entries(&mut self, listed: Result<Vec<ContextEntry>, String>) {
        let entries = match listed {
            Ok(entries) => {
                self.problem = None;
                entries
            }
            Err(problem) => {
                self.problem = Some(problem);
                return;
            }
        };
        let mut old = std::mem::take(&mut self.rows);
        self.rows = std::iter::once(ContextEntry::local())
            .chain(entries.into_iter().filter(|e| e.name != LOCAL))
            .map(|entry| {
                let status = old
                    .iter_mut()
                    .find(|r| r.entry.name == entry.name)
                    .and_then(|r| r.status.take());
                ContextRow { entry, status }
            })
            .collect();
        self.selected = self.selected.min(self.rows.len().saturating_sub(1));
    }

    /// One context's survey answered.
    pub fn set_status(&mut self, status: ContextStatus) {
        if let Some(row) = self.rows.iter_mut().find(|r| r.entry.name == status.name) {
            row.status = Some(status);
        }
    }

    /// Every context's name, `local` first.
    pub fn names(&self) -> Vec<&str> {
        self.rows.iter().map(|r| r.entry.name.as_str()).collect()
    }

    /// Whether `name` is a context of the list.
    pub fn knows(&self, name: &str) -> bool {
        self.rows.iter().any(|r| r.entry.name == name)
    }

    /// The selected row.
    pub fn current(&self) -> Option<&ContextRow> {
        self.rows.get(self.selected)
    }

    pub fn move_selection(&mut self, delta: isize) {
        let n = self.rows.len();
        self.selected = (self.selected as isize + delta).clamp(0, n.saturating_sub(1) as isize) as usize;
    }
}
