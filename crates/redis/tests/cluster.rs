//! The Redis adapters on a real Redis Cluster (3 primaries + 3 replicas, started by each test
//! on free ports with `scripts/cluster`): the shared store and catalog contracts, timers over
//! their buckets, the cancellation broadcast, and recovery when a primary is SIGKILLed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use baton_engine::catalog_contract::workflow_catalog_contract;
use baton_engine::contract::{execution_store_contract, start_of};
use baton_engine::ports::{ExecutionStore, Lifecycle, PortError, StatePorts, WorkflowCatalog};
use baton_redis::{RedisConnection, RedisOptions, RedisStore};
use baton_testkit::{RedisCluster, eventually, unique_prefix};
use futures_util::StreamExt;
use serde_json::json;

const BOUND: Duration = Duration::from_secs(30);

async fn cluster_store(cluster: &RedisCluster, test: &str) -> RedisStore {
    let options = RedisOptions {
        key_prefix: unique_prefix(test),
        // These tests check behaviour, not how fast a replica acknowledges: on a loaded CI box
        // the default 200 ms was once too short and failed a contract's write as transient.
        replication_wait_ms: 2_000,
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every behaviour of the store, the catalog, the timers and the cancellation broadcast holds
/// on a cluster: a script or pipeline whose keys spanned two slots would fail with `CROSSSLOT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_contracts_hold_on_a_redis_cluster() {
    let cluster = RedisCluster::start().expect("a Redis Cluster of the test's own");
    let redis = cluster_store(&cluster, "cluster").await;
    assert!(matches!(redis.connection(), RedisConnection::Cluster(_)));

    let store: Arc<dyn StatePorts> = Arc::new(redis.clone());
    execution_store_contract(|| store.clone()).await;
    let catalog: Arc<dyn WorkflowCatalog> = Arc::new(redis.catalog());
    workflow_catalog_contract(catalog).await;

    // Timers of many executions land in several buckets, on several primaries; one claim
    // walks them all.
    let timers = redis.timers();
    let mut slots = HashSet::new();
    for i in 0..40 {
        let id = format!("ex-{i}|node|0");
        let [bucket, _] = timers.keys_of(&id);
        slots.insert(redis_cli(
            cluster.base_port,
            &["cluster", "keyslot", &bucket[0]],
        ));
        assert!(timers.schedule(&id, b"payload", 1_000).await.unwrap());
    }
    assert!(
        slots.len() > 4,
        "40 executions' timers use several slots: {slots:?}"
    );
    assert_eq!(timers.pending().await.unwrap(), 40);
    let claimed = timers.claim_due(2_000, 25, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 25, "the limit holds across buckets");
    let rest = timers.claim_due(2_000, 100, 60_000).await.unwrap();
    assert_eq!(rest.len(), 15);
    for (id, _) in claimed.iter().chain(&rest) {
        assert!(timers.complete(id).await.unwrap());
    }
    assert_eq!(timers.pending().await.unwrap(), 0);
    assert!(timers.schedule("ex-x|a", b"p", 1).await.unwrap());
    assert!(timers.schedule("ex-x|b", b"p", 1).await.unwrap());
    assert_eq!(timers.forget_execution("ex-x").await.unwrap(), 2);

    // A PUBLISH on the cluster connection reaches a subscriber on any node.
    let mut cancels = Box::pin(redis.subscribe_cancels().await.unwrap());
    redis.publish_cancel("exec-to-cancel").await.unwrap();
    let got = tokio::time::timeout(BOUND, cancels.next()).await.unwrap();
    assert_eq!(got.as_deref(), Some("exec-to-cancel"));
}

/// The port of the replica of the primary on `port`.
fn replica_of(port: u16) -> u16 {
    let me = redis_cli(port, &["cluster", "myid"]).trim().to_string();
    let nodes = redis_cli(port, &["cluster", "nodes"]);
    nodes
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

fn repl_offset(port: u16) -> Option<u64> {
    redis_cli(port, &["info", "replication"])
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A primary SIGKILLed mid-run: commands to its slots fail only with transient errors (the hop
/// would be handed back and retried) until its replica takes over; then everything written
/// before the loss is there, and new executions start on every slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_recovers_when_a_primary_dies_and_its_replica_takes_over() {
    let cluster = RedisCluster::start().expect("a Redis Cluster of the test's own");
    let store = cluster_store(&cluster, "failover").await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        let start = start_of(json!({"$input": {"n": 1}}), 1);
        assert!(store.start(&start).await.unwrap());
        ids.push(start.execution_id);
    }
    // Kill the first primary once its replica has everything (replication is asynchronous:
    // what a primary loss can cost is the writes its replica had not received yet).
    let victim = cluster.base_port;
    let replica = replica_of(victim);
    assert!(
        eventually(BOUND, Duration::from_millis(50), async || {
            repl_offset(victim).is_some() && repl_offset(victim) == repl_offset(replica)
        })
        .await,
        "the replica catches up"
    );
    let pid = cluster.pid_of(victim).expect("the victim's pid file");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let mut errors: Vec<PortError> = Vec::new();
    for id in &ids {
        let ok = eventually(BOUND, Duration::from_millis(100), async || {
            match store.lifecycle(id).await {
                Ok(l) => {
                    assert_eq!(l, Lifecycle::Running, "{id} survived the failover");
                    true
                }
                Err(e) => {
                    errors.push(e);
                    false
                }
            }
        })
        .await;
        assert!(ok, "{id} readable again after the failover");
    }
    for e in &errors {
        assert!(e.is_transient(), "a failover error is transient: {e}");
    }
    let role = redis_cli(replica, &["role"]);
    assert!(role.starts_with("master"), "the replica took over: {role}");
    // A write whose replication fence still went to the dead primary (the fence's slot map
    // is refreshed on that failure) fails transient once: a hop would be retried.
    let mut refused = 0;
    for _ in 0..30 {
        let start = start_of(json!({}), 1);
        let id = start.execution_id.clone();
        if let Err(e) = store.start(&start).await {
            assert!(e.is_transient(), "a failover error is transient: {e}");
            refused += 1;
            store.start(&start).await.unwrap();
        }
        assert_eq!(store.lifecycle(&id).await.unwrap(), Lifecycle::Running);
    }
    assert!(
        refused <= 1,
        "{refused} fences failed after the slot map was refreshed"
    );
}
