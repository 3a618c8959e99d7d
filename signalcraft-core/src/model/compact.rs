//! [`CompactAlert`]: an [`Alert`] without its audit-only parts, packed for memory.
//!
//! The engine keeps every active alert in memory for its whole life (grouping,
//! silences, notifications). A provider-built [`Alert`] owns its packed label and
//! annotation sets, a few small strings (summary, links; ≈450 B of heap for an
//! Alertmanager alert) plus the raw payload, which only the audit record needs and
//! which is persisted when the alert is received. A `CompactAlert` keeps what decisions and notifications use (source,
//! status, severity, summary, dedup key, service, labels, annotations, links,
//! start/end, and details and images when present) with every string in one
//! allocation, and drops the raw payload.
//!
//! Layout of the packed text: a header of six little-endian `u16` counts / flags
//! (labels, annotations, links, has dedup key, has service, reserved), then
//! length-prefixed strings (LEB128 lengths): summary, dedup key?, service?, label
//! name/value pairs (in name order), annotation name/value pairs (in name order), and
//! per link its href plus its text prefixed by one presence byte.

use std::sync::Arc;

use jiff::Timestamp;

use super::event::{Alert, AlertStatus, Image, Link, RawPayload, Severity, Source};
use super::labels::{LabelView, Labels};

/// An [`Alert`] without its raw payload, strings packed in one allocation.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactAlert {
    /// Producing integration (shared strings, no allocation per alert).
    pub source: Source,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Normalized severity.
    pub severity: Severity,
    /// Start and end as Unix seconds ([`NO_TIME`] when unknown) …
    secs: [i64; 2],
    /// … and their nanoseconds (two `Option<Timestamp>`s would take 48 bytes).
    nanos: [i32; 2],
    /// Shared, not copied, when the alert is cloned (every notification of a group
    /// carries its alerts packed).
    text: Arc<[u8]>,
    /// Details (when not null) and images (when any): rare, kept apart.
    extra: Option<Arc<Extra>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Extra {
    details: serde_json::Value,
    images: Vec<Image>,
}

const HEADER: usize = 12;
/// `secs` value of an absent time (outside jiff's range, so never a real one).
const NO_TIME: i64 = i64::MIN;

fn pack_time(t: Option<Timestamp>) -> (i64, i32) {
    t.map_or((NO_TIME, 0), |t| (t.as_second(), t.subsec_nanosecond()))
}

fn unpack_time(secs: i64, nanos: i32) -> Option<Timestamp> {
    if secs == NO_TIME {
        return None;
    }
    Timestamp::new(secs, nanos).ok()
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn len_len(mut n: usize) -> usize {
    let mut k = 1;
    while n >= 0x80 {
        n >>= 7;
        k += 1;
    }
    k
}

fn str_size(s: &str) -> usize {
    len_len(s.len()) + s.len()
}

/// Reads the packed strings in order.
#[derive(Clone)]
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    fn next_str(&mut self) -> &'a str {
        // Written from `&str`s only, so always valid UTF-8; never panic on it anyway.
        std::str::from_utf8(self.next_bytes()).unwrap_or("")
    }

    /// The next string's bytes, without the UTF-8 check (for comparing and skipping).
    #[inline]
    fn next_bytes(&mut self) -> &'a [u8] {
        let mut n = 0usize;
        let mut shift = 0u32;
        let mut used = 0;
        for &b in self.rest {
            used += 1;
            n |= usize::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let body = self.rest.get(used..).unwrap_or(&[]);
        let (s, rest) = body.split_at(n.min(body.len()));
        self.rest = rest;
        s
    }

    #[inline]
    fn skip(&mut self, n: usize) {
        for _ in 0..n {
            self.next_bytes();
        }
    }

    #[inline]
    fn byte(&mut self) -> u8 {
        let (b, rest) = self
            .rest
            .split_first()
            .map_or((0, &[][..]), |(b, r)| (*b, r));
        self.rest = rest;
        b
    }
}

