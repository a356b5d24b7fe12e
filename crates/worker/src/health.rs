//! The admin HTTP server: `/healthz` (the process answers), `/readyz` (broker usable, the
//! execution consumer alive with a free slot, hops progressing, the event publisher not stuck,
//! Redis answering, not draining; the body says why not), `/metrics` (Prometheus).
//!
//! It runs on a runtime of its own, on its own thread: a worker runtime whose threads are all
//! blocked (on a wedged lapin lock, say) must not take the liveness probe down with it, and
//! `/readyz` reads atomics plus one bounded Redis PING, so it never waits on lapin.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::service::{Worker, WorkerError};

#[derive(Clone)]
struct AdminState {
    worker: Arc<Worker>,
    metrics: PrometheusHandle,
}

/// Installs the Prometheus recorder (once per process).
pub fn install_metrics() -> Result<PrometheusHandle, WorkerError> {
    let buckets = [
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets(&buckets)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(crate::metrics_names::HOP_MESSAGE_BYTES.to_owned()),
                &crate::metrics_names::HOP_MESSAGE_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(crate::metrics_names::TIMER_LAG.to_owned()),
                &crate::metrics_names::LAG_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(crate::metrics_names::QUEUE_LAG.to_owned()),
                &crate::metrics_names::LAG_BUCKETS,
            )
        })
        .and_then(|b| b.install_recorder())
        .map_err(|e| WorkerError::Http(format!("metrics recorder: {e}")))?;
    crate::metrics_names::describe();
    Ok(handle)
}

/// Serves the admin endpoints on `port` until `shutdown`, on a dedicated thread and runtime.
pub async fn serve(
    worker: Arc<Worker>,
    metrics: PrometheusHandle,
    port: u16,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("baton-admin".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| WorkerError::Http(format!("admin runtime: {e}")))
                .and_then(|rt| rt.block_on(serve_here(worker, metrics, port, shutdown)));
            let _ = done_tx.send(result);
        })
        .map_err(|e| WorkerError::Http(format!("admin thread: {e}")))?;
    done_rx
        .await
        .unwrap_or_else(|_| Err(WorkerError::Http("admin thread ended".into())))
}

async fn serve_here(
    worker: Arc<Worker>,
    metrics: PrometheusHandle,
    port: u16,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let upkeep = metrics.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => upkeep.run_upkeep(),
            }
        }
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|State(s): State<AdminState>| async move {
                // Readiness as a gauge, as `/readyz` would answer now (for dashboards and alerts).
                let ready = s.worker.readiness().await.is_ok();
                metrics::gauge!(crate::metrics_names::READY).set(if ready { 1.0 } else { 0.0 });
                s.metrics.render()
            }),
        )
        .with_state(AdminState { worker, metrics });
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| WorkerError::Http(format!("bind port {port}: {e}")))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| WorkerError::Http(e.to_string()))
}

async fn readyz(State(s): State<AdminState>) -> (StatusCode, String) {
    match s.worker.readiness().await {
        // On a RabbitMQ cluster the node changes after a failover: say which one serves.
        Ok(()) => match s.worker.broker.node() {
            Some(node) => (StatusCode::OK, format!("ready (RabbitMQ node {node})")),
            None => (StatusCode::OK, "ready".into()),
        },
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
    }
}
