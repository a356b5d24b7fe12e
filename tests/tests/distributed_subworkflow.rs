//! `workflow` (sub-workflow) nodes on the worker pool, black-box: two `baton worker` processes
//! on the real RabbitMQ and Redis, child workflows stored in the Redis workflow catalog (where
//! the master's `POST /workflows` stores them), executions started with `baton submit`.

mod common;

use std::time::Duration;

use baton_engine::ports::WorkflowCatalog;
use baton_redis::{RedisCatalog, RedisOptions, RedisStore};
use common::distributed::{BOUND, Cluster, Observer, completion_of, new_execution_id};
use serde_json::{Value, json};

/// The workflow catalog under the cluster's key prefix.
async fn catalog(cluster: &Cluster) -> RedisCatalog {
    let options = RedisOptions {
        key_prefix: cluster.key_prefix.clone(),
        ..RedisOptions::default()
    };
    RedisStore::connect(&cluster.redis_url, options)
        .await
        .expect("Redis (scripts/services starts it)")
        .catalog()
}

/// Greets `$input.who` after a short timer, so children's hops spread over both workers.
fn greet() -> Value {
    json!({
        "id": "greet",
        "nodes": [
            {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 20, "unit": "milliseconds"}},
            {"id": "g", "name": "Greet", "type": "log", "parameters": {"message": "hello {{$input.who}}"}}
        ],
        "edges": [{"id": "c1", "src": "pause", "dst": "g"}]
    })
}

/// Splits over `$input.people`, runs `workflow_id` for each, aggregates; errors go to `Failed`.
fn per_person(workflow_id: &str) -> Value {
    json!({
        "name": "per-person",
        "nodes": [
            {"id": "people", "name": "People", "type": "split", "parameters": {"input_array": "{{ $input.people }}"}},
            {"id": "sub", "name": "Sub", "type": "workflow", "parameters": {"workflow_id": workflow_id, "input": {"who": "{{ $item }}"}}},
            {"id": "all", "name": "All", "type": "aggregator", "parameters": {}},
            {"id": "failed", "name": "Failed", "type": "log", "parameters": {"message": "{{$error.code}}"}}
        ],
        "edges": [
            {"id": "e1", "src": "people", "dst": "sub"},
            {"id": "e2", "src": "sub", "dst": "all"},
            {"id": "e3", "src": "sub", "dst": "failed", "on": "error"}
        ]
    })
}

