//! `signalcraft normalize`: read one request body on stdin, verify and parse it with a
//! provider, print the normalized events as JSON Lines — the operator's answer to
//! "what does SignalCraft make of this payload?" (like Alertmanager's `amtool`).
//!
//! Exit status: 0 when the request verified and parsed (including a request with
//! nothing to ingest, e.g. an SNS SubscriptionConfirmation, which is reported on
//! stderr); 1 on any bad input, with the typed error on stderr. Never panics on input.

use std::io::{Read, Write};

use jiff::Timestamp;
use signalcraft_core::provider::{InboundRequest, ProviderError};
use signalcraft_providers::sources::{Integration, Registry, Verification};

/// Arguments of `signalcraft normalize`.
#[derive(Debug, clap::Args)]
pub struct NormalizeArgs {
    /// Provider type (alertmanager, grafana, cloudwatch, github, gitlab, sentry, datadog, pagerduty, generic).
    #[arg(long)]
    pub provider: String,
    /// A request header, `Name: value` (repeatable), e.g. `--header 'X-GitHub-Event: push'`.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The provider's main secret (GitHub webhook secret, GitLab token, Sentry client
    /// secret, PagerDuty routing key, …) as a value or `env:NAME`.
    #[arg(long)]
    pub secret: Option<String>,
    /// Parse without checking signatures or tokens.
    #[arg(long)]
    pub no_verify: bool,
    /// Source options as JSON, or `@path` to a JSON file (e.g. the generic field mapping,
    /// CloudWatch `certificates`).
    #[arg(long, value_name = "JSON|@FILE")]
    pub options: Option<String>,
    /// Integration key stamped on the events.
    #[arg(long, default_value = "cli")]
    pub integration_key: String,
    /// Body size limit in bytes.
    #[arg(long, default_value_t = signalcraft_providers::sources::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Verification time (RFC 3339) for replay windows; defaults to now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Omit raw payloads from the printed events.
    #[arg(long)]
    pub no_raw: bool,
}

/// Why the command failed (printed on stderr).
#[derive(Debug, thiserror::Error)]
enum NormalizeError {
    #[error("{0} (kind: {kind})", kind = .0.kind())]
    Provider(#[from] ProviderError),
    #[error("{0}")]
    Usage(String),
}

/// Runs the subcommand; returns the process exit code.
pub fn run(
    args: &NormalizeArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    match run_inner(args, stdin, stdout, stderr) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            1
        }
    }
}

fn run_inner(
    args: &NormalizeArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), NormalizeError> {
    let registry = Registry::builtin();
    let source_type = registry.get(&args.provider)?;
    let mut integration = Integration::new(args.provider.clone(), args.integration_key.clone())
        .with_max_body_bytes(args.max_body_bytes);
    integration.keep_raw = !args.no_raw;
    if let Some(opts) = &args.options {
        integration.options = read_options(opts)?;
    }
    if let Some(secret) = &args.secret {
        let name = source_type.primary_secret().ok_or_else(|| {
            NormalizeError::Usage(format!("provider {} takes no --secret", args.provider))
        })?;
        integration = integration.with_secret(name, resolve_secret(secret)?);
    }
    let verification = if args.no_verify {
        Verification::Skip
    } else {
        Verification::Verify
    };
    let provider = source_type.build(&integration, verification)?;

    // Read at most one byte over the limit: enough to report TooLarge without
    // buffering an unbounded stdin.
    let mut body = Vec::new();
    let cap = u64::try_from(args.max_body_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    stdin
        .take(cap)
        .read_to_end(&mut body)
        .map_err(|e| NormalizeError::Usage(format!("reading stdin: {e}")))?;

    let now = match &args.now {
        Some(t) => t
            .parse::<Timestamp>()
            .map_err(|e| NormalizeError::Usage(format!("--now {t:?}: {e}")))?,
        None => Timestamp::now(),
    };
    let mut req = InboundRequest::from_body(body).received_at(now);
    for h in &args.headers {
        let (name, value) = h.split_once(':').ok_or_else(|| {
            NormalizeError::Usage(format!("--header {h:?}: expected \"Name: value\""))
        })?;
        req = req.with_header(name.trim(), value.trim());
    }

    let events = match provider.ingest(&req, now) {
        Ok(events) => events,
        Err(ProviderError::NothingToIngest { provider, message }) => {
            let _ = writeln!(stderr, "note: {provider}: nothing to ingest: {message}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    for e in &events {
        let line = serde_json::to_string(e)
            .map_err(|err| NormalizeError::Usage(format!("serializing an event: {err}")))?;
        writeln!(stdout, "{line}")
            .map_err(|err| NormalizeError::Usage(format!("writing stdout: {err}")))?;
    }
    Ok(())
}

fn read_options(arg: &str) -> Result<serde_json::Value, NormalizeError> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| NormalizeError::Usage(format!("--options {path}: {e}")))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text)
        .map_err(|e| NormalizeError::Usage(format!("--options is not JSON: {e}")))
}

fn resolve_secret(arg: &str) -> Result<String, NormalizeError> {
    match arg.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| {
            NormalizeError::Usage(format!(
                "--secret env:{name}: environment variable is not set"
            ))
        }),
        None => Ok(arg.to_string()),
    }
}
