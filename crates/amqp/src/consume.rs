//! Consumers that survive reconnects.

use crate::error::Error;
use crate::health::{ConsumerHealth, ConsumerVitals, SettleGauge};
use crate::message::{Delivery, short_string};
use crate::session::{
    BACKOFF_MIN, Session, Shared, State, channel_dead, is_not_found, next_backoff,
};
use futures_util::{Stream, StreamExt};
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Consumer};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, timeout};
use tokio_util::sync::CancellationToken;

/// Bound on `basic.cancel` and on waiting for it.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an interrupted consumer looks at its channel's state while lapin recovers it.
const RECOVERY_POLL: Duration = Duration::from_millis(100);
/// Consecutive failures to re-create a consumer after which the connection is rebuilt.
const FAILURES_BEFORE_REBUILD: u32 = 3;

/// The deliveries of one consumer, as a [`Stream`]. It continues across reconnects (the
/// consumer is re-created on the new connection; deliveries received before the drop and not
/// yet settled are redelivered by the broker, with `redelivered = true`) and ends only after
/// [`Deliveries::cancel`], [`Broker::close`](crate::Broker::close), or when the broker is
/// dropped. Dropping the stream cancels the consumer.
pub struct Deliveries {
    rx: mpsc::Receiver<Delivery>,
    ctl: Arc<Control>,
}

struct Control {
    queue: String,
    tag: String,
    cancel: CancellationToken,
    /// Set once `basic.cancel` was answered (or cannot be sent any more).
    cancel_done: watch::Sender<bool>,
    vitals: Arc<ConsumerVitals>,
}

impl Deliveries {
    /// Stops receiving new deliveries (`basic.cancel`) and returns once the broker confirmed it
    /// (bounded by a few seconds). Deliveries already received are still yielded, then the
    /// stream ends; they can still be settled.
    pub async fn cancel(&mut self) {
        self.ctl.cancel.cancel();
        let mut done = self.ctl.cancel_done.subscribe();
        let _ = timeout(CANCEL_TIMEOUT * 2, done.wait_for(|done| *done)).await;
    }

    /// The queue consumed.
    pub fn queue(&self) -> &str {
        &self.ctl.queue
    }

    /// The consumer tag asked for.
    pub fn consumer_tag(&self) -> &str {
        &self.ctl.tag
    }

    /// The consumer's state as its task last saw it: whether it is consuming on a live
    /// channel, whether it ended, deliveries unsettled or dropped unsettled, and how long
    /// since it last received or settled one. Takes no lock: safe in a health probe.
    pub fn health(&self) -> ConsumerHealth {
        self.ctl.vitals.snapshot()
    }

    /// A handle that reads [`Deliveries::health`] without the stream (for a health probe
    /// that runs next to the loop consuming it).
    pub fn health_probe(&self) -> ConsumerProbe {
        ConsumerProbe(self.ctl.vitals.clone())
    }
}

/// Reads a consumer's [`ConsumerHealth`] from anywhere (see [`Deliveries::health_probe`]).
#[derive(Clone)]
pub struct ConsumerProbe(Arc<ConsumerVitals>);

impl ConsumerProbe {
    /// See [`Deliveries::health`].
    pub fn health(&self) -> ConsumerHealth {
        self.0.snapshot()
    }
}

impl std::fmt::Debug for ConsumerProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConsumerProbe")
            .field(&self.health())
            .finish()
    }
}

impl Stream for Deliveries {
    type Item = Delivery;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        self.ctl.cancel.cancel();
    }
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("queue", &self.ctl.queue)
            .field("consumer_tag", &self.ctl.tag)
            .field("cancelled", &self.ctl.cancel.is_cancelled())
            .finish()
    }
}

struct Active {
    session: Arc<Session>,
    channel: Arc<Channel>,
    consumer: Consumer,
}

/// A queue a consumer declares (and binds) itself on its channel before each `basic.consume`,
/// so that it exists again after a broker restart (e.g. a non-durable subscription queue).
pub(crate) struct QueueSetup {
    pub(crate) options: QueueDeclareOptions,
    pub(crate) arguments: FieldTable,
    /// (exchange, routing key) pairs.
    pub(crate) bindings: Vec<(ShortString, ShortString)>,
}

pub(crate) async fn start(
    shared: Arc<Shared>,
    queue: &str,
    consumer_tag: &str,
    setup: Option<QueueSetup>,
) -> Result<Deliveries, Error> {
    let queue_name = short_string("queue name", queue)?;
    let tag = short_string("consumer tag", consumer_tag)?;
    let deadline = tokio::time::Instant::now() + shared.opts.connect_timeout;
    let session = shared.ready_session(Some(deadline)).await?;
    let setup = setup.map(Arc::new);
    let (channel, consumer) = open_consumer(
        &session,
        &queue_name,
        &tag,
        shared.opts.prefetch,
        setup.as_deref(),
    )
    .await?;
    tracing::info!(queue, consumer_tag = %consumer.tag(), "consuming");
    let (tx, rx) = mpsc::channel(usize::from(shared.opts.prefetch.max(1)));
    let ctl = Arc::new(Control {
        queue: queue.to_owned(),
        tag: consumer_tag.to_owned(),
        cancel: CancellationToken::new(),
        cancel_done: watch::Sender::new(false),
        vitals: Arc::new(ConsumerVitals::new(shared.opts.prefetch)),
    });
    ctl.vitals.on_new_channel();
    let first = Active {
        session,
        channel,
        consumer,
    };
    let spec = Spec {
        queue: queue_name,
        tag,
        setup,
    };
    tokio::spawn(run(shared, ctl.clone(), spec, tx, first));
    Ok(Deliveries { rx, ctl })
}

