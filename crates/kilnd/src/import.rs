//! `kilnd import`: external weights become a new registry version.
//!
//! The weights are loaded strictly into the architecture built from `--config`, a forward
//! pass proves they compute, and then they are re-saved as safetensors (burn layout) into the
//! blob store, so every stored version loads the same way whatever it was imported from.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use burn::tensor::Device;
use kiln_core::kinds::Arch;
use kiln_core::names::Name;
use kiln_core::registry::{ModelRecord, Registry, VersionDraft, VersionManifest, now_rfc3339};

use kiln_engine::device::LIBTORCH_VERSION;
use kiln_engine::model::ArchConfig;
use kiln_engine::weights::{self, WeightsFormat};

/// Arguments of `kilnd import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Model to add the version to (created when new).
    #[arg(long)]
    pub model: Name,
    /// Weights file: .safetensors, .bpk (burn record) or .pt/.pth (PyTorch state dict).
    #[arg(long)]
    pub weights: PathBuf,
    /// Architecture.
    #[arg(long)]
    pub arch: Arch,
    /// The architecture's JSON config, as a file path or inline JSON.
    #[arg(long)]
    pub config: String,
    /// The .safetensors file was written by PyTorch (transpose Linear weights).
    #[arg(long)]
    pub pytorch_layout: bool,
    /// Task recorded when the model is new, e.g. image-classification.
    #[arg(long, default_value = "")]
    pub task: String,
    /// Description recorded when the model is new.
    #[arg(long, default_value = "")]
    pub description: String,
}

/// A user mistake (exit code 2) as opposed to a failure of the machine.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Imports the weights and returns the new version's manifest.
pub fn run(home: &std::path::Path, args: &ImportArgs) -> anyhow::Result<VersionManifest> {
    let config_json = read_config(&args.config)?;
    let arch = ArchConfig::from_json(args.arch, config_json).map_err(|e| BadInput(e.to_string()))?;
    if !args.weights.is_file() {
        return Err(BadInput(format!("weights file {} does not exist", args.weights.display())).into());
    }
    let format = WeightsFormat::detect(&args.weights, args.pytorch_layout).map_err(|e| BadInput(e.to_string()))?;
    let device = Device::libtorch();
    let mut model = arch.init(&device);
    weights::load_file(&mut model, &args.weights, format).map_err(|e| BadInput(e.to_string()))?;
    model
        .smoke_forward(&device)
        .map_err(|e| BadInput(format!("{}: {e}", args.weights.display())))?;
    let bytes = weights::to_safetensors(&model)?;

    let registry = Registry::open(home)?;
    let digest = registry.blobs().put_bytes(&bytes)?;
    let lock = registry.lock()?;
    let record = ModelRecord {
        name: args.model.clone(),
        task: args.task.clone(),
        description: args.description.clone(),
        created_at: now_rfc3339(),
        owner: None,
        license: None,
    };
    registry.ensure_model(&lock, record)?;
    let source = args
        .weights
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let draft = VersionDraft {
        architecture: arch.architecture(),
        dataset: None,
        hyperparameters: Default::default(),
        seed: None,
        metrics: Default::default(),
        parent: None,
        job_id: None,
        blobs: [("weights".to_owned(), digest)].into(),
        device: Some("cpu".to_owned()),
        source: Some(format!("import:{source}")),
        libtorch_version: Some(LIBTORCH_VERSION.to_owned()),
        study: None,
        compression: None,
    };
    Ok(registry.add_version(&lock, &args.model, draft)?)
}

fn read_config(config: &str) -> anyhow::Result<serde_json::Value> {
    let trimmed = config.trim_start();
    let text = if trimmed.starts_with('{') {
        config.to_owned()
    } else {
        std::fs::read_to_string(config).with_context(|| format!("cannot read config file {config}"))?
    };
    serde_json::from_str(&text).map_err(|e| anyhow!(BadInput(format!("config {config} is not valid JSON: {e}"))))
}
