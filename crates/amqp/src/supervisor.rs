//! The supervisor task: keeps a session alive, follows lapin's recovery, and rebuilds the
//! connection from scratch when that recovery fails.

use crate::error::Error;
use crate::options::redact_url;
use crate::session::{
    ATTEMPT_TIMEOUT, BACKOFF_MIN, HEALTH_TICK, Session, Shared, close_quietly, next_backoff,
    open_session,
};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

/// How long lapin may stay "reconnecting" before the supervisor gives up on it and rebuilds
/// the connection itself. A working recovery retries at least every
/// [`BACKOFF_MAX`](crate::session::BACKOFF_MAX), so it succeeds within that time once the
/// broker is back; but lapin 4.12's recovery was seen
/// stalling in its handshake (until the broker's 10 s handshake timeout, then again) after
/// attempts whose TCP connection was accepted and closed at once (a proxy without backend).
const RECOVERY_GRACE: Duration = Duration::from_secs(10);

/// How often the supervisor sends a liveness probe through lapin's I/O loop while the
/// connection looks usable.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long a liveness probe may take. A `basic.qos` round trip takes milliseconds; one that
/// does not come back while the connection looks connected and unblocked means lapin's I/O
/// loop is stuck (as in the lapin 4.12.3 lock-order deadlock, RFC 0005) or the TCP connection
/// is dead without lapin noticing yet: either way, rebuild.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the supervisor stops watching a session.
enum Verdict {
    Closed,
    Rebuild(&'static str),
}

/// Keeps a session alive: follows lapin's recovery (re-declaring the topology once it is back)
/// and rebuilds connection, channels and topology from scratch when recovery fails, takes too
/// long, or a component asks for it. Consumers re-create themselves on the new session.
pub(crate) async fn supervise(shared: Arc<Shared>, mut session: Arc<Session>) {
    loop {
        shared.vitals.beat();
        let verdict = watch_session(&shared, &session).await;
        shared.set_state(None, false);
        let old = session;
        let old_node = old.node;
        if let Verdict::Rebuild(reason) = &verdict {
            tracing::warn!(
                generation = old.generation,
                reason,
                "rebuilding the RabbitMQ connection"
            );
        }
        retire(old).await;
        if let Verdict::Closed = verdict {
            tracing::info!("RabbitMQ connection closed");
            return;
        }
        let mut delay = BACKOFF_MIN;
        // Round robin from the node after the lost one; the backoff pauses only after a whole
        // round of nodes failed (with one node: after every attempt, as before).
        let first = shared.next_node(old_node);
        let mut node = first;
        session = loop {
            shared.vitals.beat();
            if shared.closed.is_cancelled() {
                return;
            }
            let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
            let attempt = tokio::select! {
                attempt = timeout(ATTEMPT_TIMEOUT, open_session(&shared, generation, node)) => attempt,
                () = shared.closed.cancelled() => return,
            };
            let url = redact_url(&shared.nodes[node]);
            match attempt {
                Ok(Ok(session)) => break Arc::new(session),
                Ok(Err(e)) => {
                    tracing::warn!(url = %url, error = %e, "reconnecting to RabbitMQ failed")
                }
                Err(_) => {
                    tracing::warn!(url = %url, "reconnecting to RabbitMQ timed out")
                }
            }
            node = shared.next_node(node);
            if node != first {
                continue;
            }
            tracing::debug!(retry_in = ?delay, "no RabbitMQ node answered; backing off");
            tokio::select! {
                () = sleep(delay) => {}
                () = shared.closed.cancelled() => return,
            }
            delay = next_backoff(delay);
        };
        tracing::info!(
            generation = session.generation,
            url = %redact_url(&shared.nodes[session.node]),
            "reconnected to RabbitMQ, topology declared"
        );
        shared.set_state(Some(session.clone()), true);
    }
}

async fn watch_session(shared: &Shared, session: &Session) -> Verdict {
    let mut events = Box::pin(session.connection.events_listener());
    let mut tick = tokio::time::interval(HEALTH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events_ended = false;
    let mut down_since: Option<Instant> = None;
    let mut next_probe = Instant::now() + PROBE_EVERY;
    loop {
        shared.vitals.beat();
        tokio::select! {
            () = shared.closed.cancelled() => return Verdict::Closed,
            () = shared.rebuild.notified() => {
                if shared.rebuild_requested.load(Ordering::SeqCst) >= session.generation {
                    return Verdict::Rebuild("requested after a failed recovery");
                }
                if shared.redeclare_requested.swap(false, Ordering::SeqCst)
                    && session.connection.status().connected()
                {
                    match timeout(ATTEMPT_TIMEOUT, session.redeclare(&shared.opts)).await {
                        Ok(Ok(_)) => tracing::info!("topology re-declared (something was missing)"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "re-declaring the topology failed"),
                        Err(_) => tracing::warn!("re-declaring the topology timed out"),
                    }
                }
            }
            event = events.next(), if !events_ended => match event {
                Some(lapin::Event::Error(e)) => tracing::debug!(error = %e, "AMQP error event"),
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(reason, "RabbitMQ blocked the connection (resource alarm): publishing waits");
                    shared.vitals.set_blocked(true);
                }
                Some(lapin::Event::ConnectionUnblocked) => {
                    tracing::info!("RabbitMQ unblocked the connection");
                    shared.vitals.set_blocked(false);
                }
                Some(_) => {}
                // The listener ended with the connection; the status tells the rest.
                None => events_ended = true,
            },
            _ = tick.tick() => {}
        }
        let status = session.connection.status();
        shared.vitals.set_blocked(status.blocked());
        if status.connected() {
            if down_since.is_none() && !status.blocked() && Instant::now() >= next_probe {
                next_probe = Instant::now() + PROBE_EVERY;
                if !probe(session).await && session.connection.status().connected() {
                    shared.vitals.probe_failed();
                    return Verdict::Rebuild("lapin did not answer a liveness probe in time");
                }
            }
            if let Some(since) = down_since {
                let redeclared = timeout(ATTEMPT_TIMEOUT, session.redeclare(&shared.opts))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::Timeout {
                            waited: ATTEMPT_TIMEOUT,
                            last_error: None,
                        })
                    });
                match redeclared {
                    Ok(true) => {
                        tracing::info!(down_for = ?since.elapsed(), "RabbitMQ connection recovered, topology re-declared");
                        down_since = None;
                        shared.set_ready(true);
                    }
                    Ok(false) => {}
                    Err(e) if e.is_transient() => {
                        tracing::warn!(error = %e, "re-declaring the topology failed; retrying")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "re-declaring the topology failed");
                        if since.elapsed() > RECOVERY_GRACE {
                            return Verdict::Rebuild("topology cannot be re-declared");
                        }
                    }
                }
            }
        } else if status.reconnecting() || status.connecting() {
            match down_since {
                None => {
                    tracing::warn!("RabbitMQ connection lost; lapin is recovering it");
                    down_since = Some(Instant::now());
                    shared.set_ready(false);
                }
                Some(since) if since.elapsed() > RECOVERY_GRACE => {
                    return Verdict::Rebuild("recovery takes too long");
                }
                Some(_) => {}
            }
        } else {
            return Verdict::Rebuild(if status.errored() {
                "connection errored (recovery failed)"
            } else {
                "connection closed"
            });
        }
    }
}

/// A round trip through lapin's I/O loop on the topology channel (`basic.qos` on a channel
/// that consumes nothing changes nothing). `false`: no answer within [`PROBE_TIMEOUT`]. An
/// error answer (the channel is recovering or closed) counts as an answer: the loop turns.
async fn probe(session: &Session) -> bool {
    let round_trip = async {
        let channel = session.topology.lock().await;
        let _ = channel
            .basic_qos(0, lapin::options::BasicQosOptions { global: false })
            .await;
    };
    timeout(PROBE_TIMEOUT, round_trip).await.is_ok()
}

/// Closes a replaced connection. If lapin is still trying to recover it, closes it once it
/// comes back, so that it never replays its consumers next to the new connection's.
async fn retire(session: Arc<Session>) {
    let status = session.connection.status();
    if status.connected() {
        close_quietly(&session.connection).await;
    } else if status.reconnecting() || status.connecting() {
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(120);
            while Instant::now() < until {
                sleep(Duration::from_millis(500)).await;
                let status = session.connection.status();
                if status.connected() {
                    close_quietly(&session.connection).await;
                    return;
                }
                if status.errored() || status.closed() {
                    return;
                }
            }
        });
    }
}
