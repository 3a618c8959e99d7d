//! `/api/v1/tokens` (admin) and `/api/v1/audit`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use signalcraft_core::incident::{AuditEntry, AuditQuery};

use crate::auth::{Auth, Permission, Role, TokenRecord};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

use super::parse_num;

/// Admin routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{name}", delete(revoke_token))
        .route("/audit", get(audit))
}

/// `GET /api/v1/tokens`: token metadata (never values or hashes).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenRecord>)))]
pub async fn list_tokens(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<Vec<TokenRecord>>> {
    p.require(Role::Admin)?;
    Ok(Json(s.tokens.list()))
}

/// Body of `POST /tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Unique name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Extra permissions.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// User the token acts as.
    #[serde(default)]
    pub user: Option<String>,
}

/// A created token: the value is shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The token value; store it now, it cannot be shown again.
    pub token: String,
    /// Its metadata.
    pub record: TokenRecord,
}

/// `POST /api/v1/tokens`.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin", request_body = NewToken, security(("bearer" = [])),
    responses((status = 201, body = CreatedToken), (status = 409, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn create_token(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    p.require(Role::Admin)?;
    if b.name.trim().is_empty() || b.name.len() > 64 {
        return Err(ApiError::invalid("name", "name must be 1-64 characters"));
    }
    let record = TokenRecord {
        name: b.name,
        role: b.role,
        permissions: b.permissions,
        user: b.user,
        created_at: s.now(),
        origin: "api".into(),
    };
    let token = s.tokens.create(s.store.as_ref(), record.clone()).await?;
    s.engine
        .engine
        .audit_write(
            p.actor(),
            "token.create",
            &format!("token/{}", record.name),
            serde_json::json!({"role": record.role, "permissions": record.permissions}),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, record })))
}

/// `DELETE /api/v1/tokens/{name}`.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "admin", params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn revoke_token(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    p.require(Role::Admin)?;
    if !s.tokens.revoke(s.store.as_ref(), &name).await? {
        return Err(ApiError::not_found("token", &name));
    }
    s.engine
        .engine
        .audit_write(
            p.actor(),
            "token.revoke",
            &format!("token/{name}"),
            serde_json::Value::Null,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /audit`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct AuditParams {
    /// Only entries on this target (`incident/inc-0000000001`).
    pub target: Option<String>,
    /// Only entries by this user id.
    pub user: Option<String>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<String>,
}

/// `GET /api/v1/audit`: newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", params(AuditParams), security(("bearer" = [])),
    responses((status = 200, body = Vec<crate::api::schemas::AuditEntry>)))]
pub async fn audit(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    p.require(Role::Manager)?;
    let limit: usize = parse_num("limit", q.limit.as_ref())?.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid("limit", "limit must be 1..=1000"));
    }
    Ok(Json(
        s.engine
            .engine
            .audit(&AuditQuery {
                target: q.target,
                user: q.user,
                limit,
            })
            .await?,
    ))
}
