//! The failover suite (issue 16), black box: 300 executions — chains, fan-out + join, timers
//! and signal waits, every node but the join and the waits an `http` call to a local API that
//! records its `Idempotency-Key` — across 3 `baton worker` processes, while (on clusters) one
//! RabbitMQ node is stopped and later restarted and one Redis primary is SIGKILLed so that its
//! replica takes over. Afterwards every execution has exactly one completion (`completed`), no
//! node's side effect was repeated with a different idempotency key, and no Redis key of the
//! run is left without a TTL.
//!
//! The topology comes from `BATON_TEST_CLUSTER` (see `common/failover.rs`): by default the
//! shared RabbitMQ and Redis, no failover, so the default path stays covered;
//! `BATON_TEST_CLUSTER=rabbitmq` starts a RabbitMQ cluster of its own (`scripts/cluster-rabbitmq`),
//! `all` the clusters of `scripts/cluster`. `CI=true` runs 120 executions, otherwise 300;
//! `BATON_FAILOVER_EXECUTIONS` overrides both.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use baton_amqp::{AmqpOptions, Broker, Outgoing, QueueType};
use common::chaos::Tally;
use common::distributed::{BOUND, Cluster, new_execution_id, rune_start};
use common::failover::{KeyApi, SHAPES, Topology, keys_without_ttl, signal_message, workflow};
use serde_json::json;

/// How long the stopped RabbitMQ node stays down.
const NODE_DOWN: Duration = Duration::from_secs(10);
const WORKERS: usize = 3;

fn executions() -> usize {
    if let Some(n) = std::env::var("BATON_FAILOVER_EXECUTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        120
    } else {
        300
    }
}

