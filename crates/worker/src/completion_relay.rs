//! The completion relay: turns the completion requests the hops put in the outbox queue into
//! exactly one completion per execution. Each request is adopted in the ledger (the first one
//! for an execution owns its completion for good), then the completion is published and the
//! request acked in one AMQP transaction (`baton_amqp::Broker::run_relay`), then marked sent.
//!
//! Why this is exactly once: the adopted request is acked only in the transaction that
//! publishes its completion, so it comes back (redelivered) until that commits, and the broker
//! never redelivers an acked message. Every other request for the execution is dropped: the
//! adopted one sends the completion, or already did. A worker dying anywhere loses nothing and
//! costs no lease: its unacked requests go back to the queue at once.

use std::sync::Arc;

use baton_amqp::{Outgoing, RelayHandler, RelayRequest, Relayed, Topology};
use baton_core::message::Completion;
use baton_engine::ports::{CompletionAdoption, CompletionLedger, PortErrorKind};
use futures_util::future::BoxFuture;
use serde::Deserialize;

use crate::metrics_names as m;

/// Header naming the sender of a completion request: unique per publish attempt, so that a
/// request is told from another one (copies of one attempt share it).
pub const SENDER_HEADER: &str = "x-baton-completion-sender";

/// What the relay reads of a request's body (the completion, sent as is).
#[derive(Deserialize)]
struct Addressed {
    execution_id: String,
}

/// The `RelayHandler` of completions.
pub struct CompletionRelay {
    ledger: Arc<dyn CompletionLedger>,
    topology: Arc<Topology>,
}

impl CompletionRelay {
    pub fn new(ledger: Arc<dyn CompletionLedger>, topology: Arc<Topology>) -> Self {
        Self { ledger, topology }
    }

    async fn decide_one(&self, request: &RelayRequest) -> Relayed {
        let Ok(Addressed { execution_id }) = serde_json::from_slice(&request.body) else {
            tracing::error!("completion request without an execution id; dropped");
            return Relayed::Drop;
        };
        let Some(sender) = request.headers.get(SENDER_HEADER) else {
            tracing::error!(execution_id, "completion request without a sender; dropped");
            return Relayed::Drop;
        };
        match self.ledger.adopt_completion(&execution_id, sender).await {
            Ok(CompletionAdoption::Adopted) => self.publish(request),
            // Its own request again: not acked, so its completion is not out yet.
            Ok(CompletionAdoption::Again) if request.redelivered => self.publish(request),
            // A first delivery naming the adopter: a copy of the adopted request (a publish
            // resent after a reconnect). The adopted one comes back if it was not sent.
            Ok(
                CompletionAdoption::Again
                | CompletionAdoption::Another
                | CompletionAdoption::Sent
                | CompletionAdoption::Unknown,
            ) => Relayed::Drop,
            Err(e) if e.kind() == PortErrorKind::Transient => {
                tracing::warn!(execution_id, error = %e, "completion request postponed");
                Relayed::Retry
            }
            Err(e) => {
                tracing::error!(execution_id, error = %e, "completion request dropped");
                Relayed::Drop
            }
        }
    }

    fn publish(&self, request: &RelayRequest) -> Relayed {
        Relayed::Publish(Outgoing::new(
            self.topology.completion_queue.clone(),
            request.body.clone(),
        ))
    }
}

impl RelayHandler for CompletionRelay {
    fn decide<'a>(&'a self, request: &'a RelayRequest) -> BoxFuture<'a, Relayed> {
        Box::pin(self.decide_one(request))
    }

    fn committed(&self, published: Vec<RelayRequest>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            metrics::counter!(m::EVENTS_PUBLISHED).increment(published.len() as u64);
            for request in published {
                let Ok(c) = serde_json::from_slice::<Completion>(&request.body) else {
                    continue;
                };
                // Only an optimisation once committed: the adoption already stops repeats,
                // the mark stops new requests (the lifecycle says sent).
                if let Err(e) = self.ledger.mark_completion_sent(&c.execution_id).await {
                    tracing::warn!(execution_id = c.execution_id, error = %e, "completion sent but not marked");
                }
            }
        })
    }
}
