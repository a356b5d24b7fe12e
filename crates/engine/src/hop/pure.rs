//! One round trip for a pure node's hop (RFC 0011, issue 18): a node whose type has no effect
//! outside the engine and reads no context runs before anything is asked of the store, and
//! its commit (`run_commit`) makes the checks `begin_hop` would have made: an unknown
//! execution, a finished one, a hop already committed. No claim is taken (a copy running
//! beside it is harmless: one commit applies, the other is a `Duplicate` that replays) and
//! what it hands on is not marked published (a replay re-publishes it; the successors'
//! deduplication absorbs the copies).

use serde_json::Map;

use baton_core::graph::{CompiledNode, CompiledWorkflow};
use baton_core::message::{HopMessage, StatusEvent};

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::node::NodeOutput;
use crate::ports::{CommittedHop, HopCommit, Lifecycle, PortError, RunCommitOutcome};

impl Engine {
    /// Runs `node` for an unbegun `hop` and commits a plain output. `None`: the run failed (or
    /// its parameters did not resolve), or it handed on more than a plain output: nothing was
    /// written or emitted, and the caller takes the ordinary path.
    pub(super) async fn run_unbegun(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
    ) -> Result<Option<HopOutcome>, PortError> {
        let started = std::time::Instant::now();
        let (running, result) = self.run_step(wf, node, hop, &Map::new(), true).await;
        let output = match result {
            Ok(Ok(output @ (NodeOutput::Value(_) | NodeOutput::Shaped { .. }))) => output,
            _ => return Ok(None),
        };
        *hop.deferred_running
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = running;
        self.finish_success(wf, node, hop, output, started)
            .await
            .map(Some)
    }

    /// `hand_on` for an unbegun hop: `run_commit`, then what `begin_hop`'s answer would have
    /// led to. Applied: the held `running` status, then `status`, go out, the successors are
    /// published (unmarked) and a last token completes the execution. A finished or unknown
    /// execution, or a duplicate, emits no status, as a hop that began would not have run.
    pub(super) async fn commit_unbegun(
        &self,
        wf: &CompiledWorkflow,
        hop: &Hop<'_>,
        commit: HopCommit,
        children: Vec<HopMessage>,
        status: Option<StatusEvent>,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let running = hop.take_deferred_running();
        match self.store.run_commit(&msg.execution_id, commit).await? {
            RunCommitOutcome::Unknown => Ok(HopOutcome::Poison(format!(
                "unknown execution `{}`",
                msg.execution_id
            ))),
            RunCommitOutcome::Ended(Lifecycle::Finished {
                status,
                completion_sent,
                ..
            }) => {
                // The run made this process hold a cancellation token for an execution that is
                // over: drop it (a hop that began would not have made one).
                self.forget_execution(&msg.execution_id);
                Box::pin(self.on_finished(wf, hop, status, completion_sent)).await
            }
            RunCommitOutcome::Ended(other) => Err(PortError::permanent_msg(format!(
                "run_commit answered an ended execution with lifecycle {other:?}"
            ))),
            RunCommitOutcome::Duplicate(CommittedHop { handoff, pending }) => {
                Box::pin(self.replay(wf, msg, handoff.unwrap_or_default(), pending)).await
            }
            RunCommitOutcome::Applied { pending } => {
                if let Some(running) = running {
                    self.emit(wf.definition.status_mode, running).await;
                }
                if let Some(ev) = status {
                    self.emit(wf.definition.status_mode, ev).await;
                }
                self.publish_messages(children, Vec::new()).await?;
                self.complete_if_last(wf, msg, pending).await?;
                Ok(HopOutcome::Done)
            }
        }
    }
}
