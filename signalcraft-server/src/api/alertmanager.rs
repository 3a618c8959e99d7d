//! The Alertmanager v2 API subset Prometheus and tools use:
//! `POST /api/v2/alerts`, `GET /api/v2/alerts`, `GET /api/v2/status`.
//!
//! The body of `POST /api/v2/alerts` is Alertmanager's `postableAlerts`: a JSON array
//! of `{labels, annotations, startsAt, endsAt, generatorURL}`. As in Alertmanager, an
//! alert whose `endsAt` is in the past is resolved, and an alert without labels is
//! rejected (the whole request, so a rejected request changes nothing).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use signalcraft_core::model::{Alert, AlertStatus, Annotations, Labels, Link, Severity, Source};

use crate::error::ApiError;

/// One Alertmanager v2 postable alert.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Identifying labels; must not be empty.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub labels: Labels,
    /// Annotations (`summary`, `description`, `runbook_url`, …).
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub annotations: Annotations,
    /// When the alert started (RFC 3339); default: now.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<Timestamp>,
    /// When the alert ends; in the past means resolved.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<Timestamp>,
    /// Link to the expression that produced the alert.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
}

/// `true` for a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn valid_label_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Checks postable alerts as [`to_alerts`] does, without converting them: `Ok` exactly
/// when `to_alerts` would succeed (at any time).
///
/// Errors name the offending alert and field, e.g. `[3].labels`.
pub fn validate(posted: &[PostableAlert]) -> Result<(), ApiError> {
    posted.iter().enumerate().try_for_each(|(i, p)| check(i, p))
}

fn check(i: usize, p: &PostableAlert) -> Result<(), ApiError> {
    if p.labels.is_empty() {
        return Err(ApiError::invalid(
            format!("[{i}].labels"),
            "an alert must have at least one label",
        ));
    }
    if let Some(bad) = p.labels.keys().find(|k| !valid_label_name(k)) {
        return Err(ApiError::invalid(
            format!("[{i}].labels.{bad}"),
            format!("invalid label name {bad:?}"),
        ));
    }
    if let (Some(s), Some(e)) = (p.starts_at, p.ends_at)
        && e < s
    {
        return Err(ApiError::invalid(
            format!("[{i}].endsAt"),
            "endsAt must not be before startsAt",
        ));
    }
    Ok(())
}

/// Validates and converts postable alerts into normalized alerts.
///
/// Errors name the offending alert and field, e.g. `[3].labels`.
pub fn to_alerts(
    posted: Vec<PostableAlert>,
    integration: &str,
    now: Timestamp,
) -> Result<Vec<Alert>, ApiError> {
    validate(&posted)?;
    // One Source per request: each alert shares it (two Arc clones, no allocation).
    let source = Source {
        provider: "alertmanager".into(),
        integration: integration.into(),
    };
    Ok(posted
        .into_iter()
        .map(|p| convert(p, &source, now))
        .collect())
}

/// Name of the journal format of `POST /api/v2/alerts` bodies ([`PostedAlerts`]).
pub const JOURNAL_FORMAT: &str = "alertmanager.v2.postable_alerts";

/// The journal format of `POST /api/v2/alerts`: the request body as it arrived (a
/// validated JSON array of postable alerts), the integration's name as context. The
/// handler journals the body instead of encoding the converted alerts, and the
/// engine's applier converts them at the time the journal accepted them, exactly as
/// the handler would have (see `signalcraft_core::engine` journaled ingest).
#[derive(Debug, Clone, Copy, Default)]
pub struct PostedAlerts;

impl signalcraft_core::engine::journaled::RecordFormat for PostedAlerts {
    fn decode(
        &self,
        context: &str,
        payload: &[u8],
        at: Timestamp,
    ) -> Result<Vec<Event>, signalcraft_core::CoreError> {
        let codec = |m: String| {
            signalcraft_core::CoreError::from(signalcraft_core::store::StoreError::Codec(m))
        };
        let posted: Vec<PostableAlert> =
            serde_json::from_slice(payload).map_err(|e| codec(format!("postable alerts: {e}")))?;
        let alerts = to_alerts(posted, context, at).map_err(|e| {
            codec(format!(
                "postable alerts: {}: {}",
                e.field.as_deref().unwrap_or(""),
                e.detail
            ))
        })?;
        Ok(alerts.into_iter().map(Event::Alert).collect())
    }
}

