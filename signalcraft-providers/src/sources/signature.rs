//! Shared authenticity checks: HMAC-SHA256 signatures compared in constant time,
//! replay windows for signed timestamps, and shared-token / basic-auth headers.
//!
//! Every failure is a typed [`ProviderError`]: `MissingHeader`, `MalformedHeader`,
//! `BadSignature` or `Expired`. Messages name the header, never a secret.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use sha2::Sha256;
use signalcraft_core::provider::{InboundRequest, ProviderError};
use subtle::ConstantTimeEq;

use super::integration::Integration;
use super::secret::Secret;

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // new_from_slice accepts keys of any length for HMAC; the error arm is unreachable
    // but handled without a panic.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return [0; 32];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The header's value, or `MissingHeader`.
pub fn require_header<'a>(
    provider: &str,
    req: &'a InboundRequest,
    name: &str,
) -> Result<&'a str, ProviderError> {
    req.header(name)
        .ok_or_else(|| ProviderError::MissingHeader {
            provider: provider.to_string(),
            header: name.to_string(),
        })
}

/// `MalformedHeader` for `header`.
pub fn malformed_header(provider: &str, header: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::MalformedHeader {
        provider: provider.to_string(),
        header: header.to_string(),
        message: message.into(),
    }
}

/// `BadSignature`.
pub fn bad_signature(provider: &str) -> ProviderError {
    ProviderError::BadSignature {
        provider: provider.to_string(),
    }
}

/// Checks a hex HMAC-SHA256 carried in header `header` (after stripping `prefix`,
/// e.g. `sha256=`) against `HMAC(key, parts…)`.
pub fn verify_hex_hmac(
    provider: &str,
    req: &InboundRequest,
    header: &str,
    prefix: &str,
    key: &Secret,
    parts: &[&[u8]],
) -> Result<(), ProviderError> {
    let value = require_header(provider, req, header)?.trim();
    let hex_sig = value
        .strip_prefix(prefix)
        .ok_or_else(|| malformed_header(provider, header, format!("expected prefix {prefix:?}")))?;
    let given = hex::decode(hex_sig)
        .map_err(|_| malformed_header(provider, header, "signature is not hex"))?;
    if given.len() != 32 {
        return Err(malformed_header(
            provider,
            header,
            format!("expected 32 bytes of HMAC-SHA256, got {}", given.len()),
        ));
    }
    let want = hmac_sha256(key.expose().as_bytes(), parts);
    if ct_eq(&given, &want) {
        Ok(())
    } else {
        Err(bad_signature(provider))
    }
}

/// Checks a Unix-seconds timestamp header against `now ± window`.
/// Returns the timestamp text (as signed) on success.
pub fn check_replay_window<'a>(
    provider: &str,
    req: &'a InboundRequest,
    header: &str,
    now: Timestamp,
    window: SignedDuration,
) -> Result<&'a str, ProviderError> {
    let raw = require_header(provider, req, header)?.trim();
    let secs: i64 = raw
        .parse()
        .map_err(|_| malformed_header(provider, header, "expected Unix seconds"))?;
    let at = Timestamp::from_second(secs)
        .map_err(|_| malformed_header(provider, header, "timestamp out of range"))?;
    check_window(provider, at, now, window)?;
    Ok(raw)
}

/// `Expired` unless `at` is within `window` of `now` (either side: clocks skew).
pub fn check_window(
    provider: &str,
    at: Timestamp,
    now: Timestamp,
    window: SignedDuration,
) -> Result<(), ProviderError> {
    let age = now.duration_since(at).abs();
    if age > window {
        return Err(ProviderError::Expired {
            provider: provider.to_string(),
        });
    }
    Ok(())
}

/// Token-style authentication shared by sources whose tools send a static credential
/// (Alertmanager `http_config`, Grafana's Authorization header / basic auth, Datadog
/// custom headers, generic webhooks).
///
/// Secrets: `bearer_token` (`Authorization: Bearer <token>`), `basic_auth`
/// (`user:password`, checked against `Authorization: Basic …`) and `token` (the raw
/// value of a custom header, `token_header`). When several are configured, a request
/// passing any one is accepted. With none configured the source accepts unauthenticated
/// requests (the tool cannot sign).
#[derive(Debug, Clone, Default)]
pub struct TokenAuth {
    bearer: Option<Secret>,
    basic: Option<Secret>,
    token: Option<(String, Secret)>,
}

/// Secret names understood by [`TokenAuth`].
pub const TOKEN_AUTH_SECRETS: &[&str] = &["bearer_token", "basic_auth", "token"];

impl TokenAuth {
    /// Reads the secrets of `integration`. `token_header` names the header that carries
    /// the `token` secret.
    pub fn from_integration(
        provider: &str,
        integration: &Integration,
        token_header: &str,
    ) -> Result<Self, ProviderError> {
        let basic = integration.secret("basic_auth").cloned();
        if let Some(b) = &basic {
            match b.expose().split_once(':') {
                Some((user, _)) if !user.is_empty() => {}
                _ => {
                    return Err(ProviderError::InvalidConfig {
                        provider: provider.to_string(),
                        field: "secrets.basic_auth".into(),
                        message: "expected \"user:password\"".into(),
                    });
                }
            }
        }
        if token_header.is_empty() || !token_header.bytes().all(is_header_name_byte) {
            return Err(ProviderError::InvalidConfig {
                provider: provider.to_string(),
                field: "options.token_header".into(),
                message: "not a valid HTTP header name".into(),
            });
        }
        Ok(TokenAuth {
            bearer: integration.secret("bearer_token").cloned(),
            basic,
            token: integration
                .secret("token")
                .cloned()
                .map(|s| (token_header.to_string(), s)),
        })
    }

