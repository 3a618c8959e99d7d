//! The `signalcraft` binary.

fn main() {
    eprintln!("signalcraft: no subcommands yet");
    std::process::exit(2);
}
