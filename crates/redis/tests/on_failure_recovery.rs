//! A halt never loses its `on_failure` node: when the hop that halted an execution fails to
//! publish the `on_failure` message (its worker died, or the broker refused), the redelivered
//! hop publishes it again; any other hop that finds the execution halted does not, and a
//! repeated `on_failure` message does not run the node twice. A halting hop dead-lettered
//! unrun (its crash budget spent) gets the message published by the failing of its execution.
//! Engine on the real Redis store;
//! the queue is in memory and refuses the first `on_failure` message, as a dying worker would.

mod support;

use support::Recorded;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use baton_core::CompiledWorkflow;
use baton_core::message::{ExecutionStatus, HopKind, HopMessage, NodeStatus};
use baton_engine::ports::{HopQueue, PortError};
use baton_engine::{Engine, HopOutcome, StartRequest};
use baton_memory::{MemoryDefinitions, MemoryQueue};
use baton_redis::RedisOptions;
use serde_json::json;

/// The in-memory queue, except that the first `on_failure` message is refused.
struct RefusesFirstOnFailure {
    inner: MemoryQueue,
    refused: AtomicBool,
}

#[async_trait]
impl HopQueue for RefusesFirstOnFailure {
    async fn publish(&self, messages: Vec<HopMessage>) -> Result<(), PortError> {
        if messages.iter().any(|m| m.kind == HopKind::OnFailure)
            && !self.refused.swap(true, Ordering::SeqCst)
        {
            return Err(PortError::transient_msg("broker connection lost"));
        }
        self.inner.publish(messages).await
    }

    async fn publish_delayed(&self, message: HopMessage, delay_ms: u64) -> Result<(), PortError> {
        self.inner.publish_delayed(message, delay_ms).await
    }
}

/// An engine on the real Redis store (queue: [`RefusesFirstOnFailure`]) with an execution of
/// `halts` started: its one node halts it, and `cleanup` is its `on_failure` node.
struct Halting {
    engine: Engine,
    events: Arc<Recorded>,
    published: tokio::sync::mpsc::UnboundedReceiver<HopMessage>,
    execution_id: String,
    first_hop: HopMessage,
    _cleanup: support::Cleanup,
}

async fn halting(test: &str) -> Halting {
    let (store, cleanup) = support::store(test, RedisOptions::default()).await;
    let registry = baton_nodes::registry();
    let workflow = Arc::new(
        CompiledWorkflow::compile(
            &json!({"name": "halts", "on_failure": "cleanup", "nodes": [
                {"id": "charge", "name": "Charge", "type": "log", "parameters": {"message": "charging {{$input.card.number}}"}},
                {"id": "cleanup", "name": "Cleanup", "type": "log", "parameters": {"message": "cleaning up", "level": "debug"}}
            ], "edges": []}),
            &registry,
        )
        .expect("valid workflow"),
    );
    let definitions = Arc::new(MemoryDefinitions::default());
    definitions.insert(workflow.reference.clone(), workflow.clone());
    let (inner, mut published) = MemoryQueue::new();
    let queue = Arc::new(RefusesFirstOnFailure {
        inner,
        refused: AtomicBool::new(false),
    });
    let events = Arc::new(Recorded::default());
    let engine = Engine::new(
        Arc::new(store),
        queue,
        events.clone(),
        definitions,
        Arc::new(registry),
    );

    let execution_id = uuid::Uuid::new_v4().to_string();
    engine
        .start(
            &workflow,
            StartRequest {
                workflow_id: "halts".into(),
                execution_id: execution_id.clone(),
                seed: serde_json::from_value(json!({"$input": {"card": {}}})).expect("map"),
                ..StartRequest::default()
            },
        )
        .await
        .expect("start");
    let first_hop = published.try_recv().expect("the first hop is published");

    Halting {
        engine,
        events,
        published,
        execution_id,
        first_hop,
        _cleanup: cleanup,
    }
}

