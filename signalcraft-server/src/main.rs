//! The `signalcraft` binary: the reference server and its operator tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: under the ingest load glibc's malloc/free
/// (`_int_malloc`, `unlink_chunk`, `malloc_consolidate`, …) took about a fifth of the
/// server's CPU, and its per-thread arenas kept freed request buffers as RSS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "signalcraft",
    version,
    about = "SignalCraft alerting, paging and incident management"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server. Without --config it starts on 127.0.0.1:9093 with an embedded
    /// store in ./signalcraft-data and writes a commented default config next to it.
    Serve(signalcraft_server::server::ServeArgs),
    /// Validate a config file and print every error with its path.
    CheckConfig {
        /// Output: `text` (errors on stderr) or `json` (an array of {path, message} on stdout).
        #[arg(long, value_enum, default_value_t = signalcraft_server::server::CheckFormat::Text)]
        format: signalcraft_server::server::CheckFormat,
        /// The config file.
        file: PathBuf,
    },
    /// Apply config-as-code (services, users, teams, schedules, escalation policies)
    /// to the store: print the plan, then apply it unless --dry-run.
    Apply(signalcraft_server::apply::ApplyArgs),
    /// Verify and parse one inbound payload (stdin) and print the normalized events as JSON Lines.
    Normalize(signalcraft_server::normalize::NormalizeArgs),
}

/// Turns transparent huge pages off for this process. mimalloc asks the kernel for
/// huge pages on its arenas (`MADV_HUGEPAGE`), so every first touch of an arena
/// region faulted in and zeroed 2 MiB: ~8% of the server's CPU samples under the
/// ingest load (`clear_page_erms`) and ~27 MiB more peak RSS in the side-by-side
/// benchmark (447–450 vs 476 MiB, same minute, with `MIMALLOC_ALLOW_THP=0`).
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) takes integer arguments only and
    // changes a per-process flag; no memory is passed to the kernel.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => signalcraft_server::server::main(args),
        Command::CheckConfig { format, file } => signalcraft_server::server::check_config_main_as(
            &file,
            format,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ),
        Command::Apply(args) => signalcraft_server::apply::main(
            &args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ),
        Command::Normalize(args) => signalcraft_server::normalize::run(
            &args,
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
