//! Log setup: human logs on stderr for the CLI, JSON logs on stdout for services; with traces
//! exported (`OTEL_EXPORTER_OTLP_ENDPOINT`), the OpenTelemetry layer beside them. The log
//! filter (`RUST_LOG`) applies to the logs only: spans are exported whatever the log level.

use baton_telemetry::Telemetry;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// The CLI: human format on stderr, colours only on a terminal. `RUST_LOG=info` shows `log` nodes.
pub fn init_cli(telemetry: Option<&Telemetry>) {
    let Some(telemetry) = telemetry else {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(filter("warn"))
            .try_init();
        return;
    };
    let logs = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter("warn"));
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(telemetry.layer())
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
/// Without traces, the logs' filter is global (no per-layer filtering on the hop path).
pub fn init_service(format: &str, telemetry: Option<&Telemetry>) {
    let Some(telemetry) = telemetry else {
        let _ = if format == "human" {
            tracing_subscriber::fmt()
                .with_env_filter(filter("info"))
                .try_init()
        } else {
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_env_filter(filter("info"))
                .try_init()
        };
        return;
    };
    let logs = if format == "human" {
        fmt::layer().with_filter(filter("info")).boxed()
    } else {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter("info"))
            .boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(telemetry.layer())
        .try_init();
}

/// Starts exporting traces if the `OTEL_*` variables ask for it (inside the runtime the exporter
/// sends from); a bad setting is an error naming the variable.
pub fn telemetry(rt: &tokio::runtime::Runtime, service: &str) -> anyhow::Result<Option<Telemetry>> {
    let _inside = rt.enter();
    Ok(Telemetry::from_env(service)?)
}

/// Flushes the spans still buffered (on a blocking thread: the export runs on the runtime).
pub async fn flush(telemetry: Option<Telemetry>) {
    if let Some(t) = telemetry {
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
}
