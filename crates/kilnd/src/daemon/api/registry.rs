//! Registry routes: models, versions, aliases, imports, verification and blobs. Removing a
//! version or moving an alias that a deployment depends on is refused here, for every client
//! alike: production cannot be lost by one command.

use std::process::Stdio;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kiln_core::api::{
    AliasRemoved, AliasRequest, AliasSet, CorruptBlob, Event, ImportRequest, MissingBlob, ModelList, ModelSummary,
    ModelView, RegistryChanged, RemoveQuery, SignRequest, SignatureStatus, SignatureView, Signatures, VerifyReport,
    VersionFilter, VersionList, VersionManifest, VersionRemoved, VersionSignature, VersionView,
};
use kiln_core::names::{Digest, ModelRef, Name, Selector};
use kiln_core::registry::{Catalog, Registry, now_rfc3339};
use kiln_core::signing::Bundle;

use super::{ApiError, AppState, Body, Query, blocking, registry};

/// The alias a deployment moves with every switch (DESIGN §5).
const PRODUCTION: &str = "production";

pub async fn list_models(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let registry = registry(&state)?;
    blocking(move || {
        let listing = registry.scan()?;
        let models = listing.models.iter().map(ModelSummary::from).collect();
        Ok(Json(ModelList {
            models,
            problems: listing.problems,
        }))
    })
    .await
}

pub async fn list_versions(
    State(state): State<AppState>,
    Query(q): Query<VersionFilter>,
) -> Result<Json<VersionList>, ApiError> {
    let registry = registry(&state)?;
    blocking(move || {
        let listing = registry.scan()?;
        let catalog = Catalog::from_listing(&listing);
        let versions = catalog
            .filter(&q.filter)
            .iter()
            .map(|&i| catalog.rows()[i].clone())
            .collect();
        Ok(Json(VersionList {
            versions,
            problems: listing.problems,
        }))
    })
    .await
}

pub async fn get_model(State(state): State<AppState>, Path(model): Path<String>) -> Result<Json<ModelView>, ApiError> {
    let model = Name::new(&model)?;
    let registry = registry(&state)?;
    blocking(move || {
        let (model, problems) = registry.model(&model)?;
        Ok(Json(ModelView { model, problems }))
    })
    .await
}

/// `model@version` from the two path segments (a number or an alias).
fn reference(model: &str, version: &str) -> Result<ModelRef, ApiError> {
    Ok(ModelRef {
        model: Name::new(model)?,
        selector: Selector::parse(version)?,
    })
}

