//! Running a node: read its context, resolve its parameters, run it with its timeout and the
//! execution's cancellation, then hand the result to success or failure.

use std::time::{Duration, Instant};

use baton_core::graph::{CompiledNode, CompiledWorkflow};
use baton_core::message::{ErrorInfo, HopKind, NodeStatus, StatusEvent, scope_chain};
use baton_core::spec::NodeClass;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use super::redact::Redactor;
use crate::node::{NodeError, NodeInput, NodeOutput};
use crate::ports::{ContextWrite, HopCommit, PortError};
use baton_core::ErrorCode;

/// A node run's result before routing.
type RunResult = Result<NodeOutput, NodeError>;

impl Engine {
    /// Runs the node itself: resolve parameters, run with timeout and cancellation, route.
    pub(super) async fn execute(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        preloaded: Option<Map<String, Value>>,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let started = Instant::now();
        let ctx = match preloaded {
            Some(ctx) => ctx,
            None => {
                self.store
                    .read(&msg.execution_id, &scope_chain(&msg.lineage), &node.reads)
                    .await?
            }
        };
        let result = match self.run_step(wf, node, hop, &ctx, false).await {
            (_, Ok(result)) => result,
            (_, Err(err)) => return Box::pin(self.fail(wf, node, hop, err, started)).await,
        };
        if msg.kind == HopKind::OnFailure {
            // It runs after the execution ended: its output is stored, never routed.
            let result = result.map(NodeOutput::into_value);
            let outputs = match &result {
                Ok(v) => vec![ContextWrite::new(
                    String::new(),
                    node.key.clone(),
                    v.clone(),
                )],
                Err(_) => Vec::new(),
            };
            let mut ev = self.status(
                node,
                msg,
                if result.is_ok() {
                    NodeStatus::Success
                } else {
                    NodeStatus::Failed
                },
            );
            ev.duration_ms = started.elapsed().as_millis() as u64;
            match result {
                Ok(v) => ev.output = Some(v),
                Err(e) => {
                    ev.error = Some(ErrorInfo {
                        message: e.message,
                        code: e.code.to_string(),
                        details: None,
                    })
                }
            }
            self.store
                .commit(
                    &msg.execution_id,
                    HopCommit {
                        hop_id: hop.id.clone(),
                        outputs,
                        tokens_out: 0,
                        handoff: None,
                    },
                )
                .await?;
            self.emit(node.status_mode, ev).await;
            self.emit_completion(&msg.workflow_id, &msg.execution_id)
                .await?;
            return Ok(HopOutcome::Done);
        }
        match result {
            Ok(output) => self.finish_success(wf, node, hop, output, started).await,
            Err(err) => Box::pin(self.fail(wf, node, hop, err, started)).await,
        }
    }

