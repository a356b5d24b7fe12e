//! The engine's ports on RabbitMQ: hop messages to the execution queue (publisher confirms),
//! delayed messages as durable Redis timers, and status events and completion requests (to the
//! completion outbox, which `completion_relay.rs` empties) through one ordered background
//! publisher that batches them (status messages dominate the broker's cost per hop, so they
//! share confirms instead of each waiting for its own; a completion request's caller waits
//! for its batch's confirm).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use baton_amqp::{Broker, Outgoing, Topology};
use baton_core::message::{Completion, HopMessage, NodeRun, StatusBatch, StatusEvent};
use baton_engine::Clock;
use baton_engine::ports::{EventSink, HopQueue, PortError, PortErrorKind};
use baton_redis::{ClaimedTimer, TimerStore};
use tokio::sync::{mpsc, oneshot};

use crate::completion_relay::SENDER_HEADER;
use crate::events_guard::{self, BatchPublisher, EVENTS_DEADLINE, EventsVitals};
use crate::metrics_names as m;
use crate::settings::StatusRoute;
use baton_telemetry::context;

/// A broker failure as a port error of the same kind (an unroutable message is permanent).
pub(crate) fn broker_error(e: baton_amqp::Error) -> PortError {
    let kind = broker_kind(&e);
    PortError::new(kind, e.to_string(), Some(Box::new(e)))
}

fn broker_kind(e: &baton_amqp::Error) -> PortErrorKind {
    if e.is_transient() {
        PortErrorKind::Transient
    } else {
        PortErrorKind::Permanent
    }
}

fn publisher_stopped() -> PortError {
    PortError::transient_msg("event publisher stopped")
}

/// Encodes a hop message as an AMQP message. Its trace context travels in the `traceparent`
/// header only (the consumer puts it back into the message): every byte of a hop message costs
/// the broker, which stores it. With traces exported, the context is the current span's (the
/// hop that sends it), so the receiving hop's span is its child.
pub fn hop_outgoing(routing_key: &str, mut msg: HopMessage) -> Result<Outgoing, PortError> {
    let mut headers = BTreeMap::new();
    if let Some(traceparent) = context::outgoing(msg.traceparent.take()) {
        headers.insert(context::TRACEPARENT.to_string(), traceparent);
    }
    let body = serde_json::to_vec(&msg)?;
    metrics::histogram!(m::HOP_MESSAGE_BYTES).record(body.len() as f64);
    // Hop messages are only for the workers consuming that queue: straight to it.
    Ok(Outgoing {
        headers,
        ..Outgoing::to_queue(routing_key, body)
    })
}

/// `HopQueue` over RabbitMQ + Redis timers.
#[derive(Clone)]
pub struct AmqpHopQueue {
    broker: Broker,
    timers: TimerStore,
    topology: Arc<Topology>,
    /// What a delay is counted from (the engine's clock: `SystemClock` in production).
    clock: Arc<dyn Clock>,
}

impl AmqpHopQueue {
    pub fn new(
        broker: Broker,
        timers: TimerStore,
        topology: Arc<Topology>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            broker,
            timers,
            topology,
            clock,
        }
    }
}

impl AmqpHopQueue {
    /// A durable timer `id` publishing `message` in `delay_ms` (once per pending id).
    async fn schedule(
        &self,
        id: &str,
        message: &HopMessage,
        delay_ms: u64,
    ) -> Result<(), PortError> {
        // The timer keeps the trace context (the scheduling hop's span when traces are
        // exported), so the execution resumed from it continues its trace.
        let payload = match context::current() {
            Some(traceparent) => serde_json::to_vec(&HopMessage {
                traceparent: Some(traceparent),
                ..message.clone()
            })?,
            None => serde_json::to_vec(message)?,
        };
        let due = self.clock.now_ms() + delay_ms;
        self.timers
            .schedule(id, &payload, due)
            .await
            .map(|_| ())
            .map_err(PortError::from)
    }
}

#[async_trait]
impl HopQueue for AmqpHopQueue {
    async fn publish(&self, messages: Vec<HopMessage>) -> Result<(), PortError> {
        let batch = messages
            .into_iter()
            .map(|m| hop_outgoing(&self.topology.execution_queue, m))
            .collect::<Result<Vec<_>, _>>()?;
        self.broker.publish(batch).await.map_err(broker_error)
    }

    async fn publish_delayed(&self, message: HopMessage, delay_ms: u64) -> Result<(), PortError> {
        if delay_ms == 0 {
            return self.publish(vec![message]).await;
        }
        // Deterministic id: a redelivered hop schedules the same timer once.
        let id = format!("{}|{}", message.execution_id, message.hop_id());
        self.schedule(&id, &message, delay_ms).await
    }

