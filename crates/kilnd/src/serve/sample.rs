//! `POST /api/v1/deployments/{m}/try`: send one row of the deployed version's own dataset
//! (its test split, or the seeded validation split) through the live endpoint's batcher and
//! show the prediction next to the true label. The console's "test request".

use std::time::Instant;

use kiln_core::registry::{Registry, RegistryError};
use serde_json::{Value, json};

use super::batcher::Refused;
use super::tensor::Rows;
use super::{DeployError, Server};
use kiln_engine::data::{self, Inputs, LoadOptions, Targets};

/// Runs row `index` (modulo the split's size) through the deployment serving `model`.
pub fn try_sample(server: &Server, model: &str, index: usize) -> Result<Value, DeployError> {
    let refused = |m: String| DeployError::Refused(m);
    let deployment = server.get(model).ok_or_else(|| {
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
    let data = data::load(&dataset.id, &options).map_err(|e| failed(e.into()))?;
    let (split_name, split) = match data.test {
        Some(test) => ("test", test),
        None => ("validation", data.val),
    };
    if split.len() == 0 {
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
        .map_err(|e| failed(anyhow::anyhow!(e)))?;
    let logits = output.rows.into_iter().next().unwrap_or_default();
    let mut doc = json!({
        "model": deployment.model, "version": deployment.version,
        "dataset": dataset.id, "split": split_name, "index": row,
    });
    match &split.targets {
        Targets::Classes(truth) => {
            let probabilities = super::http::softmax(&logits);
            let predicted = super::http::argmax(&logits);
            let name = |i: usize| data.classes.get(i).cloned().unwrap_or_else(|| i.to_string());
            let label = truth[row] as usize;
            doc["prediction"] = json!(name(predicted));
            doc["label"] = json!(name(label));
            doc["correct"] = json!(predicted == label);
            doc["probabilities"] = json!(probabilities);
            doc["classes"] = json!(data.classes);
        }
        Targets::Ratings(truth) => {
            doc["prediction"] = json!(logits.first());
            doc["label"] = json!(truth[row]);
        }
    }
    Ok(doc)
}
