//! [`RawPayload`]: a provider's payload kept as the JSON text it arrived as, for audit.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A provider payload kept verbatim as JSON text, for audit (`raw` of events).
///
/// Contract:
/// * It holds one valid JSON value as text, exactly as captured: for a slice of a
///   request body, the bytes as received (insignificant whitespace included).
///   [`RawPayload::get`] returns that text.
/// * It serializes as the JSON it holds (not as a string), so an event's JSON form is
///   the same as if the payload were a `serde_json::Value`, and compactly: whitespace
///   outside strings is left out as it is written ([`RawPayload::compact_json`]), so
///   serialized events stay one line (JSON Lines, logs) whether or not the sender
///   pretty-printed its body. An empty payload is JSON `null` ([`RawPayload::is_null`],
///   also the `Default`).
/// * Cloning is cheap (shared, immutable text). The payloads captured from one request
///   can share one copy of its text ([`RawPayload::from_span_unchecked`]); that copy is
///   freed with the last payload that uses it.
/// * Equality is JSON equality: texts that differ only in whitespace, key order or
///   number spelling compare equal (the slow path parses both; only taken when the
///   texts differ).
/// * Payloads of 2 GiB or more (or slices ending past 2 GiB of a shared text that
///   are themselves that large) are not kept: they give the empty payload.
#[derive(Clone, Default)]
pub struct RawPayload(Option<Held>);

/// The text of a non-empty payload: `text[start..end]`, shared.
#[derive(Clone)]
struct Held {
    text: Arc<str>,
    start: u32,
    /// The end offset; its top bit ([`KNOWN_COMPACT`]) is set when the slice is known
    /// to hold no whitespace outside strings.
    end: u32,
}

/// Flag bit of [`Held::end`].
const KNOWN_COMPACT: u32 = 1 << 31;
/// The largest offset [`Held`] can record.
const MAX_OFFSET: usize = (KNOWN_COMPACT - 1) as usize;

impl Held {
    /// `text[span]`, when `span` is a non-empty range of char boundaries of `text`
    /// (re-homed into its own copy when it ends past [`MAX_OFFSET`]).
    fn new(text: &Arc<str>, span: Range<usize>, compact: bool) -> Option<Self> {
        let slice = text.get(span.clone()).filter(|s| !s.is_empty())?;
        let (text, span) = if span.end <= MAX_OFFSET {
            (Arc::clone(text), span)
        } else if slice.len() <= MAX_OFFSET {
            (Arc::from(slice), 0..slice.len())
        } else {
            return None;
        };
        let flag = if compact || !has_ascii_whitespace(slice) {
            KNOWN_COMPACT
        } else {
            0
        };
        Some(Held {
            text,
            start: span.start as u32,
            end: span.end as u32 | flag,
        })
    }

    /// The payload's own copy of `text`.
    fn copy_of(text: &str, compact: bool) -> Option<Self> {
        let text: Arc<str> = Arc::from(text);
        Held::new(&text, 0..text.len(), compact)
    }

    fn get(&self) -> &str {
        // `Held::new` checked the range; never "null" in practice.
        self.text
            .get(self.start as usize..(self.end & !KNOWN_COMPACT) as usize)
            .unwrap_or("null")
    }

    fn known_compact(&self) -> bool {
        self.end & KNOWN_COMPACT != 0
    }
}

impl RawPayload {
    /// The empty payload (serializes as `null`).
    pub const fn null() -> Self {
        RawPayload(None)
    }

    /// Copies a JSON value's text (typically borrowed from a body while decoding).
    /// JSON `null` gives the empty payload.
    pub fn from_raw(raw: &RawValue) -> Self {
        let text = raw.get();
        if text == "null" {
            return RawPayload(None);
        }
        RawPayload(Held::copy_of(text, false))
    }

    /// The JSON value `text[span]` of a shared request text, without copying it and
    /// without checking it: for a decoder that has already validated the whole text.
    /// Several payloads (the alerts of one request) can share `text`. Pass
    /// `known_compact = true` when the decoder saw no whitespace outside strings in the
    /// slice (saves a check); `false` means "unknown". JSON `null`, and a span that is
    /// out of range or not on char boundaries, give the empty payload.
    ///
    /// # Safety
    ///
    /// `text[span]` must be exactly one well-formed JSON value with no leading or
    /// trailing whitespace: it is written into JSON output verbatim (minus whitespace
    /// outside strings), with `serde_json::value::RawValue::from_string_unchecked`,
    /// whose contract other code may rely on.
    pub unsafe fn from_span_unchecked(
        text: &Arc<str>,
        span: Range<usize>,
        known_compact: bool,
    ) -> Self {
        if text.get(span.clone()) == Some("null") {
            return RawPayload(None);
        }
        RawPayload(Held::new(text, span, known_compact))
    }

