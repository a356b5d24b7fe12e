//! The `workflow` node's parameter checks (what runs the child is the engine's, tested in
//! `baton-memory`'s `subworkflows` and the distributed tests).

use baton_core::ErrorCode;
use baton_engine::NodeError;
use baton_nodes::subworkflow::normalise;
use serde_json::json;

fn invalid(params: serde_json::Value) -> NodeError {
    let err = normalise(&params).expect_err("invalid parameters");
    assert_eq!(err.code, ErrorCode::InvalidParameter);
    assert!(!err.retryable, "bad parameters are not retried");
    err
}

#[test]
fn defaults_are_the_latest_version_an_empty_input_and_waiting() {
    assert_eq!(
        normalise(&json!({"workflow_id": " child "})).unwrap(),
        json!({"workflow_id": "child", "version": null, "input": {}, "wait": true})
    );
    assert_eq!(
        normalise(&json!({"workflow_id": "child", "version": 3, "input": [1, 2], "wait": false}))
            .unwrap(),
        json!({"workflow_id": "child", "version": 3, "input": [1, 2], "wait": false})
    );
}

#[test]
fn a_missing_or_empty_workflow_id_is_refused() {
    for params in [
        json!({}),
        json!({"workflow_id": ""}),
        json!({"workflow_id": 7}),
    ] {
        let err = invalid(params);
        assert!(err.message.contains("`workflow_id` is required"), "{err}");
    }
}

#[test]
fn a_version_must_be_a_positive_integer() {
    for bad in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!("2"),
        json!(5_000_000_000u64),
    ] {
        let err = invalid(json!({"workflow_id": "w", "version": bad}));
        assert!(err.message.contains("parameter `version`"), "{err}");
    }
}

#[test]
fn wait_must_be_a_boolean() {
    let err = invalid(json!({"workflow_id": "w", "wait": "yes"}));
    assert!(
        err.message
            .contains("parameter `wait`: expected true or false"),
        "{err}"
    );
}
