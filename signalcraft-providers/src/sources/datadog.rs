//! Datadog Webhooks integration: the default payload and the extended template.
//!
//! The default payload (`body`, `last_updated`, `event_type`, `title`, `date`, `org`,
//! `id`) carries the transition only in the title prefix (`[Triggered]`, `[Recovered]`,
//! `[Warn]`, `[No Data]`, optionally after a `[P1]` priority). The extended template
//! adds `alert_transition`, `alert_type`, `alert_priority`, `aggregate`, `alert_id`,
//! `alert_scope`, `tags`, `link`, `hostname` and `snapshot` (any subset).
//!
//! * status: `Recovered` (or `alert_type: success`) → resolved; everything else fires.
//! * severity: `Warn`/`No Data` → warning; else `alert_priority` (P1 critical …), else
//!   `alert_type`, else `default_severity`.
//! * dedup key: `aggregate` ($AGGREG_KEY), else `alert_id` + `alert_scope`, else the
//!   title without its bracketed prefixes — so the Recovered notification resolves the
//!   Triggered one.
//!
//! Authentication (Datadog cannot sign): a shared secret in a custom header (secret
//! `token`, header `token_header`, default `X-Signalcraft-Token`) or basic auth
//! (`basic_auth`, `user:password`); at least one is required.

use std::borrow::Cow;
use std::fmt;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use signalcraft_core::model::{
    Alert, AlertStatus, Event, Image, Labels, LabelsBuilder, Link, RawPayload, Severity,
};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{
    Common, contains_ignore_ascii_case, first_line, parse_timestamp, push_label, severity_of,
};
use super::fast_json::{Plain, Seen};
use super::integration::Integration;
use super::registry::{SourceType, Verification};
use super::signature::TokenAuth;

const TYPE: &str = "datadog";
const SECRETS: &[&str] = &["token", "basic_auth", "bearer_token"];

/// Options of a `datadog` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatadogConfig {
    /// Header carrying the `token` secret. Default `X-Signalcraft-Token`.
    pub token_header: String,
    /// Severity when nothing in the payload says. Default `error`.
    pub default_severity: Severity,
    /// Tag (`name:value` in `tags`) used as the service hint. Default `service`.
    pub service_tag: String,
}

impl Default for DatadogConfig {
    fn default() -> Self {
        DatadogConfig {
            token_header: "X-Signalcraft-Token".into(),
            default_severity: Severity::Error,
            service_tag: "service".into(),
        }
    }
}

/// Any JSON value where only scalars matter: strings are borrowed from the body when
/// they have no escapes, numbers keep serde_json's own spelling, arrays and objects are
/// skipped without being built.
#[derive(Debug)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num(Number),
    Bool(bool),
    /// `null`, an array or an object.
    Other,
}

impl Scalar<'_> {
    /// The scalar as text (`"a"` → `a`, `3` → `3`, `true` → `true`), as
    /// `decode::scalar_text` spells a `Value`; `None` for null, arrays and objects.
    fn text(&self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s.to_string()),
            Scalar::Num(n) => Some(n.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Other => None,
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(v.into()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(v).map_or(Scalar::Other, Scalar::Num))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// `tags`: a comma-separated string, or an array whose scalar elements each hold one or
/// more comma-separated tags (other elements are skipped).
#[derive(Debug)]
enum Tags<'a> {
    List(Vec<Scalar<'a>>),
    One(Scalar<'a>),
}

struct TagsVisitor;

impl<'de> Visitor<'de> for TagsVisitor {
    type Value = Tags<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(8));
        while let Some(s) = seq.next_element::<Scalar<'de>>()? {
            v.push(s);
        }
        Ok(Tags::List(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        ScalarVisitor.visit_borrowed_str(v).map(Tags::One)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        ScalarVisitor.visit_str(v).map(Tags::One)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        ScalarVisitor.visit_string(v).map(Tags::One)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        ScalarVisitor.visit_u64(v).map(Tags::One)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        ScalarVisitor.visit_i64(v).map(Tags::One)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        ScalarVisitor.visit_f64(v).map(Tags::One)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        ScalarVisitor.visit_bool(v).map(Tags::One)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Tags::One(Scalar::Other))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Tags::One(Scalar::Other))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        ScalarVisitor.visit_map(map).map(Tags::One)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Tags<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TagsVisitor)
    }
}

