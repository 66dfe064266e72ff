//! Model compression (`kiln prune`, `kiln quantize`): what a client asks for, and what a
//! compressed child version records about itself — its method and settings, per-layer
//! sparsity or precision, what computes at load, and the comparison with its parent measured
//! by the job that made it. UI-free and libtorch-free: the engine computes, this describes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kinds::{Arch, DataSource, DeviceName, word_enum};
use crate::names::{ModelRef, Name};

/// Compress a stored version into a new child version (`POST /api/v1/jobs`, kind `compress`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompressRequest {
    /// The parent `model@version` (or alias).
    pub reference: ModelRef,
    pub method: Method,
    /// Model to register the child under (default: the parent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Name>,
    /// Data for the fine-tune and the comparison (default: the parent's dataset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_path: Option<std::path::PathBuf>,
    /// Use at most N training rows for the fine-tune and N test rows for the comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// `None` picks CUDA when libtorch sees one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

/// How to compress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Method {
    Prune(PruneSettings),
    Quantize(QuantizeSettings),
}

/// `kiln prune` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneSettings {
    /// Share of the weights (unstructured) or of the hidden units and filters (structured) to
    /// remove, strictly between 0 and 1.
    pub sparsity: f64,
    /// Remove whole hidden units / conv filters and rebuild smaller layers (mlp, cnn).
    #[serde(default)]
    pub structured: bool,
    /// Where the unstructured share is counted.
    #[serde(default)]
    pub scope: PruneScope,
    /// Also prune biases (unstructured only).
    #[serde(default)]
    pub biases: bool,
    /// Also prune embedding tables (unstructured only).
    #[serde(default)]
    pub embeddings: bool,
    /// Epochs of fine-tuning after pruning (masks re-applied after every step).
    #[serde(default = "default_finetune_epochs")]
    pub finetune_epochs: usize,
    /// Fine-tune learning rate (default: the parent's, decayed by a cosine schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_finetune_epochs() -> usize {
    1
}

fn default_batch_size() -> usize {
    64
}

impl PruneSettings {
    /// Settings with the CLI's defaults.
    pub fn new(sparsity: f64) -> Self {
        Self {
            sparsity,
            structured: false,
            scope: PruneScope::default(),
            biases: false,
            embeddings: false,
            finetune_epochs: default_finetune_epochs(),
            lr: None,
            batch_size: default_batch_size(),
        }
    }
}

/// Where an unstructured sparsity target is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PruneScope {
    /// One magnitude threshold over the whole model.
    #[default]
    Global,
    /// Every weight tensor loses the same share.
    Layer,
}

word_enum!(PruneScope, "prune scope");

/// `kiln quantize` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizeSettings {
    pub precision: Precision,
}

/// A stored weight precision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    Fp16,
    Int8,
}

word_enum!(Precision, "precision");

impl CompressRequest {
    /// Compress `reference` by `method`, with every other option at its default (the
    /// parent's model, data and device choice).
    pub fn new(reference: ModelRef, method: Method) -> Self {
        Self {
            reference,
            method,
            model: None,
            data: None,
            data_path: None,
            limit: None,
            device: None,
            threads: None,
        }
    }

    /// Checks the settings on their own (the daemon then checks them against the parent).
    pub fn check(&self) -> Result<(), String> {
        if self.limit == Some(0) {
            return Err("limit must be at least 1".into());
        }
        match &self.method {
            Method::Prune(p) => p.check(),
            Method::Quantize(q) if q.precision == Precision::F32 => {
                Err("quantize to int8, bf16 or fp16: f32 is what the weights already are".into())
            }
            Method::Quantize(_) => Ok(()),
        }
    }
}

impl CompressRequest {
    /// Checks the request against the parent version: an architecture structured pruning
    /// cannot shrink, or a precision the parent already has, is refused with what to do.
    pub fn check_parent(&self, parent: &crate::registry::VersionManifest) -> Result<(), String> {
        let name = format!("{}@{}", parent.model, parent.version);
        let arch = parent.draft.architecture.name;
        let stored = parent.draft.compression.as_ref().map(Compression::stored_precision);
        let grandparent = match &parent.draft.parent {
            Some(p) => format!("its parent {}@{}", p.model, p.version),
            None => "an f32 version".to_owned(),
        };
        match &self.method {
            Method::Prune(p) if p.structured && !matches!(arch, Arch::Mlp | Arch::Cnn) => Err(format!(
                "structured pruning rebuilds mlp hidden units and cnn filters; {name} is an {arch}: \
                 prune it unstructured (without --structured)"
            )),
            Method::Prune(_) if stored == Some(Precision::Int8) => Err(format!(
                "{name} holds int8 weights; prune {grandparent} instead, then quantize the pruned child"
            )),
            Method::Quantize(q) if stored == Some(q.precision) => Err(format!(
                "{name} is already {}; nothing to do (its weights stay as they are)",
                q.precision
            )),
            Method::Quantize(q) if stored == Some(Precision::Int8) => Err(format!(
                "{name} holds int8 weights; a {} copy of it would keep int8's rounding at twice the size: \
                 quantize {grandparent} instead",
                q.precision
            )),
            _ => Ok(()),
        }
    }
}

