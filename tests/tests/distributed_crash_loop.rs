//! A hop that kills every worker that takes it (as an out-of-memory kill or an abort would) is
//! stopped by the delivery budget (`BATON_MAX_DELIVERIES`, default 3), counted durably: in
//! Redis on the classic queues the tests declare by default, and on quorum queues by the
//! broker's `x-delivery-count` and Redis (the larger wins). After three workers died running it, its next
//! delivery is dead-lettered with `crashed or stalled 3 workers`, its execution fails with one
//! completion naming the node, and the pool goes on.
//!
//! The HTTP node calls a local API that holds the request; the test SIGKILLs the worker that
//! made the call (found from the caller's TCP connection, `/proc`) and starts another, as an
//! orchestrator restarts a crashed pod.

mod common;

use std::time::Duration;

use baton_amqp::QueueType;
use common::distributed::{
    BOUND, Call, Cluster, TestApi, new_execution_id, owner_of, sequential_http_workflow,
};
use serde_json::{Value, json};

/// `baton submit` with the workers' queue type (its declaration must match theirs).
async fn submit(
    cluster: &Cluster,
    file: &std::path::Path,
    api: &TestApi,
    execution_id: &str,
    queue_type: QueueType,
) -> std::process::Output {
    let mut cmd = cluster.command();
    cmd.env("BATON_QUEUE_TYPE", queue_type.as_str())
        .arg("submit")
        .arg(file)
        .arg("--input")
        .arg(json!({"base_url": api.url}).to_string())
        .args(["--execution-id", execution_id]);
    cluster.output(cmd).await
}

/// The `n`-th call (1-based) to `path`; panics after `BOUND`.
async fn nth_call(api: &TestApi, path: &str, n: usize, cluster: &Cluster) -> Call {
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let calls: Vec<Call> = api.calls().into_iter().filter(|c| c.path == path).collect();
        if let Some(call) = calls.get(n - 1) {
            return call.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no call {n} to {path} within {BOUND:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hop_that_kills_every_worker_is_dead_lettered_after_three_and_its_execution_fails_once() {
    crash_loop(QueueType::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_quorum_queues_the_brokers_delivery_count_stops_the_crash_loop_after_three() {
    crash_loop(QueueType::Quorum).await;
}

async fn crash_loop(queue_type: QueueType) {
    const BUDGET: usize = 3;
    let env = [("BATON_QUEUE_TYPE", queue_type.as_str())];
    let api = TestApi::start(Duration::ZERO);
    api.hold("/step/1");
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&env).await;
    let broker = cluster.broker_for(queue_type).await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut dead_letters = cluster
        .consume(&broker, &cluster.topology.dead_letter_queue)
        .await;
    let file = cluster.workflow_file("loop.json", &sequential_http_workflow("loop", 1));
    let execution_id = new_execution_id();
    let out = submit(&cluster, &file, &api, &execution_id, queue_type).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every worker that runs Step 1 dies while it runs; an orchestrator starts another.
    for round in 1..=BUDGET {
        let call = nth_call(&api, "/step/1", round, &cluster).await;
        let victim = owner_of(&mut cluster, &call, &api)
            .await
            .unwrap_or_else(|| panic!("the worker holding call {round} (/proc)"));
        eprintln!("round {round}: SIGKILL {}", cluster.worker(victim).name);
        cluster.kill(victim);
        cluster.spawn_worker(&env).await;
    }

    let logs = || cluster.logs();
    let dead = dead_letters
        .next(BOUND)
        .await
        .unwrap_or_else(|| panic!("nothing dead-lettered\n{}", logs()));
    assert_eq!(
        dead.header("x-baton-reason"),
        Some("crashed or stalled 3 workers"),
        "{}",
        logs()
    );
    assert_eq!(dead.json()["node_id"], "s1", "the hop message is kept");
    let counted_by = match queue_type {
        QueueType::Classic => "counted_by=redis",
        // The broker's count starts again for a hop re-published as a re-check (a dead
        // worker's claim): Redis counts quorum redeliveries too, and the larger count wins.
        QueueType::Quorum => "counted_by=",
    };
    assert!(logs().contains(counted_by), "{counted_by}\n{}", logs());
    let completion = completions.next_for(&execution_id, BOUND, &logs).await;
    assert_eq!(completion["status"], "failed", "{completion:#}");
    assert_eq!(
        completion["failure_reason"], "node `s1`: crashed or stalled 3 workers",
        "{completion:#}"
    );
    assert_eq!(
        api.counts().get("/step/1"),
        Some(&BUDGET),
        "the hop ran on exactly {BUDGET} workers"
    );

    // The pool goes on: a normal execution completes, once; the worker is ready.
    api.release();
    let fine = new_execution_id();
    let file = cluster.workflow_file("fine.json", &sequential_http_workflow("fine", 2));
    let out = submit(&cluster, &file, &api, &fine, queue_type).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let completion = completions.next_for(&fine, BOUND, &logs).await;
    assert_eq!(completion["status"], "completed", "{completion:#}");
    let later: Vec<Value> = completions
        .drain(Duration::from_secs(3))
        .await
        .iter()
        .map(|s| s.json())
        .collect();
    assert!(
        later
            .iter()
            .all(|c| c["execution_id"] != execution_id.as_str()
                && c["execution_id"] != fine.as_str()),
        "a second completion: {later:#?}"
    );
    assert!(
        dead_letters.next(Duration::from_secs(1)).await.is_none(),
        "one dead letter only"
    );
    for i in cluster.running() {
        assert_eq!(
            cluster.readyz(i).await,
            Some(200),
            "{}",
            cluster.worker(i).name
        );
    }
    if queue_type == QueueType::Quorum {
        // The cluster's own cleanup declares classic queues: delete these first.
        let _ = broker.delete_topology().await;
    }
    broker.close().await;
}
