//! `kilnd predict` and `kilnd export`: run or write out a stored version from the command line.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use kiln_core::names::ModelRef;
use kiln_core::registry::Registry;

use crate::import::BadInput;
use kiln_engine::loaded::LoadedModel;
use kiln_engine::weights;

/// Arguments of `kilnd predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// `<model>[@<version|alias>]`.
    pub reference: ModelRef,
    /// Input rows as JSON, e.g. `[[0.5, 1.0, 2.0, 0.25]]` (images flattened row-major).
    #[arg(long)]
    pub input: String,
}

/// Arguments of `kilnd export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// `<model>[@<version|alias>]`.
    pub reference: ModelRef,
    /// Output file; `.safetensors` or `.bpk` (burn record).
    #[arg(long)]
    pub out: PathBuf,
}

fn load(reference: &ModelRef) -> anyhow::Result<LoadedModel> {
    let registry = Registry::open(&kiln_core::home::kiln_home()?)?;
    let version = registry.resolve(reference)?;
    let manifest = registry.version(&reference.model, version)?;
    LoadedModel::from_registry(&registry, manifest, Device::libtorch())
}

/// Runs the rows through the model and returns the outputs.
pub fn predict(args: &PredictArgs) -> anyhow::Result<serde_json::Value> {
    let rows: Vec<Vec<f32>> =
        serde_json::from_str(&args.input).map_err(|e| BadInput(format!("--input is not a JSON list of rows: {e}")))?;
    let loaded = load(&args.reference)?;
    let outputs = loaded.forward_rows(&rows).map_err(BadInput)?;
    let m = &loaded.manifest;
    Ok(serde_json::json!({ "model": m.model, "version": m.version, "outputs": outputs }))
}

/// Writes the version's weights to a file; returns the bytes written.
pub fn export(args: &ExportArgs) -> anyhow::Result<u64> {
    let loaded = load(&args.reference)?;
    let ext = args.out.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "safetensors" => {
            let bytes = weights::to_safetensors(&loaded.model)?;
            kiln_core::fsx::write_atomic(&args.out, &bytes)
                .with_context(|| format!("cannot write {}", args.out.display()))?;
        }
        "bpk" => weights::save_burnpack(&loaded.model, &args.out)?,
        _ => {
            return Err(BadInput(format!("{}: use a .safetensors or .bpk file name", args.out.display())).into());
        }
    }
    Ok(std::fs::metadata(&args.out)?.len())
}
