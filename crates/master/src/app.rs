//! The master's shared state and the operations every entry point uses (API, webhooks, cron,
//! replay): validating a definition, starting an execution, recording events.

use std::sync::Arc;

use async_trait::async_trait;
use baton_core::CompiledWorkflow;
use baton_core::limits::DefinitionLimits;
use baton_core::message::{Completion, ExecutionStatus};
use baton_engine::ports::{CredentialVault, WorkflowCatalog};
use baton_engine::{Clock, NodeRegistry};
use serde_json::{Map, Value, json};

use crate::api::error::ApiError;
use crate::backend::{Backend, EventHandler, LiveEvent, StartOrder};
use crate::fanout::Fanout;
use crate::history::{History, NewExecution, Summary};
use crate::metrics_names as m;

/// Everything a request handler needs. Shared by all tasks of one master.
pub struct Master {
    pub catalog: Arc<dyn WorkflowCatalog>,
    /// `None`: the credentials endpoints answer 503.
    pub vault: Option<Arc<dyn CredentialVault>>,
    pub history: Arc<dyn History>,
    pub backend: Arc<dyn Backend>,
    pub fanout: Arc<dyn Fanout>,
    /// Seals the master's own secrets (webhook signing secrets): the vault key
    /// (`BATON_CREDENTIALS_KEY`). `None`: signed webhooks cannot be enabled.
    pub sealing_key: Option<baton_vault::VaultKey>,
    /// Accepted bearer tokens; auth is off when `None`.
    pub tokens: Option<Vec<String>>,
    pub registry: NodeRegistry,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Where the scheduler and the history read the time (`SystemClock` in production).
    pub clock: Arc<dyn Clock>,
    /// Checked before compiling: an oversized definition answers 422 without a compile.
    pub limits: DefinitionLimits,
}

/// What starts an execution.
pub struct StartSpec {
    /// A new UUID v7 when `None`.
    pub execution_id: Option<String>,
    pub workflow_id: String,
    pub version: Option<u32>,
    pub definition_hash: String,
    pub definition: Value,
    pub input: Value,
    pub trigger: &'static str,
    /// Replay: the node to start at and the original's outputs.
    pub from_node: Option<String>,
    pub seed: Option<Map<String, Value>>,
    pub replay_of: Option<String>,
}

impl Master {
    /// Compiles a definition with the core validator: every problem with its JSON path.
    pub fn validate(&self, definition: &Value) -> Result<CompiledWorkflow, ApiError> {
        CompiledWorkflow::compile_within(definition, &self.registry, &self.limits).map_err(
            |invalid| {
                let problems = invalid
                    .0
                    .iter()
                    .map(|p| json!({"path": p.path, "message": p.message}))
                    .collect();
                ApiError::invalid(
                    "invalid_workflow",
                    format!("the workflow has {} problem(s)", invalid.0.len()),
                    problems,
                )
            },
        )
    }

    /// Records then starts an execution; returns its id (UUID v7).
    pub async fn start(&self, spec: StartSpec) -> Result<String, ApiError> {
        let execution_id = spec
            .execution_id
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let mut context = spec.seed.unwrap_or_default();
        baton_core::wire::seed_input(&mut context, spec.input.clone());
        self.history
            .create(&NewExecution {
                summary: Summary {
                    execution_id: execution_id.clone(),
                    workflow_id: spec.workflow_id.clone(),
                    version: spec.version,
                    status: "running".into(),
                    trigger: spec.trigger.to_string(),
                    started_at: crate::history::model::rfc3339_millis(self.clock.now_utc()),
                    completed_at: None,
                    duration_ms: None,
                    failure_reason: None,
                },
                input: spec.input,
                definition_hash: spec.definition_hash.clone(),
                definition: spec.definition.clone(),
                replay_of: spec.replay_of,
            })
            .await?;
        let started = self
            .backend
            .start(&StartOrder {
                workflow_id: spec.workflow_id.clone(),
                execution_id: execution_id.clone(),
                definition: spec.definition,
                definition_hash: spec.definition_hash,
                current_node: spec.from_node.unwrap_or_else(|| "$start".into()),
                context,
            })
            .await;
        if let Err(e) = started {
            // The record must not stay `running` for an execution that never started.
            let failed = Completion {
                workflow_id: spec.workflow_id,
                execution_id: execution_id.clone(),
                status: ExecutionStatus::Failed,
                final_context: Map::new(),
                completed_at: crate::history::model::rfc3339_millis(self.clock.now_utc()),
                total_duration_ms: 0,
                failure_reason: Some(format!("could not be started: {e}")),
            };
            if let Err(h) = self.history.apply_completion(&failed).await {
                tracing::error!(error = %h, %execution_id, "cannot mark an unstarted execution failed");
            }
            return Err(e.into());
        }
        metrics::counter!(m::EXECUTIONS_STARTED, "trigger" => spec.trigger).increment(1);
        Ok(execution_id)
    }

    /// Starts the latest (or the given) version of a stored workflow.
    pub async fn start_stored(
        &self,
        workflow_id: &str,
        version: Option<u32>,
        input: Value,
        trigger: &'static str,
    ) -> Result<(String, u32), ApiError> {
        let found = match version {
            Some(v) => self.catalog.get(workflow_id, v).await?,
            None => self.catalog.latest(workflow_id).await?,
        };
        let Some((stored, definition)) = found else {
            return Err(match version {
                Some(v) => ApiError::not_found("version", &format!("{workflow_id}@{v}")),
                None => ApiError::not_found("workflow", workflow_id),
            });
        };
        let id = self
            .start(StartSpec {
                execution_id: None,
                workflow_id: workflow_id.to_string(),
                version: Some(stored.version),
                definition_hash: stored.hash,
                definition,
                input,
                trigger,
                from_node: None,
                seed: None,
                replay_of: None,
            })
            .await?;
        Ok((id, stored.version))
    }

    /// Auth is off, or `token` is one of the tokens. The SHA-256 digests are compared in
    /// constant time, every token each time: neither the length nor the position of a match
    /// shows in the timing.
    pub fn token_ok(&self, token: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let Some(tokens) = &self.tokens else {
            return true;
        };
        let presented = Sha256::digest(token.as_bytes());
        tokens.iter().fold(false, |ok, t| {
            ok | bool::from(Sha256::digest(t.as_bytes()).ct_eq(&presented))
        })
    }
}

#[async_trait]
impl EventHandler for Master {
    async fn handle(&self, event: LiveEvent) -> Result<(), crate::history::HistoryError> {
        match &event {
            LiveEvent::Status(s) => self.history.apply_status(s).await,
            LiveEvent::Completion(c) => self.history.apply_completion(c).await,
        }?;
        let kind = match &event {
            LiveEvent::Status(_) => "status",
            LiveEvent::Completion(_) => "completion",
        };
        metrics::counter!(m::EVENTS, "kind" => kind).increment(1);
        self.fanout.publish(&event).await;
        Ok(())
    }
}
