//! `/api/v1/{users,teams,schedules,escalation-policies}` (CRUD, validated together)
//! plus `schedules/{id}/oncall?at=`, `schedules/{id}/shifts?from=&to=`,
//! `schedules/{id}/ical` and `escalation-policies/{id}/preview?start=`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use signalcraft_core::escalation::PreviewEntry;
use signalcraft_core::incident::Urgency;
use signalcraft_core::oncall::Shift;

use crate::auth::{Auth, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::oncall::Kind;
use crate::state::AppState;

use super::parse_time;

macro_rules! crud {
    ($list:ident, $create:ident, $get:ident, $put:ident, $del:ident, $kind:expr, $path:literal, $role:expr) => {
        #[doc = concat!("`GET /api/v1/", $path, "`.")]
        #[utoipa::path(get, path = concat!("/api/v1/", $path), tag = "oncall", security(("bearer" = [])),
            responses((status = 200, body = Vec<Object>)))]
        pub async fn $list(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<serde_json::Value>>> {
            p.require(Role::Viewer)?;
            Ok(Json(s.oncall.list($kind)))
        }

        #[doc = concat!("`POST /api/v1/", $path, "`: create (409 if the id exists).")]
        #[utoipa::path(post, path = concat!("/api/v1/", $path), tag = "oncall", request_body = Object, security(("bearer" = [])),
            responses((status = 201, body = Object),
                (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
                (status = 409, body = crate::error::Problem, content_type = "application/problem+json")))]
        pub async fn $create(State(s): State<AppState>, Auth(p): Auth, ApiJson(v): ApiJson<serde_json::Value>) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
            p.require($role)?;
            let id = id_of(&v)?;
            if s.oncall.get($kind, &id).is_some() {
                return Err(ApiError::conflict(format!("{} {id:?} already exists", $kind.noun())).with_field("id"));
            }
            let out = write(&s, &p, $kind, &id, Some(v)).await?;
            Ok((StatusCode::CREATED, Json(out)))
        }

        #[doc = concat!("`GET /api/v1/", $path, "/{id}`.")]
        #[utoipa::path(get, path = concat!("/api/v1/", $path, "/{id}"), tag = "oncall", params(("id" = String, Path)), security(("bearer" = [])),
            responses((status = 200, body = Object), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
        pub async fn $get(State(s): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
            p.require(Role::Viewer)?;
            s.oncall.get($kind, &id).map(Json).ok_or_else(|| ApiError::not_found($kind.noun(), &id))
        }

        #[doc = concat!("`PUT /api/v1/", $path, "/{id}`: create or replace.")]
        #[utoipa::path(put, path = concat!("/api/v1/", $path, "/{id}"), tag = "oncall", params(("id" = String, Path)), request_body = Object, security(("bearer" = [])),
            responses((status = 200, body = Object), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
        pub async fn $put(State(s): State<AppState>, Auth(p): Auth, Path(id): Path<String>, ApiJson(v): ApiJson<serde_json::Value>) -> ApiResult<Json<serde_json::Value>> {
            p.require($role)?;
            if id_of(&v)? != id {
                return Err(ApiError::invalid("id", "the body's id must match the path"));
            }
            write(&s, &p, $kind, &id, Some(v)).await.map(Json)
        }

        #[doc = concat!("`DELETE /api/v1/", $path, "/{id}`.")]
        #[utoipa::path(delete, path = concat!("/api/v1/", $path, "/{id}"), tag = "oncall", params(("id" = String, Path)), security(("bearer" = [])),
            responses((status = 204), (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
                (status = 400, description = "Still referenced", body = crate::error::Problem, content_type = "application/problem+json")))]
        pub async fn $del(State(s): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
            p.require($role)?;
            write(&s, &p, $kind, &id, None).await?;
            Ok(StatusCode::NO_CONTENT)
        }
    };
}

