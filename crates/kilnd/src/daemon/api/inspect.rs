//! Model debugging routes: the samples of a version's latest evaluation (a confusion-matrix
//! cell, the worst rows, the rows another version disagrees on) and one sample as the model
//! saw it.

use axum::Json;
use axum::extract::{Path, State};
use kiln_core::api::{InspectQuery, Inspection, SampleDetail};
use kiln_core::names::Name;

use super::{ApiError, AppState, Query, blocking};
use crate::inspect::InspectError;

impl From<InspectError> for ApiError {
    fn from(e: InspectError) -> Self {
        match e {
            InspectError::NotFound(m) => ApiError::not_found(m),
            InspectError::Unprocessable(m) => ApiError::unprocessable(m),
            InspectError::Failed(e) => ApiError::internal(format!("{e:#}")),
        }
    }
}

fn version_of(text: &str) -> Result<u32, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("'{text}' is not a version number")))
}

pub async fn inspect(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    Query(query): Query<InspectQuery>,
) -> Result<Json<Inspection>, ApiError> {
    let (model, version) = (Name::new(&model)?, version_of(&version)?);
    let registry = super::registry(&state)?;
    blocking(move || Ok(Json(crate::inspect::inspect(&registry, &model, version, &query)?))).await
}

pub async fn sample(
    State(state): State<AppState>,
    Path((model, version, index)): Path<(String, String, String)>,
) -> Result<Json<SampleDetail>, ApiError> {
    let (model, version) = (Name::new(&model)?, version_of(&version)?);
    let index: u32 = index
        .parse()
        .map_err(|_| ApiError::bad_request(format!("'{index}' is not a row index")))?;
    let registry = super::registry(&state)?;
    blocking(move || Ok(Json(crate::inspect::sample(&registry, &model, version, index)?))).await
}
