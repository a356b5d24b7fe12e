//! The distributed backend: start, cancel and signal messages go to the execution queue (starts
//! by reference unless turned off: `stored_refs.rs`); the durable status and completion queues
//! are consumed by every
//! master replica (competing consumers: each event reaches one replica), acked only after the
//! handler stored the event. The dead-letter queue is only read (`GET /dead-letters`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use baton_amqp::{AmqpOptions, Broker, Delivery, Outgoing};
use baton_core::wire::{CancelMessage, Completion, SignalMessage, StatusMessage};
use baton_settings::ConnectionSettings;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::stored_refs::StoredRefs;
use super::{Backend, BackendError, EventHandler, LiveEvent, StartOrder};

/// Events handled at once per queue; history writes are commutative, so order does not matter.
const CONCURRENCY: usize = 32;
/// Pause before a delivery whose event could not be stored is handed back.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

pub struct AmqpBackend {
    broker: Broker,
    execution_queue: String,
    status_queue: String,
    completion_queue: String,
    /// Starts by reference (RFC 0011); `None`: the workflow inline (Rune's shape).
    by_reference: Option<StoredRefs>,
}

impl AmqpBackend {
    /// Connects with the workers' topology (same queue prefix).
    pub async fn connect(settings: &ConnectionSettings) -> Result<Self, BackendError> {
        let opts = AmqpOptions {
            prefetch: 64,
            connection_name: Some(format!("baton-master-{}", std::process::id())),
            connect_timeout: Duration::from_secs(10),
            ..AmqpOptions::from(settings)
        };
        let topology = opts.topology.clone();
        let broker = Broker::connect(opts).await?;
        Ok(Self {
            broker,
            execution_queue: topology.execution_queue,
            status_queue: topology.status_queue,
            completion_queue: topology.completion_queue,
            by_reference: None,
        })
    }

    /// Starts name their definition by hash, stored first through `refs` (RFC 0011).
    pub fn with_starts_by_reference(mut self, refs: StoredRefs) -> Self {
        self.by_reference = Some(refs);
        self
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    async fn publish(&self, body: &impl Serialize) -> Result<(), BackendError> {
        let bytes = serde_json::to_vec(body)?;
        let mut message = Outgoing::new(self.execution_queue.clone(), bytes);
        // The request's trace goes on with the message (a start: the execution's whole trace).
        if let Some(traceparent) = baton_telemetry::context::current() {
            message = message.with_header(baton_telemetry::context::TRACEPARENT, traceparent);
        }
        self.broker
            .publish(vec![message])
            .await
            .map_err(BackendError::from)
    }

    async fn consume(
        &self,
        queue: &str,
        completion: bool,
        handler: Arc<dyn EventHandler>,
        shutdown: CancellationToken,
    ) {
        let tag = format!("baton-master-{}-{queue}", std::process::id());
        let mut deliveries = loop {
            match self.broker.consume(queue, &tag).await {
                Ok(d) => break d,
                Err(e) => {
                    tracing::warn!(queue, error = %e, "cannot consume yet; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        let stream = futures_util::stream::poll_fn(|cx| deliveries.poll_next_unpin(cx))
            .take_until(shutdown.cancelled());
        stream
            .for_each_concurrent(CONCURRENCY, |d| {
                let handler = handler.clone();
                async move { settle(d, completion, handler).await }
            })
            .await;
        deliveries.cancel().await;
    }
}

async fn settle(delivery: Delivery, completion: bool, handler: Arc<dyn EventHandler>) {
    // A status message is a Rune status event (`full`) or a batch of node runs (`compact`),
    // stored as the final status events they stand for (RFC 0011).
    let events = if completion {
        serde_json::from_slice::<Completion>(&delivery.body).map(|c| vec![LiveEvent::Completion(c)])
    } else {
        StatusMessage::parse(&delivery.body).map(|m| {
            m.into_events()
                .into_iter()
                .map(LiveEvent::Status)
                .collect::<Vec<_>>()
        })
    };
    let events = match events {
        Ok(e) => e,
        Err(e) => {
            // Statuses are monitoring (RFC 0004): an unreadable one is dropped, not looped.
            tracing::warn!(error = %e, completion, "unreadable event dropped");
            let _ = delivery.ack().await;
            return;
        }
    };
    let mut stored = Ok(());
    for event in events {
        // Every write is idempotent (by rank), so a batch handed back is stored again whole.
        stored = handler.handle(event).await;
        if stored.is_err() {
            break;
        }
    }
    match stored {
        Ok(()) => {
            if let Err(e) = delivery.ack().await {
                tracing::warn!(error = %e, "ack failed; the event will be redelivered (idempotent)");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "event not stored; handing it back");
            tokio::time::sleep(RETRY_PAUSE).await;
            let _ = delivery.nack_requeue().await;
        }
    }
}

#[async_trait]
impl Backend for AmqpBackend {
    async fn start(&self, order: &StartOrder) -> Result<(), BackendError> {
        match &self.by_reference {
            Some(refs) => self.publish(&refs.message(order).await?).await,
            None => self.publish(&order.rune_message()).await,
        }
    }

    async fn cancel(&self, execution_id: &str) -> Result<(), BackendError> {
        self.publish(&CancelMessage::new(execution_id)).await
    }

    async fn signal(
        &self,
        execution_id: &str,
        name: &str,
        data: Value,
    ) -> Result<(), BackendError> {
        self.publish(&SignalMessage::new(execution_id, name, data))
            .await
    }

    async fn ready(&self) -> bool {
        self.broker.is_ready()
    }

    fn broker_node(&self) -> Option<String> {
        self.broker.node()
    }

    async fn run_intake(&self, handler: Arc<dyn EventHandler>, shutdown: CancellationToken) {
        let status = self.consume(&self.status_queue, false, handler.clone(), shutdown.clone());
        let completion = self.consume(&self.completion_queue, true, handler, shutdown);
        tokio::join!(status, completion);
    }

    async fn dead_letters(
        &self,
        limit: usize,
    ) -> Result<Vec<baton_amqp::DeadLetter>, BackendError> {
        let batch = self.broker.dead_letters(limit).await?;
        let letters = batch.letters().cloned().collect();
        batch.release().await?;
        Ok(letters)
    }
}
