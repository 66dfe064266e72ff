//! Evaluation reports: what `kiln eval` prints and stores as a blob attached to a version.
//! Computed by kilnd's engine; read by the CLI and the console.

use serde::{Deserialize, Serialize};

/// One class's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// The evaluation report (stored as a blob and printed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub model: String,
    pub version: u32,
    pub dataset: String,
    pub split: String,
    pub rows: usize,
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<ClassScore>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confusion_matrix: Vec<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    pub mean_latency_ms_per_sample: f64,
    pub created_at: String,
    /// Expected calibration error and the reliability diagram (classifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::inspect::Calibration>,
    /// The blob of every row's prediction ([`crate::inspect::Predictions`], zstd JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<crate::names::Digest>,
}

impl EvalReport {
    /// The report as a plain-text table.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{}@{} on {} ({} split, {} rows)\n",
            self.model, self.version, self.dataset, self.split, self.rows
        );
        if let (Some(acc), Some(f1)) = (self.accuracy, self.macro_f1) {
            out.push_str(&format!("accuracy {acc:.4}   macro-F1 {f1:.4}\n\n"));
            out.push_str(&format!(
                "{:<16} {:>9} {:>9} {:>9} {:>8}\n",
                "class", "precision", "recall", "f1", "support"
            ));
            for c in &self.per_class {
                out.push_str(&format!(
                    "{:<16} {:>9.4} {:>9.4} {:>9.4} {:>8}\n",
                    c.class, c.precision, c.recall, c.f1, c.support
                ));
            }
            out.push_str("\nconfusion matrix (rows: true class, columns: predicted)\n");
            for row in &self.confusion_matrix {
                out.push_str(&row.iter().map(|v| format!("{v:>6}")).collect::<String>());
                out.push('\n');
            }
        }
        if let Some(calibration) = &self.calibration {
            out.push_str(&format!(
                "\nexpected calibration error {:.4} (confidence bins: rows, mean confidence → accuracy)\n",
                calibration.ece
            ));
            for bin in calibration.bins.iter().filter(|b| b.rows > 0) {
                out.push_str(&format!(
                    "  {:.1}–{:.1} {:>7}  {:.3} → {:.3}\n",
                    bin.lower, bin.upper, bin.rows, bin.confidence, bin.accuracy
                ));
            }
        }
        if let (Some(rmse), Some(mae)) = (self.rmse, self.mae) {
            out.push_str(&format!("rmse {rmse:.4}   mae {mae:.4}\n"));
        }
        out.push_str(&format!(
            "mean latency {:.4} ms per sample (batches of 256, {})\n",
            self.mean_latency_ms_per_sample, self.device
        ));
        out
    }
}
