//! Grafana unified alerting webhook contact point (Grafana 9–11).
//!
//! The payload is Alertmanager's webhook extended by Grafana: per alert `values`,
//! `valueString`, `fingerprint`, `silenceURL`, `dashboardURL`, `panelURL` and
//! `imageURL`, plus `orgId`, `title`, `state` and `message` on the group. Each alert
//! becomes one [`Event::Alert`] identified by its labels.
//!
//! Authentication: the contact point's Authorization header / basic auth
//! ([`TokenAuth`]), or its HMAC signature (secret `hmac_secret`): hex
//! `HMAC-SHA256(secret, body)` in `X-Grafana-Alerting-Signature`, or
//! `HMAC-SHA256(secret, timestamp ":" body)` when a timestamp header is configured,
//! in which case the timestamp must lie within `replay_window_secs` of now.

use std::borrow::Cow;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::value::RawValue;
use signalcraft_core::model::{
    Alert, Annotations, Event, Image, Labels, Link, RawPayload, Severity,
};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::alertmanager::{AmStatus, runbook_link, string_map, summary_of, ts};
use super::decode::{Common, severity_of};
use super::fast_json::{Plain, Seen, Span};
use super::integration::Integration;
use super::registry::{SourceType, Verification};
use super::secret::Secret;
use super::signature::{TokenAuth, check_replay_window, verify_hex_hmac};

const TYPE: &str = "grafana";
const SECRETS: &[&str] = &["bearer_token", "basic_auth", "token", "hmac_secret"];

/// Options of a `grafana` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrafanaConfig {
    /// Severity when the alert has no recognisable `severity` label. Default `error`.
    pub default_severity: Severity,
    /// Labels tried in order for the service hint. Default `["service"]`.
    pub service_labels: Vec<String>,
    /// Header carrying the `token` secret, if used. Default `X-Signalcraft-Token`.
    pub token_header: String,
    /// Header carrying the HMAC signature. Default `X-Grafana-Alerting-Signature`.
    pub hmac_header: String,
    /// Header carrying the signed Unix timestamp, if the contact point sets one.
    pub hmac_timestamp_header: Option<String>,
    /// Accepted clock distance of the signed timestamp, in seconds. Default 300.
    pub replay_window_secs: u32,
}