fn convert(p: PostableAlert, source: &Source, now: Timestamp) -> Alert {
    let status = match p.ends_at {
        Some(e) if e <= now => AlertStatus::Resolved,
        _ => AlertStatus::Firing,
    };
    let labels: Labels = p.labels;
    let severity = labels
        .get("severity")
        .and_then(Severity::parse_lenient)
        .unwrap_or(Severity::Error);
    let summary = p
        .annotations
        .get("summary")
        .or_else(|| p.annotations.get("description"))
        .or_else(|| labels.get("alertname"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
    let mut links = Vec::new();
    if let Some(g) = p.generator_url.filter(|g| !g.is_empty()) {
        links.push(Link {
            href: g,
            text: Some("Source".into()),
        });
    }
    if let Some(r) = p.annotations.get("runbook_url") {
        links.push(Link {
            href: r.to_owned(),
            text: Some("Runbook".into()),
        });
    }
    let service = labels
        .get("service")
        .or_else(|| labels.get("job"))
        .map(str::to_owned);
    Alert {
        source: source.clone(),
        dedup_key: None,
        status,
        severity,
        summary,
        details: serde_json::Value::Null,
        labels,
        annotations: p.annotations,
        links,
        images: Vec::new(),
        starts_at: Some(p.starts_at.unwrap_or(now)),
        ends_at: p.ends_at,
        service,
        raw: Default::default(),
    }
}

/// One alert as `GET /api/v2/alerts` returns it (Alertmanager's `gettableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert {
    /// Labels.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub labels: Labels,
    /// Annotations.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub annotations: Annotations,
    /// Start.
    pub starts_at: String,
    /// End (zero time when unknown, as Alertmanager prints it).
    pub ends_at: String,
    /// Last update.
    pub updated_at: String,
    /// 16 hex digits.
    pub fingerprint: String,
    /// Receivers the alert routes to.
    pub receivers: Vec<ReceiverName>,
    /// Processing state.
    pub status: AlertStatusV2,
    /// Generator URL.
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
}

/// `{name}` of a receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiverName {
    /// Receiver name.
    pub name: String,
}

/// Alertmanager's alert status object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatusV2 {
    /// `active`, `suppressed` or `unprocessed`.
    pub state: String,
    /// Silence ids muting it.
    pub silenced_by: Vec<String>,
    /// Alerts inhibiting it.
    pub inhibited_by: Vec<String>,
}

