//! A RabbitMQ restart in the middle of an execution. The test starts a RabbitMQ node of its own
//! (`common::distributed::RabbitNode`: own node name, ports and data directory), so the shared
//! broker other tests use is never restarted. The test name contains `broker_restart`, which
//! `.config/nextest.toml` runs one at a time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::distributed::{BOUND, Cluster, RabbitNode, new_execution_id};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_during_a_wait_still_completes_the_execution_once() {
    if !RabbitNode::available() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true: rabbitmq-server must be installed for this test"
        );
        eprintln!("SKIPPED: rabbitmq-server/rabbitmqctl are not installed");
        return;
    }
    let t0 = std::time::Instant::now();
    // Declared before the cluster: dropped after it, so the cluster's cleanup still reaches it.
    let node = Arc::new(
        tokio::task::spawn_blocking(RabbitNode::start)
            .await
            .unwrap(),
    );
    eprintln!(
        "[{:?}] RabbitMQ node {} up on port {}",
        t0.elapsed(),
        node.name,
        node.port
    );
    let mut cluster = Cluster::with_amqp_url(node.amqp_url());
    let a = cluster.spawn_worker(&[]).await;
    let b = cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut statuses = cluster
        .consume(&broker, &cluster.topology.status_queue)
        .await;
    let workflow = json!({"name": "wait-over-restart", "version": 1,
        "nodes": [
            {"id": "begin", "name": "Begin", "type": "log", "parameters": {"message": "begin"}},
            {"id": "wait", "name": "Pause", "type": "wait", "parameters": {"amount": 3, "unit": "seconds"}},
            {"id": "after", "name": "After", "type": "log", "parameters": {"message": "after the restart"}}
        ],
        "edges": [{"id": "e1", "src": "begin", "dst": "wait"}, {"id": "e2", "src": "wait", "dst": "after"}]});
    let file = cluster.workflow_file("wait.json", &workflow);
    let execution_id = new_execution_id();
    let out = cluster
        .submit(&file, &json!({}), &["--execution-id", &execution_id])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = || cluster.logs();
    statuses
        .wait_for(
            &execution_id,
            BOUND,
            |v| v["node_id"] == "wait" && v["status"] == "waiting",
            &logs,
        )
        .await;
    eprintln!("[{:?}] the wait node is waiting", t0.elapsed());

    // Restart the broker while the timer is pending.
    let restarted = node.clone();
    tokio::task::spawn_blocking(move || {
        restarted.stop();
        restarted.boot();
    })
    .await
    .unwrap();
    eprintln!("[{:?}] RabbitMQ node restarted", t0.elapsed());

    let completion = completions
        .next_for(&execution_id, Duration::from_secs(120), &logs)
        .await;
    eprintln!("[{:?}] completion received", t0.elapsed());
    assert_eq!(completion["status"], "completed", "{completion:#}");
    assert_eq!(
        completion["final_context"]["$After"]["message"], "after the restart",
        "{completion:#}"
    );
    for w in [a, b] {
        assert!(
            cluster.wait_ready(w, BOUND).await,
            "worker {w} is ready again\n{}",
            cluster.logs()
        );
    }
    let later: Vec<Value> = completions
        .drain(Duration::from_secs(3))
        .await
        .iter()
        .map(|s| s.json())
        .collect();
    assert!(
        later
            .iter()
            .all(|c| c["execution_id"] != execution_id.as_str()),
        "a second completion: {later:#?}"
    );
    broker.close().await;
    eprintln!("[{:?}] done; cleaning up", t0.elapsed());
}
