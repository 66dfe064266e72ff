//! Hyperparameter studies (`kiln tune`): the spec, the trials, the samplers that propose
//! parameters and the early-stopping rules that end poor trials — all UI-free and
//! deterministic, so the daemon runs them and every client reads the same records.
//!
//! ```text
//! $KILN_HOME/studies/<name>/study.toml   the spec as the operator wrote it, written once
//! $KILN_HOME/studies/<name>/state.json   the StudyRecord (spec, trials), replaced atomically
//! ```
//!
//! A study's trials are ordinary jobs whose [`TrainRequest`](crate::jobs::TrainRequest)
//! carries a [`TrialTag`]; the tag, not the study file, is what ties a job to its trial, so a
//! daemon killed between writing one and the other never runs a trial twice.

pub mod prune;
pub mod rng;
pub mod sampler;
pub mod spec;
pub mod state;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::jobs::MetricRecord;
use crate::names::Name;

pub use spec::{Budget, EarlyStop, ParamDef, ParamSpace, SamplerKind, SpecError, StudySpec};
pub use state::{PrunedAt, StudyRecord, StudyState, Trial, TrialState};

/// One trial's parameters: parameter name (`lr`, `config.hidden`) → value.
pub type Params = BTreeMap<String, serde_json::Value>;

/// A parameter value as the console and the CLI show it: floats to 3 significant digits (scientific
/// below 0.01), lists joined with commas, strings as they are.
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(String::new, sig3),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(","),
        serde_json::Value::Null => "–".to_owned(),
        other => other.to_string(),
    }
}

/// `3.16e-4`, `0.0123`, `0.5`, `12.5`, `2e5`.
fn sig3(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(0.01..1e5).contains(&a) {
        let text = format!("{v:.2e}");
        return match text.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa)),
            None => text,
        };
    }
    let decimals = if a == 0.0 {
        0
    } else {
        (2 - a.log10().floor() as i32).max(0) as usize
    };
    trim_zeros(&format!("{v:.decimals$}")).to_owned()
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// The validation figure a study optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum ObjectiveMetric {
    /// Validation accuracy of a classifier.
    ValAccuracy,
    /// Validation RMSE of the rating regressor (`mf`).
    ValRmse,
    /// Validation loss (any architecture).
    ValLoss,
}
crate::kinds::word_enum!(ObjectiveMetric, "objective metric");

impl ObjectiveMetric {
    /// The figure in an epoch's validation record, if it has it.
    pub fn of(self, record: &MetricRecord) -> Option<f64> {
        let value = match self {
            Self::ValAccuracy => record.accuracy,
            Self::ValRmse => record.rmse,
            Self::ValLoss => record.val_loss,
        };
        value.filter(|v| v.is_finite())
    }
}

/// Whether bigger or smaller is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}
crate::kinds::word_enum!(Direction, "direction");

/// What a study optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    pub metric: ObjectiveMetric,
    pub direction: Direction,
}

impl Objective {
    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self.direction {
            Direction::Maximize => a > b,
            Direction::Minimize => a < b,
        }
    }

    /// The best of `values`, with its index.
    pub fn best(self, values: impl IntoIterator<Item = f64>) -> Option<(usize, f64)> {
        values
            .into_iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .fold(None, |best, (i, v)| match best {
                Some((_, b)) if !self.better(v, b) => best,
                _ => Some((i, v)),
            })
    }

    /// `value` turned into a loss (smaller is better), for samplers and pruners.
    pub fn as_loss(self, value: f64) -> f64 {
        match self.direction {
            Direction::Maximize => -value,
            Direction::Minimize => value,
        }
    }
}

/// What ties a training job to its study: set by the daemon on every trial's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialTag {
    pub study: Name,
    pub trial: u32,
    /// 1 for the first run, 2 for the retry after a crash.
    pub attempt: u32,
    /// The figure whose best epoch the worker keeps as the trial's best checkpoint.
    pub objective: Objective,
}

/// What the worker of a trial leaves in `checkpoints/best.json` beside `best.safetensors`:
/// the epoch whose weights those are and everything a promotion needs to register them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestCheckpoint {
    /// 1-based epoch.
    pub epoch: usize,
    pub value: f64,
    /// The version draft the worker would have registered from these weights (its `blobs`
    /// hold no weights: promotion stores them).
    pub draft: crate::registry::VersionDraft,
    /// Class names and the vocabulary, stored as blobs when promoted.
    pub classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<serde_json::Value>,
    /// What `models/<m>/model.json` records when the model is new.
    pub task: String,
    pub description: String,
}

/// Where a promoted version came from: recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyLink {
    pub study: Name,
    pub trial: u32,
    pub params: Params,
    /// The trial's job whose checkpoint became the version.
    pub job: String,
    pub epoch: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_values_are_compact() {
        assert_eq!(value_text(&serde_json::json!(0.000316227)), "3.16e-4");
        assert_eq!(value_text(&serde_json::json!(0.0123456)), "0.0123");
        assert_eq!(value_text(&serde_json::json!(0.5)), "0.5");
        assert_eq!(value_text(&serde_json::json!(12.345)), "12.3");
        assert_eq!(value_text(&serde_json::json!(1e-4)), "1e-4");
        assert_eq!(value_text(&serde_json::json!(64)), "64");
        assert_eq!(value_text(&serde_json::json!("adamw")), "adamw");
        assert_eq!(value_text(&serde_json::json!([256, 128])), "256,128");
    }
}
