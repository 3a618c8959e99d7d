//! Shared decoding helpers: the size limit, typed JSON decoding with the path of the
//! offending field, timestamps in the spellings vendors use, and label helpers.

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde_json::Value;
use signalcraft_core::model::{Labels, Source};
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
                provider: provider.to_string(),
                integration: integration.key.clone(),
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

    /// Checks the size, then decodes `body` into `T`. With `keep_raw` the body is also
    /// returned as a [`Value`] (else `Value::Null`). Errors name the JSON path at fault.
    pub fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<(T, Value), ProviderError> {
        self.check_size(body)?;
        if self.keep_raw {
            let raw: Value =
                serde_json::from_slice(body).map_err(|e| self.malformed("$", json_message(&e)))?;
            let typed = self.from_value(&raw)?;
            Ok((typed, raw))
        } else {
            match serde_json::from_slice::<T>(body) {
                Ok(t) => Ok((t, Value::Null)),
                // Slow path only on error: re-run with path tracking for the message.
                Err(_) => Err(self.path_error::<T>(body)),
            }
        }
    }

    /// Decodes a typed view of an already parsed value.
    pub fn from_value<T: DeserializeOwned>(&self, v: &Value) -> Result<T, ProviderError> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            self.malformed(jsonpath(&path), e.into_inner().to_string())
        })
    }

    /// Typed view of an already parsed body (`raw` not null) or a fresh decode of
    /// `body` (raw payloads off).
    pub fn from_value_or_body<T: DeserializeOwned>(
        &self,
        raw: &Value,
        body: &[u8],
    ) -> Result<T, ProviderError> {
        if raw.is_null() {
            self.decode::<T>(body).map(|(t, _)| t)
        } else {
            self.from_value(raw)
        }
    }

    fn path_error<T: DeserializeOwned>(&self, body: &[u8]) -> ProviderError {
        let mut de = serde_json::Deserializer::from_slice(body);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) => {
                let path = e.path().to_string();
                self.malformed(jsonpath(&path), json_message(e.inner()))
            }
            Ok(_) => match de.end() {
                Err(e) => self.malformed("$", json_message(&e)),
                Ok(()) => self.malformed("$", "payload does not match the expected shape"),
            },
        }
    }

    /// The raw value for one element: `raw` indexed by `path` (a JSON pointer), or
    /// `Null` when raw payloads are off.
    pub fn raw_at(&self, raw: &Value, pointer: &str) -> Value {
        if !self.keep_raw {
            return Value::Null;
        }
        raw.pointer(pointer).cloned().unwrap_or(Value::Null)
    }
}

/// Formats a serde_json error without leaking large payload fragments.
fn json_message(e: &serde_json::Error) -> String {
    let mut m = e.to_string();
    if m.len() > 200 {
        m.truncate(200);
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

/// Epoch seconds, or milliseconds when the number is too large to be seconds.
pub fn epoch_auto(n: i64) -> Option<Timestamp> {
    if n.abs() >= 100_000_000_000 {
        Timestamp::from_millisecond(n).ok()
    } else {
        Timestamp::from_second(n).ok()
    }
}

/// Inserts `name=value` unless the value is empty.
pub fn put_label(labels: &mut Labels, name: &str, value: &str) {
    if !value.is_empty() {
        labels.insert(name.to_string(), value.to_string());
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
    fn first_line_cuts_on_char_boundary() {
        assert_eq!(first_line("héllo wörld\nsecond", 4), "héll…");
        assert_eq!(first_line("short", 10), "short");
    }
}
