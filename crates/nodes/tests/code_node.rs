//! The `code` node in the registry (its behaviour is tested in `baton-sandbox`, whose
//! binary its scripts run in).

use baton_core::spec::NodeClass;
use baton_engine::{Node, NodeInput, NodeOutput};
use baton_nodes::code::CodeNode;
use serde_json::{Map, json};
use tokio_util::sync::CancellationToken;

#[test]
fn is_a_registered_action() {
    let registry = baton_nodes::registry();
    let node = registry.get("code").expect("code node");
    assert_eq!(node.spec().class, NodeClass::Action);
    let names: Vec<_> = node.spec().params.iter().map(|p| p.name).collect();
    assert_eq!(names, ["script", "inputs", "timeout_ms", "max_operations"]);
}

#[tokio::test]
async fn runs_in_process_only_when_asked_and_otherwise_names_why_the_sandbox_failed() {
    let params = json!({"script": "inputs.a * 2", "inputs": {"a": 21}});
    let context = Map::new();
    let cancel = CancellationToken::new();
    let input = || NodeInput {
        params: &params,
        context: &context,
        credentials: None,
        used_credential: None,
        execution_id: "exec-1",
        node_id: "node-1",
        node_name: "Script",
        attempt: 1,
        idempotency_key: "exec-1:node-1:1",
        cancel: &cancel,
        clock: &baton_engine::SystemClock,
    };
    let out = CodeNode::in_process(1).run(input()).await.unwrap();
    assert_eq!(out.into_value(), json!({"result": 42}));
    // This test binary has no `sandbox` subcommand: the default node fails, never runs the
    // script without its caps.
    let e = CodeNode::new()
        .run(input())
        .await
        .map(NodeOutput::into_value);
    let e = e.expect_err("ran without a sandbox");
    assert_eq!(e.code, baton_core::ErrorCode::Internal, "{e:?}");
    assert!(e.message.contains("code sandbox"), "{}", e.message);
}
