//! `/api/v1/incidents/{id}/remediations` and `/api/v1/remediations/{run}/{approve,reject}`
//! (only with the `remediation` cargo feature and `[features].remediation = true`).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::auth::{Auth, Permission, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Remediation routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/incidents/{id}/remediations", get(list).post(request))
        .route("/remediations/{run}/approve", post(approve))
        .route("/remediations/{run}/reject", post(reject))
}

fn rem(s: &AppState) -> ApiResult<&crate::remediation::Remediation> {
    s.remediation.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "remediation is not enabled ([features].remediation)",
        )
    })
}

/// Actions and runs of an incident.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentRemediations {
    /// Declared actions for the incident's service and route.
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<signalcraft_core::remediation::gate::RemediationAction>,
    /// Runs so far.
    #[schema(value_type = Vec<crate::api::schemas::RemediationRun>)]
    pub runs: Vec<serde_json::Value>,
}

/// `GET /api/v1/incidents/{id}/remediations`.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/remediations", tag = "remediation", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = IncidentRemediations)))]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<IncidentRemediations>> {
    p.require(Role::Viewer)?;
    let r = rem(&s)?;
    // Closed incidents evicted from memory are read from the store.
    let inc = s.engine.engine.fetch_incident(&id).await?;
    let (actions, runs) = r.for_incident(&inc.id, inc.service.as_deref(), Some(&inc.route));
    Ok(Json(IncidentRemediations { actions, runs }))
}

/// Body of a run request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Action id.
    pub action: String,
    /// Plan only.
    #[serde(default)]
    pub dry_run: bool,
}

/// A requested run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunAccepted {
    /// Run id.
    pub run: String,
    /// `pending_approval`, or `completed` for auto actions (with the record).
    pub state: String,
    /// The run's record, when it ran.
    #[schema(value_type = Option<crate::api::schemas::RemediationRecord>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<signalcraft_core::remediation::gate::RemediationRecord>,
}

/// `POST /api/v1/incidents/{id}/remediations`.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/remediations", tag = "remediation", params(("id" = String, Path)), request_body = RunRequest, security(("bearer" = [])),
    responses((status = 202, body = RunAccepted), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn request(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RunRequest>,
) -> ApiResult<(StatusCode, Json<RunAccepted>)> {
    p.require(Role::Responder)?;
    let r = rem(&s)?;
    let inc = s.engine.engine.fetch_incident(&id).await?;
    let (run, approved) = r.request(&b.action, &inc.id, p.actor(), b.dry_run)?;
    let record = if approved {
        Some(r.execute(&s.engine, &run).await?)
    } else {
        r.flush_audit(&s.engine).await?;
        None
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(RunAccepted {
            run,
            state: if record.is_some() {
                "completed"
            } else {
                "pending_approval"
            }
            .into(),
            record,
        }),
    ))
}

/// `POST /api/v1/remediations/{run}/approve` (needs `approve_remediation`): approves and runs.
#[utoipa::path(post, path = "/api/v1/remediations/{run}/approve", tag = "remediation", params(("run" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RunAccepted),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn approve(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(run): Path<String>,
) -> ApiResult<Json<RunAccepted>> {
    p.require_permission(Role::Responder, Permission::ApproveRemediation)?;
    let r = rem(&s)?;
    let user = p.actor().user_id().unwrap_or_default().to_string();
    if let Err(e) = r.approve(&run, &user, p.role) {
        r.flush_audit(&s.engine).await?;
        return Err(e);
    }
    let record = r.execute(&s.engine, &run).await?;
    Ok(Json(RunAccepted {
        run,
        state: "completed".into(),
        record: Some(record),
    }))
}

/// `POST /api/v1/remediations/{run}/reject`.
#[utoipa::path(post, path = "/api/v1/remediations/{run}/reject", tag = "remediation", params(("run" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 409, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn reject(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(run): Path<String>,
) -> ApiResult<StatusCode> {
    p.require_permission(Role::Responder, Permission::ApproveRemediation)?;
    let r = rem(&s)?;
    let user = p.actor().user_id().unwrap_or_default().to_string();
    let res = r.reject(&run, &user, p.role);
    r.flush_audit(&s.engine).await?;
    res?;
    Ok(StatusCode::NO_CONTENT)
}
