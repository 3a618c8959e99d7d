//! The stored form of an accepted notification (the `{notification_id}/notification`
//! row of the [notification log](super::log)).
//!
//! A notification is written once when it is accepted and read back only to resume
//! or retry its delivery, so its row is made small rather than readable: each alert
//! leaves out what the notification already says, which is most of an alert in a
//! group notification:
//! * its labels and annotations that are the notification's common labels and
//!   common annotations (only when the alert carries every one of them, with the
//!   same value; otherwise its whole map is written);
//! * its source when it is the notification's (the first alert's) source;
//! * its status when it is the notification's status.
//!
//! Short field names do the rest. A 10-alert group notification of the issue-7
//! workload takes ~1.7 KB instead of ~3.3 KB as plain `Notification` JSON. Rows
//! start with `{"v":2,`; a row without that prefix is plain `Notification` JSON (as
//! written before) and is read as such. [`decode`] gives back exactly the
//! notification [`encode`] was given.

use jiff::Timestamp;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use crate::channel::{IncidentRef, Notification, NotificationKind, Target};
use crate::model::{
    Alert, AlertStatus, Annotations, ChangeEvent, CompactAlert, Image, LabelView, Labels, Link,
    RawPayload, Severity, Source,
};

/// The prefix of every row in this form (the version field first).
const PREFIX: &[u8] = b"{\"v\":2,";

/// The row of `n` (see the module doc), appended to `out`.
pub(crate) fn encode(n: &Notification, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let source = match n.alerts.packed() {
        Some(p) => p.first().map(|a| &a.source),
        None => n.alerts.first().map(|a| &a.source),
    };
    serde_json::to_writer(
        out,
        &RowRef {
            v: 2,
            id: &n.id,
            kind: &n.kind,
            group_key: &n.group_key,
            status: n.status,
            incident: n.incident.as_ref(),
            group_labels: &n.group_labels,
            common_labels: &n.common_labels,
            common_annotations: &n.common_annotations,
            runbooks: &n.runbooks,
            recent_changes: &n.recent_changes,
            receiver: &n.receiver,
            target: &n.target,
            external_url: n.external_url.as_deref(),
            created_at: n.created_at,
            source,
            alerts: AlertsRef { n, source },
        },
    )
}

/// The notification of a row written by [`encode`], or of a row of plain
/// `Notification` JSON.
pub(crate) fn decode(row: &[u8]) -> serde_json::Result<Notification> {
    if !row.starts_with(PREFIX) {
        return serde_json::from_slice(row);
    }
    let mut r: Row = serde_json::from_slice(row)?;
    let alerts = std::mem::take(&mut r.alerts)
        .into_iter()
        .map(|a| a.into_alert(&r))
        .collect();
    Ok(Notification {
        id: r.id,
        kind: r.kind,
        group_key: r.group_key,
        status: r.status,
        incident: r.incident,
        alerts,
        group_labels: r.group_labels,
        common_labels: r.common_labels,
        common_annotations: r.common_annotations,
        runbooks: r.runbooks,
        recent_changes: r.recent_changes,
        receiver: r.receiver,
        target: r.target,
        external_url: r.external_url,
        created_at: r.created_at,
    })
}

#[derive(Serialize)]
struct RowRef<'a> {
    v: u8,
    id: &'a str,
    kind: &'a NotificationKind,
    group_key: &'a str,
    status: AlertStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident: Option<&'a IncidentRef>,
    group_labels: &'a Labels,
    common_labels: &'a Labels,
    common_annotations: &'a Annotations,
    runbooks: &'a [Link],
    recent_changes: &'a [ChangeEvent],
    receiver: &'a str,
    target: &'a Target,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_url: Option<&'a str>,
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a Source>,
    alerts: AlertsRef<'a>,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    kind: NotificationKind,
    group_key: String,
    status: AlertStatus,
    #[serde(default)]
    incident: Option<IncidentRef>,
    group_labels: Labels,
    common_labels: Labels,
    common_annotations: Annotations,
    runbooks: Vec<Link>,
    recent_changes: Vec<ChangeEvent>,
    receiver: String,
    target: Target,
    #[serde(default)]
    external_url: Option<String>,
    created_at: Timestamp,
    #[serde(default)]
    source: Option<Source>,
    alerts: Vec<AlertRow>,
}

