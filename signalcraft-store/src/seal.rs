//! Encryption at rest for secrets: XChaCha20-Poly1305 "sealed values".
//!
//! A [`SealKey`] (32 bytes, given by the operator as base64 or hex) seals a byte
//! string into the text form `scv1:<base64(nonce ‖ ciphertext ‖ tag)>`, with a random
//! 192-bit nonce per value and the record key as associated data, so a sealed value
//! cannot be moved to another record unnoticed.
//!
//! [`RedbStore`](crate::RedbStore) applies it to [`Table::Integrations`] records: when
//! a key is configured, the top-level `"secrets"` field of an integration record (any
//! JSON value) is replaced on write by `{"$sealed": "scv1:…"}` and restored on read.
//! Everything else in the record stays readable (and scannable). The server may also
//! use [`SealKey::seal`]/[`SealKey::open`] directly for other values.
//!
//! [`Table::Integrations`]: signalcraft_core::store::Table::Integrations

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use signalcraft_core::store::StoreError;

use crate::error::Error;

/// Prefix of every sealed value (format version 1).
pub const SEALED_PREFIX: &str = "scv1:";
/// The JSON field of an integration record that holds its secrets.
pub const SECRETS_FIELD: &str = "secrets";
/// The marker object key a sealed `secrets` field is stored under.
pub const SEALED_MARKER: &str = "$sealed";

const NONCE_LEN: usize = 24;

/// A 256-bit key for sealing secrets. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SealKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != 32 {
            return Err(Error::InvalidOption {
                field: "encryption_key",
                message: format!("must be 32 bytes, got {}", bytes.len()),
            });
        }
        let cipher =
            XChaCha20Poly1305::new_from_slice(bytes).map_err(|_| Error::InvalidOption {
                field: "encryption_key",
                message: "must be 32 bytes".into(),
            })?;
        Ok(SealKey { cipher })
    }

    /// A key from text: 64 hex digits or standard base64 of 32 bytes (surrounding
    /// whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let t = text.trim();
        if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut out = [0u8; 32];
            for (i, o) in out.iter_mut().enumerate() {
                let pair = &t[2 * i..2 * i + 2];
                *o = u8::from_str_radix(pair, 16).map_err(|_| Error::InvalidOption {
                    field: "encryption_key",
                    message: "invalid hex".into(),
                })?;
            }
            return Self::from_bytes(&out);
        }
        let bytes = B64.decode(t).map_err(|_| Error::InvalidOption {
            field: "encryption_key",
            message: "expected 64 hex digits or base64 of 32 bytes".into(),
        })?;
        Self::from_bytes(&bytes)
    }

    /// Seals `plaintext`, binding it to `context` (e.g. the record key).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| StoreError::Codec("sealing failed".into()))?;
        let mut buf = Vec::with_capacity(NONCE_LEN + ct.len());
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(&ct);
        Ok(format!("{SEALED_PREFIX}{}", B64.encode(buf)))
    }

    /// Opens a value produced by [`SealKey::seal`] with the same `context`.
    /// Fails with [`StoreError::Codec`] on a wrong key, a wrong context or tampering.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, StoreError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| StoreError::Codec("sealed value lacks the scv1: prefix".into()))?;
        let buf = B64
            .decode(body)
            .map_err(|_| StoreError::Codec("sealed value is not valid base64".into()))?;
        if buf.len() < NONCE_LEN + 16 {
            return Err(StoreError::Codec("sealed value is truncated".into()));
        }
        let (nonce, ct) = buf.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context,
                },
            )
            .map_err(|_| {
                StoreError::Codec(
                    "cannot open sealed value: wrong encryption key or tampered data".into(),
                )
            })
    }
}

/// Seals the `secrets` field of an integration record. Records that are not JSON
/// objects, have no `secrets`, or are already sealed are returned unchanged.
pub(crate) fn seal_record(
    key: &SealKey,
    record_key: &str,
    value: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    let Ok(serde_json::Value::Object(mut obj)) =
        serde_json::from_slice::<serde_json::Value>(&value)
    else {
        return Ok(value);
    };
    let Some(secrets) = obj.get(SECRETS_FIELD) else {
        return Ok(value);
    };
    if is_sealed(secrets) {
        return Ok(value);
    }
    let plain = serde_json::to_vec(secrets).map_err(|e| StoreError::Codec(e.to_string()))?;
    let sealed = key.seal(&plain, record_key.as_bytes())?;
    obj.insert(
        SECRETS_FIELD.into(),
        serde_json::json!({ SEALED_MARKER: sealed }),
    );
    serde_json::to_vec(&obj).map_err(|e| StoreError::Codec(e.to_string()))
}

