//! Log setup: human logs on stderr for the CLI, JSON logs on stdout for services.

use tracing_subscriber::EnvFilter;

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// The CLI: human format on stderr, colours only on a terminal. `RUST_LOG=info` shows `log` nodes.
pub fn init_cli() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter("warn"))
        .try_init();
}

/// `baton test`: nothing unless `RUST_LOG` asks (the `log` nodes of the workflows under test
/// would drown the report).
pub fn init_test() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter("off"))
        .try_init();
}

/// Services: one JSON object per line with span fields (execution_id, node_id, …), or human.
pub fn init_service(format: &str) {
    if format == "human" {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter("info"))
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter("info"))
            .try_init();
    }
}
