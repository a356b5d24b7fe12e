//! Sub-workflows: the engine's half of the `workflow` node (the node type itself only checks
//! its parameters). A child execution is an ordinary execution of a catalog workflow; what ties
//! it to its parent is data, not a process, so it works the same embedded and on the worker
//! pool:
//!
//! - The child's seed holds `$parent`: `{execution_id, workflow_id, node_id, node_key, depth,
//!   signal}`. Its depth (parent's + 1) is checked against the limit before the child starts,
//!   so a workflow that includes itself stops at the limit instead of looping.
//! - The child's id is derived from the parent's hop id, and `start` is idempotent: a
//!   redelivered hop finds the child already started instead of starting a second one.
//! - The parent branch parks exactly like a `wait` in signal mode, on the internal signal
//!   `$child:<child id>`, and records the child under the top-level context key
//!   `$child:<child id>` (so a halt can find its children).
//! - When the child's completion is emitted, the engine delivers that signal to the parent with
//!   `{execution_id, workflow_id, status, final_context, failure_reason}`; the resumed node
//!   succeeds with the child's final context or fails with `SUBWORKFLOW_FAILED` (so error
//!   routes, retries and the `error` policy apply as for any node).
//! - When the parent halts (cancel, or a failure elsewhere), it halts its running children,
//!   recursively; a halted parent is never resumed (signals only reach running executions).

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use baton_core::CompiledWorkflow;
use baton_core::graph::{CompiledNode, RouteOutcome};
use baton_core::message::{ExecutionStatus, HopKind, HopMessage, NodeStatus, StatusEvent};
use serde_json::{Map, Value, json};

use super::current::Hop;
use super::engine::{Engine, HopOutcome, StartRequest};
use crate::node::{ChildStart, NodeError};
use crate::ports::{
    CommitOutcome, ContextWrite, ExecutionIdentity, FinalContext, HopCommit, Lifecycle, PortError,
    SignalWaiter,
};
use baton_core::ErrorCode;

use std::sync::Arc;

/// The node type the engine runs as a sub-workflow.
pub const SUBWORKFLOW_TYPE: &str = "workflow";
/// Seed key of a child execution: its link to the parent.
pub const PARENT_KEY: &str = "$parent";
/// Prefix of the parent's top-level context keys that record its children, and of the signal
/// a child's completion is delivered as.
pub const CHILD_KEY_PREFIX: &str = "$child:";

