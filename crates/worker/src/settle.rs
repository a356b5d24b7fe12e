//! Settling a delivery the worker cannot simply ack: dead-letter it with its reason (failing
//! the execution it names, with one completion naming the node) or hand it back alive.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use baton_amqp::Delivery;
use baton_core::wire::{ErrorInfo, NodeStatus, RuneStart, StatusEvent};
use baton_engine::ports::{EventSink, ExecutionStart, ExecutionStore, PortError, PortErrorKind};
use futures_util::FutureExt;

use crate::failure::{DeadLetterReason, Disposition, disposition};
use crate::metrics_names as m;
use crate::service::Worker;

/// How long a hand-back waits for Redis to record it (about a Redis Cluster failover's
/// detection and election, twice over).
const HAND_BACK_RECORD_BOUND: Duration = Duration::from_secs(15);

impl Worker {
    /// Fails the execution a poison message names (one completion, whose reason names the
    /// node), then dead-letters the message with its reason, then acks it. In that order: a
    /// worker that dies in between leaves the message to a redelivery that dead-letters it
    /// (failing an execution again sends nothing more), and an execution that cannot be
    /// failed yet (its store is away) keeps its message, handed back, rather than lose its
    /// completion.
    pub(crate) async fn poison(
        &self,
        delivery: Delivery,
        reason: DeadLetterReason,
        subject: Option<Subject>,
    ) {
        let kind = reason.kind();
        let reason = reason.to_string();
        tracing::error!(reason, "dead-lettering message");
        if let Some(subject) = subject {
            // Failing the execution runs engine code: contained like a hop.
            let failing = AssertUnwindSafe(self.fail_subject_within_bound(&subject, &reason))
                .catch_unwind()
                .await;
            match failing {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.kind() == PortErrorKind::Transient => {
                    tracing::error!(error = %e, execution_id = %subject.execution_id, "could not fail the execution; handing the message back");
                    self.hand_back(delivery).await;
                    return;
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, execution_id = %subject.execution_id, "could not mark the execution failed");
                }
                Err(_) => {
                    tracing::error!(execution_id = %subject.execution_id, "failing the execution panicked");
                }
            }
        }
        metrics::counter!(m::DEAD_LETTERS, "reason" => kind).increment(1);
        if let Err(e) = self
            .broker
            .dead_letter(delivery.body.clone(), &reason, delivery.headers.clone())
            .await
        {
            // Not dead-lettered: hand it back rather than lose it.
            tracing::error!(error = %e, "dead-letter publish failed; requeueing");
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.hand_back(delivery).await;
            return;
        }
        let _ = delivery.ack().await;
    }

    /// [`fail_subject`](Self::fail_subject), asked again after a transient failure for as
    /// long as a hand-back waits for Redis.
    async fn fail_subject_within_bound(
        &self,
        subject: &Subject,
        reason: &str,
    ) -> Result<(), PortError> {
        within_redis_bound(
            || self.fail_subject(subject, reason),
            |e: &PortError| {
                tracing::warn!(error = %e, execution_id = %subject.execution_id, "failing the execution: retrying");
                e.kind() == PortErrorKind::Transient
            },
        )
        .await
    }

    /// Fails the execution a dead-lettered message names, with its completion. A start's
    /// execution may never have started: it is created first, so it can end `failed`.
    async fn fail_subject(&self, subject: &Subject, reason: &str) -> Result<(), PortError> {
        let Subject {
            workflow_id,
            execution_id,
            node_id,
            start,
        } = subject;
        if *start {
            // The failed status names the start node; a start unread past its shape names none.
            if let Some(node_id) = node_id.as_deref() {
                self.start_node_failed(workflow_id, execution_id, node_id, reason)
                    .await;
            }
            let start = ExecutionStart {
                execution_id: execution_id.clone(),
                workflow_id: workflow_id.clone(),
                workflow_ref: String::new(),
                seed: Default::default(),
                initial_tokens: 1,
                started_at_ms: self.engine.clock().now_ms(),
                deadline_at_ms: None,
            };
            self.store.start(&start).await?;
        }
        let reason = match node_id {
            Some(node) => format!("node `{node}`: {reason}"),
            None => reason.to_string(),
        };
        self.engine
            .fail_execution(workflow_id, execution_id, reason)
            .await
            .map(drop)
    }

    /// The failed status of a start's node: the start could not run it.
    async fn start_node_failed(
        &self,
        workflow_id: &str,
        execution_id: &str,
        node_id: &str,
        reason: &str,
    ) {
        let ev = StatusEvent {
            workflow_id: workflow_id.to_string(),
            execution_id: execution_id.to_string(),
            node_id: node_id.to_string(),
            node_name: node_id.to_string(),
            node_type: String::new(),
            status: NodeStatus::Failed,
            parameters: None,
            output: None,
            error: Some(ErrorInfo {
                message: reason.to_string(),
                code: "NODE_CREATION_FAILED".into(),
                details: None,
            }),
            executed_at: self.engine.clock().rfc3339_now(),
            duration_ms: 0,
            branch_id: None,
            split_node_id: None,
            item_index: None,
            total_items: None,
            lineage_stack: Vec::new(),
            attempt: None,
        };
        let _ = self.events.status(ev).await;
    }

    /// A port failed under this message: a permanent failure dead-letters it at once with its
    /// reason; a transient one hands it back after a pause (no hot loop), within a budget
    /// counted durably where Redis answers (in this process otherwise).
    pub(crate) async fn failed(
        &self,
        delivery: Delivery,
        key: &str,
        error: &PortError,
        subject: Option<Subject>,
    ) {
        if disposition(error.kind(), 0) == Disposition::DeadLetter {
            let reason = DeadLetterReason::Permanent(error.to_string());
            return self.poison(delivery, reason, subject).await;
        }
        metrics::counter!(m::TRANSIENT_ERRORS).increment(1);
        let local = {
            let mut map = self
                .transient_failures
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if map.len() > 100_000 {
                map.clear();
            }
            let c = map.entry(key.to_string()).or_insert(0);
            *c += 1;
            *c
        };
        // Recorded before the hand-back, so the next holder does not count it as a crash.
        let count = match self.record_hand_back(&delivery.body).await {
            Some(durable) => durable.max(local),
            None => local,
        };
        // Infrastructure that is down for everyone is not the message's fault; a message that
        // keeps failing while Redis answers is.
        if disposition(error.kind(), count) == Disposition::DeadLetterIfStoreAnswers
            && self.store.ping().await.is_ok()
        {
            let reason = DeadLetterReason::TransientBudget {
                failures: count,
                last: error.to_string(),
            };
            return self.poison(delivery, reason, subject).await;
        }
        tracing::warn!(
            error = %error,
            attempt = count,
            "hop failed on infrastructure; handing it back"
        );
        let pause = Duration::from_millis((100u64 << count.min(6)).min(5_000));
        tokio::time::sleep(pause).await;
        let _ = delivery.nack_requeue().await;
    }

    /// Records that `body` is handed back alive and returns its durable count of hand-backs.
    /// A Redis that does not answer is asked again for a while before the message goes back
    /// without the record: a return the record misses passes for a crash at the next delivery
    /// (a quorum queue counts every return), so a few seconds of failover would spend a
    /// healthy message's delivery budget. Holding it meanwhile costs nothing: its hop needs
    /// that Redis too.
    pub(crate) async fn record_hand_back(&self, body: &[u8]) -> Option<u64> {
        match within_redis_bound(|| self.deliveries.handed_back(body), |_| true).await {
            Ok(count) => Some(count),
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a hand-back (Redis): the next delivery may count it as a crash");
                None
            }
        }
    }

    /// Hands a delivery back alive (it comes back `redelivered`): recorded first, so the
    /// delivery budget does not count it as a crash.
    async fn hand_back(&self, delivery: Delivery) {
        self.record_hand_back(&delivery.body).await;
        let _ = delivery.nack_requeue().await;
    }
}