impl Default for GrafanaConfig {
    fn default() -> Self {
        GrafanaConfig {
            default_severity: Severity::Error,
            service_labels: vec!["service".into()],
            token_header: "X-Signalcraft-Token".into(),
            hmac_header: "X-Grafana-Alerting-Signature".into(),
            hmac_timestamp_header: None,
            replay_window_secs: 300,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrafanaMessage<'a, A> {
    #[serde(default, borrow)]
    receiver: Cow<'a, str>,
    #[serde(default, borrow)]
    group_key: Cow<'a, str>,
    #[serde(default)]
    truncated_alerts: u64,
    #[serde(default)]
    org_id: Option<i64>,
    #[serde(default, borrow)]
    title: Cow<'a, str>,
    #[serde(default, borrow)]
    state: Cow<'a, str>,
    #[serde(default, rename = "externalURL", borrow)]
    external_url: Cow<'a, str>,
    alerts: Vec<A>,
}

/// One alert: Alertmanager's fields plus Grafana's.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrafanaAlert<'a> {
    status: AmStatus,
    labels: Labels,
    #[serde(default)]
    annotations: Annotations,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    starts_at: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    ends_at: Option<Cow<'a, str>>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default, rename = "silenceURL")]
    silence_url: Option<String>,
    #[serde(default, rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(default, rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(default, rename = "imageURL")]
    image_url: Option<String>,
    #[serde(default)]
    values: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    value_string: Option<String>,
}

impl<'a> GrafanaMessage<'a, (GrafanaAlert<'a>, Span)> {
    /// The message read in one pass by [`Plain`], each alert with its span in `text`;
    /// `None` wherever `serde_json` must decide (it then gives this same message or
    /// the error it always gave).
    fn read(text: &'a str) -> Option<Self> {
        let mut r = Plain::new(text);
        let mut seen = Seen::default();
        let mut m = GrafanaMessage {
            receiver: Cow::Borrowed(""),
            group_key: Cow::Borrowed(""),
            truncated_alerts: 0,
            org_id: None,
            title: Cow::Borrowed(""),
            state: Cow::Borrowed(""),
            external_url: Cow::Borrowed(""),
            alerts: Vec::new(),
        };
        r.object(|r, key| {
            match key.as_ref() {
                "receiver" => m.receiver = seen.once(0, r.string())?,
                "groupKey" => m.group_key = seen.once(1, r.string())?,
                "truncatedAlerts" => {
                    let n = r.integer().and_then(|t| t.parse().ok());
                    m.truncated_alerts = seen.once(2, n)?;
                }
                "orgId" => {
                    let id = if r.null()? {
                        Some(None)
                    } else {
                        r.integer().and_then(|t| t.parse::<i64>().ok()).map(Some)
                    };
                    m.org_id = seen.once(3, id)?;
                }
                "title" => m.title = seen.once(4, r.string())?,
                "state" => m.state = seen.once(5, r.string())?,
                "externalURL" => m.external_url = seen.once(6, r.string())?,
                "alerts" => {
                    let mut alerts = Vec::new();
                    r.array(|r| {
                        alerts.push(r.spanned(|r| GrafanaAlert::read(r, text))?);
                        Some(())
                    })?;
                    m.alerts = seen.once(7, Some(alerts))?;
                }
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        (r.at_end() && seen.has(7)).then_some(m)
    }
}

impl<'a> GrafanaAlert<'a> {
    /// One alert object of `text` (see [`GrafanaMessage::read`]).
    fn read(r: &mut Plain<'a>, text: &'a str) -> Option<Self> {
        let mut seen = Seen::default();
        let (mut status, mut labels) = (None, None);
        let mut a = GrafanaAlert {
            status: AmStatus::Firing,
            labels: Labels::new(),
            annotations: Annotations::new(),
            starts_at: None,
            ends_at: None,
            generator_url: None,
            fingerprint: None,
            silence_url: None,
            dashboard_url: None,
            panel_url: None,
            image_url: None,
            values: None,
            value_string: None,
        };
        let owned = |v: Option<Option<Cow<'_, str>>>| v.map(|v| v.map(Cow::into_owned));
        r.object(|r, key| {
            match key.as_ref() {
                "status" => {
                    let s = match r.string()?.as_ref() {
                        "firing" => AmStatus::Firing,
                        "resolved" => AmStatus::Resolved,
                        _ => return None,
                    };
                    status = Some(seen.once(0, Some(s))?);
                }
                "labels" => labels = Some(seen.once(1, string_map(r))?),
                "annotations" => a.annotations = seen.once(2, string_map(r))?,
                "startsAt" => a.starts_at = seen.once(3, r.opt_string())?,
                "endsAt" => a.ends_at = seen.once(4, r.opt_string())?,
                "generatorURL" => a.generator_url = seen.once(5, owned(r.opt_string()))?,
                "fingerprint" => a.fingerprint = seen.once(6, owned(r.opt_string()))?,
                "silenceURL" => a.silence_url = seen.once(7, owned(r.opt_string()))?,
                "dashboardURL" => a.dashboard_url = seen.once(8, owned(r.opt_string()))?,
                "panelURL" => a.panel_url = seen.once(9, owned(r.opt_string()))?,
                "imageURL" => a.image_url = seen.once(10, owned(r.opt_string()))?,
                "values" => {
                    // Numbers of any kind: the slice goes through serde_json itself.
                    let start = r.value_start()?;
                    r.skip_value()?;
                    let values = serde_json::from_str(&text[start..r.offset()]).ok();
                    a.values = seen.once(11, values)?;
                }
                "valueString" => a.value_string = seen.once(12, owned(r.opt_string()))?,
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        a.status = status?;
        a.labels = labels?;
        Some(a)
    }
}

/// A `grafana` provider.
#[derive(Debug)]
pub struct GrafanaProvider {
    common: Common,
    config: GrafanaConfig,
    auth: TokenAuth,
    hmac: Option<Secret>,
    verification: Verification,
}

fn push_link(links: &mut Vec<Link>, url: Option<String>, text: &str) {
    if let Some(u) = url.filter(|u| !u.is_empty()) {
        links.push(Link {
            href: u,
            text: Some(text.into()),
        });
    }
}

impl Provider for GrafanaProvider {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn verify(&self, req: &InboundRequest, now: Timestamp) -> Result<(), ProviderError> {
        if self.verification == Verification::Skip {
            return Ok(());
        }
        if let Some(key) = &self.hmac {
            let header = &self.config.hmac_header;
            match &self.config.hmac_timestamp_header {
                Some(ts_header) => {
                    let window =
                        SignedDuration::from_secs(i64::from(self.config.replay_window_secs));
                    let stamp = check_replay_window(TYPE, req, ts_header, now, window)?;
                    verify_hex_hmac(
                        TYPE,
                        req,
                        header,
                        "",
                        key,
                        &[stamp.as_bytes(), b":", &req.body],
                    )?;
                }
                None => verify_hex_hmac(TYPE, req, header, "", key, &[&req.body])?,
            }
        }
        self.auth.verify(TYPE, req)
    }

    fn parse(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        // One pass where it can (see `GrafanaMessage::read`); serde_json otherwise.
        let body = &req.body;
        if self.common.check_size(body).is_ok()
            && let Ok(text) = std::str::from_utf8(body)
            && let Some(mut msg) = GrafanaMessage::read(text)
        {
            let alerts = std::mem::take(&mut msg.alerts);
            let shared = self.common.share(text);
            return Ok(alerts
                .into_iter()
                .map(|(a, span)| {
                    // SAFETY: `read` read `text` to its end and declines whatever is not
                    // valid JSON; `span` is one alert object it read in full.
                    let raw = unsafe {
                        self.common
                            .raw_span(shared.as_ref(), span.range, span.compact)
                    };
                    self.event(&msg, a, raw)
                })
                .collect());
        }
        self.parse_general(req)
    }
}

impl GrafanaProvider {
    /// `parse` through `serde_json` alone.
    fn parse_general(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let body = &req.body;
        if !self.common.keep_raw {
            let mut msg: GrafanaMessage<GrafanaAlert> = self.common.decode(body)?;
            let alerts = std::mem::take(&mut msg.alerts);
            return Ok(alerts
                .into_iter()
                .map(|a| self.event(&msg, a, RawPayload::null()))
                .collect());
        }
        // Raw payloads kept: each alert's slice is its raw payload and is decoded on
        // its own (no Value of the body is built).
        let msg: GrafanaMessage<&RawValue> = self.common.decode(body)?;
        let alerts = self
            .common
            .decode_each::<GrafanaAlert, GrafanaMessage<GrafanaAlert>>(body, &msg.alerts)?;
        Ok(alerts
            .into_iter()
            .map(|(a, raw)| self.event(&msg, a, self.common.raw(raw)))
            .collect())
    }
}

impl GrafanaProvider {
    fn event<A>(&self, msg: &GrafanaMessage<'_, A>, a: GrafanaAlert<'_>, raw: RawPayload) -> Event {
        use serde_json::Value;
        let severity = a
            .labels
            .get("severity")
            .and_then(severity_of)
            .unwrap_or(self.config.default_severity);
        let service = self
            .config
            .service_labels
            .iter()
            .find_map(|l| a.labels.get(l).filter(|v| !v.is_empty()).map(str::to_owned));
        let mut links = Vec::new();
        push_link(&mut links, a.generator_url, "Alert rule");
        push_link(&mut links, a.dashboard_url.clone(), "Dashboard");
        push_link(&mut links, a.panel_url.clone(), "Panel");
        push_link(&mut links, a.silence_url, "Silence");
        runbook_link(&a.annotations, &mut links);
        let images = a
            .image_url
            .filter(|u| !u.is_empty())
            .map(|src| Image {
                src,
                href: a.panel_url.or(a.dashboard_url).filter(|u| !u.is_empty()),
                alt: a.labels.get("alertname").map(str::to_owned),
            })
            .into_iter()
            .collect();
        let text = |s: &str| Value::String(s.to_string());
        let mut d = serde_json::Map::new();
        d.insert("receiver".into(), text(&msg.receiver));
        d.insert("groupKey".into(), text(&msg.group_key));
        d.insert("truncatedAlerts".into(), msg.truncated_alerts.into());
        d.insert("orgId".into(), msg.org_id.map_or(Value::Null, Value::from));
        d.insert("title".into(), text(&msg.title));
        d.insert("state".into(), text(&msg.state));
        d.insert("externalURL".into(), text(&msg.external_url));
        d.insert(
            "fingerprint".into(),
            a.fingerprint.map_or(Value::Null, Value::String),
        );
        d.insert("values".into(), a.values.map_or(Value::Null, Value::Object));
        d.insert(
            "valueString".into(),
            a.value_string.map_or(Value::Null, Value::String),
        );
        Event::Alert(Alert {
            source: self.common.source.clone(),
            dedup_key: None,
            status: a.status.into(),
            severity,
            summary: summary_of(&a.labels, &a.annotations),
            details: Value::Object(d),
            labels: a.labels,
            annotations: a.annotations,
            links,
            images,
            starts_at: ts(a.starts_at.as_deref()),
            ends_at: ts(a.ends_at.as_deref()),
            service,
            raw,
        })
    }
}

/// The `grafana` source type.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrafanaType;

impl SourceType for GrafanaType {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&[], SECRETS)
    }

    fn primary_secret(&self) -> Option<&'static str> {
        Some("hmac_secret")
    }

    fn build(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        let config: GrafanaConfig = integration.options_as(TYPE)?;
        if verification == Verification::Verify {
            integration.check_secrets(TYPE, &[], SECRETS)?;
        }
        if config.replay_window_secs == 0 {
            return Err(ProviderError::InvalidConfig {
                provider: TYPE.into(),
                field: "options.replay_window_secs".into(),
                message: "must be positive".into(),
            });
        }
        let auth = TokenAuth::from_integration(TYPE, integration, &config.token_header)?;
        Ok(Box::new(GrafanaProvider {
            common: Common::new(TYPE, integration),
            hmac: integration.secret("hmac_secret").cloned(),
            config,
            auth,
            verification,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::route_check::{assert_routes_agree, fixture_bodies, mutated_fixture};

    fn provider(keep_raw: bool) -> GrafanaProvider {
        let mut i = Integration::new(TYPE, "grafana");
        i.keep_raw = keep_raw;
        GrafanaProvider {
            common: Common::new(TYPE, &i),
            config: GrafanaConfig::default(),
            auth: TokenAuth::default(),
            hmac: None,
            verification: Verification::Skip,
        }
    }

    /// `parse` (one pass where it can) and `serde_json` alone agree on `body`, results
    /// and errors alike, with and without raw payloads.
    fn routes_agree(body: &[u8]) {
        for keep_raw in [false, true] {
            let p = provider(keep_raw);
            let req = InboundRequest::from_body(body.to_vec());
            assert_routes_agree(p.parse(&req), p.parse_general(&req), body);
        }
    }

    #[test]
    fn messages_take_the_one_pass_route_and_agree_with_serde() {
        let mut one_pass = Vec::new();
        for (name, body) in fixture_bodies("grafana") {
            routes_agree(&body);
            if GrafanaMessage::read(std::str::from_utf8(&body).unwrap()).is_some() {
                one_pass.push(name);
            }
        }
        assert_eq!(
            one_pass,
            ["datasource_error", "firing_with_images", "resolved"]
        );
        for odd in [
            r#"{"alerts": [{"status": "firing", "labels": {"a": "b"}, "values": {"B": 22.5, "C": 1, "D": -0.0, "E": 1e400}}]}"#,
            r#"{"alerts": [{"status": "firing", "labels": {}, "values": null, "orgId": 3}]}"#,
            r#"{"orgId": -7, "alerts": [{"status": "firing", "labels": {}, "values": [1]}]}"#,
            r#"{"orgId": null, "title": "t", "alerts": [{"status": "resolved", "labels": {}, "imageURL": null, "panelURL": "p\/1"}]}"#,
            r#"{"orgId": 1.5, "alerts": []}"#,
            r#"{"alerts": [{"status": "firing", "labels": {}, "fingerprint": "a", "fingerprint": "b"}]}"#,
            r#"{"title": null, "alerts": []}"#,
            r#"{"alerts": []}  "#,
            r#"{"receiver": "r"}"#,
        ] {
            routes_agree(odd.as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn routes_agree_on_mutated_messages(
            case in 0usize..8,
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::sample::select(vec![
                    b'"', b'\\', b',', b'}', b'{', b'[', b']', b':', b'n', b'1', b'-', b'.',
                    b' ', b'\n', b'u', b't',
                ])),
                1..3,
            ),
        ) {
            let body = mutated_fixture("grafana", case, edits);
            routes_agree(&body);
        }
    }
}
