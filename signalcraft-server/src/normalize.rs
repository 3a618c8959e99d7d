//! `signalcraft normalize`: read one request body on stdin, verify and parse it with a
//! provider, print the normalized events as JSON Lines.

use std::io::{Read, Write};

/// Arguments of `signalcraft normalize`.
#[derive(Debug, clap::Args)]
pub struct NormalizeArgs {
    /// Provider type (alertmanager, grafana, cloudwatch, github, gitlab, sentry, datadog, pagerduty, generic).
    #[arg(long)]
    pub provider: String,
}

/// Runs the subcommand; returns the process exit code.
pub fn run(
    args: &NormalizeArgs,
    stdin: &mut dyn Read,
    _stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let mut body = Vec::new();
    if let Err(e) = stdin.read_to_end(&mut body) {
        let _ = writeln!(stderr, "error: reading stdin: {e}");
        return 1;
    }
    let _ = writeln!(stderr, "error: unknown provider type {:?}", args.provider);
    1
}
