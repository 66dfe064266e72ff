//! Deployment routes: what serves, deploy, rollback, the journal, and a test request on one
//! row of the deployed version's own dataset.

use axum::Json;
use axum::extract::{Path, State};
use kiln_core::api::{
    Canaries, DeployRequest, Deployments, GateRequest, GateResult, Journal, JournalEntry, JournalQuery,
    RollbackRequest, TryRequest, TryResult,
};
use kiln_core::deploy::{Action, GOLDEN_SAMPLES};
use kiln_core::names::{ModelRef, Name, Selector};

use super::{ApiError, AppState, Body, Query, blocking, registry};
use crate::serve::canary::Canary;
use crate::serve::{DeployError, Gates, Plan, Server};

/// Deployments in force with live figures, where inference listens, and restore problems.
pub async fn list(State(state): State<AppState>) -> Json<Deployments> {
    let server = &state.server;
    let listener = server.listener.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let problems = server.problems.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(Deployments {
        inference_address: listener.as_ref().ok().cloned(),
        inference_error: listener.err(),
        ready: server.is_ready(),
        deployments: server.views(),
        problems,
    })
}

/// The journal, newest last (the last `limit` entries when given).
pub async fn journal(State(state): State<AppState>, Query(q): Query<JournalQuery>) -> Result<Json<Journal>, ApiError> {
    let home = state.home.clone();
    blocking(move || {
        let (mut entries, problems) =
            kiln_core::deploy::read(&home).map_err(|e| ApiError::internal(format!("cannot read the journal: {e}")))?;
        let skip = q.limit.map_or(0, |n| entries.len().saturating_sub(n));
        entries.drain(..skip);
        Ok(Json(Journal { entries, problems }))
    })
    .await
}

/// The version a deploy or a gate check names: `version`, or the model's latest.
fn resolve(state: &AppState, model: Name, version: Option<Selector>) -> Result<(ModelRef, u32), ApiError> {
    let reference = ModelRef {
        model,
        selector: version.unwrap_or(Selector::Latest),
    };
    let version = registry(state)?.resolve(&reference)?;
    Ok((reference, version))
}

/// Load, warm up, switch.
pub async fn deploy(
    State(state): State<AppState>,
    Body(body): Body<DeployRequest>,
) -> Result<Json<JournalEntry>, ApiError> {
    let (reference, version) = resolve(&state, body.model, body.version)?;
    let server = state.server.clone();
    blocking(move || {
        let gates = Gates::Run {
            rows: body.gate_samples.unwrap_or(GOLDEN_SAMPLES).max(1),
            force: body.force,
        };
        let reason = if body.force { "deploy --force" } else { "deploy" };
        let plan = Plan {
            action: Action::Deploy,
            reason: reason.to_owned(),
            gates,
            canary: body.canary,
        };
        let entry = server.deploy(&reference.model, version, body.batching, plan)?;
        // A shadow is never promoted by itself: the operator ends it.
        if entry.action == Action::Canary {
            server.watch_canary(reference.model.clone());
        }
        Ok(Json(entry))
    })
    .await
}

/// A deploy's gates without the switch: what a deploy of the version would find now.
pub async fn check_gates(
    State(state): State<AppState>,
    Body(body): Body<GateRequest>,
) -> Result<Json<GateResult>, ApiError> {
    let (reference, version) = resolve(&state, body.model, body.version)?;
    let server = state.server.clone();
    blocking(move || {
        let rows = body.gate_samples.unwrap_or(GOLDEN_SAMPLES).max(1);
        let (current, report) = server.check_gates(&reference.model, version, rows)?;
        let passed = report.failed().next().is_none();
        Ok(Json(GateResult {
            passed,
            model: reference.model,
            version,
            current,
            report,
        }))
    })
    .await
}

/// Back to the version before the one in force, or to `to`.
pub async fn rollback(
    State(state): State<AppState>,
    Path(model): Path<String>,
    Body(body): Body<RollbackRequest>,
) -> Result<Json<JournalEntry>, ApiError> {
    let model = Name::new(&model)?;
    let server = state.server.clone();
    blocking(move || Ok(Json(server.rollback(&model, body.to)?))).await
}

/// One row of the deployed version's dataset through the live endpoint.
pub async fn try_sample(
    State(state): State<AppState>,
    Path(model): Path<String>,
    Body(body): Body<TryRequest>,
) -> Result<Json<TryResult>, ApiError> {
    let model = Name::new(&model)?;
    let server = state.server.clone();
    blocking(move || Ok(Json(crate::serve::sample::try_sample(&server, &model, body.index)?))).await
}

/// Canaries in progress, with each side's figures since the start.
pub async fn canaries(State(state): State<AppState>) -> Json<Canaries> {
    Json(Canaries {
        canaries: state.server.canary_views(),
    })
}

/// Promotes a canary now: its candidate serves everything.
pub async fn promote_canary(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<JournalEntry>, ApiError> {
    end_canary(state, model, |server, model, c| {
        let reason = format!(
            "{} of v{} promoted by hand over v{}: {}",
            c.kind(),
            c.candidate.version,
            c.stable,
            server.canary_figures(model, c)
        );
        server.promote(model, &reason)
    })
    .await
}

/// Aborts a canary: the version in force answers everything again.
pub async fn abort_canary(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<JournalEntry>, ApiError> {
    end_canary(state, model, |server, model, c| {
        let reason = format!(
            "{} of v{} aborted by hand: {}",
            c.kind(),
            c.candidate.version,
            server.canary_figures(model, c)
        );
        server.abort(model, &reason)
    })
    .await
}

/// Ends `model`'s running canary with `end` (404 when none runs).
async fn end_canary(
    state: AppState,
    model: String,
    end: impl FnOnce(&Server, &Name, &Canary) -> Result<JournalEntry, DeployError> + Send + 'static,
) -> Result<Json<JournalEntry>, ApiError> {
    let model = Name::new(&model)?;
    let server = state.server.clone();
    blocking(move || {
        let canary = server
            .canary(&model)
            .ok_or_else(|| ApiError::not_found(format!("no canary or shadow of {model} is running")))?;
        Ok(Json(end(&server, &model, &canary)?))
    })
    .await
}
