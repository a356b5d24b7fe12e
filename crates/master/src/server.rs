//! The HTTP server's accept loop, hardened against slow and numerous clients (RFC 0008):
//! a header-read deadline on every connection (new or idle keep-alive), a connection limit
//! with a small reserve of short-deadline slots (so `/healthz` stays reachable when the limit
//! is full of slow clients), and accept errors (`EMFILE`) that back off instead of spinning.
//! The request timeout and body limit are middleware of the router (`api::guard`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics_names as m;

/// Connections served beyond `max_connections`, each with [`RESERVE_HEADER_TIMEOUT`] and no
/// keep-alive: enough for health probes and an operator while the limit is full.
pub const RESERVE_CONNECTIONS: usize = 16;
/// The header deadline of a reserve connection.
pub const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_millis(500);
/// The pause after an accept error (`EMFILE`, `ENFILE`, `ENOBUFS`) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long open connections may finish their requests after shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// The server's timeouts and limits (`BATON_MASTER_*`; see `settings.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// A connection must send a whole request head within this (first request and every
    /// keep-alive request after it); otherwise it is closed.
    pub header_timeout: Duration,
    /// Reading the body and running the handler; longer answers 408.
    pub request_timeout: Duration,
    /// Open connections; beyond (and the reserve), new connections are closed at once.
    pub max_connections: usize,
    /// Larger bodies answer 413.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        crate::MasterSettings::default().http_limits()
    }
}

/// A connection's place: held until the connection ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    /// From the reserve: a short header deadline, no keep-alive.
    reserve: bool,
}

/// Accepts connections on `listener` and serves `app` on each until `shutdown`; then stops
/// accepting and lets open connections finish (bounded by [`DRAIN`]).
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    shutdown: CancellationToken,
) {
    warn_if_file_limit_is_low(limits);
    let main = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(RESERVE_CONNECTIONS));
    let connections = TaskTracker::new();
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors (or a connection reset before accept): retrying at
                // once would spin; the descriptors come back as connections time out.
                metrics::counter!(m::HTTP_ACCEPT_ERRORS).increment(1);
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let slot = match main.clone().try_acquire_owned() {
            Ok(p) => Slot {
                _permit: p,
                reserve: false,
            },
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(p) => Slot {
                    _permit: p,
                    reserve: true,
                },
                Err(_) => {
                    metrics::counter!(m::HTTP_CONNECTIONS_REFUSED).increment(1);
                    refused += 1;
                    if refused % 1000 == 1 {
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            "connection limit reached: closing new connections (BATON_MASTER_MAX_CONNECTIONS)"
                        );
                    }
                    drop(stream);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (header_timeout, keep_alive) = if slot.reserve {
            (limits.header_timeout.min(RESERVE_HEADER_TIMEOUT), false)
        } else {
            (limits.header_timeout, true)
        };
        let service = TowerToHyperService::new(app.clone());
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(keep_alive);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => log_connection_end(result),
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    if let Ok(result) = tokio::time::timeout(DRAIN, conn.as_mut()).await {
                        log_connection_end(result);
                    }
                }
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(DRAIN + Duration::from_secs(1), connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish after shutdown; dropping them");
    }
}

/// Descriptors the master needs besides its HTTP connections (Redis, RabbitMQ, logs…).
const OTHER_DESCRIPTORS: usize = 64;

/// The soft limit on open files (`ulimit -n`), from `/proc/self/limits` (Linux).
fn file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A connection limit the file limit cannot hold would end in `EMFILE` instead of a refusal.
fn warn_if_file_limit_is_low(limits: &HttpLimits) {
    let needed = limits.max_connections + RESERVE_CONNECTIONS + OTHER_DESCRIPTORS;
    if let Some(soft) = file_limit()
        && soft < needed
    {
        tracing::warn!(
            file_limit = soft,
            max_connections = limits.max_connections,
            "the open-file limit (ulimit -n) is below BATON_MASTER_MAX_CONNECTIONS + {}: raise it or lower the setting",
            RESERVE_CONNECTIONS + OTHER_DESCRIPTORS
        );
    }
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Header timeouts, resets and malformed requests: the client's doing, not an error of
        // the master.
        tracing::debug!(error = %e, "connection ended");
    }
}
