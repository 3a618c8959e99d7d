//! Shared decoding helpers: the size limit, typed JSON decoding with the path of the
//! offending field, timestamps in the spellings vendors use, and label helpers.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use signalcraft_core::model::{Labels, LabelsBuilder, RawPayload, Severity, Source};
use signalcraft_core::provider::ProviderError;

use super::integration::Integration;

/// What every source needs from its integration's envelope.
#[derive(Debug, Clone)]
pub struct Common {
    /// Provider type (for error messages).
    pub provider: &'static str,
    /// Stamped on every event.
    pub source: Source,
    /// Body size limit in bytes.
    pub max_body_bytes: usize,
    /// Keep raw payloads in events.
    pub keep_raw: bool,
}

impl Common {
    /// The envelope of `integration`, for a source of type `provider`.
    pub fn new(provider: &'static str, integration: &Integration) -> Self {
        Common {
            provider,
            source: Source {
                provider: provider.into(),
                integration: integration.key.as_str().into(),
            },
            max_body_bytes: integration.max_body_bytes,
            keep_raw: integration.keep_raw,
        }
    }

    /// `ProviderError::Malformed` at `field`.
    pub fn malformed(&self, field: impl Into<String>, message: impl Into<String>) -> ProviderError {
        ProviderError::Malformed {
            provider: self.provider.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Refuses bodies over the limit.
    pub fn check_size(&self, body: &[u8]) -> Result<(), ProviderError> {
        if body.len() > self.max_body_bytes {
            return Err(ProviderError::TooLarge {
                provider: self.provider.to_string(),
                size: body.len(),
                limit: self.max_body_bytes,
            });
        }
        Ok(())
    }

    /// Checks the size, then decodes `body` into `T` in one pass; `T` may borrow
    /// from `body` (`&str`, `Cow<str>`, `&RawValue` fields). Errors name the JSON path
    /// at fault (see [`Common::error_of`]).
    pub fn decode<'de, T: Deserialize<'de>>(&self, body: &'de [u8]) -> Result<T, ProviderError> {
        self.check_size(body)?;
        // One UTF-8 check of the whole body (fast on ASCII) instead of one per string.
        let parsed = match std::str::from_utf8(body) {
            Ok(text) => serde_json::from_str::<T>(text),
            Err(_) => serde_json::from_slice::<T>(body),
        };
        match parsed {
            Ok(t) => Ok(t),
            // Slow path only on error: re-run with path tracking for the message.
            Err(_) => Err(self.error_of::<T>(body)),
        }
    }

    /// Like [`Common::decode`], plus the whole body as the raw payload when raw
    /// payloads are kept (else the empty payload).
    pub fn decode_with_raw<'de, T: Deserialize<'de>>(
        &self,
        body: &'de [u8],
    ) -> Result<(T, RawPayload), ProviderError> {
        if !self.keep_raw {
            return Ok((self.decode(body)?, RawPayload::null()));
        }
        self.check_size(body)?;
        // As `decode`, sharing its UTF-8 check with the raw payload.
        let Ok(text) = std::str::from_utf8(body) else {
            // Not UTF-8: no raw payload (no valid JSON body gets here).
            return Ok((self.decode(body)?, RawPayload::null()));
        };
        match serde_json::from_str::<T>(text) {
            // SAFETY: serde_json accepted `text` as a whole, and it only accepts one
            // valid JSON value (ignored fields are checked too, trailing text refused).
            Ok(t) => Ok((t, unsafe { self.raw_text(text) })),
            Err(_) => Err(self.error_of::<T>(body)),
        }
    }

    /// The whole body as a raw payload when raw payloads are kept (else empty): one
    /// copy of its text, without leading and trailing whitespace, not checked again.
    ///
    /// # Safety
    ///
    /// `body` must be one valid JSON value (up to surrounding whitespace): call it
    /// only after a decoder accepted the whole body (see
    /// [`RawPayload::from_span_unchecked`]).
    pub unsafe fn raw_body(&self, body: &[u8]) -> RawPayload {
        match std::str::from_utf8(body) {
            // SAFETY: the caller's promise.
            Ok(text) => unsafe { self.raw_text(text) },
            Err(_) => RawPayload::null(),
        }
    }

    /// [`Common::raw_body`] of a body already known to be UTF-8.
    ///
    /// # Safety
    ///
    /// As for [`Common::raw_body`].
    pub unsafe fn raw_text(&self, text: &str) -> RawPayload {
        let Some(text) = self.share(text) else {
            return RawPayload::null();
        };
        const WS: [char; 4] = [' ', '\n', '\t', '\r'];
        let start = text.len() - text.trim_start_matches(WS).len();
        let end = text.trim_end_matches(WS).len().max(start);
        // SAFETY: the caller's promise, less the surrounding whitespace.
        unsafe { self.raw_span(Some(&text), start..end, false) }
    }

    /// One copy of a request's text for the raw payloads of its events to share, when
    /// raw payloads are kept (else `None`). Offsets into `text` are offsets into the
    /// copy.
    pub fn share(&self, text: &str) -> Option<Arc<str>> {
        self.keep_raw.then(|| Arc::from(text))
    }

    /// The JSON value `text[span]` of a shared request text (from [`Common::share`]) as
    /// a raw payload, without copying or checking it; empty when `text` is `None`.
    /// `compact`: the reader saw no whitespace inside the span.
    ///
    /// # Safety
    ///
    /// `text[span]` must be exactly one valid JSON value without surrounding
    /// whitespace, e.g. the span of a value a one-pass reader read in full, from a text
    /// it read to the end (see [`RawPayload::from_span_unchecked`]).
    pub unsafe fn raw_span(
        &self,
        text: Option<&Arc<str>>,
        span: std::ops::Range<usize>,
        compact: bool,
    ) -> RawPayload {
        let Some(text) = text else {
            return RawPayload::null();
        };
        debug_assert!(
            text.get(span.clone())
                .is_some_and(|s| serde_json::from_str::<&RawValue>(s)
                    .is_ok_and(|r| r.get().len() == s.len())),
            "raw_span: {span:?} is not one JSON value of the text"
        );
        // SAFETY: the caller's promise.
        unsafe { RawPayload::from_span_unchecked(text, span, compact) }
    }

    /// `raw` as a raw payload when raw payloads are kept.
    pub fn raw(&self, raw: &RawValue) -> RawPayload {
        if self.keep_raw {
            RawPayload::from_raw(raw)
        } else {
            RawPayload::null()
        }
    }

    /// Decodes every raw element slice of a body as `A`, keeping each beside its
    /// slice (the slice becomes the element's raw payload). An element that does not
    /// decode fails the whole body with the error a full decode as `M` reports.
    pub fn decode_each<'de, A: Deserialize<'de>, M: Deserialize<'de>>(
        &self,
        body: &'de [u8],
        raws: &[&'de RawValue],
    ) -> Result<Vec<(A, &'de RawValue)>, ProviderError> {
        raws.iter()
            .map(|raw| {
                serde_json::from_str::<A>(raw.get())
                    .map(|a| (a, *raw))
                    .map_err(|_| self.error_of::<M>(body))
            })
            .collect()
    }

    /// The error for a `body` that does not decode as `T`, naming the JSON path at
    /// fault. Syntax errors are reported at `$` when raw payloads are kept (the body
    /// is checked as a whole first), else where they occur; type errors carry the
    /// line and column only when raw payloads are off. (These are the messages the
    /// golden fixtures pin.)
    pub fn error_of<'de, T: Deserialize<'de>>(&self, body: &'de [u8]) -> ProviderError {
        if self.keep_raw
            && let Err(e) = serde_json::from_slice::<Value>(body)
        {
            return self.malformed("$", json_message(&e));
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) => {
                let path = e.path().to_string();
                let message = if self.keep_raw {
                    without_position(&e.into_inner())
                } else {
                    json_message(e.inner())
                };
                self.malformed(jsonpath(&path), message)
            }
            Ok(_) => match de.end() {
                Err(e) => self.malformed("$", json_message(&e)),
                Ok(()) => self.malformed("$", "payload does not match the expected shape"),
            },
        }
    }

    /// Decodes a typed view of an already parsed value.
    pub fn from_value<'v, T: Deserialize<'v>>(&self, v: &'v Value) -> Result<T, ProviderError> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            self.malformed(jsonpath(&path), e.into_inner().to_string())
        })
    }
}

