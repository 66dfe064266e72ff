//! Build provenance: at registration, a version produced by a job gets an in-toto statement
//! with `predicateType https://slsa.dev/provenance/v1` (SLSA v1.0): what was asked (the job
//! spec and hyperparameters), what it was built from (each dataset file's digest, the parent
//! version's weights, kiln and libtorch), and the run (job id, start, end). With a signing
//! key set it is stored signed, as a Sigstore bundle over a DSSE envelope — the format model
//! signatures use — so `kiln models verify` and any in-toto tool can check it.

use serde_json::{Value, json};

use crate::names::Digest;
use crate::registry::{VersionManifest, file_name_of};
use crate::signing::{Bundle, PrivateKey, dsse::Envelope};

/// The SLSA provenance predicate type.
pub const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
/// What a kiln job's build definition means.
pub const BUILD_TYPE: &str = "https://github.com/kiln-ml/kiln/job/v1";

/// The job that produced a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    pub job_id: String,
    /// The job's spec as submitted (`jobs/<id>/spec.json`).
    pub spec: Value,
    pub started_at: Option<String>,
    pub finished_at: String,
}

/// The SLSA v1 statement for `manifest` (whose blobs are stored), built by `build`, with the
/// parent's weights digest when it has a parent.
pub fn statement(manifest: &VersionManifest, build: &Build, parent_weights: Option<&Digest>) -> Value {
    let draft = &manifest.draft;
    let subject: Vec<Value> = draft
        .blobs
        .iter()
        .filter(|(role, _)| role.as_str() == "weights")
        .map(|(role, digest)| json!({ "name": file_name_of(role), "digest": { "sha256": digest.hex() } }))
        .collect();
    let mut dependencies = Vec::new();
    if let Some(dataset) = &draft.dataset {
        for file in &dataset.files {
            dependencies.push(json!({
                "uri": format!("file://{}", file.path.display()),
                "digest": { "sha256": file.digest.hex() },
                "annotations": { "dataset": dataset.id },
            }));
        }
        if dataset.files.is_empty()
            && let Some(digest) = &dataset.digest
        {
            dependencies.push(json!({
                "uri": format!("kiln-dataset:{}", dataset.id),
                "digest": { "sha256": digest.hex() },
            }));
        }
    }
    if let Some(parent) = &draft.parent {
        let mut dep = json!({
            "uri": format!("kiln:{}@{}", parent.model, parent.version),
            "name": "model.safetensors",
        });
        if let Some(digest) = parent_weights {
            dep["digest"] = json!({ "sha256": digest.hex() });
        }
        dependencies.push(dep);
    }
    dependencies.push(json!({ "uri": format!("pkg:cargo/kiln@{}", manifest.kiln_version) }));
    if let Some(torch) = &draft.libtorch_version {
        dependencies.push(json!({ "uri": format!("pkg:pypi/torch@{torch}"), "name": "libtorch" }));
    }
    let mut metadata = json!({ "invocationId": build.job_id, "finishedOn": build.finished_at });
    if let Some(started) = &build.started_at {
        metadata["startedOn"] = json!(started);
    }
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subject,
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "job": build.spec,
                    "hyperparameters": draft.hyperparameters,
                },
                "internalParameters": {
                    "seed": draft.seed,
                    "device": draft.device,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": { "id": format!("https://github.com/kiln-ml/kiln/kilnd@{}", manifest.kiln_version) },
                "metadata": metadata,
            },
        },
    })
}

/// The bytes stored as the `provenance` blob: the statement signed as a bundle when a key is
/// given, else the statement itself.
pub fn encode(statement: &Value, key: Option<&PrivateKey>) -> Vec<u8> {
    let payload = serde_json::to_vec_pretty(statement).unwrap_or_default();
    match key {
        Some(key) => Bundle {
            key_hint: Some(key.public_key().hint()),
            envelope: Envelope::sign_in_toto(payload, key),
        }
        .to_json()
        .into_bytes(),
        None => payload,
    }
}