#[derive(Debug, Deserialize)]
struct Org<'a> {
    #[serde(default, borrow)]
    id: Option<Scalar<'a>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    name: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct DatadogPayload<'a> {
    #[serde(borrow)]
    title: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    body: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    event_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    date: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    last_updated: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    id: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    org: Option<Org<'a>>,
    #[serde(default, borrow)]
    alert_id: Option<Scalar<'a>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    alert_transition: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    alert_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    alert_priority: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    alert_scope: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    alert_title: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    alert_query: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    alert_metric: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    aggregate: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tags: Option<Tags<'a>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    link: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    hostname: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    snapshot: Option<Cow<'a, str>>,
}

impl<'a> DatadogPayload<'a> {
    /// The payload read in one pass by [`Plain`]; `None` wherever `serde_json` must
    /// decide (it then gives this same payload or the error it always gave).
    fn read(text: &'a str) -> Option<Self> {
        let mut r = Plain::new(text);
        let mut seen = Seen::default();
        let mut p = DatadogPayload {
            title: Cow::Borrowed(""),
            body: None,
            event_type: None,
            date: None,
            last_updated: None,
            id: None,
            org: None,
            alert_id: None,
            alert_transition: None,
            alert_type: None,
            alert_priority: None,
            alert_scope: None,
            alert_title: None,
            alert_query: None,
            alert_metric: None,
            aggregate: None,
            tags: None,
            link: None,
            hostname: None,
            snapshot: None,
        };
        r.object(|r, key| {
            match key.as_ref() {
                "title" => p.title = seen.once(0, r.string())?,
                "body" => p.body = seen.once(1, r.opt_string())?,
                "event_type" => p.event_type = seen.once(2, r.opt_string())?,
                "date" => p.date = seen.once(3, opt_scalar(r))?,
                "last_updated" => p.last_updated = seen.once(4, opt_scalar(r))?,
                "id" => p.id = seen.once(5, opt_scalar(r))?,
                "org" => p.org = seen.once(6, Org::read(r))?,
                "alert_id" => p.alert_id = seen.once(7, opt_scalar(r))?,
                "alert_transition" => p.alert_transition = seen.once(8, r.opt_string())?,
                "alert_type" => p.alert_type = seen.once(9, r.opt_string())?,
                "alert_priority" => p.alert_priority = seen.once(10, r.opt_string())?,
                "alert_scope" => p.alert_scope = seen.once(11, r.opt_string())?,
                "alert_title" => p.alert_title = seen.once(12, r.opt_string())?,
                "alert_query" => p.alert_query = seen.once(13, r.opt_string())?,
                "alert_metric" => p.alert_metric = seen.once(14, r.opt_string())?,
                "aggregate" => p.aggregate = seen.once(15, r.opt_string())?,
                "tags" => p.tags = seen.once(16, Tags::read(r))?,
                "link" => p.link = seen.once(17, r.opt_string())?,
                "hostname" => p.hostname = seen.once(18, r.opt_string())?,
                "snapshot" => p.snapshot = seen.once(19, r.opt_string())?,
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        // `title` is required.
        (r.at_end() && seen.has(0)).then_some(p)
    }
}

impl<'a> Org<'a> {
    /// `null` → `Some(None)`; an object → `Some(Some(org))`.
    fn read(r: &mut Plain<'a>) -> Option<Option<Self>> {
        if r.null()? {
            return Some(None);
        }
        let mut seen = Seen::default();
        let mut org = Org {
            id: None,
            name: None,
        };
        r.object(|r, key| {
            match key.as_ref() {
                "id" => org.id = seen.once(0, opt_scalar(r))?,
                "name" => org.name = seen.once(1, r.opt_string())?,
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        Some(Some(org))
    }
}

impl<'a> Tags<'a> {
    /// `null` → `Some(None)`; an array → a list of scalars; any other value → one.
    fn read(r: &mut Plain<'a>) -> Option<Option<Self>> {
        if r.null()? {
            return Some(None);
        }
        if r.next_byte()? != b'[' {
            return scalar(r).map(|s| Some(Tags::One(s)));
        }
        let mut list = Vec::new();
        r.array(|r| {
            list.push(scalar(r)?);
            Some(())
        })?;
        Some(Some(Tags::List(list)))
    }
}

/// `null` → `Some(None)`, any other value → `Some(Some(scalar))` (see [`scalar`]).
fn opt_scalar<'a>(r: &mut Plain<'a>) -> Option<Option<Scalar<'a>>> {
    if r.null()? {
        return Some(None);
    }
    scalar(r).map(Some)
}

/// A value as [`Scalar`] reads it: text, a non-negative integer (other numbers
/// decline), a boolean, or `Other` for null, arrays and objects.
fn scalar<'a>(r: &mut Plain<'a>) -> Option<Scalar<'a>> {
    Some(match r.next_byte()? {
        b'"' => Scalar::Str(r.string()?),
        b't' | b'f' => Scalar::Bool(r.boolean()?),
        b'n' | b'[' | b'{' => {
            r.skip_value()?;
            Scalar::Other
        }
        _ => Scalar::Num(r.integer()?.parse::<u64>().ok()?.into()),
    })
}

/// Reads the leading `[…]` tags of a title: `[P1] [Triggered] CPU high` → priority `P1`,
/// transition `Triggered`, bare title `CPU high`.
fn bracket_prefixes(title: &str) -> Prefixes<'_> {
    let mut rest = title.trim_start();
    let mut p = Prefixes {
        transition: None,
        priority: None,
        bare_title: rest,
    };
    while let Some(r) = rest.strip_prefix('[') {
        let Some(end) = r.find(']') else { break };
        let tag = &r[..end];
        let slot = if tag.len() == 2 && tag.starts_with('P') {
            &mut p.priority
        } else {
            &mut p.transition
        };
        slot.get_or_insert(tag);
        rest = r[end + 1..].trim_start();
    }
    p.bare_title = rest;
    p
}

/// A Datadog title's leading `[…]` tags, e.g. `[P1] [Triggered] CPU high`.
struct Prefixes<'t> {
    /// The first tag that is not a priority (`Triggered`, `Recovered`, …).
    transition: Option<&'t str>,
    /// The first two-character `P…` tag.
    priority: Option<&'t str>,
    /// The title after the tags.
    bare_title: &'t str,
}

