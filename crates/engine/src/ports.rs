//! The ports the hop is written against. Each has an in-memory adapter (`baton-memory`) and,
//! for production, RabbitMQ/Redis adapters. Every operation that changes shared state is atomic
//! and idempotent, so a redelivered message can be replayed safely.

use std::sync::Arc;

use async_trait::async_trait;
use baton_core::CompiledWorkflow;
use baton_core::message::{Completion, ExecutionStatus, HopMessage, StatusEvent};
use serde_json::{Map, Value};

mod error;

pub use error::{PortError, PortErrorKind};

/// Everything an execution starts with.
#[derive(Debug, Clone)]
pub struct ExecutionStart {
    pub execution_id: String,
    pub workflow_id: String,
    pub workflow_ref: String,
    /// Initial context (`$input`, `$trigger`, keys seeded by a master).
    pub seed: Map<String, Value>,
    /// Number of messages the execution starts with.
    pub initial_tokens: i64,
    pub started_at_ms: u64,
}

/// Where an execution stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Lifecycle {
    /// Unknown execution (never started, or expired).
    Unknown,
    Running,
    /// Reached a final status; `completion_sent` is false while an `on_failure` node runs.
    Finished {
        status: ExecutionStatus,
        reason: Option<String>,
        completion_sent: bool,
    },
}

/// One hop's durable effects, applied atomically and at most once per `hop_id`.
#[derive(Debug, Clone, Default)]
pub struct HopCommit {
    pub hop_id: String,
    /// `(scope, context key, value)` written by this hop.
    pub outputs: Vec<(String, String, Value)>,
    /// Messages this hop hands on (each one is a token of the execution).
    pub tokens_out: i64,
    /// Those messages as a JSON array, kept with the commit so that a redelivery of this hop
    /// re-publishes exactly them instead of running the node again (empty: not recorded).
    pub handed_on: String,
}

/// What a hop finds when it begins (see [`ExecutionStore::begin_hop`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HopStart {
    pub lifecycle: Lifecycle,
    /// The requested context keys (empty unless running and not yet committed).
    pub context: Map<String, Value>,
    /// Set when this very hop already committed (a redelivery): its recorded handed-on
    /// messages (possibly empty when not recorded) and the execution's pending tokens.
    pub committed: Option<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommitOutcome {
    /// Applied; `pending` tokens remain in the execution (0 = it is complete).
    Applied { pending: i64 },
    /// This hop was committed before (a redelivery): re-publish its messages, change nothing.
    /// `pending` lets a redelivery finish an execution whose first attempt died before it could.
    Duplicate { pending: i64 },
}

/// The answer to [`ExecutionStore::claim_completion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionClaim {
    /// Yours to send: publish it, then mark it sent.
    Claimed,
    /// Another sender claimed it less than a lease ago.
    Held,
    /// Already sent.
    Sent,
    /// No such execution.
    Unknown,
}

/// A join arrival result.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinOutcome {
    /// Still waiting; `arrived` of `expected` so far.
    Waiting { arrived: usize, expected: usize },
    /// This arrival released the join (exactly one arrival gets this). Arrivals in arrival order.
    Released { arrivals: Vec<(String, Value)> },
    /// The join had already released (a late `wait_for_any` arrival or a duplicate).
    AlreadyReleased,
}