crud!(
    list_users,
    create_user,
    get_user,
    put_user,
    delete_user,
    Kind::Users,
    "users",
    Role::Admin
);
crud!(
    list_teams,
    create_team,
    get_team,
    put_team,
    delete_team,
    Kind::Teams,
    "teams",
    Role::Admin
);
crud!(
    list_schedules,
    create_schedule,
    get_schedule,
    put_schedule,
    delete_schedule,
    Kind::Schedules,
    "schedules",
    Role::Manager
);
crud!(
    list_policies,
    create_policy,
    get_policy,
    put_policy,
    delete_policy,
    Kind::EscalationPolicies,
    "escalation-policies",
    Role::Manager
);

/// On-call routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route(
            "/users/{id}",
            get(get_user).put(put_user).delete(delete_user),
        )
        .route("/teams", get(list_teams).post(create_team))
        .route(
            "/teams/{id}",
            get(get_team).put(put_team).delete(delete_team),
        )
        .route("/schedules", get(list_schedules).post(create_schedule))
        .route(
            "/schedules/{id}",
            get(get_schedule).put(put_schedule).delete(delete_schedule),
        )
        .route("/schedules/{id}/oncall", get(oncall_at))
        .route("/schedules/{id}/shifts", get(shifts))
        .route("/schedules/{id}/ical", get(ical))
        .route(
            "/escalation-policies",
            get(list_policies).post(create_policy),
        )
        .route(
            "/escalation-policies/{id}",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/escalation-policies/{id}/preview", get(preview))
        .route("/oncall/apply", axum::routing::post(apply))
}

fn id_of(v: &serde_json::Value) -> Result<String, ApiError> {
    v.get("id")
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::invalid("id", "id is required and must be a non-empty string"))
}

async fn write(
    s: &AppState,
    p: &crate::auth::Principal,
    kind: Kind,
    id: &str,
    value: Option<serde_json::Value>,
) -> ApiResult<serde_json::Value> {
    let (put, del, action) = match value {
        Some(v) => (vec![(kind, v)], vec![], "put"),
        None => (vec![], vec![(kind, id.to_string())], "delete"),
    };
    s.oncall.apply(s.store.as_ref(), put, del).await?;
    s.oncall_changed();
    s.engine
        .engine
        .audit_write(
            p.actor(),
            &format!("{}.{action}", kind.noun()),
            &format!("{}/{id}", kind.noun()),
            serde_json::Value::Null,
        )
        .await?;
    Ok(s.oncall.get(kind, id).unwrap_or(serde_json::Value::Null))
}

/// Query of `GET .../oncall`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct AtQuery {
    /// RFC 3339 instant (default now).
    pub at: Option<String>,
}

/// Who is on call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OnCallNow {
    /// Schedule id.
    pub schedule: String,
    /// The instant asked about.
    pub at: String,
    /// User id, or absent in a gap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The layer or override that put them there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `GET /api/v1/schedules/{id}/oncall?at=`.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/oncall", tag = "oncall", params(("id" = String, Path), AtQuery), security(("bearer" = [])),
    responses((status = 200, body = OnCallNow), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn oncall_at(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AtQuery>,
) -> ApiResult<Json<OnCallNow>> {
    p.require(Role::Viewer)?;
    let at = parse_time("at", q.at.as_ref())?.unwrap_or_else(|| s.now());
    let dir = s.oncall.directory();
    let sch = dir
        .schedule(&id)
        .ok_or_else(|| ApiError::not_found("schedule", &id))?;
    let who = sch.who_is_on_call(at);
    Ok(Json(OnCallNow {
        schedule: id,
        at: at.to_string(),
        user: who.map(|w| w.user.to_string()),
        source: who.map(|w| sch.source_name(w.source)),
    }))
}

/// Query of `GET .../shifts` and `.../ical`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct RangeQuery {
    /// Start (RFC 3339; default now).
    pub from: Option<String>,
    /// End (RFC 3339; default `from` + 7 days; at most 366 days after `from`).
    pub to: Option<String>,
}

fn range(s: &AppState, q: &RangeQuery) -> Result<(Timestamp, Timestamp), ApiError> {
    let from = parse_time("from", q.from.as_ref())?.unwrap_or_else(|| s.now());
    let to = match parse_time("to", q.to.as_ref())? {
        Some(t) => t,
        None => from
            .checked_add(SignedDuration::from_hours(7 * 24))
            .map_err(|e| ApiError::invalid("from", e.to_string()))?,
    };
    if to <= from {
        return Err(ApiError::invalid("to", "to must be after from"));
    }
    if to.duration_since(from) > SignedDuration::from_hours(366 * 24) {
        return Err(ApiError::invalid(
            "to",
            "the range may span at most 366 days",
        ));
    }
    Ok((from, to))
}