struct AlertsRef<'a> {
    n: &'a Notification,
    source: Option<&'a Source>,
}

impl Serialize for AlertsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.n;
        let mut seq = s.serialize_seq(Some(n.alerts.len()))?;
        if let Some(packed) = n.alerts.packed() {
            // The same fields from the packed form, without unpacking the alerts.
            for a in packed {
                seq.serialize_element(&PackedAlertRef {
                    a,
                    n,
                    source: self.source,
                })?;
            }
            return seq.end();
        }
        for a in &n.alerts {
            seq.serialize_element(&AlertRef {
                a,
                n,
                source: self.source,
            })?;
        }
        seq.end()
    }
}

/// One alert of a row: `src`, `dk`, `st` (only when it differs from the
/// notification's), `sv`, `s`, `d`, labels and annotations (see [`own_entries`]),
/// `lk`, `im`, `sa`, `ea`, `svc`, `raw`; empty and absent fields left out.
struct AlertRef<'a> {
    a: &'a Alert,
    n: &'a Notification,
    /// The row's source.
    source: Option<&'a Source>,
}

impl Serialize for AlertRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (a, n) = (self.a, self.n);
        let mut m = s.serialize_map(None)?;
        if Some(&a.source) != self.source {
            m.serialize_entry("src", &a.source)?;
        }
        if let Some(k) = &a.dedup_key {
            m.serialize_entry("dk", k)?;
        }
        if a.status != n.status {
            m.serialize_entry("st", &a.status)?;
        }
        m.serialize_entry("sv", &a.severity)?;
        m.serialize_entry("s", &a.summary)?;
        if !a.details.is_null() {
            m.serialize_entry("d", &a.details)?;
        }
        own_entries(&mut m, ("l", "L"), &a.labels, &n.common_labels)?;
        own_entries(&mut m, ("a", "A"), &a.annotations, &n.common_annotations)?;
        if !a.links.is_empty() {
            m.serialize_entry("lk", &a.links)?;
        }
        if !a.images.is_empty() {
            m.serialize_entry("im", &a.images)?;
        }
        if let Some(t) = &a.starts_at {
            m.serialize_entry("sa", t)?;
        }
        if let Some(t) = &a.ends_at {
            m.serialize_entry("ea", t)?;
        }
        if let Some(svc) = &a.service {
            m.serialize_entry("svc", svc)?;
        }
        if !a.raw.is_null() {
            m.serialize_entry("raw", &a.raw)?;
        }
        m.end()
    }
}

/// [`AlertRef`] of a packed alert: the same entries (a packed alert has no raw
/// payload), so the row decodes to the same notification.
struct PackedAlertRef<'a> {
    a: &'a CompactAlert,
    n: &'a Notification,
    source: Option<&'a Source>,
}

impl Serialize for PackedAlertRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (a, n) = (self.a, self.n);
        let mut m = s.serialize_map(None)?;
        if Some(&a.source) != self.source {
            m.serialize_entry("src", &a.source)?;
        }
        if let Some(k) = a.dedup_key() {
            m.serialize_entry("dk", k)?;
        }
        if a.status != n.status {
            m.serialize_entry("st", &a.status)?;
        }
        m.serialize_entry("sv", &a.severity)?;
        m.serialize_entry("s", a.summary())?;
        if !a.details().is_null() {
            m.serialize_entry("d", a.details())?;
        }
        let (labels, annotations, links) = a.counts();
        own_pairs(
            &mut m,
            ("l", "L"),
            (labels, || a.labels()),
            |k| a.label(k),
            &n.common_labels,
        )?;
        own_pairs(
            &mut m,
            ("a", "A"),
            (annotations, || a.annotations()),
            |k| a.annotation(k),
            &n.common_annotations,
        )?;
        if links > 0 {
            let links: Vec<Link> = a
                .links()
                .map(|(href, text)| Link {
                    href: href.to_string(),
                    text: text.map(str::to_string),
                })
                .collect();
            m.serialize_entry("lk", &links)?;
        }
        if !a.images().is_empty() {
            m.serialize_entry("im", a.images())?;
        }
        if let Some(t) = &a.starts_at() {
            m.serialize_entry("sa", t)?;
        }
        if let Some(t) = &a.ends_at() {
            m.serialize_entry("ea", t)?;
        }
        if let Some(svc) = a.service() {
            m.serialize_entry("svc", svc)?;
        }
        m.end()
    }
}