/// Per-execution state: context, tokens, joins, final status.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Creates the execution. Returns false if it already exists (a duplicate start) or was
    /// cancelled before it started (then it exists, halted, and its completion is due).
    async fn start(&self, start: &ExecutionStart) -> Result<bool, PortError>;
    /// Remembers a cancel that arrived before the execution's start (messages on different
    /// workers race): that start then creates the execution already halted.
    async fn cancel_unstarted(&self, execution_id: &str) -> Result<(), PortError>;
    /// Records that the execution's first messages are published: a duplicate start then has
    /// nothing left to do.
    async fn mark_started(&self, execution_id: &str) -> Result<(), PortError>;
    /// `(started_at_ms, first messages published)` of an existing execution.
    async fn start_state(&self, execution_id: &str) -> Result<Option<(u64, bool)>, PortError>;
    async fn lifecycle(&self, execution_id: &str) -> Result<Lifecycle, PortError>;
    /// `(workflow_id, workflow_ref)` of an execution, if it exists.
    async fn identity(&self, execution_id: &str) -> Result<Option<(String, String)>, PortError>;
    /// Reads `keys`, each from the innermost scope of `scope_chain` that has it.
    async fn read(
        &self,
        execution_id: &str,
        scope_chain: &[String],
        keys: &[String],
    ) -> Result<Map<String, Value>, PortError>;
    /// The execution's lifecycle, whether hop `hop_id` already committed, and the context keys
    /// the hop needs, in one round trip where the store can (the Redis store overrides this).
    async fn begin_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
        scope_chain: &[String],
        keys: &[String],
    ) -> Result<HopStart, PortError> {
        let lifecycle = self.lifecycle(execution_id).await?;
        if lifecycle != Lifecycle::Running {
            return Ok(HopStart {
                lifecycle,
                context: Map::new(),
                committed: None,
            });
        }
        if !self.replays_hops() {
            // Nothing recorded to replay: skip the lookup.
        } else if let Some(committed) = self.committed_hop(execution_id, hop_id).await? {
            return Ok(HopStart {
                lifecycle,
                context: Map::new(),
                committed: Some(committed),
            });
        }
        let context = self.read(execution_id, scope_chain, keys).await?;
        Ok(HopStart {
            lifecycle,
            context,
            committed: None,
        })
    }
    /// Whether commits should carry `handed_on` (a store whose messages are never redelivered,
    /// like the embedded one, saves the encoding).
    fn replays_hops(&self) -> bool {
        true
    }
    /// `(handed_on, pending)` if hop `hop_id` committed.
    async fn committed_hop(
        &self,
        execution_id: &str,
        hop_id: &str,
    ) -> Result<Option<(String, i64)>, PortError>;
    /// Reads exact `(scope, key)` entries.
    async fn read_exact(
        &self,
        execution_id: &str,
        entries: &[(String, String)],
    ) -> Result<Vec<Option<Value>>, PortError>;
    async fn commit(
        &self,
        execution_id: &str,
        commit: HopCommit,
    ) -> Result<CommitOutcome, PortError>;
    /// Records an arrival at a join. Duplicate `arrival_key`s are ignored.
    async fn join(
        &self,
        execution_id: &str,
        join_key: &str,
        arrival_key: &str,
        arrival: Value,
        expected: usize,
        release_on_first_real: bool,
    ) -> Result<JoinOutcome, PortError>;
    /// A wait node starts waiting for signal `name`. If that signal already arrived (buffered),
    /// it is consumed and returned instead of registering the waiter.
    async fn await_signal(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
        payload: String,
    ) -> Result<Option<Value>, PortError>;
    /// Delivers signal `name`: takes and returns every waiter `(id, payload)`; with no waiter the
    /// signal is buffered for the next one.
    async fn deliver_signal(
        &self,
        execution_id: &str,
        name: &str,
        data: Value,
    ) -> Result<Vec<(String, String)>, PortError>;
    /// Removes a waiter (its timeout fired); true if it was still waiting.
    async fn remove_signal_waiter(
        &self,
        execution_id: &str,
        name: &str,
        waiter_id: &str,
    ) -> Result<bool, PortError>;
    /// Sets the final status; only the first caller gets `true`.
    async fn finish(
        &self,
        execution_id: &str,
        status: ExecutionStatus,
        reason: Option<String>,
    ) -> Result<bool, PortError> {
        self.finish_by(execution_id, status, reason, "").await
    }
    /// `finish` by hop `hop_id` (empty: not by a hop), which the store remembers (see
    /// `finished_by`): a redelivery of the hop that halted an execution can then tell that it
    /// did, and re-publish what its first delivery may have lost (the `on_failure` message).
    async fn finish_by(
        &self,
        execution_id: &str,
        status: ExecutionStatus,
        reason: Option<String>,
        hop_id: &str,
    ) -> Result<bool, PortError>;
    /// The hop id given to the `finish_by` call that finished the execution (none if it was
    /// finished by no hop).
    async fn finished_by(&self, execution_id: &str) -> Result<Option<String>, PortError>;
    /// Claims the sending of a finished execution's completion for `lease_ms`: the claimer
    /// publishes it, then marks it sent. A claim older than the lease (its holder died between
    /// the two) can be taken over, so a completion is never lost; it is repeated only if a
    /// holder dies after the broker confirmed it and before it marked it sent.
    async fn claim_completion(
        &self,
        execution_id: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<CompletionClaim, PortError>;
    /// Marks the completion as sent (after its publish is confirmed); only the first caller
    /// gets `true`.
    async fn mark_completion_sent(&self, execution_id: &str) -> Result<bool, PortError>;
    /// Top-level context (the union of every top-level node output) and the start time.
    async fn final_context(
        &self,
        execution_id: &str,
    ) -> Result<(Map<String, Value>, u64), PortError>;
}

