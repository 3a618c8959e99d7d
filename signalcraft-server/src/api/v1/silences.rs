//! `/api/v1/silences`: create (or update), expire, list.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::Deserialize;
use signalcraft_core::silence::{Silence, SilenceSpec, SilenceState};

use crate::auth::{Auth, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// Silence routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/silences", get(list).post(create))
        .route("/silences/{id}", delete(expire).get(get_one))
}

/// Query of `GET /silences`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// `pending`, `active` or `expired`.
    pub state: Option<String>,
}

/// `GET /api/v1/silences`.
#[utoipa::path(get, path = "/api/v1/silences", tag = "silences", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<crate::api::schemas::Silence>)))]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Silence>>> {
    p.require(Role::Viewer)?;
    let state = match q.state.as_deref() {
        None => None,
        Some("pending") => Some(SilenceState::Pending),
        Some("active") => Some(SilenceState::Active),
        Some("expired") => Some(SilenceState::Expired),
        Some(o) => {
            return Err(ApiError::invalid(
                "state",
                format!("state must be pending, active or expired, got {o:?}"),
            ));
        }
    };
    Ok(Json(s.engine.engine.list_silences(state)))
}

/// `GET /api/v1/silences/{id}`.
#[utoipa::path(get, path = "/api/v1/silences/{id}", tag = "silences", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = crate::api::schemas::Silence), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Silence>> {
    p.require(Role::Viewer)?;
    Ok(Json(s.engine.engine.get_silence(&id)?))
}

/// `POST /api/v1/silences`: create (or update, with `id`).
#[utoipa::path(post, path = "/api/v1/silences", tag = "silences", request_body = Object, security(("bearer" = [])),
    responses((status = 201, body = crate::api::schemas::Silence), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(spec): ApiJson<SilenceSpec>,
) -> ApiResult<(StatusCode, Json<Silence>)> {
    p.require(Role::Responder)?;
    let sil = s.engine.engine.put_silence(spec, p.actor()).await?;
    Ok((StatusCode::CREATED, Json(sil)))
}

/// `DELETE /api/v1/silences/{id}`: expire now.
#[utoipa::path(delete, path = "/api/v1/silences/{id}", tag = "silences", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = crate::api::schemas::Silence), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn expire(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Silence>> {
    p.require(Role::Responder)?;
    Ok(Json(s.engine.engine.expire_silence(&id, p.actor()).await?))
}
