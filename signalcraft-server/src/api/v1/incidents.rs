//! `/api/v1/incidents`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use signalcraft_core::delivery::DeliveryRecord;
use signalcraft_core::engine::{AlertRecord, IncidentAction};
use signalcraft_core::incident::{
    Incident, IncidentFilter, IncidentState, Role as IncidentRole, TimelineEntry, Urgency,
};
use signalcraft_core::model::{ChangeEvent, Link};

use crate::auth::{Auth, Permission, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

use super::parse_num;

/// Incident routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/incidents", get(list))
        .route("/incidents/{id}", get(get_one))
        .route("/incidents/{id}/acknowledge", post(acknowledge))
        .route("/incidents/{id}/mitigate", post(mitigate))
        .route("/incidents/{id}/resolve", post(resolve))
        .route("/incidents/{id}/close", post(close))
        .route("/incidents/{id}/reassign", post(reassign))
        .route("/incidents/{id}/page", post(page_user))
        .route("/incidents/{id}/escalate", post(escalate))
        .route("/incidents/{id}/notes", post(add_note))
        .route("/incidents/{id}/roles", post(assign_role))
}

/// Query of `GET /incidents`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Comma-separated states (`open,acknowledged`); default any.
    pub state: Option<String>,
    /// Service id.
    pub service: Option<String>,
    /// `high` or `low`.
    pub urgency: Option<String>,
    /// Assigned user (assignee or role holder).
    pub user: Option<String>,
    /// Cursor: the `next` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 50, max 500).
    pub limit: Option<String>,
}

/// One page of incidents.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentPage {
    /// Incidents, newest first.
    #[schema(value_type = Vec<crate::api::schemas::Incident>)]
    pub items: Vec<Incident>,
    /// Cursor for the next page (absent at the end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /api/v1/incidents`.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = IncidentPage),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<IncidentPage>> {
    p.require(Role::Viewer)?;
    let mut states = Vec::new();
    if let Some(st) = &q.state {
        for (i, part) in st.split(',').filter(|x| !x.is_empty()).enumerate() {
            states.push(IncidentState::parse(part.trim()).ok_or_else(|| {
                ApiError::invalid(
                    "state",
                    format!(
                        "state[{i}] {part:?} is not one of open, acknowledged, mitigated, resolved, closed"
                    ),
                )
            })?);
        }
    }
    let urgency = match q.urgency.as_deref() {
        None => None,
        Some("high") => Some(Urgency::High),
        Some("low") => Some(Urgency::Low),
        Some(o) => {
            return Err(ApiError::invalid(
                "urgency",
                format!("urgency must be high or low, got {o:?}"),
            ));
        }
    };
    let limit: usize = parse_num("limit", q.limit.as_ref())?.unwrap_or(0);
    if limit > 500 {
        return Err(ApiError::invalid("limit", "limit must be at most 500"));
    }
    let filter = IncidentFilter {
        states,
        service: q.service,
        urgency,
        user: q.user,
        before: q.cursor,
        limit,
    };
    // Closed incidents evicted from the engine's memory are listed from the store.
    let page = s.engine.engine.fetch_incidents(&filter).await?;
    Ok(Json(IncidentPage {
        items: page.items,
        next: page.next,
    }))
}

/// An incident with everything a responder needs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentDetail {
    /// The incident.
    #[schema(value_type = crate::api::schemas::Incident)]
    pub incident: Incident,
    /// Its timeline, oldest first.
    #[schema(value_type = Vec<crate::api::schemas::TimelineEntry>)]
    pub timeline: Vec<TimelineEntry>,
    /// Its alerts.
    #[schema(value_type = Vec<crate::api::schemas::AlertRecord>)]
    pub alerts: Vec<AlertRecord>,
    /// Every delivery attempt for it.
    #[schema(value_type = Vec<crate::api::schemas::DeliveryRecord>)]
    pub delivery_trail: Vec<DeliveryRecord>,
    /// Change events for its service in the change window, newest first.
    #[schema(value_type = Vec<crate::api::schemas::ChangeEvent>)]
    pub recent_changes: Vec<ChangeEvent>,
    /// Runbook links.
    #[schema(value_type = Vec<crate::api::schemas::Link>)]
    pub runbooks: Vec<Link>,
}