/// Waits until the parent's `sub` node and its child's `w` node both report `waiting` (in
/// either order: the child may start waiting before its parent parks). Returns the child's id.
async fn both_waiting(statuses: &mut Observer, parent_id: &str, cluster: &Cluster) -> String {
    let mut child = None;
    let mut children_waiting = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    while tokio::time::Instant::now() < deadline {
        let Some(seen) = statuses.next(Duration::from_secs(1)).await else {
            continue;
        };
        let v = seen.json();
        if v["status"] != "waiting" {
            continue;
        }
        let id = v["execution_id"].as_str().unwrap_or_default().to_string();
        if id == parent_id && v["node_id"] == "sub" {
            child = v["output"]["execution_id"].as_str().map(str::to_string);
        } else if v["node_id"] == "w" {
            children_waiting.insert(id);
        }
        if let Some(c) = &child
            && children_waiting.contains(c)
        {
            return c.clone();
        }
    }
    panic!(
        "parent and child never both waited (child {child:?})\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_run_on_the_worker_pool_and_hand_their_context_back() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let catalog = catalog(&cluster).await;
    catalog.put("greet", &greet()).await.expect("catalog put");

    let people = ["ada", "bob", "cy", "dee", "eve", "fay"];
    let workflow = cluster.workflow_file("per-person.json", &per_person("greet"));
    let out = cluster
        .submit(
            &workflow,
            &json!({"people": people}),
            &["--wait", "--timeout-secs", "120"],
        )
        .await;
    let completion = completion_of(&out, &cluster);
    assert_eq!(
        completion["status"],
        "completed",
        "{completion:#}\n{}",
        cluster.logs()
    );
    let children = completion["final_context"]["$All"]["aggregated"]
        .as_array()
        .expect("aggregated")
        .clone();
    let greetings: Vec<&Value> = children.iter().map(|c| &c["$Greet"]["message"]).collect();
    let want: Vec<Value> = people.iter().map(|p| json!(format!("hello {p}"))).collect();
    assert_eq!(greetings, want.iter().collect::<Vec<_>>(), "{completion:#}");
    assert_eq!(completion["final_context"]["$All"]["skipped"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_failing_child_takes_the_error_route_and_the_depth_limit_holds() {
    let mut cluster = Cluster::new();
    cluster
        .spawn_worker(&[("BATON_MAX_WORKFLOW_DEPTH", "3")])
        .await;
    cluster
        .spawn_worker(&[("BATON_MAX_WORKFLOW_DEPTH", "3")])
        .await;
    let catalog = catalog(&cluster).await;
    let looping = json!({
        "id": "loop",
        "nodes": [{"id": "again", "name": "Again", "type": "workflow", "parameters": {"workflow_id": "loop"}}],
        "edges": []
    });
    catalog.put("loop", &looping).await.expect("catalog put");

    let missing = cluster.workflow_file("missing.json", &per_person("nope"));
    let out = cluster
        .submit(
            &missing,
            &json!({"people": ["x"]}),
            &["--wait", "--timeout-secs", "120"],
        )
        .await;
    let completion = completion_of(&out, &cluster);
    assert_eq!(completion["status"], "completed", "{completion:#}");
    assert_eq!(
        completion["final_context"]["$All"]["skipped"],
        json!([0]),
        "the item went to the error route: {completion:#}"
    );

    let top = cluster.workflow_file("loop.json", &looping);
    let out = cluster
        .submit(&top, &json!({}), &["--wait", "--timeout-secs", "120"])
        .await;
    let completion = completion_of(&out, &cluster);
    assert_eq!(completion["status"], "halted", "{completion:#}");
    let reason = completion["failure_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("sub-workflow depth limit 3 reached"),
        "BATON_MAX_WORKFLOW_DEPTH applies: {reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_parent_cancels_the_child_on_the_pool() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    cluster.spawn_worker(&[]).await;
    let catalog = catalog(&cluster).await;
    let held = json!({
        "id": "held",
        "nodes": [{"id": "w", "name": "Hold", "type": "wait", "parameters": {"mode": "signal", "signal": "go"}}],
        "edges": []
    });
    catalog.put("held", &held).await.expect("catalog put");
    let parent = json!({
        "name": "parent",
        "nodes": [
            {"id": "sub", "name": "Sub", "type": "workflow", "parameters": {"workflow_id": "held"}},
            {"id": "after", "name": "After", "type": "log", "parameters": {"message": "went on"}}
        ],
        "edges": [{"id": "e1", "src": "sub", "dst": "after"}]
    });
    let broker = cluster.broker().await;
    let mut statuses = cluster
        .consume(&broker, &cluster.topology.status_queue)
        .await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let parent_id = new_execution_id();
    let file = cluster.workflow_file("parent.json", &parent);
    let out = cluster
        .submit(&file, &json!({}), &["--execution-id", &parent_id])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let child = both_waiting(&mut statuses, &parent_id, &cluster).await;

    let out = cluster.cancel(&parent_id).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut seen = std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        if let Some(m) = completions.next(Duration::from_secs(1)).await {
            let v = m.json();
            if let Some(id) = v["execution_id"].as_str() {
                seen.insert(id.to_string(), v.clone());
            }
        }
    }
    let parent_c = seen.get(&parent_id).expect("the parent completed");
    assert_eq!(parent_c["status"], "halted", "{parent_c:#}");
    let child_c = seen
        .get(&child)
        .unwrap_or_else(|| panic!("the child completed: {seen:#?}\n{}", cluster.logs()));
    assert_eq!(child_c["status"], "halted", "{child_c:#}");
    assert_eq!(
        child_c["failure_reason"],
        json!(format!("parent execution `{parent_id}` stopped"))
    );
    assert!(
        parent_c["final_context"].get("$After").is_none(),
        "the cancelled parent did not go on: {parent_c:#}"
    );
}

/// A child started by one worker, then finished by another that never saw either definition:
/// both are loaded from Redis by reference, and the child's result resumes the parent there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_started_on_one_worker_completes_its_parent_on_another() {
    let mut cluster = Cluster::new();
    let first = cluster.spawn_worker(&[]).await;
    let catalog = catalog(&cluster).await;
    let held = json!({
        "id": "held",
        "nodes": [
            {"id": "w", "name": "Hold", "type": "wait", "parameters": {"mode": "signal", "signal": "go"}},
            {"id": "g", "name": "Greet", "type": "log", "parameters": {"message": "hello {{$input.who}} ({{$Hold.data.note}})"}}
        ],
        "edges": [{"id": "c1", "src": "w", "dst": "g"}]
    });
    catalog.put("held", &held).await.expect("catalog put");
    let parent = json!({
        "name": "parent",
        "nodes": [
            {"id": "sub", "name": "Sub", "type": "workflow", "parameters": {"workflow_id": "held", "input": {"who": "{{$input.who}}"}}},
            {"id": "after", "name": "After", "type": "log", "parameters": {"message": "child said {{$Sub.$Greet.message}}"}}
        ],
        "edges": [{"id": "e1", "src": "sub", "dst": "after"}]
    });
    let broker = cluster.broker().await;
    let mut statuses = cluster
        .consume(&broker, &cluster.topology.status_queue)
        .await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let parent_id = new_execution_id();
    let file = cluster.workflow_file("parent.json", &parent);
    let out = cluster
        .submit(
            &file,
            &json!({"who": "ada"}),
            &["--execution-id", &parent_id],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let child = both_waiting(&mut statuses, &parent_id, &cluster).await;

    // The worker that started the child goes away; a fresh one takes over.
    cluster.spawn_worker(&[]).await;
    cluster.kill(first);
    let mut signal = cluster.command();
    signal
        .arg("signal")
        .arg(&child)
        .arg("go")
        .arg("--data")
        .arg(json!({"note": "via worker 2"}).to_string());
    let out = cluster.output(signal).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let logs = || cluster.logs();
    let completion = completions
        .wait_for(&parent_id, BOUND, |_| true, &logs)
        .await;
    assert_eq!(
        completion["status"],
        "completed",
        "{completion:#}\n{}",
        logs()
    );
    assert_eq!(
        completion["final_context"]["$After"]["message"],
        json!("child said hello ada (via worker 2)"),
        "{completion:#}"
    );
}
