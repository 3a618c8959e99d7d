//! PagerDuty Events API v2: `POST /v2/enqueue` and `POST /v2/change/enqueue`.
//!
//! Responses are PagerDuty's, not problem+json, so existing PagerDuty clients work
//! unchanged:
//! * 202 `{"status":"success","message":"Event processed","dedup_key":"..."}`
//! * 400 `{"status":"invalid event","message":"Event object is invalid","errors":[...]}`
//! * 429 `{"status":"throttle event","message":"..."}` over the per-routing-key rate.
//!
//! The `routing_key` selects a `pagerduty`-type integration whose key it is.

use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use signalcraft_core::model::Event;
use signalcraft_core::provider::InboundRequest;

use crate::api::integrations::header_pairs;
use crate::extract::read_body;
use crate::state::AppState;

/// `/v2/enqueue`, `/v2/change/enqueue`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/enqueue", post(enqueue))
        .route("/v2/change/enqueue", post(change_enqueue))
}

/// PagerDuty's response body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PdResponse {
    /// `success`, `invalid event` or `throttle event`.
    pub status: String,
    /// Human-readable message.
    pub message: String,
    /// The event's dedup key (successful alert events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// What is wrong (invalid events).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

fn invalid(errors: Vec<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(PdResponse {
            status: "invalid event".into(),
            message: "Event object is invalid".into(),
            dedup_key: None,
            errors,
        }),
    )
        .into_response()
}

#[derive(Deserialize)]
struct RoutingOnly {
    #[serde(default)]
    routing_key: Option<String>,
}

/// `POST /v2/enqueue`: trigger, acknowledge or resolve.
#[utoipa::path(
    post,
    path = "/v2/enqueue",
    tag = "pagerduty",
    request_body(content = serde_json::Value, description = "PagerDuty Events API v2 alert event"),
    responses(
        (status = 202, description = "Event processed", body = PdResponse),
        (status = 400, description = "Invalid event", body = PdResponse),
        (status = 429, description = "Too many events for this routing key", body = PdResponse),
    )
)]
pub async fn enqueue(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, "pagerduty_v2").await
}

/// `POST /v2/change/enqueue`: a change event.
#[utoipa::path(
    post,
    path = "/v2/change/enqueue",
    tag = "pagerduty",
    request_body(content = serde_json::Value, description = "PagerDuty Events API v2 change event"),
    responses(
        (status = 202, description = "Change event processed", body = PdResponse),
        (status = 400, description = "Invalid event", body = PdResponse),
        (status = 429, description = "Too many events for this routing key", body = PdResponse),
    )
)]
pub async fn change_enqueue(State(s): State<AppState>, req: Request) -> Response {
    handle(s, req, "pagerduty_change").await
}

async fn handle(s: AppState, req: Request, endpoint: &'static str) -> Response {
    let started = Instant::now();
    let (resp, outcome, n) = handle_inner(&s, req, endpoint).await;
    s.metrics.ingest(endpoint, outcome, n, started.elapsed());
    resp
}

async fn handle_inner(
    s: &AppState,
    req: Request,
    endpoint: &'static str,
) -> (Response, &'static str, u64) {
    let headers = header_pairs(req.headers());
    let body = match read_body(req, s).await {
        Ok(b) => b,
        Err(e) => return (invalid(vec![e.detail]), "rejected", 0),
    };
    let routing_key = match serde_json::from_slice::<RoutingOnly>(&body) {
        Ok(RoutingOnly {
            routing_key: Some(k),
        }) if !k.is_empty() => k,
        Ok(_) => {
            return (
                invalid(vec!["'routing_key' is missing or blank".into()]),
                "rejected",
                0,
            );
        }
        Err(e) => {
            return (
                invalid(vec![format!("body is not a JSON object: {e}")]),
                "rejected",
                0,
            );
        }
    };
    let integ = match s.integrations.by_key(&routing_key) {
        Some(i) if i.provider_type == "pagerduty" => i,
        _ => {
            return (
                invalid(vec!["'routing_key' is not a known integration key".into()]),
                "rejected",
                0,
            );
        }
    };
    let limit = if integ.rate_limit_per_minute > 0 {
        integ.rate_limit_per_minute
    } else {
        s.config.pagerduty_api.rate_limit_per_minute
    };
    if s.limiter
        .check(&format!("pd/{}", integ.name), limit, 1, Instant::now())
        .is_err()
    {
        return (
            (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(PdResponse {
                    status: "throttle event".into(),
                    message:
                        "Requests for this service are arriving too quickly. Please retry later."
                            .into(),
                    dedup_key: None,
                    errors: vec![],
                }),
            )
                .into_response(),
            "rate_limited",
            0,
        );
    }
    let now = s.now();
    let path = if endpoint == "pagerduty_change" {
        "/v2/change/enqueue"
    } else {
        "/v2/enqueue"
    };
    let inbound = InboundRequest {
        headers,
        body: body.to_vec(),
        url: Some(path.into()),
        received_at: Some(now),
    };
    let events = match integ.provider.ingest(&inbound, now) {
        Ok(ev) => ev,
        Err(e) => {
            let msg = match &e {
                signalcraft_core::provider::ProviderError::Malformed { field, message, .. } => {
                    format!("'{field}' {message}")
                }
                other => other.to_string(),
            };
            return (invalid(vec![msg]), "rejected", 0);
        }
    };
    let is_change = endpoint == "pagerduty_change";
    if is_change && events.iter().any(|e| !matches!(e, Event::Change(_))) {
        return (
            invalid(vec!["this endpoint takes change events only".into()]),
            "rejected",
            0,
        );
    }
    let dedup_key = events.iter().find_map(|e| match e {
        Event::Alert(a) => a.dedup_key.clone(),
        Event::Action(a) => Some(a.dedup_key.clone()),
        Event::Change(_) => None,
    });
    let n = events.len() as u64;
    if let Err(e) = s.engine.ingest(events).await {
        return (e_to_pd(e), "error", 0);
    }
    let message = if is_change {
        "Change event processed"
    } else {
        "Event processed"
    };
    (
        (
            StatusCode::ACCEPTED,
            axum::Json(PdResponse {
                status: "success".into(),
                message: message.into(),
                dedup_key,
                errors: vec![],
            }),
        )
            .into_response(),
        "accepted",
        n,
    )
}

fn e_to_pd(e: crate::error::ApiError) -> Response {
    if e.status == StatusCode::BAD_REQUEST {
        invalid(vec![e.detail])
    } else {
        e.into_response()
    }
}
