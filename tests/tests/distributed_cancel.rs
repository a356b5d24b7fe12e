//! Cancel and races on the worker pool, black-box (two `baton worker` processes, RabbitMQ and
//! Redis): a cancel stops a running `http` request and a running `code` script (in its sandbox
//! child) on whichever worker runs them, within the documented bound, and reports both
//! `cancelled` (`failed` with code `CANCELLED`); a `wait_for_any` merge with `cancel_losers`
//! ends the execution with its winner while a loser's request is still held and another loser
//! is parked on a 60 s timer.

mod common;

use std::time::{Duration, Instant};

use common::distributed::{BOUND, Cluster, TestApi, new_execution_id};
use serde_json::{Value, json};

/// The documented bound (RFC 0003) for a cancelled node to stop, with room for a loaded
/// machine; the nodes under test would otherwise run for 30 s (the script) or forever (the
/// held request), and the timer for 60 s.
const CANCEL_BOUND: Duration = Duration::from_secs(10);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_cancelled(v: &Value) -> bool {
    v["status"] == "failed" && v["error"]["code"] == "CANCELLED"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_a_running_http_request_and_a_running_script_on_the_pool() {
    let api = TestApi::start(Duration::ZERO);
    api.hold("/step/1");
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut statuses = cluster
        .consume(&broker, &cluster.topology.status_queue)
        .await;
    let workflow = json!({"name": "cancel-running", "version": 1,
        "nodes": [
            {"id": "begin", "name": "Begin", "type": "log", "parameters": {"message": "begin"}},
            {"id": "fetch", "name": "Fetch", "type": "http", "parameters": {"url": format!("{}/step/1", api.url)}},
            {"id": "spin", "name": "Spin", "type": "code", "parameters": {
                "script": "let n = 0; loop { n += 1; }", "timeout_ms": 30000, "max_operations": 1000000000}}
        ],
        "edges": [{"id": "e1", "src": "begin", "dst": "fetch"}, {"id": "e2", "src": "begin", "dst": "spin"}]});
    let file = cluster.workflow_file("cancel-running.json", &workflow);
    let execution_id = new_execution_id();
    let out = cluster
        .submit(&file, &json!({}), &["--execution-id", &execution_id])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logs = || cluster.logs();
    api.wait_call("/step/1", BOUND, &logs).await;
    let mut running = 0;
    while running < 2 {
        let v = statuses.next_for(&execution_id, BOUND, &logs).await;
        if v["status"] == "running" && (v["node_id"] == "fetch" || v["node_id"] == "spin") {
            running += 1;
        }
    }
    // The script is looping in its sandbox child, the request is held by the API.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled_at = Instant::now();
    let out = cluster.cancel(&execution_id).await;
    assert!(out.status.success(), "baton cancel: {}", text(&out.stderr));
    let mut stopped = Vec::new();
    while stopped.len() < 2 {
        let left = CANCEL_BOUND.saturating_sub(cancelled_at.elapsed());
        let v = statuses.next_for(&execution_id, left, &logs).await;
        if is_cancelled(&v) {
            stopped.push(v["node_id"].as_str().unwrap_or_default().to_string());
        }
    }
    stopped.sort();
    assert_eq!(stopped, ["fetch", "spin"]);
    let completion = completions
        .next_for(&execution_id, CANCEL_BOUND, &logs)
        .await;
    assert_eq!(completion["status"], "halted", "{completion:#}");
    eprintln!(
        "both nodes reported cancelled {} ms after baton cancel",
        cancelled_at.elapsed().as_millis()
    );
    api.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_race_with_cancel_losers_on_the_pool_ends_with_the_winner() {
    let api = TestApi::start(Duration::from_millis(300));
    api.hold("/step/2");
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut statuses = cluster
        .consume(&broker, &cluster.topology.status_queue)
        .await;
    let workflow = json!({"name": "race", "version": 1,
    "nodes": [
        {"id": "go", "name": "Go", "type": "log", "parameters": {"message": "go"}},
        {"id": "fast", "name": "Fast", "type": "http", "parameters": {"url": format!("{}/step/1", api.url)}},
        {"id": "held", "name": "Held", "type": "http", "parameters": {"url": format!("{}/step/2", api.url)}},
        {"id": "timer", "name": "Timer", "type": "wait", "parameters": {"amount": 60, "unit": "seconds"}},
        {"id": "first", "name": "First", "type": "merge",
         "parameters": {"wait_mode": "wait_for_any", "cancel_losers": true}},
        {"id": "after", "name": "After", "type": "log", "parameters": {"message": "winner {{$First._merge_winner}}"}}
    ],
    "edges": [
        {"id": "a", "src": "go", "dst": "fast"}, {"id": "b", "src": "go", "dst": "held"},
        {"id": "c", "src": "go", "dst": "timer"},
        {"id": "d", "src": "fast", "dst": "first"}, {"id": "e", "src": "held", "dst": "first"},
        {"id": "f", "src": "timer", "dst": "first"}, {"id": "g", "src": "first", "dst": "after"}
    ]});
    let file = cluster.workflow_file("race.json", &workflow);
    let execution_id = new_execution_id();
    let submitted = Instant::now();
    let out = cluster
        .submit(&file, &json!({}), &["--execution-id", &execution_id])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logs = || cluster.logs();
    let completion = completions.next_for(&execution_id, BOUND, &logs).await;
    let took = submitted.elapsed();
    assert_eq!(completion["status"], "completed", "{completion:#}");
    assert_eq!(
        completion["final_context"]["$First"]["_merge_winner"], "Fast",
        "{completion:#}"
    );
    assert!(completion["final_context"].get("$After").is_some());
    assert!(
        took < Duration::from_secs(45),
        "ended {took:?} after the submit: it waited for the 60 s timer"
    );
    // Every status of the execution up to now: the held request and the timer are cancelled.
    let mut last: std::collections::BTreeMap<String, Value> = Default::default();
    while let Some(seen) = statuses.next(Duration::from_secs(2)).await {
        let v = seen.json();
        if v["execution_id"] == execution_id.as_str() {
            last.insert(v["node_id"].as_str().unwrap_or_default().to_string(), v);
        }
    }
    for loser in ["held", "timer"] {
        assert!(
            last.get(loser).is_some_and(is_cancelled),
            "{loser}: {:?}",
            last.get(loser)
        );
    }
    eprintln!("race completed {} ms after the submit", took.as_millis());
    api.release();
}