/// [`own_entries`] of a packed map: `len` pairs from `pairs()` (in name order),
/// looked up by name with `get`.
fn own_pairs<'p, M, I>(
    m: &mut M,
    keys: (&'static str, &'static str),
    (len, pairs): (usize, impl Fn() -> I),
    get: impl Fn(&str) -> Option<&'p str>,
    common: &Labels,
) -> Result<(), M::Error>
where
    M: SerializeMap,
    I: Iterator<Item = (&'p str, &'p str)>,
{
    let factored = common.iter().all(|(k, v)| get(k).is_some_and(|x| x == v));
    if !factored {
        m.serialize_entry(keys.1, &Pairs(&pairs))
    } else if len > common.len() {
        m.serialize_entry(
            keys.0,
            &Pairs(|| pairs().filter(|(k, _)| !common.contains_key(k))),
        )
    } else {
        Ok(())
    }
}

/// A map of the pairs its closure yields (in order).
struct Pairs<F>(F);

impl<'p, F, I> Serialize for Pairs<F>
where
    F: Fn() -> I,
    I: Iterator<Item = (&'p str, &'p str)>,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in (self.0)() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Writes a string map of an alert: when it has every entry of `common` (same
/// values), only its other entries, under `keys.0` (nothing when there are none);
/// otherwise the whole map under `keys.1`, even when empty (absent reads back as the
/// common entries).
fn own_entries<M: SerializeMap>(
    m: &mut M,
    keys: (&'static str, &'static str),
    all: &Labels,
    common: &Labels,
) -> Result<(), M::Error> {
    let factored = common
        .iter()
        .all(|(k, v)| all.get(k).is_some_and(|x| x == v));
    if !factored {
        m.serialize_entry(keys.1, all)
    } else if all.len() > common.len() {
        m.serialize_entry(keys.0, &Beyond(all, common))
    } else {
        Ok(())
    }
}

/// The entries of `.0` that `.1` does not have.
struct Beyond<'a>(&'a Labels, &'a Labels);

impl Serialize for Beyond<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len() - self.1.len()))?;
        for (k, v) in self.0 {
            if !self.1.contains_key(k) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

#[derive(Deserialize)]
struct AlertRow {
    #[serde(default, rename = "src")]
    source: Option<Source>,
    #[serde(default, rename = "dk")]
    dedup_key: Option<String>,
    #[serde(default, rename = "st")]
    status: Option<AlertStatus>,
    #[serde(rename = "sv")]
    severity: Severity,
    #[serde(rename = "s")]
    summary: String,
    #[serde(default, rename = "d")]
    details: serde_json::Value,
    #[serde(default)]
    l: Option<Labels>,
    #[serde(default, rename = "L")]
    labels: Option<Labels>,
    #[serde(default)]
    a: Option<Annotations>,
    #[serde(default, rename = "A")]
    annotations: Option<Annotations>,
    #[serde(default, rename = "lk")]
    links: Vec<Link>,
    #[serde(default, rename = "im")]
    images: Vec<Image>,
    #[serde(default, rename = "sa")]
    starts_at: Option<Timestamp>,
    #[serde(default, rename = "ea")]
    ends_at: Option<Timestamp>,
    #[serde(default, rename = "svc")]
    service: Option<String>,
    #[serde(default)]
    raw: RawPayload,
}

/// A map written by [`own_entries`]: the whole map, or the common entries plus the own ones
/// (just the common ones when neither key is present).
fn merged(whole: Option<Labels>, own: Option<Labels>, common: &Labels) -> Labels {
    if let Some(w) = whole {
        return w;
    }
    let mut m = common.clone();
    if let Some(own) = own {
        m.extend(own.iter());
    }
    m
}

impl AlertRow {
    fn into_alert(self, row: &Row) -> Alert {
        Alert {
            source: self
                .source
                .or_else(|| row.source.clone())
                .unwrap_or(Source {
                    provider: "".into(),
                    integration: "".into(),
                }),
            dedup_key: self.dedup_key,
            status: self.status.unwrap_or(row.status),
            severity: self.severity,
            summary: self.summary,
            details: self.details,
            labels: merged(self.labels, self.l, &row.common_labels),
            annotations: merged(self.annotations, self.a, &row.common_annotations),
            links: self.links,
            images: self.images,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            service: self.service,
            raw: self.raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::NotificationAlerts;

    fn source(i: &str) -> Source {
        Source {
            provider: "alertmanager".into(),
            integration: i.into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    /// Every field of an alert set (a struct literal: a field added to `Alert`
    /// breaks this test until the row stores it).
    fn rich(n: u32) -> Alert {
        Alert {
            source: source("prom"),
            dedup_key: Some(format!("dk-{n}")),
            status: AlertStatus::Firing,
            severity: Severity::Critical,
            summary: format!("disk full {n}"),
            details: serde_json::json!({"used": n, "nested": {"a": [1, 2]}}),
            labels: labels(&[("alertname", "Disk"), ("instance", &format!("i{n}"))]),
            annotations: labels(&[("summary", &format!("disk full {n}")), ("team", "ops")]),
            links: vec![Link {
                href: format!("http://g/{n}"),
                text: Some("graph".into()),
            }],
            images: vec![Image {
                src: "http://img".into(),
                href: None,
                alt: Some("graph".into()),
            }],
            starts_at: Some(Timestamp::from_second(1_800_000_000).expect("ts")),
            ends_at: Some(Timestamp::from_second(1_800_000_060).expect("ts")),
            service: Some("checkout".into()),
            raw: RawPayload::from_json(r#"{"raw": true}"#).expect("raw"),
        }
    }

    fn notification(alerts: Vec<Alert>) -> Notification {
        Notification {
            id: "incident/hook/0-abc-1".into(),
            kind: NotificationKind::Incident,
            group_key: "route:{alertname=\"Disk\"}".into(),
            status: AlertStatus::Firing,
            incident: Some(IncidentRef {
                id: "inc-1".into(),
                number: 1,
                title: "disk full".into(),
                state: "open".into(),
                severity: Severity::Critical,
                service: None,
                url: Some("http://sc/incidents/inc-1".into()),
            }),
            alerts: alerts.into(),
            group_labels: labels(&[("alertname", "Disk")]),
            common_labels: labels(&[("alertname", "Disk")]),
            common_annotations: labels(&[("team", "ops")]),
            runbooks: vec![Link {
                href: "http://rb".into(),
                text: None,
            }],
            recent_changes: vec![],
            receiver: "hook".into(),
            target: Target {
                address: "http://127.0.0.1:1/hook".into(),
                user: None,
            },
            external_url: Some("http://sc".into()),
            created_at: Timestamp::from_second(1_800_000_001).expect("ts"),
        }
    }

    fn round_trip(n: &Notification) -> Vec<u8> {
        let mut row = Vec::new();
        encode(n, &mut row).expect("encode");
        assert!(row.starts_with(PREFIX), "{}", String::from_utf8_lossy(&row));
        assert_eq!(&decode(&row).expect("decode"), n);
        row
    }

    #[test]
    fn a_group_notification_reads_back_whole_and_is_smaller_than_its_json() {
        let n = notification((0..10).map(rich).collect());
        let row = round_trip(&n);
        let plain = serde_json::to_vec(&n).expect("json");
        assert!(row.len() < plain.len(), "{} vs {}", row.len(), plain.len());
        // The common label and annotation are written once, not once per alert.
        let text = String::from_utf8(row).expect("utf8");
        assert_eq!(text.matches("\"Disk\"").count(), 2, "{text}");
        assert_eq!(text.matches("\"ops\"").count(), 1, "{text}");
    }

    #[test]
    fn alerts_that_differ_from_the_notification_keep_what_differs() {
        let mut odd = rich(1);
        // Lacks the common label, has another value for the common annotation, a
        // source and status of its own; another alert with nothing optional set.
        odd.labels = labels(&[("instance", "x")]);
        odd.annotations = labels(&[("team", "dev")]);
        odd.source = source("other");
        odd.status = AlertStatus::Resolved;
        let mut bare = Alert::firing(source("prom"), "", Default::default());
        bare.severity = Severity::Info;
        let mut only_common = rich(2);
        only_common.labels = labels(&[("alertname", "Disk")]);
        only_common.annotations = labels(&[("team", "ops")]);
        let n = notification(vec![rich(0), odd, bare, only_common]);
        round_trip(&n);
        // No common maps at all, and no alerts.
        let mut n = notification(vec![rich(0)]);
        n.common_labels.clear();
        n.common_annotations.clear();
        round_trip(&n);
        round_trip(&notification(vec![]));
    }

    /// The notification with the same alerts packed (raw payloads dropped, as
    /// packing does).
    fn packed(n: &Notification) -> Notification {
        let mut p = n.clone();
        p.alerts = NotificationAlerts::from_packed(
            n.alerts.iter().map(CompactAlert::from_alert).collect(),
        );
        p
    }

    #[test]
    fn packed_alerts_write_the_row_of_their_unpacked_form() {
        let mut odd = rich(1);
        odd.labels = labels(&[("instance", "x")]);
        odd.annotations = labels(&[("team", "dev")]);
        odd.source = source("other");
        odd.status = AlertStatus::Resolved;
        odd.links.push(Link {
            href: "http://second".into(),
            text: None,
        });
        let mut bare = Alert::firing(source("prom"), "", Default::default());
        bare.severity = Severity::Info;
        let mut only_common = rich(2);
        only_common.labels = labels(&[("alertname", "Disk")]);
        only_common.annotations = labels(&[("team", "ops")]);
        let mut cases = vec![
            notification((0..10).map(rich).collect()),
            notification(vec![rich(0), odd, bare, only_common]),
            notification(vec![]),
        ];
        let mut no_common = notification(vec![rich(0), rich(1)]);
        no_common.common_labels.clear();
        no_common.common_annotations.clear();
        cases.push(no_common);
        for n in cases {
            let p = packed(&n);
            assert!(p.alerts.packed().is_some());
            let mut from_packed = Vec::new();
            encode(&p, &mut from_packed).expect("encode");
            // Written without unpacking: the full alerts were never built …
            assert!(!p.alerts.unpacked());
            let mut unpacked = p.clone();
            let full = std::mem::take(unpacked.alerts.to_mut());
            unpacked.alerts = full.into();
            let mut want = Vec::new();
            encode(&unpacked, &mut want).expect("encode");
            // … and byte for byte the row of the unpacked alerts, which reads back whole.
            assert_eq!(
                String::from_utf8_lossy(&from_packed),
                String::from_utf8_lossy(&want)
            );
            assert_eq!(decode(&from_packed).expect("decode"), p);
        }
    }

    #[test]
    fn plain_notification_json_written_before_reads_as_is() {
        let n = notification(vec![rich(0), rich(1)]);
        let plain = serde_json::to_vec(&n).expect("json");
        assert_eq!(decode(&plain).expect("decode"), n);
        assert!(decode(b"{\"v\":2,\"id\":1}").is_err());
    }
}