#[tokio::test]
async fn a_redelivered_halting_hop_republishes_the_on_failure_message_its_first_delivery_lost() {
    let Halting {
        engine,
        events,
        mut published,
        first_hop: hop,
        _cleanup,
        ..
    } = halting("on-failure-recovery").await;

    // First delivery: the node fails and halts the execution, but the on_failure message is lost.
    assert!(engine.handle(hop.clone()).await.is_err(), "the hop fails");
    assert!(published.try_recv().is_err());

    // Another hop that finds the execution halted (here: the same node reached by another
    // edge) is not the one that halted it, and leaves the on_failure message alone. (Not a
    // later attempt: `charge` allows one, so an attempt 2 is refused as poison before this.)
    let other = HopMessage {
        from_edge: Some("another-edge".into()),
        ..hop.clone()
    };
    assert_eq!(engine.handle(other).await.unwrap(), HopOutcome::Dropped);
    assert!(
        published.try_recv().is_err(),
        "only the halting hop re-publishes"
    );

    // The redelivered halting hop publishes it again.
    assert_eq!(
        engine.handle(hop.clone()).await.unwrap(),
        HopOutcome::Dropped
    );
    let on_failure = published
        .try_recv()
        .expect("the on_failure message is re-published");
    assert_eq!(on_failure.kind, HopKind::OnFailure);
    assert_eq!(on_failure.node_id, "cleanup");

    // It runs the node and sends the one completion; a repeat of it (or of the halting hop)
    // runs nothing and sends nothing.
    assert_eq!(
        engine.handle(on_failure.clone()).await.unwrap(),
        HopOutcome::Done
    );
    assert_eq!(
        engine.handle(on_failure).await.unwrap(),
        HopOutcome::Dropped
    );
    assert_eq!(engine.handle(hop).await.unwrap(), HopOutcome::Dropped);
    assert!(published.try_recv().is_err(), "nothing more is published");

    let completions = events.completions.lock().unwrap();
    assert_eq!(completions.len(), 1, "exactly one completion");
    assert_eq!(completions[0].status, ExecutionStatus::Halted);
    assert!(
        completions[0].final_context.contains_key("$Cleanup"),
        "{:?}",
        completions[0].final_context
    );
    let cleanup_runs = events
        .statuses
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.node_id == "cleanup" && s.status == NodeStatus::Running)
        .count();
    assert_eq!(cleanup_runs, 1, "the on_failure node ran once");
}

#[tokio::test]
async fn a_halting_hop_dead_lettered_after_losing_the_on_failure_message_still_gets_the_node_run() {
    let Halting {
        engine,
        events,
        mut published,
        execution_id,
        first_hop: hop,
        _cleanup,
    } = halting("on-failure-dead-letter").await;

    // The halting hop loses the on_failure message with its worker; its redeliveries spend the
    // crash budget, and the next one is dead-lettered unrun, failing its execution.
    assert!(engine.handle(hop).await.is_err(), "the hop fails");
    let failed = engine
        .fail_execution(
            "halts",
            &execution_id,
            "crashed or stalled 3 workers".into(),
        )
        .await
        .expect("fail_execution");
    assert!(
        !failed,
        "the on_failure node sends the completion, not this"
    );
    assert!(events.completions.lock().unwrap().is_empty());
    let on_failure = published
        .try_recv()
        .expect("the on_failure message is published again");
    assert_eq!(on_failure.kind, HopKind::OnFailure);
    assert_eq!(
        engine.handle(on_failure).await.unwrap(),
        HopOutcome::Done,
        "the node runs"
    );
    let completions = events.completions.lock().unwrap();
    assert_eq!(completions.len(), 1, "exactly one completion");
    assert_eq!(completions[0].status, ExecutionStatus::Halted);
    assert!(completions[0].final_context.contains_key("$Cleanup"));
}
