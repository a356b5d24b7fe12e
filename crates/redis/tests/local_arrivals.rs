//! Arrivals handled in-process (RFC 0011): a hop hands its aggregator arrival to the engine
//! itself instead of publishing it, with the statuses, output and completion a published one
//! gives; a work hop that dies between its commit and its arrival arrives once on its
//! redelivery. Engine on the real Redis store; the queue and the event sink are in memory
//! (this test delivers the queue's messages itself, as a worker would).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use baton_core::CompiledWorkflow;
use baton_core::message::{Completion, ExecutionStatus, HopMessage, NodeStatus, StatusEvent};
use baton_engine::ports::{EventSink, PortError};
use baton_engine::{Engine, StartRequest};
use baton_memory::{MemoryDefinitions, MemoryQueue};
use baton_redis::{RedisOptions, RedisStore};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

const ITEMS: usize = 4;

/// Records statuses and completions (`support::Recorded`); while `stall_work` (`stall_join`)
/// is set, the `success` status of the `work` (`join`) node never returns (the hop has
/// committed: a worker dying right there).
#[derive(Default)]
struct Recorder {
    stall_work: AtomicBool,
    stall_join: AtomicBool,
    recorded: support::Recorded,
}

#[async_trait]
impl EventSink for Recorder {
    async fn status(&self, event: StatusEvent) -> Result<(), PortError> {
        let stall = event.status == NodeStatus::Success
            && match event.node_id.as_str() {
                "work" => self.stall_work.load(Ordering::SeqCst),
                "join" => self.stall_join.load(Ordering::SeqCst),
                _ => false,
            };
        self.recorded.status(event).await?;
        if stall {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn completion(&self, completion: Completion) -> Result<(), PortError> {
        self.recorded.completion(completion).await
    }
}

impl Recorder {
    /// Each node's statuses, in the order sent.
    fn by_node(&self) -> BTreeMap<String, Vec<NodeStatus>> {
        let mut out: BTreeMap<String, Vec<NodeStatus>> = BTreeMap::new();
        for (node, status) in self.recorded.statuses() {
            out.entry(node).or_default().push(status);
        }
        out
    }

    fn completions(&self) -> Vec<Completion> {
        self.recorded.completions.lock().unwrap().clone()
    }
}

struct Setup {
    engine: Engine,
    events: Arc<Recorder>,
    published: UnboundedReceiver<HopMessage>,
    workflow: Arc<CompiledWorkflow>,
    _cleanup: support::Cleanup,
}

/// `split` over `ITEMS` items → `work` (log) → `join` (aggregator) → `after` (log).
async fn setup(test: &str, local_arrivals: bool) -> Setup {
    let (store, cleanup): (RedisStore, _) = support::store(test, RedisOptions::default()).await;
    let registry = baton_nodes::registry();
    let workflow = Arc::new(
        CompiledWorkflow::compile(
            &json!({"name": "fan", "nodes": [
                {"id": "split", "name": "Split", "type": "split", "parameters": {"input_array": "{{ $input.items }}"}},
                {"id": "work", "name": "Work", "type": "log", "parameters": {"message": "item {{$item}}", "level": "debug"}},
                {"id": "join", "name": "Join", "type": "aggregator", "parameters": {}},
                {"id": "after", "name": "After", "type": "log", "parameters": {"message": "done", "level": "debug"}}
            ], "edges": [
                {"id": "e1", "src": "split", "dst": "work"},
                {"id": "e2", "src": "work", "dst": "join"},
                {"id": "e3", "src": "join", "dst": "after"}
            ]}),
            &registry,
        )
        .expect("valid workflow"),
    );
    let definitions = Arc::new(MemoryDefinitions::default());
    definitions.insert(workflow.reference.clone(), workflow.clone());
    let (queue, published) = MemoryQueue::new();
    let events = Arc::new(Recorder::default());
    let engine = Engine::new(
        Arc::new(store),
        Arc::new(queue),
        events.clone(),
        definitions,
        Arc::new(registry),
    )
    .with_local_arrivals(local_arrivals);
    Setup {
        engine,
        events,
        published,
        workflow,
        _cleanup: cleanup,
    }
}

async fn start(s: &Setup) -> String {
    let execution_id = uuid::Uuid::new_v4().to_string();
    let mut seed = serde_json::Map::new();
    seed.insert(
        "$input".into(),
        json!({"items": (0..ITEMS).map(|i| i * 10).collect::<Vec<_>>()}),
    );
    s.engine
        .start(
            &s.workflow,
            StartRequest {
                workflow_id: "fan".into(),
                execution_id: execution_id.clone(),
                seed,
                ..StartRequest::default()
            },
        )
        .await
        .expect("start");
    execution_id
}

/// Delivers every published message until none is left; returns the node ids delivered.
async fn deliver_all(s: &mut Setup) -> Vec<String> {
    let mut delivered = Vec::new();
    while let Ok(msg) = s.published.try_recv() {
        delivered.push(msg.node_id.clone());
        s.engine.handle(msg).await.expect("hop handled");
    }
    delivered
}

/// The messages the aggregator collected, in item order.
fn aggregated(completion: &Completion) -> Vec<Value> {
    completion.final_context["$Join"]["aggregated"]
        .as_array()
        .map(|items| items.iter().map(|o| o["message"].clone()).collect())
        .unwrap_or_default()
}

fn expected_items() -> Vec<Value> {
    (0..ITEMS)
        .map(|i| json!(format!("item {}", i * 10)))
        .collect()
}

#[tokio::test]
async fn a_fan_out_hands_its_arrivals_to_the_aggregator_in_process_with_the_same_statuses() {
    let mut local = setup("local-arrivals-on", true).await;
    let mut published = setup("local-arrivals-off", false).await;
    start(&local).await;
    start(&published).await;
    let delivered_local = deliver_all(&mut local).await;
    let delivered_published = deliver_all(&mut published).await;

    assert!(
        !delivered_local.iter().any(|n| n == "join"),
        "no arrival went through the queue: {delivered_local:?}"
    );
    assert_eq!(
        delivered_published
            .iter()
            .filter(|n| n.as_str() == "join")
            .count(),
        ITEMS,
        "without the setting every arrival is published"
    );
    for s in [&local, &published] {
        let completions = s.events.completions();
        assert_eq!(completions.len(), 1, "one completion");
        assert_eq!(completions[0].status, ExecutionStatus::Completed);
        assert_eq!(aggregated(&completions[0]), expected_items());
    }
    // Node by node, the same statuses in the same order: `waiting` per arrival, then the
    // release's `running` and `success`.
    let statuses = local.events.by_node();
    assert_eq!(statuses, published.events.by_node());
    let mut join = vec![NodeStatus::Waiting; ITEMS];
    join.extend([NodeStatus::Running, NodeStatus::Success]);
    assert_eq!(statuses["join"], join);
}

#[tokio::test]
async fn a_work_hop_that_dies_after_its_commit_arrives_once_on_its_redelivery() {
    let mut s = setup("local-arrivals-redelivery", true).await;
    start(&s).await;
    let split = s.published.try_recv().expect("the split is published");
    s.engine.handle(split).await.expect("split handled");
    let first = s.published.try_recv().expect("the first item is published");

    // First delivery: the hop commits, then its worker "dies" before the arrival.
    s.events.stall_work.store(true, Ordering::SeqCst);
    let died = tokio::time::timeout(Duration::from_millis(300), s.engine.handle(first.clone()));
    assert!(
        died.await.is_err(),
        "the first delivery stalls after its commit"
    );
    s.events.stall_work.store(false, Ordering::SeqCst);
    assert!(
        !s.events.by_node().contains_key("join"),
        "nothing arrived yet"
    );

    // Redelivered: the committed handoff is replayed and arrives; then once more (a duplicate).
    s.engine.handle(first.clone()).await.expect("redelivery");
    s.engine.handle(first).await.expect("duplicate");
    assert_eq!(s.events.by_node()["join"], vec![NodeStatus::Waiting]);

    deliver_all(&mut s).await;
    let completions = s.events.completions();
    assert_eq!(completions.len(), 1, "one completion");
    assert_eq!(completions[0].status, ExecutionStatus::Completed);
    assert_eq!(aggregated(&completions[0]), expected_items());
    let mut join = vec![NodeStatus::Waiting; ITEMS];
    join.extend([NodeStatus::Running, NodeStatus::Success]);
    assert_eq!(
        s.events.by_node()["join"],
        join,
        "each arrival reported once"
    );
    assert_eq!(
        s.events.by_node()["after"],
        vec![NodeStatus::Running, NodeStatus::Success],
        "the aggregator's successor ran once"
    );
}

#[tokio::test]
async fn a_release_that_dies_after_its_commit_hands_on_at_the_redelivery() {
    let mut s = setup("local-arrivals-release-redelivery", true).await;
    start(&s).await;
    let split = s.published.try_recv().expect("the split is published");
    s.engine.handle(split).await.expect("split handled");
    let items: Vec<HopMessage> = std::iter::from_fn(|| s.published.try_recv().ok()).collect();
    assert_eq!(items.len(), ITEMS);
    let (last, rest) = items.split_last().expect("items");
    for item in rest {
        s.engine.handle(item.clone()).await.expect("item handled");
    }

    // The last item's arrival releases the aggregator, whose hop commits; then the worker
    // "dies" before the aggregator's successor goes out.
    s.events.stall_join.store(true, Ordering::SeqCst);
    let died = tokio::time::timeout(Duration::from_millis(300), s.engine.handle(last.clone()));
    assert!(
        died.await.is_err(),
        "the delivery stalls after the release's commit"
    );
    s.events.stall_join.store(false, Ordering::SeqCst);
    assert!(s.published.try_recv().is_err(), "nothing handed on yet");

    // Redelivered: the release's committed handoff goes out.
    s.engine.handle(last.clone()).await.expect("redelivery");
    assert_eq!(deliver_all(&mut s).await, vec!["after".to_string()]);
    let completions = s.events.completions();
    assert_eq!(completions.len(), 1, "one completion");
    assert_eq!(aggregated(&completions[0]), expected_items());
}
