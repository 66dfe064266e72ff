//! `POST /api/v1/deployments/{m}/try`: send one row of the deployed version's own dataset
//! (its test split, or the seeded validation split) through the live endpoint's batcher and
//! show the prediction next to the true label. The console's "test request".

use std::time::Instant;

use kiln_core::api::{TryOutcome, TryResult};
use kiln_core::kinds::DataSource;
use kiln_core::names::Name;
use kiln_core::registry::{Registry, RegistryError};

use super::batcher::Refused;
use super::tensor::{Rows, argmax, softmax};
use super::{DeployError, Server};
use kiln_engine::data::{self, Inputs, LoadOptions, Targets};

/// Runs row `index` (modulo the split's size) through the deployment serving `model`.
pub fn try_sample(server: &Server, model: &Name, index: usize) -> Result<TryResult, DeployError> {
    let refused = |m: String| DeployError::Refused(m);
    let deployment = server.get(model.as_str()).ok_or_else(|| {
        refused(format!(
            "{model} is not deployed; `kiln deploy {model}@<version>` first"
        ))
    })?;
    let registry = Registry::open(&server.home)?;
    let manifest = registry.version(&deployment.model, deployment.version)?;
    let dataset = manifest.draft.dataset.as_ref().ok_or_else(|| {
        refused(format!(
            "{model}@{} has no dataset on record (imported?); send your own input with `kiln predict`",
            deployment.version
        ))
    })?;
    let failed = |e: anyhow::Error| DeployError::Failed(e);
    let vocab = data::stored_vocab(&registry, &manifest).map_err(|e| match e.downcast::<RegistryError>() {
        Ok(e) => DeployError::Registry(e),
        Err(e) => failed(e),
    })?;
    let options = LoadOptions {
        path: None,
        seed: manifest.draft.seed.unwrap_or(0),
        limit: None,
        vocab: vocab.as_ref(),
    };
    let source: DataSource = dataset
        .id
        .parse()
        .map_err(|e| refused(format!("{model}@{} was trained on {e}", deployment.version)))?;
    let data = data::load(&source, &options).map_err(|e| failed(e.into()))?;
    let (split_name, split) = match data.test {
        Some(test) => ("test", test),
        None => ("validation", data.val),
    };
    if split.is_empty() {
        return Err(refused(format!("the {split_name} split of {} is empty", dataset.id)));
    }
    let row = index % split.len();
    let width = split.row_len;
    let values: Vec<f32> = match &split.inputs {
        Inputs::Floats(v) => v[row * width..(row + 1) * width].to_vec(),
        Inputs::Ids(v) => v[row * width..(row + 1) * width].iter().map(|&i| i as f32).collect(),
    };
    let rows = Rows {
        batch: 1,
        width,
        values,
    };
    let answer = deployment
        .submit(rows, Instant::now() + server.limits.timeout)
        .map_err(|r| match r {
            Refused::Full => refused(format!("the queue for {model} is full; retry shortly")),
            Refused::Closed => refused(format!("{model} is being switched; retry")),
        })?;
    let output = answer
        .blocking_recv()
        .map_err(|_| failed(anyhow::anyhow!("the batcher dropped the request")))?
        .map_err(|e| failed(anyhow::anyhow!(e.message)))?;
    let logits = output.rows.into_iter().next().unwrap_or_default();
    let outcome = match &split.targets {
        Targets::Classes(truth) => {
            let predicted = argmax(&logits);
            let name = |i: usize| data.classes.get(i).cloned().unwrap_or_else(|| i.to_string());
            let label = truth[row] as usize;
            TryOutcome::Class {
                prediction: name(predicted),
                label: name(label),
                correct: predicted == label,
                probabilities: softmax(&logits),
                classes: data.classes.clone(),
            }
        }
        Targets::Ratings(truth) => TryOutcome::Rating {
            prediction: logits.first().copied().unwrap_or(f32::NAN),
            label: truth[row],
        },
    };
    Ok(TryResult {
        model: deployment.model.clone(),
        version: deployment.version,
        dataset: dataset.id.clone(),
        split: split_name.into(),
        index: row,
        outcome,
    })
}
