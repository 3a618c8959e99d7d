//! [`build_router`]: every route, and the middleware around them.
//!
//! Middleware, outermost first (the order matters):
//! 1. `HandleErrorLayer` turns middleware errors into problems: the timeout's
//!    `Elapsed` → 408, the load shedder's `Overloaded` → 503 (`Retry-After: 1`).
//! 2. `load_shed` + `concurrency_limit(max_in_flight)`: beyond the limit, shed at once
//!    rather than queue without bound.
//! 3. `timeout(request_timeout)`.
//! 4. `DefaultBodyLimit(body_limit_bytes)`: extractors refuse larger bodies with 413.
//! 5. `TraceLayer`: one span per request.
//! 6. [`read_after_ingest`]: with journaled ingest, every request except ingest and
//!    the health/metrics endpoints first waits until the ingest acknowledged before
//!    it is applied.

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

use crate::api;
use crate::error::ApiError;
use crate::state::AppState;

/// Maps errors of the tower middleware to problems.
pub async fn handle_middleware_error(err: BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request took longer than server.request_timeout",
        )
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        ApiError::unavailable("the server is at server.max_in_flight requests; retry shortly")
    } else {
        ApiError::internal(format!("unhandled middleware error: {err}"))
    }
}

/// The whole HTTP API.
pub fn build_router(state: AppState) -> Router {
    let cfg = &state.config.server;
    let timeout = cfg.request_timeout;
    let max_in_flight = cfg.max_in_flight;
    let body_limit = cfg.body_limit_bytes;

    let mut router = Router::new()
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(api::openapi::serve))
        .route("/integrations/{key}", post(api::integrations::ingest))
        .merge(api::callbacks::routes())
        .nest("/api/v1", api::v1::routes());
    if state.config.features.alertmanager_api {
        router = router.merge(api::alertmanager::routes());
    }
    if state.config.features.pagerduty_api {
        router = router.merge(api::pagerduty::routes());
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_middleware_error))
                .load_shed()
                .concurrency_limit(max_in_flight)
                .timeout(timeout)
                .layer(DefaultBodyLimit::max(body_limit))
                .layer(TraceLayer::new_for_http())
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    read_after_ingest,
                )),
        )
        .with_state(state)
}

/// Whether a request only ingests events (it need not see earlier ingests applied),
/// or is a probe that must answer at once.
fn skips_settle(method: &axum::http::Method, path: &str) -> bool {
    let ingest = method == axum::http::Method::POST
        && (path == "/api/v2/alerts"
            || path == "/v2/enqueue"
            || path == "/v2/change/enqueue"
            || path.starts_with("/integrations/"));
    ingest || matches!(path, "/-/healthy" | "/-/ready" | "/metrics")
}

/// Makes a request see every ingest acknowledged before it arrived (journaled
/// ingest applies events in the background; see [`crate::engine`]).
async fn read_after_ingest(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !skips_settle(req.method(), req.uri().path()) {
        s.engine.settled().await;
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not support the request method",
    )
}

/// `GET /-/healthy`: the process is up.
async fn healthy() -> &'static str {
    "OK\n"
}

/// `GET /-/ready`: ready to accept alerts (503 while starting or draining).
async fn ready(State(s): State<AppState>) -> Response {
    if s.is_ready() {
        "OK\n".into_response()
    } else {
        ApiError::unavailable("shutting down").into_response()
    }
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics(State(s): State<AppState>) -> Response {
    // The server's scheduler keeps an index of pending ids; an embedder's router
    // without one falls back to scanning the scheduler.
    if !s.metrics.sample_queue_depth() {
        s.metrics.set_queue_depth(s.engine.queue_depth().await);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn middleware_errors_map_to_408_and_503() {
        let e = handle_middleware_error(Box::new(tower::timeout::error::Elapsed::new())).await;
        assert_eq!(e.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(e.slug, "timeout");
        let e = handle_middleware_error(Box::new(tower::load_shed::error::Overloaded::new())).await;
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(1));
        let e = handle_middleware_error("other".into()).await;
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
