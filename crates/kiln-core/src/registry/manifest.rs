//! The JSON documents the registry stores: model records, version manifests and aliases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kinds::Arch;
use crate::names::{Digest, Name};

/// `models/<model>/model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRecord {
    pub name: Name,
    /// What the model does, e.g. `image-classification`.
    #[serde(default)]
    pub task: String,
    #[serde(default)]
    pub description: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

/// The architecture a version's weights belong to, with the config that rebuilds it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// The zoo architecture.
    pub name: Arch,
    /// The architecture's own serde config.
    pub config: serde_json::Value,
}

/// The data a version was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Each source file with its own digest (none for generated data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<DataFile>,
}

/// One data file and the SHA-256 of its contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    pub path: std::path::PathBuf,
    pub digest: Digest,
}

/// Points at another version (a parent in the lineage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionLink {
    pub model: Name,
    pub version: u32,
}

/// Everything about a version except the number the registry assigns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionDraft {
    pub architecture: Architecture,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetRef>,
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<VersionLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Role → blob, e.g. `"weights" → sha256:…`.
    pub blobs: BTreeMap<String, Digest>,
    /// Device the weights were produced on (`cpu`, `cuda:0`), or `import`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Where the weights came from when not trained here, e.g. `import:model.safetensors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libtorch_version: Option<String>,
    /// The study trial whose checkpoint this version is (`kiln studies promote`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study: Option<crate::study::StudyLink>,
    /// How this version was compressed from its parent (`kiln prune`, `kiln quantize`), with
    /// the comparison the compressing job measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<crate::compression::Compression>,
    /// The licence the version is published under (`--license`), also in its model card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<crate::card::License>,
    /// The epoch checkpoint of a training job this version was registered from (promote from
    /// the curve: `kiln jobs register JOB --epoch N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointLink>,
}

/// Where a version registered from a kept epoch checkpoint came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointLink {
    pub job: String,
    /// 1-based, as the job's metrics count epochs.
    pub epoch: usize,
    pub step: u64,
}

/// `models/<model>/versions/<n>.json`: immutable once written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionManifest {
    pub model: Name,
    pub version: u32,
    pub created_at: String,
    pub kiln_version: String,
    #[serde(flatten)]
    pub draft: VersionDraft,
}

impl VersionManifest {
    /// One line on an imported version: `imported m@3 (mlp, weights sha256:…)`.
    pub fn imported_line(&self) -> String {
        let weights = self
            .draft
            .blobs
            .get("weights")
            .map(ToString::to_string)
            .unwrap_or_default();
        format!(
            "imported {}@{} ({}, weights {weights})",
            self.model, self.version, self.draft.architecture.name
        )
    }
}

/// The file a blob role is exported, and signed, as: a version's files are its blobs
/// (`weights` → `model.safetensors`, `card` → `README.md`, …; `file:<name>` for the other
/// files of an imported folder).
pub fn file_name_of(role: &str) -> String {
    match role {
        "weights" => "model.safetensors".into(),
        "config" => "config.json".into(),
        "classes" => "classes.json".into(),
        "vocab" => "vocab.json".into(),
        "card" => "README.md".into(),
        "provenance" => "provenance.json".into(),
        other => other.strip_prefix("file:").unwrap_or(other).to_owned(),
    }
}

/// The blob role a file of a model folder is stored under (the inverse of [`file_name_of`]).
pub fn role_of_file(name: &str) -> String {
    match name {
        "model.safetensors" => "weights".into(),
        "config.json" => "config".into(),
        "classes.json" => "classes".into(),
        "vocab.json" => "vocab".into(),
        "README.md" => "card".into(),
        "provenance.json" => "provenance".into(),
        other => format!("file:{other}"),
    }
}

impl VersionManifest {
    /// `(file name, blob digest)` of every file of the version, by name.
    pub fn files(&self) -> Vec<(String, &Digest)> {
        let mut files: Vec<(String, &Digest)> = self
            .draft
            .blobs
            .iter()
            .map(|(role, digest)| (file_name_of(role), digest))
            .collect();
        files.sort();
        files
    }
}

/// `models/<model>/aliases.json`: alias → version number.
pub type Aliases = BTreeMap<Name, u32>;

/// The current time as RFC 3339 UTC, the format every record uses.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// An evaluation report attached to a version (stored beside it, since versions are
/// immutable): `models/<model>/evals/<n>.json` holds a list of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// The full report, as a blob.
    pub report: Digest,
    pub dataset: String,
    /// `test` or `validation`.
    pub split: String,
    pub created_at: String,
    /// Headline figures copied from the report (accuracy, macro_f1, rmse, …).
    pub metrics: BTreeMap<String, f64>,
}
