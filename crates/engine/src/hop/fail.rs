//! A node failed: retry it, halt the execution (then its `on_failure` node), ignore the
//! error or follow the error branch, as the node's policy says.

use std::time::Instant;

use baton_core::graph::{CompiledNode, CompiledWorkflow, RouteOutcome};
use baton_core::message::{ErrorInfo, ExecutionStatus, HopKind, HopMessage, NodeStatus};
use baton_core::spec::NodeClass;
use serde_json::json;

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::node::NodeError;
use crate::ports::{CommitOutcome, ContextWrite, HopCommit, PortError};
use baton_core::ErrorCode;

impl Engine {
    pub(super) async fn fail(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        err: NodeError,
        started: Instant,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let info = ErrorInfo {
            message: err.message.clone(),
            code: err.code.to_string(),
            details: None,
        };
        if err.code == ErrorCode::Cancelled {
            return self.end_cancelled(wf, node, hop, info, started).await;
        }
        if err.retryable && msg.attempt < node.retry.max_attempts {
            let delay = node.retry.delay_ms(msg.attempt + 1, rand::random::<f64>());
            let mut retry = msg.clone();
            retry.attempt += 1;
            // A node that failed on resuming (a sub-workflow whose child failed) runs again.
            if retry.kind == HopKind::Resume {
                retry.kind = HopKind::Run;
            }
            let mut ev = self.status(node, msg, NodeStatus::Waiting);
            ev.duration_ms = started.elapsed().as_millis() as u64;
            ev.error = Some(info);
            ev.output = Some(
                json!({"retry": {"next_attempt": retry.attempt, "max_attempts": node.retry.max_attempts, "delay_ms": delay}}),
            );
            let commit = HopCommit {
                hop_id: hop.id.clone(),
                outputs: Vec::new(),
                tokens_out: 1,
                handoff: self.handoff(&[], &[(delay, &retry)]),
            };
            // A duplicate publishes nothing: the copy that committed first schedules the retry.
            if let CommitOutcome::Applied { .. } =
                self.store.commit(&msg.execution_id, commit).await?
            {
                self.emit(node.status_mode, ev).await;
                self.publish_handoff(msg, &hop.id, Vec::new(), vec![(delay, retry)])
                    .await?;
            }
            return Ok(HopOutcome::Done);
        }
        let mut ev = self.status(node, msg, NodeStatus::Failed);
        ev.duration_ms = started.elapsed().as_millis() as u64;
        ev.error = Some(info.clone());
        let error_value = json!({"node_id": node.id, "node_name": node.name, "message": info.message, "code": info.code});
        let attempts = if msg.attempt > 1 {
            format!(" after {} attempts", msg.attempt)
        } else {
            String::new()
        };
        match node.error_policy {
            baton_core::ErrorKind::Halt => {
                self.emit(node.status_mode, ev).await;
                let reason = format!(
                    "node `{}` ({}) failed{attempts}: {} [{}]",
                    node.name, node.id, err.message, err.code
                );
                self.halt(
                    wf,
                    &msg.workflow_id,
                    &msg.execution_id,
                    ExecutionStatus::Halted,
                    reason,
                    &hop.id,
                )
                .await?;
                Ok(HopOutcome::Done)
            }
            baton_core::ErrorKind::Ignore => {
                let mut children =
                    self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Ignored);
                if node.class == NodeClass::Split {
                    // A failed split has no items: continue as an empty split (its aggregator
                    // releases an empty result); the per-item successors must not run outside
                    // any item.
                    children.retain(|m| m.kind != HopKind::Run);
                    children.extend(self.empty_split(wf, node, msg));
                }
                self.hand_on(
                    wf,
                    hop,
                    vec![ContextWrite::new(hop.scope.clone(), "$error", error_value)],
                    children,
                    Some(ev),
                )
                .await
            }
            baton_core::ErrorKind::Branch => {
                let children =
                    self.successors(wf, node, msg, &msg.lineage, RouteOutcome::ErrorBranch);
                self.hand_on(
                    wf,
                    hop,
                    vec![ContextWrite::new(hop.scope.clone(), "$error", error_value)],
                    children,
                    Some(ev),
                )
                .await
            }
        }
    }

    /// Stops the execution: first caller wins; running nodes are cancelled; the `on_failure`
    /// node (if any) runs before the completion is emitted. `by`: the hop that halts it (empty
    /// if none); the store remembers it, so that a redelivery of that hop re-publishes the
    /// `on_failure` message its first delivery may have lost.
    pub(super) async fn halt(
        &self,
        wf: &CompiledWorkflow,
        workflow_id: &str,
        execution_id: &str,
        status: ExecutionStatus,
        reason: String,
        by: &str,
    ) -> Result<bool, PortError> {
        if !self
            .store
            .finish_by(execution_id, status, Some(reason), by)
            .await?
        {
            return Ok(false);
        }
        if let Some(t) = self
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(execution_id)
        {
            t.cancel();
        }
        self.halt_children(wf, execution_id).await;
        self.cancel_deadline(wf, workflow_id, execution_id).await;
        match self.on_failure_message(wf, workflow_id, execution_id) {
            Some(msg) => self.queue.publish(vec![msg]).await?,
            None => self.emit_completion(workflow_id, execution_id).await?,
        }
        Ok(true)
    }

    /// The message that runs the workflow's `on_failure` node after a halt (always the same
    /// one, so a re-published copy is deduplicated like any other hop).
    pub(super) fn on_failure_message(
        &self,
        wf: &CompiledWorkflow,
        workflow_id: &str,
        execution_id: &str,
    ) -> Option<HopMessage> {
        let i = wf.on_failure?;
        Some(HopMessage {
            execution_id: execution_id.to_string(),
            workflow_id: workflow_id.to_string(),
            workflow_ref: wf.reference.clone(),
            node_id: wf.nodes[i].id.clone(),
            kind: HopKind::OnFailure,
            from_node: None,
            from_edge: None,
            lineage: Vec::new(),
            attempt: 1,
            traceparent: None,
        })
    }

    /// A hop that finds its execution finished without a completion sent, and the `on_failure`
    /// node due to send it: if this very hop halted the execution (its first delivery died or
    /// failed before the `on_failure` message was confirmed), publish that message again,
    /// unless the `on_failure` node already ran.
    pub(super) async fn recover_on_failure(
        &self,
        wf: &CompiledWorkflow,
        hop: &Hop<'_>,
    ) -> Result<(), PortError> {
        let msg = hop.msg;
        if self.store.finished_by(&msg.execution_id).await?.as_deref() != Some(&hop.id) {
            return Ok(());
        }
        let Some(on_failure) = self.on_failure_message(wf, &msg.workflow_id, &msg.execution_id)
        else {
            return Ok(());
        };
        if self
            .store
            .committed_hop(&msg.execution_id, &on_failure.hop_id())
            .await?
            .is_some()
        {
            return Ok(());
        }
        tracing::info!(execution_id = %msg.execution_id, node_id = %on_failure.node_id, "re-publishing the on_failure message of a redelivered halting hop");
        self.queue.publish(vec![on_failure]).await
    }
}
