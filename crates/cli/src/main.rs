//! The `baton` binary: a thin layer of subcommands over the library crates.

mod commands;
mod load;
mod logging;

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
    /// Run workflow test files (`*.test.json`) with mocks, signals and virtual time.
    ///
    /// Runs in this process, with no services: nodes named in `mocks` return their mocked
    /// outputs or errors instead of running, `signals` are delivered to signal waits, and
    /// timers, waits and timeouts pass in virtual time. Each case's `expect` (status, context
    /// subset, ran / not_ran, attempts, error) is checked and every mismatch printed with its
    /// JSON path. File format: rfcs/0010-workflow-tests.md.
    ///
    /// Exit 0 when every case passes, 1 when one fails, 2 when a test file is invalid or no
    /// test file is found.
    Test(commands::test::TestArgs),
    /// Check a workflow definition and report every problem.
    Validate(commands::validate::ValidateArgs),
    /// List node types with their parameters.
    Nodes(commands::nodes::NodesArgs),
    /// Print the workflow DSL's JSON Schema (docs/workflow.schema.json), for editors.
    Schema(commands::schema::SchemaArgs),
    /// Run the stateless worker service (RabbitMQ + Redis).
    Worker(commands::worker::WorkerArgs),
    /// Start a workflow on the worker pool (or a master, with --master); with --wait, follow it
    /// to its completion.
    Submit(commands::submit::SubmitArgs),
    /// Deliver a named signal to an execution (worker pool, or a master with --master).
    Signal(commands::signal::SignalArgs),
    /// Dead letters: list, show, replay after a fix, purge.
    Dlq(commands::dlq::DlqArgs),
    /// Cancel a running execution (worker pool, or a master with --master).
    Cancel(commands::cancel::CancelArgs),
    /// Exit 0 if a health endpoint answers 2xx.
    Healthcheck(commands::healthcheck::HealthcheckArgs),
    /// List executions known to a master (newest first).
    Executions(commands::executions::ExecutionsArgs),
    /// Follow an execution on a master live, node by node, to its end.
    Watch(commands::watch::WatchArgs),
    /// Run the master service: HTTP API, history, triggers, dashboard (RabbitMQ + Redis).
    Master(commands::master::MasterArgs),
    /// Run the master and a pool of workers in this process (no RabbitMQ or Redis needed).
    Dev(commands::dev::DevArgs),
    /// Measure hop latency and throughput (distributed and embedded) against the targets.
    Bench(commands::bench::BenchArgs),
    /// Print a role's effective configuration (defaults, file, BATON_* variables), secrets
    /// redacted.
    Config(commands::config::ConfigArgs),
    /// Print a generated reference: docs/cli.md or docs/config.md.
    #[command(hide = true)]
    Docs(commands::docs::DocsArgs),
}

const SANDBOX_SUBCOMMAND: &str = "sandbox";

fn main() -> ExitCode {
    // `baton sandbox` (hidden): a `code` node's child process. Dispatched before anything
    // else so the child starts no runtime, logger or thread before capping itself.
    if std::env::args().nth(1).as_deref() == Some(SANDBOX_SUBCOMMAND) {
        return baton_sandbox::child::main(std::env::args().skip(2));
    }
    let cli = Cli::parse();
    // Services and `baton run` set up their logs with their traces, inside their runtime.
    if !matches!(
        cli.command,
        Command::Worker(_) | Command::Master(_) | Command::Run(_)
    ) {
        if matches!(cli.command, Command::Test(_)) {
            logging::init_test();
        } else {
            logging::init_cli(None);
        }
    }
    // One environment serves every role: another role's variables are ignored, a name no role
    // knows is refused before anything starts (the settings loaders check it too).
    if !matches!(cli.command, Command::Docs(_))
        && let Err(e) = baton_settings::check_environment()
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Test(args) => commands::test::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Nodes(args) => commands::nodes::run(args),
        Command::Schema(args) => commands::schema::run(args),
        Command::Worker(args) => commands::worker::run(args),
        Command::Submit(args) => commands::submit::run(args),
        Command::Healthcheck(args) => commands::healthcheck::run(args),
        Command::Cancel(args) => commands::cancel::run(args),
        Command::Dlq(args) => commands::dlq::run(args),
        Command::Signal(args) => commands::signal::run(args),
        Command::Executions(args) => commands::executions::run(args),
        Command::Watch(args) => commands::watch::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Master(args) => commands::master::run(args),
        Command::Dev(args) => commands::dev::run(args),
        Command::Config(args) => commands::config::run(args),
        Command::Docs(args) => commands::docs::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