impl Compression {
    /// The lowest precision any tensor is stored in.
    pub fn stored_precision(&self) -> Precision {
        let rank = |p: Precision| match p {
            Precision::Int8 => 0,
            Precision::Fp16 | Precision::Bf16 => 1,
            Precision::F32 => 2,
        };
        self.layers
            .iter()
            .map(|l| l.precision)
            .min_by_key(|p| rank(*p))
            .unwrap_or_default()
    }
}

impl PruneSettings {
    fn check(&self) -> Result<(), String> {
        if !(self.sparsity > 0.0 && self.sparsity < 1.0) {
            return Err(format!(
                "sparsity must be strictly between 0 and 1 (0.5 removes half), not {}",
                self.sparsity
            ));
        }
        if self.batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        if let Some(lr) = self.lr
            && !(lr.is_finite() && lr > 0.0)
        {
            return Err(format!("lr must be a number above 0, not {lr}"));
        }
        if self.structured && (self.biases || self.embeddings || self.scope != PruneScope::Global) {
            return Err(
                "structured pruning removes whole units and filters; --scope, --biases and --embeddings apply to \
                 unstructured pruning only"
                    .into(),
            );
        }
        Ok(())
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Prune(p) => {
                let kind = if p.structured { "structured" } else { "unstructured" };
                write!(f, "prune {:.0}% {kind}", p.sparsity * 100.0)?;
                if p.finetune_epochs > 0 {
                    write!(f, " + {} fine-tune epoch(s)", p.finetune_epochs)?;
                }
                Ok(())
            }
            Self::Quantize(q) => write!(f, "quantize {}", q.precision),
        }
    }
}

/// What a compressed version records in its manifest (`compression`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compression {
    /// What was asked.
    pub method: Method,
    /// Each weight tensor after compression.
    pub layers: Vec<LayerState>,
    /// The precision the forward pass computes in when loaded (f32 unless a half precision
    /// was measured faster on the device).
    pub compute: Precision,
    /// How the weights compute when loaded, in words (e.g. `int8 weights dequantized to f32 at load`).
    pub compute_note: String,
    /// The comparison with the parent, measured by the job that made this version.
    pub report: Comparison,
}

/// One weight tensor of a compressed version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerState {
    /// Tensor name as in the weights file (`hidden.0.weight`).
    pub name: String,
    pub shape: Vec<usize>,
    /// Elements.
    pub params: usize,
    /// Elements that are not exactly zero.
    pub nonzeros: usize,
    pub precision: Precision,
}

impl LayerState {
    /// The share of elements that are zero.
    pub fn sparsity(&self) -> f64 {
        match self.params {
            0 => 0.0,
            n => 1.0 - self.nonzeros as f64 / n as f64,
        }
    }
}

/// Parent against child, on the same split and device, in one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub dataset: String,
    /// `test` or `validation`.
    pub split: String,
    pub rows: usize,
    pub device: String,
    pub parent: Figures,
    pub child: Figures,
    /// Measurements that decided how the child computes, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One side of a [`Comparison`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// The weights blob, bytes at rest.
    pub size_bytes: u64,
    /// The same bytes zstd-compressed (level 3).
    pub size_zstd_bytes: u64,
    pub params: u64,
    pub nonzeros: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// Median forward latency of one batch, milliseconds.
    pub p50_ms_batch1: f64,
    pub p50_ms_batch64: f64,
}

