//! The `signalcraft` binary: the reference server and its operator tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Verify and parse one inbound payload (stdin) and print the normalized events as JSON Lines.
    Normalize(signalcraft_server::normalize::NormalizeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Normalize(args) => signalcraft_server::normalize::run(
            &args,
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
