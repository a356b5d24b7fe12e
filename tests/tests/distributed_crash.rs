//! Workers dying or stopping in the middle of a hop: SIGKILL (the hop is redelivered and run
//! again, with the same `Idempotency-Key`) and SIGTERM (the hop finishes, the worker exits 0).
//!
//! The HTTP node being run at that moment calls a local API that holds the request until the
//! test has acted, so the hop is in flight when the signal arrives whatever the machine's speed.
//! Which worker runs it is found from the caller's TCP connection (`/proc`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::distributed::{
    BOUND, Call, Cluster, TestApi, new_execution_id, owner_of, sequential_http_workflow,
};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_secs(3);

/// Idempotency keys per path.
fn keys_per_path(calls: &[Call]) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in calls {
        m.entry(c.path.clone())
            .or_default()
            .insert(c.idempotency_key.clone().unwrap_or_default());
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_worker_running_an_http_hop_repeats_only_that_call_and_completes_once() {
    const STEPS: usize = 5;
    let api = TestApi::start(Duration::from_millis(300));
    api.hold("/step/3");
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
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

    // Step 3's request is held by the API: its hop is in flight on one worker.
    let call = api.wait_call("/step/3", BOUND, &|| cluster.logs()).await;
    let victims = match owner_of(&mut cluster, &call, &api).await {
        Some(i) => vec![i],
        // Not found (no /proc?): kill every worker, the one running the hop among them.
        None => {
            eprintln!("could not tell which worker holds the connection: killing all of them");
            cluster.running()
        }
    };
    for &v in &victims {
        eprintln!(
            "SIGKILL {} (pid {})",
            cluster.worker(v).name,
            cluster.worker(v).pid()
        );
        cluster.kill(v);
    }
    for _ in &victims {
        cluster.spawn_worker(&[]).await;
    }
    api.release();

    let logs = || cluster.logs();
    let completion = completions.next_for(&execution_id, BOUND * 2, &logs).await;
    assert_eq!(completion["status"], "completed", "{completion:#}");
    assert_eq!(
        completion["final_context"][format!("$Step {STEPS}")]["body"]["step"],
        STEPS.to_string()
    );
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

    // Side effects: once per step, except the call in flight at the kill, made once more after
    // it (the hop was not committed) with the same Idempotency-Key.
    let calls = api.calls();
    let counts = api.counts();
    let expected: BTreeMap<String, usize> = (1..=STEPS)
        .map(|i| (format!("/step/{i}"), if i == 3 { 2 } else { 1 }))
        .collect();
    assert_eq!(counts, expected, "calls per step: {calls:#?}");
    let keys = keys_per_path(&calls);
    for (path, k) in &keys {
        assert_eq!(
            k.len(),
            1,
            "{path} was called with different idempotency keys: {k:?}"
        );
        let key = k.iter().next().unwrap();
        assert!(
            key.starts_with(&execution_id),
            "{path}: idempotency key {key:?} names the execution"
        );
    }
    let distinct: BTreeSet<&String> = keys.values().flatten().collect();
    assert_eq!(
        distinct.len(),
        STEPS,
        "one idempotency key per node: {distinct:?}"
    );
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_http_hop_finish_and_the_worker_exits_0() {
    const STEPS: usize = 4;
    let api = TestApi::start(Duration::from_millis(300));
    api.hold("/step/2");
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
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

    let call = api.wait_call("/step/2", BOUND, &|| cluster.logs()).await;
    let owner = owner_of(&mut cluster, &call, &api)
        .await
        .expect("the worker holding the connection (/proc)");
    let other = cluster
        .running()
        .into_iter()
        .find(|&i| i != owner)
        .expect("a second worker");
    cluster.terminate(owner);
    // Draining: /readyz turns 503 once it stopped consuming, while the hop is still held.
    let deadline = std::time::Instant::now() + BOUND;
    while cluster.readyz(owner).await != Some(503) {
        assert!(
            std::time::Instant::now() < deadline,
            "no drain after SIGTERM\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !api.calls()[0..]
            .iter()
            .any(|c| c.path == "/step/2" && c.finished),
        "the hop is still in flight"
    );
    api.release();

    let status = cluster.wait_exit(owner, BOUND).await;
    let status = status
        .unwrap_or_else(|| panic!("the worker did not exit after SIGTERM\n{}", cluster.logs()));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM\n{}",
        cluster.logs()
    );
    assert!(
        cluster.log_tail(owner, 20).contains("drained=true"),
        "{}",
        cluster.log_tail(owner, 20)
    );

    let logs = || cluster.logs();
    let completion = completions.next_for(&execution_id, BOUND, &logs).await;
    assert_eq!(completion["status"], "completed", "{completion:#}");
    assert_eq!(
        completion["final_context"]["$Step 2"]["body"]["step"], "2",
        "the drained hop's output was kept"
    );
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
        "a second completion"
    );
    // The drained hop finished: nothing ran twice.
    let expected: BTreeMap<String, usize> =
        (1..=STEPS).map(|i| (format!("/step/{i}"), 1)).collect();
    assert_eq!(api.counts(), expected, "calls per step: {:#?}", api.calls());
    assert_eq!(
        cluster.running(),
        vec![other],
        "the other worker kept running"
    );
    broker.close().await;
}
