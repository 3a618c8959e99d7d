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
use signalcraft_core::store::{StoreError, Table};

use crate::error::{Error, from_redb};

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

/// Restores the `secrets` field of a record sealed by [`seal_record`], trying each
/// of `keys` in order (the current key first, then the keys of a rotation in
/// progress). Unsealed records pass through. A sealed record with no key, or with
/// keys none of which opens it, is an error naming the record.
pub(crate) fn open_record(
    keys: &[SealKey],
    record_key: &str,
    value: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    match open_record_with(keys, record_key, value)? {
        Opened::Clear(v) | Opened::Sealed { record: v, .. } => Ok(v),
    }
}

/// An integration record after [`open_record_with`].
#[derive(Debug)]
pub(crate) enum Opened {
    /// The record held no sealed secrets; returned unchanged.
    Clear(Vec<u8>),
    /// The record's secrets were sealed; `record` has them in clear, and `key` is
    /// the index in the key list of the key that opened them.
    Sealed {
        /// The record with its `secrets` restored.
        record: Vec<u8>,
        /// Which key opened it.
        key: usize,
    },
}

/// Like [`open_record`], and also tells which key opened the record.
pub(crate) fn open_record_with(
    keys: &[SealKey],
    record_key: &str,
    value: Vec<u8>,
) -> Result<Opened, StoreError> {
    // Cheap pre-check: most records are not sealed.
    if !contains(&value, SEALED_MARKER.as_bytes()) {
        return Ok(Opened::Clear(value));
    }
    let Ok(serde_json::Value::Object(mut obj)) =
        serde_json::from_slice::<serde_json::Value>(&value)
    else {
        return Ok(Opened::Clear(value));
    };
    let Some(sealed) = obj
        .get(SECRETS_FIELD)
        .and_then(|s| s.get(SEALED_MARKER))
        .and_then(|s| s.as_str())
        .map(str::to_owned)
    else {
        return Ok(Opened::Clear(value));
    };
    if keys.is_empty() {
        return Err(StoreError::Codec(format!(
            "integrations/{record_key}: secrets are sealed but no encryption key is configured"
        )));
    }
    let mut opened = None;
    let mut last_err = None;
    for (i, key) in keys.iter().enumerate() {
        match key.open(&sealed, record_key.as_bytes()) {
            Ok(plain) => {
                opened = Some((i, plain));
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let Some((key, plain)) = opened else {
        let e = last_err.map(|e| e.to_string()).unwrap_or_default();
        return Err(StoreError::Codec(format!("integrations/{record_key}: {e}")));
    };
    let secrets: serde_json::Value = serde_json::from_slice(&plain)
        .map_err(|e| StoreError::Codec(format!("integrations/{record_key}: {e}")))?;
    obj.insert(SECRETS_FIELD.into(), secrets);
    let record = serde_json::to_vec(&obj).map_err(|e| StoreError::Codec(e.to_string()))?;
    Ok(Opened::Sealed { record, key })
}

/// What re-sealing did to one integration record.
#[derive(Debug)]
pub(crate) enum Resealed {
    /// Already sealed under the current key, or holds no secrets: not rewritten.
    Unchanged,
    /// Sealed under a previous key: here re-sealed under the current one.
    FromPrevious(Vec<u8>),
    /// Its secrets were in clear: here sealed under the current key.
    FromClear(Vec<u8>),
}

/// Re-seals one integration record under `keys[0]` (the current key), opening it
/// with any of `keys`. `keys` must not be empty.
pub(crate) fn reseal_record(
    keys: &[SealKey],
    record_key: &str,
    value: Vec<u8>,
) -> Result<Resealed, StoreError> {
    let Some(current) = keys.first() else {
        return Err(StoreError::Codec(
            "re-sealing needs an encryption key".into(),
        ));
    };
    match open_record_with(keys, record_key, value)? {
        Opened::Sealed { key: 0, .. } => Ok(Resealed::Unchanged),
        Opened::Sealed { record, .. } => {
            seal_record(current, record_key, record).map(Resealed::FromPrevious)
        }
        Opened::Clear(record) => {
            let sealed = seal_record(current, record_key, record.clone())?;
            if sealed == record {
                Ok(Resealed::Unchanged) // no secrets (or not JSON)
            } else {
                Ok(Resealed::FromClear(sealed))
            }
        }
    }
}

/// What [`RedbStore::reseal_secrets`](crate::RedbStore::reseal_secrets) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Records whose secrets were sealed under a previous key and are now sealed
    /// under the current one.
    pub from_previous: u64,
    /// Records whose secrets were in clear (written before a key was configured)
    /// and are now sealed.
    pub from_clear: u64,
    /// Records left as they were: already under the current key, or without secrets.
    pub unchanged: u64,
}

/// Re-seals every record of the integrations table under `keys[0]`, inside `txn`.
/// One record that no key opens fails the whole call (the caller aborts `txn`, so
/// nothing is rewritten).
pub(crate) fn reseal_table(
    txn: &redb::WriteTransaction,
    keys: &[SealKey],
) -> Result<ResealReport, StoreError> {
    use redb::ReadableTable;
    let mut t = txn
        .open_table(crate::tables::data(Table::Integrations))
        .map_err(from_redb)?;
    let mut rewrites = Vec::new();
    let mut report = ResealReport::default();
    for entry in t.iter().map_err(from_redb)? {
        let (k, v) = entry.map_err(from_redb)?;
        let key = k.value();
        match reseal_record(keys, key, v.value().to_vec())? {
            Resealed::Unchanged => report.unchanged += 1,
            Resealed::FromPrevious(v) => {
                report.from_previous += 1;
                rewrites.push((key.to_owned(), v));
            }
            Resealed::FromClear(v) => {
                report.from_clear += 1;
                rewrites.push((key.to_owned(), v));
            }
        }
    }
    for (k, v) in rewrites {
        t.insert(k.as_str(), v.as_slice()).map_err(from_redb)?;
    }
    Ok(report)
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
    fn resealing_moves_records_to_the_current_key() {
        let old = key();
        let new = SealKey::from_bytes(&[7u8; 32]).expect("key");
        let both = [new.clone(), old.clone()];
        let rec = br#"{"name":"slack","secrets":{"token":"xoxb-123"}}"#.to_vec();
        let under_old = seal_record(&old, "slack", rec.clone()).expect("seal");
        // Reading during the rotation: the old key is accepted.
        let opened = open_record(&both, "slack", under_old.clone()).expect("open");
        let v: serde_json::Value = serde_json::from_slice(&opened).expect("json");
        assert_eq!(v["secrets"]["token"], "xoxb-123");
        let Resealed::FromPrevious(under_new) =
            reseal_record(&both, "slack", under_old.clone()).expect("reseal")
        else {
            panic!("a record under the old key is re-sealed");
        };
        assert!(!String::from_utf8_lossy(&under_new).contains("xoxb-123"));
        // Now the new key alone opens it and the old one does not.
        let opened = open_record(std::slice::from_ref(&new), "slack", under_new.clone())
            .expect("new key opens");
        let v: serde_json::Value = serde_json::from_slice(&opened).expect("json");
        assert_eq!(v["secrets"]["token"], "xoxb-123");
        assert!(open_record(std::slice::from_ref(&old), "slack", under_new.clone()).is_err());
        // Already current, clear, and secret-less records.
        assert!(matches!(
            reseal_record(&both, "slack", under_new).expect("reseal"),
            Resealed::Unchanged
        ));
        let Resealed::FromClear(sealed) = reseal_record(&both, "slack", rec).expect("reseal clear")
        else {
            panic!("clear secrets get sealed");
        };
        assert!(open_record(std::slice::from_ref(&new), "slack", sealed).is_ok());
        assert!(matches!(
            reseal_record(&both, "x", br#"{"name":"x"}"#.to_vec()).expect("reseal"),
            Resealed::Unchanged
        ));
        // A record no configured key opens is an error naming it.
        let stranger = SealKey::from_bytes(&[9u8; 32]).expect("key");
        let foreign = seal_record(&stranger, "pd", br#"{"secrets":"s"}"#.to_vec()).expect("seal");
        let e = reseal_record(&both, "pd", foreign).expect_err("unknown key");
        assert!(e.to_string().contains("integrations/pd"), "{e}");
        assert!(e.to_string().contains("wrong encryption key"), "{e}");
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
        let opened = open_record(std::slice::from_ref(&k), "slack", sealed.clone()).expect("open");
        let v: serde_json::Value = serde_json::from_slice(&opened).expect("json");
        assert_eq!(v["secrets"]["token"], "xoxb-123");
        // Without a key: a clear error, not the ciphertext.
        let e = open_record(&[], "slack", sealed).expect_err("no key");
        assert!(e.to_string().contains("no encryption key"), "{e}");
        // Records without secrets pass through untouched.
        let plain = br#"{"name":"x"}"#.to_vec();
        assert_eq!(seal_record(&k, "x", plain.clone()).expect("seal"), plain);
    }
}
