//! `POST /integrations/{key}`: provider webhooks (Alertmanager webhook, Grafana,
//! CloudWatch/SNS, GitHub, GitLab, Sentry, Datadog, generic).
//!
//! The key selects the integration (unknown → 404, nothing else revealed); the
//! integration's provider then verifies the request (signature, token, replay window)
//! and parses it. A request that fails anywhere changes nothing; one that returns 202
//! is durable.

use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use signalcraft_core::provider::{InboundRequest, ProviderError};

use crate::error::ApiError;
use crate::extract::read_body;
use crate::integrations::provider_problem;
use crate::state::AppState;

/// The answer to an accepted webhook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// Always `accepted`.
    pub status: &'static str,
    /// Events ingested.
    pub events: usize,
}

/// Converts request headers into the providers' header list.
pub fn header_pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// The full URL a request was received on, as signature schemes that sign the URL need.
pub fn request_url(s: &AppState, headers: &HeaderMap, path_and_query: &str) -> String {
    match &s.config.server.external_url {
        Some(base) => format!("{}{}", base.trim_end_matches('/'), path_and_query),
        None => {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}{path_and_query}")
        }
    }
}

/// `POST /integrations/{key}`.
#[utoipa::path(
    post,
    path = "/integrations/{key}",
    tag = "ingest",
    params(("key" = String, Path, description = "The integration key")),
    request_body(content = serde_json::Value, description = "The provider's own payload"),
    responses(
        (status = 202, description = "Events accepted and durable", body = Accepted),
        (status = 200, description = "Nothing to ingest (e.g. an SNS subscription confirmation)", body = Accepted),
        (status = 400, description = "Malformed payload", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Bad signature or token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown integration key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the integration's rate limit", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ingest(State(s): State<AppState>, Path(key): Path<String>, req: Request) -> Response {
    let started = Instant::now();
    let result = ingest_inner(&s, &key, req).await;
    let (outcome, n) = match &result {
        Ok(r) => ("accepted", r.1),
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => ("rate_limited", 0),
        Err(e) if e.status.is_client_error() => ("rejected", 0),
        Err(_) => ("error", 0),
    };
    s.metrics
        .ingest("integration", outcome, n as u64, started.elapsed());
    match result {
        Ok((status, events)) => (
            status,
            axum::Json(Accepted {
                status: "accepted",
                events,
            }),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn ingest_inner(
    s: &AppState,
    key: &str,
    req: Request,
) -> Result<(StatusCode, usize), ApiError> {
    let Some(integ) = s.integrations.by_key(key) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-integration",
            "no integration has this key",
        )
        .with_field("key"));
    };
    if s.config
        .features
        .disabled_providers
        .contains(&integ.provider_type)
    {
        return Err(ApiError::forbidden(format!(
            "provider type {} is disabled in [features]",
            integ.provider_type
        )));
    }
    if let Err(wait) = s.limiter.check(
        &format!("integration/{}", integ.name),
        integ.rate_limit_per_minute,
        1,
        Instant::now(),
    ) {
        return Err(ApiError::rate_limited(
            format!(
                "integration {:?} is over its rate limit of {} requests per minute",
                integ.name, integ.rate_limit_per_minute
            ),
            wait.as_secs().max(1),
        ));
    }
    let headers = header_pairs(req.headers());
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let url = request_url(s, req.headers(), &path_and_query);
    let body = read_body(req, s).await?;
    let now = s.now();
    let inbound = InboundRequest {
        headers,
        body: body.to_vec(),
        url: Some(url),
        received_at: Some(now),
    };
    let events = match integ.provider.ingest(&inbound, now) {
        Ok(ev) => ev,
        Err(ProviderError::NothingToIngest { .. }) => return Ok((StatusCode::OK, 0)),
        Err(e) => {
            if e.is_auth_failure() {
                // Logged without secrets: the error names the header, never its value.
                tracing::warn!(integration = %integ.name, error = %e, "webhook rejected");
            }
            return Err(provider_problem(&e));
        }
    };
    let n = events.len();
    if n > 0 {
        s.engine.ingest(events).await?;
    }
    Ok((StatusCode::ACCEPTED, n))
}
