//! The supervised connection: sessions, topology, publishing.

use crate::consume::{self, Deliveries};
use crate::error::{Error, lapin_transient};
use crate::message::{
    DEAD_LETTERED_AT_HEADER, Headers, Outgoing, REASON_HEADER, publish_properties, short_string,
};
use crate::options::{AmqpOptions, QueueType};
use futures_util::StreamExt;
use futures_util::future::join_all;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard, Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

/// First delay between connection attempts; doubled up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Cap of every reconnect backoff (lapin's own and the supervisor's).
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Attempts lapin's own recovery makes (≈ 35 s with the delays above) before it gives up and
/// the supervisor rebuilds the connection from scratch.
const LAPIN_RECOVERY_ATTEMPTS: usize = 12;
/// How long lapin may stay "reconnecting" before the supervisor gives up on it and rebuilds
/// the connection itself. A working recovery retries at least every [`BACKOFF_MAX`], so it
/// succeeds within that time once the broker is back; but lapin 4.12's recovery was seen
/// stalling in its handshake (until the broker's 10 s handshake timeout, then again) after
/// attempts whose TCP connection was accepted and closed at once (a proxy without backend).
const RECOVERY_GRACE: Duration = Duration::from_secs(10);
/// Bound on one connection attempt (TCP + AMQP handshake + topology + channels).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the supervisor looks at the connection's state (it also wakes on its events).
const HEALTH_TICK: Duration = Duration::from_millis(200);
/// Messages of a batch sent together (see [`Session::send`]).
const SEND_CHUNK: usize = 16;
/// Bound on closing a connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

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
    pub(crate) connection: Connection,
    topology: Mutex<Channel>,
    publishers: Vec<Mutex<Channel>>,
    next_publisher: AtomicUsize,
}

pub(crate) struct Shared {
    pub(crate) opts: AmqpOptions,
    exchange: ShortString,
    pub(crate) state: watch::Sender<State>,
    pub(crate) closed: CancellationToken,
    rebuild_requested: AtomicU64,
    redeclare_requested: AtomicBool,
    rebuild: Notify,
    generation: AtomicU64,
    supervisor: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Closes the broker when the last [`Broker`] clone is dropped.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.cancel();
    }
}

