//! Exactly one completion per execution when workers die, and no wait for a lease: workers
//! are SIGKILLed in a loop while many short executions complete (the completions queue must
//! see each execution once, none missing), and the worker completing an execution is killed
//! as it completes (its completion must still arrive within a few seconds).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baton_amqp::Outgoing;
use common::distributed::{
    BOUND, Cluster, TestApi, connection_owner, new_execution_id, rune_start,
    sequential_http_workflow,
};
use serde_json::json;

/// How long the completions queue must stay quiet before the count is final.
const QUIET: Duration = Duration::from_secs(4);

/// A number in `0..n` that differs from call to call (no `rand` in this crate).
fn pick(n: u64) -> u64 {
    u64::from(uuid::Uuid::new_v4().as_fields().0) % n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sigkilled_in_a_loop_leave_exactly_one_completion_per_execution() {
    const EXECUTIONS: usize = 600;
    const WORKERS: usize = 3;
    let api = TestApi::start(Duration::from_millis(60));
    let mut cluster = Cluster::new();
    for _ in 0..WORKERS {
        cluster.spawn_worker(&[]).await;
    }
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let workflow = sequential_http_workflow("short", 3);
    let ids: Vec<String> = (0..EXECUTIONS).map(|_| new_execution_id()).collect();
    let starts = ids
        .iter()
        .map(|id| {
            let body = rune_start(&workflow, id, &json!({"base_url": api.url}));
            Outgoing::to_queue(
                cluster.topology.execution_queue.clone(),
                serde_json::to_vec(&body).expect("JSON"),
            )
        })
        .collect();
    broker.publish(starts).await.expect("publish the starts");

    // Kill a random worker every 0.3–0.8 s and start another, while completions arrive.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = 0;
    let mut kills = 0;
    let deadline = Instant::now() + BOUND * 3;
    // The kills stop a bound before the deadline: on a loaded box a pool restarted every half
    // second makes little progress, and what is checked is that nothing is lost or doubled,
    // so the last executions get a bound to finish once the killing ends.
    let kills_until = deadline - BOUND;
    let mut next_kill = Instant::now() + Duration::from_millis(300);
    while seen.len() < EXECUTIONS && Instant::now() < deadline {
        if Instant::now() >= next_kill && Instant::now() < kills_until {
            let running = cluster.running();
            if let Some(&victim) = running.get(pick(running.len() as u64) as usize) {
                cluster.kill(victim);
                kills += 1;
                cluster.spawn_worker(&[]).await;
            }
            next_kill = Instant::now() + Duration::from_millis(200 + pick(400));
        }
        if let Some(c) = completions.next(Duration::from_millis(100)).await {
            count(&mut seen, &mut failed, &c.json());
        }
    }
    // Late duplicates (a lease expiring took 13–19 s before): wait for a quiet queue.
    for c in completions.drain(QUIET).await {
        count(&mut seen, &mut failed, &c.json());
    }
    eprintln!(
        "{kills} workers SIGKILLed, {} executions completed ({failed} failed: a message held by \
         workers that all died is dead-lettered, and its execution fails once)",
        seen.len()
    );
    let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    let doubled: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n != 1).collect();
    for id in &missing {
        eprintln!("missing {id}: {:?}", cluster.execution_meta(id).await);
    }
    assert!(
        missing.is_empty() && doubled.is_empty(),
        "after {kills} kills: {} missing {missing:?}, repeated {doubled:?}",
        missing.len()
    );
    assert!(kills > 0, "the loop killed no worker");
    broker.close().await;
}

/// Counts a completion by its execution, and those that failed.
fn count(seen: &mut BTreeMap<String, usize>, failed: &mut usize, completion: &serde_json::Value) {
    let id = completion["execution_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    *seen.entry(id).or_default() += 1;
    if completion["status"] != "completed" {
        *failed += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_completion_arrives_within_seconds_when_the_completing_worker_is_sigkilled() {
    let api = TestApi::start(Duration::from_millis(0));
    api.hold("/step/2");
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let workflow = sequential_http_workflow("two", 2);
    let id = new_execution_id();
    let body = rune_start(&workflow, &id, &json!({"base_url": api.url}));
    broker
        .publish(vec![Outgoing::to_queue(
            cluster.topology.execution_queue.clone(),
            serde_json::to_vec(&body).expect("JSON"),
        )])
        .await
        .expect("publish the start");

    // The last node's call is held: find its worker, release the call and kill the worker as
    // it completes the execution (or just before: then its hop is redelivered at once).
    let call = api.wait_call("/step/2", BOUND, &|| cluster.logs()).await;
    let pids: Vec<(usize, u32)> = cluster
        .running()
        .into_iter()
        .map(|i| (i, cluster.worker(i).pid()))
        .collect();
    let owner = connection_owner(
        call.peer,
        api.port,
        &pids.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
    )
    .and_then(|pid| pids.iter().find(|(_, p)| *p == pid).map(|(i, _)| *i));
    let victims = owner.map_or_else(|| cluster.running(), |i| vec![i]);
    api.release();
    wait_finished(&api).await;
    let killed_at = Instant::now();
    for v in &victims {
        cluster.kill(*v);
    }
    if victims.len() > 1 {
        cluster.spawn_worker(&[]).await;
    }
    let logs = || cluster.logs();
    let completion = completions.next_for(&id, BOUND, &logs).await;
    let waited = killed_at.elapsed();
    assert_eq!(completion["status"], "completed", "{completion:#}");
    // A worker start (when every worker was killed) takes a few seconds; a lease took 15.
    assert!(
        waited < Duration::from_secs(10),
        "the completion took {waited:?} after the kill"
    );
    let later = completions.drain(QUIET).await;
    assert!(
        later
            .iter()
            .all(|c| c.json()["execution_id"] != id.as_str()),
        "a second completion"
    );
    broker.close().await;
}

/// Waits until the held call was answered (the worker is then completing the execution).
async fn wait_finished(api: &TestApi) {
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        if api
            .calls()
            .iter()
            .any(|c| c.path == "/step/2" && c.finished)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the held call was not answered");
}