/// Builds a gettable alert from a stored alert.
pub fn gettable(a: &Alert, receivers: Vec<String>, silenced_by: Vec<String>) -> GettableAlert {
    let ts = |t: Option<Timestamp>| {
        t.map(|t| t.to_string())
            .unwrap_or_else(|| "0001-01-01T00:00:00.000Z".into())
    };
    GettableAlert {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: ts(a.starts_at),
        ends_at: ts(a.ends_at),
        updated_at: ts(a.starts_at),
        fingerprint: a.fingerprint().to_string(),
        receivers: receivers
            .into_iter()
            .map(|name| ReceiverName { name })
            .collect(),
        status: AlertStatusV2 {
            state: if silenced_by.is_empty() {
                "active".into()
            } else {
                "suppressed".into()
            },
            silenced_by,
            inhibited_by: Vec::new(),
        },
        generator_url: a
            .links
            .iter()
            .find(|l| l.text.as_deref() == Some("Source"))
            .map(|l| l.href.clone())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn converts_like_alertmanager() {
        let posted: Vec<PostableAlert> = serde_json::from_str(
            r#"[{"labels":{"alertname":"HighLatency","service":"api","severity":"critical"},
                 "annotations":{"summary":"p99 high","runbook_url":"http://rb"},
                 "generatorURL":"http://prom/graph"},
                {"labels":{"alertname":"Old"},"endsAt":"2026-01-01T11:00:00Z"}]"#,
        )
        .unwrap();
        let a = to_alerts(posted, "am", now()).unwrap();
        assert_eq!(a[0].status, AlertStatus::Firing);
        assert_eq!(a[0].severity, Severity::Critical);
        assert_eq!(a[0].summary, "p99 high");
        assert_eq!(a[0].service.as_deref(), Some("api"));
        assert_eq!(a[0].links.len(), 2);
        assert_eq!(a[0].starts_at, Some(now()));
        assert_eq!(a[1].status, AlertStatus::Resolved);
        assert_eq!(a[1].summary, "Old");
        // Same fingerprint as Alertmanager computes from labels.
        assert_eq!(
            a[0].fingerprint(),
            signalcraft_core::model::Fingerprint::of_labels(&a[0].labels)
        );
    }

    #[test]
    fn rejects_empty_labels_and_bad_names_with_the_path() {
        let p = |s: &str| serde_json::from_str::<Vec<PostableAlert>>(s).unwrap();
        let e = to_alerts(p(r#"[{"labels":{"a":"b"}},{"labels":{}}]"#), "am", now()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("[1].labels"));
        let e = to_alerts(p(r#"[{"labels":{"1a":"b"}}]"#), "am", now()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("[0].labels.1a"));
        let e = to_alerts(
            p(r#"[{"labels":{"a":"b"},"startsAt":"2026-01-01T10:00:00Z","endsAt":"2026-01-01T09:00:00Z"}]"#),
            "am",
            now(),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("[0].endsAt"));
    }
    /// The journal format decodes a body into exactly the alerts the handler would
    /// have built at the acceptance time, and `validate` accepts exactly the bodies
    /// `to_alerts` converts (so a journaled body always decodes).
    #[test]
    fn journaled_bodies_decode_as_the_handler_converts_them() {
        use signalcraft_core::engine::journaled::RecordFormat;
        let bodies = [
            r#"[{"labels":{"alertname":"A","service":"api","severity":"critical"},
                 "annotations":{"summary":"s","runbook_url":"http://rb"},
                 "generatorURL":"http://prom/graph","startsAt":"2026-01-01T11:00:00Z"},
                {"labels":{"alertname":"Old"},"endsAt":"2026-01-01T11:30:00Z"},
                {"labels":{"alertname":"Later"},"endsAt":"2026-01-01T13:00:00Z","extra":1}]"#,
            r#"[{"labels":{"a":"b"}},{"labels":{}}]"#,
            r#"[{"labels":{"1a":"b"}}]"#,
            r#"[{"labels":{"a":"b"},"startsAt":"2026-01-01T10:00:00Z","endsAt":"2026-01-01T09:00:00Z"}]"#,
            r#"[]"#,
        ];
        for body in bodies {
            let posted: Vec<PostableAlert> = serde_json::from_str(body).unwrap();
            let converted = to_alerts(posted.clone(), "am", now());
            assert_eq!(validate(&posted).is_ok(), converted.is_ok(), "{body}");
            let decoded = PostedAlerts.decode("am", body.as_bytes(), now());
            match converted {
                Ok(alerts) => {
                    let events: Vec<Event> = alerts.into_iter().map(Event::Alert).collect();
                    assert_eq!(decoded.unwrap(), events, "{body}");
                }
                Err(e) => {
                    let err = decoded.unwrap_err().to_string();
                    assert!(err.contains(e.field.as_deref().unwrap_or("?")), "{err}");
                }
            }
        }
        // The acceptance time decides what is resolved and when an alert started.
        let body = br#"[{"labels":{"alertname":"X"},"endsAt":"2026-01-01T12:30:00Z"}]"#;
        let early = PostedAlerts.decode("am", body, now()).unwrap();
        let late_at: Timestamp = "2026-01-01T13:00:00Z".parse().unwrap();
        let late = PostedAlerts.decode("am", body, late_at).unwrap();
        let status = |e: &[Event]| match &e[0] {
            Event::Alert(a) => (a.status, a.starts_at),
            other => panic!("not an alert: {other:?}"),
        };
        assert_eq!(status(&early), (AlertStatus::Firing, Some(now())));
        assert_eq!(status(&late), (AlertStatus::Resolved, Some(late_at)));
        assert!(PostedAlerts.decode("am", b"[{", now()).is_err());
    }
}

// ----- handlers ---------------------------------------------------------------------

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use signalcraft_core::model::Event;
use subtle::ConstantTimeEq;

use crate::extract::{is_json, parse_json, read_body};
use crate::state::AppState;

/// Metric label of this endpoint.
const ENDPOINT: &str = "alertmanager_v2";

/// `/api/v2/alerts`, `/api/v2/status`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/alerts", get(list_alerts).post(post_alerts))
        .route("/api/v2/status", get(status))
}

/// Checks the optional bearer / basic auth of `[alertmanager_api]`.
fn check_auth(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let bearer = s.secrets.am_bearer.as_ref();
    let basic = s
        .config
        .alertmanager_api
        .basic_auth
        .as_ref()
        .zip(s.secrets.am_basic_password.as_ref());
    if bearer.is_none() && basic.is_none() {
        return Ok(());
    }
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (scheme, cred) = given.split_once(' ').unwrap_or(("", ""));
    let ok = if scheme.eq_ignore_ascii_case("bearer") {
        bearer.is_some_and(|b| bool::from(b.expose().as_bytes().ct_eq(cred.trim().as_bytes())))
    } else if scheme.eq_ignore_ascii_case("basic") {
        basic.is_some_and(|(b, pw)| {
            let want = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                b.username,
                pw.expose()
            ));
            bool::from(want.as_bytes().ct_eq(cred.trim().as_bytes()))
        })
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        let mut e = ApiError::unauthorized(
            "this endpoint requires the credentials configured in [alertmanager_api]",
        )
        .with_field("Authorization");
        e.challenge = Some(if bearer.is_some() { "Bearer" } else { "Basic" });
        Err(e)
    }
}

