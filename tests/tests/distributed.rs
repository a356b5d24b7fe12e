//! The distributed runtime, black-box: `baton worker` processes on the real RabbitMQ and Redis,
//! executions started with `baton submit` or raw messages, observed on the test's own queues.
//! Every test has its own queue and key prefixes (see `common::distributed`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_amqp::Outgoing;
use common::distributed::{
    BOUND, Cluster, TestApi, completion_of, new_execution_id, normalise, rune_start,
};
use common::examples_dir;
use serde_json::{Value, json};

/// How long a test keeps listening for a message that must not come (a second completion).
/// Passing never depends on it: a duplicate arriving later would only go unnoticed.
const QUIET: Duration = Duration::from_secs(3);

fn example_workflows() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".json")
                && !name.ends_with(".input.json")
                && !name.ends_with(".test.json")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

/// The example's `.input.json` (or `{}`), with `base_url` pointed at the local API.
fn example_input(workflow: &Path, api_url: &str) -> Value {
    let stem = workflow.file_stem().unwrap().to_string_lossy();
    let input_file = workflow.with_file_name(format!("{stem}.input.json"));
    let mut input: Value = match std::fs::read_to_string(&input_file) {
        Ok(text) => serde_json::from_str(&text).expect("input is JSON"),
        Err(_) => json!({}),
    };
    if let Some(url) = input.get_mut("base_url") {
        *url = Value::String(api_url.to_string());
    }
    input
}

/// Context keys (`$<name>`) of the workflow's `wait` nodes.
fn wait_node_keys(workflow: &Path) -> Vec<String> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(workflow).unwrap()).unwrap();
    doc["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["type"] == "wait")
        .filter_map(|n| n["name"].as_str().map(|name| format!("${name}")))
        .collect()
}

/// Whether the workflow has a `wait` node in `signal` mode.
fn waits_for_a_signal(workflow: &Path) -> bool {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(workflow).unwrap()).unwrap();
    doc["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["type"] == "wait" && n["parameters"]["mode"] == "signal")
}

/// Stores every `*.json` of `dir` in the cluster's Redis workflow catalog, under its `"id"`
/// (as `baton run --workflows` does).
async fn fill_catalog(cluster: &Cluster, dir: &Path) {
    use baton_engine::ports::WorkflowCatalog;
    let options = baton_redis::RedisOptions {
        key_prefix: cluster.key_prefix.clone(),
        ..Default::default()
    };
    let catalog = baton_redis::RedisStore::connect(&cluster.redis_url, options)
        .await
        .expect("Redis")
        .catalog();
    for entry in std::fs::read_dir(dir).expect("the catalog directory") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|x| x == "json") {
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let id = doc["id"]
                .as_str()
                .expect("catalog workflows have an id")
                .to_string();
            catalog.put(&id, &doc).await.expect("catalog put");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_through_two_workers_gives_the_same_final_context_as_embedded_run() {
    let api = TestApi::start(Duration::ZERO);
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    // The workflows `workflow` nodes start: the embedded run gets `--workflows`, the pool the
    // same definitions in its Redis catalog.
    let catalog_dir = examples_dir().join("workflows");
    fill_catalog(&cluster, &catalog_dir).await;
    let mut failures = Vec::new();
    for workflow in example_workflows() {
        let name = workflow.file_name().unwrap().to_string_lossy().into_owned();
        if waits_for_a_signal(&workflow) {
            // Nothing here sends it (`tests/tests/examples.rs` runs these with `--signal`).
            continue;
        }
        let input = example_input(&workflow, &api.url);

        let mut run = cluster.command();
        run.arg("run")
            .arg(&workflow)
            .arg("--workflows")
            .arg(&catalog_dir)
            .arg("--completion")
            .arg("--input")
            .arg(input.to_string());
        let embedded = cluster.output(run).await;
        let expected: Value = serde_json::from_slice(&embedded.stdout).unwrap_or_else(|e| {
            panic!(
                "{name}: baton run printed no completion ({e}):\n{}",
                text(&embedded.stderr)
            )
        });

        let submitted = cluster
            .submit(&workflow, &input, &["--wait", "--timeout-secs", "120"])
            .await;
        let got = completion_of(&submitted, &cluster);

        let mut problems = Vec::new();
        if embedded.status.code() != submitted.status.code() {
            problems.push(format!(
                "exit codes differ: run {:?}, submit {:?}",
                embedded.status.code(),
                submitted.status.code()
            ));
        }
        for field in ["status", "failure_reason"] {
            if expected.get(field) != got.get(field) {
                problems.push(format!(
                    "{field}: run {:?}, submit {:?}",
                    expected.get(field),
                    got.get(field)
                ));
            }
        }
        let (mut want, mut have) = (
            normalise(&expected["final_context"]),
            normalise(&got["final_context"]),
        );
        if expected["status"] != "completed" {
            // A halt races with sibling branches already under way: whether a timer on one of
            // them was set before the halt landed depends on timing (07's `Long timer`), in
            // either runtime. Such outputs may be on one side only; everything else must match.
            let timers = wait_node_keys(&workflow);
            for key in timers {
                if want.get(&key).is_none() || have.get(&key).is_none() {
                    want.as_object_mut().unwrap().remove(&key);
                    have.as_object_mut().unwrap().remove(&key);
                }
            }
        }
        if want != have {
            problems.push(format!(
                "final contexts differ:\n--- run\n{want:#}\n--- submit\n{have:#}"
            ));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name}:\n  {}\n--- submit stderr\n{}",
                problems.join("\n  "),
                text(&submitted.stderr)
            ));
        }
        if name.starts_with("07-") {
            assert_eq!(got["status"], "halted", "{name} halts: {got:#}");
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n\n"),
        cluster.logs()
    );
}