    /// True when at least one credential is configured.
    pub fn is_configured(&self) -> bool {
        self.bearer.is_some() || self.basic.is_some() || self.token.is_some()
    }

    /// Checks the request; `Ok` when nothing is configured.
    pub fn verify(&self, provider: &str, req: &InboundRequest) -> Result<(), ProviderError> {
        if !self.is_configured() {
            return Ok(());
        }
        let mut first_err = None;
        let mut note = |e: ProviderError| {
            first_err.get_or_insert(e);
        };
        if let Some((header, want)) = &self.token {
            match req.header(header) {
                Some(v) if ct_eq(v.trim().as_bytes(), want.expose().as_bytes()) => return Ok(()),
                Some(_) => note(bad_signature(provider)),
                None => note(ProviderError::MissingHeader {
                    provider: provider.to_string(),
                    header: header.clone(),
                }),
            }
        }
        if self.bearer.is_some() || self.basic.is_some() {
            match req.header("authorization") {
                None => note(ProviderError::MissingHeader {
                    provider: provider.to_string(),
                    header: "Authorization".into(),
                }),
                Some(v) => match self.check_authorization(provider, v.trim()) {
                    Ok(()) => return Ok(()),
                    Err(e) => note(e),
                },
            }
        }
        Err(first_err.unwrap_or_else(|| bad_signature(provider)))
    }

    fn check_authorization(&self, provider: &str, value: &str) -> Result<(), ProviderError> {
        let (scheme, cred) = value.split_once(' ').ok_or_else(|| {
            malformed_header(
                provider,
                "Authorization",
                "expected \"<scheme> <credentials>\"",
            )
        })?;
        let cred = cred.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(want) = &self.bearer
                && ct_eq(cred.as_bytes(), want.expose().as_bytes())
            {
                return Ok(());
            }
            return Err(bad_signature(provider));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(cred)
                .map_err(|_| {
                    malformed_header(
                        provider,
                        "Authorization",
                        "basic credentials are not base64",
                    )
                })?;
            if let Some(want) = &self.basic
                && ct_eq(&decoded, want.expose().as_bytes())
            {
                return Ok(());
            }
            return Err(bad_signature(provider));
        }
        Err(malformed_header(
            provider,
            "Authorization",
            "scheme must be Bearer or Basic",
        ))
    }
}

fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's published test vector ("Validating webhook deliveries", docs.github.com):
    /// secret "It's a Secret to Everybody", payload "Hello, World!".
    #[test]
    fn github_published_test_vector() {
        let req = InboundRequest::from_body("Hello, World!").with_header(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        );
        let key = Secret::new("It's a Secret to Everybody");
        verify_hex_hmac(
            "github",
            &req,
            "X-Hub-Signature-256",
            "sha256=",
            &key,
            &[&req.body],
        )
        .unwrap();
        let wrong = Secret::new("It's a Secret to Nobody");
        assert_eq!(
            verify_hex_hmac(
                "github",
                &req,
                "X-Hub-Signature-256",
                "sha256=",
                &wrong,
                &[&req.body]
            ),
            Err(bad_signature("github"))
        );
    }

    #[test]
    fn replay_window_is_symmetric() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let w = SignedDuration::from_secs(300);
        let req = |t: i64| InboundRequest::default().with_header("ts", t.to_string());
        assert!(check_replay_window("p", &req(1_700_000_000 - 300), "ts", now, w).is_ok());
        assert!(check_replay_window("p", &req(1_700_000_000 + 299), "ts", now, w).is_ok());
        assert!(matches!(
            check_replay_window("p", &req(1_700_000_000 - 301), "ts", now, w),
            Err(ProviderError::Expired { .. })
        ));
        assert!(matches!(
            check_replay_window("p", &req(1_700_000_000 + 3600), "ts", now, w),
            Err(ProviderError::Expired { .. })
        ));
        let bad = InboundRequest::default().with_header("ts", "soon");
        assert!(matches!(
            check_replay_window("p", &bad, "ts", now, w),
            Err(ProviderError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn token_auth_accepts_any_configured_credential() {
        let i = Integration::new("generic", "g")
            .with_secret("bearer_token", "tok")
            .with_secret("basic_auth", "user:pw");
        let auth = TokenAuth::from_integration("generic", &i, "X-Token").unwrap();
        let basic = base64::engine::general_purpose::STANDARD.encode("user:pw");
        let ok_basic =
            InboundRequest::default().with_header("Authorization", format!("Basic {basic}"));
        let ok_bearer = InboundRequest::default().with_header("authorization", "Bearer tok");
        assert!(auth.verify("generic", &ok_basic).is_ok());
        assert!(auth.verify("generic", &ok_bearer).is_ok());
        let wrong = InboundRequest::default().with_header("Authorization", "Bearer nope");
        assert_eq!(
            auth.verify("generic", &wrong),
            Err(bad_signature("generic"))
        );
        assert!(matches!(
            auth.verify("generic", &InboundRequest::default()),
            Err(ProviderError::MissingHeader { .. })
        ));
        let garbage = InboundRequest::default().with_header("Authorization", "Basic !!!");
        assert!(matches!(
            auth.verify("generic", &garbage),
            Err(ProviderError::MalformedHeader { .. })
        ));
    }
}
