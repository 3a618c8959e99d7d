//! Label sets and the fingerprint that identifies an alert.
//!
//! A [`Labels`] set is kept sorted by name, so equality, hashing and the
//! fingerprint never depend on the order labels arrived in.
//!
//! # Representation
//!
//! A set is **packed**: all names and values live in one heap allocation, so building
//! a 5-label set costs one `malloc` (a `BTreeMap<String, String>` cost eleven: a
//! 544-byte leaf node and ten strings). The buffer is
//!
//! ```text
//! [n: u32] [end of string 0: u32] … [end of string 2n-1: u32] [text: names and values]
//! ```
//!
//! all integers little-endian; string `2i` is the `i`-th name, `2i + 1` its value, each
//! ending at its `end` offset into `text` (and starting where the previous one ended).
//! Pairs are sorted by name (byte order, as `str`'s `Ord`) and names are unique, so one
//! set of pairs has exactly one buffer: equality is a byte comparison. The empty set
//! holds no allocation.
//!
//! Reads (`get`, `iter`) are cheap; [`Labels::insert`] and [`Labels::remove`] rebuild
//! the buffer (O(size of the set)), which is fine for the few edits providers make but
//! wrong for building a set label by label in a loop: collect the pairs and build once
//! ([`Labels::from_pairs`], `collect`, `From<[(K, V); N]>`, or [`Labels::extend`]).

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A sorted set of `name = value` labels (Prometheus semantics: names unique), packed
/// into one allocation (see the module doc).
///
/// Its API mirrors the part of `BTreeMap<String, String>` the workspace used, with
/// `&str` in place of `&String`; equality, ordering and hashing are those of the
/// `BTreeMap` holding the same pairs, and the serde form is the same JSON object
/// (names in order; on input any order, a repeated name keeps its last value).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// `[n][ends × 2n][text]`; empty for the empty set. Invariant: built only by
    /// [`Labels::write_sorted`] from `&str` pieces, so every string span is UTF-8.
    buf: Box<[u8]>,
}

/// The annotations of an alert: the same packed, sorted map as [`Labels`] (names
/// unique, values free text).
pub type Annotations = Labels;

#[inline]
fn read_u32(buf: &[u8], at: usize) -> usize {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b) as usize
}

/// Longest string [`cmp_short`] and [`eq_short`] compare in an inline loop.
const SHORT: usize = 24;