pub async fn get_version(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<VersionView>, ApiError> {
    let reference = reference(&model, &version)?;
    let registry = registry(&state)?;
    blocking(move || {
        let number = registry.resolve(&reference)?;
        let model = &reference.model;
        let aliases = registry
            .aliases(model)?
            .into_iter()
            .filter(|(_, v)| *v == number)
            .map(|(alias, _)| alias)
            .collect();
        Ok(Json(VersionView {
            version: registry.version(model, number)?,
            aliases,
            evals: registry.evals(model, number)?,
        }))
    })
    .await
}

/// The version of `model` a deployment serves, or the journal keeps in force (a version that
/// failed to restore is still the one to come back).
fn served(state: &AppState, model: &Name) -> Option<u32> {
    if let Some(deployment) = state.server.get(model.as_str()) {
        return Some(deployment.version);
    }
    let (entries, _) = kiln_core::deploy::read(&state.home).ok()?;
    kiln_core::deploy::in_force(&entries).get(model).map(|e| e.to)
}

fn registry_changed(state: &AppState) {
    state
        .hub
        .publish(&Event::Registry(RegistryChanged { at: now_rfc3339() }));
}

/// Removes a version (`?force=true` also drops the aliases pointing at it). The version a
/// deployment serves is refused, forced or not.
pub async fn delete_version(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    Query(q): Query<RemoveQuery>,
) -> Result<Json<VersionRemoved>, ApiError> {
    let reference = reference(&model, &version)?;
    let registry = registry(&state)?;
    let number = registry.resolve(&reference)?;
    let model = reference.model;
    if served(&state, &model) == Some(number) {
        return Err(ApiError::conflict(format!(
            "{model}@{number} is being served; roll back (`kiln rollback {model}`) or deploy another version first"
        )));
    }
    let removed = blocking({
        let model = model.clone();
        move || Ok(registry.remove_version(&registry.lock()?, &model, number, q.force)?)
    })
    .await?;
    registry_changed(&state);
    Ok(Json(VersionRemoved {
        model,
        removed: number,
        aliases_removed: removed,
    }))
}

/// Refuses moving or removing `production` away from what a deployment serves: the alias
/// follows deploys and rollbacks.
fn check_production(state: &AppState, model: &Name, alias: &Name, target: Option<u32>) -> Result<(), ApiError> {
    let Some(serving) = served(state, model).filter(|_| alias.as_str() == PRODUCTION) else {
        return Ok(());
    };
    if target == Some(serving) {
        return Ok(());
    }
    let how = match target {
        Some(v) => format!("`kiln deploy {model}@{v}` serves it and moves the alias"),
        None => format!("roll back or deploy to move it; it cannot be removed while {model} is deployed"),
    };
    Err(ApiError::conflict(format!(
        "{model}@{PRODUCTION} follows the deployment, which serves version {serving}: {how}"
    )))
}

pub async fn set_alias(
    State(state): State<AppState>,
    Path((model, alias)): Path<(String, String)>,
    Body(body): Body<AliasRequest>,
) -> Result<Json<AliasSet>, ApiError> {
    let (model, alias) = (Name::new(&model)?, Name::new(&alias)?);
    let registry = registry(&state)?;
    let target = ModelRef {
        model: model.clone(),
        selector: body.version,
    };
    let version = registry.resolve(&target)?;
    check_production(&state, &model, &alias, Some(version))?;
    let set = AliasSet { model, alias, version };
    let answer = set.clone();
    blocking(move || Ok(registry.set_alias(&registry.lock()?, &set.model, &set.alias, set.version)?)).await?;
    registry_changed(&state);
    Ok(Json(answer))
}

pub async fn remove_alias(
    State(state): State<AppState>,
    Path((model, alias)): Path<(String, String)>,
) -> Result<Json<AliasRemoved>, ApiError> {
    let (model, alias) = (Name::new(&model)?, Name::new(&alias)?);
    check_production(&state, &model, &alias, None)?;
    let registry = registry(&state)?;
    let (m, a) = (model.clone(), alias.clone());
    let was = blocking(move || Ok(registry.remove_alias(&registry.lock()?, &m, &a)?)).await?;
    registry_changed(&state);
    Ok(Json(AliasRemoved { model, alias, was }))
}

/// Imports weights in a `kilnd import` child process: parsing a foreign file and running its
/// first forward pass cannot take the daemon down with it.
pub async fn import(
    State(state): State<AppState>,
    Path(model): Path<String>,
    Body(request): Body<ImportRequest>,
) -> Result<Json<VersionManifest>, ApiError> {
    let model = Name::new(&model)?;
    if !request.weights.is_absolute() {
        return Err(ApiError::unprocessable(format!(
            "the weights path {} must be absolute: kilnd does not know the client's working directory",
            request.weights.display()
        )));
    }
    let kilnd = crate::daemon::supervisor::kilnd_for_children()
        .map_err(|e| ApiError::internal(format!("cannot find kilnd to run the import: {e}")))?;
    let mut kilnd = tokio::process::Command::from(kilnd);
    kilnd
        .env("KILN_HOME", &state.home)
        .args(["import", "--json", "--model", model.as_str(), "--weights"])
        .arg(&request.weights)
        .args(["--task", &request.task, "--description", &request.description])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(arch) = request.arch {
        kilnd.args(["--arch", &arch.to_string()]);
    }
    if let Some(config) = &request.config {
        kilnd.args(["--config", &config.to_string()]);
    }
    if request.pytorch_layout {
        kilnd.arg("--pytorch-layout");
    }
    if request.require_signature {
        kilnd.arg("--require-signature");
    }
    if let Some(license) = &request.license {
        kilnd.args(["--license", &license.id]);
        if let Some(name) = &license.name {
            kilnd.args(["--license-name", name]);
        }
        if let Some(link) = &license.link {
            kilnd.args(["--license-link", link]);
        }
    }
    if request.card.is_some() {
        kilnd.arg("--card-stdin");
    }
    let mut child = kilnd
        .spawn()
        .map_err(|e| ApiError::internal(format!("cannot run kilnd import: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let card = request.card.unwrap_or_default();
        // The child reads the card only with --card-stdin; a closed pipe is its answer.
        let _ = stdin.write_all(card.as_bytes()).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| ApiError::internal(format!("cannot run kilnd import: {e}")))?;
    if out.status.success() {
        registry_changed(&state);
        return serde_json::from_slice(&out.stdout)
            .map(Json)
            .map_err(|e| ApiError::internal(format!("kilnd import answered something unreadable: {e}")));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The child's last error, which may run over several lines (a tensor per line).
    const ERROR: &str = "kilnd: error: ";
    let message = match stderr.rfind(ERROR) {
        Some(at) => stderr[at + ERROR.len()..].trim(),
        None => stderr.trim(),
    }
    .to_owned();
    Err(match out.status.code() {
        Some(2) => ApiError::unprocessable(message),
        Some(3) => ApiError::not_found(message),
        _ => ApiError::internal(message),
    })
}

/// Re-hashes every blob and checks that every manifest's blobs are stored.
pub async fn verify(State(state): State<AppState>) -> Result<Json<VerifyReport>, ApiError> {
    let registry = registry(&state)?;
    blocking(move || {
        let (blobs_checked, corrupt) = registry.blobs().verify_all()?;
        let listing = registry.scan()?;
        let mut missing_blobs = Vec::new();
        for v in listing.models.iter().flat_map(|m| &m.versions) {
            for (role, digest) in &v.draft.blobs {
                if !registry.blobs().contains(digest) {
                    missing_blobs.push(MissingBlob {
                        version: format!("{}@{}", v.model, v.version),
                        role: role.clone(),
                        digest: digest.clone(),
                    });
                }
            }
        }
        let corrupt_blobs: Vec<CorruptBlob> = corrupt
            .into_iter()
            .map(|p| CorruptBlob {
                path: p.path,
                reason: p.reason,
            })
            .collect();
        let ok = corrupt_blobs.is_empty() && missing_blobs.is_empty() && listing.problems.is_empty();
        Ok(Json(VerifyReport {
            blobs_checked,
            corrupt_blobs,
            missing_blobs,
            problems: listing.problems,
            ok,
        }))
    })
    .await
}

/// One blob (an eval report, a vocabulary, weights), verified against its digest on the way.
pub async fn get_blob(State(state): State<AppState>, Path(digest): Path<String>) -> Result<Response, ApiError> {
    let digest: Digest = digest.parse()?;
    let registry: Registry = registry(&state)?;
    if !registry.blobs().contains(&digest) {
        return Err(ApiError::not_found(format!("no blob {digest}")));
    }
    let bytes = blocking(move || Ok(registry.blobs().read(&digest)?)).await?;
    let kind = if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, kind)], bytes).into_response())
}