/// Restores the `secrets` field of a record sealed by [`seal_record`]. Unsealed
/// records pass through. A sealed record without a key is an error naming the record.
pub(crate) fn open_record(
    key: Option<&SealKey>,
    record_key: &str,
    value: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    // Cheap pre-check: most records are not sealed.
    if !contains(&value, SEALED_MARKER.as_bytes()) {
        return Ok(value);
    }
    let Ok(serde_json::Value::Object(mut obj)) =
        serde_json::from_slice::<serde_json::Value>(&value)
    else {
        return Ok(value);
    };
    let Some(sealed) = obj
        .get(SECRETS_FIELD)
        .and_then(|s| s.get(SEALED_MARKER))
        .and_then(|s| s.as_str())
        .map(str::to_owned)
    else {
        return Ok(value);
    };
    let Some(key) = key else {
        return Err(StoreError::Codec(format!(
            "integrations/{record_key}: secrets are sealed but no encryption key is configured"
        )));
    };
    let plain = key
        .open(&sealed, record_key.as_bytes())
        .map_err(|e| StoreError::Codec(format!("integrations/{record_key}: {e}")))?;
    let secrets: serde_json::Value = serde_json::from_slice(&plain)
        .map_err(|e| StoreError::Codec(format!("integrations/{record_key}: {e}")))?;
    obj.insert(SECRETS_FIELD.into(), secrets);
    serde_json::to_vec(&obj).map_err(|e| StoreError::Codec(e.to_string()))
}

fn is_sealed(v: &serde_json::Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.len() == 1 && o.get(SEALED_MARKER).is_some_and(|s| s.is_string()))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealKey {
        SealKey::parse(&"ab".repeat(32)).expect("hex key")
    }

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let k = key();
        let s = k.seal(b"hunter2", b"slack-prod").expect("seal");
        assert!(s.starts_with(SEALED_PREFIX));
        assert!(!s.contains("hunter2"));
        assert_eq!(k.open(&s, b"slack-prod").expect("open"), b"hunter2");
        // Another context (record key) or another key fails.
        assert!(k.open(&s, b"slack-dev").is_err());
        let other = SealKey::from_bytes(&[7u8; 32]).expect("key");
        assert!(other.open(&s, b"slack-prod").is_err());
        // Tampering fails.
        let mut t = s.clone().into_bytes();
        let last = t.len() - 3;
        t[last] = if t[last] == b'A' { b'B' } else { b'A' };
        assert!(
            k.open(&String::from_utf8(t).expect("utf8"), b"slack-prod")
                .is_err()
        );
    }

    #[test]
    fn bad_keys_are_rejected_without_echoing_them() {
        let e = SealKey::parse("not a key").expect_err("bad key");
        assert!(e.to_string().contains("encryption_key"));
        assert!(!e.to_string().contains("not a key"));
        assert!(SealKey::from_bytes(&[1u8; 16]).is_err());
        let b64 = B64.encode([9u8; 32]);
        assert!(SealKey::parse(&b64).is_ok());
        assert_eq!(format!("{:?}", key()), "SealKey(<redacted>)");
    }

    #[test]
    fn record_sealing_hides_only_secrets() {
        let k = key();
        let rec = br#"{"name":"slack","secrets":{"token":"xoxb-123"}}"#.to_vec();
        let sealed = seal_record(&k, "slack", rec.clone()).expect("seal");
        let text = String::from_utf8(sealed.clone()).expect("utf8");
        assert!(!text.contains("xoxb-123"), "{text}");
        assert!(text.contains(r#""name":"slack""#));
        // Idempotent: sealing a sealed record leaves it alone.
        assert_eq!(
            seal_record(&k, "slack", sealed.clone()).expect("reseal"),
            sealed
        );
        let opened = open_record(Some(&k), "slack", sealed.clone()).expect("open");
        let v: serde_json::Value = serde_json::from_slice(&opened).expect("json");
        assert_eq!(v["secrets"]["token"], "xoxb-123");
        // Without a key: a clear error, not the ciphertext.
        let e = open_record(None, "slack", sealed).expect_err("no key");
        assert!(e.to_string().contains("no encryption key"), "{e}");
        // Records without secrets pass through untouched.
        let plain = br#"{"name":"x"}"#.to_vec();
        assert_eq!(seal_record(&k, "x", plain.clone()).expect("seal"), plain);
    }
}