    /// Resolves the node's parameters, sends its `running` status (or, `defer_running`,
    /// returns it unsent) and runs it. The outer error is a template error: the node did not
    /// run (its `running` status is out, or returned, all the same).
    pub(super) async fn run_step(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        ctx: &Map<String, Value>,
        defer_running: bool,
    ) -> (Option<StatusEvent>, Result<RunResult, NodeError>) {
        let msg = hop.msg;
        let mut running = self.status(node, msg, NodeStatus::Running);
        // Literal parameters are borrowed from the compiled node, not copied per run.
        let params = match node.params.resolve_cow(&wf.templates, ctx, "") {
            Ok(mut p) => {
                // Raw parameters reach the node as written; it evaluates them itself.
                if !node.raw_params.is_empty()
                    && let Some(obj) = p.to_mut().as_object_mut()
                {
                    obj.extend(node.raw_params.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                p
            }
            Err(e) => {
                let err = NodeError {
                    message: e.to_string(),
                    code: ErrorCode::TemplateError,
                    retryable: false,
                };
                if defer_running {
                    return (Some(running), Err(err));
                }
                self.emit(node.status_mode, running).await;
                return (None, Err(err));
            }
        };
        if self.sends_status(node, NodeStatus::Running) {
            running.parameters = Some(params.as_ref().clone());
        }
        let deferred = if defer_running {
            Some(running)
        } else {
            self.emit(node.status_mode, running).await;
            None
        };
        let result = if self.node_spans {
            let span = tracing::info_span!("node", workflow_id = %msg.workflow_id, execution_id = %msg.execution_id, node_id = %node.id, node_type = %node.node_type, attempt = msg.attempt, outcome = tracing::field::Empty);
            let result = tracing::Instrument::instrument(
                self.run_node(node, hop, &params, ctx),
                span.clone(),
            )
            .await;
            match &result {
                Ok(_) => span.record("outcome", "ok"),
                Err(e) => span.record("outcome", e.code.as_str()),
            };
            result
        } else {
            self.run_node(node, hop, &params, ctx).await
        };
        (deferred, Ok(result))
    }

    async fn run_node(
        &self,
        node: &CompiledNode,
        hop: &Hop<'_>,
        params: &Value,
        ctx: &Map<String, Value>,
    ) -> RunResult {
        let msg = hop.msg;
        if node.class == NodeClass::Conditional {
            let Some(expr) = &node.condition else {
                return Err(NodeError::invalid(
                    "parameter `expression` is required: expected a condition",
                ));
            };
            return match expr.eval_bool(ctx) {
                Ok(result) => Ok(NodeOutput::Value(
                    json!({"result": result, "expression": expr.source()}),
                )),
                Err(e) => Err(NodeError {
                    message: e.to_string(),
                    code: ErrorCode::ExpressionError,
                    retryable: false,
                }),
            };
        }
        let Some(imp) = self.nodes.get(&node.node_type) else {
            return Err(NodeError {
                message: format!("node type `{}` is not registered", node.node_type),
                code: ErrorCode::NodeCreationFailed,
                retryable: false,
            });
        };
        // The `on_failure` node runs after the halt that cancelled the execution's token: it gets
        // its own, or it would be aborted before it starts.
        // A run that may lose a race gets a child of the execution's token, registered by node
        // and scope: a race that this node loses cancels it alone (`race.rs`).
        // A node that cannot lose a race is only ever cancelled with its execution: it watches
        // the execution's token itself (no child token per run).
        let cancel = if msg.kind == HopKind::OnFailure {
            CancellationToken::new()
        } else if node.may_lose {
            self.cancel_token(&msg.execution_id).child_token()
        } else {
            self.cancel_token(&msg.execution_id)
        };
        // Only a race's possible losers are ever cancelled by node: others need no registration.
        let _registered = node.may_lose.then(|| {
            self.runs.register(
                &msg.execution_id,
                &node.id,
                scope_chain(&msg.lineage),
                cancel.clone(),
            )
        });
        let idempotency_key = format!("{}:{}:{}", msg.execution_id, node.id, hop.scope);
        // Revealed here and only here: the secret lives for this run, in this frame, and is
        // never part of a message, a status, the context or an error — what the node returns
        // is redacted before anything else sees it.
        let (revealed, used) = match self.reveal_credentials(node, &msg.workflow_id).await {
            Ok(Some((fields, used))) => (Some(fields), Some(used)),
            Ok(None) => (None, None),
            Err(e) => return Err(e),
        };
        let credentials = revealed.as_ref().or(node.credentials.as_ref());
        let redactor = Redactor::new(credentials);
        let input = NodeInput {
            params,
            context: ctx,
            credentials,
            used_credential: used.as_ref(),
            execution_id: &msg.execution_id,
            node_id: &node.id,
            node_name: &node.name,
            attempt: msg.attempt,
            idempotency_key: &idempotency_key,
            cancel: &cancel,
            clock: self.clock.as_ref(),
        };
        let run = imp.run(input);
        let guarded = async {
            tokio::select! {
                r = run => r,
                () = cancel.cancelled() => Err(NodeError { message: "cancelled".into(), code: ErrorCode::Cancelled, retryable: false }),
            }
        };
        let result = match node.timeout_ms {
            Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), guarded).await {
                Ok(r) => r,
                Err(_) => Err(NodeError::new(
                    ErrorCode::NodeTimeout,
                    format!("node `{}` timed out after {ms} ms", node.name),
                )),
            },
            None => guarded.await,
        };
        redactor.result(result)
    }
}
