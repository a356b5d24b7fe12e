//! The shared session state: the current connection with its channels, what waiters look at,
//! opening a session, and the backoff and error helpers the broker, its supervisor and its
//! consumers all use.

use crate::error::Error;
use crate::health::Vitals;
use crate::options::{AmqpOptions, redact_url};
use crate::topology;
use lapin::options::ConfirmSelectOptions;
use lapin::types::{LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

/// First delay between connection attempts; doubled up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Cap of every reconnect backoff (lapin's own and the supervisor's).
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Attempts lapin's own recovery makes (≈ 35 s with the delays above) before it gives up and
/// the supervisor rebuilds the connection from scratch.
const LAPIN_RECOVERY_ATTEMPTS: usize = 12;
/// Bound on one connection attempt (TCP + AMQP handshake + topology + channels).
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the supervisor looks at the connection's state (it also wakes on its events).
pub(crate) const HEALTH_TICK: Duration = Duration::from_millis(200);
/// Bound on closing a connection.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// The delay after `delay`: doubled, capped at [`BACKOFF_MAX`].
pub(crate) fn next_backoff(delay: Duration) -> Duration {
    (delay * 2).min(BACKOFF_MAX)
}

/// What every waiter looks at: the current session and whether it is usable.
pub(crate) struct State {
    pub(crate) session: Option<Arc<Session>>,
    /// Connected and topology declared.
    pub(crate) ready: bool,
}

/// One connection with its channels. Replaced as a whole by the supervisor when lapin's own
/// recovery fails.
pub(crate) struct Session {
    pub(crate) generation: u64,
    /// Which of [`Shared::nodes`] the connection is to.
    pub(crate) node: usize,
    pub(crate) connection: Connection,
    pub(crate) topology: Mutex<Channel>,
    pub(crate) publishers: Vec<Mutex<Channel>>,
    pub(crate) next_publisher: AtomicUsize,
}

/// What the broker's handles, its supervisor and its consumers share.
pub(crate) struct Shared {
    pub(crate) opts: AmqpOptions,
    /// The node URIs of `opts.url` (one for a single broker).
    pub(crate) nodes: Vec<String>,
    pub(crate) exchange: ShortString,
    pub(crate) state: watch::Sender<State>,
    pub(crate) closed: CancellationToken,
    pub(crate) rebuild_requested: AtomicU64,
    pub(crate) redeclare_requested: AtomicBool,
    pub(crate) rebuild: Notify,
    pub(crate) generation: AtomicU64,
    pub(crate) supervisor: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// What health probes read (no lapin lock).
    pub(crate) vitals: Vitals,
}

/// lapin's own recovery reconnects to the node it lost, so it serves a single broker only: on
/// a cluster, a fresh connection to the next node (the supervisor's rebuild) is faster than
/// waiting for the lost one to come back.
fn connection_properties(opts: &AmqpOptions, recover: bool) -> ConnectionProperties {
    let properties = ConnectionProperties::default()
        .with_connection_name(LongString::from(opts.effective_connection_name()));
    if !recover {
        return properties;
    }
    properties
        .enable_auto_recover()
        .configure_backoff(|backoff| {
            // Jitter adds up to 100 % of the delay: the cap stays BACKOFF_MAX.
            backoff
                .with_min_delay(BACKOFF_MIN)
                .with_max_delay(BACKOFF_MAX / 2)
                .with_max_times(LAPIN_RECOVERY_ATTEMPTS)
                .with_jitter()
        })
}

/// Opens a connection to node `node` of [`Shared::nodes`] with its channels and topology.
pub(crate) async fn open_session(
    shared: &Shared,
    generation: u64,
    node: usize,
) -> Result<Session, Error> {
    let opts = &shared.opts;
    let url = &shared.nodes[node % shared.nodes.len()];
    let properties = connection_properties(opts, shared.nodes.len() == 1);
    let connection = Connection::connect(url, properties)
        .await
        .map_err(|source| Error::Connect {
            url: redact_url(url),
            source,
        })?;
    let channels = async {
        let topology = connection
            .create_channel()
            .await
            .map_err(|e| Error::amqp("channel.open", e))?;
        topology::declare(&topology, &opts.topology, opts.queue_type).await?;
        let mut publishers = Vec::new();
        for _ in 0..opts.publisher_channels.max(1) {
            let channel = open_confirm_channel(&connection)
                .await
                .map_err(|e| Error::amqp("confirm.select", e))?;
            publishers.push(Mutex::new(channel));
        }
        Ok::<_, Error>((topology, publishers))
    }
    .await;
    match channels {
        Ok((topology, publishers)) => Ok(Session {
            generation,
            node: node % shared.nodes.len(),
            connection,
            topology: Mutex::new(topology),
            publishers,
            next_publisher: AtomicUsize::new(0),
        }),
        Err(e) => {
            close_quietly(&connection).await;
            Err(e)
        }
    }
}

pub(crate) async fn open_confirm_channel(connection: &Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// A channel that is closed or errored for good (not connected, opening, closing or recovering).
pub(crate) fn channel_dead(channel: &Channel) -> bool {
    let status = channel.status();
    !status.connected() && !status.initializing() && !status.closing()
}

pub(crate) async fn close_quietly(connection: &Connection) {
    if connection.status().connected() {
        let _ = timeout(CLOSE_TIMEOUT, connection.close(200, "OK".into())).await;
    }
}

impl Session {
    /// Re-declares the topology after lapin recovered the connection. `Ok(false)`: the topology
    /// channel is still recovering, try again later.
    pub(crate) async fn redeclare(&self, opts: &AmqpOptions) -> Result<bool, Error> {
        let mut channel = self.topology.lock().await;
        if !channel.status().connected() {
            if !channel_dead(&channel) {
                return Ok(false);
            }
            *channel = self
                .connection
                .create_channel()
                .await
                .map_err(|e| Error::amqp("channel.open", e))?;
        }
        topology::declare(&channel, &opts.topology, opts.queue_type).await?;
        Ok(true)
    }
}

impl Shared {
    /// `opts.url` must name at least one node (checked by the broker's validation).
    pub(crate) fn new(opts: AmqpOptions) -> Self {
        let nodes = opts.nodes();
        let redacted = nodes.iter().map(|node| redact_url(node)).collect();
        Self {
            exchange: ShortString::from(opts.topology.exchange.as_str()),
            opts,
            nodes,
            state: watch::Sender::new(State {
                session: None,
                ready: false,
            }),
            closed: CancellationToken::new(),
            rebuild_requested: AtomicU64::new(0),
            redeclare_requested: AtomicBool::new(false),
            rebuild: Notify::new(),
            generation: AtomicU64::new(0),
            supervisor: std::sync::Mutex::new(None),
            vitals: Vitals::new(redacted),
        }
    }

    /// The node to try after node `node`: the next in the list, round robin.
    pub(crate) fn next_node(&self, node: usize) -> usize {
        (node + 1) % self.nodes.len()
    }

    pub(crate) fn set_state(&self, session: Option<Arc<Session>>, ready: bool) {
        self.vitals.set_node(session.as_ref().map(|s| s.node));
        self.vitals.set_ready(ready);
        if session.is_none() {
            self.vitals.set_blocked(false);
        }
        self.state.send_replace(State { session, ready });
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.vitals.set_ready(ready);
        self.state.send_if_modified(|state| {
            let changed = state.ready != ready;
            state.ready = ready;
            changed
        });
    }

    /// Asks the supervisor to rebuild the connection of `generation` from scratch (ignored if
    /// that connection was already replaced).
    pub(crate) fn request_rebuild(&self, generation: u64) {
        self.rebuild_requested
            .fetch_max(generation, Ordering::SeqCst);
        self.rebuild.notify_one();
    }

    /// A publish or confirm on session `generation` ran past its deadline. If the connection
    /// looked usable (ready, not blocked by an alarm) lapin is not delivering what it was given:
    /// rebuild the session rather than wait on it forever.
    pub(crate) fn publish_stuck(&self, generation: u64, waited: Duration) {
        let health = self.vitals.snapshot();
        let current = self.generation.load(Ordering::SeqCst);
        if health.usable() && generation == current {
            self.vitals.publish_wedged();
            tracing::error!(
                generation,
                waited = ?waited,
                "a publish got no confirm in time on a connection that looks healthy; rebuilding it"
            );
            self.request_rebuild(generation);
        }
    }

    /// Asks the supervisor to declare the topology again on the current connection (something
    /// was found missing: `NOT_FOUND`), without rebuilding the connection.
    pub(crate) fn request_redeclare(&self) {
        self.redeclare_requested.store(true, Ordering::SeqCst);
        self.rebuild.notify_one();
    }

    /// The current session once it is ready; waits (until `deadline` if any) during reconnects.
    pub(crate) async fn ready_session(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Arc<Session>, Error> {
        if let Some(session) = usable(&self.state.borrow()) {
            return Ok(session);
        }
        if self.closed.is_cancelled() {
            return Err(Error::Closed);
        }
        let started = Instant::now();
        let mut rx = self.state.subscribe();
        let wait = async {
            loop {
                if let Some(session) = usable(&rx.borrow_and_update()) {
                    return Some(session);
                }
                // A state change, or a poll: the session may have reconnected without the
                // supervisor noticing yet.
                let _ = timeout(HEALTH_TICK, rx.changed()).await;
            }
        };
        let deadline_reached = async {
            match deadline {
                Some(deadline) => sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            session = wait => session.ok_or(Error::Closed),
            () = self.closed.cancelled() => Err(Error::Closed),
            () = deadline_reached => Err(Error::Timeout { waited: started.elapsed(), last_error: None }),
        }
    }
}

/// A `NOT_FOUND` channel error: an exchange or queue is missing.
pub(crate) fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(e)
        if matches!(e.kind(), lapin::protocol::AMQPErrorKind::Soft(lapin::protocol::AMQPSoftError::NOTFOUND)))
}

fn usable(state: &State) -> Option<Arc<Session>> {
    match &state.session {
        Some(session) if state.ready && session.connection.status().connected() => {
            Some(session.clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_at_five_seconds() {
        let mut d = BACKOFF_MIN;
        let mut seen = vec![d];
        for _ in 0..10 {
            d = next_backoff(d);
            seen.push(d);
        }
        assert_eq!(seen[1], Duration::from_millis(200));
        assert_eq!(*seen.last().unwrap(), BACKOFF_MAX);
        assert!(seen.iter().all(|d| *d <= Duration::from_secs(5)));
    }
}
