//! The ports the hop is written against. Each has an in-memory adapter (`baton-memory`) and,
//! for production, RabbitMQ/Redis adapters. Every operation that changes shared state is atomic
//! and idempotent, so a redelivered message can be replayed safely.

use std::sync::Arc;

use async_trait::async_trait;
use baton_core::CompiledWorkflow;
use baton_core::message::{Completion, HopMessage, NodeRun, StatusEvent};
use serde_json::{Map, Value};

use crate::credential_scope::CredentialScope;

mod error;
mod store;

pub use error::{PortError, PortErrorKind};
pub use store::{
    CommitOutcome, CommittedHop, CompletionAdoption, CompletionClaim, CompletionLedger,
    ContextWrite, ExecutionIdentity, ExecutionStart, ExecutionStore, FinalContext, Handoff,
    HeldClaim, HopClaim, HopClaimOutcome, HopCommit, HopStart, JoinArrival, JoinOutcome, Lifecycle,
    RunCommitOutcome, ScopedKey, SignalStore, SignalWaiter, StartState, StatePorts,
};

/// Where hop messages go.
#[async_trait]
pub trait HopQueue: Send + Sync {
    /// Publishes durably (returns once the messages are safe).
    async fn publish(&self, messages: Vec<HopMessage>) -> Result<(), PortError>;
    /// Publishes after a delay, without holding a worker (timers, retry backoff).
    async fn publish_delayed(&self, message: HopMessage, delay_ms: u64) -> Result<(), PortError>;
    /// Publishes `message` again after `delay_ms`: a copy of a hop that another worker holds a
    /// claim on looks again when that claim expires at `claim_expires_at_ms`. Copies meeting
    /// the same claim should collapse into one re-check (a durable queue keys it by the message
    /// and the expiry), and a re-check must not collide with the message's own timer. Default:
    /// `publish_delayed`.
    async fn publish_recheck(
        &self,
        message: HopMessage,
        delay_ms: u64,
        claim_expires_at_ms: u64,
    ) -> Result<(), PortError> {
        let _ = claim_expires_at_ms;
        self.publish_delayed(message, delay_ms).await
    }
    /// Cancels the pending delayed `message` (as given to `publish_delayed`) if it has not
    /// fired yet, so that it does not outlive its purpose (a signal timeout whose signal came).
    /// Best effort: the hop still treats a timer that fires anyway as a no-op. Default: nothing.
    async fn cancel_delayed(&self, message: &HopMessage) -> Result<(), PortError> {
        let _ = message;
        Ok(())
    }
}

/// Where status and completion events go.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn status(&self, event: StatusEvent) -> Result<(), PortError>;
    /// A node run in `compact` status mode (RFC 0011). Default: sent as the final status event
    /// it stands for.
    async fn node_run(&self, run: NodeRun) -> Result<(), PortError> {
        self.status(run.into_status_event()).await
    }
    /// Sends a completion (returns once it is safe). With [`relays_completions`] it is a
    /// request to a relay, which sends it once and marks it sent.
    ///
    /// [`relays_completions`]: EventSink::relays_completions
    async fn completion(&self, completion: Completion) -> Result<(), PortError>;
    /// Whether `completion` hands completions to a relay that adopts each one in the
    /// `CompletionLedger`, publishes it once and marks it sent (the worker pool's outbox). When
    /// false (default) the engine claims, sends and marks each completion itself.
    fn relays_completions(&self) -> bool {
        false
    }
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
    /// Where it may be used (`hosts`, `workflows`).
    #[serde(flatten)]
    pub scope: CredentialScope,
}

/// A revealed credential: its decrypted fields (with `"type"`) and its scope.
#[derive(Clone, PartialEq)]
pub struct RevealedCredential {
    pub fields: Map<String, Value>,
    pub scope: CredentialScope,
}

impl std::fmt::Debug for RevealedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevealedCredential")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("scope", &self.scope)
            .finish()
    }
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
        scope: &CredentialScope,
    ) -> Result<CredentialMeta, PortError>;
    async fn list(&self) -> Result<Vec<CredentialMeta>, PortError>;
    async fn delete(&self, credential_id: &str) -> Result<bool, PortError>;
    /// The decrypted fields and the scope, for the hop only; `None` when the id is unknown.
    async fn reveal(&self, credential_id: &str) -> Result<Option<RevealedCredential>, RevealError>;
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
