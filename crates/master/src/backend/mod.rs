//! How the master starts, cancels and signals executions and hears their events: on the worker
//! pool over RabbitMQ (`amqp.rs`) or in this process (`embedded.rs`, `baton dev`).

pub mod amqp;
pub mod embedded;
pub mod stored_refs;

use std::sync::Arc;

use async_trait::async_trait;
use baton_core::wire::{Completion, RuneStart, StatusEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

/// A failure to reach the runtime, with the error that caused it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The broker (distributed runtime) failed.
    #[error("runtime: {0}")]
    Broker(#[from] baton_amqp::Error),
    /// A port of the embedded runtime failed.
    #[error("runtime: {0}")]
    Port(#[from] baton_engine::ports::PortError),
    /// A message could not be encoded.
    #[error("runtime: {0}")]
    Encode(#[from] serde_json::Error),
    /// The definition of a start by reference could not be stored.
    #[error("runtime: definition store: {0}")]
    Store(#[from] baton_redis::Error),
    /// The start order cannot be run (an invalid definition, an unknown node).
    #[error("runtime: {0}")]
    Invalid(String),
}

/// Everything needed to start an execution: a Rune start message's fields.
#[derive(Debug, Clone)]
pub struct StartOrder {
    pub workflow_id: String,
    pub execution_id: String,
    pub definition: Value,
    /// The definition's content hash (`baton_core::graph::content_hash`, as the catalog stores
    /// it): the reference a start by reference names.
    pub definition_hash: String,
    /// `$start` (the workflow's start nodes) or the node to start at (replay).
    pub current_node: String,
    /// The initial context (`$input`, `$trigger`, and for a replay the original's outputs).
    pub context: Map<String, Value>,
}

impl StartOrder {
    /// The Rune `NodeExecutionMessage` a worker accepts (RFC 0004): the workflow inline.
    pub fn rune_message(&self) -> RuneStart {
        RuneStart::new(
            self.workflow_id.clone(),
            self.execution_id.clone(),
            self.current_node.clone(),
            self.definition.clone(),
            self.context.clone(),
        )
    }

    /// The start by reference (RFC 0011): the same message naming the stored definition by
    /// [`definition_hash`](Self::definition_hash) instead of carrying it.
    pub fn message_by_reference(&self) -> RuneStart {
        RuneStart::by_reference(
            self.workflow_id.clone(),
            self.execution_id.clone(),
            self.current_node.clone(),
            self.definition_hash.clone(),
            self.context.clone(),
        )
    }
}

/// An event of an execution, as stored and as streamed to SSE clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum LiveEvent {
    Status(StatusEvent),
    Completion(Completion),
}

impl LiveEvent {
    pub fn execution_id(&self) -> &str {
        match self {
            Self::Status(s) => &s.execution_id,
            Self::Completion(c) => &c.execution_id,
        }
    }
}

/// Receives every event once (in one replica); it must be stored before the call returns.
#[async_trait]
pub trait EventHandler: Send + Sync {
    async fn handle(&self, event: LiveEvent) -> Result<(), crate::history::HistoryError>;
}

#[async_trait]
pub trait Backend: Send + Sync {
    async fn start(&self, order: &StartOrder) -> Result<(), BackendError>;
    async fn cancel(&self, execution_id: &str) -> Result<(), BackendError>;
    async fn signal(&self, execution_id: &str, name: &str, data: Value)
    -> Result<(), BackendError>;
    /// The runtime is reachable.
    async fn ready(&self) -> bool;
    /// The broker node the runtime is connected to (URI, password redacted), if it has one.
    fn broker_node(&self) -> Option<String> {
        None
    }
    /// Hands every status and completion event to `handler` until `shutdown`.
    async fn run_intake(&self, handler: Arc<dyn EventHandler>, shutdown: CancellationToken);
    /// Up to `limit` messages from the head of the dead-letter queue, read without taking any
    /// (each is handed back in its place). The embedded runtime dead-letters nothing.
    async fn dead_letters(
        &self,
        limit: usize,
    ) -> Result<Vec<baton_amqp::DeadLetter>, BackendError> {
        let _ = limit;
        Ok(Vec::new())
    }
}
