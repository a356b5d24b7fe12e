//! A completion is never lost: when the hop that finished an execution fails to send its
//! completion (its worker died, or the broker refused), the redelivered hop sends it, once,
//! after the first sender's claim expires. Engine on the real Redis store; the queue and the
//! event sink are in memory (the sink refuses the first completion, as a dying worker would).
//! The same holds for an execution failed by a poison message whose completion was lost.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use baton_core::CompiledWorkflow;
use baton_core::message::HopMessage;
use baton_core::message::{Completion, ExecutionStatus, StatusEvent};
use baton_engine::ports::{EventSink, PortError};
use baton_engine::{Engine, HopOutcome, StartRequest};
use baton_memory::{MemoryDefinitions, MemoryQueue};
use baton_redis::RedisOptions;
use serde_json::json;

/// Records completions; refuses the first one.
#[derive(Default)]
struct RefusesFirstCompletion {
    refused: AtomicBool,
    sent: Mutex<Vec<Completion>>,
}

#[async_trait]
impl EventSink for RefusesFirstCompletion {
    async fn status(&self, _event: StatusEvent) -> Result<(), PortError> {
        Ok(())
    }

    async fn completion(&self, completion: Completion) -> Result<(), PortError> {
        if !self.refused.swap(true, Ordering::SeqCst) {
            return Err(PortError::transient_msg("broker connection lost"));
        }
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(completion);
        Ok(())
    }
}

/// How long a completion claim holds in these tests.
const LEASE_MS: u64 = 300;

/// An engine on the real Redis store running a one-node workflow (`one`), with an execution
/// started: the engine, its sink, the execution's first hop and its id.
struct OneNode {
    engine: Engine,
    events: Arc<RefusesFirstCompletion>,
    first_hop: HopMessage,
    published: tokio::sync::mpsc::UnboundedReceiver<HopMessage>,
    execution_id: String,
    _cleanup: support::Cleanup,
}

async fn one_node(test: &str) -> OneNode {
    let (store, cleanup) = support::store(test, RedisOptions::default()).await;
    let registry = baton_nodes::registry();
    let workflow = Arc::new(
        CompiledWorkflow::compile(
            &json!({"name": "one", "nodes": [
                {"id": "a", "name": "A", "type": "log", "parameters": {"message": "hi", "level": "debug"}}
            ], "edges": []}),
            &registry,
        )
        .expect("valid workflow"),
    );
    let definitions = Arc::new(MemoryDefinitions::default());
    definitions.insert(workflow.reference.clone(), workflow.clone());
    let (queue, mut published) = MemoryQueue::new();
    let events = Arc::new(RefusesFirstCompletion::default());
    let engine = Engine::new(
        Arc::new(store),
        Arc::new(queue),
        events.clone(),
        definitions,
        Arc::new(registry),
    )
    .with_completion_lease_ms(LEASE_MS);
    let execution_id = uuid::Uuid::new_v4().to_string();
    engine
        .start(
            &workflow,
            StartRequest {
                workflow_id: "one".into(),
                execution_id: execution_id.clone(),
                ..StartRequest::default()
            },
        )
        .await
        .expect("start");
    let first_hop = published.try_recv().expect("the first hop is published");
    OneNode {
        engine,
        events,
        first_hop,
        published,
        execution_id,
        _cleanup: cleanup,
    }
}

#[tokio::test]
async fn a_redelivered_final_hop_sends_the_completion_its_first_delivery_lost() {
    let OneNode {
        engine,
        events,
        first_hop: hop,
        mut published,
        execution_id,
        _cleanup,
    } = one_node("completion-recovery").await;

    // First delivery: the node runs and the execution finishes, but the completion is refused.
    assert!(engine.handle(hop.clone()).await.is_err(), "the hop fails");
    assert!(events.sent.lock().unwrap().is_empty());

    // Redelivered at once: the first sender's claim still holds; handed back again.
    let early = engine.handle(hop.clone()).await;
    assert!(
        early
            .as_ref()
            .is_err_and(|e| e.to_string().contains("being sent elsewhere")),
        "{early:?}"
    );

    // After the lease: the redelivery sends it.
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 50)).await;
    assert_eq!(
        engine.handle(hop.clone()).await.unwrap(),
        HopOutcome::Dropped
    );
    // And a later duplicate sends nothing more.
    assert_eq!(engine.handle(hop).await.unwrap(), HopOutcome::Dropped);

    let sent = events.sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "exactly one completion");
    assert_eq!(sent[0].execution_id, execution_id);
    assert_eq!(sent[0].status, ExecutionStatus::Completed);
    assert!(
        sent[0].final_context.contains_key("$A"),
        "{:?}",
        sent[0].final_context
    );
    assert!(published.try_recv().is_err(), "no node ran twice");
}

#[tokio::test]
async fn failing_an_execution_again_sends_the_completion_its_first_attempt_lost() {
    let OneNode {
        engine,
        events,
        execution_id,
        _cleanup,
        ..
    } = one_node("fail-recovery").await;

    // A poison message fails the execution; its completion is refused (the worker died).
    let first = engine
        .fail_execution("one", &execution_id, "poison".into())
        .await;
    assert!(first.is_err(), "{first:?}");
    // The poison message is redelivered and fails the execution again, once the lease is
    // over: that sends the completion; a third time sends nothing.
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 50)).await;
    assert!(
        engine
            .fail_execution("one", &execution_id, "poison".into())
            .await
            .expect("failed again")
    );
    assert!(
        !engine
            .fail_execution("one", &execution_id, "poison".into())
            .await
            .expect("a third time")
    );
    let sent = events.sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "exactly one completion");
    assert_eq!(sent[0].status, ExecutionStatus::Failed);
    assert_eq!(sent[0].failure_reason.as_deref(), Some("poison"));
}

#[tokio::test]
async fn a_last_hop_dead_lettered_after_finishing_its_execution_still_sends_the_completion() {
    let OneNode {
        engine,
        events,
        first_hop: hop,
        execution_id,
        _cleanup,
        ..
    } = one_node("spent-last-hop").await;

    // The last hop finishes the execution; its completion is lost with its worker.
    assert!(engine.handle(hop).await.is_err(), "the hop fails");
    // Its redeliveries find more dead workers: the next one is dead-lettered unrun, and failing
    // its execution finds it completed, with the completion still to send.
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 50)).await;
    assert!(
        engine
            .fail_execution("one", &execution_id, "crashed or stalled 3 workers".into())
            .await
            .expect("completion sent")
    );
    let sent = events.sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "exactly one completion");
    assert_eq!(sent[0].status, ExecutionStatus::Completed, "{:?}", sent[0]);
    assert!(sent[0].failure_reason.is_none());
}