/// For `Option<Cow<str>>` fields: `#[serde(default, borrow, deserialize_with =
/// "super::decode::opt_str")]`. serde's own `Option<Cow<str>>` copies the text into a
/// `String` even under `#[serde(borrow)]` (only a bare `Cow<str>` field borrows); this
/// borrows it from the input whenever it has no escapes. `null` is `None`; anything
/// else fails with serde's own message (`… expected a string`).
pub fn opt_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("option")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(Text).map(Some)
        }
    }
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_string()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
    d.deserialize_option(Opt)
}

/// A serde_json error's message without the ` at line L column C` suffix.
fn without_position(e: &serde_json::Error) -> String {
    let m = e.to_string();
    cut_message(match m.rfind(" at line ") {
        Some(i) if e.line() > 0 => m[..i].to_string(),
        _ => m,
    })
}

/// Formats a serde_json error without leaking large payload fragments.
fn json_message(e: &serde_json::Error) -> String {
    cut_message(e.to_string())
}

/// Cuts a message to about 200 bytes (on a character boundary).
fn cut_message(mut m: String) -> String {
    if m.len() > 200 {
        let mut end = 200;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
        m.push('…');
    }
    m
}

fn jsonpath(serde_path: &str) -> String {
    if serde_path == "." || serde_path.is_empty() {
        "$".into()
    } else {
        format!("$.{serde_path}")
    }
}