/// What a consumer is re-created from.
struct Spec {
    queue: ShortString,
    tag: ShortString,
    setup: Option<Arc<QueueSetup>>,
}

/// Its own channel, (its queue declared if it declares its own), per-consumer QoS (never
/// global: quorum queues refuse it with a connection error), then `basic.consume` with manual
/// acknowledgement.
async fn open_consumer(
    session: &Session,
    queue: &ShortString,
    tag: &ShortString,
    prefetch: u16,
    setup: Option<&QueueSetup>,
) -> Result<(Arc<Channel>, Consumer), Error> {
    let channel = session
        .connection
        .create_channel()
        .await
        .map_err(|e| Error::amqp("channel.open", e))?;
    if let Some(setup) = setup {
        channel
            .queue_declare(queue.clone(), setup.options, setup.arguments.clone())
            .await
            .map_err(|source| Error::Topology {
                what: format!("queue '{queue}'"),
                source,
            })?;
        for (exchange, routing_key) in &setup.bindings {
            channel
                .queue_bind(
                    queue.clone(),
                    exchange.clone(),
                    routing_key.clone(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|source| Error::Topology {
                    what: format!("binding of '{queue}' to '{exchange}' with '{routing_key}'"),
                    source,
                })?;
        }
    }
    channel
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .map_err(|e| Error::amqp("basic.qos", e))?;
    let consumer = channel
        .basic_consume(
            queue.clone(),
            tag.clone(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| Error::amqp("basic.consume", e))?;
    Ok((Arc::new(channel), consumer))
}

/// How a consumer's life on one channel ended.
enum End {
    /// Cancelled or closed: the task ends.
    Exit,
    /// The channel or connection is gone: consume again on the current session.
    Again,
}

async fn run(
    shared: Arc<Shared>,
    ctl: Arc<Control>,
    spec: Spec,
    tx: mpsc::Sender<Delivery>,
    first: Active,
) {
    let mut next = Some(first);
    let mut failures = 0u32;
    let mut delay = BACKOFF_MIN;
    loop {
        let active = match next.take() {
            Some(active) => active,
            None => {
                let session = tokio::select! {
                    session = shared.ready_session(None) => match session {
                        Ok(session) => session,
                        Err(_) => break,
                    },
                    () = ctl.cancel.cancelled() => break,
                    () = tx.closed() => break,
                };
                let opened = open_consumer(
                    &session,
                    &spec.queue,
                    &spec.tag,
                    shared.opts.prefetch,
                    spec.setup.as_deref(),
                )
                .await;
                match opened {
                    Ok((channel, consumer)) => {
                        ctl.vitals.on_new_channel();
                        tracing::info!(queue = %spec.queue, consumer_tag = %consumer.tag(), generation = session.generation, "consumer re-created");
                        failures = 0;
                        delay = BACKOFF_MIN;
                        Active {
                            session,
                            channel,
                            consumer,
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(queue = %spec.queue, error = %e, retry_in = ?delay, "cannot re-create consumer");
                        if error_source(&e).is_some_and(is_not_found) {
                            // The queue or exchange is gone (deleted, or not durable and the
                            // broker restarted): declare the topology again; rebuilding the
                            // connection would not bring it back.
                            shared.request_redeclare();
                        } else if failures >= FAILURES_BEFORE_REBUILD
                            || !session.connection.status().connected()
                        {
                            shared.request_rebuild(session.generation);
                        }
                        tokio::select! {
                            () = sleep(delay) => {}
                            () = ctl.cancel.cancelled() => break,
                            () = shared.closed.cancelled() => break,
                            () = tx.closed() => break,
                        }
                        delay = next_backoff(delay);
                        continue;
                    }
                }
            }
        };
        match consume(&shared, &ctl, &tx, active).await {
            End::Exit => break,
            End::Again => ctl.vitals.set_active(false),
        }
    }
    ctl.vitals.set_ended();
    ctl.cancel_done.send_replace(true);
    tracing::debug!(queue = %spec.queue, "consumer task ended");
}

fn error_source(error: &Error) -> Option<&lapin::Error> {
    match error {
        Error::Amqp { source, .. }
        | Error::Topology { source, .. }
        | Error::Connect { source, .. } => Some(source),
        _ => None,
    }
}

/// Forwards the deliveries of one consumer until it is cancelled, closed, or its channel or
/// connection is gone for good.
async fn consume(
    shared: &Shared,
    ctl: &Control,
    tx: &mpsc::Sender<Delivery>,
    active: Active,
) -> End {
    let Active {
        session,
        channel,
        mut consumer,
    } = active;
    let tag = consumer.tag();
    let generation = session.generation;
    let mut state = shared.state.subscribe();
    let mut cancel_issued = false;
    let epoch = ctl
        .vitals
        .channel_epoch
        .load(std::sync::atomic::Ordering::SeqCst);
    loop {
        let item = tokio::select! {
            biased;
            () = shared.closed.cancelled() => return End::Exit,
            () = ctl.cancel.cancelled(), if !cancel_issued => {
                cancel_issued = true;
                if !issue_cancel(&channel, &tag, ctl).await {
                    return End::Exit;
                }
                continue;
            }
            () = tx.closed(), if !cancel_issued => {
                ctl.cancel.cancel();
                continue;
            }
            changed = state.changed() => {
                if changed.is_err() || replaced(&mut state, generation) {
                    return End::Again;
                }
                continue;
            }
            item = consumer.next() => item,
        };
        match item {
            Some(Ok(delivery)) => {
                ctl.vitals.received();
                let gauge = SettleGauge {
                    vitals: ctl.vitals.clone(),
                    epoch,
                };
                let delivery = Delivery::from_lapin(delivery, channel.clone(), Some(gauge));
                let send = tx.send(delivery);
                tokio::pin!(send);
                loop {
                    tokio::select! {
                        biased;
                        sent = &mut send => {
                            if sent.is_err() {
                                // The stream was dropped: cancel on the next turn.
                                ctl.cancel.cancel();
                            }
                            break;
                        }
                        () = ctl.cancel.cancelled(), if !cancel_issued => {
                            cancel_issued = true;
                            if !issue_cancel(&channel, &tag, ctl).await {
                                return End::Exit;
                            }
                        }
                        () = shared.closed.cancelled() => return End::Exit,
                    }
                }
            }
            Some(Err(error)) => {
                if cancel_issued || ctl.cancel.is_cancelled() {
                    return End::Exit;
                }
                tracing::warn!(queue = %ctl.queue, error = %error, "consumer interrupted; waiting for the connection to recover");
                ctl.vitals.set_active(false);
                match await_recovery(shared, ctl, &channel, &mut state, generation).await {
                    Recovery::Recovered => {
                        ctl.vitals.set_active(true);
                        tracing::info!(queue = %ctl.queue, "consumer recovered")
                    }
                    Recovery::Lost => {
                        if !session.connection.status().connected()
                            && !session.connection.status().reconnecting()
                        {
                            shared.request_rebuild(generation);
                        }
                        return End::Again;
                    }
                    Recovery::Stop => return End::Exit,
                }
            }
            None => {
                if cancel_issued || ctl.cancel.is_cancelled() {
                    return End::Exit;
                }
                if shared.closed.is_cancelled() {
                    return End::Exit;
                }
                tracing::warn!(queue = %ctl.queue, "consumer ended without being cancelled; re-creating it");
                if !session.connection.status().connected() {
                    shared.request_rebuild(generation);
                }
                // Leave the channel: it may hold unsettled deliveries, it closes with the last.
                sleep(BACKOFF_MIN).await;
                return End::Again;
            }
        }
    }
}

enum Recovery {
    /// lapin recovered the channel and replayed the consumer: the same stream continues.
    Recovered,
    /// The channel is gone for good or the connection was replaced: consume again.
    Lost,
    /// Cancelled or closed meanwhile.
    Stop,
}

async fn await_recovery(
    shared: &Shared,
    ctl: &Control,
    channel: &Channel,
    state: &mut watch::Receiver<State>,
    generation: u64,
) -> Recovery {
    loop {
        if channel.status().connected() {
            return Recovery::Recovered;
        }
        // A closed or errored channel is never replayed by lapin (no ghost consumer left behind).
        if channel_dead(channel) {
            return Recovery::Lost;
        }
        tokio::select! {
            () = sleep(RECOVERY_POLL) => {}
            changed = state.changed() => {
                if changed.is_err() || replaced(state, generation) {
                    return Recovery::Lost;
                }
            }
            () = ctl.cancel.cancelled() => return Recovery::Stop,
            () = shared.closed.cancelled() => return Recovery::Stop,
        }
    }
}

/// Whether the supervisor replaced the session `generation` (or has none right now because it
/// is rebuilding).
fn replaced(state: &mut watch::Receiver<State>, generation: u64) -> bool {
    let state = state.borrow_and_update();
    match &state.session {
        Some(session) => session.generation != generation,
        None => true,
    }
}

/// `basic.cancel`; the consumer stream then ends (after the deliveries already received).
/// Returns whether the broker confirmed it.
async fn issue_cancel(channel: &Channel, tag: &ShortString, ctl: &Control) -> bool {
    let confirmed = channel.status().connected()
        && matches!(
            timeout(
                CANCEL_TIMEOUT,
                channel.basic_cancel(tag.clone(), BasicCancelOptions::default())
            )
            .await,
            Ok(Ok(()))
        );
    if !confirmed {
        tracing::debug!(queue = %ctl.queue, "basic.cancel not confirmed; stopping the consumer");
    }
    ctl.cancel_done.send_replace(true);
    confirmed
}