/// Where hop messages go.
#[async_trait]
pub trait HopQueue: Send + Sync {
    /// Publishes durably (returns once the messages are safe).
    async fn publish(&self, messages: Vec<HopMessage>) -> Result<(), PortError>;
    /// Publishes after a delay, without holding a worker (timers, retry backoff).
    async fn publish_delayed(&self, message: HopMessage, delay_ms: u64) -> Result<(), PortError>;
}

/// Where status and completion events go.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn status(&self, event: StatusEvent) -> Result<(), PortError>;
    async fn completion(&self, completion: Completion) -> Result<(), PortError>;
    /// Whether status events are observed at all. When false the engine neither builds nor
    /// sends them (the embedded runtime with no subscriber); completions always go out.
    fn wants_status(&self) -> bool {
        true
    }
}

/// Compiled definitions by content hash.
#[async_trait]
pub trait DefinitionCache: Send + Sync {
    fn get(&self, workflow_ref: &str) -> Option<Arc<CompiledWorkflow>>;
    /// Like `get`, loading the definition from where processes share them if this process has
    /// not seen it yet (a child's or a parent's, for sub-workflows). Default: `get`.
    async fn load(&self, workflow_ref: &str) -> Result<Option<Arc<CompiledWorkflow>>, PortError> {
        Ok(self.get(workflow_ref))
    }
    /// Keeps a definition the engine compiled itself (a sub-workflow's, from the catalog, which
    /// already stored it by reference for other processes). Default: nothing, for caches that
    /// load by reference anyway.
    fn keep(&self, workflow: Arc<CompiledWorkflow>) {
        let _ = workflow;
    }
}

/// One stored version of a named workflow.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkflowVersion {
    pub workflow_id: String,
    /// 1, 2, 3, … in the order the versions were stored.
    pub version: u32,
    /// Content hash of the definition (the `reference` its executions are pinned to).
    pub hash: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// Named, versioned workflow definitions: what the master's `POST /workflows` stores and what
/// the `workflow` (sub-workflow) node starts. Storing a definition identical to the latest
/// version returns that version instead of adding one.
#[async_trait]
pub trait WorkflowCatalog: Send + Sync {
    /// Stores `definition` under `workflow_id`; `true` when a new version was added.
    async fn put(
        &self,
        workflow_id: &str,
        definition: &Value,
    ) -> Result<(WorkflowVersion, bool), PortError>;
    async fn latest(
        &self,
        workflow_id: &str,
    ) -> Result<Option<(WorkflowVersion, Value)>, PortError>;
    async fn get(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Option<(WorkflowVersion, Value)>, PortError>;
    /// Every version of one workflow, oldest first.
    async fn versions(&self, workflow_id: &str) -> Result<Vec<WorkflowVersion>, PortError>;
    /// The latest version of every workflow, ordered by id.
    async fn list(&self) -> Result<Vec<WorkflowVersion>, PortError>;
    /// Removes the workflow and its versions; `false` when it did not exist. Executions already
    /// running keep their pinned definition.
    async fn delete(&self, workflow_id: &str) -> Result<bool, PortError>;
}

/// What is known of a stored credential, never its secret fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CredentialMeta {
    pub credential_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// Secrets encrypted at rest. Nodes reference one with `"credentials": {"$credential": "<id>"}`;
/// the hop reveals it just before the node runs, so the secret never travels in a message and
/// never lands in the context, a status or a log.
#[async_trait]
pub trait CredentialVault: Send + Sync {
    async fn put(
        &self,
        name: &str,
        type_name: &str,
        data: &Map<String, Value>,
    ) -> Result<CredentialMeta, PortError>;
    async fn list(&self) -> Result<Vec<CredentialMeta>, PortError>;
    async fn delete(&self, credential_id: &str) -> Result<bool, PortError>;
    /// The decrypted fields, for the hop only; `None` when the id is unknown.
    async fn reveal(&self, credential_id: &str) -> Result<Option<Map<String, Value>>, RevealError>;
}

/// Why a stored credential could not be revealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevealError {
    /// The vault could not be reached: that may pass, so the node's run is retryable.
    #[error("{0}")]
    Unavailable(String),
    /// The stored credential does not open (written with another key, or altered): retrying
    /// cannot help.
    #[error("{0}")]
    Unreadable(String),
}
