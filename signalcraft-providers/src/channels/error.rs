//! Errors of the channels module. Messages name the config path at fault and
//! never contain secrets.

use thiserror::Error;

/// Building a channel from configuration failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelError {
    /// A value is invalid (bad URL, bad port, bad template, …).
    #[error("invalid channel config at {path}: {message}")]
    InvalidConfig {
        /// Config path, e.g. `channels[2].url`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The `type` names no known channel.
    #[error("unknown channel type `{kind}` at {path} (known: {known})")]
    UnknownType {
        /// Config path of the `type` field.
        path: String,
        /// The type given.
        kind: String,
        /// Comma-separated known types.
        known: String,
    },
    /// A credential is missing or empty.
    #[error("missing credential at {path}")]
    MissingCredential {
        /// Config path of the credential.
        path: String,
    },
}

impl ChannelError {
    /// Shorthand for [`ChannelError::InvalidConfig`].
    pub fn config(path: impl Into<String>, message: impl Into<String>) -> Self {
        ChannelError::InvalidConfig {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// An inbound callback (Slack interaction, Twilio webhook) was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallbackError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The signature does not match (forged, or signed with another secret).
    #[error("signature mismatch")]
    BadSignature,
    /// The signed timestamp is outside the replay window.
    #[error("timestamp outside the {window_secs}s replay window (age {age_secs}s)")]
    Stale {
        /// Age of the request (negative: from the future).
        age_secs: i64,
        /// Allowed window.
        window_secs: i64,
    },
    /// The payload is not what the vendor documents.
    #[error("malformed callback: {0}")]
    Malformed(String),
    /// Well-formed, but not a command we understand (e.g. an SMS saying "hello").
    #[error("unrecognised command: {0}")]
    UnknownCommand(String),
}

impl CallbackError {
    /// The HTTP status a handler should answer with: 401 for authentication
    /// failures, 400 for bad payloads, 422 for unknown commands.
    pub fn http_status(&self) -> u16 {
        match self {
            CallbackError::MissingHeader(_)
            | CallbackError::BadSignature
            | CallbackError::Stale { .. } => 401,
            CallbackError::Malformed(_) => 400,
            CallbackError::UnknownCommand(_) => 422,
        }
    }
}
