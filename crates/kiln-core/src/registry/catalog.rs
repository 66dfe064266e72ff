//! An in-memory index of every version, built once from a scan and filtered per keystroke.
//!
//! Filtering never touches the disk: each row keeps a lowercase haystack, and a query's
//! whitespace-separated terms must all occur in it (`cnn prod` finds cnn versions that
//! carry the `production` alias).

use serde::{Deserialize, Serialize};

use super::Listing;
use crate::kinds::Arch;
use crate::names::Name;

/// One version as the console and `kiln models ls --versions` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRow {
    pub model: Name,
    pub version: u32,
    pub architecture: Arch,
    pub dataset: Option<String>,
    pub aliases: Vec<String>,
    pub created_at: String,
    /// The headline metric (accuracy, else RMSE, else the first), when any.
    pub metric: Option<(String, f64)>,
    #[serde(skip)]
    haystack: String,
}

/// Every version of every model, newest model versions last.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    rows: Vec<VersionRow>,
}

impl Catalog {
    /// Builds rows from a registry scan.
    pub fn from_listing(listing: &Listing) -> Self {
        let mut rows = Vec::with_capacity(listing.models.iter().map(|m| m.versions.len()).sum());
        for model in &listing.models {
            for v in &model.versions {
                let aliases: Vec<String> = model.aliases_of(v.version).iter().map(|a| a.to_string()).collect();
                let dataset = v.draft.dataset.as_ref().map(|d| d.id.clone());
                let haystack = format!(
                    "{}@{} {} {} {} {}",
                    v.model,
                    v.version,
                    v.draft.architecture.name,
                    dataset.as_deref().unwrap_or(""),
                    aliases.join(" "),
                    model.record.task,
                )
                .to_lowercase();
                rows.push(VersionRow {
                    model: v.model.clone(),
                    version: v.version,
                    architecture: v.draft.architecture.name,
                    dataset,
                    aliases,
                    created_at: v.created_at.clone(),
                    metric: headline_metric(&v.draft.metrics),
                    haystack,
                });
            }
        }
        Self { rows }
    }

    /// All rows.
    pub fn rows(&self) -> &[VersionRow] {
        &self.rows
    }

    /// Indices of the rows matching every term of `query` (case-insensitive substrings).
    pub fn filter(&self, query: &str) -> Vec<usize> {
        let query = query.to_lowercase();
        let terms: Vec<&str> = query.split_whitespace().collect();
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, row)| terms.iter().all(|t| row.haystack.contains(t)))
            .map(|(i, _)| i)
            .collect()
    }
}

fn headline_metric(metrics: &std::collections::BTreeMap<String, f64>) -> Option<(String, f64)> {
    ["accuracy", "val_accuracy", "rmse", "val_rmse"]
        .iter()
        .find_map(|k| metrics.get(*k).map(|v| ((*k).to_owned(), *v)))
        .or_else(|| metrics.iter().next().map(|(k, v)| (k.clone(), *v)))
}
