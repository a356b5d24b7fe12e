//! `workflow` (sub-workflow) nodes through the embedded runtime: the child's final context as
//! the node's output, a failed child on the parent's error route, the depth limit, cancellation
//! from parent to child, fire and forget, and a redelivered hop that must not start a second
//! child.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use baton_core::CompiledWorkflow;
use baton_core::message::{Completion, ExecutionStatus, HopKind, HopMessage, NodeStatus};
use baton_engine::ports::WorkflowCatalog;
use baton_memory::{EmbeddedRuntime, Event};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// A guard so a broken engine fails the test instead of hanging it (never a speed assertion).
const BOUND: Duration = Duration::from_secs(30);

fn compile(doc: &Value) -> Arc<CompiledWorkflow> {
    Arc::new(CompiledWorkflow::compile(doc, &baton_nodes::registry()).expect("valid workflow"))
}

fn runtime() -> EmbeddedRuntime {
    EmbeddedRuntime::start(baton_nodes::registry(), 8)
}

async fn put(rt: &EmbeddedRuntime, id: &str, doc: Value) {
    rt.catalog().put(id, &doc).await.expect("catalog put");
}

/// A parent whose start node `sub` ("Sub") runs `child` with `params`, then logs on success
/// ("After") or on its error route ("Failed").
fn parent(params: Value) -> Value {
    json!({
        "nodes": [
            {"id": "sub", "name": "Sub", "type": "workflow", "parameters": params},
            {"id": "after", "name": "After", "type": "log", "parameters": {"message": "child said {{$Sub.$Greet.message}}"}},
            {"id": "failed", "name": "Failed", "type": "log", "parameters": {"message": "{{$error.code}}: {{$error.message}}"}}
        ],
        "edges": [
            {"id": "e1", "src": "sub", "dst": "after"},
            {"id": "e2", "src": "sub", "dst": "failed", "on": "error"}
        ]
    })
}

/// A child that waits for signal `go` before it greets (so it stays running until told).
fn waiting_child() -> Value {
    json!({
        "nodes": [
            {"id": "w", "name": "Hold", "type": "wait", "parameters": {"mode": "signal", "signal": "go"}},
            {"id": "g", "name": "Greet", "type": "log", "parameters": {"message": "hello {{$input.who}}"}}
        ],
        "edges": [{"id": "c1", "src": "w", "dst": "g"}]
    })
}

async fn finished(rx: tokio::sync::oneshot::Receiver<Completion>) -> Completion {
    tokio::time::timeout(BOUND, rx)
        .await
        .expect("completes in time")
        .expect("runtime alive")
}

/// The child execution id a waiting `workflow` node reports.
async fn child_started(events: &mut broadcast::Receiver<Event>, node_id: &str) -> String {
    loop {
        match tokio::time::timeout(BOUND, events.recv()).await {
            Ok(Ok(Event::Status(s))) if s.node_id == node_id && s.status == NodeStatus::Waiting => {
                let output = s.output.expect("a waiting workflow node reports its child");
                return output["execution_id"]
                    .as_str()
                    .expect("child id")
                    .to_string();
            }
            Ok(Ok(_)) => {}
            other => panic!("the workflow node never waited: {other:?}"),
        }
    }
}