    async fn cancel_delayed(&self, message: &HopMessage) -> Result<(), PortError> {
        let id = format!("{}|{}", message.execution_id, message.hop_id());
        self.timers
            .complete(&id)
            .await
            .map(|_| ())
            .map_err(PortError::from)
    }

    async fn publish_recheck(
        &self,
        message: HopMessage,
        delay_ms: u64,
        claim_expires_at_ms: u64,
    ) -> Result<(), PortError> {
        // Copies that met the same claim make one timer; a later re-check (the claim was
        // renewed) gets its own, so none is swallowed by a timer still being completed; and
        // none collides with the message's own timer (`execution|hop id`).
        let id = format!(
            "{}|{}|recheck@{claim_expires_at_ms}",
            message.execution_id,
            message.hop_id()
        );
        self.schedule(&id, &message, delay_ms).await
    }
}

enum Outbound {
    Status(Box<StatusEvent>),
    /// A `compact` node run: every run taken in one flush goes out as one `StatusBatch`.
    Run(Box<NodeRun>),
    Completion(Completion, oneshot::Sender<Result<(), PortError>>),
}

/// How long a batch of statuses (without a completion) is retried before it is given up.
const STATUS_RETRY_FOR: Duration = Duration::from_secs(120);

/// `EventSink` over RabbitMQ: one background task publishes events in order, in batches. The
/// task is supervised (`events_guard`): restarted if it stops, panics or gets stuck.
#[derive(Clone)]
pub struct AmqpEvents {
    tx: mpsc::UnboundedSender<Outbound>,
    vitals: Arc<EventsVitals>,
}

impl AmqpEvents {
    /// `full` statuses go where `route` says (RFC 0011).
    pub fn start(
        broker: Broker,
        topology: Arc<Topology>,
        route: StatusRoute,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        Self::start_with(Arc::new(broker), topology, route, EVENTS_DEADLINE)
    }

    /// Over any [`BatchPublisher`], with the deadline of one publish attempt.
    pub fn start_with(
        publisher: Arc<dyn BatchPublisher>,
        topology: Arc<Topology>,
        route: StatusRoute,
        deadline: Duration,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel::<Outbound>();
        let vitals = Arc::new(EventsVitals::new(deadline));
        let task = events_guard::supervise(rx, vitals.clone(), {
            let vitals = vitals.clone();
            move |rx| {
                publish_events(
                    publisher.clone(),
                    topology.clone(),
                    route,
                    rx,
                    vitals.clone(),
                )
            }
        });
        (Self { tx, vitals }, task)
    }

    /// The publisher task's vital signs (for readiness).
    pub fn vitals(&self) -> &Arc<EventsVitals> {
        &self.vitals
    }
}

/// The publisher task: takes what is queued, publishes it as one batch, retries a batch holding
/// a completion until it is confirmed, answers the completions' waiters.
async fn publish_events(
    publisher: Arc<dyn BatchPublisher>,
    topology: Arc<Topology>,
    route: StatusRoute,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Outbound>>>,
    vitals: Arc<EventsVitals>,
) {
    let mut rx = rx.lock().await;
    let mut buf: Vec<Outbound> = Vec::with_capacity(256);
    while rx.recv_many(&mut buf, 512).await > 0 {
        let taken = buf.len();
        vitals.attempt(taken);
        let mut batch = Vec::with_capacity(buf.len());
        let mut waiters = Vec::new();
        // Where this flush's compact runs go: one message, at the place of the first.
        let mut runs: Option<(usize, Vec<NodeRun>)> = None;
        for item in buf.drain(..) {
            let message = match &item {
                Outbound::Run(_) => {
                    let Outbound::Run(run) = item else { continue };
                    runs.get_or_insert_with(|| (batch.len(), Vec::new()))
                        .1
                        .push(*run);
                    continue;
                }
                Outbound::Status(s) => {
                    serde_json::to_vec(s).map(|body| status_outgoing(&topology, route, body))
                }
                // A request to the completion relays, straight to their queue.
                Outbound::Completion(c, _) => serde_json::to_vec(c)
                    .map(|body| Outgoing::to_queue(topology.completion_outbox_queue.clone(), body)),
            };
            let Ok(message) = message else { continue };
            batch.push(message);
            if let Outbound::Completion(_, w) = item {
                waiters.push(w);
            }
        }
        if let Some((at, node_runs)) = runs {
            // Nobody needs topic routing for these: straight to the status queue.
            match serde_json::to_vec(&StatusBatch { node_runs }) {
                Ok(body) => {
                    batch.insert(at, Outgoing::to_queue(topology.status_queue.clone(), body))
                }
                Err(e) => tracing::warn!(error = %e, "node runs not encodable; dropped"),
            }
        }
        let n = batch.len();
        let first_attempt = tokio::time::Instant::now();
        with_senders(&mut batch, &topology);
        let mut result = publisher.publish(&batch).await;
        vitals.attempt_returned();
        // A completion must not be lost: retry its batch while the broker recovers. Statuses
        // are retried too, for [`STATUS_RETRY_FOR`] (an outage of a minute loses none); later
        // events wait behind them, which keeps their order. Each attempt is bounded; every
        // failure is logged (a silent loop hid issue 13, item 10).
        let mut delay = Duration::from_millis(50);
        let mut attempt = 1u32;
        while let Err(e) = &result {
            if waiters.is_empty() && first_attempt.elapsed() >= STATUS_RETRY_FOR {
                break;
            }
            tracing::warn!(error = %e, attempt, count = n, broker_usable = publisher.usable(), "event batch not published yet; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
            with_senders(&mut batch, &topology);
            result = publisher.publish(&batch).await;
            vitals.attempt_returned();
        }
        match &result {
            Ok(()) => metrics::counter!(m::EVENTS_PUBLISHED).increment(n as u64),
            Err(e) => tracing::warn!(error = %e, count = n, "status events not delivered"),
        }
        vitals.done(taken);
        for w in waiters {
            let _ = w.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| PortError::new(broker_kind(e), e.to_string(), None)),
            );
        }
    }
}

