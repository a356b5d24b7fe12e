//! The execution's deadline (the workflow's `timeout_ms`): a timer message scheduled at the
//! start that fails the execution if it is still running when it fires, cancelling its running
//! nodes; a no-op otherwise. It holds no token, so it never keeps an execution alive, and it
//! is cancelled when the execution completes or halts first (where the queue can).

use baton_core::ErrorCode;
use baton_core::graph::CompiledWorkflow;
use baton_core::message::{ExecutionStatus, HopKind, HopMessage};

use super::engine::{Engine, HopOutcome};
use crate::ports::{Lifecycle, PortError};

/// The reason an execution fails with when its deadline passes.
pub fn deadline_reason(timeout_ms: u64) -> String {
    format!(
        "execution exceeded its deadline of {timeout_ms} ms [{}]",
        ErrorCode::ExecutionTimeout
    )
}

impl Engine {
    /// The deadline message of an execution of `wf` (none without `timeout_ms`, or nodes).
    pub(super) fn deadline_message(
        &self,
        wf: &CompiledWorkflow,
        workflow_id: &str,
        execution_id: &str,
    ) -> Option<HopMessage> {
        wf.definition.timeout_ms?;
        let node = wf.nodes.first()?;
        Some(HopMessage {
            execution_id: execution_id.to_string(),
            workflow_id: workflow_id.to_string(),
            workflow_ref: wf.reference.clone(),
            node_id: node.id.clone(),
            kind: HopKind::Deadline,
            from_node: None,
            from_edge: None,
            lineage: Vec::new(),
            attempt: 1,
            traceparent: None,
        })
    }

    /// Schedules the deadline of an execution started at `started_at_ms` (idempotent where the
    /// queue keys timers by message: a duplicate start schedules it once).
    pub(super) async fn schedule_deadline(
        &self,
        wf: &CompiledWorkflow,
        workflow_id: &str,
        execution_id: &str,
        started_at_ms: u64,
    ) -> Result<(), PortError> {
        let (Some(timeout_ms), Some(msg)) = (
            wf.definition.timeout_ms,
            self.deadline_message(wf, workflow_id, execution_id),
        ) else {
            return Ok(());
        };
        let delay = started_at_ms
            .saturating_add(timeout_ms)
            .saturating_sub(self.clock.now_ms());
        self.queue.publish_delayed(msg, delay.max(1)).await
    }

    /// The execution finished before its deadline: its timer has nothing left to do.
    pub(super) async fn cancel_deadline(
        &self,
        wf: &CompiledWorkflow,
        workflow_id: &str,
        execution_id: &str,
    ) {
        let Some(msg) = self.deadline_message(wf, workflow_id, execution_id) else {
            return;
        };
        if let Err(e) = self.queue.cancel_delayed(&msg).await {
            // It fires later and finds the execution finished: only a timer left behind.
            tracing::warn!(execution_id, error = %e, "deadline timer not cancelled");
        }
    }

    /// The deadline fired: a running execution fails with the reason (its running nodes are
    /// cancelled, its `on_failure` node runs, queued messages are dropped when they arrive);
    /// a finished or forgotten one is left alone. `Done` when this message failed it.
    pub(super) async fn on_deadline(
        &self,
        wf: &CompiledWorkflow,
        msg: &HopMessage,
    ) -> Result<HopOutcome, PortError> {
        let Some(timeout_ms) = wf.definition.timeout_ms else {
            return Ok(HopOutcome::Dropped);
        };
        if !matches!(
            self.store.lifecycle(&msg.execution_id).await?,
            Lifecycle::Running
        ) {
            return Ok(HopOutcome::Dropped);
        }
        let halted = self
            .halt(
                wf,
                &msg.workflow_id,
                &msg.execution_id,
                ExecutionStatus::Failed,
                deadline_reason(timeout_ms),
                &msg.hop_id(),
            )
            .await?;
        Ok(if halted {
            HopOutcome::Done
        } else {
            HopOutcome::Dropped
        })
    }
}
