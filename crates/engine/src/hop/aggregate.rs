//! Aggregators: the per-item arrivals that close a split's scope, and the release that
//! collects the items' outputs in item order.

use std::time::Instant;

use baton_core::graph::{CompiledNode, CompiledWorkflow};
use baton_core::message::{Frame, NodeStatus, scope_of};
use baton_core::spec::NodeClass;
use serde_json::{Value, json};

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::node::NodeError;
use crate::node::NodeOutput;
use crate::ports::{CommittedHop, JoinArrival, JoinOutcome, PortError, ScopedKey};

/// Where a split stores each item in the item's scope (see `fan_out`).
pub(super) const ITEM_KEY: &str = "$item";

impl Engine {
    pub(super) async fn arrive_aggregator(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        real: bool,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        // A skip sent straight from a skipped split: the whole scope never ran.
        let from_split = msg
            .from_node
            .as_deref()
            .and_then(|id| wf.node(id))
            .filter(|n| n.class == NodeClass::Split);
        if let Some(split) = from_split
            && msg
                .lineage
                .last()
                .is_none_or(|f| f.split_node_id != split.id)
        {
            return self.propagate_skip(wf, node, hop).await;
        }
        let Some(frame) = msg.lineage.last() else {
            if !real {
                return self.propagate_skip(wf, node, hop).await;
            }
            let err = NodeError::invalid(format!(
                "aggregator `{}` must run inside a split (no split lineage)",
                node.name
            ));
            let started = Instant::now();
            return self.fail(wf, node, hop, err, started).await;
        };
        let parent = &msg.lineage[..msg.lineage.len() - 1];
        let join_key = format!(
            "agg|{}|{}|{}",
            node.id,
            scope_of(parent),
            frame.split_node_id
        );
        let arrival_key = format!(
            "{}|{}",
            frame.item_index,
            msg.from_edge.as_deref().unwrap_or("")
        );
        // What the item's branch gives: the output of the node it arrives from, or, for a
        // branch with no node (straight from the split that opened this scope), the item.
        let from = match msg.from_node.as_deref() {
            Some(id) if id == frame.split_node_id => ITEM_KEY.to_string(),
            Some(id) => wf.node(id).map(|n| n.key.clone()).unwrap_or_default(),
            None => String::new(),
        };
        let arrival = json!({"item": frame.item_index, "from": from, "real": real});
        // `total_items` is bounded by the split cap at the door (`bounds.rs`); checked anyway,
        // since an overflow here would size the release below.
        let Some(expected) = frame.total_items.checked_mul(node.in_edges.len().max(1)) else {
            return Ok(HopOutcome::Poison(format!(
                "total_items {} times {} inputs overflows",
                frame.total_items,
                node.in_edges.len()
            )));
        };
        // Reported before the arrival is recorded, for the same reason as in `arrive_join`.
        if real {
            let mut ev = self.status(node, msg, NodeStatus::Waiting);
            ev.output = Some(json!({"_aggregator_expected": expected}));
            self.emit(node.status_mode, ev).await;
        }
        match self
            .store
            .join(
                &msg.execution_id,
                &join_key,
                &arrival_key,
                arrival,
                expected,
                false,
            )
            .await?
        {
            // Not (or no longer) this arrival's to release: its token just ends.
            JoinOutcome::Waiting { .. } | JoinOutcome::AlreadyReleased => {
                self.hand_on(wf, hop, Vec::new(), Vec::new(), None).await
            }
            JoinOutcome::Released { arrivals } => {
                // The releasing arrival again (a redelivery, or the replay of the hop that
                // handed it on): if the release committed, its handoff is replayed, since its
                // commit would now be a `Duplicate` that publishes nothing.
                if self.store.replays_hops() {
                    let mut released = msg.clone();
                    released.lineage = parent.to_vec();
                    let released_id = released.hop_id();
                    if let Some(CommittedHop { handoff, pending }) = self
                        .store
                        .committed_hop(&msg.execution_id, &released_id)
                        .await?
                    {
                        return Box::pin(self.replay(
                            wf,
                            &released,
                            handoff.unwrap_or_default(),
                            pending,
                        ))
                        .await;
                    }
                }
                let total = frame.total_items;
                let split_id = frame.split_node_id.clone();
                let mut item_sources: Vec<Option<String>> = vec![None; total];
                for JoinArrival { value: v, .. } in &arrivals {
                    let item = v.get("item").and_then(Value::as_u64).unwrap_or(0) as usize;
                    if v.get("real").and_then(Value::as_bool).unwrap_or(false) && item < total {
                        item_sources[item] =
                            v.get("from").and_then(Value::as_str).map(str::to_string);
                    }
                }
                let mut entries = Vec::new();
                let mut positions = Vec::new();
                for (i, src) in item_sources.iter().enumerate() {
                    if let Some(key) = src {
                        let mut lineage = parent.to_vec();
                        lineage.push(Frame {
                            split_node_id: split_id.clone(),
                            branch_id: String::new(),
                            item_index: i,
                            total_items: total,
                        });
                        entries.push(ScopedKey {
                            scope: scope_of(&lineage),
                            key: key.clone(),
                        });
                        positions.push(i);
                    }
                }
                let values = self.store.read_exact(&msg.execution_id, &entries).await?;
                let mut aggregated = vec![Value::Null; total];
                for (pos, v) in positions.into_iter().zip(values) {
                    aggregated[pos] = v.unwrap_or(Value::Null);
                }
                self.release_aggregator(
                    wf,
                    node,
                    hop,
                    parent,
                    total,
                    aggregated
                        .into_iter()
                        .zip(item_sources.iter().map(Option::is_some))
                        .collect(),
                )
                .await
            }
        }
    }

    pub(super) async fn release_aggregator(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        parent: &[Frame],
        total: usize,
        items: Vec<(Value, bool)>,
    ) -> Result<HopOutcome, PortError> {
        let skipped: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, (_, ran))| !ran)
            .map(|(i, _)| i)
            .collect();
        let aggregated: Vec<Value> = items.into_iter().map(|(v, _)| v).collect();
        let output = json!({"aggregated": aggregated, "count": total, "skipped": skipped});
        let started = Instant::now();
        // The aggregator runs once, in the scope the split was in: its hop (and the status and
        // commit it makes) belongs to that scope.
        let mut released = hop.msg.clone();
        released.lineage = parent.to_vec();
        self.emit(
            node.status_mode,
            self.status(node, &released, NodeStatus::Running),
        )
        .await;
        self.finish_success(
            wf,
            node,
            &Hop::new(&released),
            NodeOutput::Value(output),
            started,
        )
        .await
    }
}
