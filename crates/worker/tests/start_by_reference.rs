//! Starts by reference (RFC 0011) on a worker in this process, on the real RabbitMQ and Redis:
//! a start naming a stored definition by its content hash runs it; one naming a definition
//! that is not stored, or naming its workflow neither or both ways, is dead-lettered with its
//! reason and fails its execution with one completion, and the worker goes on (one prefetch
//! slot: no requeue loop).

mod common;

use baton_core::graph::content_hash;
use common::{Env, one_node};
use serde_json::{Value, json};

fn by_reference(workflow_id: &str, execution_id: &str, reference: &str) -> Value {
    json!({
        "workflow_id": workflow_id,
        "execution_id": execution_id,
        "current_node": "$start",
        "workflow_ref": reference,
        "accumulated_context": {"$input": {"n": 1}},
    })
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_by_reference_runs_the_stored_definition_to_completion() {
    let mut env = Env::start("start-ref", baton_nodes::registry()).await;
    let workflow = one_node("by-ref", "log");
    let reference = content_hash(&workflow);
    assert!(
        env.definitions
            .put(&reference, &workflow.to_string())
            .await
            .unwrap()
    );
    // The first start loads and compiles it from Redis, the second finds it compiled.
    for _ in 0..2 {
        let id = new_id();
        env.publish_start(&by_reference("by-ref", &id, &reference))
            .await;
        let completions = env.completions_of(&id).await;
        assert_eq!(completions.len(), 1, "{completions:?}");
        assert_eq!(completions[0]["status"], "completed", "{completions:?}");
        assert_eq!(completions[0]["final_context"]["$input"], json!({"n": 1}));
        assert!(
            completions[0]["final_context"].get("$Only").is_some(),
            "{completions:?}"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_by_an_unknown_reference_fails_its_execution_once_and_the_worker_goes_on() {
    let mut env = Env::start("start-ref-unknown", baton_nodes::registry()).await;
    let never_stored = content_hash(&json!({"never": "stored"}));
    let id = new_id();
    env.publish_start(&by_reference("lost", &id, &never_stored))
        .await;
    let (reason, body) = env.dead_letter().await;
    assert_eq!(
        reason,
        format!(
            "unknown workflow_ref `{never_stored}`: no definition is stored under it (expired, or never stored)"
        )
    );
    assert_eq!(body["execution_id"], id.as_str());
    let completions = env.completions_of(&id).await;
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0]["status"], "failed");
    let failure = completions[0]["failure_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(failure.contains("unknown workflow_ref"), "{failure}");
    // One prefetch slot: this runs only if the unknown reference's delivery was settled.
    let next = new_id();
    env.start_execution(&one_node("fine", "log"), &next).await;
    let completions = env.completions_of(&next).await;
    assert_eq!(completions[0]["status"], "completed", "{completions:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_naming_its_workflow_neither_or_both_ways_is_dead_lettered_naming_the_fields() {
    let mut env = Env::start("start-ref-shape", baton_nodes::registry()).await;
    let workflow = one_node("both", "log");
    let neither = new_id();
    let mut message = by_reference("neither", &neither, "");
    message.as_object_mut().unwrap().remove("workflow_ref");
    env.publish_start(&message).await;
    let (reason, _) = env.dead_letter().await;
    assert!(reason.contains("it has neither"), "{reason}");
    let completions = env.completions_of(&neither).await;
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0]["status"], "failed");

    let both = new_id();
    let mut message = by_reference("both", &both, &content_hash(&workflow));
    message["workflow_definition"] = workflow;
    env.publish_start(&message).await;
    let (reason, _) = env.dead_letter().await;
    assert!(
        reason.contains("has both `workflow_definition` and `workflow_ref`"),
        "{reason}"
    );
    let completions = env.completions_of(&both).await;
    assert_eq!(completions.len(), 1, "{completions:?}");
    let failure = completions[0]["failure_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        failure.contains("exactly one names the workflow"),
        "{failure}"
    );
    env.stop().await;
}