/// Names each completion request's sender afresh for this publish attempt: a request the
/// broker got from an attempt whose confirm was lost is another request than the retry's, so
/// the relay tells them apart (only the first adopted one is sent).
fn with_senders(batch: &mut [Outgoing], topology: &Topology) {
    for message in batch {
        if message.routing_key == topology.completion_outbox_queue {
            message.headers.insert(
                SENDER_HEADER.to_string(),
                uuid::Uuid::new_v4().simple().to_string(),
            );
        }
    }
}

/// A `full` status message: through the topic exchange (every monitor bound there with the
/// status queue's name gets a copy, as from a Rune worker) or straight to the status queue.
fn status_outgoing(topology: &Topology, route: StatusRoute, body: Vec<u8>) -> Outgoing {
    match route {
        StatusRoute::Exchange => Outgoing::new(topology.status_queue.clone(), body),
        StatusRoute::Queue => Outgoing::to_queue(topology.status_queue.clone(), body),
    }
}

#[async_trait]
impl EventSink for AmqpEvents {
    async fn status(&self, event: StatusEvent) -> Result<(), PortError> {
        if event.status == baton_core::message::NodeStatus::Waiting
            && event
                .output
                .as_ref()
                .is_some_and(|o| o.get("retry").is_some())
        {
            metrics::counter!(m::RETRIES, "node_type" => event.node_type.clone()).increment(1);
        }
        // Counted before it is sent: the task may take it at once.
        self.vitals.queued();
        self.tx
            .send(Outbound::Status(Box::new(event)))
            .map_err(|_| publisher_stopped())
    }

    async fn node_run(&self, run: NodeRun) -> Result<(), PortError> {
        self.vitals.queued();
        self.tx
            .send(Outbound::Run(Box::new(run)))
            .map_err(|_| publisher_stopped())
    }

    async fn completion(&self, completion: Completion) -> Result<(), PortError> {
        let (tx, rx) = oneshot::channel();
        self.vitals.queued();
        self.tx
            .send(Outbound::Completion(completion, tx))
            .map_err(|_| publisher_stopped())?;
        rx.await.map_err(|_| publisher_stopped())?
    }

    /// Completions go to the outbox queue, and the workers' completion relays send them.
    fn relays_completions(&self) -> bool {
        true
    }
}

