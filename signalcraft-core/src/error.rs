//! The core crate's error type.

use thiserror::Error;

use crate::store::StoreError;

/// Errors returned by `signalcraft-core`'s public entry points.
///
/// Messages name the config path or field at fault; none contain secrets.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A configuration value is invalid. `path` is the config path, e.g. `routes[2].matchers[0]`.
    #[error("invalid config at {path}: {message}")]
    InvalidConfig {
        /// Config path of the offending value.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// An input value (API argument, event field) is invalid.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// An incident state transition that the state machine does not allow.
    #[error("invalid incident transition from {from} to {to}")]
    InvalidTransition {
        /// Current state.
        from: String,
        /// Requested state.
        to: String,
    },
    /// The named object does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Object kind, e.g. `incident`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The actor may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Every delivery step for a notification failed (after retries and failover).
    #[error("delivery via {channel} failed: {reason}")]
    Delivery {
        /// The receiver / channel instance that was tried last.
        channel: String,
        /// Redacted reason of the last failure.
        reason: String,
    },
    /// Persistence failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CoreError {
    /// Shorthand for [`CoreError::InvalidConfig`].
    pub fn config(path: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::InvalidConfig {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`CoreError::InvalidInput`].
    pub fn input(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Result alias for core operations.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
