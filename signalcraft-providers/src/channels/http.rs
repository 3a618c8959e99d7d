//! Shared HTTP plumbing for HTTP channels: one pooled reqwest client per channel
//! instance (connection reuse), status classification, `Retry-After`, and
//! redaction of URLs and transport errors.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use signalcraft_core::channel::DeliveryError;

use super::error::ChannelError;

/// Installs ring as the process-wide rustls provider (ignored when one is
/// already installed). Every channel constructor calls it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A pooled client bounded by `timeout` per request, with redirects disabled
/// (a redirect could carry a signed request or secret URL elsewhere). Idle
/// connections are kept (up to 256 per host) and reused; `TCP_NODELAY` is set so
/// a small request is not held back by Nagle waiting for a delayed ACK.
pub fn client(timeout: Duration, path: &str) -> Result<reqwest::Client, ChannelError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("signalcraft/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ChannelError::config(path, format!("HTTP client: {}", e.without_url())))
}

/// Validates an `http`/`https` URL from config.
pub fn parse_url(raw: &str, path: &str) -> Result<url::Url, ChannelError> {
    if raw.trim().is_empty() {
        return Err(ChannelError::MissingCredential { path: path.into() });
    }
    let u = url::Url::parse(raw)
        .map_err(|e| ChannelError::config(path, format!("not a valid URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(ChannelError::config(
            path,
            format!("URL scheme must be http or https, not `{}`", u.scheme()),
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(ChannelError::config(path, "URL has no host"));
    }
    Ok(u)
}

/// `scheme://host[:port]/…` — the path and query (which often carry the secret
/// of a webhook URL) and any userinfo are hidden.
pub fn redact_url(u: &url::Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}/…", u.scheme()),
        (Some(h), None) => format!("{}://{h}/…", u.scheme()),
        _ => format!("{}://…", u.scheme()),
    }
}

/// `Retry-After` as delta-seconds, or as an HTTP-date relative to the response's
/// `Date` header (both per RFC 9110).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(v)?;
    let date = headers
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(parse_http_date)?;
    Duration::try_from(at.duration_since(date)).ok()
}

fn parse_http_date(s: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::parse(s).ok().map(|z| z.timestamp())
}

/// Classifies a transport error. The reason never contains the URL.
pub fn classify_send_error(e: reqwest::Error, what: &str) -> DeliveryError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    DeliveryError::Retryable {
        reason: format!("{what}: {kind}"),
        retry_after: None,
    }
}

/// Classifies a non-success HTTP status (`None` for 2xx). `detail` is a short,
/// secret-free vendor error code to append.
pub fn classify_status(
    status: StatusCode,
    headers: &HeaderMap,
    what: &str,
    detail: Option<&str>,
) -> Option<DeliveryError> {
    if status.is_success() {
        return None;
    }
    let mut reason = format!("{what}: HTTP {}", status.as_u16());
    if let Some(d) = detail.filter(|d| !d.is_empty()) {
        reason.push_str(" (");
        reason.extend(d.chars().take(120));
        reason.push(')');
    }
    DeliveryError::from_http_status(status.as_u16(), reason.clone(), retry_after(headers)).or(
        // 1xx/3xx: a redirect we refused to follow, or nonsense: permanent.
        Some(DeliveryError::Permanent { reason }),
    )
}

/// Decodes an `application/x-www-form-urlencoded` body into pairs (in order).
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Case-insensitive header lookup as a `&str`.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:30 GMT".parse().unwrap(),
        );
        h.insert(
            reqwest::header::DATE,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn urls_are_validated_and_redacted() {
        let u = parse_url("https://hooks.slack.com/services/T0/B0/XYZ", "x").unwrap();
        assert_eq!(redact_url(&u), "https://hooks.slack.com/…");
        assert!(matches!(
            parse_url("", "channels[0].url"),
            Err(ChannelError::MissingCredential { .. })
        ));
        let e = parse_url("ftp://x/y", "channels[0].url").unwrap_err();
        assert!(e.to_string().contains("channels[0].url"), "{e}");
        assert!(parse_url("not a url", "p").is_err());
    }
}
