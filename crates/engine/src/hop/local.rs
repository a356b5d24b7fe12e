//! Arrivals handled in-process (RFC 0011, issue 18): a hop whose handoff contains an arrival
//! at an aggregator or a merge handles that arrival itself, right after its commit, instead of
//! sending it through the broker. Such an arrival only touches the store (record the arrival,
//! end its token) unless it releases the node, and a release runs no node code (the
//! aggregator collects, the merge reads), so it costs the worker little and saves a publish, a
//! delivery and an ack per arrival: a fan-out over 100 items saves 100 broker round trips.
//!
//! An arrival runs through `handle_ref`, the very path a delivered one takes (its claim, its
//! commit deduplicated by hop id, its statuses): only the broker is skipped. The delivery that
//! produced it is acked only after it finishes (`publish_handoff` awaits it, and marks the
//! handoff published only then): a worker that dies in between leaves the delivery
//! unacked, and its redelivery replays the committed handoff, arriving again (an arrival is
//! idempotent per arrival key, and a committed arrival replays nothing).
//!
//! Not handled here: an arrival at a join whose release runs a node's code (a node with several
//! incoming edges that is not a merge): that run may be long, and belongs to whichever worker
//! the broker gives it to. Arrivals that come from outside (a Rune master or worker) are
//! delivered and handled as before.

use baton_core::message::{HopKind, HopMessage};
use baton_core::spec::NodeClass;

use super::engine::{Engine, HopOutcome};
use crate::ports::PortError;

impl Engine {
    /// Whether `msg` is an arrival this process handles itself instead of publishing it.
    fn arrives_here(&self, msg: &HopMessage) -> bool {
        if !self.local_arrivals || !matches!(msg.kind, HopKind::Run | HopKind::Skip) {
            return false;
        }
        let Some(wf) = self.definitions.get(&msg.workflow_ref) else {
            return false;
        };
        wf.node(&msg.node_id).is_some_and(|node| {
            node.class == NodeClass::Aggregator || (node.is_join && node.class == NodeClass::Merge)
        })
    }

    /// Splits what a hop hands on into the arrivals it handles itself and the rest.
    pub(super) fn local_arrivals(
        &self,
        now: Vec<HopMessage>,
    ) -> (Vec<HopMessage>, Vec<HopMessage>) {
        if !self.local_arrivals {
            return (Vec::new(), now);
        }
        now.into_iter().partition(|m| self.arrives_here(m))
    }

    /// Handles each arrival as a delivered one would be. One the engine refuses (poison) is
    /// published after all, so that the broker dead-letters it as it would have before; an
    /// error is returned (the caller's delivery is then not acked, and its redelivery replays
    /// the handoff).
    pub(super) async fn arrive_locally(&self, arrivals: Vec<HopMessage>) -> Result<(), PortError> {
        let mut refused = Vec::new();
        for msg in arrivals {
            // Boxed: the release may hand on to another local arrival (nested splits).
            match Box::pin(self.handle_ref(&msg)).await? {
                HopOutcome::Done | HopOutcome::Dropped => {}
                HopOutcome::Poison(reason) => {
                    tracing::warn!(execution_id = %msg.execution_id, node_id = %msg.node_id, %reason, "local arrival refused: publishing it to be dead-lettered");
                    refused.push(msg);
                }
            }
        }
        if !refused.is_empty() {
            self.queue.publish(refused).await?;
        }
        Ok(())
    }
}