/// Every version's signature status (re-hashing only blobs whose size or mtime changed).
pub async fn list_signatures(State(state): State<AppState>) -> Result<Json<Signatures>, ApiError> {
    let registry = registry(&state)?;
    let verifier = state.server.signing.clone();
    blocking(move || {
        let listing = registry.scan()?;
        let trust = crate::signing::trusted();
        let versions = listing
            .models
            .iter()
            .flat_map(|m| &m.versions)
            .map(|v| VersionSignature {
                model: v.model.clone(),
                version: v.version,
                status: verifier.status_with(&registry, v, &trust),
            })
            .collect();
        Ok(Json(Signatures { versions }))
    })
    .await
}

/// One version's signature status, with its bundle when it has one.
pub async fn get_signature(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<SignatureView>, ApiError> {
    let reference = reference(&model, &version)?;
    let registry = registry(&state)?;
    let verifier = state.server.signing.clone();
    blocking(move || {
        let number = registry.resolve(&reference)?;
        let manifest = registry.version(&reference.model, number)?;
        let status = verifier.status(&registry, &manifest);
        let bundle = registry
            .signature(&reference.model, number)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_str(&b.to_json()).ok());
        Ok(Json(SignatureView {
            model: reference.model,
            version: number,
            status,
            bundle,
        }))
    })
    .await
}

/// Stores a signature the client made: only one by a trusted key over exactly the
/// version's files as they are now (422 otherwise, with the reason).
pub async fn sign(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    Body(request): Body<SignRequest>,
) -> Result<Json<SignatureView>, ApiError> {
    let reference = reference(&model, &version)?;
    let registry = registry(&state)?;
    let verifier = state.server.signing.clone();
    let view = blocking(move || {
        let bundle = Bundle::from_json(&request.bundle.to_string()).map_err(|e| ApiError::unprocessable(e.to_string()))?;
        let number = registry.resolve(&reference)?;
        let manifest = registry.version(&reference.model, number)?;
        let (keys, dir) = crate::signing::trusted().map_err(ApiError::unprocessable)?;
        let status = kiln_core::registry::signature::check_bundle(&registry, &manifest, &bundle, &keys, &dir, &|p| {
            verifier.hash(p)
        });
        if !status.is_verified() {
            let what = format!("{}@{number}", reference.model);
            return Err(ApiError::unprocessable(match &status {
                SignatureStatus::Tampered { .. } => format!(
                    "the signature does not match {what}'s files: {}; `kiln models verify {what}` shows the version as stored",
                    status.describe()
                ),
                _ => format!("cannot accept the signature of {what}: {}", status.describe()),
            }));
        }
        registry.write_signature(&registry.lock()?, &reference.model, number, &bundle)?;
        Ok(Json(SignatureView {
            model: reference.model,
            version: number,
            status,
            bundle: serde_json::from_str(&bundle.to_json()).ok(),
        }))
    })
    .await?;
    registry_changed(&state);
    Ok(view)
}
