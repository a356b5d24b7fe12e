//! A Redis Cluster failover under running hops, on quorum queues (whose broker counts every
//! return of a message, hand-backs included). While the killed primary's replica takes over,
//! every node answers `CLUSTERDOWN`: the hops that meet it are handed back, and each hand-back
//! is recorded in Redis before the message goes back (it waits for Redis to answer), so the
//! delivery budget does not take the failover for crashed workers. Every execution completes
//! and nothing is dead-lettered. Found by the failover suite: one execution of 90 ended
//! `failed` because its hand-backs during the failover went unrecorded.
//!
//! The Redis Cluster is the test's own (`scripts/cluster`, Redis only); the budget is 1, so
//! that a single unrecorded hand-back would spend it (before the fix the failover left two or
//! three unrecorded: `delivery budget spent crashes=2 counted_by=x-delivery-count`).

mod common;

use std::time::Duration;

use baton_amqp::QueueType;
use baton_testkit::RedisCluster;
use common::distributed::{BOUND, Cluster, TestApi, new_execution_id, sequential_http_workflow};
use common::failover::{port_of, role};
use serde_json::json;

const EXECUTIONS: usize = 8;

/// SIGKILLs the primary that holds `execution_id`'s keys (so that the failover meets that
/// execution's hops: a primary picked blindly held none of 8 executions once in CI); returns
/// its port.
fn kill_the_primary_of(cluster: &RedisCluster, execution_id: &str) -> u16 {
    // The keys' hash tag is the execution id: its slot is that string's.
    let query = |node: &str, cmd: &mut redis::Cmd| -> Option<i64> {
        let client = redis::Client::open(node.trim()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        cmd.query(&mut conn).ok()
    };
    let nodes: Vec<&str> = cluster.url.split(',').collect();
    let slot = nodes
        .iter()
        .find_map(|n| query(n, redis::cmd("CLUSTER").arg("KEYSLOT").arg(execution_id)))
        .expect("CLUSTER KEYSLOT");
    for node in nodes {
        let Some(port) = port_of(node) else { continue };
        let holds = query(node, redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot))
            .is_some_and(|n| n > 0);
        if role(node).as_deref() != Some("master") || !holds {
            continue;
        }
        let pid = cluster
            .pid_of(port)
            .unwrap_or_else(|| panic!("no pid file for the node on port {port}"));
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL {pid}");
        return port;
    }
    panic!(
        "no Redis primary holds slot {slot} of {execution_id} in {}",
        cluster.url
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_failover_under_running_hops_spends_no_delivery_budget_on_quorum_queues() {
    let redis = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .expect("start thread")
        .expect("start a Redis Cluster of the test's own");
    let env = [
        ("BATON_QUEUE_TYPE", QueueType::Quorum.as_str()),
        ("BATON_MAX_DELIVERIES", "1"),
    ];
    let api = TestApi::start(Duration::ZERO);
    api.hold("/step/2");
    let mut cluster = Cluster::new();
    cluster.redis_url = redis.url.clone();
    cluster.spawn_worker(&env).await;
    let broker = cluster.broker_for(QueueType::Quorum).await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut dead_letters = cluster
        .consume(&broker, &cluster.topology.dead_letter_queue)
        .await;

    let file = cluster.workflow_file("failover.json", &sequential_http_workflow("failover", 3));
    let mut ids = Vec::new();
    for _ in 0..EXECUTIONS {
        let execution_id = new_execution_id();
        let mut submit = cluster.command();
        submit
            .env("BATON_QUEUE_TYPE", QueueType::Quorum.as_str())
            .arg("submit")
            .arg(&file)
            .arg("--input")
            .arg(json!({"base_url": api.url}).to_string())
            .args(["--execution-id", &execution_id]);
        let out = cluster.output(submit).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.push(execution_id);
    }

    // Every execution is in Step 2 (its call held) when a primary dies; the calls answer at
    // once, so the hops' commits meet the cluster while it fails over.
    let logs = || cluster.logs();
    let deadline = std::time::Instant::now() + BOUND;
    while api.counts().get("/step/2").copied().unwrap_or(0) < EXECUTIONS {
        assert!(
            std::time::Instant::now() < deadline,
            "not every execution reached Step 2: {:?}\n{}",
            api.counts(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = kill_the_primary_of(&redis, &ids[0]);
    eprintln!("SIGKILLed the Redis primary on port {killed}");
    api.release();

    let mut ended = std::collections::BTreeMap::new();
    while ended.len() < EXECUTIONS {
        let Some(seen) = completions.next(BOUND).await else {
            panic!("completions: {ended:#?}\n{}", logs());
        };
        let completion = seen.json();
        let id = completion["execution_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            ids.contains(&id),
            "a completion of another run: {completion:#}"
        );
        assert_eq!(
            completion["status"],
            "completed",
            "{completion:#}\n{}",
            logs()
        );
        assert!(
            ended.insert(id, completion).is_none(),
            "a second completion"
        );
    }
    assert!(
        logs().contains("hop failed on infrastructure; handing it back"),
        "the failover met no hop: the test saw nothing\n{}",
        logs()
    );
    assert!(
        dead_letters.next(Duration::from_secs(1)).await.is_none(),
        "nothing is dead-lettered\n{}",
        logs()
    );
    // The cluster's own cleanup declares classic queues: delete these first, once no worker
    // re-declares them.
    for w in cluster.running() {
        cluster.kill(w);
    }
    let _ = broker.delete_topology().await;
    broker.close().await;
    drop(cluster);
    drop(redis);
}
