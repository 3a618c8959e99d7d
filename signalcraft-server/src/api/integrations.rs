//! `POST /integrations/{key}`: provider webhooks (Alertmanager webhook, Grafana,
//! CloudWatch/SNS, GitHub, GitLab, Sentry, Datadog, generic).
//!
//! The key selects the integration (unknown → 404, nothing else revealed); the
//! integration's provider then verifies the request (signature, token, replay window)
//! and parses it. A request that fails anywhere changes nothing; one that returns 202
//! is durable.
//!
//! SNS (`cloudwatch`): when the request's `SigningCertURL` is neither configured nor
//! cached, the certificate is fetched once through the integrations' injected
//! [`crate::integrations::CertificateFetcher`] (only from `https://sns.<region>.amazonaws.com`,
//! bounded in time and size), cached for every `cloudwatch` integration, and the
//! request is verified again.

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
        (status = 403, description = "Not accepted (SNS topic not allowed, signing certificate outside its validity or on a host other than sns.<region>.amazonaws.com, provider disabled)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown integration key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the integration's rate limit", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "The SNS signing certificate could not be fetched", body = crate::error::Problem, content_type = "application/problem+json"),
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
    let mut result = integ.provider.ingest(&inbound, now);
    if let Err(ProviderError::CertificateUnavailable { url, .. }) = &result {
        // SNS: fetch the signing certificate the request names (SNS hosts only; the
        // fetcher re-checks), cache it for every cloudwatch integration, retry once.
        crate::integrations::fetch_signing_certificate(&s.integrations, &s.registry, url).await?;
        result = integ.provider.ingest(&inbound, now);
    }
    let events = match result {
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

#[cfg(test)]
mod sns_certificate_tests {
    //! The SNS signing-certificate fetch path, against a local certificate host on
    //! 127.0.0.1 (the fetcher's test-only redirect sends the checked `sns.*` URL's path
    //! there): a cloudwatch webhook whose certificate is not configured is verified
    //! after one fetch; refused hosts are never fetched; size and time are bounded.

    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use signalcraft_core::clock::ManualClock;

    use crate::integrations::{CertificateFetchError, CertificateFetcher, HttpsCertificateFetcher};

    const CERT_PATH: &str = "SimpleNotificationService-fixture.pem";
    const CERT_URL: &str =
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-fixture.pem";

    fn fixtures() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
    }

    fn read(rel: &str) -> String {
        std::fs::read_to_string(fixtures().join(rel)).unwrap()
    }

    /// A certificate host on 127.0.0.1: `/<CERT_PATH>` serves `pem`, `/big.pem` 100 KiB,
    /// `/slow.pem` answers after 5 s. Counts every request.
    async fn cert_host(pem: String) -> (SocketAddr, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let (h1, h2, h3) = (hits.clone(), hits.clone(), hits.clone());
        let app = Router::new()
            .route(
                &format!("/{CERT_PATH}"),
                get(move || {
                    h1.fetch_add(1, Ordering::SeqCst);
                    let pem = pem.clone();
                    async move { pem }
                }),
            )
            .route(
                "/big.pem",
                get(move || {
                    h2.fetch_add(1, Ordering::SeqCst);
                    async { "A".repeat(100 * 1024) }
                }),
            )
            .route(
                "/slow.pem",
                get(move || {
                    h3.fetch_add(1, Ordering::SeqCst);
                    async {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        "late"
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, hits)
    }

    fn fetcher(addr: SocketAddr, timeout: Duration) -> HttpsCertificateFetcher {
        let mut f = HttpsCertificateFetcher::with_limits(timeout, 64 * 1024);
        f.redirect_base = Some(format!("http://{addr}"));
        f
    }

    #[tokio::test]
    async fn fetcher_refuses_other_hosts_without_fetching_and_bounds_size_and_time() {
        let (addr, hits) = cert_host(read("cloudwatch/signing/test-cert.pem")).await;
        let f = fetcher(addr, Duration::from_millis(300));
        for bad in [
            "https://evil.example/SimpleNotificationService-fixture.pem".to_string(),
            format!("http://{addr}/{CERT_PATH}"),
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-fixture.pem".into(),
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem".into(),
        ] {
            assert!(
                matches!(f.fetch(&bad).await, Err(CertificateFetchError::Refused(_))),
                "{bad}"
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0, "a refused URL was fetched");
        let pem = f.fetch(CERT_URL).await.unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(
            f.fetch("https://sns.us-east-1.amazonaws.com/big.pem").await,
            Err(CertificateFetchError::TooLarge { limit: 64 * 1024 })
        );
        assert!(matches!(
            f.fetch("https://sns.us-east-1.amazonaws.com/slow.pem")
                .await,
            Err(CertificateFetchError::Timeout(_))
        ));
        assert!(matches!(
            f.fetch("https://sns.us-east-1.amazonaws.com/missing.pem").await,
            Err(CertificateFetchError::Failed(m)) if m.contains("404")
        ));
    }

    /// Concurrent requests naming one uncached certificate share one fetch; a fetch
    /// that failed is answered from memory, without a new request, while it is recent.
    #[tokio::test]
    async fn certificate_fetches_are_shared_and_recent_failures_remembered() {
        use crate::integrations::{Integrations, fetch_signing_certificate};
        let (addr, hits) = cert_host(read("cloudwatch/signing/test-cert.pem")).await;
        let integrations = Integrations::default();
        integrations.set_certificate_fetcher(Arc::new(fetcher(addr, Duration::from_millis(300))));
        let registry = signalcraft_providers::sources::Registry::builtin();
        let (a, b, c, d) = tokio::join!(
            fetch_signing_certificate(&integrations, &registry, CERT_URL),
            fetch_signing_certificate(&integrations, &registry, CERT_URL),
            fetch_signing_certificate(&integrations, &registry, CERT_URL),
            fetch_signing_certificate(&integrations, &registry, CERT_URL),
        );
        for r in [a, b, c, d] {
            r.unwrap();
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "one fetch for four requests"
        );
        assert!(registry.certificate_cache().get(CERT_URL).is_some());

        let slow = "https://sns.us-east-1.amazonaws.com/slow.pem";
        let first = fetch_signing_certificate(&integrations, &registry, slow)
            .await
            .unwrap_err();
        assert_eq!(first.status, StatusCode::BAD_GATEWAY);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        let again = fetch_signing_certificate(&integrations, &registry, slow)
            .await
            .unwrap_err();
        assert_eq!(again.to_string(), first.to_string());
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "a recent failure is not fetched again"
        );
    }

    /// A server with one `cloudwatch` integration (no configured certificates) on a
    /// manual clock at the fixtures' message time.
    async fn server(dir: &tempfile::TempDir) -> crate::server::RunningServer {
        let key = dir.path().join("cw-key");
        std::fs::write(&key, "cw-key-0123456789abcdef").unwrap();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[[integrations]]\nname = \"aws\"\ntype = \"cloudwatch\"\nkey = \"file:{}\"\n",
            dir.path().join("data").display(),
            key.display()
        );
        let cfg = crate::config::parse(&text).unwrap();
        let secrets = crate::config::resolve_secrets(&cfg, &|_| None).unwrap();
        let opts = crate::server::StartOptions {
            clock: Arc::new(ManualClock::new("2024-05-01T10:03:30Z".parse().unwrap())),
            ..Default::default()
        };
        crate::server::start(cfg, secrets, opts).await.unwrap()
    }

    async fn post(
        srv: &crate::server::RunningServer,
        body: Vec<u8>,
    ) -> (StatusCode, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!(
                "{}/integrations/cw-key-0123456789abcdef",
                srv.url()
            ))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.json().await.unwrap_or_default())
    }

    #[tokio::test]
    async fn webhook_fetches_the_certificate_once_then_verifies() {
        let (addr, hits) = cert_host(read("cloudwatch/signing/test-cert.pem")).await;
        let dir = tempfile::tempdir().unwrap();
        let srv = server(&dir).await;
        srv.state
            .integrations
            .set_certificate_fetcher(Arc::new(fetcher(addr, Duration::from_secs(5))));
        let body = read("cloudwatch/alarm_firing.json").into_bytes();
        let (status, v) = post(&srv, body.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["events"], 1);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // Cached now: the next request verifies without a fetch.
        let (status, _) = post(&srv, read("cloudwatch/alarm_ok.json").into_bytes()).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A forged signature still fails after the fetch path.
        let mut forged: serde_json::Value = serde_json::from_slice(&body).unwrap();
        forged["Subject"] = "forged".into();
        let (status, v) = post(&srv, serde_json::to_vec(&forged).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
        srv.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn webhook_refuses_a_non_aws_certificate_url_without_fetching() {
        let (addr, hits) = cert_host(read("cloudwatch/signing/test-cert.pem")).await;
        let dir = tempfile::tempdir().unwrap();
        let srv = server(&dir).await;
        srv.state
            .integrations
            .set_certificate_fetcher(Arc::new(fetcher(addr, Duration::from_secs(5))));
        let mut v: serde_json::Value =
            serde_json::from_str(&read("cloudwatch/alarm_firing.json")).unwrap();
        v["SigningCertURL"] = format!("https://evil.example/{CERT_PATH}").into();
        let (status, p) = post(&srv, serde_json::to_vec(&v).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap_or("")
                .contains("SigningCertURL"),
            "{p}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        srv.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn webhook_answers_403_for_an_expired_and_413_for_an_oversized_certificate() {
        let (addr, hits) = cert_host(read("cloudwatch/signing/expired-cert.pem")).await;
        let dir = tempfile::tempdir().unwrap();
        let srv = server(&dir).await;
        srv.state
            .integrations
            .set_certificate_fetcher(Arc::new(fetcher(addr, Duration::from_secs(5))));
        let (status, p) = post(&srv, read("cloudwatch/alarm_firing.json").into_bytes()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
        assert!(
            p["detail"].as_str().unwrap_or("").contains("expired"),
            "{p}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A certificate URL (on the SNS host) whose body is over the size limit.
        let mut v: serde_json::Value =
            serde_json::from_str(&read("cloudwatch/alarm_firing.json")).unwrap();
        v["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com/big.pem".into();
        let (status, p) = post(&srv, serde_json::to_vec(&v).unwrap()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{p}");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        srv.shutdown().await.unwrap();
    }
}