    /// Captures a parsed value (serialized compactly).
    pub fn from_value(v: &serde_json::Value) -> Self {
        if v.is_null() {
            return RawPayload(None);
        }
        match serde_json::to_string(v) {
            Ok(text) => RawPayload(Held::copy_of(&text, true)),
            Err(_) => RawPayload(None),
        }
    }

    /// Parses JSON text into a payload; errors when `json` is not valid JSON.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(json)?;
        Ok(Self::from_raw(raw))
    }

    /// True for the empty payload.
    pub fn is_null(&self) -> bool {
        self.0.is_none()
    }

    /// The JSON text as captured (`null` for the empty payload).
    pub fn get(&self) -> &str {
        self.0.as_ref().map_or("null", Held::get)
    }

    /// The JSON text without whitespace outside strings: the form it serializes as.
    /// Borrowed when there is nothing to leave out.
    pub fn compact_json(&self) -> Cow<'_, str> {
        match &self.0 {
            None => Cow::Borrowed("null"),
            Some(h) if h.known_compact() => Cow::Borrowed(h.get()),
            Some(h) => compact(h.get()),
        }
    }

    /// The payload as a parsed value (`Value::Null` for the empty payload).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// True when `text` holds a JSON whitespace byte anywhere (strings included). Checks
/// whole 32-byte blocks without branching inside, which compilers vectorize.
fn has_ascii_whitespace(text: &str) -> bool {
    text.as_bytes().chunks(32).any(|block| {
        block.iter().fold(false, |any, &b| {
            any | matches!(b, b' ' | b'\n' | b'\t' | b'\r')
        })
    })
}

/// `text` (valid JSON) without whitespace outside strings; borrowed when it has none.
fn compact(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let is_ws = |c: u8| matches!(c, b' ' | b'\n' | b'\t' | b'\r');
    let mut out: Option<String> = None;
    // `text[seg..i]` is the run being kept; every cut is at an ASCII whitespace byte,
    // so every slice below is on char boundaries.
    let (mut seg, mut i) = (0, 0);
    while let Some(&c) = b.get(i) {
        if c == b'"' {
            i = string_end(b, i + 1);
        } else if is_ws(c) {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(text.get(seg..i).unwrap_or(""));
            i += 1;
            while b.get(i).is_some_and(|&c| is_ws(c)) {
                i += 1;
            }
            seg = i;
        } else {
            i += 1;
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(text.get(seg..).unwrap_or(""));
            Cow::Owned(o)
        }
    }
}

