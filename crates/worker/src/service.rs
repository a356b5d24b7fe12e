//! The worker service: consume, run hops with bounded concurrency, ack only after a hop's
//! effects are stored and its successors confirmed, dead-letter poison, drain on shutdown.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_amqp::{AmqpOptions, Broker, Delivery};
use baton_core::wire::{CancelMessage, HopKind, HopMessage, Intake, SignalMessage, classify};
use baton_engine::ports::{ExecutionStore, PortError};
use baton_engine::{Clock, Engine, HopOutcome, NodeRegistry, SystemClock};
use baton_redis::{DeliveryCounts, RedisOptions, RedisStore};
use baton_vault::RedisVault;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::budget::{self, Verdict};
use crate::completion_relay::CompletionRelay;
use crate::definitions::{DefinitionError, Definitions};
use crate::failure::{DeadLetterReason, bounded, panic_message};
use crate::metrics_names as m;
use crate::settings::Settings;
use crate::settle::{Settle, Subject};
use crate::start::StartError;
use crate::transport::{AmqpEvents, AmqpHopQueue, run_timer_pump};
use crate::watchdog::{NotReady, Watch};
use baton_telemetry::context;

/// Bound on the Redis PING of a readiness probe.
const REDIS_PING_BOUND: Duration = Duration::from_secs(2);

/// Completion requests a worker's relay holds unsettled at once (they share one commit).
const RELAY_PREFETCH: u16 = 64;