/// `GET /api/v1/incidents/{id}` (id or number).
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id or number")),
    security(("bearer" = [])),
    responses((status = 200, body = IncidentDetail),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<IncidentDetail>> {
    p.require(Role::Viewer)?;
    let e = &s.engine.engine;
    // From memory, or from the store once closed and evicted from memory.
    let incident = e.fetch_incident(&id).await?;
    let timeline = e.timeline(&incident.id).await?;
    let alerts = e.incident_alerts(&incident.id).await?;
    let delivery_trail = match &s.engine.delivery {
        Some(d) => d.log().trail(&incident.id).await?,
        None => Vec::new(),
    };
    let recent_changes = e.recent_changes_of(&incident, None);
    let runbooks = incident.runbooks.clone();
    Ok(Json(IncidentDetail {
        incident,
        timeline,
        alerts,
        delivery_trail,
        recent_changes,
        runbooks,
    }))
}

async fn act(
    s: &AppState,
    p: &crate::auth::Principal,
    id: &str,
    action: IncidentAction,
) -> ApiResult<Json<Incident>> {
    s.engine.act(id, action, p.actor()).await.map(Json)
}

/// `POST /api/v1/incidents/{id}/acknowledge`.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/acknowledge", tag = "incidents",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The updated incident", body = crate::api::schemas::Incident),
        (status = 409, description = "Not allowed in the current state", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn acknowledge(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Incident>> {
    p.require(Role::Responder)?;
    act(&s, &p, &id, IncidentAction::Acknowledge).await
}

/// `POST /api/v1/incidents/{id}/mitigate`.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/mitigate", tag = "incidents",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = crate::api::schemas::Incident), (status = 409, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn mitigate(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Incident>> {
    p.require(Role::Responder)?;
    act(&s, &p, &id, IncidentAction::Mitigate).await
}

/// `POST /api/v1/incidents/{id}/resolve`.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/resolve", tag = "incidents",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = crate::api::schemas::Incident), (status = 409, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn resolve(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Incident>> {
    p.require(Role::Responder)?;
    act(&s, &p, &id, IncidentAction::Resolve).await
}

/// `POST /api/v1/incidents/{id}/close`.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/close", tag = "incidents",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = crate::api::schemas::Incident), (status = 409, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn close(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Incident>> {
    p.require(Role::Responder)?;
    act(&s, &p, &id, IncidentAction::Close).await
}

/// Body of `POST .../reassign`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignBody {
    /// New escalation policy id (absent: none).
    #[serde(default)]
    pub escalation_policy: Option<String>,
    /// Users to assign directly.
    #[serde(default)]
    pub assignees: Vec<String>,
}

/// `POST /api/v1/incidents/{id}/reassign`.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/reassign", tag = "incidents",
    params(("id" = String, Path)), request_body = ReassignBody, security(("bearer" = [])),
    responses((status = 200, body = crate::api::schemas::Incident), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn reassign(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ReassignBody>,
) -> ApiResult<Json<Incident>> {
    p.require(Role::Responder)?;
    act(
        &s,
        &p,
        &id,
        IncidentAction::Reassign {
            escalation_policy: b.escalation_policy,
            assignees: b.assignees,
        },
    )
    .await
}

/// Body of `POST .../page`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageBody {
    /// User id to page.
    pub user: String,
    /// Message for them.
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /api/v1/incidents/{id}/page`: page one user now (needs `page_user`).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/page", tag = "incidents",
    params(("id" = String, Path)), request_body = PageBody, security(("bearer" = [])),
    responses((status = 200, body = crate::api::schemas::Incident), (status = 403, description = "Needs the page_user permission", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn page_user(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PageBody>,
) -> ApiResult<Json<Incident>> {
    p.require_permission(Role::Responder, Permission::PageUser)?;
    act(
        &s,
        &p,
        &id,
        IncidentAction::PageUser {
            user: b.user,
            message: b.message,
        },
    )
    .await
}

/// `POST /api/v1/incidents/{id}/escalate`: escalate now — the incident's escalation
/// policy moves to its next level immediately (that level is paged; the timeline and
/// the audit log record `escalated` by the caller).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/escalate", tag = "incidents",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The incident after escalating", body = crate::api::schemas::Incident),
        (status = 400, description = "The incident has no escalation policy", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Acknowledged, resolved, or already at the policy's last level", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn escalate(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Incident>> {
    p.require(Role::Responder)?;
    Ok(Json(s.engine.engine.escalate_now(&id, p.actor()).await?))
}

/// Body of `POST .../notes`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// Note text.
    pub text: String,
}

/// `POST /api/v1/incidents/{id}/notes`.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/notes", tag = "incidents",
    params(("id" = String, Path)), request_body = NoteBody, security(("bearer" = [])),
    responses((status = 200, body = crate::api::schemas::Incident), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn add_note(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<NoteBody>,
) -> ApiResult<Json<Incident>> {
    p.require(Role::Responder)?;
    act(&s, &p, &id, IncidentAction::Note(b.text)).await
}

/// Body of `POST .../roles`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `commander`, `scribe` or `comms`.
    pub role: String,
    /// User id.
    pub user: String,
}

/// `POST /api/v1/incidents/{id}/roles`.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/roles", tag = "incidents",
    params(("id" = String, Path)), request_body = RoleBody, security(("bearer" = [])),
    responses((status = 200, body = crate::api::schemas::Incident), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn assign_role(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RoleBody>,
) -> ApiResult<Json<Incident>> {
    p.require(Role::Responder)?;
    let role = IncidentRole::parse(&b.role)
        .ok_or_else(|| ApiError::invalid("role", "role must be commander, scribe or comms"))?;
    act(&s, &p, &id, IncidentAction::AssignRole(role, b.user)).await
}
