//! A node succeeded: store its output and route on what it asked for (a timer, a signal, a
//! split's items, a sub-workflow, or plain successors).

use std::time::Instant;

use baton_core::graph::{CompiledNode, CompiledWorkflow, RouteOutcome};
use baton_core::message::{Frame, HopKind, HopMessage, NodeStatus, scope_of};
use baton_core::spec::NodeClass;
use serde_json::{Value, json};

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use super::time::now_ms;
use crate::ports::{CommitOutcome, ContextWrite, HopCommit, PortError};

impl Engine {
    pub(super) async fn finish_success(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        output: Value,
        started: Instant,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let scope = hop.scope.clone();
        let mut outputs = vec![ContextWrite::new(
            scope.clone(),
            node.key.clone(),
            output.clone(),
        )];
        // Data-shaping nodes (edit, filter, sort, limit) hand their result on as `$json`.
        if node.class == NodeClass::Action
            && let Some(json_out) = output.get("$json")
        {
            outputs.push(ContextWrite::new(scope.clone(), "$json", json_out.clone()));
        }
        let mut ev = self.status(node, msg, NodeStatus::Success);
        ev.duration_ms = started.elapsed().as_millis() as u64;
        if node.class == NodeClass::Action && self.is_subworkflow(node) {
            return Box::pin(self.start_subworkflow(wf, node, hop, &output, ev, started)).await;
        }
        let children = match node.class {
            NodeClass::Wait if output.get("signal").is_some() => {
                return Box::pin(self.await_signal(wf, node, hop, &output, ev)).await;
            }
            NodeClass::Wait => {
                let delay = output.get("delay_ms").and_then(Value::as_u64).unwrap_or(0);
                let resume_at = now_ms() + delay;
                let out = json!({"resume_at": resume_at, "delay_ms": delay});
                outputs = vec![ContextWrite::new(scope, node.key.clone(), out.clone())];
                ev.status = NodeStatus::Waiting;
                ev.output = Some(out);
                let mut resume = msg.clone();
                resume.kind = HopKind::Resume;
                resume.attempt = 1;
                let commit = HopCommit {
                    hop_id: hop.id.clone(),
                    outputs,
                    tokens_out: 1,
                    handoff: self.handoff(&[], &[(delay, &resume)]),
                };
                if let CommitOutcome::Applied { .. } =
                    self.store.commit(&msg.execution_id, commit).await?
                {
                    self.emit(ev).await;
                }
                self.queue.publish_delayed(resume, delay).await?;
                return Ok(HopOutcome::Done);
            }
            NodeClass::Split => {
                let items = output
                    .get("_split_items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let total = items.len();
                let (taken, untaken) = wf.route(node.idx, RouteOutcome::Success(&output));
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
                        outputs.push(ContextWrite::new(scope_of(&lineage), "$item", item));
                        for e in &taken {
                            children.push(self.child(
                                msg,
                                node,
                                wf,
                                *e,
                                HopKind::Run,
                                lineage.clone(),
                            ));
                        }
                    }
                }
                for e in untaken {
                    children.push(self.child(msg, node, wf, e, HopKind::Skip, msg.lineage.clone()));
                }
                ev.output = Some(json!({"_split_items_count": total}));
                children
            }
            _ => {
                let children =
                    self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Success(&output));
                ev.output = Some(output);
                children
            }
        };
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