impl CompactAlert {
    /// Packs an alert; its raw payload is dropped.
    pub fn from_alert(a: &Alert) -> Self {
        let mut size = HEADER + str_size(&a.summary);
        size += a.dedup_key.as_deref().map_or(0, str_size);
        size += a.service.as_deref().map_or(0, str_size);
        size += a
            .labels
            .iter()
            .map(|(k, v)| str_size(k) + str_size(v))
            .sum::<usize>();
        size += a
            .annotations
            .iter()
            .map(|(k, v)| str_size(k) + str_size(v))
            .sum::<usize>();
        size += a
            .links
            .iter()
            .map(|l| str_size(&l.href) + 1 + l.text.as_deref().map_or(0, str_size))
            .sum::<usize>();
        let mut t = Vec::with_capacity(size);
        for n in [
            a.labels.len(),
            a.annotations.len(),
            a.links.len(),
            usize::from(a.dedup_key.is_some()),
            usize::from(a.service.is_some()),
            0,
        ] {
            // More than 65,535 labels, annotations or links cannot come from a provider
            // (request size limits); saturate rather than wrap.
            t.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes());
        }
        put_str(&mut t, &a.summary);
        if let Some(k) = &a.dedup_key {
            put_str(&mut t, k);
        }
        if let Some(s) = &a.service {
            put_str(&mut t, s);
        }
        let cap = usize::from(u16::MAX);
        for (k, v) in a.labels.iter().take(cap) {
            put_str(&mut t, k);
            put_str(&mut t, v);
        }
        for (k, v) in a.annotations.iter().take(cap) {
            put_str(&mut t, k);
            put_str(&mut t, v);
        }
        for l in a.links.iter().take(cap) {
            put_str(&mut t, &l.href);
            match &l.text {
                Some(x) => {
                    t.push(1);
                    put_str(&mut t, x);
                }
                None => t.push(0),
            }
        }
        let extra = (!a.details.is_null() || !a.images.is_empty()).then(|| {
            Arc::new(Extra {
                details: a.details.clone(),
                images: a.images.clone(),
            })
        });
        let (s0, n0) = pack_time(a.starts_at);
        let (s1, n1) = pack_time(a.ends_at);
        CompactAlert {
            source: a.source.clone(),
            status: a.status,
            severity: a.severity,
            secs: [s0, s1],
            nanos: [n0, n1],
            text: Arc::from(t),
            extra,
        }
    }

    #[inline]
    fn count(&self, i: usize) -> usize {
        let b = self.text.get(2 * i..2 * i + 2).unwrap_or(&[0, 0]);
        usize::from(u16::from_le_bytes([b[0], b[1]]))
    }

    #[inline]
    fn reader(&self) -> Reader<'_> {
        Reader {
            rest: self.text.get(HEADER..).unwrap_or(&[]),
        }
    }

    /// A reader positioned at the label pairs, and the summary, dedup key, service.
    #[inline]
    fn head(&self) -> (&str, Option<&str>, Option<&str>, Reader<'_>) {
        let mut r = self.reader();
        let summary = r.next_str();
        let dedup = (self.count(3) != 0).then(|| r.next_str());
        let service = (self.count(4) != 0).then(|| r.next_str());
        (summary, dedup, service, r)
    }

    /// A reader positioned at the label pairs (summary, dedup key, service skipped
    /// unchecked).
    #[inline]
    fn pairs(&self) -> Reader<'_> {
        let mut r = self.reader();
        r.skip(1 + usize::from(self.count(3) != 0) + usize::from(self.count(4) != 0));
        r
    }

    /// When the condition started, if known.
    pub fn starts_at(&self) -> Option<Timestamp> {
        unpack_time(self.secs[0], self.nanos[0])
    }

    /// When the condition ended, if known.
    pub fn ends_at(&self) -> Option<Timestamp> {
        unpack_time(self.secs[1], self.nanos[1])
    }

    /// One-line summary.
    #[inline]
    pub fn summary(&self) -> &str {
        self.head().0
    }

    /// Provider dedup key, if any.
    pub fn dedup_key(&self) -> Option<&str> {
        self.head().1
    }

    /// Service hint, if any.
    pub fn service(&self) -> Option<&str> {
        self.head().2
    }

    /// Label pairs in name order.
    #[inline]
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut r = self.pairs();
        (0..self.count(0)).map(move |_| (r.next_str(), r.next_str()))
    }

    /// Annotation pairs in name order.
    pub fn annotations(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut r = self.pairs();
        r.skip(2 * self.count(0));
        (0..self.count(1)).map(move |_| (r.next_str(), r.next_str()))
    }

    /// Links in order as `(href, text)`.
    pub fn links(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        let mut r = self.pairs();
        r.skip(2 * (self.count(0) + self.count(1)));
        (0..self.count(2)).map(move |_| {
            let href = r.next_str();
            let text = (r.byte() != 0).then(|| r.next_str());
            (href, text)
        })
    }

    /// The value of annotation `name`, if present.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// How many labels, annotations and links it has.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.count(0), self.count(1), self.count(2))
    }

    /// Free-form details (`null` when none).
    pub fn details(&self) -> &serde_json::Value {
        static NULL: serde_json::Value = serde_json::Value::Null;
        self.extra.as_ref().map_or(&NULL, |e| &e.details)
    }

    /// Images.
    pub fn images(&self) -> &[Image] {
        self.extra.as_ref().map_or(&[], |e| e.images.as_slice())
    }

    /// Its identity, as [`Alert::fingerprint`] of the unpacked alert.
    pub fn fingerprint(&self) -> super::Fingerprint {
        match self.dedup_key() {
            Some(k) => super::Fingerprint::of_dedup_key(&self.source.integration, k),
            None => super::Fingerprint::of_label_pairs(self.labels()),
        }
    }

    /// The labels as a [`Labels`] map (allocates).
    pub fn to_labels(&self) -> Labels {
        self.labels().collect()
    }

    /// The alert again, with a null raw payload (allocates).
    pub fn to_alert(&self) -> Alert {
        let (summary, dedup, service, _) = self.head();
        Alert {
            source: self.source.clone(),
            dedup_key: dedup.map(str::to_string),
            status: self.status,
            severity: self.severity,
            summary: summary.to_string(),
            details: self
                .extra
                .as_ref()
                .map_or(serde_json::Value::Null, |e| e.details.clone()),
            labels: self.to_labels(),
            annotations: self.annotations().collect(),
            links: self
                .links()
                .map(|(href, text)| Link {
                    href: href.to_string(),
                    text: text.map(str::to_string),
                })
                .collect(),
            images: self
                .extra
                .as_ref()
                .map_or_else(Vec::new, |e| e.images.clone()),
            starts_at: self.starts_at(),
            ends_at: self.ends_at(),
            service: service.map(str::to_string),
            raw: RawPayload::null(),
        }
    }

    /// Heap bytes this alert owns (its packed text and extra parts; shared source
    /// strings not counted).
    pub fn heap_size(&self) -> usize {
        self.text.len()
            + self
                .extra
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<Extra>())
    }
}