/// Waits (without a bound on the count) until the API saw `calls` calls or `bound` passed.
async fn until_calls(api: &KeyApi, calls: usize, bound: Duration) {
    let deadline = Instant::now() + bound;
    while api.total() < calls && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_every_execution_completes_once_and_no_side_effect_changes_its_key() {
    let t0 = Instant::now();
    // Declared first: dropped last, after the workers and the observer.
    let topology = tokio::task::spawn_blocking(Topology::from_env)
        .await
        .expect("set up the topology");
    let n = executions();
    eprintln!(
        "[{:?}] {} executions on {}",
        t0.elapsed(),
        n,
        topology.describe()
    );
    let api = KeyApi::start();
    let mut cluster = Cluster::with_amqp_url(topology.amqp_url.clone());
    cluster.redis_url = topology.redis_url.clone();
    let env = [("BATON_QUEUE_TYPE", topology.queue_type())];
    for _ in 0..WORKERS {
        cluster.spawn_worker(&env).await;
    }
    let options = AmqpOptions {
        url: topology.amqp_url.clone(),
        topology: cluster.topology.clone(),
        queue_type: topology.queue_type().parse().unwrap_or(QueueType::Classic),
        connection_name: Some("baton-test-failover-publisher".into()),
        connect_timeout: Duration::from_secs(30),
        ..AmqpOptions::default()
    };
    let broker = Broker::connect(options.clone())
        .await
        .expect("connect the publisher");

    // The executions, shapes in turn.
    let runs: Vec<(String, usize)> = (0..n)
        .map(|i| (new_execution_id(), i % SHAPES.len()))
        .collect();
    let ids: Vec<String> = runs.iter().map(|(id, _)| id.clone()).collect();
    let expected_calls: usize = runs.iter().map(|(_, s)| SHAPES[*s].1.len()).sum();
    let workflows: Vec<_> = SHAPES.iter().map(|(shape, _)| workflow(shape)).collect();
    let queue = cluster.topology.execution_queue.clone();
    for chunk in runs.chunks(50) {
        let batch = chunk
            .iter()
            .map(|(id, shape)| {
                let input = json!({"base_url": api.url, "run": id});
                let start = rune_start(&workflows[*shape], id, &input);
                Outgoing::new(queue.clone(), serde_json::to_vec(&start).expect("a start"))
            })
            .collect();
        broker.publish(batch).await.expect("publish the starts");
    }
    let signals = |half: usize| -> Vec<Outgoing> {
        runs.iter()
            .filter(|(_, s)| SHAPES[*s].0 == "signal")
            .enumerate()
            .filter(|(i, _)| i % 2 == half)
            .map(|(_, (id, _))| {
                let body = serde_json::to_vec(&signal_message(id)).expect("a signal");
                Outgoing::new(queue.clone(), body)
            })
            .collect()
    };

    // (b) a RabbitMQ node goes away a quarter of the way in (node 1: every process starts on
    // the first node that answers); half the signals are sent while it is down.
    until_calls(&api, expected_calls / 4, BOUND).await;
    let mut faults = Vec::new();
    if let Some(rabbit) = &topology.rabbit {
        eprintln!(
            "[{:?}] {} calls; stopping RabbitMQ node 1",
            t0.elapsed(),
            api.total()
        );
        let stopped = std::thread::scope(|s| s.spawn(|| rabbit.stop_node(1)).join());
        stopped.expect("stop thread").expect("stop RabbitMQ node 1");
        faults.push("rabbitmq node 1 stopped");
    }
    broker.publish(signals(0)).await.expect("publish signals");
    // (a) a Redis primary is killed half way in.
    until_calls(&api, expected_calls / 2, BOUND).await;
    if let Some(redis) = &topology.redis {
        let port = redis.kill_a_primary();
        eprintln!(
            "[{:?}] {} calls; SIGKILLed the Redis primary on port {port}",
            t0.elapsed(),
            api.total()
        );
        faults.push("redis primary killed");
    }
    if let Some(rabbit) = &topology.rabbit {
        tokio::time::sleep(NODE_DOWN).await;
        let started = std::thread::scope(|s| s.spawn(|| rabbit.start_node(1)).join());
        started
            .expect("start thread")
            .expect("restart RabbitMQ node 1");
        eprintln!("[{:?}] RabbitMQ node 1 back", t0.elapsed());
    }
    broker.publish(signals(1)).await.expect("publish signals");

    // The completions are read by an observer that connects only after the faults: the
    // durable completion queue keeps them, and a delivery the observer held when its own
    // connection was lost (read, its ack lost, then redelivered) cannot pass for a duplicated
    // completion.
    let observer = Broker::connect(AmqpOptions {
        connection_name: Some("baton-test-failover-observer".into()),
        ..options
    })
    .await
    .expect("connect the observer");
    let mut completions = cluster
        .consume(&observer, &cluster.topology.completion_queue)
        .await;
    let mut tally = Tally::default();
    let (all, restarts) = tally
        .wait_all_restarting(
            &mut completions,
            &ids,
            BOUND * 4,
            &mut cluster,
            WORKERS,
            &env,
        )
        .await;
    tally.drain(&mut completions, Duration::from_secs(5)).await;
    let elapsed = t0.elapsed();

    // Exactly one completion each, and it says completed.
    let mut failed = Vec::new();
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !tally.completions.contains_key(*id))
        .collect();
    let doubled: Vec<&String> = ids
        .iter()
        .filter(|id| tally.completions.get(*id).is_some_and(|c| c.len() > 1))
        .collect();
    let not_completed: BTreeMap<&String, String> = ids
        .iter()
        .filter_map(|id| {
            let completion = &tally.completions.get(id)?[0];
            let status = &completion["status"];
            // The reason says which node failed and why: what a failure here is read by.
            (status != "completed").then(|| {
                let reason = &completion["failure_reason"];
                (id, format!("{status}: {reason}"))
            })
        })
        .collect();
    if !all || !missing.is_empty() {
        failed.push(format!(
            "{} executions without a completion: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    if !doubled.is_empty() {
        failed.push(format!(
            "{} executions with more than one completion: {:?}",
            doubled.len(),
            &doubled[..doubled.len().min(5)]
        ));
    }
    if !not_completed.is_empty() {
        failed.push(format!(
            "{} executions not completed: {:?}",
            not_completed.len(),
            not_completed.iter().take(5).collect::<Vec<_>>()
        ));
    }

    // Every node ran, and a repeat carried the same idempotency key.
    let keys = api.keys();
    let mut repeats = 0;
    let mut changed_keys = Vec::new();
    let mut never_ran = Vec::new();
    for (id, shape) in &runs {
        for node in SHAPES[*shape].1 {
            match keys.get(&(id.clone(), (*node).to_owned())) {
                None => never_ran.push(format!("{id}/{node}")),
                Some(calls) => {
                    repeats += calls.len() - 1;
                    let distinct: BTreeSet<&String> = calls.iter().collect();
                    let expected = format!("{id}:{node}:");
                    if distinct.len() > 1 || !calls[0].starts_with(&expected) {
                        changed_keys.push(format!("{id}/{node}: {distinct:?}"));
                    }
                }
            }
        }
    }
    if !never_ran.is_empty() && all {
        failed.push(format!(
            "nodes of completed executions never called: {:?}",
            &never_ran[..never_ran.len().min(5)]
        ));
    }
    if !changed_keys.is_empty() {
        failed.push(format!(
            "side effects repeated with another key: {:?}",
            &changed_keys[..changed_keys.len().min(5)]
        ));
    }

    // No key of the run left without a TTL.
    let (redis_url, prefix) = (cluster.redis_url.clone(), cluster.key_prefix.clone());
    let (scanned, no_ttl) =
        tokio::task::spawn_blocking(move || keys_without_ttl(&redis_url, &prefix))
            .await
            .expect("scan the keys");
    // The executions' records stay for the retention period: none at all would mean the scan
    // looked in the wrong place.
    if scanned == 0 {
        failed.push(format!(
            "no key under {}: the TTL check saw nothing",
            cluster.key_prefix
        ));
    }
    if !no_ttl.is_empty() {
        failed.push(format!(
            "{} keys without a TTL: {:?}",
            no_ttl.len(),
            &no_ttl[..no_ttl.len().min(10)]
        ));
    }

    let summary = format!(
        "cluster_failover: topology=\"{}\" executions={n} completed={} missing={} duplicated={} calls={} repeats_same_key={repeats} changed_keys={} keys_scanned={scanned} keys_without_ttl={} faults={faults:?} worker_restarts={restarts} elapsed={elapsed:?}",
        topology.describe(),
        ids.len() - missing.len(),
        missing.len(),
        doubled.len(),
        api.total(),
        changed_keys.len(),
        no_ttl.len(),
    );
    println!("{summary}");
    eprintln!("{summary}");
    // The queues are quorum ones on a cluster: delete them with a connection that declares
    // them alike (the cluster's cleanup declares classic ones), once no worker re-declares them.
    for w in cluster.running() {
        cluster.kill(w);
    }
    if let Err(e) = observer.delete_topology().await {
        eprintln!("deleting the run's queues: {e}");
    }
    observer.close().await;
    broker.close().await;
    assert!(
        failed.is_empty(),
        "{summary}\n{}\n{}",
        failed.join("\n"),
        cluster.logs()
    );
}
