//! The front door of the hop: `handle` checks one message against its workflow and its
//! execution's lifecycle, then sends it to the room that deals with its kind.

use std::borrow::Cow;

use baton_core::graph::{CompiledNode, CompiledWorkflow};
use baton_core::message::{ExecutionStatus, HopKind, HopMessage, scope_chain};
use baton_core::spec::NodeClass;
use serde_json::{Map, Value};

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::ports::{CommittedHop, HeldClaim, Lifecycle, PortError};

/// The scope chain of a message outside any split.
const TOP_LEVEL_CHAIN: &[String] = &[String::new()];

impl Engine {
    /// Processes one message.
    pub async fn handle(&self, msg: HopMessage) -> Result<HopOutcome, PortError> {
        self.handle_ref(&msg).await
    }

    /// Processes one message the caller keeps (to log it after, or run it again).
    pub async fn handle_ref(&self, msg: &HopMessage) -> Result<HopOutcome, PortError> {
        let Some(wf) = self.definitions.get(&msg.workflow_ref) else {
            return Ok(HopOutcome::Poison(format!(
                "unknown workflow_ref `{}`",
                msg.workflow_ref
            )));
        };
        let Some(node) = wf.node(&msg.node_id) else {
            return Ok(HopOutcome::Poison(format!(
                "node `{}` is not in workflow `{}`",
                msg.node_id, msg.workflow_ref
            )));
        };
        if let Some(reason) = super::bounds::out_of_bounds(msg, node, self.max_split_items) {
            return Ok(HopOutcome::Poison(reason));
        }
        if msg.kind == HopKind::Deadline {
            // No token, no claim, no context: it only fails the execution if still running.
            return self.on_deadline(&wf, msg).await;
        }
        let hop = Hop::new(msg);
        // Every kind but `OnFailure` (it runs after the execution finished, when `begin_hop`
        // reads nothing) begins in one round trip: lifecycle, "did this hop commit", the claim
        // on running it where messages can be duplicated, and for an ordinary node run the
        // context keys it references.
        if msg.kind == HopKind::OnFailure {
            let lifecycle = self.store.lifecycle(&msg.execution_id).await?;
            return self.dispatch(&wf, node, &hop, lifecycle, None).await;
        }
        let local = if self.claims_hops() {
            match self.run_locally(&hop) {
                Some(local) => Some(local),
                None => {
                    // This process runs that very hop now: look again when its claim would
                    // expire (if that run fails, its own delivery comes back anyway).
                    let held = HeldClaim {
                        owner: self.worker_id.clone(),
                        expires_at_ms: self.clock.now_ms() + self.hop_lease_ms,
                    };
                    return self.recheck_later(msg, held).await;
                }
            }
        } else {
            None
        };
        let plain_run =
            msg.kind == HopKind::Run && !node.is_join && node.class != NodeClass::Aggregator;
        let mut hop = hop;
        // A pure node's run takes no claim: a second copy running beside it is harmless, its
        // commit is a `Duplicate` (RFC 0011, "one round trip").
        hop.pure = plain_run && node.pure && !node.may_lose;
        if hop.pure && node.reads.is_empty() && node.class != NodeClass::Split {
            // Nothing to read: no round trip before the run; its commit makes the checks.
            hop.unbegun = true;
            if let Some(outcome) = self.run_unbegun(&wf, node, &hop).await? {
                return Ok(outcome);
            }
            // It failed, or handed on more than a plain output: the ordinary path runs it
            // again (harmless: it is pure), retries, halts or routes the error as usual.
            hop.unbegun = false;
        }
        let mut keys: Cow<'_, [String]> = if plain_run {
            Cow::Borrowed(&node.reads)
        } else {
            Cow::Borrowed(&[])
        };
        if node.may_lose {
            // Upstream of a race that cancels its losers: read this node's marker too.
            keys.to_mut().push(baton_core::graph::race_marker(&node.id));
        }
        let claim = local
            .as_ref()
            .filter(|_| !hop.pure)
            .map(|_| self.hop_claim());
        // A top-level hop's chain is the top scope alone: not built per hop.
        let chain: Cow<'_, [String]> = if msg.lineage.is_empty() {
            Cow::Borrowed(TOP_LEVEL_CHAIN)
        } else {
            Cow::Owned(scope_chain(&msg.lineage))
        };
        let begun = self
            .store
            .begin_hop(&msg.execution_id, &hop.id, &chain, &keys, claim)
            .await?;
        if let Some(held) = begun.held {
            return self.recheck_later(msg, held).await;
        }
        if let Some(CommittedHop { handoff, pending }) = begun.committed {
            return Box::pin(self.replay(&wf, msg, handoff.unwrap_or_default(), pending)).await;
        }
        let mut context = begun.context;
        if Self::lost_race(node, &mut context) && matches!(begun.lifecycle, Lifecycle::Running) {
            let work = self.drop_loser(&wf, node, &hop);
            return if local.is_some() {
                self.renewing(&hop, Box::pin(work)).await
            } else {
                work.await
            };
        }
        let preloaded = plain_run.then_some(context);
        let work = self.dispatch(&wf, node, &hop, begun.lifecycle, preloaded);
        // No claim to renew on a pure hop.
        if claim.is_some() {
            self.renewing(&hop, Box::pin(work)).await
        } else {
            work.await
        }
    }

    /// Sends a message to its room once its lifecycle is known.
    async fn dispatch(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        lifecycle: Lifecycle,
        preloaded: Option<Map<String, Value>>,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        match lifecycle {
            Lifecycle::Unknown => {
                return Ok(HopOutcome::Poison(format!(
                    "unknown execution `{}`",
                    msg.execution_id
                )));
            }
            Lifecycle::Finished {
                status,
                completion_sent,
                ..
            } if msg.kind != HopKind::OnFailure => {
                return self.on_finished(wf, hop, status, completion_sent).await;
            }
            _ => {}
        }
        match msg.kind {
            HopKind::Skip => Box::pin(self.on_skip(wf, node, hop)).await,
            HopKind::EmptySplit => {
                Box::pin(self.release_aggregator(wf, node, hop, &msg.lineage, 0, Vec::new())).await
            }
            HopKind::Resume => Box::pin(self.on_resume(wf, node, hop)).await,
            HopKind::SignalTimeout => Box::pin(self.on_signal_timeout(wf, node, hop)).await,
            HopKind::Deadline => self.on_deadline(wf, msg).await,
            HopKind::OnFailure => {
                // A redelivered (or re-published) `on_failure` message whose node already ran
                // does not run it again: it only makes sure the completion went out.
                if self.store.replays_hops()
                    && self
                        .store
                        .committed_hop(&msg.execution_id, &hop.id)
                        .await?
                        .is_some()
                {
                    self.emit_completion(&msg.workflow_id, &msg.execution_id)
                        .await?;
                    return Ok(HopOutcome::Dropped);
                }
                self.execute(wf, node, hop, preloaded).await
            }
            HopKind::Run if node.class == NodeClass::Aggregator => {
                Box::pin(self.arrive_aggregator(wf, node, hop, true)).await
            }
            HopKind::Run if node.is_join => Box::pin(self.arrive_join(wf, node, hop, true)).await,
            HopKind::Run => self.execute(wf, node, hop, preloaded).await,
        }
    }

    /// A hop of an execution that finished: dropped. The hop that finished it may have died
    /// before its completion went out: a redelivery that finds it unsent sends it (claimed:
    /// once), unless the `on_failure` node will (it runs after a failure and sends it itself):
    /// then, if this hop is the one that halted the execution, it re-publishes the
    /// `on_failure` message its first delivery may have lost. Only where messages are
    /// redelivered (the embedded runtime never loses a hop).
    pub(super) async fn on_finished(
        &self,
        wf: &CompiledWorkflow,
        hop: &Hop<'_>,
        status: ExecutionStatus,
        completion_sent: bool,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let on_failure_sends = wf.on_failure.is_some() && status != ExecutionStatus::Completed;
        if !completion_sent && self.store.replays_hops() {
            if on_failure_sends {
                Box::pin(self.recover_on_failure(wf, hop)).await?;
            } else {
                self.emit_completion(&msg.workflow_id, &msg.execution_id)
                    .await?;
            }
        }
        Ok(HopOutcome::Dropped)
    }
}