/// Waits until execution `id`'s node `node_id` reports `waiting`.
async fn node_waiting(events: &mut broadcast::Receiver<Event>, id: &str, node_id: &str) {
    loop {
        match tokio::time::timeout(BOUND, events.recv()).await {
            Ok(Ok(Event::Status(s)))
                if s.execution_id == id
                    && s.node_id == node_id
                    && s.status == NodeStatus::Waiting =>
            {
                return;
            }
            Ok(Ok(_)) => {}
            other => panic!("`{node_id}` of `{id}` never waited: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_completed_child_hands_its_final_context_to_the_parent() {
    let rt = runtime();
    put(
        &rt,
        "greet",
        json!({"nodes": [{"id": "g", "name": "Greet", "type": "log", "parameters": {"message": "hello {{$input.who}}"}}], "edges": []}),
    )
    .await;
    let wf = compile(&parent(
        json!({"workflow_id": "greet", "input": {"who": "{{$input.name}}"}}),
    ));
    let c = rt
        .run(wf, "sub-ok", json!({"name": "ada"}))
        .await
        .expect("ran");
    assert_eq!(c.status, ExecutionStatus::Completed, "{c:?}");
    assert_eq!(
        c.final_context["$After"]["message"],
        json!("child said hello ada")
    );
    let output = &c.final_context["$Sub"];
    assert_eq!(
        output["$input"],
        json!({"who": "ada"}),
        "the child's $input"
    );
    assert_eq!(output["$Greet"]["message"], json!("hello ada"));
    assert!(
        output.get("$parent").is_none(),
        "the link to the parent is not part of the output"
    );
    assert_eq!(
        c.final_context["$json"], *output,
        "the output is also $json"
    );
    assert!(!c.final_context.contains_key("$Failed"));
    assert!(
        c.final_context.keys().all(|k| !k.starts_with("$child:")),
        "bookkeeping keys stay out of the final context: {:?}",
        c.final_context.keys()
    );
}

#[tokio::test]
async fn a_pinned_version_runs_that_version() {
    let rt = runtime();
    let greet = |text: &str| json!({"nodes": [{"id": "g", "name": "Greet", "type": "log", "parameters": {"message": text}}], "edges": []});
    put(&rt, "greet", greet("first")).await;
    put(&rt, "greet", greet("second")).await;
    let pinned = rt
        .run(
            compile(&parent(json!({"workflow_id": "greet", "version": 1}))),
            "sub-v1",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        pinned.final_context["$After"]["message"],
        json!("child said first")
    );
    let latest = rt
        .run(
            compile(&parent(json!({"workflow_id": "greet"}))),
            "sub-latest",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        latest.final_context["$After"]["message"],
        json!("child said second")
    );
}

#[tokio::test]
async fn a_failed_child_takes_the_parents_error_route() {
    let rt = runtime();
    // The child's signal never comes: its timeout fails it (halting it).
    put(
        &rt,
        "flaky",
        json!({"nodes": [{"id": "w", "name": "Hold", "type": "wait", "parameters": {"mode": "signal", "signal": "never", "amount": 20, "unit": "milliseconds"}}], "edges": []}),
    )
    .await;
    let c = rt
        .run(
            compile(&parent(json!({"workflow_id": "flaky"}))),
            "sub-fail",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        c.status,
        ExecutionStatus::Completed,
        "the error route handled it: {c:?}"
    );
    let message = c.final_context["$Failed"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("SUBWORKFLOW_FAILED: sub-workflow `flaky`"),
        "{message}"
    );
    assert!(message.contains("halted"), "{message}");
    assert!(
        message.contains("SIGNAL_TIMEOUT"),
        "names the child's reason: {message}"
    );
    assert!(!c.final_context.contains_key("$After"));
}

#[tokio::test]
async fn an_unknown_workflow_fails_the_node_clearly() {
    let rt = runtime();
    let c = rt
        .run(
            compile(&parent(json!({"workflow_id": "nope"}))),
            "sub-unknown",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        c.final_context["$Failed"]["message"],
        json!("WORKFLOW_NOT_FOUND: workflow `nope` is not in the workflow catalog")
    );
}

#[tokio::test]
async fn a_workflow_that_starts_itself_stops_at_the_depth_limit() {
    let rt = runtime();
    let looping = json!({
        "nodes": [{"id": "again", "name": "Again", "type": "workflow", "parameters": {"workflow_id": "loop"}}],
        "edges": []
    });
    put(&rt, "loop", looping.clone()).await;
    let mut events = rt.events().subscribe();
    let c = rt
        .run(compile(&looping), "sub-loop", json!({}))
        .await
        .unwrap();
    assert_eq!(c.status, ExecutionStatus::Halted, "{c:?}");
    let reason = c.failure_reason.unwrap_or_default();
    assert!(
        reason.contains("sub-workflow depth limit 8 reached"),
        "the innermost failure surfaces: {reason}"
    );
    // The top level plus 8 nested children ran, and no more.
    let mut executions = HashSet::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Status(s) = event {
            executions.insert(s.execution_id);
        }
    }
    assert_eq!(executions.len(), 9, "{executions:?}");
}

#[tokio::test]
async fn cancelling_the_parent_cancels_its_running_child() {
    let rt = runtime();
    put(&rt, "slow", waiting_child()).await;
    let wf = compile(&parent(
        json!({"workflow_id": "slow", "input": {"who": "x"}}),
    ));
    let mut events = rt.events().subscribe();
    let done = rt
        .submit(wf.clone(), "sub-cancel", json!({}))
        .await
        .unwrap();
    let child = child_started(&mut events, "sub").await;
    node_waiting(&mut events, &child, "w").await;
    let child_done = rt.events().completion_of(&child);

    assert!(rt.cancel(&wf, "sub-cancel").await.unwrap());
    let c = finished(done).await;
    assert_eq!(c.status, ExecutionStatus::Halted);
    let child_c = finished(child_done).await;
    assert_eq!(child_c.status, ExecutionStatus::Halted);
    assert_eq!(
        child_c.failure_reason.as_deref(),
        Some("parent execution `sub-cancel` stopped")
    );
    // The halted child's completion does not resume the cancelled parent.
    assert_eq!(rt.signal(&child, "go", json!({})).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(event) = events.try_recv() {
        if let Event::Status(s) = event {
            assert!(
                !(s.execution_id == "sub-cancel" && s.node_id == "after"),
                "the cancelled parent went on: {s:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_redelivered_hop_does_not_start_a_second_child() {
    let rt = runtime();
    put(&rt, "slow", waiting_child()).await;
    let wf = compile(&parent(
        json!({"workflow_id": "slow", "input": {"who": "bob"}}),
    ));
    let mut events = rt.events().subscribe();
    let done = rt
        .submit(wf.clone(), "sub-redeliver", json!({}))
        .await
        .unwrap();
    let child = child_started(&mut events, "sub").await;

    // The broker hands the workflow node's message over again (the worker died before acking).
    let again = HopMessage {
        execution_id: "sub-redeliver".into(),
        workflow_id: "embedded".into(),
        workflow_ref: wf.reference.clone(),
        node_id: "sub".into(),
        kind: HopKind::Run,
        from_node: None,
        from_edge: None,
        lineage: Vec::new(),
        attempt: 1,
        traceparent: None,
    };
    rt.engine().handle(again).await.expect("handled");
    node_waiting(&mut events, &child, "w").await;
    assert_eq!(rt.signal(&child, "go", json!({})).await.unwrap(), 1);
    let c = finished(done).await;
    assert_eq!(c.status, ExecutionStatus::Completed, "{c:?}");
    assert_eq!(
        c.final_context["$After"]["message"],
        json!("child said hello bob")
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut executions = HashSet::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Status(s) = event {
            executions.insert(s.execution_id);
        }
    }
    executions.insert(child.clone());
    executions.insert("sub-redeliver".into());
    assert_eq!(executions.len(), 2, "one parent, one child: {executions:?}");
}

#[tokio::test]
async fn fire_and_forget_continues_at_once_with_the_child_id() {
    let rt = runtime();
    put(&rt, "slow", waiting_child()).await;
    let doc = json!({
        "nodes": [
            {"id": "sub", "name": "Sub", "type": "workflow", "parameters": {"workflow_id": "slow", "wait": false, "input": {"who": "eve"}}},
            {"id": "after", "name": "After", "type": "log", "parameters": {"message": "started {{$Sub.execution_id}}"}}
        ],
        "edges": [{"id": "e1", "src": "sub", "dst": "after"}]
    });
    let c = rt
        .run(compile(&doc), "sub-forget", json!({}))
        .await
        .unwrap();
    assert_eq!(
        c.status,
        ExecutionStatus::Completed,
        "the parent does not wait: {c:?}"
    );
    let child = c.final_context["$Sub"]["execution_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(c.final_context["$Sub"]["workflow_id"], json!("slow"));
    assert_eq!(c.final_context["$Sub"]["version"], json!(1));
    let child_done = rt.events().completion_of(&child);
    // The child runs on by itself.
    let mut delivered = 0;
    for _ in 0..100 {
        delivered = rt.signal(&child, "go", json!({})).await.unwrap();
        if delivered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered, 1, "the child waits for its signal");
    let child_c = finished(child_done).await;
    assert_eq!(child_c.status, ExecutionStatus::Completed);
    assert_eq!(
        child_c.final_context["$Greet"]["message"],
        json!("hello eve")
    );
    assert_eq!(child_c.final_context["$parent"]["depth"], json!(1));
}

/// An engine built without `with_catalog` (another helper's embedding, say) fails the node
/// with a clear error instead of hanging or crashing.
#[tokio::test]
async fn without_a_catalog_the_node_fails_clearly() {
    use baton_engine::Engine;
    use baton_memory::{MemoryDefinitions, MemoryEvents, MemoryQueue, MemoryStore};

    let (queue, mut messages) = MemoryQueue::new();
    let events = Arc::new(MemoryEvents::new());
    let definitions = Arc::new(MemoryDefinitions::default());
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(queue),
        events.clone(),
        definitions.clone(),
        Arc::new(baton_nodes::registry()),
    );
    let wf = compile(&parent(json!({"workflow_id": "greet"})));
    definitions.insert(wf.reference.clone(), wf.clone());
    let done = events.completion_of("no-catalog");
    let request = baton_engine::StartRequest {
        workflow_id: "parent".into(),
        execution_id: "no-catalog".into(),
        ..Default::default()
    };
    engine.start(&wf, request).await.expect("started");
    let c = tokio::time::timeout(BOUND, async {
        let mut done = done;
        loop {
            tokio::select! {
                Some(msg) = messages.recv() => { engine.handle(msg).await.expect("hop"); }
                c = &mut done => return c.expect("completion"),
            }
        }
    })
    .await
    .expect("completes in time");
    assert_eq!(c.status, ExecutionStatus::Completed, "{c:?}");
    let message = c.final_context["$Failed"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("NO_WORKFLOW_CATALOG: no workflow catalog configured"),
        "{message}"
    );
}

/// A child failure is retryable: each attempt of the node starts a new child, and the error
/// route is taken once the attempts are used up.
#[tokio::test]
async fn a_retried_node_starts_a_new_child_per_attempt() {
    let rt = runtime();
    put(
        &rt,
        "flaky",
        json!({"nodes": [{"id": "w", "name": "Hold", "type": "wait", "parameters": {"mode": "signal", "signal": "never", "amount": 10, "unit": "milliseconds"}}], "edges": []}),
    )
    .await;
    let mut doc = parent(json!({"workflow_id": "flaky"}));
    doc["nodes"][0]["retry"] = json!({"max_attempts": 3, "initial_delay_ms": 5, "jitter": false});
    let mut events = rt.events().subscribe();
    let c = rt.run(compile(&doc), "sub-retry", json!({})).await.unwrap();
    assert_eq!(c.status, ExecutionStatus::Completed, "{c:?}");
    assert!(
        c.final_context["$Failed"]["message"]
            .as_str()
            .unwrap()
            .starts_with("SUBWORKFLOW_FAILED"),
        "{c:?}"
    );
    let mut children = HashSet::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Status(s) = event
            && s.execution_id != "sub-retry"
        {
            children.insert(s.execution_id);
        }
    }
    assert_eq!(children.len(), 3, "one child per attempt: {children:?}");
}