/// `attempt`, asked again after a failure `retry` accepts, with pauses from 100 ms doubling to
/// 2 s, for up to [`HAND_BACK_RECORD_BOUND`] (about a Redis Cluster failover); then its last
/// result.
async fn within_redis_bound<T, E, F>(
    mut attempt: impl FnMut() -> F,
    retry: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut pause = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    loop {
        match attempt().await {
            Err(e) if waited < HAND_BACK_RECORD_BOUND && retry(&e) => {
                tokio::time::sleep(pause).await;
                waited += pause;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            done => return done,
        }
    }
}

/// What [`Worker::process`] does with a delivery once it is handled.
pub(crate) enum Settle {
    Ack,
    DeadLetter(DeadLetterReason, Option<Subject>),
    /// A port failed: handed back or dead-lettered on its kind and budget.
    Failed {
        key: String,
        error: PortError,
        subject: Option<Subject>,
    },
}

/// The execution a message belongs to: what a dead-letter fails.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub(crate) workflow_id: String,
    pub(crate) execution_id: String,
    /// Named in the completion's reason.
    pub(crate) node_id: Option<String>,
    /// A start: its execution may not exist yet.
    pub(crate) start: bool,
}

impl Subject {
    pub(crate) fn hop(workflow_id: &str, execution_id: &str, node_id: &str) -> Self {
        Self {
            workflow_id: workflow_id.to_owned(),
            execution_id: execution_id.to_owned(),
            node_id: Some(node_id.to_owned()),
            start: false,
        }
    }

    pub(crate) fn start(start: &RuneStart) -> Self {
        Self {
            workflow_id: start.workflow_id(),
            execution_id: start.execution_id.clone(),
            node_id: Some(start.current_node.clone()),
            start: true,
        }
    }
}
