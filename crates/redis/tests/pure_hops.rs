//! One round trip for pure nodes (RFC 0011): a chain of `log` nodes with literal parameters
//! runs each hop before any store call and commits it with `run_commit`. Copies of such hops
//! (a redelivery, a re-published successor) each run the node again — harmless — but commit
//! nothing, emit no status and send no second completion; a hop of a finished execution emits
//! nothing either, as a hop that began would not have run. Engine on the real Redis store, the
//! queue in memory.

mod support;

use support::Recorded;

use std::sync::Arc;

use baton_core::CompiledWorkflow;
use baton_core::message::{ExecutionStatus, HopMessage, NodeStatus};
use baton_engine::ports::CompletionLedger;
use baton_engine::{Engine, HopOutcome, StartRequest};
use baton_memory::{MemoryDefinitions, MemoryQueue};
use baton_redis::RedisOptions;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

fn next(published: &mut UnboundedReceiver<HopMessage>, node: &str) -> HopMessage {
    let msg = published
        .try_recv()
        .unwrap_or_else(|_| panic!("a message to `{node}` is published"));
    assert_eq!(msg.node_id, node);
    msg
}

#[tokio::test]
async fn copies_of_pure_hops_commit_once_emit_once_and_complete_once() {
    let (store, _cleanup) = support::store("pure-hops", RedisOptions::default()).await;
    let store = Arc::new(store);
    let registry = baton_nodes::registry();
    let log =
        |id: &str| json!({"id": id, "name": id, "type": "log", "parameters": {"message": "step"}});
    let workflow = Arc::new(
        CompiledWorkflow::compile(
            &json!({"name": "pure", "nodes": [log("a"), log("b"), log("c")], "edges": [
                {"id": "ab", "src": "a", "dst": "b"},
                {"id": "bc", "src": "b", "dst": "c"}
            ]}),
            &registry,
        )
        .expect("valid workflow"),
    );
    assert!(
        workflow.nodes.iter().all(|n| n.pure && n.reads.is_empty()),
        "the chain takes the one-round-trip path"
    );
    let definitions = Arc::new(MemoryDefinitions::default());
    definitions.insert(workflow.reference.clone(), workflow.clone());
    let (queue, mut published) = MemoryQueue::new();
    let events = Arc::new(Recorded::default());
    let engine = Engine::new(
        store.clone(),
        Arc::new(queue),
        events.clone(),
        definitions,
        Arc::new(registry),
    );
    let start = |execution_id: &str| StartRequest {
        workflow_id: "pure".into(),
        execution_id: execution_id.into(),
        ..StartRequest::default()
    };

    let execution_id = uuid::Uuid::new_v4().to_string();
    engine
        .start(&workflow, start(&execution_id))
        .await
        .expect("start");
    let a = next(&mut published, "a");
    assert_eq!(engine.handle(a.clone()).await.unwrap(), HopOutcome::Done);
    let b = next(&mut published, "b");
    // A redelivery of `a`: the node runs again, its commit is a duplicate that re-publishes
    // what `a` handed on (not marked published) and emits nothing.
    assert_eq!(engine.handle(a).await.unwrap(), HopOutcome::Done);
    let b_copy = next(&mut published, "b");
    assert_eq!(b_copy, b, "the replay re-publishes the same message");
    for copy in [b, b_copy] {
        assert_eq!(engine.handle(copy).await.unwrap(), HopOutcome::Done);
    }
    let c = next(&mut published, "c");
    let c_copy = next(&mut published, "c");
    assert_eq!(engine.handle(c_copy).await.unwrap(), HopOutcome::Done);
    assert!(
        published.try_recv().is_err(),
        "the last hop hands nothing on"
    );
    assert_eq!(
        events.statuses(),
        [
            ("a".to_string(), NodeStatus::Running),
            ("a".to_string(), NodeStatus::Success),
            ("b".to_string(), NodeStatus::Running),
            ("b".to_string(), NodeStatus::Success),
            ("c".to_string(), NodeStatus::Running),
            ("c".to_string(), NodeStatus::Success),
        ],
        "one running and one final status per node, in order"
    );
    {
        let completions = events.completions.lock().unwrap();
        assert_eq!(completions.len(), 1, "exactly one completion");
        assert_eq!(completions[0].status, ExecutionStatus::Completed);
    }
    // The other copy of the last hop arrives after the end: it finds the execution finished
    // and is dropped, emitting nothing.
    assert_eq!(engine.handle(c).await.unwrap(), HopOutcome::Dropped);
    assert_eq!(events.statuses().len(), 6, "no status after the end");

    // A cancelled (halted) execution: its pending hop runs the node, emits nothing, and its
    // commit writes nothing.
    let halted = uuid::Uuid::new_v4().to_string();
    engine
        .start(&workflow, start(&halted))
        .await
        .expect("start");
    let first = next(&mut published, "a");
    assert!(
        store
            .finish(&halted, ExecutionStatus::Halted, Some("cancelled".into()))
            .await
            .unwrap()
    );
    assert_eq!(engine.handle(first).await.unwrap(), HopOutcome::Dropped);
    assert!(published.try_recv().is_err(), "nothing handed on");
    assert_eq!(
        events.statuses().len(),
        6,
        "no status for a finished execution's hop"
    );
}
