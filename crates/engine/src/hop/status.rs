//! Status events: building one for a node in its scope, and emitting it in the status mode in
//! effect (RFC 0011: `full` sends every event, `compact` one `NodeRun` per node run, `off`
//! none). A lost status is a monitoring gap, not lost work.

use baton_core::graph::CompiledNode;
use baton_core::message::{HopMessage, NodeRun, NodeStatus, StatusEvent, StatusMode, scope_of};

use super::engine::Engine;

impl Engine {
    /// The status mode of `requested` (a workflow's `status_mode`) on this engine.
    fn mode_for(&self, requested: Option<StatusMode>) -> StatusMode {
        self.status_mode.limited_to(requested)
    }

    /// Whether a `status` event of `node` is sent at all (so worth building in full).
    pub(super) fn sends_status(&self, node: &CompiledNode, status: NodeStatus) -> bool {
        self.events.wants_status() && self.mode_for(node.status_mode).sends(status)
    }

    pub(super) fn status(
        &self,
        node: &CompiledNode,
        msg: &HopMessage,
        status: NodeStatus,
    ) -> StatusEvent {
        if !self.sends_status(node, status) {
            // Not sent in this mode, or nobody observes statuses: an empty event (no
            // allocation), never sent.
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

    /// Sends `ev` as the mode for `requested` (the workflow's `status_mode`) says: as it is
    /// (`full`), as a [`NodeRun`] if it is final (`compact`), or not at all.
    pub(super) async fn emit(&self, requested: Option<StatusMode>, ev: StatusEvent) {
        let mode = self.mode_for(requested);
        if !self.events.wants_status() || !mode.sends(ev.status) || ev.execution_id.is_empty() {
            return;
        }
        let sent = if mode == StatusMode::Compact {
            self.events.node_run(compact(ev)).await
        } else {
            self.events.status(ev).await
        };
        // A lost status is a monitoring gap, not lost work: log and continue.
        if let Err(e) = sent {
            tracing::warn!(error = %e, "status event not delivered");
        }
    }
}

/// A final status event as a compact node run: its start is its end less its duration, its
/// output stays in the context (at the node's key in its scope) and is named, not carried.
fn compact(ev: StatusEvent) -> NodeRun {
    let started_at = chrono::DateTime::parse_from_rfc3339(&ev.executed_at)
        .map(|end| {
            let ms = i64::try_from(ev.duration_ms).unwrap_or(i64::MAX);
            (end - chrono::Duration::milliseconds(ms))
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        })
        .unwrap_or_else(|_| ev.executed_at.clone());
    let output_ref = (ev.status == NodeStatus::Success).then(|| {
        let scope = scope_of(&ev.lineage_stack);
        let key = format!("${}", ev.node_name);
        if scope.is_empty() {
            key
        } else {
            format!("{key}@{scope}")
        }
    });
    NodeRun::of(ev, started_at, output_ref)
}
