//! Skips: a node on a branch not taken passes the skip on, so every join downstream hears
//! from every incoming edge.

use baton_core::graph::{CompiledNode, CompiledWorkflow};
use baton_core::message::{HopKind, HopMessage};
use baton_core::spec::NodeClass;

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::ports::PortError;

impl Engine {
    pub(super) async fn on_skip(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
    ) -> Result<HopOutcome, PortError> {
        if node.class == NodeClass::Aggregator {
            return self.arrive_aggregator(wf, node, hop, false).await;
        }
        if node.is_join {
            return self.arrive_join(wf, node, hop, false).await;
        }
        self.propagate_skip(wf, node, hop).await
    }

    pub(super) async fn propagate_skip(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let mut children: Vec<HopMessage> = Vec::new();
        if node.class == NodeClass::Split {
            // The whole split scope is skipped: tell the aggregator that closes it directly.
            if let Some(closer) = node.split_closer {
                let mut m = msg.clone();
                m.node_id = wf.nodes[closer].id.clone();
                m.from_node = Some(node.id.clone());
                m.from_edge = Some(format!("skip:{}", node.id));
                m.kind = HopKind::Skip;
                children.push(m);
            }
            // Edges that leave the scope (they never reach the closer, e.g. the split's error
            // edge) carry the skip themselves: nothing else tells the joins after them.
            for e in &node.out_edges {
                if !reaches_closer(wf, node, wf.edges[*e].dst) {
                    children.push(self.child(
                        msg,
                        node,
                        wf,
                        *e,
                        HopKind::Skip,
                        msg.lineage.clone(),
                    ));
                }
            }
        } else {
            for e in &node.out_edges {
                children.push(self.child(msg, node, wf, *e, HopKind::Skip, msg.lineage.clone()));
            }
        }
        self.hand_on(wf, hop, Vec::new(), children, None).await
    }
}

/// Whether `dst` reaches the aggregator that closes the scope `split` opens (the closer itself
/// does). A split without a closer has no scope to skip as a whole: nothing reaches it.
fn reaches_closer(wf: &CompiledWorkflow, split: &CompiledNode, dst: usize) -> bool {
    let Some(closer) = split.split_closer else {
        return false;
    };
    let mut stack = vec![dst];
    let mut seen = vec![false; wf.nodes.len()];
    while let Some(i) = stack.pop() {
        if i == closer {
            return true;
        }
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        stack.extend(wf.nodes[i].out_edges.iter().map(|e| wf.edges[*e].dst));
    }
    false
}