/// Parses the timestamp spellings vendors use: RFC 3339 (`2024-05-01T10:00:00Z`,
/// `…+02:00`), ISO 8601 with a basic offset (`2024-05-01T10:00:00.000+0000`, CloudWatch),
/// GitLab's `2021-04-28 21:50:00 +0200` and `2016-08-12 15:23:28 UTC`, and Unix epoch
/// seconds or milliseconds given as digits. Returns `None` for anything else and for the
/// Go zero time `0001-01-01T00:00:00Z` that Alertmanager uses for "unset".
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if s.is_empty() || s.starts_with("0001-01-01") {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        return epoch_auto(n);
    }
    if let Some(t) = iso8601_fast(s) {
        return Some(t);
    }
    parse_timestamp_general(s)
}

/// The spellings [`iso8601_fast`] declines, through jiff's parsers.
fn parse_timestamp_general(s: &str) -> Option<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S %z",
        "%Y-%m-%d %H:%M:%S%.f %z",
    ] {
        if let Ok(t) = jiff::fmt::strtime::parse(fmt, s).and_then(|t| t.to_timestamp()) {
            return Some(t);
        }
    }
    if let Some(naive) = s.strip_suffix(" UTC") {
        let dt: jiff::civil::DateTime = naive.replace(' ', "T").parse().ok()?;
        return jiff::tz::TimeZone::UTC.to_timestamp(dt).ok();
    }
    None
}

