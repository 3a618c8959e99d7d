//! Amazon SNS message signatures.
//!
//! SNS signs each HTTP(S) delivery with the private key of a certificate it serves
//! from `https://sns.<region>.amazonaws.com/…pem` (`.amazonaws.com.cn` in China).
//! `SignatureVersion` `1` is RSA PKCS#1 v1.5 with SHA-1, `2` the same with SHA-256,
//! over the documented string to sign: `Key\nValue\n` for, in this order,
//! * Notification: `Message`, `MessageId`, `Subject` (only if present), `Timestamp`,
//!   `TopicArn`, `Type`;
//! * SubscriptionConfirmation / UnsubscribeConfirmation: `Message`, `MessageId`,
//!   `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type`.
//!
//! Certificates come from configuration or from a [`CertificateCache`] the embedder
//! fills; a certificate is used only within its validity period
//! ([`SigningKey::check_valid_at`]). This module never does I/O. [`check_signing_cert_url`] is the only gate a
//! fetcher may use: it admits `https` URLs on `sns.<region>.amazonaws.com[.cn]` only.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use jiff::Timestamp;
use parking_lot::RwLock;
use serde::Deserialize;

/// The SNS envelope fields that take part in signatures (text borrowed from the
/// body where it has no escapes). `M` is how `Message` is read: unescaped text (the
/// default), or `&RawValue` to keep the string literal as sent (the CloudWatch source
/// reads the alarm inside it in one pass); either way the other fields accept exactly
/// the same input.
#[derive(Debug, Clone, Deserialize)]
pub struct SnsEnvelope<'a, M = Cow<'a, str>> {
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    #[serde(rename = "Type", borrow)]
    pub kind: Cow<'a, str>,
    /// Unique per message.
    #[serde(rename = "MessageId", borrow)]
    pub message_id: Cow<'a, str>,
    /// The topic.
    #[serde(rename = "TopicArn", borrow)]
    pub topic_arn: Cow<'a, str>,
    /// Notification subject (optional).
    #[serde(
        rename = "Subject",
        default,
        borrow,
        deserialize_with = "super::decode::opt_str"
    )]
    pub subject: Option<Cow<'a, str>>,
    /// The message (CloudWatch: alarm JSON as a string).
    #[serde(rename = "Message")]
    pub message: M,
    /// ISO 8601 send time.
    #[serde(rename = "Timestamp", borrow)]
    pub timestamp: Cow<'a, str>,
    /// `1` (SHA1withRSA) or `2` (SHA256withRSA).
    #[serde(
        rename = "SignatureVersion",
        default,
        borrow,
        deserialize_with = "super::decode::opt_str"
    )]
    pub signature_version: Option<Cow<'a, str>>,
    /// Base64 signature.
    #[serde(
        rename = "Signature",
        default,
        borrow,
        deserialize_with = "super::decode::opt_str"
    )]
    pub signature: Option<Cow<'a, str>>,
    /// Where the signing certificate lives.
    #[serde(
        rename = "SigningCertURL",
        default,
        borrow,
        deserialize_with = "super::decode::opt_str"
    )]
    pub signing_cert_url: Option<Cow<'a, str>>,
    /// Confirmation URL (subscription messages).
    #[serde(
        rename = "SubscribeURL",
        default,
        borrow,
        deserialize_with = "super::decode::opt_str"
    )]
    pub subscribe_url: Option<Cow<'a, str>>,
    /// Confirmation token (subscription messages).
    #[serde(
        rename = "Token",
        default,
        borrow,
        deserialize_with = "super::decode::opt_str"
    )]
    pub token: Option<Cow<'a, str>>,
    /// Unsubscribe link (notifications).
    #[serde(
        rename = "UnsubscribeURL",
        default,
        borrow,
        deserialize_with = "super::decode::opt_str"
    )]
    pub unsubscribe_url: Option<Cow<'a, str>>,
}

