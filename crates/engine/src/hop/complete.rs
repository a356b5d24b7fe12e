//! Completing an execution: the final status, then exactly one completion (claimed, sent,
//! marked sent; or, when the event sink relays completions, requested from the relay, which
//! sends and marks it), and the parent's notification first if it is a sub-workflow.

use baton_core::message::{Completion, ExecutionStatus};

use super::engine::Engine;
use super::subworkflow::{PARENT_KEY, without_child_records};
use crate::ports::{CompletionClaim, FinalContext, Lifecycle, PortError};

impl Engine {
    /// Finishes the execution with `status` (first caller wins) and sends its completion.
    pub(super) async fn complete(
        &self,
        workflow_id: &str,
        execution_id: &str,
        status: ExecutionStatus,
        reason: Option<String>,
    ) -> Result<(), PortError> {
        if self.store.finish(execution_id, status, reason).await? {
            Box::pin(self.emit_completion(workflow_id, execution_id)).await?;
        }
        Ok(())
    }

    /// Sends the completion of a finished execution, once: claimed (a claim another worker
    /// holds is an error to retry), sent, then marked sent; the parent of a sub-workflow is told
    /// first.
    pub(super) async fn emit_completion(
        &self,
        workflow_id: &str,
        execution_id: &str,
    ) -> Result<(), PortError> {
        let Lifecycle::Finished {
            status,
            reason,
            completion_sent,
        } = self.store.lifecycle(execution_id).await?
        else {
            return Ok(());
        };
        if completion_sent {
            return Ok(());
        }
        // A relay adopts the completion itself (no lease: nothing to wait for when a sender
        // dies); only the direct path claims it here.
        let relayed = self.events.relays_completions();
        if !relayed {
            match self
                .store
                .claim_completion(execution_id, self.clock.now_ms(), self.completion_lease_ms)
                .await?
            {
                CompletionClaim::Claimed => {}
                CompletionClaim::Sent | CompletionClaim::Unknown => return Ok(()),
                CompletionClaim::Held => {
                    return Err(PortError::transient_msg(format!(
                        "the completion of `{execution_id}` is being sent elsewhere (claimed less \
                         than {} ms ago): retry once it is sent or its claim expires",
                        self.completion_lease_ms
                    )));
                }
            }
        }
        let FinalContext {
            context: mut final_context,
            started_at_ms: started,
        } = self.store.final_context(execution_id).await?;
        without_child_records(&mut final_context);
        // Before the completion is sent, so a crash here tells the parent again (its signal is
        // delivered once per waiter; a repeat with no waiter is kept and unused).
        if final_context.contains_key(PARENT_KEY) {
            self.notify_parent(
                workflow_id,
                execution_id,
                status,
                reason.as_deref(),
                &final_context,
            )
            .await?;
        }
        let completion = Completion {
            workflow_id: workflow_id.to_string(),
            execution_id: execution_id.to_string(),
            status,
            final_context,
            completed_at: self.clock.rfc3339_now(),
            total_duration_ms: self.clock.now_ms().saturating_sub(started),
            failure_reason: reason,
        };
        // Direct: sent (confirmed), then marked; a crash in between repeats it, never loses it.
        // Relayed: the request is confirmed, and the relay sends and marks it once (the hop's
        // redelivery may request it again: the relay drops the copies).
        self.events.completion(completion).await?;
        if !relayed {
            self.store.mark_completion_sent(execution_id).await?;
        }
        self.forget_execution(execution_id);
        Ok(())
    }
}