impl LabelView for CompactAlert {
    /// Walks the packed pairs comparing bytes (they are in name order, so it stops at
    /// the first greater name); only the value found is checked as UTF-8.
    #[inline]
    fn label(&self, name: &str) -> Option<&str> {
        let mut r = self.pairs();
        let name = name.as_bytes();
        for _ in 0..self.count(0) {
            let k = r.next_bytes();
            match k.cmp(name) {
                std::cmp::Ordering::Less => r.skip(1),
                std::cmp::Ordering::Equal => return std::str::from_utf8(r.next_bytes()).ok(),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rich() -> Alert {
        let src = Source {
            provider: "p".into(),
            integration: "i".into(),
        };
        let mut a = Alert::firing(
            src,
            "disk full ✓",
            [
                ("alertname".to_string(), "DiskFull".to_string()),
                ("instance".to_string(), "x".repeat(300)),
                ("empty".to_string(), String::new()),
            ]
            .into(),
        );
        a.dedup_key = Some("k-1".into());
        a.service = Some("db".into());
        a.severity = Severity::Critical;
        a.status = AlertStatus::Resolved;
        a.annotations.insert("runbook".into(), "https://r".into());
        a.annotations.insert("a".into(), String::new());
        a.links.push(Link {
            href: "https://g".into(),
            text: Some("graph".into()),
        });
        a.links.push(Link {
            href: "https://h".into(),
            text: None,
        });
        a.links.push(Link {
            href: String::new(),
            text: Some(String::new()),
        });
        a.images.push(Image {
            src: "https://i".into(),
            href: None,
            alt: Some("alt".into()),
        });
        a.details = serde_json::json!({"k": [1, 2]});
        a.starts_at = Some(Timestamp::new(1_700_000_000, 123_456_789).unwrap());
        a.ends_at = Some(Timestamp::from_second(1_700_000_600).unwrap());
        a.raw = RawPayload::from_json(r#"{"x":1}"#).unwrap();
        a
    }

    #[test]
    fn round_trip_keeps_everything_but_raw() {
        for a in [rich(), {
            let mut m = rich();
            m.dedup_key = None;
            m.service = None;
            m.annotations.clear();
            m.links.clear();
            m.images.clear();
            m.details = serde_json::Value::Null;
            m.labels.clear();
            m.starts_at = None;
            m.ends_at = None;
            m.summary.clear();
            m
        }] {
            let c = CompactAlert::from_alert(&a);
            let mut want = a.clone();
            want.raw = RawPayload::null();
            assert_eq!(c.to_alert(), want);
            assert_eq!(c.summary(), a.summary);
            assert_eq!(c.dedup_key(), a.dedup_key.as_deref());
            assert_eq!(c.service(), a.service.as_deref());
            assert_eq!(c.to_labels(), a.labels);
            for (k, v) in &a.labels {
                assert_eq!(c.label(k), Some(v));
            }
            assert_eq!(c.label("nope"), None);
            assert_eq!(c.fingerprint(), a.fingerprint());
            assert_eq!(c.details(), &a.details);
            assert_eq!(c.images(), a.images.as_slice());
            assert_eq!(
                c.counts(),
                (a.labels.len(), a.annotations.len(), a.links.len())
            );
            for (k, v) in &a.annotations {
                assert_eq!(c.annotation(k), Some(v));
            }
            assert_eq!(c.annotation("nope"), None);
        }
    }

    #[test]
    fn label_lookup_finds_exactly_the_names_present() {
        let mut a = rich();
        a.labels = [("b", "1"), ("bb", "2"), ("d", ""), ("é", "3"), ("zz", "4")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for with_head in [true, false] {
            if !with_head {
                a.dedup_key = None;
                a.service = None;
            }
            let c = CompactAlert::from_alert(&a);
            for (k, v) in &a.labels {
                assert_eq!(c.label(k), Some(v), "{k}");
            }
            // Before the first, between two (incl. a prefix of one), after the last.
            for missing in ["a", "", "ba", "c", "bbb", "e", "z", "zzz", "ê"] {
                assert_eq!(c.label(missing), None, "{missing}");
            }
            // The summary / dedup key / service text is never taken for a label.
            assert_eq!(c.label("disk full ✓"), None);
            assert_eq!(c.label("k-1"), None);
        }
    }

    #[test]
    fn is_smaller_than_the_alert() {
        let a = rich();
        let c = CompactAlert::from_alert(&a);
        let text: usize = a.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        // The packed text is the strings plus a few bytes of framing.
        assert!(
            c.text.len() < text + a.summary.len() + 200,
            "{}",
            c.text.len()
        );
    }
}
