//! Status modes on the worker pool (RFC 0011), black-box: `baton worker` processes with
//! `BATON_STATUS_MODE`, executions started with raw start messages, the status queue read by
//! the test. `compact` sends one record per node run, several runs of one flush in one
//! message; `off` sends completions only; a workflow's `status_mode` lowers the worker's mode
//! and never raises it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use baton_amqp::Outgoing;
use common::distributed::{BOUND, Cluster, Observer, Seen, new_execution_id, rune_start};
use serde_json::{Value, json};

/// How long the status queue must stay silent before the test stops reading it. Passing
/// never depends on it: a late status would only go unnoticed.
const QUIET: Duration = Duration::from_secs(3);

fn three_logs(status_mode: Option<&str>) -> Value {
    let mut doc = json!({"name": "three-logs", "version": 1,
        "nodes": [
            {"id": "a", "name": "A", "type": "log", "parameters": {"message": "a {{$input.n}}"}},
            {"id": "b", "name": "B", "type": "log", "parameters": {"message": "b after {{$A.message}}"}},
            {"id": "c", "name": "C", "type": "log", "parameters": {"message": "c after {{$B.message}}"}}
        ],
        "edges": [{"id": "ab", "src": "a", "dst": "b"}, {"id": "bc", "src": "b", "dst": "c"}]});
    if let Some(mode) = status_mode {
        doc["status_mode"] = json!(mode);
    }
    doc
}

/// Starts `n` executions of `workflow` with `{"n": 1}` as input at once; returns their ids.
async fn start_many(
    cluster: &Cluster,
    broker: &baton_amqp::Broker,
    workflow: &Value,
    n: usize,
) -> Vec<String> {
    start_many_with(cluster, broker, workflow, &json!({"n": 1}), n).await
}

/// Starts `n` executions of `workflow` with `input` at once; returns their ids.
async fn start_many_with(
    cluster: &Cluster,
    broker: &baton_amqp::Broker,
    workflow: &Value,
    input: &Value,
    n: usize,
) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|_| new_execution_id()).collect();
    let batch = ids
        .iter()
        .map(|id| {
            let body = serde_json::to_vec(&rune_start(workflow, id, input)).unwrap();
            Outgoing::new(cluster.topology.execution_queue.clone(), body)
        })
        .collect();
    broker.publish(batch).await.expect("publish the starts");
    ids
}

/// Waits for one completion of each of `ids`; every one must have completed.
async fn wait_completions(completions: &mut Observer, ids: &[String], cluster: &Cluster) {
    let mut left: Vec<&String> = ids.iter().collect();
    while !left.is_empty() {
        let Some(seen) = completions.next(BOUND).await else {
            panic!("{} completions missing\n{}", left.len(), cluster.logs());
        };
        let c = seen.json();
        assert_eq!(c["status"], "completed", "{c:#}");
        left.retain(|id| c["execution_id"] != id.as_str());
    }
}

/// (execution, node) → statuses seen, with how many messages carried them.
fn tally(seen: &[Seen]) -> (BTreeMap<(String, String), Vec<String>>, usize) {
    let mut runs: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for s in seen {
        let v = s.json();
        let items = match v.get("node_runs").and_then(Value::as_array) {
            Some(batch) => batch.clone(),
            None => vec![v.clone()],
        };
        for r in items {
            runs.entry((
                r["execution_id"].as_str().unwrap_or_default().into(),
                r["node_id"].as_str().unwrap_or_default().into(),
            ))
            .or_default()
            .push(r["status"].as_str().unwrap_or_default().into());
        }
    }
    (runs, seen.len())
}