impl SnsEnvelope<'_> {
    /// The string to sign for this message type, or `None` for an unknown `Type`
    /// or a subscription message without `SubscribeURL`/`Token`.
    pub fn string_to_sign(&self) -> Option<String> {
        let mut s = String::with_capacity(self.message.len() + 256);
        let mut put = |k: &str, v: &str| {
            s.push_str(k);
            s.push('\n');
            s.push_str(v);
            s.push('\n');
        };
        match self.kind.as_ref() {
            "Notification" => {
                put("Message", &self.message);
                put("MessageId", &self.message_id);
                if let Some(subj) = &self.subject {
                    put("Subject", subj);
                }
                put("Timestamp", &self.timestamp);
                put("TopicArn", &self.topic_arn);
                put("Type", &self.kind);
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                put("Message", &self.message);
                put("MessageId", &self.message_id);
                put("SubscribeURL", self.subscribe_url.as_deref()?);
                put("Timestamp", &self.timestamp);
                put("Token", self.token.as_deref()?);
                put("TopicArn", &self.topic_arn);
                put("Type", &self.kind);
            }
            _ => return None,
        }
        Some(s)
    }
}

/// The region of an SNS host `sns.<region>.amazonaws.com[.cn]`, if `host` is one.
fn sns_host_region(host: &str) -> Option<&str> {
    let rest = host.strip_prefix("sns.")?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    let ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(region)
}

/// Checks that `url` is an `https` URL on `sns.<region>.amazonaws.com[.cn]` (default
/// port, no credentials) ending in `.pem`, and returns the region. Anything that
/// fetches a signing certificate must call this first.
pub fn check_signing_cert_url(url: &str) -> Result<String, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if u.scheme() != "https" {
        return Err("scheme must be https".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if u.port().is_some() {
        return Err("must use the default port".into());
    }
    let host = u.host_str().unwrap_or("");
    let region = sns_host_region(host)
        .ok_or_else(|| format!("host {host:?} is not sns.<region>.amazonaws.com"))?;
    if !u.path().ends_with(".pem") {
        return Err("path must end in .pem".into());
    }
    Ok(region.to_string())
}

/// Checks that a `SubscribeURL` points at the SNS endpoint of an AWS region.
pub fn check_subscribe_url(url: &str) -> Result<String, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if u.scheme() != "https" || u.port().is_some() || !u.username().is_empty() {
        return Err("must be https on the default port without credentials".into());
    }
    let host = u.host_str().unwrap_or("");
    sns_host_region(host)
        .map(str::to_string)
        .ok_or_else(|| format!("host {host:?} is not sns.<region>.amazonaws.com"))
}

/// The region field of an ARN (`arn:aws:sns:<region>:<account>:<topic>`).
pub fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3)
}

/// An RSA public key extracted from a signing certificate (PKCS#1 `RSAPublicKey` DER),
/// with the certificate's validity period.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    key: Vec<u8>,
    not_before: Timestamp,
    not_after: Timestamp,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey({} bytes, valid {} to {})",
            self.key.len(),
            self.not_before,
            self.not_after
        )
    }
}

/// Why a signing certificate may not be used at a given time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateTimeError {
    /// The time is before the certificate's `notBefore`.
    #[error("signing certificate is not valid before {not_before} (checked at {at})")]
    NotYetValid {
        /// The certificate's `notBefore`.
        not_before: Timestamp,
        /// The time checked.
        at: Timestamp,
    },
    /// The time is after the certificate's `notAfter`.
    #[error("signing certificate expired at {not_after} (checked at {at})")]
    Expired {
        /// The certificate's `notAfter`.
        not_after: Timestamp,
        /// The time checked.
        at: Timestamp,
    },
}

impl SigningKey {
    /// Reads the RSA public key and validity period of the first certificate in a PEM
    /// document.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let der = pem_certificate(pem)?;
        let parts = certificate_parts(&der)?;
        Ok(SigningKey {
            key: parts.rsa_public_key.to_vec(),
            not_before: parts.not_before,
            not_after: parts.not_after,
        })
    }

    /// The certificate's `notBefore` and `notAfter` (RFC 5280 §4.1.2.5).
    pub fn validity(&self) -> (Timestamp, Timestamp) {
        (self.not_before, self.not_after)
    }

    /// Checks that `at` lies within the certificate's validity period (both ends
    /// inclusive, as RFC 5280 defines them).
    pub fn check_valid_at(&self, at: Timestamp) -> Result<(), CertificateTimeError> {
        if at < self.not_before {
            return Err(CertificateTimeError::NotYetValid {
                not_before: self.not_before,
                at,
            });
        }
        if at > self.not_after {
            return Err(CertificateTimeError::Expired {
                not_after: self.not_after,
                at,
            });
        }
        Ok(())
    }

    /// Verifies `signature` over `message`: `version` `1` = SHA1withRSA, `2` = SHA256withRSA.
    pub fn verify(&self, version: &str, message: &[u8], signature: &[u8]) -> Result<(), String> {
        use ring::signature as sig;
        let alg: &'static dyn sig::VerificationAlgorithm = match version {
            "1" => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &sig::RSA_PKCS1_2048_8192_SHA256,
            other => return Err(format!("unsupported SignatureVersion {other:?}")),
        };
        sig::UnparsedPublicKey::new(alg, &self.key)
            .verify(message, signature)
            .map_err(|_| "signature does not verify".to_string())
    }
}