/// A boxed future, to break the halt → halt-children → halt recursion.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Engine {
    pub(super) fn is_subworkflow(&self, node: &CompiledNode) -> bool {
        self.nodes
            .get(&node.node_type)
            .is_some_and(|n| n.spec().type_name == SUBWORKFLOW_TYPE)
    }

    /// The `workflow` node asked for a child execution: start it, then
    /// park the branch until it completes (or continue at once with `wait: false`).
    pub(super) async fn start_subworkflow(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        child: &ChildStart,
        mut ev: StatusEvent,
        started: Instant,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let workflow_id = child.workflow_id.as_str();
        let Some(catalog) = &self.catalog else {
            let err = NodeError {
                message: format!(
                    "no workflow catalog configured: node `{}` cannot start workflow \
                     `{workflow_id}` (embedded: `baton run --workflows DIR`; workers use the \
                     catalog in Redis)",
                    node.name
                ),
                code: ErrorCode::NoWorkflowCatalog,
                retryable: false,
            };
            return self.fail(wf, node, hop, err, started).await;
        };
        let version = child.version;
        let found = match version {
            Some(v) => catalog.get(workflow_id, v).await?,
            None => catalog.latest(workflow_id).await?,
        };
        let Some((stored, doc)) = found else {
            let which = version.map(|v| format!(" version {v}")).unwrap_or_default();
            let err = NodeError {
                message: format!("workflow `{workflow_id}`{which} is not in the workflow catalog"),
                code: ErrorCode::WorkflowNotFound,
                retryable: false,
            };
            return self.fail(wf, node, hop, err, started).await;
        };
        let child_wf = match CompiledWorkflow::compile(&doc, self.nodes.as_ref()) {
            Ok(child) => Arc::new(child),
            Err(invalid) => {
                let err = NodeError {
                    message: format!(
                        "workflow `{workflow_id}` version {} is invalid: {invalid}",
                        stored.version
                    ),
                    code: ErrorCode::InvalidWorkflow,
                    retryable: false,
                };
                return self.fail(wf, node, hop, err, started).await;
            }
        };
        self.definitions.keep(child_wf.clone());

        let depth = self.depth_of(&msg.execution_id).await? + 1;
        if depth > self.max_workflow_depth {
            let err = NodeError {
                message: format!(
                    "sub-workflow depth limit {} reached: node `{}` would start workflow \
                     `{workflow_id}` at depth {depth} (does a workflow start itself?)",
                    self.max_workflow_depth, node.name
                ),
                code: ErrorCode::WorkflowDepthExceeded,
                retryable: false,
            };
            return self.fail(wf, node, hop, err, started).await;
        }

        let wait = child.wait;
        let child_id = child_execution_id(&msg.execution_id, &hop.id);
        let signal = format!("{CHILD_KEY_PREFIX}{child_id}");
        let mut seed = Map::new();
        baton_core::wire::seed_input(&mut seed, child.input.clone());
        seed.insert(
            PARENT_KEY.into(),
            json!({
                "execution_id": msg.execution_id,
                "workflow_id": msg.workflow_id,
                "node_id": node.id,
                "node_key": node.key,
                "depth": depth,
                "signal": if wait { Value::from(signal.clone()) } else { Value::Null },
            }),
        );
        let request = StartRequest {
            workflow_id: workflow_id.to_string(),
            execution_id: child_id.clone(),
            seed,
            traceparent: msg.traceparent.clone(),
            ..StartRequest::default()
        };
        self.start(&child_wf, request).await?;
        let started_child = json!({
            "execution_id": child_id,
            "workflow_id": workflow_id,
            "version": stored.version,
        });
        let scope = hop.scope.clone();

        if !wait {
            let children = self.successors(
                wf,
                node,
                msg,
                &msg.lineage,
                RouteOutcome::Success(&started_child),
            );
            ev.output = Some(started_child.clone());
            let outputs = vec![ContextWrite::new(scope, node.key.clone(), started_child)];
            return self.hand_on(wf, hop, outputs, children, Some(ev)).await;
        }

        // Park like a `wait` in signal mode. The resume message keeps the attempt, so a failed
        // child counts against the node's retries.
        let mut resume = msg.clone();
        resume.kind = HopKind::Resume;
        let payload = serde_json::to_string(&resume)?;
        if let Some(data) = self
            .store
            .await_signal(&msg.execution_id, &signal, &hop.id, payload)
            .await?
        {
            // The child finished before the branch parked (its result was kept for us).
            return self
                .conclude_subworkflow(wf, node, hop, &data, ev, started)
                .await;
        }
        let mut waiting = started_child.clone();
        if let Some(obj) = waiting.as_object_mut() {
            obj.insert("waiting".into(), json!(true));
        }
        ev.status = NodeStatus::Waiting;
        ev.output = Some(waiting.clone());
        let record = json!({
            "workflow_id": workflow_id,
            "workflow_ref": child_wf.reference,
            "node_id": node.id,
        });
        let commit = HopCommit {
            hop_id: hop.id.clone(),
            outputs: vec![
                ContextWrite::new(scope, node.key.clone(), waiting),
                ContextWrite::new(String::new(), signal, record),
            ],
            // The parked branch's token, until the child's result resumes it.
            tokens_out: 1,
            // A redelivery finds the child started and the branch parked: nothing to redo.
            handoff: self.handoff(&[], &[]),
        };
        if let CommitOutcome::Applied { .. } = self.store.commit(&msg.execution_id, commit).await? {
            self.emit(node.status_mode, ev).await;
        }
        Ok(HopOutcome::Done)
    }

    /// A parked `workflow` node resumed by its child's result (stored by the delivery).
    pub(super) async fn resume_subworkflow(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let data = self
            .own_output(node, hop)
            .await?
            .and_then(|v| v.get("data").cloned())
            .unwrap_or(Value::Null);
        let ev = self.status(node, msg, NodeStatus::Success);
        self.conclude_subworkflow(wf, node, hop, &data, ev, Instant::now())
            .await
    }

    /// Routes on the child's result: its final context as output, or a node failure.
    async fn conclude_subworkflow(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        result: &Value,
        mut ev: StatusEvent,
        started: Instant,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let child = result
            .get("execution_id")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let child_workflow = result
            .get("workflow_id")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let status = result.get("status").and_then(Value::as_str).unwrap_or("");
        if status != ExecutionStatus::Completed.as_str() {
            let reason = result
                .get("failure_reason")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            let status = if status.is_empty() { "ended" } else { status };
            let err = NodeError {
                message: format!(
                    "sub-workflow `{child_workflow}` (execution `{child}`) {status}: {reason}"
                ),
                code: ErrorCode::SubworkflowFailed,
                retryable: true,
            };
            return self.fail(wf, node, hop, err, started).await;
        }
        let mut output = result
            .get("final_context")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(obj) = output.as_object_mut() {
            obj.shift_remove(PARENT_KEY);
        }
        let scope = hop.scope.clone();
        let outputs = vec![
            ContextWrite::new(scope.clone(), node.key.clone(), output.clone()),
            ContextWrite::new(scope, "$json", output.clone()),
        ];
        let children = self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Success(&output));
        ev.status = NodeStatus::Success;
        ev.duration_ms = started.elapsed().as_millis() as u64;
        ev.output = Some(output);
        self.hand_on(wf, hop, outputs, children, Some(ev)).await
    }

    /// The sub-workflow depth of an execution (0 for a top-level one).
    async fn depth_of(&self, execution_id: &str) -> Result<u32, PortError> {
        let link = self
            .store
            .read(execution_id, &[String::new()], &[PARENT_KEY.to_string()])
            .await?;
        Ok(link
            .get(PARENT_KEY)
            .and_then(|p| p.get("depth"))
            .and_then(Value::as_u64)
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(0))
    }

    /// A finished child tells its parent: delivers the parent's `$child:<id>` signal with the
    /// child's result, resuming the parked branch (or keeping the result for it, if it has
    /// not parked yet). Nothing happens when the parent is no longer running.
    pub(super) async fn notify_parent(
        &self,
        workflow_id: &str,
        execution_id: &str,
        status: ExecutionStatus,
        reason: Option<&str>,
        final_context: &Map<String, Value>,
    ) -> Result<(), PortError> {
        let Some(link) = final_context.get(PARENT_KEY) else {
            return Ok(());
        };
        let (Some(parent), Some(signal), Some(node_key)) = (
            link.get("execution_id").and_then(Value::as_str),
            link.get("signal").and_then(Value::as_str),
            link.get("node_key").and_then(Value::as_str),
        ) else {
            return Ok(()); // fire and forget, or not a link this engine wrote
        };
        if !matches!(self.store.lifecycle(parent).await?, Lifecycle::Running) {
            return Ok(());
        }
        let data = json!({
            "execution_id": execution_id,
            "workflow_id": workflow_id,
            "status": status.as_str(),
            "final_context": final_context,
            "failure_reason": reason,
        });
        let waiters = self
            .store
            .deliver_signal(parent, signal, data.clone())
            .await?;
        for SignalWaiter {
            waiter_id,
            resume: payload,
        } in waiters
        {
            let Ok(resume) = serde_json::from_str::<HopMessage>(&payload) else {
                tracing::error!(
                    waiter_id,
                    "sub-workflow waiter payload is not a hop message"
                );
                continue;
            };
            let commit = HopCommit {
                hop_id: format!("signal|{waiter_id}"),
                outputs: vec![ContextWrite::new(
                    resume.scope(),
                    node_key,
                    json!({"signal": signal, "data": data}),
                )],
                tokens_out: 1,
                handoff: None,
            };
            self.store.commit(parent, commit).await?;
            self.queue.publish(vec![resume]).await?;
            self.store
                .signal_resumed(parent, signal, &waiter_id)
                .await?;
        }
        Ok(())
    }

    /// A halted parent halts its running children (and they theirs). Best effort: a child that
    /// cannot be halted now is logged, not retried (the parent's halt already happened).
    pub(super) async fn halt_children(&self, wf: &CompiledWorkflow, execution_id: &str) {
        if !wf.nodes.iter().any(|n| self.is_subworkflow(n)) {
            return;
        }
        let context = match self.store.final_context(execution_id).await {
            Ok(FinalContext { context, .. }) => context,
            Err(e) => {
                tracing::warn!(execution_id, error = %e, "children of a halted execution not found");
                return;
            }
        };
        for key in context.keys() {
            let Some(child) = key.strip_prefix(CHILD_KEY_PREFIX) else {
                continue;
            };
            let reason = format!("parent execution `{execution_id}` stopped");
            if let Err(e) = self.halt_child(child, reason).await {
                tracing::warn!(execution_id, child, error = %e, "child execution not halted");
            }
        }
    }

    fn halt_child(&self, child: &str, reason: String) -> Boxed<'_, Result<(), PortError>> {
        let child = child.to_string();
        Box::pin(async move {
            if !matches!(self.store.lifecycle(&child).await?, Lifecycle::Running) {
                return Ok(());
            }
            let Some(ExecutionIdentity {
                workflow_id,
                workflow_ref,
            }) = self.store.identity(&child).await?
            else {
                return Ok(());
            };
            match self.definitions.load(&workflow_ref).await? {
                Some(child_wf) => {
                    self.halt(
                        &child_wf,
                        &workflow_id,
                        &child,
                        ExecutionStatus::Halted,
                        reason,
                        "",
                    )
                    .await?;
                }
                // Its definition is gone: halt without its on_failure node.
                None => {
                    if self
                        .store
                        .finish(&child, ExecutionStatus::Halted, Some(reason))
                        .await?
                    {
                        self.cancel_local(&child);
                        self.emit_completion(&workflow_id, &child).await?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// Drops the `$child:<id>` and race marker (`$cancelled:<node>`) bookkeeping keys from a
/// context shown to users.
pub(super) fn without_child_records(context: &mut Map<String, Value>) {
    context.retain(|k, _| {
        !k.starts_with(CHILD_KEY_PREFIX) && !k.starts_with(baton_core::graph::RACE_MARKER_PREFIX)
    });
}

/// A child execution id derived from the parent's id and the hop that starts it: the same hop
/// (a redelivery) always names the same child. Shaped like a UUID; two 64-bit FNV-1a hashes
/// (stable across builds, unlike `std`'s hasher).
pub fn child_execution_id(parent_execution_id: &str, hop_id: &str) -> String {
    fn fnv1a(seed: u64, parts: &[&str]) -> u64 {
        let mut h = seed;
        for part in parts {
            for b in part.bytes().chain(std::iter::once(0xff)) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }
    let parts = [parent_execution_id, hop_id];
    let hi = fnv1a(0xcbf2_9ce4_8422_2325, &parts);
    let lo = fnv1a(0x8422_2325_cbf2_9ce4, &parts);
    let n = (u128::from(hi) << 64) | u128::from(lo);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        n >> 96,
        (n >> 80) & 0xffff,
        (n >> 64) & 0xffff,
        (n >> 48) & 0xffff,
        n & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::child_execution_id;

    #[test]
    fn child_ids_are_stable_per_hop_and_differ_between_hops() {
        let a = child_execution_id("p1", "sub||Run||1");
        assert_eq!(
            a,
            child_execution_id("p1", "sub||Run||1"),
            "same hop, same child"
        );
        assert_ne!(
            a,
            child_execution_id("p1", "sub||Run||2"),
            "a retry is a new child"
        );
        assert_ne!(a, child_execution_id("p2", "sub||Run||1"), "another parent");
        assert_ne!(
            child_execution_id("ab", "c"),
            child_execution_id("a", "bc"),
            "parts are delimited"
        );
        assert_eq!(a.len(), 36);
    }
}
