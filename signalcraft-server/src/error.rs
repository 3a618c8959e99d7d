//! Errors: [`ServerError`] for startup and operator commands, and [`ApiError`], the
//! RFC 9457 `application/problem+json` body every HTTP error is rendered as.
//!
//! Messages never contain secrets: secret values are resolved into
//! [`crate::secret::Secret`], whose `Debug`/`Display` print a placeholder.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use signalcraft_core::CoreError;
use signalcraft_core::store::StoreError;
use thiserror::Error;

/// Errors of the server crate outside request handling (startup, config, operator commands).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The config file is invalid; every problem is listed with its config path.
    #[error("invalid config:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<crate::config::ConfigError>),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The engine refused something.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Anything else that stops the server, already phrased for the operator.
    #[error("{0}")]
    Other(String),
}

impl ServerError {
    /// Shorthand for [`ServerError::Io`].
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        ServerError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// The JSON body of an RFC 9457 problem.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type (relative: `/problems/<slug>`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    /// The request field (JSON pointer-ish path, query parameter or header) at fault, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An HTTP error, rendered as `application/problem+json`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Problem type slug (`/problems/<slug>`).
    pub slug: &'static str,
    /// What went wrong.
    pub detail: String,
    /// Offending field, if any.
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
    /// Authentication scheme for a `WWW-Authenticate` header (401).
    pub challenge: Option<&'static str>,
}

impl ApiError {
    /// A problem with the given status, slug and detail.
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            slug,
            detail: detail.into(),
            field: None,
            retry_after: None,
            challenge: None,
        }
    }

    /// Names the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: a field is invalid.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-field", detail).with_field(field)
    }

    /// 400: the body is not what the endpoint takes.
    pub fn bad_body(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-body", detail)
    }

    /// 401: no or wrong credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        e.challenge = Some("Bearer");
        e
    }

    /// 401 for a request whose signature did not verify.
    pub fn bad_signature(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "bad-signature", detail)
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404: no such object.
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{kind} {id:?} not found"),
        )
    }

    /// 409: the object's state does not allow this.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 429: over a rate limit.
    pub fn rate_limited(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", detail);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 500: a failure on our side; the detail is safe to show (no secrets).
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// 503: temporarily unable to serve.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
        e.retry_after = Some(1);
        e
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        Problem {
            type_: format!("/problems/{}", self.slug),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            field: self.field.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.slug, self.detail)
    }
}

impl std::error::Error for ApiError {}

/// The content type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), slug = self.slug, detail = %self.detail, "request failed");
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(c) = self.challenge {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        resp
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::InvalidConfig { path, message } => {
                ApiError::invalid(path.clone(), format!("invalid {path}: {message}"))
            }
            CoreError::InvalidInput { field, message } => {
                ApiError::invalid(field.clone(), format!("invalid {field}: {message}"))
            }
            e @ CoreError::InvalidTransition { .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid-transition", e.to_string())
            }
            CoreError::NotFound { kind, id } => ApiError::not_found(kind, &id),
            CoreError::Forbidden(m) => ApiError::forbidden(m),
            CoreError::Store(s) => s.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { table, key } => ApiError::not_found(table, &key),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Closed => ApiError::unavailable("the store is shutting down"),
            other => ApiError::internal(format!("store: {other}")),
        }
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_names_field_and_status() {
        let e = ApiError::invalid("alerts[3].labels", "labels must not be empty");
        let p = e.problem();
        assert_eq!(p.status, 400);
        assert_eq!(p.type_, "/problems/invalid-field");
        assert_eq!(p.title, "Bad Request");
        assert_eq!(p.field.as_deref(), Some("alerts[3].labels"));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "/problems/invalid-field");
        assert!(v.get("type_").is_none());
    }

    #[test]
    fn core_errors_map_to_statuses() {
        let e: ApiError = CoreError::NotFound {
            kind: "incident",
            id: "inc-1".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e: ApiError = CoreError::InvalidTransition {
            from: "closed".into(),
            to: "acknowledged".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::CONFLICT);
        let e: ApiError = CoreError::input("until", "must be after from").into();
        assert_eq!(e.field.as_deref(), Some("until"));
    }

    #[test]
    fn response_has_problem_content_type_and_headers() {
        let r = ApiError::rate_limited("slow down", 0).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