/// `a.cmp(b)` for the short strings label names mostly are: a byte loop the compiler
/// inlines, where the slice comparison calls `memcmp` (whose call costs more than the
/// comparison of a few bytes). Longer strings take the slice comparison.
#[inline]
fn cmp_short(a: &[u8], b: &[u8]) -> Ordering {
    if a.len() > SHORT || b.len() > SHORT {
        return a.cmp(b);
    }
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// `a == b` with [`cmp_short`]'s inline loop for short strings.
#[inline]
pub(crate) fn eq_short(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() > SHORT {
        return a == b;
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// Converts a length to the buffer's `u32` offsets.
///
/// # Panics
/// If a set's text exceeds 4 GiB: a capacity limit like `Vec`'s (every inbound body is
/// limited far below it).
#[inline]
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("label set text exceeds 4 GiB")
}

impl Labels {
    /// The empty set (no allocation).
    pub fn new() -> Self {
        Labels {
            buf: Box::default(),
        }
    }

    /// Writes pairs that are already sorted by name; of a run of equal names only the
    /// last is kept (repeated `insert` semantics). One allocation of the exact size.
    fn write_sorted<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Self {
        let keep =
            |i: usize| i + 1 == pairs.len() || pairs[i + 1].0.as_ref() != pairs[i].0.as_ref();
        let mut n = 0usize;
        let mut text = 0usize;
        for (i, (k, v)) in pairs.iter().enumerate() {
            if keep(i) {
                n += 1;
                text += k.as_ref().len() + v.as_ref().len();
            }
        }
        if n == 0 {
            return Self::new();
        }
        let header = 4 + 8 * n;
        let mut buf = Vec::with_capacity(header + text);
        buf.extend_from_slice(&to_u32(n).to_le_bytes());
        let mut end = 0usize;
        for (i, (k, v)) in pairs.iter().enumerate() {
            if keep(i) {
                end += k.as_ref().len();
                buf.extend_from_slice(&to_u32(end).to_le_bytes());
                end += v.as_ref().len();
                buf.extend_from_slice(&to_u32(end).to_le_bytes());
            }
        }
        for (i, (k, v)) in pairs.iter().enumerate() {
            if keep(i) {
                buf.extend_from_slice(k.as_ref().as_bytes());
                buf.extend_from_slice(v.as_ref().as_bytes());
            }
        }
        debug_assert_eq!(buf.len(), header + text);
        Labels {
            buf: buf.into_boxed_slice(),
        }
    }

    /// Sorts `pairs` by name in place (stable, so of equal names the last stays last)
    /// and builds the set: one allocation, no intermediate strings. Small slices sort
    /// without allocating.
    pub fn from_slice_mut<K: AsRef<str>, V: AsRef<str>>(pairs: &mut [(K, V)]) -> Self {
        if !pairs.is_sorted_by(|a, b| a.0.as_ref() <= b.0.as_ref()) {
            pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        }
        Self::write_sorted(pairs)
    }

    /// Builds a set from `(name, value)` pairs in any order, borrowed or owned; a
    /// repeated name keeps its last value. The pairs are gathered in one temporary
    /// vector and the set is written in one allocation.
    pub fn from_pairs<K, V, I>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut v: Vec<(K, V)> = pairs.into_iter().collect();
        Self::from_slice_mut(&mut v)
    }

    /// Number of labels.
    #[inline]
    pub fn len(&self) -> usize {
        if self.buf.is_empty() {
            0
        } else {
            read_u32(&self.buf, 0)
        }
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Heap bytes held by the set (its one allocation).
    pub fn heap_size(&self) -> usize {
        self.buf.len()
    }

    /// String `j` (name `j / 2` or its value) given the text start.
    #[inline]
    fn str_at(&self, text: usize, j: usize) -> &str {
        let start = if j == 0 {
            0
        } else {
            read_u32(&self.buf, 4 + 4 * (j - 1))
        };
        let end = read_u32(&self.buf, 4 + 4 * j);
        let bytes = &self.buf[text + start..text + end];
        // SAFETY: the buffer is written only by `write_sorted`, which copies whole `&str`
        // names and values and records their boundaries; `j` selects one of them, so
        // `bytes` is exactly one UTF-8 string.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    #[inline]
    fn text_start(&self) -> usize {
        4 + 8 * self.len()
    }

    /// Index of `name`'s pair, or where it would go.
    #[inline]
    fn search(&self, name: &str) -> Result<usize, usize> {
        let text = self.text_start();
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match cmp_short(self.str_at(text, 2 * mid).as_bytes(), name.as_bytes()) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// The value of label `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.search(name).ok()?;
        Some(self.str_at(self.text_start(), 2 * i + 1))
    }

    /// Whether label `name` is present.
    #[inline]
    pub fn contains_key(&self, name: &str) -> bool {
        self.search(name).is_ok()
    }

    /// The pairs in name order.
    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            labels: self,
            text: self.text_start(),
            front: 0,
            back: self.len(),
        }
    }

    /// The names in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The values in name order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// Sets `name` to `value`, returning the previous value (as `BTreeMap::insert`,
    /// whose owned signature it keeps so `insert(k.into(), v.into())` call sites infer).
    /// **Rebuilds the set** (one allocation, O(size)): to build a set, collect its pairs
    /// and build once instead. [`Labels::set`] takes borrowed strings.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        self.set(&name, &value)
    }

    /// [`Labels::insert`] from borrowed strings. Rebuilds the set (O(size)).
    pub fn set(&mut self, name: &str, value: &str) -> Option<String> {
        let text = self.text_start();
        let (old, at) = match self.search(name) {
            Ok(i) => (Some(self.str_at(text, 2 * i + 1).to_owned()), i),
            Err(i) => (None, i),
        };
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(self.len() + 1);
        pairs.extend(self.iter().take(at));
        pairs.push((name, value));
        let skip = at + usize::from(old.is_some());
        pairs.extend(self.iter().skip(skip));
        *self = Self::write_sorted(&pairs);
        old
    }

    /// Removes `name`, returning its value. Rebuilds the set (O(size)) when present.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.search(name).ok()?;
        let old = self.str_at(self.text_start(), 2 * i + 1).to_owned();
        self.retain(|k, _| k != name);
        Some(old)
    }

    /// Keeps only the pairs `keep` accepts. Rebuilds the set (O(size)) unless all stay.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let kept: Vec<(&str, &str)> = self.iter().filter(|(k, v)| keep(k, v)).collect();
        if kept.len() != self.len() {
            *self = Self::write_sorted(&kept);
        }
    }

    /// Removes every label (frees the allocation).
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// The same pairs as a `BTreeMap` (allocates every string).
    pub fn to_btree_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// Gathers `(name, value)` pairs, borrowed where possible, and writes the [`Labels`]
