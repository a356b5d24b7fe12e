//! Issue 14 on the worker pool, black-box: a signal that resolves a wait with a long timeout
//! completes the execution at once and leaves no timer behind; an aggregator straight after
//! its split gives the items; `submit --execution-id X --wait` on a finished id answers at once.
//! Every test has its own queue and key prefixes (see `common::distributed`).

mod common;

use common::distributed::{BOUND, Cluster, completion_of, new_execution_id};
use serde_json::{Value, json};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Pending timers in the cluster's Redis (the durable timer store).
async fn pending_timers(cluster: &Cluster) -> u64 {
    let options = baton_redis::RedisOptions {
        key_prefix: cluster.key_prefix.clone(),
        ..Default::default()
    };
    baton_redis::RedisStore::connect(&cluster.redis_url, options)
        .await
        .expect("Redis")
        .timers()
        .pending()
        .await
        .expect("timer count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_before_a_ten_minute_timeout_completes_at_once_and_removes_the_timer() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let mut statuses = cluster
        .subscribe(&broker, &[&cluster.topology.status_queue])
        .await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let file = cluster.workflow_file(
        "approval.json",
        &json!({"name": "approval", "nodes": [
            {"id": "w", "name": "Approval", "type": "wait",
             "parameters": {"mode": "signal", "signal": "approve", "amount": 10, "unit": "minutes"}},
            {"id": "ok", "name": "Approved", "type": "log", "parameters": {"message": "by {{$Approval.data.by}}"}}
        ], "edges": [{"id": "e1", "src": "w", "dst": "ok"}]}),
    );
    let id = new_execution_id();
    let out = cluster
        .submit(&file, &json!({}), &["--execution-id", &id])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = || cluster.logs();
    statuses
        .wait_for(&id, BOUND, |s| s["status"] == "waiting", &logs)
        .await;
    assert_eq!(
        pending_timers(&cluster).await,
        1,
        "the timeout is scheduled"
    );

    let mut signal = cluster.command();
    signal
        .arg("signal")
        .arg(&id)
        .arg("approve")
        .arg("--data")
        .arg(r#"{"by": "ada"}"#);
    let sent = cluster.output(signal).await;
    assert!(sent.status.success(), "{}", stderr(&sent));

    // Well before the ten minutes: the signal released the timeout.
    let c = completions.next_for(&id, BOUND, &logs).await;
    assert_eq!(c["status"], "completed", "{c:#}");
    assert_eq!(
        c["final_context"]["$Approved"]["message"], "by ada",
        "{c:#}"
    );
    assert!(c["total_duration_ms"].as_u64().unwrap() < 600_000, "{c:#}");
    assert_eq!(
        pending_timers(&cluster).await,
        0,
        "the timeout timer is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_straight_after_a_split_gives_the_items_on_the_pool() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    let file = cluster.workflow_file(
        "split.json",
        &json!({"name": "split-agg", "nodes": [
            {"id": "s", "name": "Items", "type": "split", "parameters": {"input_array": "$input.items"}},
            {"id": "a", "name": "Collect", "type": "aggregator", "parameters": {}}
        ], "edges": [{"id": "e1", "src": "s", "dst": "a"}]}),
    );
    let out = cluster
        .submit(
            &file,
            &json!({"items": ["item1", "item2", "item3"]}),
            &["--wait", "--timeout-secs", "120"],
        )
        .await;
    let c = completion_of(&out, &cluster);
    assert_eq!(c["status"], "completed", "{c:#}");
    assert_eq!(
        c["final_context"]["$Collect"]["aggregated"],
        json!(["item1", "item2", "item3"]),
        "{c:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_on_a_finished_execution_id_prints_its_completion_at_once() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    let file = cluster.workflow_file(
        "hello.json",
        &json!({"name": "hello", "nodes": [
            {"id": "l", "name": "Hello", "type": "log", "parameters": {"message": "hi {{$input.who}}"}}
        ], "edges": []}),
    );
    let id = new_execution_id();
    let wait = [
        "--execution-id",
        id.as_str(),
        "--wait",
        "--timeout-secs",
        "120",
    ];
    let first = completion_of(
        &cluster.submit(&file, &json!({"who": "ada"}), &wait).await,
        &cluster,
    );
    assert_eq!(first["status"], "completed", "{first:#}");

    // Same id again: not run again, and not a wait for a completion that was sent already
    // (that would end with "no completion within 120 s" and exit 1).
    let again = cluster.submit(&file, &json!({"who": "bob"}), &wait).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stderr(&again).contains(&format!(
            "execution {id} already finished with status completed"
        )),
        "{}",
        stderr(&again)
    );
    let c: Value = completion_of(&again, &cluster);
    assert_eq!(c["already_finished"], true, "{c:#}");
    assert_eq!(c["execution_id"], id.as_str());
    assert_eq!(
        c["final_context"]["$Hello"]["message"], "hi ada",
        "the first run's context"
    );

    let no_wait = cluster
        .submit(&file, &json!({}), &["--execution-id", &id])
        .await;
    assert_eq!(no_wait.status.code(), Some(1), "{}", stderr(&no_wait));
    assert!(
        stderr(&no_wait).contains("already finished"),
        "{}",
        stderr(&no_wait)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_past_its_deadline_fails_with_the_reason_on_the_pool() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let file = cluster.workflow_file(
        "deadline.json",
        &json!({"name": "deadline", "timeout_ms": 1500, "nodes": [
            {"id": "w", "name": "Pause", "type": "wait", "parameters": {"amount": 10, "unit": "minutes"}},
            {"id": "l", "name": "After", "type": "log", "parameters": {"message": "too late"}}
        ], "edges": [{"id": "e1", "src": "w", "dst": "l"}]}),
    );
    let out = cluster
        .submit(&file, &json!({}), &["--wait", "--timeout-secs", "120"])
        .await;
    let c = completion_of(&out, &cluster);
    assert_eq!(c["status"], "failed", "{c:#}");
    assert_eq!(
        c["failure_reason"], "execution exceeded its deadline of 1500 ms [EXECUTION_TIMEOUT]",
        "{c:#}"
    );
    assert!(c["final_context"].get("$After").is_none(), "{c:#}");
    assert_eq!(out.status.code(), Some(1));
}
