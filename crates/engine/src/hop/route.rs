//! Handing the baton on: successor messages, the commit that records them (for a redelivery
//! to replay), and the replay of a hop that already committed.

use baton_core::graph::{CompiledNode, CompiledWorkflow, RouteOutcome};
use baton_core::message::{ExecutionStatus, Frame, HopKind, HopMessage, StatusEvent};
use serde_json::Value;

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::ports::{CommitOutcome, ContextWrite, Handoff, HopCommit, PortError, ScopedKey};

impl Engine {
    pub(super) fn child(
        &self,
        msg: &HopMessage,
        from: &CompiledNode,
        wf: &CompiledWorkflow,
        edge: usize,
        kind: HopKind,
        lineage: Vec<Frame>,
    ) -> HopMessage {
        let e = &wf.edges[edge];
        HopMessage {
            execution_id: msg.execution_id.clone(),
            workflow_id: msg.workflow_id.clone(),
            workflow_ref: msg.workflow_ref.clone(),
            node_id: wf.nodes[e.dst].id.clone(),
            kind,
            from_node: Some(from.id.clone()),
            from_edge: Some(e.id.clone()),
            lineage,
            attempt: 1,
            traceparent: msg.traceparent.clone(),
        }
    }

    /// Successor messages for a routing decision: runs on taken edges, skips on the others.
    pub(super) fn successors(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        msg: &HopMessage,
        lineage: &[Frame],
        outcome: RouteOutcome<'_>,
    ) -> Vec<HopMessage> {
        let (taken, untaken) = wf.route(node.idx, outcome);
        let mut out = Vec::with_capacity(taken.len() + untaken.len());
        for e in taken {
            out.push(self.child(msg, node, wf, e, HopKind::Run, lineage.to_vec()));
        }
        for e in untaken {
            out.push(self.child(msg, node, wf, e, HopKind::Skip, lineage.to_vec()));
        }
        out
    }

    /// A copy of a hop that already committed (a redelivery, a duplicate, a re-check): the node
    /// does not run again; what it handed on is published unless it was marked published
    /// (then the recorded handoff is empty), and, if nothing is pending, the completion its
    /// first delivery may not have sent goes out.
    pub(super) async fn replay(
        &self,
        wf: &CompiledWorkflow,
        msg: &HopMessage,
        handoff: Handoff,
        pending: i64,
    ) -> Result<HopOutcome, PortError> {
        tracing::debug!(execution_id = %msg.execution_id, node_id = %msg.node_id, now = handoff.now.len(), later = handoff.later.len(), "hop already committed: replaying what it handed on, if not yet published");
        // Timers have deterministic ids: one still pending is not scheduled twice.
        self.publish_handoff(msg, &msg.hop_id(), handoff.now, handoff.later)
            .await?;
        self.complete_if_last(wf, msg, pending).await?;
        Ok(HopOutcome::Done)
    }

    /// Completes the execution when `pending` (its tokens after this hop's commit) is 0: this
    /// hop was its last.
    pub(super) async fn complete_if_last(
        &self,
        wf: &CompiledWorkflow,
        msg: &HopMessage,
        pending: i64,
    ) -> Result<(), PortError> {
        if pending == 0 {
            self.cancel_deadline(wf, &msg.workflow_id, &msg.execution_id)
                .await;
            self.complete(
                &msg.workflow_id,
                &msg.execution_id,
                ExecutionStatus::Completed,
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// The output this node stored in this message's scope (a parked node reads what its
    /// first hop, or the delivery that resumed it, left there).
    pub(super) async fn own_output(
        &self,
        node: &CompiledNode,
        hop: &Hop<'_>,
    ) -> Result<Option<Value>, PortError> {
        let msg = hop.msg;
        let stored = self
            .store
            .read_exact(
                &msg.execution_id,
                &[ScopedKey {
                    scope: hop.scope.clone(),
                    key: node.key.clone(),
                }],
            )
            .await?;
        Ok(stored.into_iter().next().flatten())
    }

    /// What a hop hands on, recorded with its commit for a redelivery to replay (empty when
    /// the store never redelivers).
    pub(super) fn handoff(
        &self,
        now: &[HopMessage],
        later: &[(u64, &HopMessage)],
    ) -> Option<Handoff> {
        self.store.replays_hops().then(|| Handoff {
            now: now.to_vec(),
            later: later.iter().map(|(ms, m)| (*ms, (*m).clone())).collect(),
        })
    }

    /// Commits, then publishes successors; completes the execution when no token remains. A
    /// commit found `Duplicate` publishes nothing: the copy that committed first publishes (and
    /// if it died before its publish was confirmed, its redelivery replays the handoff).
    pub(super) async fn hand_on(
        &self,
        wf: &CompiledWorkflow,
        hop: &Hop<'_>,
        outputs: Vec<ContextWrite>,
        children: Vec<HopMessage>,
        status: Option<StatusEvent>,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let commit = HopCommit {
            hop_id: hop.id.clone(),
            outputs,
            tokens_out: children.len() as i64,
            handoff: self.handoff(&children, &[]),
        };
        if hop.unbegun {
            return self.commit_unbegun(wf, hop, commit, children, status).await;
        }
        let outcome = self.store.commit(&msg.execution_id, commit).await?;
        if let (Some(ev), CommitOutcome::Applied { .. }) = (status, &outcome) {
            self.emit(wf.definition.status_mode, ev).await;
        }
        if let CommitOutcome::Applied { .. } = outcome {
            if hop.pure {
                // Not marked published: see `pure.rs`.
                self.publish_messages(children, Vec::new()).await?;
            } else {
                self.publish_handoff(msg, &hop.id, children, Vec::new())
                    .await?;
            }
        }
        let (CommitOutcome::Applied { pending } | CommitOutcome::Duplicate { pending }) = outcome;
        self.complete_if_last(wf, msg, pending).await?;
        Ok(HopOutcome::Done)
    }
}
