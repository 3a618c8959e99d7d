//! `/api/v1/services`: the service catalog.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use signalcraft_core::service::Service;

use crate::auth::{Auth, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Service routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(list).post(create))
        .route("/services/{id}", get(get_one).put(put).delete(remove))
}

/// `GET /api/v1/services`.
#[utoipa::path(get, path = "/api/v1/services", tag = "services", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object>)))]
pub async fn list(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<Service>>> {
    p.require(Role::Viewer)?;
    Ok(Json(s.engine.engine.list_services()))
}

/// `GET /api/v1/services/{id}`.
#[utoipa::path(get, path = "/api/v1/services/{id}", tag = "services", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Service>> {
    p.require(Role::Viewer)?;
    Ok(Json(s.engine.engine.get_service(&id)?))
}

/// `POST /api/v1/services`: create (409 if the id exists).
#[utoipa::path(post, path = "/api/v1/services", tag = "services", request_body = Object, security(("bearer" = [])),
    responses((status = 201, body = Object), (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(svc): ApiJson<Service>,
) -> ApiResult<(StatusCode, Json<Service>)> {
    p.require(Role::Manager)?;
    if s.engine.engine.get_service(&svc.id).is_ok() {
        return Err(
            ApiError::conflict(format!("service {:?} already exists", svc.id)).with_field("id"),
        );
    }
    let out = s.engine.engine.put_service(svc, p.actor()).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// `PUT /api/v1/services/{id}`: create or replace.
#[utoipa::path(put, path = "/api/v1/services/{id}", tag = "services", params(("id" = String, Path)), request_body = Object, security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn put(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(svc): ApiJson<Service>,
) -> ApiResult<Json<Service>> {
    p.require(Role::Manager)?;
    if svc.id != id {
        return Err(ApiError::invalid("id", "the body's id must match the path"));
    }
    Ok(Json(s.engine.engine.put_service(svc, p.actor()).await?))
}

/// `DELETE /api/v1/services/{id}`.
#[utoipa::path(delete, path = "/api/v1/services/{id}", tag = "services", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn remove(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    p.require(Role::Manager)?;
    s.engine.engine.delete_service(&id, p.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