/// A supervised RabbitMQ connection: topology, confirmed publishing and consumers that survive
/// reconnects. Cheap to clone; the connection is closed by [`Broker::close`] or when the last
/// clone is dropped (consumer streams then end).
#[derive(Clone)]
pub struct Broker {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.handle.shared.opts.redacted_url())
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Broker {
    /// Connects (retrying with exponential backoff until the first success, or failing after
    /// [`AmqpOptions::connect_timeout`], default 30 s; configuration errors fail at once),
    /// declares the topology idempotently on a dedicated channel — the durable topic exchange and
    /// the four durable queues, each bound with its own name as routing key — and starts the
    /// supervisor task that keeps the connection alive. Must be called inside a tokio runtime.
    pub async fn connect(opts: AmqpOptions) -> Result<Broker, Error> {
        validate(&opts)?;
        let shared = Arc::new(Shared {
            exchange: ShortString::from(opts.exchange.as_str()),
            opts,
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
        });

        let started = Instant::now();
        let deadline = started + shared.opts.connect_timeout;
        let mut delay = BACKOFF_MIN;
        let session = loop {
            let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
            let attempt_deadline = deadline.max(Instant::now() + Duration::from_millis(500));
            let attempt = timeout(
                ATTEMPT_TIMEOUT.min(attempt_deadline - Instant::now()),
                open_session(&shared, generation),
            )
            .await;
            let error = match attempt {
                Ok(Ok(session)) => break session,
                Ok(Err(e)) if !e.is_transient() => return Err(e),
                Ok(Err(e)) => e,
                Err(_) => Error::Timeout {
                    waited: started.elapsed(),
                    last_error: None,
                },
            };
            if Instant::now() + delay >= deadline {
                tracing::error!(url = %shared.opts.redacted_url(), error = %error, "giving up connecting to RabbitMQ");
                return Err(error);
            }
            tracing::warn!(url = %shared.opts.redacted_url(), error = %error, retry_in = ?delay, "cannot connect to RabbitMQ yet");
            sleep(delay).await;
            delay = next_backoff(delay);
        };
        let session = Arc::new(session);
        tracing::info!(
            url = %shared.opts.redacted_url(),
            connection_name = shared.opts.effective_connection_name(),
            "connected to RabbitMQ, topology declared"
        );
        shared.set_state(Some(session.clone()), true);
        let supervisor = tokio::spawn(supervise(shared.clone(), session));
        *shared.supervisor.lock().expect("supervisor lock") = Some(supervisor);
        Ok(Broker {
            handle: Arc::new(Handle { shared }),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Publishes a batch through the exchange (each [`Outgoing::direct`] one through the default
    /// exchange, straight to its queue): persistent (delivery mode 2), content type
    /// `application/json`, mandatory, on a confirm-mode channel; all messages are sent, then
    /// all confirms awaited together. A nack or an unroutable (returned) message is an error
    /// (the other messages of the batch are still published). During a reconnect it waits for
    /// the connection to recover — at most [`AmqpOptions::publish_timeout`] — and resends what
    /// was not confirmed (at-least-once: a message may then be published twice).
    pub async fn publish(&self, batch: Vec<Outgoing>) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut prepared = Vec::with_capacity(batch.len());
        for message in &batch {
            prepared.push((
                short_string("routing key", &message.routing_key)?,
                publish_properties(&message.headers)?,
            ));
        }
        self.shared().publish_prepared(&batch, &prepared).await
    }

    /// Starts a consumer on `queue` on its own channel, with a per-consumer `basic_qos(prefetch)`
    /// before `basic_consume` (manual acknowledgement). The stream survives reconnects and ends
    /// only after [`Deliveries::cancel`] or [`Broker::close`]. An empty `consumer_tag` lets the
    /// broker choose one. During a reconnect it first waits for the connection (at most
    /// [`AmqpOptions::connect_timeout`]). Errors from the first attempt (e.g. `NOT_FOUND` for a
    /// missing queue) are returned; later re-creations retry with backoff, and after repeated
    /// failures ask the supervisor to rebuild the connection and topology.
    pub async fn consume(&self, queue: &str, consumer_tag: &str) -> Result<Deliveries, Error> {
        consume::start(self.shared().clone(), queue, consumer_tag, None).await
    }

    /// Publishes `body` to the dead-letter queue with the original headers plus
    /// `x-baton-reason` (the reason) and `x-baton-dead-lettered-at` (RFC 3339 UTC).
    pub async fn dead_letter(
        &self,
        body: Vec<u8>,
        reason: &str,
        original_headers: Headers,
    ) -> Result<(), Error> {
        let mut headers = original_headers;
        headers.insert(REASON_HEADER.to_owned(), reason.to_owned());
        headers.insert(
            DEAD_LETTERED_AT_HEADER.to_owned(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
        let message = Outgoing {
            headers,
            ..Outgoing::new(self.shared().opts.dead_letter_queue.clone(), body)
        };
        self.publish(vec![message]).await
    }

    /// Connected, and the topology declared on this connection.
    pub fn is_ready(&self) -> bool {
        let state = self.shared().state.borrow();
        state.ready
            && state
                .session
                .as_ref()
                .is_some_and(|s| s.connection.status().connected())
    }

    /// Closes the connection and stops the supervisor; consumer streams end, pending publishes
    /// fail with [`Error::Closed`]. Unacknowledged deliveries are redelivered by the broker.
    pub async fn close(&self) {
        let shared = self.shared();
        shared.closed.cancel();
        let supervisor = shared.supervisor.lock().expect("supervisor lock").take();
        if let Some(supervisor) = supervisor {
            let _ = timeout(CLOSE_TIMEOUT * 2, supervisor).await;
        }
    }

    /// The options the broker was created with.
    pub fn options(&self) -> &AmqpOptions {
        &self.shared().opts
    }

    /// The connection name the broker announces (client property `connection_name`).
    pub fn connection_name(&self) -> &str {
        self.shared().opts.effective_connection_name()
    }

    /// Deletes the four queues and the exchange (for tests and tooling; messages in the queues
    /// are lost). Missing ones are ignored.
    pub async fn delete_topology(&self) -> Result<(), Error> {
        let shared = self.shared();
        let session = shared
            .ready_session(Some(Instant::now() + shared.opts.publish_timeout))
            .await?;
        // A dedicated channel: a failure closes only it.
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(|e| Error::amqp("channel.open", e))?;
        let mut seen = HashSet::new();
        for queue in shared.opts.queues() {
            if seen.insert(queue) {
                channel
                    .queue_delete(queue.into(), QueueDeleteOptions::default())
                    .await
                    .map_err(|e| Error::amqp("queue.delete", e))?;
            }
        }
        channel
            .exchange_delete(shared.exchange.clone(), ExchangeDeleteOptions::default())
            .await
            .map_err(|e| Error::amqp("exchange.delete", e))?;
        let _ = channel.close(200, "OK".into()).await;
        Ok(())
    }
}

fn validate(opts: &AmqpOptions) -> Result<(), Error> {
    opts.url
        .parse::<lapin::uri::AMQPUri>()
        .map_err(|e| Error::Config(format!("invalid AMQP URL {}: {e}", opts.redacted_url())))?;
    if opts.exchange.is_empty() {
        return Err(Error::Config(
            "exchange name is empty (the default exchange cannot be declared)".into(),
        ));
    }
    short_string("exchange name", &opts.exchange)?;
    for queue in opts.queues() {
        if queue.is_empty() {
            return Err(Error::Config("a queue name is empty".into()));
        }
        short_string("queue name", queue)?;
    }
    if opts.prefetch == 0 {
        return Err(Error::Config(
            "prefetch must be at least 1 (0 would mean unlimited)".into(),
        ));
    }
    Ok(())
}

fn connection_properties(opts: &AmqpOptions) -> ConnectionProperties {
    ConnectionProperties::default()
        .with_connection_name(LongString::from(opts.effective_connection_name()))
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

async fn open_session(shared: &Shared, generation: u64) -> Result<Session, Error> {
    let opts = &shared.opts;
    let connection = Connection::connect(&opts.url, connection_properties(opts))
        .await
        .map_err(|source| Error::Connect {
            url: opts.redacted_url(),
            source,
        })?;
    let channels = async {
        let topology = connection
            .create_channel()
            .await
            .map_err(|e| Error::amqp("channel.open", e))?;
        declare_topology(&topology, opts).await?;
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

async fn open_confirm_channel(connection: &Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Declares the exchange and the queues, and binds each queue with its name. Idempotent; the
/// same arguments everywhere (a mismatch is `PRECONDITION_FAILED`, which closes the channel).
async fn declare_topology(channel: &Channel, opts: &AmqpOptions) -> Result<(), Error> {
    let exchange = ShortString::from(opts.exchange.as_str());
    channel
        .exchange_declare(
            exchange.clone(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|source| Error::Topology {
            what: format!("exchange '{}'", opts.exchange),
            source,
        })?;
    let mut arguments = FieldTable::default();
    if opts.queue_type == QueueType::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        );
    }
    let mut seen = HashSet::new();
    for queue in opts.queues() {
        if !seen.insert(queue) {
            continue;
        }
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments.clone(),
            )
            .await
            .map_err(|source| Error::Topology {
                what: format!("queue '{queue}' ({:?})", opts.queue_type),
                source,
            })?;
        channel
            .queue_bind(
                queue.into(),
                exchange.clone(),
                queue.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| Error::Topology {
                what: format!("binding of queue '{queue}' to '{}'", opts.exchange),
                source,
            })?;
    }
    Ok(())
}

/// A channel that is closed or errored for good (not connected, opening, closing or recovering).
pub(crate) fn channel_dead(channel: &Channel) -> bool {
    let status = channel.status();
    !status.connected() && !status.initializing() && !status.closing()
}

async fn close_quietly(connection: &Connection) {
    if connection.status().connected() {
        let _ = timeout(CLOSE_TIMEOUT, connection.close(200, "OK".into())).await;
    }
}

impl Session {
    /// Re-declares the topology after lapin recovered the connection. `Ok(false)`: the topology
    /// channel is still recovering, try again later.
    async fn redeclare(&self, opts: &AmqpOptions) -> Result<bool, Error> {
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
        declare_topology(&channel, opts).await?;
        Ok(true)
    }

    /// A publishing channel, preferring one nobody holds.
    async fn publisher(&self) -> (usize, MutexGuard<'_, Channel>) {
        let n = self.publishers.len();
        let start = self.next_publisher.fetch_add(1, Ordering::Relaxed) % n;
        for k in 0..n {
            let slot = (start + k) % n;
            if let Ok(guard) = self.publishers[slot].try_lock() {
                return (slot, guard);
            }
        }
        (start, self.publishers[start].lock().await)
    }

    /// Sends the `pending` messages on one channel under its lock (the lock keeps the confirm
    /// sequence numbers in the order of the frames); confirms are awaited by the caller. Returns
    /// the confirms, the messages not sent, and the error that stopped sending.
    async fn send(
        &self,
        exchange: &ShortString,
        batch: &[Outgoing],
        prepared: &[(ShortString, BasicProperties)],
        pending: &[usize],
    ) -> (
        usize,
        Vec<(usize, PublisherConfirm)>,
        Vec<usize>,
        Option<lapin::Error>,
    ) {
        let mut confirms = Vec::with_capacity(pending.len());
        let (slot, mut channel) = self.publisher().await;
        if let Err(e) = self.ensure_publisher(&mut channel).await {
            return (slot, confirms, pending.to_vec(), Some(e));
        }
        // Each `basic_publish` registers its confirm sequence number and queues its frames in
        // the same synchronous step (its first poll), and the channel lock keeps other tasks out,
        // so polling a chunk of them together keeps numbers and frames aligned while waiting for
        // the I/O loop once per chunk instead of once per message.
        let mut error = None;
        let mut unsent = Vec::new();
        let default_exchange = ShortString::from("");
        for chunk in pending.chunks(SEND_CHUNK) {
            if error.is_some() {
                unsent.extend_from_slice(chunk);
                continue;
            }
            let sends = chunk.iter().map(|&i| {
                let (routing_key, properties) = &prepared[i];
                let exchange = if batch[i].direct {
                    &default_exchange
                } else {
                    exchange
                };
                channel.basic_publish(
                    exchange.clone(),
                    routing_key.clone(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &batch[i].body,
                    properties.clone(),
                )
            });
            for (&i, sent) in chunk.iter().zip(join_all(sends).await) {
                match sent {
                    Ok(confirm) => confirms.push((i, confirm)),
                    Err(e) => {
                        unsent.push(i);
                        error.get_or_insert(e);
                    }
                }
            }
        }
        (slot, confirms, unsent, error)
    }

    /// Replaces a publishing channel that died (e.g. closed by a channel error) and makes sure
    /// it is in confirm mode. A recovering channel is left alone: publishing on it fails with an
    /// error that waits for its recovery.
    async fn ensure_publisher(&self, channel: &mut Channel) -> lapin::Result<()> {
        if channel_dead(channel) && self.connection.status().connected() {
            tracing::debug!("replacing a closed publishing channel");
            *channel = open_confirm_channel(&self.connection).await?;
        } else if channel.status().connected() && !channel.status().confirm() {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        Ok(())
    }
}

impl Shared {
    fn set_state(&self, session: Option<Arc<Session>>, ready: bool) {
        self.state.send_replace(State { session, ready });
    }

    fn set_ready(&self, ready: bool) {
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

    /// Waits until the publishing channel recovered, the session was replaced, or a short pause
    /// passed (the caller then looks for a ready session again).
    async fn wait_recovery(
        &self,
        session: &Session,
        slot: usize,
        error: Option<lapin::Error>,
        deadline: Instant,
    ) -> Result<(), Error> {
        let channel = session.publishers[slot].lock().await.clone();
        let recovered = async {
            match error {
                Some(error) => {
                    if channel.wait_for_recovery(error).await.is_err() {
                        sleep(Duration::from_millis(50)).await;
                    }
                }
                None => sleep(Duration::from_millis(20)).await,
            }
        };
        let mut rx = self.state.subscribe();
        let generation = session.generation;
        let replaced = async {
            loop {
                if rx.changed().await.is_err() {
                    return;
                }
                let current = rx
                    .borrow_and_update()
                    .session
                    .as_ref()
                    .map(|s| s.generation);
                if current != Some(generation) {
                    return;
                }
            }
        };
        tokio::select! {
            () = recovered => Ok(()),
            () = replaced => Ok(()),
            () = self.closed.cancelled() => Err(Error::Closed),
            () = sleep_until(deadline) => Ok(()),
        }
    }

    async fn publish_prepared(
        &self,
        batch: &[Outgoing],
        prepared: &[(ShortString, BasicProperties)],
    ) -> Result<(), Error> {
        let started = Instant::now();
        let deadline = started + self.opts.publish_timeout;
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        let mut failure: Option<Error> = None;
        let mut last_error: Option<lapin::Error> = None;
        loop {
            let session = match self.ready_session(Some(deadline)).await {
                Ok(session) => session,
                Err(Error::Timeout { waited, .. }) => {
                    return Err(failure.unwrap_or(Error::Timeout { waited, last_error }));
                }
                Err(e) => return Err(e),
            };
            let (slot, confirms, mut retry, mut recover_from) = session
                .send(&self.exchange, batch, prepared, &pending)
                .await;
            let confirmed = join_all(
                confirms
                    .into_iter()
                    .map(|(i, confirm)| async move { (i, confirm.await) }),
            );
            // A silently dead connection is only detected by missed heartbeats: bound the wait.
            let Ok(outcomes) = tokio::time::timeout_at(deadline, confirmed).await else {
                return Err(failure.unwrap_or(Error::Timeout {
                    waited: started.elapsed(),
                    last_error: recover_from,
                }));
            };
            for (i, outcome) in outcomes {
                match outcome {
                    Ok(Confirmation::Ack(None)) => {}
                    Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => {
                        // The broker's return names the message (lapin attaches it to the
                        // next confirm, which with multiple-acks may be another one's).
                        failure.get_or_insert(Error::Unroutable {
                            routing_key: returned.delivery.routing_key.to_string(),
                            reply_code: returned.reply_code,
                            reply_text: returned.reply_text.to_string(),
                        });
                    }
                    Ok(Confirmation::Nack(None)) => {
                        failure.get_or_insert(Error::Nacked {
                            routing_key: batch[i].routing_key.clone(),
                        });
                    }
                    // The channel lost confirm mode: `ensure_publisher` restores it.
                    Ok(Confirmation::NotRequested) => retry.push(i),
                    Err(e) if lapin_transient(&e) => {
                        retry.push(i);
                        recover_from.get_or_insert(e);
                    }
                    Err(e) => {
                        if is_not_found(&e) {
                            // The exchange is gone: declare it again for the next publish.
                            self.request_redeclare();
                        }
                        failure.get_or_insert(Error::amqp("basic.publish", e));
                    }
                }
            }
            if retry.is_empty() {
                return failure.map_or(Ok(()), Err);
            }
            if let Some(e) = &recover_from
                && !lapin_transient(e)
            {
                return Err(failure.unwrap_or_else(|| Error::amqp("basic.publish", e.clone())));
            }
            if Instant::now() >= deadline {
                return Err(failure.unwrap_or(Error::Timeout {
                    waited: started.elapsed(),
                    last_error: recover_from,
                }));
            }
            tracing::debug!(
                unconfirmed = retry.len(),
                error = ?recover_from.as_ref().map(ToString::to_string),
                "publish interrupted; waiting for the connection to recover"
            );
            retry.sort_unstable();
            pending = retry;
            last_error.clone_from(&recover_from);
            self.wait_recovery(&session, slot, recover_from, deadline)
                .await?;
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

/// Why the supervisor stops watching a session.
enum Verdict {
    Closed,
    Rebuild(&'static str),
}

/// Keeps a session alive: follows lapin's recovery (re-declaring the topology once it is back)
/// and rebuilds connection, channels and topology from scratch when recovery fails, takes too
/// long, or a component asks for it. Consumers re-create themselves on the new session.
async fn supervise(shared: Arc<Shared>, mut session: Arc<Session>) {
    loop {
        let verdict = watch_session(&shared, &session).await;
        shared.set_state(None, false);
        let old = session;
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
        session = loop {
            if shared.closed.is_cancelled() {
                return;
            }
            let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
            let attempt = tokio::select! {
                attempt = timeout(ATTEMPT_TIMEOUT, open_session(&shared, generation)) => attempt,
                () = shared.closed.cancelled() => return,
            };
            match attempt {
                Ok(Ok(session)) => break Arc::new(session),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "reconnecting to RabbitMQ failed")
                }
                Err(_) => {
                    tracing::warn!(retry_in = ?delay, "reconnecting to RabbitMQ timed out")
                }
            }
            tokio::select! {
                () = sleep(delay) => {}
                () = shared.closed.cancelled() => return,
            }
            delay = next_backoff(delay);
        };
        tracing::info!(
            generation = session.generation,
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
    loop {
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
                Some(_) => {}
                // The listener ended with the connection; the status tells the rest.
                None => events_ended = true,
            },
            _ = tick.tick() => {}
        }
        let status = session.connection.status();
        if status.connected() {
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

    #[test]
    fn invalid_options_are_config_errors() {
        let bad_url = AmqpOptions {
            url: "http://nope".into(),
            ..AmqpOptions::default()
        };
        assert!(matches!(validate(&bad_url), Err(Error::Config(_))));
        let no_exchange = AmqpOptions {
            exchange: String::new(),
            ..AmqpOptions::default()
        };
        assert!(matches!(validate(&no_exchange), Err(Error::Config(_))));
        let long_queue = AmqpOptions {
            status_queue: "q".repeat(300),
            ..AmqpOptions::default()
        };
        assert!(matches!(validate(&long_queue), Err(Error::Config(_))));
        let zero_prefetch = AmqpOptions {
            prefetch: 0,
            ..AmqpOptions::default()
        };
        assert!(matches!(validate(&zero_prefetch), Err(Error::Config(_))));
        assert!(validate(&AmqpOptions::default()).is_ok());
    }

    #[tokio::test]
    async fn connect_with_invalid_url_fails_fast() {
        let started = std::time::Instant::now();
        let err = Broker::connect(AmqpOptions {
            url: "not a url".into(),
            ..AmqpOptions::default()
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn connect_gives_up_after_the_connect_timeout() {
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let started = std::time::Instant::now();
        let err = Broker::connect(AmqpOptions {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            connect_timeout: Duration::from_millis(800),
            ..AmqpOptions::default()
        })
        .await
        .unwrap_err();
        assert!(err.is_transient(), "{err}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
}
