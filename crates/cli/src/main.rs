//! The `baton` binary: a thin layer of subcommands over the library crates.

mod commands;
mod load;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "baton", version, about = "Baton workflow engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a workflow in this process (embedded mode) and print its final context.
    Run(commands::run::RunArgs),
    /// Check a workflow definition and report every problem.
    Validate(commands::validate::ValidateArgs),
    /// List node types with their parameters.
    Nodes(commands::nodes::NodesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Human logs on stderr for the CLI; `RUST_LOG=info` shows what `log` nodes write.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Nodes(args) => commands::nodes::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