/// Decodes base64 signature text.
pub fn decode_signature(b64: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
}

fn pem_certificate(pem: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN).ok_or("no BEGIN CERTIFICATE line")? + BEGIN.len();
    let len = pem[start..].find(END).ok_or("no END CERTIFICATE line")?;
    let b64: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "certificate body is not base64".to_string())
}

/// One DER TLV: `(tag, content, rest)`. Definite lengths up to 4 bytes only.
fn der_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("truncated DER")?;
    let (&first, mut rest) = rest.split_first().ok_or("truncated DER")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err("unsupported DER length".into());
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err("truncated DER".into());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (t, content, rest) = der_tlv(input)?;
    if t != tag {
        return Err(format!("expected {what}"));
    }
    Ok((content, rest))
}

/// rsaEncryption, 1.2.840.113549.1.1.1.
const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// What a signing certificate contributes: its key and validity period.
struct CertificateParts<'a> {
    rsa_public_key: &'a [u8],
    not_before: Timestamp,
    not_after: Timestamp,
}

/// Walks `Certificate → tbsCertificate → {validity, subjectPublicKeyInfo}` (RFC 5280
/// §4.1) and returns the validity period and the `RSAPublicKey` inside the BIT STRING.
fn certificate_parts(der: &[u8]) -> Result<CertificateParts<'_>, String> {
    let rsa_public_key = rsa_public_key_of_certificate(der)?;
    let (cert, _) = expect(der, 0x30, "Certificate SEQUENCE")?;
    let (tbs, _) = expect(cert, 0x30, "tbsCertificate SEQUENCE")?;
    let mut rest = tbs;
    let (tag, _, after) = der_tlv(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    let (_, rest) = expect(rest, 0x02, "serialNumber INTEGER")?;
    let (_, rest) = expect(rest, 0x30, "signature AlgorithmIdentifier")?;
    let (_, rest) = expect(rest, 0x30, "issuer Name")?;
    let (validity, _) = expect(rest, 0x30, "validity")?;
    let (not_before, rest) = der_time(validity, "notBefore")?;
    let (not_after, _) = der_time(rest, "notAfter")?;
    Ok(CertificateParts {
        rsa_public_key,
        not_before,
        not_after,
    })
}

/// One X.509 `Time`: UTCTime `YYMMDDHHMMSSZ` (years 1950–2049) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ` (RFC 5280 §4.1.2.5: UTC, seconds present, no fractions).
fn der_time<'a>(input: &'a [u8], what: &str) -> Result<(Timestamp, &'a [u8]), String> {
    let (tag, content, rest) = der_tlv(input)?;
    let text = std::str::from_utf8(content).map_err(|_| format!("{what} is not ASCII"))?;
    let bad = || format!("{what} {text:?} is not a UTC time");
    let digits = text.strip_suffix('Z').ok_or_else(bad)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (year, rest_digits) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i16 = digits[..2].parse().map_err(|_| bad())?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().map_err(|_| bad())?, &digits[4..]),
        _ => return Err(bad()),
    };
    let num = |i: usize| -> Result<i8, String> { rest_digits[i..i + 2].parse().map_err(|_| bad()) };
    let dt = jiff::civil::DateTime::new(year, num(0)?, num(2)?, num(4)?, num(6)?, num(8)?, 0)
        .map_err(|_| bad())?;
    let ts = jiff::tz::TimeZone::UTC
        .to_timestamp(dt)
        .map_err(|_| bad())?;
    Ok((ts, rest))
}

