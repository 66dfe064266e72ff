//! Moving weights in and out of zoo models: external files (safetensors, burnpack, PyTorch
//! `.pt` state dicts) on import, and safetensors bytes as the registry's canonical format.
//!
//! PyTorch files go through burn-store's reader, which parses tensors without running pickle
//! code (DESIGN §2). Every load is strict: a missing, extra or mis-shaped tensor is an error
//! that names it.

use std::path::Path;

use burn::store::{ApplyResult, BurnpackStore, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};

use super::model::ZooModel;

/// Formats `kiln models import` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// `.safetensors` in burn's layout (as kiln exports).
    Safetensors,
    /// `.safetensors` written by PyTorch (`Linear` weights transposed on load).
    SafetensorsPytorch,
    /// burn's native record format (`.bpk`).
    Burnpack,
    /// A PyTorch `.pt`/`.pth` state dict.
    Pytorch,
}

/// Why weights could not be read or did not fit the architecture.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot tell the format of {0}: use a .safetensors, .bpk, .pt or .pth file")]
    UnknownFormat(String),
    #[error("{file} is not usable weights for this architecture: {reason}")]
    Mismatch { file: String, reason: String },
    #[error("cannot serialise weights: {0}")]
    Export(String),
}

impl WeightsFormat {
    /// Picks the format from the file extension; `pytorch_layout` marks PyTorch safetensors.
    pub fn detect(path: &Path, pytorch_layout: bool) -> Result<Self, WeightsError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "safetensors" if pytorch_layout => Ok(Self::SafetensorsPytorch),
            "safetensors" => Ok(Self::Safetensors),
            "bpk" | "burnpack" => Ok(Self::Burnpack),
            "pt" | "pth" | "bin" => Ok(Self::Pytorch),
            _ => Err(WeightsError::UnknownFormat(path.display().to_string())),
        }
    }
}

macro_rules! each_model {
    ($model:expr, $m:ident => $body:expr) => {
        match $model {
            ZooModel::Mlp($m) => $body,
            ZooModel::Cnn($m) => $body,
            ZooModel::Rnn($m) => $body,
            ZooModel::Mf($m) => $body,
        }
    };
}

/// Loads an external weights file into `model`, strictly.
pub fn load_file(model: &mut ZooModel, path: &Path, format: WeightsFormat) -> Result<(), WeightsError> {
    let file = path.display().to_string();
    let mismatch = |reason: String| WeightsError::Mismatch {
        file: file.clone(),
        reason,
    };
    let result = match format {
        WeightsFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path).allow_partial(true);
            each_model!(model, m => m.load_from(&mut store).map_err(|e| mismatch(e.to_string())))
        }
        WeightsFormat::SafetensorsPytorch => {
            let mut store = SafetensorsStore::from_file(path)
                .allow_partial(true)
                .with_from_adapter(PyTorchToBurnAdapter);
            each_model!(model, m => m.load_from(&mut store).map_err(|e| mismatch(e.to_string())))
        }
        WeightsFormat::Burnpack => {
            let mut store = BurnpackStore::from_file(path).allow_partial(true);
            each_model!(model, m => m.load_from(&mut store).map_err(|e| mismatch(e.to_string())))
        }
        WeightsFormat::Pytorch => {
            let mut store = PytorchStore::from_file(path).allow_partial(true);
            each_model!(model, m => m.load_from(&mut store).map_err(|e| mismatch(e.to_string())))
        }
    }?;
    check_complete(&result).map_err(mismatch)
}

/// Loads the registry's canonical safetensors bytes into `model`, strictly.
pub fn load_bytes(model: &mut ZooModel, bytes: Vec<u8>) -> Result<(), WeightsError> {
    each_model!(model, m => module_from_safetensors(m, bytes, "stored weights"))
}

/// Serialises `model` as safetensors bytes in burn's layout.
pub fn to_safetensors(model: &ZooModel) -> Result<Vec<u8>, WeightsError> {
    each_model!(model, m => module_to_safetensors(m))
}

/// Serialises any module as safetensors bytes in burn's layout.
pub fn module_to_safetensors<M: ModuleSnapshot>(module: &M) -> Result<Vec<u8>, WeightsError> {
    let mut store = SafetensorsStore::from_bytes(None);
    module
        .save_into(&mut store)
        .map_err(|e| WeightsError::Export(e.to_string()))?;
    store.get_bytes().map_err(|e| WeightsError::Export(e.to_string()))
}

/// Loads safetensors bytes (burn layout) into any module, strictly.
pub fn module_from_safetensors<M: ModuleSnapshot>(
    module: &mut M,
    bytes: Vec<u8>,
    what: &str,
) -> Result<(), WeightsError> {
    let mismatch = |reason: String| WeightsError::Mismatch {
        file: what.to_owned(),
        reason,
    };
    // Compressed versions store int8 or half-precision tensors; burn reads f32.
    let bytes = crate::compress::to_f32(bytes).map_err(|e| mismatch(e.to_string()))?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes)).allow_partial(true);
    let result = module.load_from(&mut store).map_err(|e| mismatch(e.to_string()))?;
    check_complete(&result).map_err(mismatch)
}

fn check_complete(result: &ApplyResult) -> Result<(), String> {
    let mut reasons = Vec::new();
    if !result.missing.is_empty() {
        let names: Vec<&str> = result.missing.iter().map(|(path, _)| path.as_str()).collect();
        reasons.push(format!("missing tensors: {}", names.join(", ")));
    }
    if !result.unused.is_empty() {
        reasons.push(format!("unexpected tensors: {}", result.unused.join(", ")));
    }
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
        reasons.push(errors.join("; "));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons.join("; "))
    }
}

/// Writes `model` as a burn record (`.bpk`) file.
pub fn save_burnpack(model: &ZooModel, path: &Path) -> Result<(), WeightsError> {
    let mut store = BurnpackStore::from_file(path).overwrite(true).auto_extension(false);
    each_model!(model, m => m.save_into(&mut store).map_err(|e| WeightsError::Export(e.to_string())))
}
