//! The replication fence (`BATON_REDIS_WAIT_MS`): on a Redis Cluster of the test's own, a
//! fenced write survives the SIGKILL of its primary; a fence whose replica does not answer
//! fails transient within its bound; a primary left without a replica does not stall the
//! fence. On a single node nothing is fenced: no `WAIT` is sent.

mod support;

use std::time::{Duration, Instant};

use baton_engine::contract::start_of;
use baton_engine::ports::{ExecutionStore, Lifecycle};
use baton_redis::{RedisOptions, RedisStore};
use baton_testkit::{RedisCluster, eventually, unique_prefix};
use serde_json::json;

const BOUND: Duration = Duration::from_secs(30);

async fn cluster_store(cluster: &RedisCluster, test: &str, wait_ms: u64) -> RedisStore {
    let options = RedisOptions {
        key_prefix: unique_prefix(test),
        replication_wait_ms: wait_ms,
        ..RedisOptions::default()
    };
    RedisStore::connect(&cluster.url, options)
        .await
        .unwrap_or_else(|e| panic!("Redis Cluster at {}: {e}", cluster.url))
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The port of the replica of the primary on `port`.
fn replica_of(port: u16) -> u16 {
    let me = redis_cli(port, &["cluster", "myid"]);
    redis_cli(port, &["cluster", "nodes"])
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(3) == Some(&me.as_str())).then(|| {
                let addr = f[1].split('@').next().unwrap_or_default();
                addr.rsplit(':').next().unwrap_or_default().parse().ok()
            })?
        })
        .expect("the primary has a replica")
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success(), "kill {sig} {pid}");
}

/// Starts executions until `want` of them live on the primary at `port`; returns their meta keys.
async fn executions_on(store: &RedisStore, port: u16, want: usize) -> Vec<(String, String)> {
    let mut on = Vec::new();
    for _ in 0..want * 20 {
        let start = start_of(json!({"$input": {"n": 1}}), 1);
        // Right after a failover a fence may fail once (transient: a hop would be retried).
        let started = eventually(BOUND, Duration::from_millis(50), async || {
            match store.start(&start).await {
                Ok(_) => true,
                Err(e) => {
                    assert!(e.is_transient(), "a fence error is transient: {e}");
                    false
                }
            }
        })
        .await;
        assert!(started, "a fenced start");
        let meta = format!("{}:{{{}}}:meta", store.prefix(), start.execution_id);
        if redis_cli(port, &["exists", &meta]) == "1" {
            on.push((start.execution_id, meta));
            if on.len() == want {
                return on;
            }
        }
    }
    panic!("only {} of {want} executions landed on {port}", on.len());
}

/// Writes confirmed by the fence and the primary SIGKILLed at once, with no wait for the
/// replica to catch up: every one of them is on the promoted replica. Then that node has no
/// replica: the fence must not wait its whole bound on it, write after write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_write_survives_the_sigkill_of_its_primary_and_a_lone_primary_does_not_stall() {
    let cluster = RedisCluster::start().expect("a Redis Cluster of the test's own");
    let wait_ms = 1_000;
    let store = cluster_store(&cluster, "fence-kill", wait_ms).await;
    let victim = cluster.base_port;
    let replica = replica_of(victim);
    let written = executions_on(&store, victim, 20).await;
    let counts = store.fence_counts().expect("cluster mode fences");
    assert!(counts.acked >= 20, "every start was fenced: {counts:?}");
    assert_eq!(counts.failed, 0, "{counts:?}");

    signal(cluster.pid_of(victim).expect("the victim's pid file"), "-9");
    let promoted = eventually(BOUND, Duration::from_millis(100), async || {
        redis_cli(replica, &["role"]).starts_with("master")
    })
    .await;
    assert!(promoted, "the replica took over");
    for (id, meta) in &written {
        assert_eq!(
            redis_cli(replica, &["exists", meta]),
            "1",
            "{id}, acknowledged before the kill, is on the promoted replica"
        );
    }

    // The promoted replica has no replica of its own: its writes are fenced at once (one
    // `WAIT` finds that out, then the node is not waited on for a while).
    let readable = eventually(BOUND, Duration::from_millis(100), async || {
        store.lifecycle(&written[0].0).await.is_ok()
    })
    .await;
    assert!(readable, "the store follows the failover");
    let before = store.fence_counts().expect("cluster mode fences");
    let began = Instant::now();
    let alone = executions_on(&store, replica, 10).await;
    let took = began.elapsed();
    let after = store.fence_counts().expect("cluster mode fences");
    assert_eq!(alone.len(), 10);
    assert!(
        after.no_replica >= before.no_replica + 10,
        "writes on the lone primary pass the fence without a replica: {before:?} → {after:?}"
    );
    assert!(
        took < Duration::from_millis(10 * wait_ms / 2),
        "10 writes on a lone primary took {took:?}: the fence waited its bound on each"
    );
    for (id, _) in &alone {
        assert_eq!(store.lifecycle(id).await.unwrap(), Lifecycle::Running);
    }
}

/// A replica that does not answer (SIGSTOPped): the fence fails within its bound with a
/// transient error (the hop would be handed back and retried), and passes again once the
/// replica is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fence_whose_replica_does_not_answer_fails_transient_within_its_bound() {
    let cluster = RedisCluster::start().expect("a Redis Cluster of the test's own");
    let wait_ms = 300;
    let store = cluster_store(&cluster, "fence-stop", wait_ms).await;
    let primary = cluster.base_port + 1;
    let replica = replica_of(primary);
    let (id, _) = executions_on(&store, primary, 1).await.remove(0);
    let replica_pid = cluster.pid_of(replica).expect("the replica's pid file");

    signal(replica_pid, "-STOP");
    // A write on the stopped replica's primary (the execution's keys live there).
    let began = Instant::now();
    let result = store.cancel_unstarted(&id).await;
    let took = began.elapsed();
    signal(replica_pid, "-CONT");
    let err = result.expect_err("no replica acknowledged the write");
    assert!(
        err.is_transient(),
        "a write not known durable is transient: {err}"
    );
    assert!(
        took >= Duration::from_millis(wait_ms) && took < Duration::from_millis(wait_ms) + BOUND,
        "the fence waited its bound ({took:?})"
    );
    assert!(store.fence_counts().expect("fences").failed >= 1);

    let passes = eventually(BOUND, Duration::from_millis(100), async || {
        store.cancel_unstarted(&id).await.is_ok()
    })
    .await;
    assert!(passes, "the fence passes again once the replica answers");
}

/// A single node (the shared Redis): no fence, and not one `WAIT` reaches the server.
#[tokio::test]
async fn a_single_node_store_sends_no_wait() {
    let (store, _cleanup) = support::store("fence-single", RedisOptions::default()).await;
    assert_eq!(store.fence_counts(), None, "a single node has no fence");
    let waits = || async {
        let mut conn = support::raw().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_wait:calls="))
            .and_then(|v| v.split(',').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = waits().await;
    for _ in 0..10 {
        let start = start_of(json!({"$input": {"n": 1}}), 1);
        assert!(store.start(&start).await.unwrap());
        store.cancel_unstarted(&start.execution_id).await.unwrap();
    }
    assert_eq!(waits().await, before, "no WAIT on a single node");
}