impl Comparison {
    /// The report as a plain-text table, parent beside child with the ratio.
    pub fn render(&self, parent: &str, child: &str) -> String {
        let (p, c) = (&self.parent, &self.child);
        let mut out = format!(
            "{child} against {parent}: {} {} split, {} rows, on {}\n",
            self.dataset, self.split, self.rows, self.device
        );
        out.push_str(&format!("{:<18} {:>14} {:>14}   {}\n", "", parent, child, "change"));
        let mut row = |label: &str, a: String, b: String, ratio: String| {
            out.push_str(format!("{label:<18} {a:>14} {b:>14}   {ratio}").trim_end());
            out.push('\n');
        };
        let ratio = |a: f64, b: f64| match b {
            0.0 => "-".to_owned(),
            _ => format!("{:.2}x", a / b),
        };
        row(
            "size at rest",
            bytes(p.size_bytes),
            bytes(c.size_bytes),
            ratio(p.size_bytes as f64, c.size_bytes as f64) + " smaller",
        );
        row(
            "size zstd",
            bytes(p.size_zstd_bytes),
            bytes(c.size_zstd_bytes),
            ratio(p.size_zstd_bytes as f64, c.size_zstd_bytes as f64) + " smaller",
        );
        row("parameters", p.params.to_string(), c.params.to_string(), String::new());
        row(
            "non-zero",
            p.nonzeros.to_string(),
            c.nonzeros.to_string(),
            String::new(),
        );
        let points = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:+.2} pt", (b - a) * 100.0),
            _ => String::new(),
        };
        let value = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
        if p.accuracy.is_some() {
            row(
                "accuracy",
                value(p.accuracy),
                value(c.accuracy),
                points(p.accuracy, c.accuracy),
            );
            row(
                "macro-F1",
                value(p.macro_f1),
                value(c.macro_f1),
                points(p.macro_f1, c.macro_f1),
            );
        }
        if p.rmse.is_some() {
            row("rmse", value(p.rmse), value(c.rmse), String::new());
        }
        row(
            "p50 ms, batch 1",
            format!("{:.3}", p.p50_ms_batch1),
            format!("{:.3}", c.p50_ms_batch1),
            ratio(p.p50_ms_batch1, c.p50_ms_batch1) + " faster",
        );
        row(
            "p50 ms, batch 64",
            format!("{:.3}", p.p50_ms_batch64),
            format!("{:.3}", c.p50_ms_batch64),
            ratio(p.p50_ms_batch64, c.p50_ms_batch64) + " faster",
        );
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }
}

/// `1.23 MB`, `456 kB`, `789 B`.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.2} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

impl Compression {
    /// One line for lists: `int8 of v3`, `prune 50% structured of v3`.
    pub fn summary(&self, parent: Option<u32>) -> String {
        let what = match &self.method {
            Method::Prune(p) if p.structured => format!("pruned {:.0}% structured", p.sparsity * 100.0),
            Method::Prune(p) => format!("pruned {:.0}%", p.sparsity * 100.0),
            Method::Quantize(q) => q.precision.to_string(),
        };
        match parent {
            Some(v) => format!("{what} of v{v}"),
            None => what,
        }
    }

    /// The full text: method, compute, layers, comparison.
    pub fn render(&self, parent: &str, child: &str) -> String {
        let mut out = format!("{}\ncompute: {}\n", self.method, self.compute_note);
        out.push_str(&format!(
            "{:<28} {:>14} {:>9} {:>8}\n",
            "tensor", "shape", "sparsity", "dtype"
        ));
        for layer in &self.layers {
            let shape: Vec<String> = layer.shape.iter().map(ToString::to_string).collect();
            out.push_str(&format!(
                "{:<28} {:>14} {:>8.1}% {:>8}\n",
                layer.name,
                shape.join("x"),
                layer.sparsity() * 100.0,
                layer.precision
            ));
        }
        out.push('\n');
        out.push_str(&self.report.render(parent, child));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prune(sparsity: f64) -> CompressRequest {
        CompressRequest::new(
            "m@1".parse().expect("reference"),
            Method::Prune(PruneSettings::new(sparsity)),
        )
    }

    #[test]
    fn a_request_reads_back_with_defaults_and_refuses_what_makes_no_sense() {
        let request: crate::jobs::JobRequest =
            serde_json::from_str(r#"{"kind":"compress","reference":"m@1","method":{"method":"prune","sparsity":0.5}}"#)
                .expect("decode");
        let crate::jobs::JobRequest::Compress(c) = &request else {
            panic!("not a compress request: {request:?}");
        };
        assert_eq!(c.method, Method::Prune(PruneSettings::new(0.5)));
        assert!(c.check().is_ok());
        for bad in [0.0, 1.0, -0.1, f64::NAN] {
            let err = prune(bad).check().expect_err("sparsity out of range");
            assert!(err.contains("strictly between 0 and 1"), "{err}");
        }
        let mut structured = PruneSettings::new(0.5);
        structured.structured = true;
        structured.scope = PruneScope::Layer;
        let mut request = prune(0.5);
        request.method = Method::Prune(structured);
        assert!(
            request
                .check()
                .expect_err("scope")
                .contains("unstructured pruning only")
        );
        request.method = Method::Quantize(QuantizeSettings {
            precision: Precision::F32,
        });
        assert!(request.check().is_err());
        let unknown = serde_json::from_str::<Method>(r#"{"method":"distill"}"#).expect_err("unknown method");
        assert!(unknown.to_string().contains("unknown variant `distill`"), "{unknown}");
    }
}