/// Moves due timers from Redis to the execution queue. A timer is claimed with a lease and
/// removed only after its message is confirmed, so a crash in between re-delivers it. Due
/// means due by `clock` (the engine's); `poll` is how often to look, in real time.
pub async fn run_timer_pump(
    timers: TimerStore,
    broker: Broker,
    topology: Arc<Topology>,
    poll: Duration,
    clock: Arc<dyn Clock>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(poll) => {}
        }
        let now_ms = clock.now_ms();
        let due = match timers.claim_due_timed(now_ms, 200, 30_000).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "timer poll failed");
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        let mut batch = Vec::with_capacity(due.len());
        let mut ids = Vec::with_capacity(due.len());
        for ClaimedTimer {
            id,
            payload,
            due_ms,
        } in due
        {
            if let Some(due_ms) = due_ms {
                let lag_ms = now_ms.saturating_sub(due_ms);
                metrics::histogram!(m::TIMER_LAG).record(lag_ms as f64 / 1000.0);
            }
            match serde_json::from_slice::<HopMessage>(&payload) {
                Ok(msg) => match hop_outgoing(&topology.execution_queue, msg) {
                    Ok(o) => {
                        batch.push(o);
                        ids.push(id);
                    }
                    Err(e) => {
                        tracing::error!(timer = id, error = %e, "timer payload not encodable")
                    }
                },
                Err(e) => {
                    tracing::error!(timer = id, error = %e, "timer payload is not a hop message; dropping it");
                    let _ = timers.complete(&id).await;
                }
            }
        }
        match broker.publish(batch).await {
            Ok(()) => {
                for id in ids {
                    if let Err(e) = timers.complete(&id).await {
                        tracing::warn!(timer = id, error = %e, "timer published but not completed; it may fire twice (deduplicated by hop id)");
                    }
                }
                metrics::counter!(m::TIMERS_FIRED).increment(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, "timer publish failed; the lease will expire and it is retried")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_message_goes_straight_to_its_queue_with_its_trace_context_in_the_header_only() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let msg: HopMessage = serde_json::from_value(serde_json::json!({
            "execution_id": "e", "workflow_id": "w", "workflow_ref": "r", "node_id": "n",
            "kind": "run", "traceparent": parent
        }))
        .expect("hop message");
        let out = hop_outgoing(&Topology::default().execution_queue, msg).expect("encodable");
        assert!(out.direct, "hop messages go straight to the queue");
        let header = out.headers.get("traceparent").expect("traceparent header");
        assert_eq!(
            header, parent,
            "traces not exported: the context travels on as it came"
        );
        let body: serde_json::Value = serde_json::from_slice(&out.body).expect("JSON body");
        assert!(body.get("traceparent").is_none(), "{body}");
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;
    use baton_core::message::{ExecutionStatus, NodeStatus};
    use std::sync::Mutex;

    /// Keeps every message it is given.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Outgoing>>);

    #[async_trait]
    impl BatchPublisher for Recorder {
        async fn publish(&self, batch: &[Outgoing]) -> Result<(), baton_amqp::Error> {
            self.0.lock().unwrap().extend_from_slice(batch);
            Ok(())
        }

        fn usable(&self) -> bool {
            true
        }
    }

    fn running() -> StatusEvent {
        StatusEvent {
            workflow_id: "wf".into(),
            execution_id: "e1".into(),
            node_id: "a".into(),
            node_name: "A".into(),
            node_type: "log".into(),
            status: NodeStatus::Running,
            parameters: None,
            output: None,
            error: None,
            executed_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 0,
            branch_id: None,
            split_node_id: None,
            item_index: None,
            total_items: None,
            lineage_stack: Vec::new(),
            attempt: None,
        }
    }

    /// The messages published for one status followed by one completion (whose confirm the
    /// caller waits for, so the status went out before it returns).
    async fn published(route: StatusRoute) -> Vec<Outgoing> {
        let recorder = Arc::new(Recorder::default());
        let topology = Arc::new(Topology::new("t."));
        let (events, _task) =
            AmqpEvents::start_with(recorder.clone(), topology, route, EVENTS_DEADLINE);
        events.status(running()).await.unwrap();
        events
            .completion(Completion {
                workflow_id: "wf".into(),
                execution_id: "e1".into(),
                status: ExecutionStatus::Completed,
                final_context: Default::default(),
                completed_at: "2026-01-01T00:00:00Z".into(),
                total_duration_ms: 1,
                failure_reason: None,
            })
            .await
            .unwrap();
        recorder.0.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn full_statuses_go_through_the_topic_exchange_by_default_for_rune_monitors() {
        let sent = published(StatusRoute::default()).await;
        let status = &sent[0];
        assert_eq!(status.routing_key, "t.workflow.node.status");
        assert!(
            !status.direct,
            "through the exchange: monitors bound there see it"
        );
        // The completion request goes straight to the outbox whatever the route.
        assert_eq!(sent[1].routing_key, "t.workflow.completion.outbox");
        assert!(sent[1].direct);
    }

    #[tokio::test]
    async fn full_statuses_routed_to_the_queue_skip_the_topic_exchange() {
        let sent = published(StatusRoute::Queue).await;
        let status = &sent[0];
        assert_eq!(status.routing_key, "t.workflow.node.status");
        assert!(status.direct, "straight to the status queue");
        let body: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
        assert_eq!(body["status"], "running", "the same Rune message");
    }
}
