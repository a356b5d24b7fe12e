//! Starting an execution (and recovering a duplicate start whose first publisher died),
//! cancelling one, and failing one the engine cannot run.

use std::time::Duration;

use baton_core::graph::{CompiledNode, CompiledWorkflow};
use baton_core::message::{ExecutionStatus, HopKind, HopMessage};

use super::engine::{Engine, StartRequest};
use crate::ports::{ExecutionIdentity, ExecutionStart, Lifecycle, PortError, StartState};

/// How long a duplicate start waits for the first one to publish the execution's first
/// messages before it presumes that one dead and publishes them itself.
const START_GRACE_MS: u64 = 3_000;

impl Engine {
    /// Starts an execution of `workflow` (already in the definition cache under its
    /// reference).
    pub async fn start(
        &self,
        workflow: &CompiledWorkflow,
        request: StartRequest,
    ) -> Result<(), PortError> {
        let StartRequest {
            workflow_id,
            execution_id,
            seed,
            start_at,
            traceparent,
        } = request;
        let (workflow_id, execution_id) = (workflow_id.as_str(), execution_id.as_str());
        let workflow_ref = workflow.reference.as_str();
        let starts: Vec<&CompiledNode> = match start_at.as_deref() {
            Some(id) => workflow.node(id).into_iter().collect(),
            None => workflow.start.iter().map(|i| &workflow.nodes[*i]).collect(),
        };
        let started_at_ms = self.clock.now_ms();
        let start = ExecutionStart {
            execution_id: execution_id.to_string(),
            workflow_id: workflow_id.to_string(),
            workflow_ref: workflow_ref.to_string(),
            seed,
            initial_tokens: starts.len() as i64,
            started_at_ms,
            deadline_at_ms: workflow
                .definition
                .timeout_ms
                .map(|ms| started_at_ms.saturating_add(ms)),
        };
        if !self.store.start(&start).await? {
            // A duplicate start. The first one may still be publishing (give it a moment) or
            // may have died between creating the execution and publishing its first messages:
            // then publish them now (a start node whose hop already committed is not run twice,
            // `begin_hop` sees the commit).
            loop {
                let Some(StartState {
                    started_at_ms: started_at,
                    first_messages_published,
                }) = self.store.start_state(execution_id).await?
                else {
                    return Ok(());
                };
                if first_messages_published {
                    return Ok(());
                }
                match self.store.lifecycle(execution_id).await? {
                    Lifecycle::Running => {}
                    // Never published, yet finished: cancelled before it started. No hop ever
                    // ran (no `on_failure` either), so its completion is due now.
                    Lifecycle::Finished {
                        completion_sent: false,
                        ..
                    } => return self.emit_completion(workflow_id, execution_id).await,
                    _ => return Ok(()),
                }
                if self.clock.now_ms() >= started_at + START_GRACE_MS {
                    break;
                }
                self.clock.sleep(Duration::from_millis(100)).await;
            }
            if !matches!(
                self.store.lifecycle(execution_id).await?,
                Lifecycle::Running
            ) {
                return Ok(());
            }
            tracing::warn!(
                execution_id,
                "execution created but never started: publishing its first messages"
            );
        } else if starts.is_empty() {
            return self
                .complete(workflow_id, execution_id, ExecutionStatus::Completed, None)
                .await;
        }
        let messages = starts
            .iter()
            .map(|n| HopMessage {
                execution_id: execution_id.to_string(),
                workflow_id: workflow_id.to_string(),
                workflow_ref: workflow_ref.to_string(),
                node_id: n.id.clone(),
                kind: HopKind::Run,
                from_node: None,
                from_edge: None,
                lineage: Vec::new(),
                attempt: 1,
                traceparent: traceparent.clone(),
            })
            .collect();
        self.schedule_deadline(workflow, workflow_id, execution_id, start.started_at_ms)
            .await?;
        self.queue.publish(messages).await?;
        self.store.mark_started(execution_id).await
    }

    /// Cancels a running execution: it halts with reason "cancelled", running nodes are aborted
    /// and queued messages are dropped when they arrive. False if it was not running (or its
    /// definition is not loaded in this process).
    pub async fn cancel(&self, execution_id: &str) -> Result<bool, PortError> {
        let Some(ExecutionIdentity {
            workflow_id,
            workflow_ref,
        }) = self.store.identity(execution_id).await?
        else {
            // Its start may still be on its way (on another worker): it will start halted.
            self.store.cancel_unstarted(execution_id).await?;
            return Ok(false);
        };
        let Some(wf) = self.definitions.load(&workflow_ref).await? else {
            return Ok(false);
        };
        self.halt(
            &wf,
            &workflow_id,
            execution_id,
            ExecutionStatus::Halted,
            "execution cancelled by request".into(),
            "",
        )
        .await
    }

    /// Fails an execution the engine cannot run (poison input): final status `failed`, then its
    /// completion. True if it sent a completion.
    ///
    /// An execution found finished with its completion not out is completed here too: its
    /// finisher may have died between the two, and this message (maybe the very hop that
    /// finished it, dead-lettered for the workers that died with it) will not run to send it.
    /// When its `on_failure` node is due to send it, that node's message is published again
    /// instead.
    pub async fn fail_execution(
        &self,
        workflow_id: &str,
        execution_id: &str,
        reason: String,
    ) -> Result<bool, PortError> {
        match self.store.lifecycle(execution_id).await? {
            Lifecycle::Running => {
                if !self
                    .store
                    .finish_by(
                        execution_id,
                        ExecutionStatus::Failed,
                        Some(reason),
                        FAILED_UNRUNNABLE,
                    )
                    .await?
                {
                    // Another finisher won: it sends the completion.
                    return Ok(false);
                }
                self.forget_execution(execution_id);
            }
            Lifecycle::Finished {
                status,
                completion_sent: false,
                ..
            } => {
                if let Some(on_failure) = self.due_on_failure(execution_id, status).await? {
                    // That node sends the completion. Its message may have been lost with the
                    // hop that halted the execution, maybe this very message: published again
                    // (a copy is deduplicated; once the node ran, it only re-sends the
                    // completion).
                    self.queue.publish(vec![on_failure]).await?;
                    return Ok(false);
                }
            }
            _ => return Ok(false),
        }
        self.emit_completion(workflow_id, execution_id).await?;
        Ok(true)
    }

    /// The `on_failure` message of a finished execution whose completion that node is due to
    /// send: one a hop halted (not completed, not failed here) in a workflow with that node.
    async fn due_on_failure(
        &self,
        execution_id: &str,
        status: ExecutionStatus,
    ) -> Result<Option<HopMessage>, PortError> {
        if status == ExecutionStatus::Completed
            || self.store.finished_by(execution_id).await?.as_deref() == Some(FAILED_UNRUNNABLE)
        {
            return Ok(None);
        }
        let Some(identity) = self.store.identity(execution_id).await? else {
            return Ok(None);
        };
        Ok(self
            .definitions
            .load(&identity.workflow_ref)
            .await?
            .and_then(|wf| self.on_failure_message(&wf, &identity.workflow_id, execution_id)))
    }
}

/// The `finished_by` of an execution [`Engine::fail_execution`] failed: no hop id has this form
/// (every one has `|` in it, see `HopId`).
const FAILED_UNRUNNABLE: &str = "unrunnable";