/// set once ([`LabelsBuilder::build`]): how a provider builds a set from its parsed
/// body without a `String` per name and value or a rebuild per label.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> LabelsBuilder<'a> {
    /// An empty builder (no allocation until the first pair).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `n` pairs.
    pub fn with_capacity(n: usize) -> Self {
        LabelsBuilder {
            pairs: Vec::with_capacity(n),
        }
    }

    /// Adds a pair; a name added twice keeps the last value.
    pub fn push(&mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) {
        self.pairs.push((name.into(), value.into()));
    }

    /// Pairs added so far (duplicates counted).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no pair was added.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The set: sorted by name, last duplicate winning, one allocation.
    pub fn build(mut self) -> Labels {
        Labels::from_slice_mut(&mut self.pairs)
    }
}

/// Iterator over a [`Labels`] set's `(name, value)` pairs in name order.
#[derive(Clone)]
pub struct Iter<'a> {
    labels: &'a Labels,
    text: usize,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        let i = self.front;
        self.front += 1;
        let l = self.labels;
        Some((l.str_at(self.text, 2 * i), l.str_at(self.text, 2 * i + 1)))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        let (i, l) = (self.back, self.labels);
        Some((l.str_at(self.text, 2 * i), l.str_at(self.text, 2 * i + 1)))
    }
}

impl ExactSizeIterator for Iter<'_> {}
impl std::iter::FusedIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::from_pairs(iter)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for Labels {
    /// Sorts the array in place (no allocation for small `N`) and writes the set once.
    fn from(mut pairs: [(K, V); N]) -> Self {
        Self::from_slice_mut(&mut pairs)
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self::from(&map)
    }
}

impl From<&BTreeMap<String, String>> for Labels {
    fn from(map: &BTreeMap<String, String>) -> Self {
        let pairs: Vec<(&str, &str)> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Self::write_sorted(&pairs)
    }
}