fn three_logs() -> Value {
    json!({"name": "three-logs", "version": 1,
        "nodes": [
            {"id": "a", "name": "A", "type": "log", "parameters": {"message": "a {{$input.n}}"}},
            {"id": "b", "name": "B", "type": "log", "parameters": {"message": "b after {{$A.message}}"}},
            {"id": "c", "name": "C", "type": "log", "parameters": {"message": "c after {{$B.message}}"}}
        ],
        "edges": [{"id": "ab", "src": "a", "dst": "b"}, {"id": "bc", "src": "b", "dst": "c"}]})
}

/// `running` statuses per node of one execution among `seen`.
fn runs_per_node(
    seen: &[common::distributed::Seen],
    execution_id: &str,
) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for s in seen {
        let v = s.json();
        if v["execution_id"] == execution_id && v["status"] == "running" {
            *runs
                .entry(v["node_id"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_message_delivered_twice_runs_one_execution_with_one_completion() {
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
    let execution_id = new_execution_id();
    let body =
        serde_json::to_vec(&rune_start(&three_logs(), &execution_id, &json!({"n": 7}))).unwrap();
    let queue = cluster.topology.execution_queue.clone();
    // Two copies at once: with two workers they are usually handled concurrently.
    broker
        .publish(vec![
            Outgoing::new(queue.clone(), body.clone()),
            Outgoing::new(queue.clone(), body.clone()),
        ])
        .await
        .unwrap();
    let logs = || cluster.logs();
    let completion = completions.next_for(&execution_id, BOUND, &logs).await;
    assert_eq!(completion["status"], "completed", "{completion:#}");
    assert_eq!(
        completion["final_context"]["$C"]["message"], "c after b after a 7",
        "{completion:#}"
    );

    // A third copy after the end (a late redelivery) changes nothing either.
    broker
        .publish(vec![Outgoing::new(queue, body)])
        .await
        .unwrap();
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
    let runs = runs_per_node(&statuses.drain(QUIET).await, &execution_id);
    let once: BTreeMap<String, usize> =
        ["a", "b", "c"].iter().map(|n| (n.to_string(), 1)).collect();
    assert_eq!(
        runs, once,
        "every node runs once (running statuses per node)"
    );
    broker.close().await;
}

/// A hop message delivered again after its hop committed (its worker died before the ack):
/// the node does not run again; the messages it handed on go out again and are themselves
/// recognised as committed, down to the wait node whose timer is not scheduled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hop_redelivered_after_its_commit_does_not_run_its_node_again() {
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
    let workflow = json!({"name": "redelivered-hop", "version": 1,
        "nodes": [
            {"id": "a", "name": "A", "type": "log", "parameters": {"message": "a {{$input.n}}"}},
            {"id": "b", "name": "B", "type": "log", "parameters": {"message": "b after {{$A.message}}"}},
            {"id": "w", "name": "W", "type": "wait", "parameters": {"amount": 1500, "unit": "milliseconds"}},
            {"id": "c", "name": "C", "type": "log", "parameters": {"message": "c after {{$B.message}}"}}
        ],
        "edges": [{"id": "ab", "src": "a", "dst": "b"}, {"id": "bw", "src": "b", "dst": "w"},
                  {"id": "wc", "src": "w", "dst": "c"}]});
    let execution_id = new_execution_id();
    let queue = cluster.topology.execution_queue.clone();
    let start =
        serde_json::to_vec(&rune_start(&workflow, &execution_id, &json!({"n": 3}))).unwrap();
    broker
        .publish(vec![Outgoing::new(queue.clone(), start)])
        .await
        .unwrap();
    let logs = || cluster.logs();
    let mut seen = Vec::new();
    loop {
        let s = statuses
            .next(BOUND)
            .await
            .unwrap_or_else(|| panic!("no `waiting` status from W; logs:\n{}", logs()));
        let v = s.json();
        seen.push(s);
        if v["execution_id"] == execution_id.as_str()
            && v["node_id"] == "w"
            && v["status"] == "waiting"
        {
            break;
        }
    }
    // A's hop, exactly as its first delivery (same hop id), twice.
    let hop = json!({"execution_id": execution_id, "workflow_id": "redelivered-hop",
        "workflow_ref": baton_core::graph::content_hash(&workflow), "node_id": "a", "kind": "run",
        "attempt": 1});
    let body = serde_json::to_vec(&hop).unwrap();
    broker
        .publish(vec![
            Outgoing::new(queue.clone(), body.clone()),
            Outgoing::new(queue, body),
        ])
        .await
        .unwrap();
    let completion = completions.next_for(&execution_id, BOUND, &logs).await;
    assert_eq!(completion["status"], "completed", "{completion:#}");
    assert_eq!(
        completion["final_context"]["$C"]["message"], "c after b after a 3",
        "{completion:#}"
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
    seen.extend(statuses.drain(QUIET).await);
    let runs = runs_per_node(&seen, &execution_id);
    let once: BTreeMap<String, usize> = ["a", "b", "w", "c"]
        .iter()
        .map(|n| (n.to_string(), 1))
        .collect();
    assert_eq!(
        runs, once,
        "every node runs once (running statuses per node)"
    );
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_with_a_reason_and_the_worker_keeps_working() {
    let mut cluster = Cluster::new();
    let w = cluster
        .spawn_worker(&[("BATON_MAX_MESSAGE_BYTES", "1000")])
        .await;
    let broker = cluster.broker().await;
    let mut dead = cluster
        .consume(&broker, &cluster.topology.dead_letter_queue)
        .await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut statuses = cluster
        .consume(&broker, &cluster.topology.status_queue)
        .await;

    let not_json = b"{this is not json".to_vec();
    let oversize = serde_json::to_vec(&json!({"padding": "x".repeat(2000)})).unwrap();
    let bad_execution = new_execution_id();
    let bad_definition = json!({"name": "bad", "nodes": [
        {"id": "n1", "name": "N1", "type": "no-such-node-type", "parameters": {}}], "edges": []});
    let mut bad_start = rune_start(&bad_definition, &bad_execution, &json!({}));
    bad_start["current_node"] = json!("n1");
    let bad_start = serde_json::to_vec(&bad_start).unwrap();
    let unknown_ref = "0123456789abcdef0123456789abcdef";
    let orphan_execution = new_execution_id();
    let orphan_hop = serde_json::to_vec(&json!({
        "execution_id": orphan_execution, "workflow_id": "w", "workflow_ref": unknown_ref,
        "node_id": "n1", "kind": "run", "attempt": 1}))
    .unwrap();
    assert!(
        bad_start.len() < 1000 && orphan_hop.len() < 1000,
        "only the oversize message is over the limit"
    );

    let queue = cluster.topology.execution_queue.clone();
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        ("not JSON", not_json, vec!["not JSON"]),
        ("oversize", oversize, vec!["1000-byte limit"]),
        (
            "invalid definition",
            bad_start,
            vec!["invalid workflow_definition", "no-such-node-type"],
        ),
        (
            "unknown workflow_ref",
            orphan_hop,
            vec![unknown_ref, "not stored"],
        ),
    ];
    for (_, body, _) in &cases {
        broker
            .publish(vec![Outgoing::new(queue.clone(), body.clone())])
            .await
            .unwrap();
    }
    let mut dead_letters = Vec::new();
    for _ in 0..cases.len() {
        match dead.next(BOUND).await {
            Some(s) => dead_letters.push(s),
            None => panic!(
                "only {} dead letters: {dead_letters:#?}\n{}",
                dead_letters.len(),
                cluster.logs()
            ),
        }
    }
    for (what, body, words) in &cases {
        let letter = dead_letters
            .iter()
            .find(|d| &d.body == body)
            .unwrap_or_else(|| {
                panic!(
                    "the {what} message was not dead-lettered\n{}",
                    cluster.logs()
                )
            });
        let reason = letter.header("x-baton-reason").unwrap_or_default();
        for word in words {
            assert!(
                reason.contains(word),
                "{what}: reason {reason:?} does not mention {word:?}"
            );
        }
    }

    // The invalid definition's execution ends `failed`, with a `failed` status.
    let logs = || cluster.logs();
    let failed = completions.next_for(&bad_execution, BOUND, &logs).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert!(
        failed["failure_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no-such-node-type"),
        "{failed:#}"
    );
    let status = statuses
        .wait_for(&bad_execution, BOUND, |v| v["status"] == "failed", &logs)
        .await;
    assert_eq!(status["node_id"], "n1", "{status:#}");

    // Still healthy, and still working.
    assert_eq!(
        cluster.readyz(w).await,
        Some(200),
        "the worker is ready after the poison"
    );
    let ok = cluster.workflow_file(
        "ok.json",
        &json!({"name": "ok", "nodes": [{"id": "a", "name": "A", "type": "log", "parameters": {"message": "alive"}}], "edges": []}),
    );
    let out = cluster
        .submit(&ok, &json!({}), &["--wait", "--timeout-secs", "60"])
        .await;
    let completion = completion_of(&out, &cluster);
    assert_eq!(completion["status"], "completed", "{completion:#}");
    assert_eq!(completion["final_context"]["$A"]["message"], "alive");
    assert_eq!(cluster.running(), vec![w], "the worker is still running");

    // The hop of an unknown execution fails nothing: no completion for it.
    let rest: Vec<Value> = completions
        .drain(QUIET)
        .await
        .iter()
        .map(|s| s.json())
        .collect();
    assert!(
        rest.iter()
            .all(|c| c["execution_id"] != orphan_execution.as_str()),
        "{rest:#?}"
    );
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_of_2500_items_and_a_join_over_two_workers_completes_once_in_order() {
    const ITEMS: usize = 2_500;
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    // split (1 hop) → 2,500 log hops → 2,500 aggregator arrivals → done (1 hop): 5,002 hops.
    let workflow = json!({"name": "fan-out", "version": 1,
    "nodes": [
        {"id": "split", "name": "Split", "type": "split", "parameters": {"input_array": "$input.items"}},
        {"id": "each", "name": "Each", "type": "log", "parameters": {"message": "item $item", "level": "debug"}},
        {"id": "collect", "name": "Collect", "type": "aggregator", "parameters": {}},
        {"id": "done", "name": "Done", "type": "log", "parameters": {"message": "{{$Collect.count}} items"}}
    ],
    "edges": [
        {"id": "e1", "src": "split", "dst": "each"},
        {"id": "e2", "src": "each", "dst": "collect"},
        {"id": "e3", "src": "collect", "dst": "done"}
    ]});
    let file = cluster.workflow_file("fan-out.json", &workflow);
    let execution_id = new_execution_id();
    let items: Vec<usize> = (0..ITEMS).collect();
    let out = cluster
        .submit(
            &file,
            &json!({ "items": items }),
            &["--execution-id", &execution_id],
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let logs = || cluster.logs();
    let completion = completions
        .next_for(&execution_id, Duration::from_secs(240), &logs)
        .await;
    assert_eq!(
        completion["status"], "completed",
        "{}",
        completion["failure_reason"]
    );
    let collect = &completion["final_context"]["$Collect"];
    let aggregated = collect["aggregated"]
        .as_array()
        .expect("aggregated is an array");
    assert_eq!(aggregated.len(), ITEMS);
    assert_eq!(collect["count"], ITEMS);
    assert_eq!(collect["skipped"], json!([]));
    for (i, item) in aggregated.iter().enumerate() {
        assert_eq!(
            item["message"],
            format!("item {i}"),
            "aggregated[{i}] is item {i}'s output"
        );
    }
    assert_eq!(
        completion["final_context"]["$Done"]["message"],
        format!("{ITEMS} items")
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
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_messages_stay_under_4_kb_while_the_context_holds_a_megabyte() {
    const ITEMS: usize = 1_000;
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    // Copies of what is published to the execution queue through the exchange: the start
    // message. Hop messages go straight to the queue (RFC 0004); the workers' metrics size them.
    let mut copies = cluster
        .subscribe(&broker, &[&cluster.topology.execution_queue])
        .await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let workflow = json!({"name": "big-context", "version": 1,
    "nodes": [
        {"id": "split", "name": "Split", "type": "split", "parameters": {"input_array": "$input.items"}},
        {"id": "echo", "name": "Echo", "type": "log", "parameters": {"message": "$item", "level": "debug"}},
        {"id": "collect", "name": "Collect", "type": "aggregator", "parameters": {}},
        {"id": "done", "name": "Done", "type": "log", "parameters": {"message": "{{$Collect.count}} items"}}
    ],
    "edges": [
        {"id": "e1", "src": "split", "dst": "echo"},
        {"id": "e2", "src": "echo", "dst": "collect"},
        {"id": "e3", "src": "collect", "dst": "done"}
    ]});
    let file = cluster.workflow_file("big-context.json", &workflow);
    let items: Vec<String> = (0..ITEMS)
        .map(|i| format!("{i:04}{}", "k".repeat(1020)))
        .collect();
    let execution_id = new_execution_id();
    let out = cluster
        .submit(
            &file,
            &json!({ "items": items }),
            &["--execution-id", &execution_id],
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logs = || cluster.logs();
    let completion = completions
        .next_for(&execution_id, Duration::from_secs(180), &logs)
        .await;
    assert_eq!(
        completion["status"], "completed",
        "{}",
        completion["failure_reason"]
    );
    let aggregated = completion["final_context"]["$Collect"]["aggregated"]
        .as_array()
        .unwrap();
    assert_eq!(aggregated.len(), ITEMS);
    assert_eq!(
        aggregated[999]["message"], items[999],
        "the context holds every 1 KB item"
    );

    // The start message went through the exchange and carried the whole 1 MB input.
    let Some(start) = copies.next(BOUND).await else {
        panic!("the start message was not seen");
    };
    assert!(
        start.json().get("workflow_definition").is_some(),
        "only the start message goes through the exchange, not: {}",
        text(&start.body)
    );
    let start_bytes = start.body.len();
    assert!(
        start_bytes > ITEMS * 1024,
        "the start message carried the 1 MB input ({start_bytes} bytes)"
    );
    // Every hop message was published (and recorded) before the completion: split + 1,000
    // echo + done. The 1,000 aggregator arrivals are handled by the echo hops in-process
    // (`BATON_LOCAL_ARRIVALS`, RFC 0011): they never go through the broker.
    let expected_hops = (2 + ITEMS) as f64;
    let published = cluster.metric_sum("baton_hop_message_bytes_count").await;
    assert!(
        published >= expected_hops,
        "{published} hop messages recorded, {expected_hops} expected"
    );
    let mut largest_bucket = None;
    for le in ["512", "1024", "2048", "4096"] {
        let at_most = cluster
            .metric_sum(&format!("baton_hop_message_bytes_bucket{{le=\"{le}\"}}"))
            .await;
        if at_most == published {
            largest_bucket.get_or_insert(le);
        }
    }
    let Some(largest_bucket) = largest_bucket else {
        panic!(
            "some of the {published} hop messages are 4 KB or more: {}",
            cluster.metric_sum("baton_hop_message_bytes_sum").await
        );
    };
    eprintln!(
        "{published} hop messages, all at most {largest_bucket} bytes; start message {start_bytes} bytes"
    );
    broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_cancel_halts_an_execution_waiting_on_a_long_timer() {
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
    let workflow = json!({"name": "long-wait", "version": 1,
        "nodes": [
            {"id": "begin", "name": "Begin", "type": "log", "parameters": {"message": "begin"}},
            {"id": "wait", "name": "Long wait", "type": "wait", "parameters": {"amount": 60, "unit": "seconds"}},
            {"id": "after", "name": "After", "type": "log", "parameters": {"message": "the wait ended"}}
        ],
        "edges": [{"id": "e1", "src": "begin", "dst": "wait"}, {"id": "e2", "src": "wait", "dst": "after"}]});
    let file = cluster.workflow_file("long-wait.json", &workflow);
    let execution_id = new_execution_id();
    let out = cluster
        .submit(&file, &json!({}), &["--execution-id", &execution_id])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logs = || cluster.logs();
    statuses
        .wait_for(
            &execution_id,
            BOUND,
            |v| v["node_id"] == "wait" && v["status"] == "waiting",
            &logs,
        )
        .await;

    let started = std::time::Instant::now();
    let out = cluster.cancel(&execution_id).await;
    assert!(out.status.success(), "baton cancel: {}", text(&out.stderr));
    // Well before the timer would have fired (60 s after it was set).
    let completion = completions
        .next_for(&execution_id, Duration::from_secs(45), &logs)
        .await;
    assert_eq!(completion["status"], "halted", "{completion:#}");
    let reason = completion["failure_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cancelled"), "reason: {reason:?}");
    assert!(
        completion["final_context"].get("$After").is_none(),
        "{completion:#}"
    );
    eprintln!(
        "halted {} ms after baton cancel",
        started.elapsed().as_millis()
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
    broker.close().await;
}