/// The common machine spellings `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM|±HHMM)` and
/// GitLab's `YYYY-MM-DD HH:MM:SS[.f] (±HHMM|UTC)` without
/// jiff's general parsers (which, for the `+0000` form CloudWatch sends, first build and
/// drop an error). `None` for anything else, including out-of-range fields and leap
/// seconds: the caller then tries the general parsers, so this only ever answers where
/// they would give the same instant.
fn iso8601_fast(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    // `T`, or GitLab's space with ` +HHMM` / ` UTC` after the time.
    let spaced = match b.get(10) {
        Some(b'T') => false,
        Some(b' ') => true,
        _ => return None,
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(start..i)? * 10i64.pow((9 - digits) as u32);
    }
    let offset_secs = match &b[i..] {
        [b'Z'] if !spaced => 0,
        [b' ', b'U', b'T', b'C'] if spaced => 0,
        [b' ', sign @ (b'+' | b'-'), _, _, _, _] if spaced => {
            let (oh, om) = (num(i + 2..i + 4)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ if spaced => return None,
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, rest @ ..] => {
            let minutes_at = match rest {
                [b':', _, _] => i + 4,
                [_, _] => i + 3,
                _ => return None,
            };
            let _ = (h1, h2);
            let (oh, om) = (num(i + 1..i + 3)?, num(minutes_at..minutes_at + 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Timestamp::new(secs, nanos as i32).ok()
}

/// Days in `month` (1–12) of the proleptic Gregorian `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch seconds, or milliseconds when the number is too large to be seconds.
pub fn epoch_auto(n: i64) -> Option<Timestamp> {
    if n.abs() >= 100_000_000_000 {
        Timestamp::from_millisecond(n).ok()
    } else {
        Timestamp::from_second(n).ok()
    }
}

/// [`Severity::parse_lenient`] without its allocation for the four canonical
/// lowercase spellings (the common case); other spellings go to `parse_lenient`.
pub fn severity_of(s: &str) -> Option<Severity> {
    match s {
        "critical" => Some(Severity::Critical),
        "error" => Some(Severity::Error),
        "warning" => Some(Severity::Warning),
        "info" => Some(Severity::Info),
        "P1" | "p1" => Some(Severity::Critical),
        "P2" | "p2" => Some(Severity::Error),
        "P3" | "p3" => Some(Severity::Warning),
        "P4" | "p4" | "P5" | "p5" => Some(Severity::Info),
        other => Severity::parse_lenient(other),
    }
}

/// True when `haystack` contains `needle` (ASCII lowercase) ignoring ASCII case.
pub fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Inserts `name=value` unless the value is empty (rebuilds the set: for the few labels
/// of change events; alert providers gather theirs with [`push_label`]).
pub fn put_label(labels: &mut Labels, name: &str, value: &str) {
    if !value.is_empty() {
        labels.set(name, value);
    }
}

/// Adds `name=value` to a builder unless the value is empty (borrowed: the set is
/// written once, at [`LabelsBuilder::build`]).
pub fn push_label<'a>(labels: &mut LabelsBuilder<'a>, name: &'a str, value: &'a str) {
    if !value.is_empty() {
        labels.push(name, value);
    }
}

/// The first line of `s`, trimmed, cut to at most `max` characters.
pub fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// [`first_line`] of text that may already be owned: reused as it is when it is
/// already its own first line (one line, trimmed, at most `max` bytes), else cut.
pub fn first_line_of(s: Cow<'_, str>, max: usize) -> String {
    if s.len() <= max && !s.contains('\n') && s.trim().len() == s.len() {
        s.into_owned()
    } else {
        first_line(&s, max)
    }
}

/// A JSON scalar as text (`"a"` → `a`, `3` → `3`, `true` → `true`); `None` for
/// null, arrays and objects.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_timestamp_spellings() {
        let want: Timestamp = "2021-04-28T19:50:00Z".parse().unwrap();
        assert_eq!(parse_timestamp("2021-04-28T19:50:00Z"), Some(want));
        assert_eq!(parse_timestamp("2021-04-28 21:50:00 +0200"), Some(want));
        assert_eq!(parse_timestamp("2021-04-28T21:50:00.000+0200"), Some(want));
        assert_eq!(parse_timestamp("2021-04-28 19:50:00 UTC"), Some(want));
        assert_eq!(parse_timestamp("1619639400"), Some(want));
        assert_eq!(parse_timestamp("1619639400000"), Some(want));
        assert_eq!(parse_timestamp("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn opt_str_borrows_and_fails_like_serde() {
        #[derive(Debug, Deserialize)]
        struct Ours<'a> {
            #[serde(default, borrow, deserialize_with = "opt_str")]
            a: Option<Cow<'a, str>>,
        }
        #[derive(Debug, Deserialize)]
        struct Serdes<'a> {
            #[serde(default, borrow)]
            a: Option<Cow<'a, str>>,
        }
        for text in [
            r#"{"a": "plain"}"#,
            r#"{"a": "esc\"aped"}"#,
            r#"{"a": null}"#,
            r#"{}"#,
            r#"{"a": 5}"#,
            r#"{"a": -1.5}"#,
            r#"{"a": true}"#,
            r#"{"a": [1]}"#,
            r#"{"a": {"b": 1}}"#,
            r#"{"a": "unterminated}"#,
        ] {
            let ours = serde_json::from_str::<Ours>(text).map(|o| o.a);
            let theirs = serde_json::from_str::<Serdes>(text).map(|o| o.a);
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{text}");
        }
        let o: Ours = serde_json::from_str(r#"{"a": "plain"}"#).unwrap();
        assert!(matches!(o.a, Some(Cow::Borrowed("plain"))));
    }

    #[test]
    fn iso8601_fast_path_agrees_with_jiff() {
        let cases = [
            "2024-05-01T10:03:12.146+0000",
            "2024-05-01T10:03:12.146+02:00",
            "2024-05-01T10:03:12-0530",
            "2024-05-01T10:03:12Z",
            "2024-02-29T23:59:59.999999999Z",
            "2023-02-29T00:00:00Z",
            "2000-12-31T00:00:00.5Z",
            "1969-07-20T20:17:40Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2024-05-01T10:03:60Z",
            "2024-05-01T24:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T10:03:12.Z",
            "2024-05-01T10:03:12.1234567890Z",
            "2024-05-01T10:03:12+2400",
            "2024-05-01T10:03:12+0",
            "2024-05-01t10:03:12z",
            "2024-05-01 10:03:12Z",
            "2021-04-28 21:50:00 +0200",
            "2021-04-28 21:50:00.25 -0200",
            "2016-08-12 15:23:28 UTC",
            "2016-08-12T15:23:28 UTC",
            "2016-08-12T15:23:28 +0200",
        ];
        for s in cases {
            if let Some(fast) = iso8601_fast(s) {
                assert_eq!(Some(fast), parse_timestamp_general(s), "{s}");
            }
        }
        assert!(iso8601_fast("2024-05-01T10:03:12.146+0000").is_some());
        assert!(iso8601_fast("2024-05-01T10:03:12Z").is_some());
        assert!(iso8601_fast("2024-05-01T10:03:60Z").is_none());
        assert!(iso8601_fast("2021-04-28 21:50:00 +0200").is_some());
        assert!(iso8601_fast("2016-08-12 15:23:28 UTC").is_some());
    }

    proptest::proptest! {
        #[test]
        fn iso8601_fast_path_agrees_with_jiff_everywhere(
            y in 0i64..10000, mo in 0i64..14, d in 0i64..33, h in 0i64..26, mi in 0i64..61,
            s in 0i64..61, frac in proptest::option::of("[0-9]{0,10}"),
            off in proptest::sample::select(vec![
                "Z", "+00:00", "+0000", "-0800", "+05:30", "+2359", "-23:59", "+24:00", "+0060",
                "z", "", " +0200", " -0530", " +02:00", " UTC", " Z", " +2400", " utc",
            ]),
            sep in proptest::sample::select(vec!["T", " ", "t"]),
        ) {
            let text = format!(
                "{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{}{off}",
                frac.map(|f| format!(".{f}")).unwrap_or_default()
            );
            if let Some(fast) = iso8601_fast(&text) {
                proptest::prop_assert_eq!(Some(fast), parse_timestamp_general(&text), "{}", text);
            }
        }
    }

    #[test]
    fn severity_fast_path_agrees_with_parse_lenient() {
        for s in [
            "critical", "error", "warning", "info", "CRIT", "warn", "P1", "p1", "P2", "p2", "P3",
            "p3", "P4", "p4", "P5", "p5", "P6", "bogus", "",
        ] {
            assert_eq!(severity_of(s), Severity::parse_lenient(s), "{s:?}");
        }
        assert!(contains_ignore_ascii_case(
            "Alert Recovered on host",
            "recovered"
        ));
        assert!(!contains_ignore_ascii_case("Triggered", "recovered"));
        assert!(contains_ignore_ascii_case("[No Data]", "no data"));
    }

    #[test]
    fn first_line_of_equals_first_line() {
        for s in [
            "one line",
            " padded ",
            "two\nlines",
            "cr\r\nlf",
            "trailing cr\r",
            "inner\rcr",
            "",
            "héllo wörld",
            "exactly",
            "a bit longer than max",
        ] {
            for max in [0, 4, 7, 512] {
                assert_eq!(
                    first_line_of(Cow::Owned(s.to_string()), max),
                    first_line(s, max)
                );
                assert_eq!(first_line_of(Cow::Borrowed(s), max), first_line(s, max));
            }
        }
    }

    #[test]
    fn first_line_cuts_on_char_boundary() {
        assert_eq!(first_line("héllo wörld\nsecond", 4), "héll…");
        assert_eq!(first_line("short", 10), "short");
    }
}
