//! `/api/v1/alerts`: the firing alerts (normalized form).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use signalcraft_core::model::Alert;

use crate::auth::{Auth, Role};
use crate::error::ApiResult;
use crate::state::AppState;

/// Alert routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/alerts", get(list))
}

/// A firing alert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    /// Fingerprint (16 hex digits).
    pub fingerprint: String,
    /// The normalized alert (schema `signalcraft.event/v1`).
    #[schema(value_type = crate::api::schemas::Alert)]
    pub alert: Alert,
    /// Receivers it routes to.
    pub receivers: Vec<String>,
    /// Silences muting it.
    pub silenced_by: Vec<String>,
}

/// `GET /api/v1/alerts`.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = Vec<AlertView>)))]
pub async fn list(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<AlertView>>> {
    p.require(Role::Viewer)?;
    Ok(Json(
        s.engine
            .firing_alerts()
            .await
            .into_iter()
            .map(|(alert, receivers, silenced_by)| AlertView {
                fingerprint: alert.fingerprint().to_string(),
                alert,
                receivers,
                silenced_by,
            })
            .collect(),
    ))
}
