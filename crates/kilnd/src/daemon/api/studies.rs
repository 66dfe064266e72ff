//! Study routes: create (the spec is checked whole before anything is written or queued:
//! a bad one is a 422 naming its line), list, show, stop, resume, promote.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kiln_core::api::{PromoteRequest, StudyCreate, StudyList, StudyView, VersionManifest};
use kiln_core::names::Name;
use kiln_core::study::state::StudyError;

use super::{ApiError, AppState, Body, blocking};
use crate::daemon::studies::StudyFailure;

impl From<StudyFailure> for ApiError {
    fn from(e: StudyFailure) -> Self {
        let code = match &e {
            StudyFailure::Spec(_) => StatusCode::UNPROCESSABLE_ENTITY,
            StudyFailure::Study(StudyError::Unknown(_)) | StudyFailure::NotFound(_) => StatusCode::NOT_FOUND,
            StudyFailure::Study(StudyError::Exists(_)) | StudyFailure::Conflict(_) => StatusCode::CONFLICT,
            StudyFailure::Study(_) | StudyFailure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(code, e.to_string())
    }
}

fn name(text: &str) -> Result<Name, ApiError> {
    Ok(Name::new(text)?)
}

pub async fn list(State(state): State<AppState>) -> Json<StudyList> {
    let (studies, problems) = state.studies.list();
    Json(StudyList { studies, problems })
}

pub async fn get(State(state): State<AppState>, Path(study): Path<String>) -> Result<Json<StudyView>, ApiError> {
    Ok(Json(state.studies.get(&name(&study)?)?))
}

/// Checks the spec and starts the study; answers 201 with it.
pub async fn create(
    State(state): State<AppState>,
    Body(request): Body<StudyCreate>,
) -> Result<(StatusCode, Json<StudyView>), ApiError> {
    let view = blocking(move || {
        Ok(state
            .studies
            .create(&state.supervisor, &request.source, &request.file)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn stop(State(state): State<AppState>, Path(study): Path<String>) -> Result<Json<StudyView>, ApiError> {
    let study = name(&study)?;
    blocking(move || Ok(Json(state.studies.stop(&state.supervisor, &study)?))).await
}

pub async fn resume(State(state): State<AppState>, Path(study): Path<String>) -> Result<Json<StudyView>, ApiError> {
    let study = name(&study)?;
    blocking(move || Ok(Json(state.studies.resume(&state.supervisor, &study)?))).await
}

/// Registers a trial's best checkpoint as a version; a `registry` event follows.
pub async fn promote(
    State(state): State<AppState>,
    Path(study): Path<String>,
    Body(request): Body<PromoteRequest>,
) -> Result<(StatusCode, Json<VersionManifest>), ApiError> {
    let study = name(&study)?;
    let hub = state.hub.clone();
    let manifest = blocking(move || Ok(state.studies.promote(&study, request.trial)?)).await?;
    hub.publish(&kiln_core::api::Event::Registry(kiln_core::api::RegistryChanged {
        at: kiln_core::registry::now_rfc3339(),
    }));
    Ok((StatusCode::CREATED, Json(manifest)))
}
