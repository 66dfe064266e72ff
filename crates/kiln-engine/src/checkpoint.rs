//! Checkpoints: `checkpoints/state.json` names the model and optimizer files of the latest
//! checkpoint with their SHA-256, and is written last and atomically, so a crash mid-save
//! leaves the previous checkpoint in force. A checkpoint whose files do not match their
//! recorded digests is reported as corrupt and never loaded.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::optim::ModuleOptimizer;
use kiln_core::names::Digest;
use kiln_core::registry::{hash_file, sha256};
use serde::{Deserialize, Serialize};

/// Where in training a checkpoint was taken: resume at `batch` of `epoch`, after `step` steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub epoch: usize,
    pub batch: usize,
    pub step: u64,
}

/// What the loop hands over to be saved.
pub struct Checkpoint<'a> {
    pub model_bytes: Vec<u8>,
    pub optim: &'a ModuleOptimizer,
    pub position: Position,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    position: Position,
    model_file: String,
    model_digest: Digest,
    optim_file: String,
    optim_digest: Digest,
}

/// A checkpoint read back and verified.
#[derive(Debug)]
pub struct Restored {
    pub position: Position,
    pub model_bytes: Vec<u8>,
    pub optim_path: PathBuf,
}

/// Writes the checkpoint into `dir` and removes the files of older ones.
pub fn save(dir: &Path, checkpoint: &Checkpoint<'_>) -> anyhow::Result<()> {
    let step = checkpoint.position.step;
    let model_file = format!("model-{step}.safetensors");
    let optim_file = format!("optim-{step}.bpk");
    kiln_core::fsx::write_atomic(&dir.join(&model_file), &checkpoint.model_bytes)
        .with_context(|| format!("cannot write checkpoint to {}", dir.display()))?;
    let optim_path = dir.join(&optim_file);
    checkpoint
        .optim
        .save(&optim_path)
        .map_err(|e| anyhow::anyhow!("cannot save optimizer state: {e:?}"))?;
    std::fs::File::open(&optim_path).and_then(|f| f.sync_all())?;
    let state = State {
        position: checkpoint.position,
        model_digest: sha256(&checkpoint.model_bytes),
        optim_digest: hash_file(&optim_path)?,
        model_file: model_file.clone(),
        optim_file: optim_file.clone(),
    };
    kiln_core::fsx::write_atomic(&dir.join("state.json"), &serde_json::to_vec_pretty(&state)?)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name == model_file || name == optim_file || name == "state.json";
        if !ours && (name.starts_with("model-") || name.starts_with("optim-")) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Reads and verifies the latest checkpoint in `dir`.
pub fn load(dir: &Path) -> anyhow::Result<Restored> {
    let state_path = dir.join("state.json");
    let text = std::fs::read(&state_path).with_context(|| {
        format!(
            "no checkpoint at {} (the job never finished an epoch)",
            state_path.display()
        )
    })?;
    let state: State = serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("checkpoint {} is corrupt: {e}", state_path.display()))?;
    for file in [&state.model_file, &state.optim_file] {
        if !file.starts_with("model-") && !file.starts_with("optim-") || file.contains('/') {
            bail!("checkpoint {} names an unexpected file {file:?}", state_path.display());
        }
    }
    let model_path = dir.join(&state.model_file);
    let model_bytes =
        std::fs::read(&model_path).with_context(|| format!("checkpoint file {} is missing", model_path.display()))?;
    if sha256(&model_bytes) != state.model_digest {
        bail!(
            "checkpoint {} is corrupt: its content does not match the digest in state.json; it was not loaded",
            model_path.display()
        );
    }
    let optim_path = dir.join(&state.optim_file);
    if hash_file(&optim_path).ok().as_ref() != Some(&state.optim_digest) {
        bail!(
            "checkpoint {} is corrupt or missing: it does not match the digest in state.json; it was not loaded",
            optim_path.display()
        );
    }
    Ok(Restored {
        position: state.position,
        model_bytes,
        optim_path,
    })
}
