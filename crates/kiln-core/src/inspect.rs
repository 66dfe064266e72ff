//! Model debugging: what an evaluation keeps per test row (so a confusion-matrix cell can be
//! opened onto its samples), calibration, the sample views `kiln inspect` and the console show,
//! and the per-layer statistics a training job records while it runs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::kinds::DataSource;

/// Classes kept per row, most probable first.
pub const TOP_K: usize = 3;

/// Every row an evaluation scored, stored as a zstd-compressed JSON blob whose digest the
/// report's `predictions` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    /// Where the rows come from, so a row can be read again and shown as the model saw it.
    pub data: DataSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_path: Option<PathBuf>,
    pub seed: u64,
    /// `test` or `validation`.
    pub split: String,
    /// Class names (empty for ratings).
    #[serde(default)]
    pub classes: Vec<String>,
    /// A fingerprint of the rows scored (their targets and a sample of their inputs): two
    /// evaluations with the same one scored the same rows.
    #[serde(default)]
    pub fingerprint: String,
    pub rows: Vec<RowPrediction>,
}

/// One row: the split's row index, the true and predicted class (or rating), the top classes
/// with their probabilities, and the loss (cross-entropy; for ratings, the residual
/// prediction − truth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowPrediction {
    #[serde(rename = "i")]
    pub index: u32,
    #[serde(rename = "y")]
    pub label: f32,
    #[serde(rename = "p")]
    pub prediction: f32,
    /// `(class, probability)`, most probable first ([`TOP_K`] of them; empty for ratings).
    #[serde(rename = "top", default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<(u16, f32)>,
    #[serde(rename = "l")]
    pub loss: f32,
}

impl RowPrediction {
    /// The probability of the predicted class (1 for ratings).
    pub fn confidence(&self) -> f32 {
        self.top.first().map_or(1.0, |(_, p)| *p)
    }
}

/// Expected calibration error and the reliability diagram it is computed from: rows binned
/// by their confidence, each bin's mean confidence against its accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Σ (bin rows / rows) · |accuracy − confidence|, over [`CALIBRATION_BINS`] equal bins.
    pub ece: f64,
    pub bins: Vec<ReliabilityBin>,
}

/// Equal-width confidence bins of the reliability diagram.
pub const CALIBRATION_BINS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub rows: usize,
    /// Mean confidence and accuracy of its rows (0 when empty).
    pub confidence: f64,
    pub accuracy: f64,
}

/// `GET /models/{m}/versions/{v}/inspect`: which samples of the version's latest evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InspectQuery {
    /// `TRUE,PRED`: the rows of one confusion-matrix cell (class indexes or names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
    /// The N rows of highest loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst: Option<usize>,
    /// The rows where version `disagree` (of the same model, evaluated on the same split)
    /// predicts otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disagree: Option<u32>,
    /// `confidence` (most confident first, the default) or `loss` (highest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<SampleOrder>,
    /// At most this many samples (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// How inspected samples are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SampleOrder {
    Confidence,
    Loss,
}
crate::kinds::word_enum!(SampleOrder, "sample order");

/// The samples an inspection found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    pub model: crate::names::Name,
    pub version: u32,
    pub dataset: String,
    pub split: String,
    #[serde(default)]
    pub classes: Vec<String>,
    /// Rows matching before `limit`.
    pub total: usize,
    pub samples: Vec<SampleView>,
}

/// One inspected row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleView {
    pub index: u32,
    /// Class names, or ratings as text.
    pub label: String,
    pub prediction: String,
    pub confidence: f32,
    pub loss: f32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<TopClass>,
    /// With `disagree`: the other version's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<OtherAnswer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopClass {
    pub class: String,
    pub probability: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherAnswer {
    pub version: u32,
    pub prediction: String,
    pub confidence: f32,
}

/// `GET /models/{m}/versions/{v}/samples/{index}`: one row of the evaluated split as the
/// model saw it, with the version's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleDetail {
    pub sample: SampleView,
    pub input: SampleInput,
}

/// A row's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SampleInput {
    /// Pixels in 0–1, channel-major.
    Image {
        channels: usize,
        height: usize,
        width: usize,
        pixels: Vec<f32>,
    },
    /// The quote, word by word, each marked when it is in the version's vocabulary.
    Text { text: String, words: Vec<Word> },
    /// A rating: the user's other ratings in the split (item, rating).
    Rating {
        user: u32,
        item: u32,
        rating: f32,
        others: Vec<(u32, f32)>,
    },
    /// Numeric features (CSV).
    Features { values: Vec<f32> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub text: String,
    pub known: bool,
}

/// One layer's statistics over the last window (about a second) of training, in a `layers`
/// metric record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    /// The layer, as the module tree names it (`conv1`, `fc2`, `lstm`, …).
    pub name: String,
    /// L2 norm of its weights.
    pub weight_norm: f64,
    /// L2 norm of its weights' gradient at the window's last step.
    pub grad_norm: f64,
    /// ‖Δw‖ / ‖w‖ of the window's last step (healthy training: around 1e-3).
    pub update_ratio: f64,
    /// For a layer followed by ReLU: the share of its units that never fired in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead: Option<f64>,
}

/// What is wrong with a layer, judged from its statistics so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerHealth {
    Ok,
    /// Its gradient norm is above [`EXPLODING_GRAD`], or grew [`EXPLODING_GROWTH`]× over its
    /// first recorded value.
    Exploding,
    /// Its gradient norm is below [`VANISHING_GRAD`] × its weight norm.
    Vanishing,
    /// At least [`DEAD_SHARE`] of its units never fired in the last window.
    Dead,
}

pub const EXPLODING_GRAD: f64 = 1e3;
pub const EXPLODING_GROWTH: f64 = 100.0;
pub const VANISHING_GRAD: f64 = 1e-7;
pub const DEAD_SHARE: f64 = 0.5;

impl LayerHealth {
    /// The health of a layer from its first and latest statistics.
    pub fn of(first: &LayerStats, latest: &LayerStats) -> Self {
        let grad = latest.grad_norm;
        if !grad.is_finite()
            || grad > EXPLODING_GRAD
            || (first.grad_norm > 0.0 && grad > first.grad_norm * EXPLODING_GROWTH)
        {
            Self::Exploding
        } else if grad < VANISHING_GRAD * latest.weight_norm.max(1.0) {
            Self::Vanishing
        } else if latest.dead.is_some_and(|d| d >= DEAD_SHARE) {
            Self::Dead
        } else {
            Self::Ok
        }
    }
}
