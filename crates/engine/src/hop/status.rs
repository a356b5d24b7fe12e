//! Status events: building one for a node in its scope, and emitting it (a lost status is a
//! monitoring gap, not lost work).

use baton_core::graph::CompiledNode;
use baton_core::message::{HopMessage, NodeStatus, StatusEvent};

use super::engine::Engine;

impl Engine {
    pub(super) fn status(
        &self,
        node: &CompiledNode,
        msg: &HopMessage,
        status: NodeStatus,
    ) -> StatusEvent {
        if !self.events.wants_status() {
            // Nobody observes statuses: an empty event (no allocation), never sent.
            return StatusEvent {
                workflow_id: String::new(),
                execution_id: String::new(),
                node_id: String::new(),
                node_name: String::new(),
                node_type: String::new(),
                status,
                parameters: None,
                output: None,
                error: None,
                executed_at: String::new(),
                duration_ms: 0,
                branch_id: None,
                split_node_id: None,
                item_index: None,
                total_items: None,
                lineage_stack: Vec::new(),
                attempt: None,
            };
        }
        let top = msg.lineage.last();
        StatusEvent {
            workflow_id: msg.workflow_id.clone(),
            execution_id: msg.execution_id.clone(),
            node_id: node.id.clone(),
            node_name: node.name.clone(),
            node_type: node.node_type.clone(),
            status,
            parameters: None,
            output: None,
            error: None,
            executed_at: self.clock.rfc3339_now(),
            duration_ms: 0,
            branch_id: top.map(|f| f.branch_id.clone()),
            split_node_id: top.map(|f| f.split_node_id.clone()),
            item_index: top.map(|f| f.item_index),
            total_items: top.map(|f| f.total_items),
            lineage_stack: msg.lineage.clone(),
            attempt: (msg.attempt > 1).then_some(msg.attempt),
        }
    }

    pub(super) async fn emit(&self, ev: StatusEvent) {
        if !self.events.wants_status() {
            return;
        }
        // A lost status is a monitoring gap, not lost work: log and continue.
        if let Err(e) = self.events.status(ev).await {
            tracing::warn!(error = %e, "status event not delivered");
        }
    }
}