/// `GET /api/v1/schedules/{id}/shifts?from=&to=`: final shifts.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/shifts", tag = "oncall", params(("id" = String, Path), RangeQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<Object>), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn shifts(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<Vec<Shift>>> {
    p.require(Role::Viewer)?;
    let (from, to) = range(&s, &q)?;
    let dir = s.oncall.directory();
    let sch = dir
        .schedule(&id)
        .ok_or_else(|| ApiError::not_found("schedule", &id))?;
    Ok(Json(sch.render(from, to)))
}

/// `GET /api/v1/schedules/{id}/ical`: iCalendar feed of final shifts.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/ical", tag = "oncall", params(("id" = String, Path), RangeQuery), security(("bearer" = [])),
    responses((status = 200, description = "text/calendar", content_type = "text/calendar", body = String)))]
pub async fn ical(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Response> {
    p.require(Role::Viewer)?;
    let (from, to) = range(&s, &q)?;
    let dir = s.oncall.directory();
    let sch = dir
        .schedule(&id)
        .ok_or_else(|| ApiError::not_found("schedule", &id))?;
    let body =
        signalcraft_core::oncall::ical::schedule_calendar(sch, &|u| dir.user(u), from, to, s.now());
    Ok((
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        body,
    )
        .into_response())
}

/// Query of `GET .../preview`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct PreviewQuery {
    /// When the hypothetical incident opens (RFC 3339; default now).
    pub start: Option<String>,
    /// `high` (default) or `low`.
    pub urgency: Option<String>,
}

/// `GET /api/v1/escalation-policies/{id}/preview?start=`: who would be paged, when, how.
#[utoipa::path(get, path = "/api/v1/escalation-policies/{id}/preview", tag = "oncall", params(("id" = String, Path), PreviewQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<Object>), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn preview(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> ApiResult<Json<Vec<PreviewEntry>>> {
    p.require(Role::Viewer)?;
    let start = parse_time("start", q.start.as_ref())?.unwrap_or_else(|| s.now());
    let urgency = match q.urgency.as_deref() {
        None | Some("high") => Urgency::High,
        Some("low") => Urgency::Low,
        Some(o) => {
            return Err(ApiError::invalid(
                "urgency",
                format!("urgency must be high or low, got {o:?}"),
            ));
        }
    };
    let dir = s.oncall.directory();
    Ok(Json(signalcraft_core::escalation::preview(
        &dir, &id, start, urgency, 0,
    )?))
}

/// `POST /api/v1/oncall/apply`: config as code (what `signalcraft apply --server` calls).
#[utoipa::path(post, path = "/api/v1/oncall/apply", tag = "oncall", request_body = crate::apply::ApplyRequest, security(("bearer" = [])),
    responses((status = 200, body = crate::apply::ApplyResponse),
        (status = 400, description = "The desired state is invalid (path named)", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn apply(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<crate::apply::ApplyRequest>,
) -> ApiResult<Json<crate::apply::ApplyResponse>> {
    p.require(if req.users.is_empty() && req.teams.is_empty() {
        Role::Manager
    } else {
        Role::Admin
    })?;
    let services_now = s
        .engine
        .engine
        .list_services()
        .into_iter()
        .map(|svc| {
            (
                svc.id.clone(),
                serde_json::to_value(&svc).unwrap_or_default(),
            )
        })
        .collect();
    let resp = crate::apply::plan_and_apply(
        s.store.as_ref(),
        &s.oncall,
        &req,
        services_now,
        crate::apply::ServiceWriter::Engine(&s.engine.engine, p.actor()),
    )
    .await?;
    if resp.applied {
        s.oncall_changed();
        s.engine
            .engine
            .audit_write(
                p.actor(),
                "oncall.apply",
                "oncall/apply",
                serde_json::json!({"changes": resp.changes}),
            )
            .await?;
    }
    Ok(Json(resp))
}