/// A pool of one worker with `env`, a broker client, and readers of the completion and status
/// queues.
async fn one_worker(env: &[(&str, &str)]) -> (Cluster, baton_amqp::Broker, Observer, Observer) {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(env).await;
    let broker = cluster.broker().await;
    let completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let statuses = cluster
        .consume(&broker, &cluster.topology.status_queue)
        .await;
    (cluster, broker, completions, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_worker_sends_one_record_per_node_run_batched_per_flush() {
    let (cluster, broker, mut completions, mut statuses) =
        one_worker(&[("BATON_STATUS_MODE", "compact")]).await;
    // A workflow asking for `full` on a `compact` worker gets `compact`.
    let ids = start_many(&cluster, &broker, &three_logs(Some("full")), 30).await;
    wait_completions(&mut completions, &ids, &cluster).await;
    let seen = statuses.drain(QUIET).await;
    for s in &seen {
        let v = s.json();
        let batch = v["node_runs"]
            .as_array()
            .unwrap_or_else(|| panic!("not a batch: {v:#}"));
        for r in batch {
            assert!(
                r["started_at"].is_string() && r["finished_at"].is_string(),
                "{r:#}"
            );
            assert_eq!(
                r["output_ref"],
                format!("${}", r["node_name"].as_str().unwrap_or_default())
            );
            assert!(
                r.get("output").is_none() && r.get("parameters").is_none(),
                "{r:#}"
            );
        }
    }
    let (runs, messages) = tally(&seen);
    for id in &ids {
        for node in ["a", "b", "c"] {
            assert_eq!(
                runs.get(&(id.clone(), node.into())),
                Some(&vec!["success".to_string()]),
                "one record for {node} of {id}"
            );
        }
    }
    let total: usize = runs.values().map(Vec::len).sum();
    assert!(
        messages < total,
        "{total} node runs in {messages} messages: runs ready at one flush share a message"
    );
    broker.close().await;
}

/// split over 5 items → a `log` per item → aggregator.
fn fan_out() -> Value {
    json!({"name": "fan-out", "version": 1,
        "nodes": [
            {"id": "split", "name": "Split", "type": "split", "parameters": {"input_array": "{{ $input.items }}"}},
            {"id": "work", "name": "Work", "type": "log", "parameters": {"message": "item {{$item}}"}},
            {"id": "join", "name": "Join", "type": "aggregator", "parameters": {}}
        ],
        "edges": [{"id": "e1", "src": "split", "dst": "work"}, {"id": "e2", "src": "work", "dst": "join"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_worker_runs_a_fan_out_to_its_completion_with_one_record_per_node_run() {
    let (cluster, broker, mut completions, mut statuses) =
        one_worker(&[("BATON_STATUS_MODE", "compact")]).await;
    let input = json!({"items": [1, 2, 3, 4, 5]});
    let ids = start_many_with(&cluster, &broker, &fan_out(), &input, 3).await;
    wait_completions(&mut completions, &ids, &cluster).await;
    let (runs, _) = tally(&statuses.drain(QUIET).await);
    for id in &ids {
        for (node, records) in [("split", 1), ("work", 5), ("join", 1)] {
            assert_eq!(
                runs.get(&(id.clone(), node.into())).map(Vec::len),
                Some(records),
                "{node} of {id}: {runs:?}"
            );
        }
    }
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_off_worker_sends_completions_only_even_when_the_workflow_asks_for_full() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[("BATON_STATUS_MODE", "off")]).await;
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut statuses = cluster
        .consume(&broker, &cluster.topology.status_queue)
        .await;
    let ids = start_many(&cluster, &broker, &three_logs(Some("full")), 5).await;
    wait_completions(&mut completions, &ids, &cluster).await;
    let seen = statuses.drain(QUIET).await;
    assert!(
        seen.is_empty(),
        "no status message: {:#?}",
        seen.iter().map(Seen::json).collect::<Vec<_>>()
    );
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_worker_a_workflow_may_ask_for_compact_statuses() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut statuses = cluster
        .consume(&broker, &cluster.topology.status_queue)
        .await;
    let compact = start_many(&cluster, &broker, &three_logs(Some("compact")), 3).await;
    let full = start_many(&cluster, &broker, &three_logs(None), 1).await;
    // One wait for all four: a wait for some drops the others' completions it reads.
    let all = [compact.clone(), full.clone()].concat();
    wait_completions(&mut completions, &all, &cluster).await;
    let (runs, _) = tally(&statuses.drain(QUIET).await);
    for id in &compact {
        assert_eq!(runs[&(id.clone(), "b".into())], vec!["success".to_string()]);
    }
    assert_eq!(
        runs[&(full[0].clone(), "b".into())],
        vec!["running".to_string(), "success".to_string()],
        "the worker's default stays `full`"
    );
    broker.close().await;
}

/// Every node of every execution in `ids` had exactly `running` then `success`.
fn assert_full(runs: &BTreeMap<(String, String), Vec<String>>, ids: &[String], what: &str) {
    for id in ids {
        for node in ["a", "b", "c"] {
            assert_eq!(
                runs.get(&(id.clone(), node.into())),
                Some(&vec!["running".to_string(), "success".to_string()]),
                "{what}: {node} of {id}"
            );
        }
    }
}

/// A Rune monitor (RTES) is a queue of its own bound to the `workflows` exchange with the
/// status key: by default it sees every `full` status, as from a Rune worker (RFC 0011).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_bound_to_the_exchange_sees_full_statuses_by_default() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut monitor = cluster
        .subscribe(&broker, &[&cluster.topology.status_queue])
        .await;
    let ids = start_many(&cluster, &broker, &three_logs(None), 3).await;
    wait_completions(&mut completions, &ids, &cluster).await;
    let (runs, _) = tally(&monitor.drain(QUIET).await);
    assert_full(&runs, &ids, "the monitor");
    broker.close().await;
}

/// `BATON_STATUS_ROUTE=queue`: the same `full` statuses, straight to the status queue (no
/// topic routing); a monitor bound to the exchange gets none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_routed_to_the_queue_reach_the_status_queue_and_no_exchange_monitor() {
    let mut cluster = Cluster::new();
    cluster
        .spawn_worker(&[("BATON_STATUS_ROUTE", "queue")])
        .await;
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut statuses = cluster
        .consume(&broker, &cluster.topology.status_queue)
        .await;
    let mut monitor = cluster
        .subscribe(&broker, &[&cluster.topology.status_queue])
        .await;
    let ids = start_many(&cluster, &broker, &three_logs(None), 3).await;
    wait_completions(&mut completions, &ids, &cluster).await;
    let (runs, _) = tally(&statuses.drain(QUIET).await);
    assert_full(&runs, &ids, "the status queue");
    let seen = monitor.drain(Duration::from_millis(500)).await;
    assert!(
        seen.is_empty(),
        "nothing through the exchange: {:#?}",
        seen.iter().map(Seen::json).collect::<Vec<_>>()
    );
    broker.close().await;
}
