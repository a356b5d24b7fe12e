//! Duplicated hop messages absorbed at the next hop: a copy of a hop that already committed
//! publishes nothing again, and a copy of a hop another worker is running (under its claim)
//! does not run the node; it looks again when the claim expires and then finds the commit.
//! Side effects are counted per path by the test's HTTP server.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baton_amqp::Outgoing;
use baton_core::message::{HopKind, HopMessage};
use baton_engine::ports::ExecutionStore;
use baton_redis::{RedisOptions, RedisStore};
use baton_testkit::wait_until;
use common::distributed::{BOUND, Cluster, TestApi, new_execution_id, sequential_http_workflow};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_a_committed_hop_and_of_a_running_hop_run_no_node_twice() {
    const STEPS: usize = 4;
    let api = TestApi::start(Duration::from_millis(50));
    api.hold("/step/2");
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let queue = cluster.topology.execution_queue.clone();
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let file = cluster.workflow_file("steps.json", &sequential_http_workflow("steps", STEPS));
    let execution_id = new_execution_id();
    let out = cluster
        .submit(
            &file,
            &json!({"base_url": api.url}),
            &["--execution-id", &execution_id],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Step 2's request is held: step 1 committed and handed on, step 2 runs under a claim.
    api.wait_call("/step/2", BOUND, &|| cluster.logs()).await;
    let store = RedisStore::connect(
        &cluster.redis_url,
        RedisOptions {
            key_prefix: cluster.key_prefix.clone(),
            ..RedisOptions::default()
        },
    )
    .await
    .unwrap();
    // The hop messages of s1 and s2 exactly as the engine built them (hop messages go straight
    // to the queue, so a subscription does not see them): same hop ids as the originals.
    let identity = store
        .identity(&execution_id)
        .await
        .unwrap()
        .expect("started");
    let hop = |node: &str, from: Option<(&str, &str)>| HopMessage {
        execution_id: execution_id.clone(),
        workflow_id: identity.workflow_id.clone(),
        workflow_ref: identity.workflow_ref.clone(),
        node_id: node.into(),
        kind: HopKind::Run,
        from_node: from.map(|(n, _)| n.to_string()),
        from_edge: from.map(|(_, e)| e.to_string()),
        lineage: Vec::new(),
        attempt: 1,
        traceparent: None,
    };
    let copies = [hop("s1", None), hop("s2", Some(("s1", "e1")))];
    // Each published twice more, as a redelivery or a retried publish would.
    let dup: Vec<Outgoing> = copies
        .iter()
        .flat_map(|m| {
            let body = serde_json::to_vec(m).unwrap();
            [
                Outgoing::new(queue.clone(), body.clone()),
                Outgoing::new(queue.clone(), body),
            ]
        })
        .collect();
    broker.publish(dup).await.unwrap();
    // The copies of s2 meet the claim and schedule a re-check (durable timers in Redis).
    let timers = store.timers();
    let scheduled = wait_until(
        Instant::now() + BOUND,
        Duration::from_millis(50),
        async || timers.pending().await.ok().filter(|n| *n > 0),
    )
    .await;
    assert!(
        scheduled.is_some(),
        "a re-check was scheduled\n{}",
        cluster.logs()
    );
    api.release();

    let logs = || cluster.logs();
    let completion = completions.next_for(&execution_id, BOUND, &logs).await;
    assert_eq!(completion["status"], "completed", "{completion:#}");
    // The re-check fires once the claim's lease (10 s) is over; wait for it to be consumed.
    let fired = wait_until(
        Instant::now() + BOUND,
        Duration::from_millis(200),
        async || (timers.pending().await.ok() == Some(0)).then_some(()),
    )
    .await;
    assert!(fired.is_some(), "the re-check fired\n{}", cluster.logs());
    let later: Vec<Value> = completions
        .drain(QUIET)
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
    let expected: BTreeMap<String, usize> =
        (1..=STEPS).map(|i| (format!("/step/{i}"), 1)).collect();
    assert_eq!(api.counts(), expected, "calls per step: {:#?}", api.calls());
    broker.close().await;
}
