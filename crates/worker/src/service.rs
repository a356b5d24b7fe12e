//! The worker service: consume, run hops with bounded concurrency, ack only after a hop's
//! effects are stored and its successors confirmed, dead-letter poison, drain on shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_amqp::{AmqpOptions, Broker, Delivery};
use baton_core::wire::{
    CancelMessage, ErrorInfo, Intake, NodeStatus, RuneStart, SignalMessage, StatusEvent, classify,
};
use baton_engine::ports::{EventSink, ExecutionStart, ExecutionStore, PortError};
use baton_engine::{Clock, Engine, HopOutcome, NodeRegistry, StartRequest, SystemClock};
use baton_redis::{RedisOptions, RedisStore};
use baton_vault::RedisVault;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::completion_relay::CompletionRelay;
use crate::definitions::{DefinitionError, Definitions};
use crate::failure::{Disposition, disposition};
use crate::metrics_names as m;
use crate::settings::Settings;
use crate::trace;
use crate::transport::{AmqpEvents, AmqpHopQueue, run_timer_pump};

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
    transient_failures: Mutex<HashMap<String, u32>>,
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
        let definitions = Arc::new(Definitions::new(def_store, registry.clone()));
        let (events, _task) = AmqpEvents::start(broker.clone(), topology.clone());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let queue = AmqpHopQueue::new(broker.clone(), timers.clone(), topology, clock.clone());
        let mut engine = Engine::new(
            store.clone(),
            Arc::new(queue),
            Arc::new(events.clone()),
            definitions.clone(),
            registry,
        )
        .with_clock(clock);
        // `workflow` nodes start workflows from the catalog the master's `POST /workflows` writes
        // (same Redis, same prefix); the catalog stores each definition by reference, where
        // every worker's `Definitions` loads it from.
        engine = engine
            .with_catalog(Arc::new(store.catalog()))
            .with_max_workflow_depth(settings.max_workflow_depth);
        // The vault lives next to the execution state (same Redis, same prefix): the master
        // writes credentials there, and only a worker holding the key can reveal them.
        if let Some(key) = settings
            .vault_key()
            .map_err(|e| WorkerError::Vault(Box::new(e)))?
        {
            let vault = RedisVault::connect(
                &settings.connection.redis_url,
                &settings.connection.key_prefix,
                key,
            )
            .await
            .map_err(|e| WorkerError::Vault(Box::new(e)))?;
            engine = engine.with_vault(Arc::new(vault));
        }
        let engine = Arc::new(engine);
        let worker = Arc::new(Self {
            settings,
            broker,
            store,
            engine,
            definitions,
            events,
            draining: AtomicBool::new(false),
            transient_failures: Mutex::new(HashMap::new()),
        });
        Ok(worker)
    }

    /// Broker connected, Redis answering, not draining.
    pub async fn ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
            && self.broker.is_ready()
            && self.store.ping().await.is_ok()
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
                            Some(id) => worker.engine.cancel_local(&id),
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
                // is spawned and when it completes.
                Box::pin(worker.process(delivery)).await;
                metrics::gauge!(m::IN_FLIGHT).decrement(1.0);
                drop(permit);
            });
        }
        // Drain: no new deliveries; in-flight hops finish within the grace period. Hops still
        // running at the deadline are handed back to the broker when the connection closes.
        self.draining.store(true, Ordering::Relaxed);
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

    async fn process(&self, delivery: Delivery) {
        let started = Instant::now();
        let traceparent = delivery.headers.get("traceparent").cloned();
        match classify(&delivery.body, self.settings.max_message_bytes) {
            Intake::Poison { reason, execution } => {
                self.poison(delivery, &reason.to_string(), execution, None)
                    .await
            }
            Intake::Cancel(CancelMessage { execution_id: id }) => match self.cancel(&id).await {
                Ok(cancelled) => {
                    tracing::info!(execution_id = %id, cancelled, "cancel request");
                    let _ = delivery.ack().await;
                }
                Err(e) => self.failed(delivery, &format!("cancel:{id}"), &e).await,
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
                        let _ = delivery.ack().await;
                    }
                    Err(e) => {
                        self.failed(delivery, &format!("signal:{execution_id}:{name}"), &e)
                            .await
                    }
                }
            }
            Intake::RuneStart(start) => {
                let outcome = self.start_rune(&start, traceparent).await;
                match outcome {
                    Ok(()) => {
                        metrics::counter!(m::EXECUTIONS_STARTED).increment(1);
                        let _ = delivery.ack().await;
                    }
                    Err(StartError::Invalid(reason)) => {
                        let exec = Some((start.workflow_id(), start.execution_id.clone()));
                        self.poison(delivery, &reason, exec, Some(&start.current_node))
                            .await;
                    }
                    Err(StartError::Port(e)) => {
                        self.failed(delivery, &format!("start:{}", start.execution_id), &e)
                            .await
                    }
                }
            }
            Intake::Hop(mut msg) => {
                if traceparent.is_some() {
                    msg.traceparent = traceparent;
                }
                let exec = (msg.workflow_id.clone(), msg.execution_id.clone());
                let hop_id = format!("{}|{}", msg.execution_id, msg.hop_id());
                let wf = match self.definitions.ensure(&msg.workflow_ref).await {
                    Ok(wf) => wf,
                    Err(DefinitionError::Store(e)) => {
                        return self.failed(delivery, &hop_id, &e.into()).await;
                    }
                    Err(e) => {
                        return self
                            .poison(delivery, &e.to_string(), Some(exec), None)
                            .await;
                    }
                };
                let node_type = wf
                    .node(&msg.node_id)
                    .map(|n| n.node_type.clone())
                    .unwrap_or_else(|| "unknown".into());
                let span = tracing::info_span!("hop", execution_id = %msg.execution_id, node_id = %msg.node_id, node_type = %node_type, trace_id = %trace::trace_id(msg.traceparent.as_deref()));
                match tracing::Instrument::instrument(self.engine.handle(*msg), span).await {
                    Ok(outcome) => {
                        let label = match &outcome {
                            HopOutcome::Done => "done",
                            HopOutcome::Dropped => "dropped",
                            HopOutcome::Poison(_) => "poison",
                        };
                        metrics::counter!(m::HOPS, "node_type" => node_type.clone(), "outcome" => label).increment(1);
                        metrics::histogram!(m::HOP_SECONDS, "node_type" => node_type)
                            .record(started.elapsed().as_secs_f64());
                        match outcome {
                            HopOutcome::Poison(reason) => {
                                self.poison(delivery, &reason, Some(exec), None).await
                            }
                            _ => {
                                if let Err(e) = delivery.ack().await {
                                    tracing::warn!(error = %e, "ack failed; the broker will redeliver (deduplicated)");
                                }
                            }
                        }
                    }
                    Err(e) => self.failed(delivery, &hop_id, &e).await,
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
        Ok(cancelled)
    }

    async fn start_rune(
        &self,
        start: &RuneStart,
        traceparent: Option<String>,
    ) -> Result<(), StartError> {
        let wf = match self.definitions.register(&start.workflow_definition).await {
            Ok(wf) => wf,
            Err(DefinitionError::Store(e)) => return Err(StartError::Port(e.into())),
            Err(e) => {
                return Err(StartError::Invalid(format!(
                    "invalid workflow_definition: {e}"
                )));
            }
        };
        // A Rune master may name the trigger itself (or Baton's `$start`): start at the start nodes.
        let start_at = if start.current_node == "$start" {
            None
        } else {
            let Some(node) = wf.node(&start.current_node) else {
                return Err(StartError::Invalid(format!(
                    "current_node `{}` is not a node of the workflow",
                    start.current_node
                )));
            };
            (!node.trigger).then_some(start.current_node.as_str())
        };
        let seed = start.seed();
        let traceparent = Some(traceparent.unwrap_or_else(trace::new_root));
        self.engine
            .start(
                &wf,
                StartRequest {
                    workflow_id: start.workflow_id(),
                    execution_id: start.execution_id.clone(),
                    seed,
                    start_at: start_at.map(str::to_string),
                    traceparent,
                },
            )
            .await
            .map_err(StartError::Port)
    }

    /// Dead-letters a message with its reason; fails its execution if known.
    async fn poison(
        &self,
        delivery: Delivery,
        reason: &str,
        execution: Option<(String, String)>,
        node_id: Option<&str>,
    ) {
        tracing::error!(reason, "dead-lettering message");
        metrics::counter!(m::DEAD_LETTERS).increment(1);
        if let Err(e) = self
            .broker
            .dead_letter(delivery.body.clone(), reason, delivery.headers.clone())
            .await
        {
            // Not dead-lettered: hand it back rather than lose it.
            tracing::error!(error = %e, "dead-letter publish failed; requeueing");
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = delivery.nack_requeue().await;
            return;
        }
        if let Some((workflow_id, execution_id)) = execution {
            if let Some(node_id) = node_id {
                let ev = StatusEvent {
                    workflow_id: workflow_id.clone(),
                    execution_id: execution_id.clone(),
                    node_id: node_id.to_string(),
                    node_name: node_id.to_string(),
                    node_type: String::new(),
                    status: NodeStatus::Failed,
                    parameters: None,
                    output: None,
                    error: Some(ErrorInfo {
                        message: reason.to_string(),
                        code: "NODE_CREATION_FAILED".into(),
                        details: None,
                    }),
                    executed_at: self.engine.clock().rfc3339_now(),
                    duration_ms: 0,
                    branch_id: None,
                    split_node_id: None,
                    item_index: None,
                    total_items: None,
                    lineage_stack: Vec::new(),
                    attempt: None,
                };
                let _ = self.events.status(ev).await;
                // The execution may never have started: create it so it can end `failed`.
                let start = ExecutionStart {
                    execution_id: execution_id.clone(),
                    workflow_id: workflow_id.clone(),
                    workflow_ref: String::new(),
                    seed: Default::default(),
                    initial_tokens: 1,
                    started_at_ms: self.engine.clock().now_ms(),
                };
                let _ = self.store.start(&start).await;
            }
            if let Err(e) = self
                .engine
                .fail_execution(&workflow_id, &execution_id, reason.to_string())
                .await
            {
                tracing::warn!(error = %e, execution_id, "could not mark the execution failed");
            }
        }
        let _ = delivery.ack().await;
    }

    /// A port failed under this message: a permanent failure dead-letters it at once with its
    /// reason; a transient one hands it back after a pause (no hot loop), within a budget.
    async fn failed(&self, delivery: Delivery, hop_id: &str, error: &PortError) {
        if disposition(error.kind(), 0) == Disposition::DeadLetter {
            let reason = format!("failed with a permanent error: {error}");
            return self.poison(delivery, &reason, None, None).await;
        }
        metrics::counter!(m::TRANSIENT_ERRORS).increment(1);
        let count = {
            let mut map = self
                .transient_failures
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if map.len() > 100_000 {
                map.clear();
            }
            let c = map.entry(hop_id.to_string()).or_insert(0);
            *c += 1;
            *c
        };
        // Infrastructure that is down for everyone is not the message's fault; a message that
        // keeps failing while Redis answers is.
        if disposition(error.kind(), count) == Disposition::DeadLetterIfStoreAnswers
            && self.store.ping().await.is_ok()
        {
            let reason = format!("failed {count} times with transient errors, last: {error}");
            return self.poison(delivery, &reason, None, None).await;
        }
        tracing::warn!(
            error = %error,
            attempt = count,
            "hop failed on infrastructure; handing it back"
        );
        let pause = Duration::from_millis((100u64 << count.min(6)).min(5_000));
        tokio::time::sleep(pause).await;
        let _ = delivery.nack_requeue().await;
    }
}

enum StartError {
    Invalid(String),
    /// A port failed: retried or dead-lettered on its kind.
    Port(PortError),
}