/// `POST /api/v2/alerts`: Alertmanager's postable alerts. 200 once the alerts are durable.
#[utoipa::path(
    post,
    path = "/api/v2/alerts",
    tag = "alertmanager",
    request_body = Vec<PostableAlert>,
    responses(
        (status = 200, description = "Alerts accepted and durable"),
        (status = 400, description = "Invalid alerts", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Credentials required", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn post_alerts(State(s): State<AppState>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let result = post_alerts_inner(&s, req).await;
    let (outcome, n) = match &result {
        Ok(n) => ("accepted", *n),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => ("unauthorized", 0),
        Err(e) if e.status.is_client_error() => ("rejected", 0),
        Err(_) => ("error", 0),
    };
    s.metrics
        .ingest(ENDPOINT, outcome, n as u64, started.elapsed());
    match result {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn post_alerts_inner(s: &AppState, req: Request) -> Result<usize, ApiError> {
    check_auth(s, req.headers())?;
    if !is_json(req.headers()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "expected Content-Type: application/json",
        )
        .with_field("Content-Type"));
    }
    let body = read_body(req, s).await?;
    // Plain serde_json on the hot path; only a body that fails is decoded again with
    // path tracking (serde_path_to_error wraps every value it visits) to name the field.
    let posted: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(_) => parse_json(&body)?,
    };
    let integration = s
        .config
        .alertmanager_api
        .integration
        .as_deref()
        .unwrap_or("alertmanager-api");
    // While the journal is behind, re-sends cannot be settled in memory anyway: journal
    // the body as it came (validated), so nothing is converted or encoded here and the
    // applier parses the posted JSON once. Caught up, the alerts are converted so
    // identical re-sends settle without the journal (Engine::submit).
    let engine = &s.engine.engine;
    if s.engine.journaled() && engine.journal_lag().0 > 0 {
        validate(&posted)?;
        let n = posted.len();
        drop(posted);
        if n == 0 {
            return Ok(0);
        }
        engine
            .submit_encoded(JOURNAL_FORMAT, integration, &body, n)
            .await?;
        return Ok(n);
    }
    let alerts = to_alerts(posted, integration, s.now())?;
    let n = alerts.len();
    if n == 0 {
        return Ok(0);
    }
    s.engine
        .ingest(alerts.into_iter().map(Event::Alert).collect())
        .await?;
    Ok(n)
}