/// The offset just past the closing quote of the string whose content starts at `i`
/// (`b.len()` when there is none). Eight bytes at a time: strings are most of a
/// payload's bytes (URLs, messages).
fn string_end(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    // Marks the bytes of `w` equal to `byte` (exact for the lowest marked byte).
    let eq = |w: u64, byte: u8| {
        let x = w ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    loop {
        while let Some(chunk) = b.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
            let w = u64::from_le_bytes(chunk);
            let hits = eq(w, b'"') | eq(w, b'\\');
            if hits != 0 {
                i += (hits.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match b.get(i) {
            Some(b'"') => return i + 1,
            Some(b'\\') => i += 2,
            Some(_) => i += 1,
            None => return b.len(),
        }
    }
}

impl fmt::Debug for RawPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl PartialEq for RawPayload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.to_value() == other.to_value()
    }
}

impl PartialEq<serde_json::Value> for RawPayload {
    fn eq(&self, other: &serde_json::Value) -> bool {
        self.to_value() == *other
    }
}

impl From<serde_json::Value> for RawPayload {
    fn from(v: serde_json::Value) -> Self {
        Self::from_value(&v)
    }
}

impl Serialize for RawPayload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_none() {
            return s.serialize_unit();
        }
        let json = self.compact_json().into_owned();
        // SAFETY: every constructor holds one well-formed JSON value without
        // surrounding whitespace (`from_raw`/`from_json`/`from_value`/`Deserialize`
        // take serde_json's own text; `from_span_unchecked` requires it of its
        // caller), and leaving out whitespace outside strings keeps it so.
        let raw = unsafe { RawValue::from_string_unchecked(json) };
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Works with serde_json's deserializers (text and `Value`).
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Self::from_raw(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Alert, Labels, Source};
    use proptest::prelude::*;

    fn alert() -> Alert {
        Alert::firing(
            Source {
                provider: "p".into(),
                integration: "i".into(),
            },
            "s",
            Labels::new(),
        )
    }

    #[test]
    fn keeps_text_as_received_and_serializes_it_compactly() {
        let body = "{\n  \"a\": [1, 2],\t\"s\": \"x y\\\" z\"\n}";
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let p = RawPayload::from_json(body).unwrap();
        assert_eq!(p.get(), body);
        assert_eq!(p.compact_json(), r#"{"a":[1,2],"s":"x y\" z"}"#);
        assert_eq!(p, v);
        let mut a = alert();
        assert!(!serde_json::to_string(&a).unwrap().contains("raw"));
        a.raw = p.clone();
        let text = serde_json::to_string(&a).unwrap();
        assert!(
            text.contains(r#""raw":{"a":[1,2],"s":"x y\" z"}"#),
            "{text}"
        );
        let back: Alert = serde_json::from_str(&text).unwrap();
        assert_eq!(back.raw, p);
        assert_eq!(back.raw.get(), r#"{"a":[1,2],"s":"x y\" z"}"#);
        // Through a Value (key order differs): still equal as JSON.
        assert_eq!(serde_json::to_value(&a).unwrap()["raw"], v);
        let back: Alert = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        assert!(RawPayload::from_json("null").unwrap().is_null());
        assert!(RawPayload::from_json("{").is_err());
        assert_eq!(serde_json::to_string(&RawPayload::null()).unwrap(), "null");
    }

    #[test]
    fn stays_small_inside_an_alert() {
        // A shared text (fat pointer) and two 32-bit offsets; `None` in the pointer's niche.
        assert_eq!(std::mem::size_of::<RawPayload>(), 24);
    }

    #[test]
    fn spans_share_one_text() {
        let text: Arc<str> = Arc::from(r#"{"alerts":[{"a":1}, {"b":"x y"},null]}"#);
        let at = |needle: &str| {
            let i = text.find(needle).unwrap();
            i..i + needle.len()
        };
        // SAFETY: each span below is one JSON value of `text`, without whitespace.
        let (first, second, null) = unsafe {
            (
                RawPayload::from_span_unchecked(&text, at(r#"{"a":1}"#), true),
                RawPayload::from_span_unchecked(&text, at(r#"{"b":"x y"}"#), false),
                RawPayload::from_span_unchecked(&text, at("null"), false),
            )
        };
        assert_eq!(first.get(), r#"{"a":1}"#);
        assert_eq!(second, serde_json::json!({"b": "x y"}));
        assert!(null.is_null());
        assert_eq!(Arc::strong_count(&text), 3);
        let wire = serde_json::to_string(&[&first, &second]).unwrap();
        assert_eq!(wire, r#"[{"a":1},{"b":"x y"}]"#);
        drop((first, second));
        assert_eq!(Arc::strong_count(&text), 1);
        // Out of range or off char boundaries: empty, never a panic.
        let text: Arc<str> = Arc::from("\"é\"");
        // SAFETY: the only span that is in range is the whole value.
        unsafe {
            assert!(RawPayload::from_span_unchecked(&text, 0..9, true).is_null());
            assert!(RawPayload::from_span_unchecked(&text, 0..2, true).is_null());
            assert!(RawPayload::from_span_unchecked(&text, 1..1, true).is_null());
            assert_eq!(
                RawPayload::from_span_unchecked(&text, 0..text.len(), false).get(),
                "\"é\""
            );
        }
    }

    #[test]
    fn whitespace_inside_strings_is_kept() {
        for (text, want) in [
            (r#"{"k":"a b\tc"}"#, r#"{"k":"a b\tc"}"#),
            (r#"["\\", " ", "\" "]"#, r#"["\\"," ","\" "]"#),
            ("[ \"a\\\\\" , \"\\\" \\\\ \" ]", r#"["a\\","\" \\ "]"#),
            ("{ \"\\u0020 x\" : 1 }", r#"{"\u0020 x":1}"#),
            ("  7 ", "7"),
        ] {
            let p = RawPayload::from_json(text).unwrap();
            let wire = serde_json::to_string(&p).unwrap();
            assert_eq!(wire, want, "{text}");
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&wire).unwrap(),
                serde_json::from_str::<serde_json::Value>(text).unwrap()
            );
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[ a-z\\\\\"\t\n/é]{0,24}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[ a-z\"\\\\]{0,5}", inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the layout of the text, the serialized payload is what serde_json
        /// writes for the same value (compact), and parses back to that value.
        #[test]
        fn serializes_like_serde_json(v in json_value(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                serde_json::to_string(&v).unwrap()
            };
            let p = RawPayload::from_json(&text).unwrap();
            let want = serde_json::to_string(&v).unwrap();
            if v.is_null() {
                prop_assert!(p.is_null());
            } else {
                prop_assert_eq!(p.get(), text.as_str());
                prop_assert_eq!(serde_json::to_string(&p).unwrap(), want.clone());
                prop_assert_eq!(p.compact_json(), want.as_str());
                prop_assert_eq!(p.to_value(), v);
            }
        }
    }
}