/// Walks `Certificate → tbsCertificate → subjectPublicKeyInfo` and returns the
/// `RSAPublicKey` inside the BIT STRING (RFC 5280 §4.1).
fn rsa_public_key_of_certificate(der: &[u8]) -> Result<&[u8], String> {
    let (cert, _) = expect(der, 0x30, "Certificate SEQUENCE")?;
    let (tbs, _) = expect(cert, 0x30, "tbsCertificate SEQUENCE")?;
    let mut rest = tbs;
    let (tag, _, after) = der_tlv(rest)?;
    if tag == 0xa0 {
        rest = after; // [0] EXPLICIT version
    }
    let (_, rest) = expect(rest, 0x02, "serialNumber INTEGER")?;
    let (_, rest) = expect(rest, 0x30, "signature AlgorithmIdentifier")?;
    let (_, rest) = expect(rest, 0x30, "issuer Name")?;
    let (_, rest) = expect(rest, 0x30, "validity")?;
    let (_, rest) = expect(rest, 0x30, "subject Name")?;
    let (spki, _) = expect(rest, 0x30, "subjectPublicKeyInfo")?;
    let (alg, spki_rest) = expect(spki, 0x30, "AlgorithmIdentifier")?;
    let (oid, _) = expect(alg, 0x06, "algorithm OID")?;
    if oid != RSA_ENCRYPTION_OID {
        return Err("certificate key is not RSA".into());
    }
    let (bits, _) = expect(spki_rest, 0x03, "subjectPublicKey BIT STRING")?;
    match bits.split_first() {
        Some((0, key)) => Ok(key),
        _ => Err("BIT STRING has unused bits".into()),
    }
}

/// Signing keys by certificate URL, shared between requests (and filled by whoever
/// fetches certificates, after [`check_signing_cert_url`]). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CertificateCache {
    keys: Arc<RwLock<HashMap<String, SigningKey>>>,
}

impl CertificateCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores the certificate served at `url` (PEM). Refuses URLs that are not SNS
    /// certificate URLs and PEMs without an RSA certificate.
    pub fn insert_pem(&self, url: &str, pem: &str) -> Result<(), String> {
        check_signing_cert_url(url)?;
        let key = SigningKey::from_pem(pem)?;
        self.keys.write().insert(url.to_string(), key);
        Ok(())
    }

    /// The key for `url`, if cached.
    pub fn get(&self, url: &str) -> Option<SigningKey> {
        self.keys.read().get(url).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sns_hosts_are_allowed() {
        assert_eq!(
            check_signing_cert_url(
                "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"
            ),
            Ok("us-east-1".into())
        );
        assert!(check_signing_cert_url("https://sns.cn-north-1.amazonaws.com.cn/x.pem").is_ok());
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://s3.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.amazonaws.com/x.pem",
            "https://sns.US-EAST-1.amazonaws.com/x.txt",
            "https://127.0.0.1/x.pem",
        ] {
            assert!(check_signing_cert_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn certificate_times_in_both_encodings() {
        let utc = [
            0x17, 13, b'2', b'4', b'0', b'5', b'0', b'1', b'1', b'0', b'0', b'0', b'0', b'0', b'Z',
        ];
        let (t, rest) = der_time(&utc, "notBefore").unwrap();
        assert_eq!(t, "2024-05-01T10:00:00Z".parse::<Timestamp>().unwrap());
        assert!(rest.is_empty());
        let mut generalized = vec![0x18, 15];
        generalized.extend_from_slice(b"21260101000000Z");
        assert_eq!(
            der_time(&generalized, "notAfter").unwrap().0,
            "2126-01-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        let old = [
            0x17, 13, b'9', b'9', b'1', b'2', b'3', b'1', b'2', b'3', b'5', b'9', b'5', b'9', b'Z',
        ];
        assert_eq!(
            der_time(&old, "notAfter").unwrap().0,
            "1999-12-31T23:59:59Z".parse::<Timestamp>().unwrap()
        );
        for bad in [
            &b"\x17\x0d2405011000000"[..], // no Z
            &b"\x17\x0d24050110000aZ"[..], // not digits
            &b"\x17\x0d241301100000Z"[..], // month 13
            &b"\x18\x0d240501100000Z"[..], // GeneralizedTime too short
            &b"\x02\x0d240501100000Z"[..], // not a time tag
        ] {
            assert!(der_time(bad, "t").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn der_walker_rejects_garbage() {
        assert!(rsa_public_key_of_certificate(&[]).is_err());
        assert!(rsa_public_key_of_certificate(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(rsa_public_key_of_certificate(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_err());
        assert!(SigningKey::from_pem("not a pem").is_err());
    }
}