/// A worker that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("RabbitMQ: {0}")]
    Broker(#[source] baton_amqp::Error),
    #[error("Redis: {0}")]
    Redis(#[source] baton_redis::Error),
    #[error("HTTP listener: {0}")]
    Http(String),
    #[error("credential vault: {0}")]
    Vault(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Shared state of a running worker.
pub struct Worker {
    pub settings: Settings,
    pub broker: Broker,
    pub store: Arc<RedisStore>,
    pub engine: Arc<Engine>,
    pub definitions: Arc<Definitions>,
    pub events: AmqpEvents,
    pub draining: AtomicBool,
    pub(crate) transient_failures: Mutex<HashMap<String, u64>>,
    pub(crate) deliveries: DeliveryCounts,
    /// Readiness and the watchdog (atomics only).
    pub watch: Arc<Watch>,
}

impl Worker {
    /// Connects to RabbitMQ and Redis and wires the engine.
    pub async fn connect(
        settings: Settings,
        registry: NodeRegistry,
    ) -> Result<Arc<Self>, WorkerError> {
        let opts = AmqpOptions {
            prefetch: settings.prefetch,
            publisher_channels: settings.publisher_channels,
            connection_name: Some(format!("baton-worker-{}", std::process::id())),
            ..AmqpOptions::from(&settings.connection)
        };
        let broker = Broker::connect(opts).await.map_err(WorkerError::Broker)?;
        let redis_opts = RedisOptions {
            key_prefix: settings.connection.key_prefix.clone(),
            completed_ttl_secs: settings.completed_ttl_secs,
            cluster: settings.connection.redis_cluster,
            buckets: settings.connection.redis_buckets,
            replication_wait_ms: settings.connection.redis_wait_ms,
            ..RedisOptions::default()
        };
        let store = Arc::new(
            RedisStore::connect(&settings.connection.redis_url, redis_opts)
                .await
                .map_err(WorkerError::Redis)?,
        );
        let timers = store.timers();
        let def_store = store.definitions();
        let topology = Arc::new(broker.options().topology.clone());
        let registry = Arc::new(registry);
        let definitions = Arc::new(
            Definitions::new(def_store, registry.clone()).with_limits(settings.definition_limits()),
        );
        let (events, _task) =
            AmqpEvents::start(broker.clone(), topology.clone(), settings.status_route);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let queue = AmqpHopQueue::new(broker.clone(), timers.clone(), topology, clock.clone());
        let mut engine = Engine::new(
            store.clone(),
            Arc::new(queue),
            Arc::new(events.clone()),
            definitions.clone(),
            registry,
        )
        .with_clock(clock)
        .with_node_spans(baton_telemetry::enabled());
        // `workflow` nodes start workflows from the catalog the master's `POST /workflows` writes
        // (same Redis, same prefix); the catalog stores each definition by reference, where
        // every worker's `Definitions` loads it from.
        engine = engine
            .with_catalog(Arc::new(store.catalog()))
            .with_max_workflow_depth(settings.max_workflow_depth)
            .with_max_split_items(settings.max_split_items)
            .with_status_mode(settings.status_mode)
            .with_local_arrivals(settings.local_arrivals);
        // The vault lives next to the execution state (same Redis, same prefix): the master
        // writes credentials there, and only a worker holding the key can reveal them.
        if let Some(key) = settings
            .vault_key()
            .map_err(|e| WorkerError::Vault(Box::new(e)))?
        {
            let vault = RedisVault::new(store.connection(), &settings.connection.key_prefix, key);
            // A worker whose key cannot open the vault would fail every node that uses a
            // credential: it refuses to start instead (the error names both key ids).
            let key_id = vault
                .check_key()
                .await
                .map_err(|e| WorkerError::Vault(Box::new(e)))?;
            tracing::info!(key_id, "credentials key opens the vault");
            engine = engine.with_vault(Arc::new(vault));
        }
        let engine = Arc::new(engine);
        let deliveries = store.deliveries();
        let watch = Arc::new(Watch::new(
            broker.clone(),
            events.vitals().clone(),
            settings.watchdog_secs,
            settings.broker_down_exit_secs,
        ));
        let worker = Arc::new(Self {
            settings,
            broker,
            store,
            engine,
            definitions,
            events,
            draining: AtomicBool::new(false),
            watch,
            transient_failures: Mutex::new(HashMap::new()),
            deliveries,
        });
        Ok(worker)
    }

    /// Broker connected and not blocked, the execution consumer alive with a free slot, hops
    /// progressing, the event publisher not stuck, Redis answering, not draining.
    pub async fn ready(&self) -> bool {
        self.readiness().await.is_ok()
    }

    /// [`Worker::ready`] with the reason it is not. Bounded: the broker side reads atomics
    /// only, the Redis ping waits at most [`REDIS_PING_BOUND`].
    pub async fn readiness(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Relaxed) {
            return Err("draining".into());
        }
        self.watch
            .readiness()
            .map_err(|e: NotReady| e.to_string())?;
        match tokio::time::timeout(REDIS_PING_BOUND, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("Redis: {e}")),
            Err(_) => Err("Redis did not answer a PING in time".into()),
        }
    }

    /// Runs until `shutdown` fires, then drains in-flight hops (bounded by the drain timeout).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let timers = self.store.timers();
        let topology = Arc::new(self.broker.options().topology.clone());
        let background = CancellationToken::new();
        let pump = tokio::spawn(run_timer_pump(
            timers,
            self.broker.clone(),
            topology.clone(),
            Duration::from_millis(self.settings.timer_poll_ms),
            self.engine.clock().clone(),
            background.clone(),
        ));
        // Every worker relays completion requests (see `completion_relay.rs`) until the hops
        // in flight are drained: they may still request completions.
        let relay = tokio::spawn({
            let handler = Arc::new(CompletionRelay::new(self.store.clone(), topology.clone()));
            let (broker, stop) = (self.broker.clone(), background.clone());
            let queue = topology.completion_outbox_queue.clone();
            async move {
                if let Err(e) = broker
                    .run_relay(&queue, RELAY_PREFETCH, handler, stop)
                    .await
                {
                    tracing::error!(error = %e, "completion relay stopped");
                }
            }
        });
        let cancels = tokio::spawn({
            let worker = self.clone();
            let stop = background.clone();
            async move {
                let Ok(stream) = worker.store.subscribe_cancels().await else {
                    return;
                };
                let mut stream = std::pin::pin!(stream);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        next = stream.next() => match next {
                            // An execution id, or a race's losing nodes (a JSON object).
                            Some(payload) => match baton_core::wire::NodeCancel::from_payload(&payload) {
                                Some(nodes) => {
                                    worker.engine.cancel_nodes_local(&nodes);
                                }
                                None => worker.engine.cancel_local(&payload),
                            },
                            None => return,
                        },
                    }
                }
            }
        });

        let tag = format!("baton-worker-{}", uuid::Uuid::new_v4());
        let mut deliveries = self
            .broker
            .consume(&topology.execution_queue, &tag)
            .await
            .map_err(WorkerError::Broker)?;
        self.watch.set_consumer(deliveries.health_probe());
        if let Err(e) = self.watch.spawn() {
            tracing::error!(error = %e, "cannot start the watchdog thread");
        }
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let tracker = TaskTracker::new();
        tracing::info!(queue = %topology.execution_queue, concurrency = self.settings.concurrency, "worker consuming");
        loop {
            let permit = tokio::select! {
                () = shutdown.cancelled() => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let delivery = tokio::select! {
                () = shutdown.cancelled() => break,
                d = deliveries.next() => match d { Some(d) => d, None => break },
            };
            let worker = self.clone();
            tracker.spawn(async move {
                metrics::gauge!(m::IN_FLIGHT).increment(1.0);
                // Boxed: a hop's future is several KB, and a task copies its future when it
                // is spawned and when it completes. `process` contains panics in the hop and
                // settles the delivery; this catch only keeps the gauge and permit true.
                let processing = AssertUnwindSafe(Box::pin(worker.process(delivery)));
                if processing.catch_unwind().await.is_err() {
                    tracing::error!("settling a delivery panicked; the broker redelivers it when the channel closes");
                }
                metrics::gauge!(m::IN_FLIGHT).decrement(1.0);
                drop(permit);
            });
        }
        // Drain: no new deliveries; in-flight hops finish within the grace period. Hops still
        // running at the deadline are handed back to the broker when the connection closes.
        self.draining.store(true, Ordering::Relaxed);
        self.watch.stop();
        deliveries.cancel().await;
        tracker.close();
        let drained = tokio::time::timeout(
            Duration::from_secs(self.settings.drain_timeout_secs),
            tracker.wait(),
        )
        .await
        .is_ok();
        tracing::info!(drained, "worker stopping");
        background.cancel();
        let _ = pump.await;
        let _ = relay.await;
        cancels.abort();
        self.broker.close().await;
        Ok(())
    }

    /// Judges, handles and settles one delivery, exactly once: acked, handed back or
    /// dead-lettered, whatever happens inside (a panic included).
    async fn process(&self, mut delivery: Delivery) {
        crate::intake_metrics::record(&delivery);
        // Before anything else reads the body: the crash being counted may be in reading it.
        if let Verdict::Spent { crashes } =
            budget::judge(&self.deliveries, &delivery, self.settings.max_deliveries).await
        {
            metrics::counter!(m::CRASH_BUDGET_SPENT).increment(1);
            let subject = self.subject_of(&delivery.body);
            let reason = DeadLetterReason::Crashed { workers: crashes };
            return self.poison(delivery, reason, subject).await;
        }
        let settle = match AssertUnwindSafe(self.handle(&delivery))
            .catch_unwind()
            .await
        {
            Ok(settle) => settle,
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                tracing::error!(panic = %bounded(&message), "processing a message panicked");
                metrics::counter!(m::PANICS).increment(1);
                Settle::DeadLetter(
                    DeadLetterReason::Panicked(message),
                    self.subject_of(&delivery.body),
                )
            }
        };
        match settle {
            Settle::Ack => {
                let body = std::mem::take(&mut delivery.body);
                let acked = delivery.acked().await;
                if let Err(e) = &acked {
                    tracing::warn!(error = %e, "ack failed; the broker will redeliver (deduplicated)");
                }
                if !matches!(acked, Ok(true)) {
                    // Its channel is gone (a broker restart), not this worker: recorded as
                    // handed back, the redelivery is not charged to the crash budget.
                    self.record_hand_back(&body).await;
                }
            }
            Settle::DeadLetter(reason, subject) => self.poison(delivery, reason, subject).await,
            Settle::Failed {
                key,
                error,
                subject,
            } => self.failed(delivery, &key, &error, subject).await,
        }
    }

    /// The execution (and node) a message names, read again on the rare paths that need it
    /// after the fact (a spent budget, a panic). A panic while reading it names nothing.
    fn subject_of(&self, body: &[u8]) -> Option<Subject> {
        let max = self.settings.max_message_bytes;
        let intake = std::panic::catch_unwind(|| classify(body, max)).ok()?;
        match intake {
            Intake::Hop(msg) => Some(Subject::hop(
                &msg.workflow_id,
                &msg.execution_id,
                &msg.node_id,
            )),
            Intake::RuneStart(start) => Some(Subject::start(&start)),
            Intake::Poison {
                reason,
                execution: Some((workflow_id, execution_id)),
            } => Some(Subject {
                workflow_id,
                execution_id,
                node_id: None,
                start: reason.is_start(),
            }),
            _ => None,
        }
    }

    /// What to do with a delivery; settled by [`process`](Self::process) only.
    async fn handle(&self, delivery: &Delivery) -> Settle {
        let started = Instant::now();
        let traceparent = delivery.headers.get("traceparent").cloned();
        match classify(&delivery.body, self.settings.max_message_bytes) {
            Intake::Poison { reason, execution } => {
                let subject = execution.map(|(workflow_id, execution_id)| Subject {
                    workflow_id,
                    execution_id,
                    node_id: None,
                    start: reason.is_start(),
                });
                Settle::DeadLetter(DeadLetterReason::Unreadable(reason.to_string()), subject)
            }
            Intake::Cancel(CancelMessage { execution_id: id }) => match self.cancel(&id).await {
                Ok(cancelled) => {
                    tracing::info!(execution_id = %id, cancelled, "cancel request");
                    Settle::Ack
                }
                Err(error) => Settle::Failed {
                    key: format!("cancel:{id}"),
                    error,
                    subject: None,
                },
            },
            Intake::Signal(SignalMessage {
                execution_id,
                name,
                data,
            }) => {
                let result = async {
                    if let Some(identity) = self.store.identity(&execution_id).await? {
                        match self.definitions.ensure(&identity.workflow_ref).await {
                            Err(DefinitionError::Store(e)) => return Err(e.into()),
                            Err(_) => return Ok(0),
                            Ok(_) => {}
                        }
                    }
                    self.engine.signal(&execution_id, &name, data).await
                }
                .await;
                match result {
                    Ok(resumed) => {
                        tracing::info!(execution_id = %execution_id, signal = %name, resumed, "signal delivered");
                        Settle::Ack
                    }
                    Err(error) => Settle::Failed {
                        key: format!("signal:{execution_id}:{name}"),
                        error,
                        subject: None,
                    },
                }
            }
            Intake::RuneStart(start) => {
                let subject = Some(Subject::start(&start));
                match self.start_rune(&start, traceparent).await {
                    Ok(()) => {
                        metrics::counter!(m::EXECUTIONS_STARTED).increment(1);
                        Settle::Ack
                    }
                    Err(StartError::Invalid(reason)) => {
                        Settle::DeadLetter(DeadLetterReason::InvalidStart(reason), subject)
                    }
                    Err(StartError::UnknownReference(reference)) => {
                        Settle::DeadLetter(DeadLetterReason::UnknownWorkflowRef(reference), subject)
                    }
                    Err(StartError::Port(error)) => Settle::Failed {
                        key: format!("start:{}", start.execution_id),
                        error,
                        subject,
                    },
                }
            }
            Intake::Hop(mut msg) => {
                if traceparent.is_some() {
                    msg.traceparent = traceparent;
                }
                // Built on the failure paths only: a hop that goes well allocates neither.
                let subject = |msg: &HopMessage| {
                    Subject::hop(&msg.workflow_id, &msg.execution_id, &msg.node_id)
                };
                let key = |msg: &HopMessage| format!("{}|{}", msg.execution_id, msg.hop_id());
                let wf = match self.definitions.ensure(&msg.workflow_ref).await {
                    Ok(wf) => wf,
                    Err(DefinitionError::Store(e)) => {
                        return Settle::Failed {
                            key: key(&msg),
                            error: e.into(),
                            subject: Some(subject(&msg)),
                        };
                    }
                    Err(e) => {
                        return Settle::DeadLetter(
                            DeadLetterReason::InvalidDefinition(e.to_string()),
                            Some(subject(&msg)),
                        );
                    }
                };
                let node_type = wf
                    .node(&msg.node_id)
                    .map(|n| n.node_type.clone())
                    .unwrap_or_else(|| "unknown".into());
                let span = if baton_telemetry::enabled() {
                    // Exported: the hop's attributes, a child of the span that sent it.
                    let span = tracing::info_span!("hop", workflow_id = %msg.workflow_id, execution_id = %msg.execution_id, node_id = %msg.node_id, node_type = %node_type, kind = ?msg.kind, attempt = msg.attempt, trace_id = %context::trace_id(msg.traceparent.as_deref()), outcome = tracing::field::Empty);
                    context::set_parent(&span, msg.traceparent.as_deref());
                    span
                } else {
                    tracing::info_span!("hop", execution_id = %msg.execution_id, node_id = %msg.node_id, node_type = %node_type, trace_id = %context::trace_id(msg.traceparent.as_deref()))
                };
                let handled =
                    tracing::Instrument::instrument(self.engine.handle_ref(&msg), span.clone())
                        .await;
                match handled {
                    Ok(outcome) => {
                        // A deadline that fails its execution aborts its nodes on every
                        // worker, as a cancel does.
                        if let (HopKind::Deadline, HopOutcome::Done) = (msg.kind, &outcome)
                            && let Err(e) = self.store.publish_cancel(&msg.execution_id).await
                        {
                            tracing::warn!(execution_id = %msg.execution_id, error = %e, "deadline passed; running nodes elsewhere not told to stop");
                        }
                        let label = match &outcome {
                            HopOutcome::Done => "done",
                            HopOutcome::Dropped => "dropped",
                            HopOutcome::Poison(_) => "poison",
                        };
                        span.record("outcome", label);
                        metrics::counter!(m::HOPS, "node_type" => node_type.clone(), "outcome" => label).increment(1);
                        metrics::histogram!(m::HOP_SECONDS, "node_type" => node_type)
                            .record(started.elapsed().as_secs_f64());
                        match outcome {
                            // The engine's reason names the node already.
                            HopOutcome::Poison(reason) => Settle::DeadLetter(
                                DeadLetterReason::Refused(reason),
                                Some(Subject {
                                    node_id: None,
                                    ..subject(&msg)
                                }),
                            ),
                            _ => Settle::Ack,
                        }
                    }
                    Err(error) => {
                        span.record("outcome", "failed");
                        Settle::Failed {
                            key: key(&msg),
                            error,
                            subject: Some(subject(&msg)),
                        }
                    }
                }
            }
        }
    }

    async fn cancel(&self, execution_id: &str) -> Result<bool, PortError> {
        let Some(identity) = self.store.identity(execution_id).await? else {
            // Not started (yet): the engine remembers the cancel for its start.
            return self.engine.cancel(execution_id).await;
        };
        if let Err(e) = self.definitions.ensure(&identity.workflow_ref).await {
            return match e {
                DefinitionError::Store(e) => Err(e.into()),
                _ => Ok(false),
            };
        }
        let cancelled = self.engine.cancel(execution_id).await?;
        self.store.publish_cancel(execution_id).await?;
        if cancelled {
            // Its timers (waits, signal timeouts, retries) would only fire into a finished
            // execution: remove them now rather than when due.
            let removed = self
                .store
                .timers()
                .forget_execution(execution_id)
                .await
                .map_err(PortError::from)?;
            tracing::debug!(
                execution_id,
                removed,
                "timers of the cancelled execution removed"
            );
        }
        Ok(cancelled)
    }
}
