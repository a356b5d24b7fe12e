//! The worker pool's `http` policy, black-box: a `baton worker` denies private addresses
//! (here a name resolving to 127.0.0.1) unless `BATON_HTTP_ALLOW_PRIVATE_NETWORKS` is true.

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
    let mut cluster = Cluster::new();
    cluster
        .spawn_worker(&[("BATON_HTTP_ALLOW_PRIVATE_NETWORKS", allow_private)])
        .await;
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
