//! Races (`merge` with `wait_mode: wait_for_any` and `cancel_losers`): when the merge releases
//! for its winner, the losing branches are cancelled. The release commits a cancellation
//! marker per losing node in the merge's scope (with its own output, atomically), then aborts
//! the losers' runs in flight (here, and on every worker through the store's broadcast) and
//! releases the tokens of losers parked on a timer at once. A loser's message that arrives
//! later finds its marker and is dropped, releasing its token, so the execution ends when the
//! winner's path does. Also here: how a cancelled run ends (`cancelled` in the history).

use std::time::Instant;

use baton_core::ErrorCode;
use baton_core::graph::{CompiledNode, CompiledWorkflow, race_marker};
use baton_core::message::{ErrorInfo, HopKind, HopMessage, NodeStatus};
use baton_core::wire::NodeCancel;
use serde_json::{Map, Value, json};

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::ports::{ContextWrite, PortError, ScopedKey};

impl Engine {
    /// The markers a race's release commits: one per losing node, in the merge's scope.
    pub(super) fn race_markers(
        &self,
        wf: &CompiledWorkflow,
        join: &CompiledNode,
        hop: &Hop<'_>,
        winner_edge: &str,
        winner: &str,
    ) -> (Vec<String>, Vec<ContextWrite>) {
        let losers: Vec<String> = wf
            .race_losers(join.idx, winner_edge)
            .into_iter()
            .map(|i| wf.nodes[i].id.clone())
            .collect();
        let writes = losers
            .iter()
            .map(|id| {
                ContextWrite::new(
                    hop.scope.clone(),
                    race_marker(id),
                    json!({"merge": join.id, "winner": winner}),
                )
            })
            .collect();
        (losers, writes)
    }

    /// After the release committed its markers: abort the losers' runs in flight (here and
    /// elsewhere) and release at once the tokens of losers parked on a timer.
    pub(super) async fn cancel_losers(
        &self,
        wf: &CompiledWorkflow,
        hop: &Hop<'_>,
        losers: Vec<String>,
    ) -> Result<(), PortError> {
        if losers.is_empty() {
            return Ok(());
        }
        let msg = hop.msg;
        self.runs.cancel(&msg.execution_id, &hop.scope, &losers);
        let parked = self.parked_losers(wf, hop, &losers).await?;
        self.store
            .broadcast_node_cancel(&NodeCancel {
                execution_id: msg.execution_id.clone(),
                scope: hop.scope.clone(),
                node_ids: losers,
            })
            .await?;
        if !parked.is_empty() {
            // The very resume each timer will deliver (same hop id): the first of the two to
            // arrive is dropped by its marker and releases the token, the other is a duplicate.
            self.queue.publish(parked).await?;
        }
        Ok(())
    }

    /// The resume messages of losers parked on a `wait` timer in the merge's scope (their
    /// stored output is the timer's `{resume_at, delay_ms}`). A loser reached over several
    /// edges (a join) is left to its timer: which edge ran it is not known here.
    async fn parked_losers(
        &self,
        wf: &CompiledWorkflow,
        hop: &Hop<'_>,
        losers: &[String],
    ) -> Result<Vec<HopMessage>, PortError> {
        let msg = hop.msg;
        let candidates: Vec<&CompiledNode> = losers
            .iter()
            .filter_map(|id| wf.node(id))
            .filter(|n| n.in_edges.len() <= 1 && !n.is_join)
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let entries: Vec<ScopedKey> = candidates
            .iter()
            .map(|n| ScopedKey {
                scope: hop.scope.clone(),
                key: n.key.clone(),
            })
            .collect();
        let stored = self.store.read_exact(&msg.execution_id, &entries).await?;
        let mut resumes = Vec::new();
        for (node, output) in candidates.into_iter().zip(stored) {
            let parked = output.as_ref().and_then(Value::as_object).is_some_and(|o| {
                o.len() == 2 && o.contains_key("resume_at") && o.contains_key("delay_ms")
            });
            if !parked {
                continue;
            }
            let edge = node.in_edges.first().map(|e| &wf.edges[*e]);
            resumes.push(HopMessage {
                execution_id: msg.execution_id.clone(),
                workflow_id: msg.workflow_id.clone(),
                workflow_ref: msg.workflow_ref.clone(),
                node_id: node.id.clone(),
                kind: HopKind::Resume,
                from_node: edge.map(|e| wf.nodes[e.src].id.clone()),
                from_edge: edge.map(|e| e.id.clone()),
                lineage: msg.lineage.clone(),
                attempt: 1,
                traceparent: msg.traceparent.clone(),
            });
        }
        Ok(resumes)
    }

    /// Whether this message's node lost a race in its scope: the marker its hop read.
    pub(super) fn lost_race(node: &CompiledNode, context: &mut Map<String, Value>) -> bool {
        node.may_lose && context.remove(&race_marker(&node.id)).is_some()
    }

    /// A message of a race's loser: dropped, its token released; a run that never started or a
    /// parked node that would have resumed is reported `cancelled`.
    pub(super) async fn drop_loser(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
    ) -> Result<HopOutcome, PortError> {
        let status = matches!(hop.msg.kind, HopKind::Run | HopKind::Resume)
            .then(|| self.cancelled_status(node, hop, "its branch lost a race", 0));
        self.hand_on(wf, hop, Vec::new(), Vec::new(), status).await
    }

    /// A run aborted by its cancellation token. It is reported `cancelled` (on the wire:
    /// `failed` with code `CANCELLED`, the status Rune monitors know). If the execution
    /// stopped, that is all (its later messages are dropped); if only this node was cancelled
    /// (a race it lost), its branch ends and its token is released.
    pub(super) async fn end_cancelled(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        _info: ErrorInfo,
        started: Instant,
    ) -> Result<HopOutcome, PortError> {
        let elapsed = started.elapsed().as_millis() as u64;
        if self.execution_stopped(&hop.msg.execution_id) {
            self.emit(
                node.status_mode,
                self.cancelled_status(node, hop, "the execution stopped", elapsed),
            )
            .await;
            return Ok(HopOutcome::Dropped);
        }
        let ev = self.cancelled_status(node, hop, "its branch lost a race", elapsed);
        self.hand_on(wf, hop, Vec::new(), Vec::new(), Some(ev))
            .await
    }

    /// The `cancelled` status of a node: `failed` with code `CANCELLED`.
    fn cancelled_status(
        &self,
        node: &CompiledNode,
        hop: &Hop<'_>,
        why: &str,
        duration_ms: u64,
    ) -> baton_core::message::StatusEvent {
        let mut ev = self.status(node, hop.msg, NodeStatus::Failed);
        ev.duration_ms = duration_ms;
        ev.error = Some(ErrorInfo {
            message: format!("cancelled: {why}"),
            code: ErrorCode::Cancelled.to_string(),
            details: None,
        });
        ev
    }

    /// Whether the execution's own token fired (a cancel or a halt), or this process already
    /// forgot the execution (it finished).
    fn execution_stopped(&self, execution_id: &str) -> bool {
        self.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(execution_id)
            .is_none_or(|t| t.is_cancelled())
    }

    /// Aborts runs of some nodes of an execution in this process (a race's losers, told by the
    /// broadcast of the worker that released the race).
    pub fn cancel_nodes_local(&self, cancel: &NodeCancel) -> usize {
        self.runs
            .cancel(&cancel.execution_id, &cancel.scope, &cancel.node_ids)
    }
}