fn nonempty<'s>(s: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.starts_with('$'))
}

/// A `datadog` provider.
#[derive(Debug)]
pub struct DatadogProvider {
    common: Common,
    config: DatadogConfig,
    auth: TokenAuth,
    verification: Verification,
}

impl Provider for DatadogProvider {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn verify(&self, req: &InboundRequest, _now: Timestamp) -> Result<(), ProviderError> {
        match self.verification {
            Verification::Skip => Ok(()),
            Verification::Verify => self.auth.verify(TYPE, req),
        }
    }

    fn parse(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        // One pass where it can (see `DatadogPayload::read`); serde_json otherwise.
        if self.common.check_size(&req.body).is_ok()
            && let Ok(text) = std::str::from_utf8(&req.body)
            && let Some(p) = DatadogPayload::read(text)
        {
            // SAFETY: `read` read the whole text and declines whatever is not valid JSON.
            let raw = unsafe { self.common.raw_text(text) };
            return self.normalize(p, raw);
        }
        self.parse_general(req)
    }
}

impl DatadogProvider {
    /// `parse` through `serde_json` alone.
    fn parse_general(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (p, raw): (DatadogPayload, _) = self.common.decode_with_raw(&req.body)?;
        self.normalize(p, raw)
    }

    fn normalize(
        &self,
        p: DatadogPayload<'_>,
        raw: RawPayload,
    ) -> Result<Vec<Event>, ProviderError> {
        let prefixes = bracket_prefixes(&p.title);
        let bare_title = prefixes.bare_title;
        let transition = nonempty(&p.alert_transition)
            .or(prefixes.transition)
            .map(str::to_string)
            .unwrap_or_default();
        let t = transition.as_str();
        let alert_type = nonempty(&p.alert_type).unwrap_or("");
        let status = if contains_ignore_ascii_case(t, "recovered")
            || alert_type.eq_ignore_ascii_case("success")
        {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        };
        let priority = nonempty(&p.alert_priority)
            .or(prefixes.priority)
            .map(str::to_string);
        let severity =
            if contains_ignore_ascii_case(t, "warn") || contains_ignore_ascii_case(t, "no data") {
                Severity::Warning
            } else if let Some(s) = priority.as_deref().and_then(severity_of) {
                s
            } else {
                match alert_type {
                    a if a.eq_ignore_ascii_case("error") => Severity::Error,
                    a if a.eq_ignore_ascii_case("warning") => Severity::Warning,
                    a if a.eq_ignore_ascii_case("info") => Severity::Info,
                    _ => self.config.default_severity,
                }
            };
        let mut labels = LabelsBuilder::with_capacity(8);
        // Tags: a comma-separated string or an array of them (each element may itself
        // hold several comma-separated tags).
        let mut service = None;
        let mut add_tags = |text: &str| {
            for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let (k, v) = tag.split_once(':').unwrap_or((tag, ""));
                // Owned: `text` lives only for this call.
                labels.push(
                    k.to_owned(),
                    (if v.is_empty() { "true" } else { v }).to_owned(),
                );
                if k == self.config.service_tag && !v.is_empty() {
                    service = Some(v.to_string());
                }
            }
        };
        let mut add_scalar = |s: &Scalar<'_>| match s {
            Scalar::Str(s) => add_tags(s),
            other => {
                if let Some(t) = other.text() {
                    add_tags(&t)
                }
            }
        };
        match &p.tags {
            Some(Tags::List(a)) => a.iter().for_each(&mut add_scalar),
            Some(Tags::One(s)) => add_scalar(s),
            None => {}
        }
        push_label(&mut labels, "hostname", nonempty(&p.hostname).unwrap_or(""));
        push_label(
            &mut labels,
            "alert_metric",
            nonempty(&p.alert_metric).unwrap_or(""),
        );
        if let Some(name) = p.org.as_ref().and_then(|o| o.name.as_deref()) {
            push_label(&mut labels, "org", name);
        }
        let alert_id = p
            .alert_id
            .as_ref()
            .and_then(Scalar::text)
            .filter(|s| !s.starts_with('$'));
        let dedup_key = if let Some(agg) = nonempty(&p.aggregate) {
            agg.to_string()
        } else if let Some(id) = &alert_id {
            format!("{id}:{}", nonempty(&p.alert_scope).unwrap_or(""))
        } else {
            format!("title:{bare_title}")
        };
        let summary = nonempty(&p.alert_title)
            .map(str::to_string)
            .unwrap_or_else(|| first_line(bare_title, 512));
        let body = p.body.filter(|b| !b.trim().is_empty());
        let query = nonempty(&p.alert_query);
        let annotations: Labels = [("body", body.as_deref()), ("query", query)]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        let at = p
            .last_updated
            .as_ref()
            .or(p.date.as_ref())
            .and_then(|s| match s {
                Scalar::Str(s) => parse_timestamp(s),
                other => other.text().and_then(|s| parse_timestamp(&s)),
            });
        let link = nonempty(&p.link).map(str::to_string);
        // Built directly (same keys and values as before, nulls included): no
        // intermediate `json!` copies.
        let opt = |v: Option<String>| v.map_or(Value::Null, Value::String);
        let mut details = Map::new();
        details.insert("transition".into(), Value::String(transition));
        details.insert("event_type".into(), opt(p.event_type.map(Cow::into_owned)));
        details.insert("event_id".into(), opt(p.id.as_ref().and_then(Scalar::text)));
        details.insert("alert_id".into(), opt(alert_id));
        details.insert("priority".into(), opt(priority));
        details.insert(
            "scope".into(),
            opt(nonempty(&p.alert_scope).map(str::to_string)),
        );
        details.insert(
            "org_id".into(),
            opt(p
                .org
                .as_ref()
                .and_then(|o| o.id.as_ref())
                .and_then(Scalar::text)),
        );
        let images = nonempty(&p.snapshot)
            .map(|src| Image {
                src: src.to_string(),
                href: link.clone(),
                alt: Some(summary_alt(bare_title)),
            })
            .into_iter()
            .collect();
        let links = link
            .map(|href| Link {
                href,
                text: Some("Datadog".into()),
            })
            .into_iter()
            .collect();
        Ok(vec![Event::Alert(Alert {
            source: self.common.source.clone(),
            dedup_key: Some(dedup_key),
            status,
            severity,
            summary,
            details: Value::Object(details),
            labels: labels.build(),
            annotations,
            links,
            images,
            starts_at: if status == AlertStatus::Firing {
                at
            } else {
                None
            },
            ends_at: if status == AlertStatus::Resolved {
                at
            } else {
                None
            },
            service,
            raw,
        })])
    }
}

