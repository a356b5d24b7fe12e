//! Names of the master's Prometheus metrics, and the process-wide recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const EXECUTIONS_STARTED: &str = "baton_master_executions_started_total";
pub const EVENTS: &str = "baton_master_events_total";
pub const HTTP_REQUESTS: &str = "baton_master_http_requests_total";
pub const CRON_FIRED: &str = "baton_master_cron_fired_total";
pub const CRON_MISSED: &str = "baton_master_cron_missed_total";
pub const SSE_CLIENTS: &str = "baton_master_sse_clients";
pub const HTTP_CONNECTIONS_REFUSED: &str = "baton_master_http_connections_refused_total";
pub const HTTP_ACCEPT_ERRORS: &str = "baton_master_http_accept_errors_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The Prometheus recorder, installed once per process. If another recorder was installed
/// first (a worker in the same process), the master renders its own, empty one.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            match builder.install_recorder() {
                Ok(h) => {
                    describe();
                    h
                }
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(EXECUTIONS_STARTED, "Executions started, by trigger.");
    metrics::describe_counter!(EVENTS, "Status and completion events recorded.");
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests, by route and status.");
    metrics::describe_counter!(CRON_FIRED, "Cron ticks fired by this replica.");
    metrics::describe_counter!(
        CRON_MISSED,
        "Times a schedule had ticks more than a minute late (handled by its missed policy)."
    );
    metrics::describe_gauge!(SSE_CLIENTS, "Open event streams.");
    metrics::describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "Connections closed at once: the connection limit and its reserve were full."
    );
    metrics::describe_counter!(
        HTTP_ACCEPT_ERRORS,
        "Failed accepts (out of file descriptors); each backs off 100 ms."
    );
}
