//! Label sets and the fingerprint that identifies an alert.
//!
//! A [`Labels`] set is kept sorted by name, so equality, hashing and the
//! fingerprint never depend on the order labels arrived in.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A sorted set of `name = value` labels (Prometheus semantics: names unique).
pub type Labels = BTreeMap<String, String>;

/// Read access to a label set by name, whatever its representation ([`Labels`] or a
/// packed [`super::CompactAlert`]): what matchers, silences and routing need.
pub trait LabelView {
    /// The value of label `name`, if present.
    fn label(&self, name: &str) -> Option<&str>;
}

impl LabelView for Labels {
    #[inline]
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// A 64-bit identity of an alert.
///
/// * Without a provider dedup key it is the FNV-1a 64 hash of the sorted label
///   set, computed exactly as Prometheus/Alertmanager compute `LabelSet.Fingerprint()`
///   (name, `0xff`, value, `0xff` for each label in name order), so the same labels
///   give the same fingerprint here and in Alertmanager.
/// * With a dedup key it is the FNV-1a 64 hash of `integration 0xfe dedup_key`: keys are
///   scoped to the integration that sent them, as PagerDuty scopes `dedup_key` to a
///   routing key.
///
/// Serialized as 16 lowercase hex digits, as Alertmanager prints fingerprints.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SEPARATOR: u8 = 0xff;
const KEY_SEPARATOR: u8 = 0xfe;

#[inline]
fn fnv_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

impl Fingerprint {
    /// Fingerprint of a label set (Alertmanager-compatible).
    pub fn of_labels(labels: &Labels) -> Self {
        Self::of_label_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Fingerprint of label pairs that are already sorted by name.
    pub fn of_label_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut h = FNV_OFFSET;
        for (k, v) in pairs {
            h = fnv_bytes(h, k.as_bytes());
            h = fnv_bytes(h, &[SEPARATOR]);
            h = fnv_bytes(h, v.as_bytes());
            h = fnv_bytes(h, &[SEPARATOR]);
        }
        Fingerprint(h)
    }

    /// Fingerprint of a provider dedup key scoped to an integration.
    pub fn of_dedup_key(integration: &str, dedup_key: &str) -> Self {
        let mut h = fnv_bytes(FNV_OFFSET, integration.as_bytes());
        h = fnv_bytes(h, &[KEY_SEPARATOR]);
        Fingerprint(fnv_bytes(h, dedup_key.as_bytes()))
    }

    /// Parses the 16-hex-digit form.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Fingerprint)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Fingerprint::parse(&s)
            .ok_or_else(|| serde::de::Error::custom("fingerprint must be 16 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_label_set_is_fnv_offset() {
        // Prometheus: model.LabelSet{}.Fingerprint() == hashNew() == 14695981039346656037.
        assert_eq!(
            Fingerprint::of_labels(&Labels::new()).0,
            14695981039346656037
        );
    }

    #[test]
    fn matches_prometheus_model_vector() {
        // Vector from prometheus/common model/signature_test.go (TestLabelsToSignature):
        // {"name": "garland, briggs", "fear": "love is not enough"} -> 5799056148416392346.
        let l = labels(&[("name", "garland, briggs"), ("fear", "love is not enough")]);
        assert_eq!(Fingerprint::of_labels(&l).0, 5799056148416392346);
    }

    #[test]
    fn dedup_key_is_scoped_by_integration() {
        assert_ne!(
            Fingerprint::of_dedup_key("a", "k"),
            Fingerprint::of_dedup_key("b", "k")
        );
        assert_eq!(
            Fingerprint::of_dedup_key("a", "k"),
            Fingerprint::of_dedup_key("a", "k")
        );
    }

    #[test]
    fn hex_round_trip() {
        let f = Fingerprint(0x00ab_cdef_0123_4567);
        assert_eq!(f.to_string(), "00abcdef01234567");
        assert_eq!(Fingerprint::parse(&f.to_string()), Some(f));
        assert_eq!(Fingerprint::parse("xyz"), None);
    }
}