/// Query of `GET /api/v2/alerts`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// `false` hides silenced alerts.
    #[serde(default)]
    pub silenced: Option<String>,
    /// `false` hides active alerts.
    #[serde(default)]
    pub active: Option<String>,
}

/// `GET /api/v2/alerts`: the firing alerts (Alertmanager's gettable alerts).
#[utoipa::path(
    get,
    path = "/api/v2/alerts",
    tag = "alertmanager",
    responses((status = 200, description = "Firing alerts", body = Vec<GettableAlert>))
)]
pub async fn list_alerts(
    State(s): State<AppState>,
    headers: HeaderMap,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<ListQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    check_auth(&s, &headers)?;
    let body = AlertList {
        engine: s.engine.engine.clone(),
        fps: s.engine.firing_fingerprints(),
        next: 0,
        show_silenced: q.silenced.as_deref() != Some("false"),
        show_active: q.active.as_deref() != Some("false"),
        wrote_any: false,
        done: false,
    };
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// Alerts per chunk of the `GET /api/v2/alerts` body.
const LIST_CHUNK: usize = 512;

/// The body of `GET /api/v2/alerts`: a JSON array written [`LIST_CHUNK`] alerts at a
/// time, each chunk built from the engine when it is sent, so the response never
/// holds every alert in memory (100k alerts were ~200 MB built at once).
struct AlertList {
    engine: signalcraft_core::engine::Engine,
    fps: Vec<signalcraft_core::model::Fingerprint>,
    next: usize,
    show_silenced: bool,
    show_active: bool,
    wrote_any: bool,
    done: bool,
}

impl AlertList {
    /// The next piece of the array, or `None` after the closing bracket.
    fn next_chunk(&mut self) -> Option<bytes::Bytes> {
        if self.done {
            return None;
        }
        let mut out = Vec::new();
        if self.next == 0 && !self.wrote_any {
            out.push(b'[');
        }
        while out.len() <= 1 && self.next < self.fps.len() {
            let end = (self.next + LIST_CHUNK).min(self.fps.len());
            let listed = crate::engine::list_firing(&self.engine, &self.fps[self.next..end]);
            self.next = end;
            for (a, receivers, silenced) in listed {
                let shown = if silenced.is_empty() {
                    self.show_active
                } else {
                    self.show_silenced
                };
                if !shown {
                    continue;
                }
                if self.wrote_any {
                    out.push(b',');
                }
                // A GettableAlert of owned strings and maps always serializes.
                if serde_json::to_writer(&mut out, &gettable(&a, receivers, silenced)).is_ok() {
                    self.wrote_any = true;
                }
            }
        }
        if self.next >= self.fps.len() {
            out.push(b']');
            self.done = true;
        }
        Some(bytes::Bytes::from(out))
    }
}

impl futures_core::Stream for AlertList {
    type Item = Result<bytes::Bytes, std::convert::Infallible>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.get_mut().next_chunk().map(Ok))
    }
}

/// `GET /api/v2/status`: Alertmanager's status object (cluster disabled).
#[utoipa::path(
    get,
    path = "/api/v2/status",
    tag = "alertmanager",
    responses((status = 200, description = "Status", body = serde_json::Value))
)]
pub async fn status(State(s): State<AppState>) -> axum::Json<serde_json::Value> {
    let original = toml::to_string(&s.config.engine).unwrap_or_default();
    axum::Json(serde_json::json!({
        "cluster": {"status": "disabled", "peers": []},
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "",
            "branch": "",
            "buildUser": "signalcraft",
            "buildDate": "",
            "goVersion": "none (signalcraft, Rust)"
        },
        "config": {"original": original},
        "uptime": s.started_at.to_string(),
    }))
}
