//! The inbound seam: a [`Provider`] turns one HTTP request from a monitoring
//! tool into normalized [`Event`]s.

use jiff::Timestamp;
use thiserror::Error;

use crate::model::Event;

/// An inbound request as the provider sees it: headers, body, and the URL it was
/// received on (some signature schemes sign the URL).
#[derive(Debug, Clone, Default)]
pub struct InboundRequest {
    /// Header `(name, value)` pairs; names compare case-insensitively.
    pub headers: Vec<(String, String)>,
    /// The raw body bytes.
    pub body: Vec<u8>,
    /// The full URL the request was received on, if known.
    pub url: Option<String>,
    /// When the request was received, if known. Providers use it as the event time
    /// when the payload carries none (e.g. a PagerDuty change event without
    /// `payload.timestamp`), which keeps `parse` free of clock reads.
    pub received_at: Option<Timestamp>,
}

impl InboundRequest {
    /// A request with just a body.
    pub fn from_body(body: impl Into<Vec<u8>>) -> Self {
        InboundRequest {
            body: body.into(),
            ..Default::default()
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the receive time.
    pub fn received_at(mut self, at: Timestamp) -> Self {
        self.received_at = Some(at);
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why an inbound request was rejected. Messages never contain secrets.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderError {
    /// No provider of this type is registered.
    #[error("unknown provider type {0:?}")]
    UnknownProvider(String),
    /// The integration's configuration is invalid (missing or malformed secret, bad option).
    #[error("{provider}: invalid integration config at {field}: {message}")]
    InvalidConfig {
        /// Provider type.
        provider: String,
        /// Config field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A required authentication header is absent.
    #[error("{provider}: missing header {header}")]
    MissingHeader {
        /// Provider type.
        provider: String,
        /// Header name.
        header: String,
    },
    /// An authentication header is present but unparseable.
    #[error("{provider}: malformed header {header}: {message}")]
    MalformedHeader {
        /// Provider type.
        provider: String,
        /// Header name.
        header: String,
        /// What is wrong.
        message: String,
    },
    /// The signature or token does not match.
    #[error("{provider}: signature mismatch")]
    BadSignature {
        /// Provider type.
        provider: String,
    },
    /// The signed timestamp is outside the replay window.
    #[error("{provider}: timestamp outside the replay window")]
    Expired {
        /// Provider type.
        provider: String,
    },
    /// The body is larger than the configured limit.
    #[error("{provider}: payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Provider type.
        provider: String,
        /// Body size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The body is not what the provider sends (bad JSON, wrong type, missing field).
    #[error("{provider}: malformed payload at {field}: {message}")]
    Malformed {
        /// Provider type.
        provider: String,
        /// JSON path or field name at fault (`$` for the whole body).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The request is authentic but this integration does not accept it (an SNS topic
    /// not in the allow-list, a PagerDuty routing key of another integration).
    #[error("{provider}: not accepted by this integration: {message}")]
    Unauthorized {
        /// Provider type.
        provider: String,
        /// What is not allowed (never a secret).
        message: String,
    },
    /// The request is valid but carries nothing to ingest (e.g. an SNS
    /// SubscriptionConfirmation the operator must act on). Not an error for HTTP: 200.
    #[error("{provider}: {message}")]
    NothingToIngest {
        /// Provider type.
        provider: String,
        /// What arrived instead.
        message: String,
    },
    /// The key needed to check a signature (e.g. the SNS signing certificate named by
    /// `SigningCertURL`) is not configured or cached. The caller may fetch it (from an
    /// allowed host only) and retry.
    #[error("{provider}: signing certificate {url} is not available")]
    CertificateUnavailable {
        /// Provider type.
        provider: String,
        /// The certificate URL the request names (already checked against the allowed hosts).
        url: String,
    },
}

impl ProviderError {
    /// A short, stable name of the variant (`malformed`, `bad_signature`, …), used by
    /// golden fixtures and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::UnknownProvider(_) => "unknown_provider",
            ProviderError::InvalidConfig { .. } => "invalid_config",
            ProviderError::MissingHeader { .. } => "missing_header",
            ProviderError::MalformedHeader { .. } => "malformed_header",
            ProviderError::BadSignature { .. } => "bad_signature",
            ProviderError::Expired { .. } => "expired",
            ProviderError::TooLarge { .. } => "too_large",
            ProviderError::Malformed { .. } => "malformed",
            ProviderError::Unauthorized { .. } => "unauthorized",
            ProviderError::NothingToIngest { .. } => "nothing_to_ingest",
            ProviderError::CertificateUnavailable { .. } => "certificate_unavailable",
        }
    }

    /// True for failures of authenticity (the HTTP layer answers 401).
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            ProviderError::MissingHeader { .. }
                | ProviderError::MalformedHeader { .. }
                | ProviderError::BadSignature { .. }
                | ProviderError::Expired { .. }
                | ProviderError::Unauthorized { .. }
                | ProviderError::CertificateUnavailable { .. }
        )
    }
}

/// An inbound integration type (Alertmanager, Grafana, GitHub, …).
///
/// Contract:
/// * `verify` checks authenticity only (signature, token, replay window) in constant time
///   and reads nothing but headers, body, `now` and key material held by the provider
///   (configured secrets, certificate caches); it never does I/O and never panics on any
///   input. A provider built without verification (an operator's explicit choice, e.g.
///   `signalcraft normalize --no-verify`) accepts every request here.
/// * `parse` turns the body into zero or more events; it is pure, never panics and never
///   hangs on any input, and rejects bodies over the configured size limit with
///   [`ProviderError::TooLarge`] before decoding them.
/// * Both are deterministic: the same request gives the same result (providers that must
///   invent an identity, such as a PagerDuty trigger without `dedup_key`, derive it from
///   the request bytes).
/// * The trait is object-safe: registries hold `Box<dyn Provider>`.
pub trait Provider: Send + Sync {
    /// The provider type name, e.g. `alertmanager`.
    fn provider_type(&self) -> &str;

    /// Checks the request's authenticity.
    fn verify(&self, req: &InboundRequest, now: Timestamp) -> Result<(), ProviderError>;

    /// Parses the request into normalized events.
    fn parse(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError>;

    /// `verify` then `parse`.
    fn ingest(&self, req: &InboundRequest, now: Timestamp) -> Result<Vec<Event>, ProviderError> {
        self.verify(req, now)?;
        self.parse(req)
    }
}