fn summary_alt(title: &str) -> String {
    first_line(title, 120)
}

/// The `datadog` source type.
#[derive(Debug, Clone, Copy, Default)]
pub struct DatadogType;

impl SourceType for DatadogType {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&[], SECRETS)
    }

    fn primary_secret(&self) -> Option<&'static str> {
        Some("token")
    }

    fn build(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        let config: DatadogConfig = integration.options_as(TYPE)?;
        let auth = TokenAuth::from_integration(TYPE, integration, &config.token_header)?;
        if verification == Verification::Verify {
            integration.check_secrets(TYPE, &[], SECRETS)?;
            if !auth.is_configured() {
                return Err(ProviderError::InvalidConfig {
                    provider: TYPE.into(),
                    field: "secrets".into(),
                    message: "configure secret \"token\" (custom header) or \"basic_auth\"".into(),
                });
            }
        }
        Ok(Box::new(DatadogProvider {
            common: Common::new(TYPE, integration),
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

    fn parse(body: &str) -> Alert {
        let provider = DatadogType
            .build(&Integration::new(TYPE, "dd"), Verification::Skip)
            .unwrap();
        match provider
            .parse(&InboundRequest::from_body(body.as_bytes().to_vec()))
            .unwrap()
            .pop()
        {
            Some(Event::Alert(a)) => a,
            other => panic!("expected one alert, got {other:?}"),
        }
    }

    /// Scalars of any JSON type are spelled as `serde_json::Value` would print them;
    /// nested arrays, objects and nulls in `tags` are skipped.
    #[test]
    fn non_string_scalars_and_tag_arrays() {
        let a = parse(
            r#"{"title": "[Triggered] CPU", "alert_id": 123, "id": 1.5,
                "org": {"id": -42, "name": "Acme"},
                "tags": ["env:prod,service:web", 7, true, ["nested:x"], {"o": 1}, null,
                         "te\u0061m:core"]}"#,
        );
        let l = |k: &str| a.labels.get(k);
        assert_eq!(l("env"), Some("prod"));
        assert_eq!(l("service"), Some("web"));
        assert_eq!(l("7"), Some("true"));
        assert_eq!(l("true"), Some("true"));
        assert_eq!(l("team"), Some("core"));
        assert_eq!(l("nested"), None);
        assert_eq!(l("o"), None);
        assert_eq!(a.service.as_deref(), Some("web"));
        assert_eq!(a.dedup_key.as_deref(), Some("123:"));
        assert_eq!(a.details["alert_id"], "123");
        assert_eq!(a.details["event_id"], "1.5");
        assert_eq!(a.details["org_id"], "-42");
        assert_eq!(a.details["scope"], Value::Null);
    }

    fn provider(keep_raw: bool) -> DatadogProvider {
        let mut i = Integration::new(TYPE, "dd");
        i.keep_raw = keep_raw;
        DatadogProvider {
            common: Common::new(TYPE, &i),
            config: DatadogConfig::default(),
            auth: TokenAuth::default(),
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
    fn payloads_take_the_one_pass_route_and_agree_with_serde() {
        let mut one_pass = Vec::new();
        for (name, body) in fixture_bodies("datadog") {
            routes_agree(&body);
            if DatadogPayload::read(std::str::from_utf8(&body).unwrap()).is_some() {
                one_pass.push(name);
            }
        }
        let want = [
            "default_recovered",
            "default_triggered",
            "extended_no_data",
            "extended_recovered",
            "extended_triggered",
            "extended_warn",
        ];
        assert_eq!(one_pass, want);
        for odd in [
            r#"{"title": "x", "tags": ["a:b", 7, true, null, ["n"], {"o": 1}], "org": {"id": 3, "x": [1]}}"#,
            r#"{"title": "x", "id": -5, "date": 1.5, "alert_id": 1e3, "org": null, "tags": null}"#,
            r#"{"title": "x", "title": "y"}"#,
            r#"{"title": null}"#,
            r#"{"body": "no title"}"#,
            r#"{"title": "x", "org": [1]}"#,
            r#"{"title": "x", "tags": "a:b", "hostname": "h\u0041", "link": "l\/x"}"#,
            r#"{"title": "x", "last_updated": "1714560000000", "unknown": {"deep": [[[]]]}}"#,
            r#"{"title": "x"} trailing"#,
        ] {
            routes_agree(odd.as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn routes_agree_on_mutated_payloads(
            case in 0usize..8,
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::sample::select(vec![
                    b'"', b'\\', b',', b'}', b'{', b'[', b']', b':', b'n', b'1', b'-', b'.',
                    b' ', b'\n', b'u', b't',
                ])),
                1..3,
            ),
        ) {
            let body = mutated_fixture("datadog", case, edits);
            routes_agree(&body);
        }
    }

    #[test]
    fn tags_as_a_number_and_ids_as_objects() {
        let a = parse(r#"{"title": "x", "tags": 5, "alert_id": {"a": 1}, "id": [1]}"#);
        assert_eq!(a.labels.get("5"), Some("true"));
        assert_eq!(a.details["alert_id"], Value::Null);
        assert_eq!(a.details["event_id"], Value::Null);
        assert_eq!(a.dedup_key.as_deref(), Some("title:x"));
    }
}
