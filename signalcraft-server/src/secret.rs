//! Secrets in config: `env:NAME` and `file:PATH` references, resolved once at load.
//!
//! A resolved [`Secret`] never prints its value (`Debug` and `Display` show
//! `<redacted>`), so secrets cannot leak through logs, errors or API responses by
//! accident; code that needs the value calls [`Secret::expose`].

use std::fmt;

/// A resolved secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (for generated secrets and tests).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a secret reference could not be resolved. Never contains the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The reference is neither `env:NAME` nor `file:PATH`.
    #[error(
        "secrets must be references: \"env:NAME\" or \"file:PATH\" (literal values are not accepted so they never end up in git)"
    )]
    NotAReference,
    /// The environment variable is not set (or not UTF-8).
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("cannot read secret file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The reference resolved to an empty value.
    #[error("secret {0} is empty")]
    Empty(String),
}

/// Resolves `env:NAME` or `file:PATH` (trailing newline of a file is dropped).
/// `lookup_env` is injected so tests need not mutate the process environment.
pub fn resolve_with(
    reference: &str,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, SecretError> {
    let value = if let Some(name) = reference.strip_prefix("env:") {
        lookup_env(name).ok_or_else(|| SecretError::MissingEnv(name.to_string()))?
    } else if let Some(path) = reference.strip_prefix("file:") {
        let raw = std::fs::read_to_string(path).map_err(|e| SecretError::File {
            path: path.to_string(),
            reason: e.kind().to_string(),
        })?;
        raw.trim_end_matches(['\r', '\n']).to_string()
    } else {
        return Err(SecretError::NotAReference);
    };
    if value.is_empty() {
        return Err(SecretError::Empty(reference.to_string()));
    }
    Ok(Secret(value))
}

/// Resolves a reference against the process environment.
pub fn resolve(reference: &str) -> Result<Secret, SecretError> {
    resolve_with(reference, &|n| std::env::var(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_file_references_resolve() {
        let env = |n: &str| (n == "SC_TEST").then(|| "s3cret".to_string());
        assert_eq!(
            resolve_with("env:SC_TEST", &env).unwrap().expose(),
            "s3cret"
        );
        assert_eq!(
            resolve_with("env:NOPE", &env),
            Err(SecretError::MissingEnv("NOPE".into()))
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "abc\n").unwrap();
        let r = format!("file:{}", p.display());
        assert_eq!(resolve_with(&r, &env).unwrap().expose(), "abc");
        assert!(matches!(
            resolve_with("file:/nonexistent/x", &env),
            Err(SecretError::File { .. })
        ));
    }

    #[test]
    fn literals_are_refused_and_values_never_print() {
        assert_eq!(
            resolve_with("hunter2", &|_| None),
            Err(SecretError::NotAReference)
        );
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }
}
