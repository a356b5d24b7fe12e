//! The worker pool's egress policy, black-box: a `baton worker` denies private addresses
//! (here a name resolving to 127.0.0.1) unless `BATON_EGRESS_ALLOW_PRIVATE` (or its former
//! name `BATON_HTTP_ALLOW_PRIVATE_NETWORKS`) is true; `BATON_EGRESS_ALLOW` cannot admit
//! loopback.

mod common;

use std::time::Duration;

use common::distributed::{Cluster, TestApi, completion_of};
use serde_json::{Value, json};

fn call_local_api(port: u16) -> Value {
    json!({"name": "http-policy", "version": 1,
        "nodes": [
            {"id": "call", "name": "Call", "type": "http",
             "parameters": {"url": format!("http://localhost:{port}/step/1")}}
        ],
        "edges": []})
}

async fn run_on_one_worker(allow_private: &str, workflow: &Value) -> Value {
    run_with_env(
        &[("BATON_HTTP_ALLOW_PRIVATE_NETWORKS", allow_private)],
        workflow,
    )
    .await
}

async fn run_with_env(env: &[(&str, &str)], workflow: &Value) -> Value {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(env).await;
    let file = cluster.workflow_file("http-policy.json", workflow);
    let out = cluster
        .submit(&file, &json!({}), &["--wait", "--timeout-secs", "120"])
        .await;
    completion_of(&out, &cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_denies_private_addresses_unless_its_setting_allows_them() {
    let api = TestApi::start(Duration::ZERO);
    let workflow = call_local_api(api.port);

    let denied = run_on_one_worker("false", &workflow).await;
    assert_ne!(denied["status"], "completed", "{denied:#}");
    let reason = denied["failure_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("HTTP_HOST_DENIED") && reason.contains("private networks"),
        "reason: {reason:?}"
    );
    assert!(
        api.calls().is_empty(),
        "the API was called: {:?}",
        api.calls().len()
    );

    let allowed = run_on_one_worker("true", &workflow).await;
    assert_eq!(allowed["status"], "completed", "{allowed:#}");
    assert_eq!(
        allowed["final_context"]["$Call"]["status"], 200,
        "{allowed:#}"
    );
    assert_eq!(api.calls().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_cannot_admit_loopback_but_the_development_switch_can() {
    let api = TestApi::start(Duration::ZERO);
    let workflow = call_local_api(api.port);

    let listed = run_with_env(
        &[
            ("BATON_HTTP_ALLOW_PRIVATE_NETWORKS", "false"),
            ("BATON_EGRESS_ALLOW", "127.0.0.0/8,localhost"),
        ],
        &workflow,
    )
    .await;
    assert_ne!(listed["status"], "completed", "{listed:#}");
    let reason = listed["failure_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("HTTP_HOST_DENIED") && reason.contains("BATON_EGRESS_ALLOW_PRIVATE"),
        "reason: {reason:?}"
    );
    assert!(api.calls().is_empty());

    let switched = run_with_env(
        &[
            ("BATON_HTTP_ALLOW_PRIVATE_NETWORKS", "false"),
            ("BATON_EGRESS_ALLOW_PRIVATE", "true"),
        ],
        &workflow,
    )
    .await;
    assert_eq!(switched["status"], "completed", "{switched:#}");
    assert_eq!(api.calls().len(), 1);
}
