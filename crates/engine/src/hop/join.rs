//! Joins: arrivals at a node with several incoming edges (or a merge), its release, and the
//! merge node's output.

use std::time::Instant;

use baton_core::graph::{CompiledNode, CompiledWorkflow, RouteOutcome};
use baton_core::message::{NodeStatus, scope_chain};
use baton_core::spec::NodeClass;
use serde_json::{Value, json};

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::node::NodeOutput;
use crate::ports::{ContextWrite, JoinArrival, JoinOutcome, PortError};

impl Engine {
    pub(super) async fn arrive_join(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        real: bool,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let scope = hop.scope.clone();
        let join_key = format!("join|{}|{}", node.id, scope);
        let arrival_key = msg
            .from_edge
            .clone()
            .unwrap_or_else(|| format!("start|{}", hop.id.clone()));
        let from_name = msg
            .from_node
            .as_deref()
            .and_then(|id| wf.node(id))
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let arrival = json!({"from": from_name, "real": real});
        let expected = node.in_edges.len().max(1);
        // `waiting` is reported before the arrival is recorded: once recorded, another arrival
        // may release the join and run it, and a `waiting` sent after that would read as the
        // node's latest status. A wait_for_any join releases on its first real arrival (later
        // ones are ignored), so it never reports `waiting`.
        if real && !node.wait_for_any {
            let mut ev = self.status(node, msg, NodeStatus::Waiting);
            ev.output = Some(json!({"_merge_waiting": true, "_merge_expected": expected}));
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
                node.wait_for_any,
            )
            .await?
        {
            // Not (or no longer) this arrival's to release: its token just ends.
            JoinOutcome::Waiting { .. } | JoinOutcome::AlreadyReleased => {
                self.hand_on(wf, hop, Vec::new(), Vec::new(), None).await
            }
            JoinOutcome::Released { mut arrivals } => {
                // wait_for_all: report arrivals in the order of the incoming edges, not of
                // message timing, so the output (and what templates make of it) is the same on
                // every run. wait_for_any keeps arrival order: its first run is the winner.
                if !node.wait_for_any {
                    let rank = |key: &str| {
                        node.in_edges
                            .iter()
                            .position(|e| wf.edges[*e].id == key)
                            .unwrap_or(usize::MAX)
                    };
                    arrivals.sort_by_key(|a| rank(&a.key));
                }
                // Which incoming branches ran (`real`) and which were skipped, by node name.
                let (ran, not_ran): (Vec<_>, Vec<_>) = arrivals
                    .iter()
                    .partition(|a| a.value.get("real").and_then(Value::as_bool) == Some(true));
                let from = |a: &&JoinArrival| {
                    a.value
                        .get("from")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let reals: Vec<String> = ran.iter().map(from).collect();
                if reals.is_empty() {
                    return self.propagate_skip(wf, node, hop).await;
                }
                if node.class != NodeClass::Merge {
                    return self.execute(wf, node, hop, None).await;
                }
                let skipped: Vec<String> = not_ran.iter().map(from).collect();
                let keys: Vec<String> = reals.iter().map(|n| format!("${n}")).collect();
                let merged = self
                    .store
                    .read(&msg.execution_id, &scope_chain(&msg.lineage), &keys)
                    .await?;
                let mut output = json!({
                    "merged_context": merged,
                    "arrived": reals,
                    "skipped": skipped,
                    "wait_mode": if node.wait_for_any { "wait_for_any" } else { "wait_for_all" },
                    "_merge_expected": expected,
                });
                if node.wait_for_any
                    && let Some(obj) = output.as_object_mut()
                {
                    obj.insert("_merge_winner".into(), json!(reals[0]));
                }
                let started = Instant::now();
                self.emit(
                    node.status_mode,
                    self.status(node, msg, NodeStatus::Running),
                )
                .await;
                if !node.cancel_losers {
                    return self
                        .finish_success(wf, node, hop, NodeOutput::Value(output), started)
                        .await;
                }
                // A race that cancels its losers: their markers commit with the merge's output.
                let winner_edge = ran.first().map(|a| a.key.as_str()).unwrap_or_default();
                let (losers, markers) =
                    self.race_markers(wf, node, hop, winner_edge, reals[0].as_str());
                let mut outputs = vec![ContextWrite::new(
                    scope.clone(),
                    node.key.clone(),
                    output.clone(),
                )];
                outputs.extend(markers);
                let children =
                    self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Success(&output));
                let mut ev = self.status(node, msg, NodeStatus::Success);
                ev.duration_ms = started.elapsed().as_millis() as u64;
                ev.output = Some(output);
                let outcome = self.hand_on(wf, hop, outputs, children, Some(ev)).await?;
                self.cancel_losers(wf, hop, losers).await?;
                Ok(outcome)
            }
        }
    }
}
