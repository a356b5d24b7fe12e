//! A node succeeded: store its output and route on what it asked for (a timer, a signal, a
//! split's items, a sub-workflow, or plain successors).

use std::time::Instant;

use baton_core::graph::{CompiledNode, CompiledWorkflow, RouteOutcome};
use baton_core::message::{Frame, HopKind, HopMessage, NodeStatus, StatusEvent, scope_of};
use serde_json::{Value, json};

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::node::{NodeError, NodeOutput};
use crate::ports::{CommitOutcome, ContextWrite, HopCommit, PortError};
use baton_core::ErrorCode;

impl Engine {
    /// Routes a successful run on what the node produced.
    pub(super) async fn finish_success(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        output: NodeOutput,
        started: Instant,
    ) -> Result<HopOutcome, PortError> {
        let mut ev = self.status(node, hop.msg, NodeStatus::Success);
        ev.duration_ms = started.elapsed().as_millis() as u64;
        match output {
            NodeOutput::Value(output) => self.succeed_with(wf, node, hop, output, None, ev).await,
            NodeOutput::Shaped { output, json } => {
                self.succeed_with(wf, node, hop, output, Some(json), ev)
                    .await
            }
            NodeOutput::Split { items } => {
                // The worker's cap; the node's own `max_items` (checked by the node) may be lower.
                let cap = self.max_split_items;
                if items.len() > cap {
                    let err = NodeError {
                        retryable: false,
                        ..NodeError::new(
                            ErrorCode::LimitExceeded,
                            format!(
                                "split over {} items, over this worker's cap of {cap} (setting BATON_MAX_SPLIT_ITEMS)",
                                items.len()
                            ),
                        )
                    };
                    drop(items);
                    return self.fail(wf, node, hop, err, started).await;
                }
                self.fan_out(wf, node, hop, items, ev).await
            }
            NodeOutput::Wait { delay_ms } => self.park_until(node, hop, delay_ms, ev).await,
            NodeOutput::AwaitSignal { name, timeout_ms } => {
                Box::pin(self.await_signal(wf, node, hop, name, timeout_ms, ev)).await
            }
            NodeOutput::StartChild(child) => {
                Box::pin(self.start_subworkflow(wf, node, hop, &child, ev, started)).await
            }
        }
    }

    /// Stores `output` under the node's key (and `json` as `$json`, if given) and routes on it.
    async fn succeed_with(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        output: Value,
        json: Option<Value>,
        mut ev: StatusEvent,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let children = self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Success(&output));
        // The output is copied only for a status event that is sent (an unsent one is empty).
        if !ev.execution_id.is_empty() {
            ev.output = Some(output.clone());
        }
        let mut outputs = Vec::with_capacity(1 + usize::from(json.is_some()));
        outputs.push(ContextWrite::new(
            hop.scope.clone(),
            node.key.clone(),
            output,
        ));
        if let Some(json) = json {
            outputs.push(ContextWrite::new(hop.scope.clone(), "$json", json));
        }
        self.hand_on(wf, hop, outputs, children, Some(ev)).await
    }

    /// A timer: the branch parks (holding its token) and resumes after `delay_ms`.
    async fn park_until(
        &self,
        node: &CompiledNode,
        hop: &Hop<'_>,
        delay_ms: u64,
        mut ev: StatusEvent,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let resume_at = self.clock.now_ms().saturating_add(delay_ms);
        let out = json!({"resume_at": resume_at, "delay_ms": delay_ms});
        let outputs = vec![ContextWrite::new(
            hop.scope.clone(),
            node.key.clone(),
            out.clone(),
        )];
        ev.status = NodeStatus::Waiting;
        ev.output = Some(out);
        let mut resume = msg.clone();
        resume.kind = HopKind::Resume;
        resume.attempt = 1;
        let commit = HopCommit {
            hop_id: hop.id.clone(),
            outputs,
            tokens_out: 1,
            handoff: self.handoff(&[], &[(delay_ms, &resume)]),
        };
        // A duplicate publishes nothing: the copy that committed first schedules the timer.
        if let CommitOutcome::Applied { .. } = self.store.commit(&msg.execution_id, commit).await? {
            self.emit(node.status_mode, ev).await;
            self.publish_handoff(msg, &hop.id, Vec::new(), vec![(delay_ms, resume)])
                .await?;
        }
        Ok(HopOutcome::Done)
    }

    /// A split: one scope per item (its `$item` stored there), the split's successors run in
    /// each; no items release the closing aggregator at once. The split's own output holds only
    /// the item count: the items are never part of the user's context.
    async fn fan_out(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        items: Vec<Value>,
        mut ev: StatusEvent,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let total = items.len();
        let output = json!({"_split_items_count": total});
        let (taken, untaken) = wf.route(node.idx, RouteOutcome::Success(&output));
        let mut outputs = vec![ContextWrite::new(
            hop.scope.clone(),
            node.key.clone(),
            output.clone(),
        )];
        let mut children = Vec::new();
        if total == 0 {
            children.extend(self.empty_split(wf, node, msg));
        } else {
            for (i, item) in items.into_iter().enumerate() {
                let mut lineage = msg.lineage.clone();
                lineage.push(Frame {
                    split_node_id: node.id.clone(),
                    branch_id: format!("{}_{}_{}", msg.execution_id, node.id, i),
                    item_index: i,
                    total_items: total,
                });
                outputs.push(ContextWrite::new(
                    scope_of(&lineage),
                    super::aggregate::ITEM_KEY,
                    item,
                ));
                for e in &taken {
                    children.push(self.child(msg, node, wf, *e, HopKind::Run, lineage.clone()));
                }
            }
        }
        for e in untaken {
            children.push(self.child(msg, node, wf, e, HopKind::Skip, msg.lineage.clone()));
        }
        ev.output = Some(output);
        self.hand_on(wf, hop, outputs, children, Some(ev)).await
    }

    /// The message that releases the aggregator closing `split` with an empty result.
    pub(super) fn empty_split(
        &self,
        wf: &CompiledWorkflow,
        split: &CompiledNode,
        msg: &HopMessage,
    ) -> Option<HopMessage> {
        let closer = split.split_closer?;
        let mut m = msg.clone();
        m.node_id = wf.nodes[closer].id.clone();
        m.kind = HopKind::EmptySplit;
        m.from_node = Some(split.id.clone());
        m.from_edge = Some(format!("empty:{}", split.id));
        m.attempt = 1;
        Some(m)
    }
}
