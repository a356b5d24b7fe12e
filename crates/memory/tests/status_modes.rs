//! Status modes on the embedded runtime (RFC 0011): `full` sends `running` and the final status
//! of every node with its output, `compact` one final record per node run (no `running`, the
//! output named by reference, not carried), `off` only the completion; a workflow's
//! `status_mode` lowers the runtime's mode, never raises it.

mod support;

use std::sync::Arc;

use baton_core::message::{NodeStatus, StatusMode};
use baton_engine::SystemClock;
use baton_memory::{EmbeddedRuntime, MemoryCatalog};
use serde_json::{Value, json};
use support::*;

fn chain(mode: Option<&str>) -> Value {
    let mut doc = workflow(
        vec![log("a", "one"), log("b", "two"), log("c", "three")],
        vec![edge("a", "b"), edge("b", "c")],
    );
    if let Some(mode) = mode {
        doc["status_mode"] = json!(mode);
    }
    doc
}

fn harness(mode: StatusMode) -> Harness {
    Harness::with_runtime(EmbeddedRuntime::start_with_status_mode(
        baton_nodes::registry(),
        16,
        None,
        Arc::new(MemoryCatalog::new()),
        Arc::new(SystemClock),
        mode,
    ))
}

#[tokio::test]
async fn full_mode_sends_running_and_the_final_status_with_the_output_of_every_node() {
    let h = Harness::new();
    let done = h.run(&chain(None), "full-1", json!({})).await;
    assert_eq!(done.status.as_str(), "completed");
    for node in ["a", "b", "c"] {
        assert_eq!(
            h.sequence("full-1", node),
            vec![NodeStatus::Running, NodeStatus::Success],
            "{node}"
        );
        let last = h.statuses_of("full-1", node).pop().expect("a final status");
        assert!(last.output.is_some(), "{node}: {last:?}");
    }
}

#[tokio::test]
async fn a_compact_workflow_sends_one_final_status_per_node_run_without_the_output() {
    let h = Harness::new();
    let done = h.run(&chain(Some("compact")), "compact-1", json!({})).await;
    assert_eq!(done.status.as_str(), "completed");
    for node in ["a", "b", "c"] {
        let statuses = h.statuses_of("compact-1", node);
        assert_eq!(statuses.len(), 1, "{node}: {statuses:?}");
        assert_eq!(statuses[0].status, NodeStatus::Success);
        assert!(statuses[0].output.is_none() && statuses[0].parameters.is_none());
        assert!(!statuses[0].executed_at.is_empty());
    }
    assert!(
        done.final_context.contains_key("$b"),
        "the output stays in the context"
    );
}

#[tokio::test]
async fn an_off_workflow_sends_only_its_completion() {
    let h = Harness::new();
    let done = h.run(&chain(Some("off")), "off-1", json!({})).await;
    assert_eq!(done.status.as_str(), "completed");
    assert!(h.statuses("off-1").is_empty(), "{:?}", h.statuses("off-1"));
    assert_eq!(h.completions("off-1").len(), 1);
}

#[tokio::test]
async fn a_workflow_asking_for_more_than_the_runtime_allows_gets_the_runtimes_mode() {
    let compact = harness(StatusMode::Compact);
    compact.run(&chain(Some("full")), "more-1", json!({})).await;
    assert_eq!(
        compact.sequence("more-1", "b"),
        vec![NodeStatus::Success],
        "compact, not full"
    );
    let off = harness(StatusMode::Off);
    off.run(&chain(Some("compact")), "more-2", json!({})).await;
    assert!(off.statuses("more-2").is_empty());
    assert_eq!(off.completions("more-2").len(), 1);
}

#[tokio::test]
async fn a_failing_node_in_compact_mode_reports_its_error_once() {
    let h = Harness::new();
    let mut doc = workflow(vec![http("bad", "http://127.0.0.1:1/")], vec![]);
    doc["status_mode"] = json!("compact");
    let done = h.run(&doc, "compact-fail", json!({})).await;
    assert_ne!(done.status.as_str(), "completed");
    let statuses = h.statuses_of("compact-fail", "bad");
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0].status, NodeStatus::Failed);
    assert!(statuses[0].error.is_some());
}
