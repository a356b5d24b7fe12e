//! The master's history in each status mode (RFC 0011): `full` as always; `compact` (one record
//! per node run, batched) gives every node its timing, and its output from the final context;
//! `off` (completions only) shows each node that left an output in the final context.

mod common;

use baton_core::message::StatusMode;
use common::*;
use serde_json::{Value, json};

async fn history_of(mode: StatusMode, workflow: Value) -> Value {
    let env = Env::start_with_worker(|_| {}, |w| w.status_mode = mode).await;
    env.put_workflow(workflow).await;
    let id = env.run("hello", json!({"name": "Ada"})).await;
    env.wait_for(&id, |v| {
        v["status"] == "completed"
            && v["nodes"]["greet"]["status"] == "success"
            && v["nodes"]["done"]["status"] == "success"
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_compact_statuses_the_history_shows_every_node_with_timing_and_output() {
    let view = history_of(StatusMode::Compact, hello("hello")).await;
    let greet = &view["nodes"]["greet"];
    assert_eq!(greet["output"]["message"], "Hello Ada", "{view:#}");
    assert!(greet["started_at"].is_string() && greet["executed_at"].is_string());
    assert!(greet["duration_ms"].is_u64(), "{view:#}");
    assert_eq!(greet["counts"]["success"], 1);
    assert_eq!(
        greet["parameters"],
        Value::Null,
        "compact carries no parameters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_statuses_off_the_history_shows_node_outputs_from_the_final_context() {
    let view = history_of(StatusMode::Off, hello("hello")).await;
    assert_eq!(
        view["nodes"]["greet"]["output"]["message"], "Hello Ada",
        "{view:#}"
    );
    assert_eq!(view["nodes"]["done"]["output"]["message"], "bye Hello Ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workflow_asking_for_compact_on_a_full_worker_is_shown_like_compact() {
    let mut workflow = hello("hello");
    workflow["status_mode"] = json!("compact");
    let view = history_of(StatusMode::Full, workflow).await;
    let greet = &view["nodes"]["greet"];
    assert_eq!(greet["output"]["message"], "Hello Ada", "{view:#}");
    assert_eq!(
        greet["parameters"],
        Value::Null,
        "no `running` event with parameters"
    );
}
