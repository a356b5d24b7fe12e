//! Signals: a wait node in signal mode parks its branch; a delivered signal resumes it (and
//! releases its timeout at once); a timeout fails it; a parked node resumed by a timer or
//! signal routes on.

use std::time::Instant;

use baton_core::graph::{CompiledNode, CompiledWorkflow, RouteOutcome};
use baton_core::message::{HopKind, HopMessage, NodeStatus, StatusEvent};
use serde_json::{Value, json};

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::node::NodeError;
use crate::ports::{
    CommitOutcome, ContextWrite, HopCommit, Lifecycle, PortError, ScopedKey, SignalWaiter,
};
use baton_core::ErrorCode;

impl Engine {
    /// A wait node in `signal` mode: consume an already delivered signal, or register as a
    /// waiter (holding the branch's token) with an optional timeout.
    pub(super) async fn await_signal(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
        name: String,
        timeout: Option<u64>,
        mut ev: StatusEvent,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let mut resume = msg.clone();
        resume.kind = HopKind::Resume;
        resume.attempt = 1;
        let payload = serde_json::to_string(&resume)?;
        let scope = hop.scope.clone();
        if let Some(data) = self
            .store
            .await_signal(&msg.execution_id, &name, &hop.id, payload)
            .await?
        {
            let out = json!({"signal": name, "data": data});
            let children =
                self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Success(&out));
            ev.output = Some(out.clone());
            return self
                .hand_on(
                    wf,
                    hop,
                    vec![ContextWrite::new(scope, node.key.clone(), out)],
                    children,
                    Some(ev),
                )
                .await;
        }
        let out = json!({"signal": name, "waiting": true, "timeout_ms": timeout});
        ev.status = NodeStatus::Waiting;
        ev.output = Some(out.clone());
        // One token for the waiter, one for its timeout message.
        let tokens_out = if timeout.is_some() { 2 } else { 1 };
        let timer = timeout.map(|ms| {
            let mut t = msg.clone();
            t.kind = HopKind::SignalTimeout;
            t.attempt = 1;
            (ms, t)
        });
        let later: Vec<(u64, &HopMessage)> = timer.iter().map(|(ms, t)| (*ms, t)).collect();
        let commit = HopCommit {
            hop_id: hop.id.clone(),
            outputs: vec![ContextWrite::new(scope, node.key.clone(), out)],
            tokens_out,
            handoff: self.handoff(&[], &later),
        };
        // A duplicate publishes nothing: the copy that committed first schedules the timeout.
        if let CommitOutcome::Applied { .. } = self.store.commit(&msg.execution_id, commit).await? {
            self.emit(node.status_mode, ev).await;
            self.publish_handoff(msg, &hop.id, Vec::new(), timer.into_iter().collect())
                .await?;
        }
        Ok(HopOutcome::Done)
    }

    /// Delivers a named signal to an execution: every branch waiting for it resumes with
    /// `{signal, data}` as the wait node's output; with none waiting, it is kept for the next.
    /// Returns the number of branches resumed.
    pub async fn signal(
        &self,
        execution_id: &str,
        name: &str,
        data: Value,
    ) -> Result<usize, PortError> {
        if !matches!(
            self.store.lifecycle(execution_id).await?,
            Lifecycle::Running
        ) {
            return Ok(0);
        }
        // The delivery keeps the waiters it took until each is reported resumed: if this
        // attempt fails half way (or its worker dies), the signal's retry gets them again and
        // finishes them; what this attempt already committed is deduplicated by hop id.
        let waiters = self
            .store
            .deliver_signal(execution_id, name, data.clone())
            .await?;
        self.resume_waiters(execution_id, name, &data, &waiters)
            .await
    }

    /// Resumes the waiters a delivery took: commits each resume and publishes it.
    async fn resume_waiters(
        &self,
        execution_id: &str,
        name: &str,
        data: &Value,
        waiters: &[SignalWaiter],
    ) -> Result<usize, PortError> {
        let mut resumed = 0;
        for SignalWaiter {
            waiter_id,
            resume: payload,
        } in waiters
        {
            let Ok(msg) = serde_json::from_str::<HopMessage>(payload) else {
                tracing::error!(waiter_id, "signal waiter payload is not a hop message");
                continue;
            };
            let Some(wf) = self.definitions.get(&msg.workflow_ref) else {
                continue;
            };
            let Some(node) = wf.node(&msg.node_id) else {
                continue;
            };
            // What the wait stored when it parked says whether a timeout timer holds a token.
            let parked = self
                .store
                .read_exact(
                    execution_id,
                    &[ScopedKey {
                        scope: msg.scope(),
                        key: node.key.clone(),
                    }],
                )
                .await?
                .into_iter()
                .next()
                .flatten();
            let timed = parked
                .as_ref()
                .and_then(|v| v.get("timeout_ms"))
                .is_some_and(|t| !t.is_null());
            let out = json!({"signal": name, "data": data});
            let commit = HopCommit {
                hop_id: format!("signal|{waiter_id}"),
                outputs: vec![ContextWrite::new(msg.scope(), node.key.clone(), out)],
                tokens_out: 1,
                handoff: None,
            };
            self.store.commit(execution_id, commit).await?;
            if timed {
                self.release_signal_timeout(&msg).await?;
            }
            self.queue.publish(vec![msg]).await?;
            self.store
                .signal_resumed(execution_id, name, waiter_id)
                .await?;
            resumed += 1;
        }
        Ok(resumed)
    }

    /// The signal resolved a wait that has a timeout: its timeout message's token is released
    /// now (committed under that message's hop id, so the timer, when it fires, finds its hop
    /// committed and is a no-op, and a timeout racing the signal releases it only once), and
    /// its timer is cancelled where the queue can. The execution then completes as soon as its
    /// last branch does, not when the timeout would have passed. Runs before the resume is
    /// published, whose token keeps the count above zero.
    async fn release_signal_timeout(&self, resume: &HopMessage) -> Result<(), PortError> {
        let mut timeout = resume.clone();
        timeout.kind = HopKind::SignalTimeout;
        timeout.attempt = 1;
        let release = HopCommit {
            hop_id: timeout.hop_id().into(),
            outputs: Vec::new(),
            tokens_out: 0,
            handoff: self.handoff(&[], &[]),
        };
        self.store.commit(&resume.execution_id, release).await?;
        if let Err(e) = self.queue.cancel_delayed(&timeout).await {
            // It fires later as a no-op: only a timer left behind.
            tracing::warn!(execution_id = %resume.execution_id, error = %e, "signal timeout timer not cancelled");
        }
        Ok(())
    }

    pub(super) async fn on_signal_timeout(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        let name = self
            .own_output(node, hop)
            .await?
            .and_then(|v| v.get("signal").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        let mut waiter = msg.clone();
        waiter.kind = HopKind::Run;
        let waiter_id = waiter.hop_id();
        if !self
            .store
            .remove_signal_waiter(&msg.execution_id, &name, &waiter_id)
            .await?
        {
            // The signal came first: this timeout's token just ends.
            return self.hand_on(wf, hop, Vec::new(), Vec::new(), None).await;
        }
        // The waiter's token ends here; the timeout's token carries the failure's routing.
        let expired = HopCommit {
            hop_id: format!("expired|{waiter_id}"),
            outputs: Vec::new(),
            tokens_out: 0,
            handoff: None,
        };
        self.store.commit(&msg.execution_id, expired).await?;
        let err = NodeError {
            message: format!("signal `{name}` did not arrive in time"),
            code: ErrorCode::SignalTimeout,
            retryable: false,
        };
        self.fail(wf, node, hop, err, Instant::now()).await
    }

    pub(super) async fn on_resume(
        &self,
        wf: &CompiledWorkflow,
        node: &CompiledNode,
        hop: &Hop<'_>,
    ) -> Result<HopOutcome, PortError> {
        let msg = hop.msg;
        if self.is_subworkflow(node) {
            return self.resume_subworkflow(wf, node, hop).await;
        }
        let output = self.own_output(node, hop).await?.unwrap_or(Value::Null);
        let children = self.successors(wf, node, msg, &msg.lineage, RouteOutcome::Success(&output));
        let mut ev = self.status(node, msg, NodeStatus::Success);
        ev.output = Some(output);
        self.hand_on(wf, hop, Vec::new(), children, Some(ev)).await
    }
}
