//! `/api/v1/notifications` (the notification log) and `/api/v1/delivery/health`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Deserialize;
use signalcraft_core::delivery::{DeliveryRecord, HealthSnapshot};
use signalcraft_core::store::{Scan, Table};

use crate::auth::{Auth, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::state::AppState;

use super::parse_num;

/// Notification routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/notifications", get(list))
        .route("/notifications/incident/{id}", get(trail))
        .route("/delivery/health", get(health))
}

/// Query of `GET /notifications`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// At most this many records (default 100, max 1000), newest first.
    pub limit: Option<String>,
}

/// `GET /api/v1/notifications`: delivery attempts, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<crate::api::schemas::DeliveryRecord>)))]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<DeliveryRecord>>> {
    p.require(Role::Viewer)?;
    let limit: usize = parse_num("limit", q.limit.as_ref())?.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid("limit", "limit must be 1..=1000"));
    }
    // The log holds per-attempt records and per-notification state rows; only keys
    // ending in a 6-digit attempt number are records.
    let rows = s.store.scan(Table::NotificationLog, Scan::all()).await?;
    let mut out: Vec<DeliveryRecord> = rows
        .into_iter()
        .filter(|(k, _)| {
            k.rsplit('/')
                .next()
                .is_some_and(|a| a.len() == 6 && a.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|(_, v)| serde_json::from_slice::<DeliveryRecord>(&v).ok())
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    out.truncate(limit);
    Ok(Json(out))
}

/// `GET /api/v1/notifications/incident/{id}`: the delivery trail of one incident.
#[utoipa::path(get, path = "/api/v1/notifications/incident/{id}", tag = "notifications", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Vec<crate::api::schemas::DeliveryRecord>)))]
pub async fn trail(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<DeliveryRecord>>> {
    p.require(Role::Viewer)?;
    let inc = s.engine.engine.fetch_incident(&id).await?;
    match &s.engine.delivery {
        Some(d) => Ok(Json(d.log().trail(&inc.id).await?)),
        None => Ok(Json(Vec::new())),
    }
}

/// `GET /api/v1/delivery/health`: success rate and latency per channel and target.
#[utoipa::path(get, path = "/api/v1/delivery/health", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object>)))]
pub async fn health(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<Vec<HealthSnapshot>>> {
    p.require(Role::Viewer)?;
    Ok(Json(match &s.engine.delivery {
        Some(d) => d.health().all(s.now()),
        None => Vec::new(),
    }))
}
