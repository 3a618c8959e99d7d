//! Request extractors whose rejections are problem+json ([`ApiError`]).
//!
//! [`ApiJson`] checks the content type (415), reads the body under the router's body
//! limit (413) and deserializes it, naming the JSON path of the offending field (400).
//! [`ApiQuery`] does the same for query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body deserialized into `T`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// Whether the request says its body is JSON (`application/json` or `+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Reads a request body, mapping a body-limit overrun to 413.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "the request body is larger than server.body_limit_bytes",
            )
        } else {
            ApiError::bad_body(format!("cannot read the request body: {e}"))
        }
    })
}

/// Deserializes JSON, naming the path of the offending field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let detail = format!("invalid JSON body: {inner}");
        if path.is_empty() || path == "." {
            ApiError::bad_body(detail)
        } else {
            ApiError::invalid(path, detail)
        }
    })
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "expected Content-Type: application/json",
            )
            .with_field("Content-Type"));
        }
        let body = read_body(req, state).await?;
        parse_json(&body).map(ApiJson)
    }
}

/// A query string deserialized into `T`.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_like(q);
        match de {
            Ok(v) => serde_path_to_error::deserialize(v)
                .map(ApiQuery)
                .map_err(|e| {
                    let path = e.path().to_string();
                    ApiError::invalid(path, format!("invalid query string: {}", e.into_inner()))
                }),
            Err(e) => Err(e),
        }
    }
}

/// Query strings go through `serde_json::Value` (a map of strings) so the same path
/// reporting applies; typed fields parse from strings via `serde_with`-free helpers.
fn serde_urlencoded_like(q: &str) -> Result<serde_json::Value, ApiError> {
    let mut map = serde_json::Map::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k).ok_or_else(|| ApiError::invalid(k, "invalid percent-encoding"))?;
        let v =
            decode(v).ok_or_else(|| ApiError::invalid(k.clone(), "invalid percent-encoding"))?;
        match map.get_mut(&k) {
            Some(serde_json::Value::Array(a)) => a.push(v.into()),
            Some(existing) => {
                let first = existing.take();
                *existing = serde_json::Value::Array(vec![first, v.into()]);
            }
            None => {
                map.insert(k, v.into());
            }
        }
    }
    Ok(serde_json::Value::Object(map))
}

/// Percent-decodes a query component (`+` is a space).
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = bytes.get(i + 1..i + 3)?;
                let h = std::str::from_utf8(h).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        labels: std::collections::BTreeMap<String, String>,
    }

    #[test]
    fn json_errors_name_the_path() {
        let e = parse_json::<Vec<Inner>>(br#"[{"labels":{}},{"labels":{"a":1}}]"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("[1].labels.a"));
        let e = parse_json::<Vec<Inner>>(b"{not json").unwrap_err();
        assert_eq!(e.slug, "malformed-body");
    }

    #[test]
    fn query_decoding() {
        assert_eq!(decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(decode("%zz"), None);
        let v = serde_urlencoded_like("state=open&state=acknowledged&limit=5").unwrap();
        assert_eq!(v["state"][1], "acknowledged");
        assert_eq!(v["limit"], "5");
    }
}