impl From<&Labels> for BTreeMap<String, String> {
    fn from(l: &Labels) -> Self {
        l.to_btree_map()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for Labels {
    /// Adds the pairs (a name already present takes the new value), rebuilding once.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let new: Vec<(K, V)> = iter.into_iter().collect();
        if new.is_empty() {
            return;
        }
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(self.len() + new.len());
        pairs.extend(self.iter());
        pairs.extend(new.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        *self = Self::from_slice_mut(&mut pairs);
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Hash for Labels {
    /// As `BTreeMap<String, String>` hashes: the length, then each name and value.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for (k, v) in self {
            k.hash(state);
            v.hash(state);
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// Lexicographic over the sorted `(name, value)` pairs, as `BTreeMap`'s.
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl<Q: Borrow<str> + ?Sized> std::ops::Index<&Q> for Labels {
    type Output = str;

    /// # Panics
    /// If `name` is absent (as `BTreeMap`'s `Index`); use [`Labels::get`] on input.
    fn index(&self, name: &Q) -> &str {
        self.get(name.borrow()).expect("no such label")
    }
}

impl Serialize for Labels {
    /// A map in name order, exactly as `BTreeMap<String, String>` serializes.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Appends one deserialized string to a shared text buffer.
struct AppendStr<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for AppendStr<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for AppendStr<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<(), E> {
        match std::str::from_utf8(v) {
            Ok(s) => self.visit_str(s),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
        }
    }
}

struct LabelsVisitor;

impl<'de> Visitor<'de> for LabelsVisitor {
    type Value = Labels;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
        // All names and values go into one text buffer; spans index it.
        let mut text = String::new();
        let mut spans: Vec<(usize, usize, usize)> =
            Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        loop {
            let start = text.len();
            if map.next_key_seed(AppendStr(&mut text))?.is_none() {
                break;
            }
            let mid = text.len();
            map.next_value_seed(AppendStr(&mut text))?;
            spans.push((start, mid, text.len()));
        }
        let mut pairs: Vec<(&str, &str)> = spans
            .iter()
            .map(|&(a, b, c)| (&text[a..b], &text[b..c]))
            .collect();
        Ok(Labels::from_slice_mut(&mut pairs))
    }
}

impl<'de> Deserialize<'de> for Labels {
    /// From a map in any order; a repeated name keeps its last value.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(LabelsVisitor)
    }
}

/// Read access to a label set by name, whatever its representation ([`Labels`] or a
/// packed [`super::CompactAlert`]): what matchers, silences and routing need.
pub trait LabelView {
    /// The value of label `name`, if present.
    fn label(&self, name: &str) -> Option<&str>;
}

impl LabelView for Labels {
    #[inline]
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name)
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
        Self::of_label_pairs(labels.iter())
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

    /// The 16 lower-case hex digits of the fingerprint, most significant first
    /// (without the formatting machinery: records and keys write many of them).
    fn hex_digits(self) -> [u8; 16] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for (i, d) in out.iter_mut().enumerate() {
            *d = DIGITS[((self.0 >> (60 - 4 * i)) & 0xf) as usize];
        }
        out
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.hex_digits();
        // ASCII by construction, so the conversion cannot fail.
        f.pad(std::str::from_utf8(&digits).unwrap_or_default())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let digits = self.hex_digits();
        s.serialize_str(std::str::from_utf8(&digits).unwrap_or_default())
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

    type Model = BTreeMap<String, String>;

    fn model(pairs: &[(String, String)]) -> Model {
        pairs.iter().cloned().collect()
    }

    fn hash_of<T: Hash>(t: &T) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    fn assert_same(l: &Labels, m: &Model) {
        assert_eq!(l.len(), m.len());
        assert_eq!(l.is_empty(), m.is_empty());
        assert!(l.iter().eq(m.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        assert!(
            l.iter()
                .rev()
                .eq(m.iter().rev().map(|(k, v)| (k.as_str(), v.as_str())))
        );
        assert!(l.keys().eq(m.keys().map(String::as_str)));
        assert!(l.values().eq(m.values().map(String::as_str)));
        for (k, v) in m {
            assert_eq!(l.get(k), Some(v.as_str()));
            assert!(l.contains_key(k));
        }
        assert_eq!(format!("{l:?}"), format!("{m:?}"));
    }

    #[test]
    fn empty_set_holds_no_allocation() {
        let l = Labels::new();
        assert_eq!(l.heap_size(), 0);
        assert!(l.is_empty());
        assert_eq!(l.get(""), None);
        assert_eq!(serde_json::to_string(&l).unwrap(), "{}");
        assert_eq!(Labels::from_pairs(Vec::<(&str, &str)>::new()), l);
    }

    #[test]
    fn builds_sorted_with_last_duplicate_winning() {
        let l = Labels::from([("b", "1"), ("a", "x"), ("b", "2"), ("", "e"), ("a", "y")]);
        let pairs: Vec<_> = l.iter().collect();
        assert_eq!(pairs, [("", "e"), ("a", "y"), ("b", "2")]);
        assert_eq!(l.get("a"), Some("y"));
        assert_eq!(l.get("c"), None);
        // One allocation: header (count + 2 ends per pair) and the text.
        assert_eq!(l.heap_size(), 4 + 8 * 3 + "eayb2".len());
    }

    #[test]
    fn insert_remove_retain_extend() {
        let mut l = Labels::from([("b", "2")]);
        assert_eq!(l.insert("a".into(), "1".into()), None);
        assert_eq!(l.insert("b".into(), "3".into()), Some("2".into()));
        assert_eq!(l.set("c", "4"), None);
        assert_eq!(l.remove("b"), Some("3".into()));
        assert_eq!(l.remove("b"), None);
        l.extend([("d", "5"), ("a", "6")]);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            [("a", "6"), ("c", "4"), ("d", "5")]
        );
        l.retain(|k, _| k != "c");
        assert_eq!(l.keys().collect::<Vec<_>>(), ["a", "d"]);
        l.clear();
        assert!(l.is_empty());
    }

    #[test]
    fn builder_borrows_and_keeps_the_last_duplicate() {
        let owned = String::from("v2");
        let mut b = LabelsBuilder::new();
        b.push("b", "v1");
        b.push("a", owned.as_str());
        b.push("b", owned.clone());
        assert_eq!(b.len(), 3);
        assert_eq!(b.build(), Labels::from([("a", "v2"), ("b", "v2")]));
        assert!(LabelsBuilder::new().build().is_empty());
    }

    #[test]
    fn multibyte_and_empty_strings_round_trip() {
        let l = Labels::from([("é", ""), ("", "ü✓"), ("z", "\"q\"")]);
        let json = serde_json::to_string(&l).unwrap();
        let m: Model = serde_json::from_str(&json).unwrap();
        assert_same(&l, &m);
        assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), l);
    }

    #[test]
    fn deserialize_errors_match_btree_map() {
        for bad in [r#"{"a": 1}"#, r#"[]"#, r#"{"a": null}"#, r#"{"a": "b""#] {
            let want = serde_json::from_str::<Model>(bad).unwrap_err().to_string();
            let got = serde_json::from_str::<Labels>(bad).unwrap_err().to_string();
            assert_eq!(got, want, "{bad}");
        }
    }

    #[test]
    fn deserializes_from_a_json_value() {
        let v = serde_json::json!({"b": "2", "a": "1"});
        let l: Labels = serde_json::from_value(v).unwrap();
        assert_eq!(l, Labels::from([("a", "1"), ("b", "2")]));
    }

    fn pairs_strategy() -> impl proptest::strategy::Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("[a-dé]{0,3}", "[x-zü\"\\\\]{0,4}"), 0..8)
    }

    proptest::proptest! {
        /// The hex form is `{:016x}` of the value and parses back.
        #[test]
        fn fingerprint_hex_round_trips(v in proptest::num::u64::ANY) {
            let fp = Fingerprint(v);
            proptest::prop_assert_eq!(fp.to_string(), format!("{v:016x}"));
            proptest::prop_assert_eq!(serde_json::to_string(&fp).unwrap(), format!("\"{v:016x}\""));
            proptest::prop_assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        }
    }

    proptest::proptest! {
        /// The inline comparisons agree with the standard ones on both sides of `SHORT`.
        #[test]
        fn short_comparisons_agree_with_std(a in "[ab]{0,30}", b in "[ab]{0,30}") {
            proptest::prop_assert_eq!(cmp_short(a.as_bytes(), b.as_bytes()), a.cmp(&b));
            proptest::prop_assert_eq!(eq_short(a.as_bytes(), b.as_bytes()), a == b);
            proptest::prop_assert!(eq_short(a.as_bytes(), a.as_bytes()));
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_btree_map(pairs in pairs_strategy(), probe in "[a-dé]{0,3}") {
            let m = model(&pairs);
            let l: Labels = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_same(&l, &m);
            proptest::prop_assert_eq!(l.get(&probe), m.get(&probe).map(String::as_str));
            proptest::prop_assert_eq!(Labels::from(&m), l.clone());
            proptest::prop_assert_eq!(l.to_btree_map(), m.clone());
            // Order independence.
            let mut rev = pairs.clone();
            rev.reverse();
            let mut dedup_rev = Vec::new();
            for (k, _) in &rev {
                if !dedup_rev.iter().any(|(k2, _): &(String, String)| k2 == k) {
                    dedup_rev.push((k.clone(), m[k].clone()));
                }
            }
            proptest::prop_assert_eq!(Labels::from_pairs(dedup_rev), l.clone());
            // Serde: the same JSON as the map, and back.
            let json = serde_json::to_string(&l).unwrap();
            proptest::prop_assert_eq!(&json, &serde_json::to_string(&m).unwrap());
            proptest::prop_assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), l.clone());
            // Deserialize from the pairs in their original order, duplicates included.
            let mut obj = String::from("{");
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    obj.push(',');
                }
                obj.push_str(&serde_json::to_string(k).unwrap());
                obj.push(':');
                obj.push_str(&serde_json::to_string(v).unwrap());
            }
            obj.push('}');
            proptest::prop_assert_eq!(serde_json::from_str::<Labels>(&obj).unwrap(), l.clone());
            proptest::prop_assert_eq!(serde_json::from_str::<Model>(&obj).unwrap(), m.clone());
            proptest::prop_assert_eq!(Fingerprint::of_labels(&l), Fingerprint::of_label_pairs(m.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        }

        #[test]
        fn eq_ord_hash_agree_with_btree_map(a in pairs_strategy(), b in pairs_strategy()) {
            let (ma, mb) = (model(&a), model(&b));
            let (la, lb) = (Labels::from(&ma), Labels::from(&mb));
            proptest::prop_assert_eq!(la == lb, ma == mb);
            proptest::prop_assert_eq!(la.cmp(&lb), ma.cmp(&mb));
            proptest::prop_assert_eq!(la.partial_cmp(&lb), ma.partial_cmp(&mb));
            proptest::prop_assert_eq!(hash_of(&la), hash_of(&ma));
            proptest::prop_assert_eq!(hash_of(&lb), hash_of(&mb));
        }

        #[test]
        fn edits_agree_with_btree_map(
            start in pairs_strategy(),
            ops in proptest::collection::vec((0u8..4, "[a-dé]{0,3}", "[x-z]{0,3}"), 0..12),
        ) {
            let mut m = model(&start);
            let mut l = Labels::from(&m);
            for (op, k, v) in ops {
                match op {
                    0 => proptest::prop_assert_eq!(l.insert(k.clone(), v.clone()), m.insert(k, v)),
                    1 => proptest::prop_assert_eq!(l.remove(&k), m.remove(&k)),
                    2 => {
                        l.extend([(k.as_str(), v.as_str())]);
                        m.extend([(k, v)]);
                    }
                    _ => {
                        l.retain(|name, _| name != k);
                        m.retain(|name, _| *name != k);
                    }
                }
                assert_same(&l, &m);
            }
        }
    }

    #[test]
    fn hex_round_trip() {
        let f = Fingerprint(0x00ab_cdef_0123_4567);
        assert_eq!(f.to_string(), "00abcdef01234567");
        assert_eq!(Fingerprint::parse(&f.to_string()), Some(f));
        assert_eq!(Fingerprint::parse("xyz"), None);
    }
}
