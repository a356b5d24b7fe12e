//! Dead letters as an operation, black-box on the worker pool: what a worker dead-letters is
//! listed with its reason, shown, replayed once after the fix (driving its execution to its end
//! exactly once), or purged; the worker's counters move (README, "Operations → Dead letters").
//! Every test has its own queue and key prefixes (see `common::distributed`).

mod common;

use std::time::Duration;

use baton_amqp::{Headers, Outgoing};
use baton_testkit::wait_until;
use common::distributed::{BOUND, Cluster, new_execution_id, rune_start};
use serde_json::{Value, json};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `baton dlq ARGS…` with the cluster's environment; panics unless it exits 0.
async fn dlq(cluster: &Cluster, args: &[&str]) -> String {
    let mut cmd = cluster.command();
    cmd.arg("dlq").args(args);
    let out = cluster.output(cmd).await;
    assert!(
        out.status.success(),
        "baton dlq {args:?} exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// `baton dlq list --json`, parsed.
async fn listed(cluster: &Cluster, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(extra);
    let mut cmd = cluster.command();
    cmd.arg("dlq").args(&args);
    let out = cluster.output(cmd).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("list --json: {e}: {}", text(&out.stdout)))
}

/// Waits until the dead-letter queue lists `n` messages.
async fn wait_listed(cluster: &Cluster, n: usize) -> Vec<Value> {
    wait_until(
        tokio::time::Instant::now() + BOUND,
        Duration::from_millis(200),
        async || {
            let rows = listed(cluster, &[]).await;
            (rows.len() == n).then_some(rows)
        },
    )
    .await
    .unwrap_or_else(|| panic!("the dead-letter queue never held {n}\n{}", cluster.logs()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_listed_with_its_reason_shown_kept_in_order_and_purged_and_counted_by_reason() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let queue = cluster.topology.execution_queue.clone();
    // Unreadable: not a message any worker can run.
    broker
        .publish(vec![Outgoing::new(
            queue.clone(),
            br#"{"hello":1}"#.to_vec(),
        )])
        .await
        .expect("publish");
    wait_listed(&cluster, 1).await;
    // An invalid start: its execution is created and fails.
    let execution = new_execution_id();
    let broken = json!({"name": "broken", "nodes": [{"id": "a", "name": "A", "type": "frobnicate"}], "edges": []});
    let start = rune_start(&broken, &execution, &json!({}));
    broker
        .publish(vec![Outgoing::new(
            queue,
            serde_json::to_vec(&start).unwrap(),
        )])
        .await
        .expect("publish");
    let rows = wait_listed(&cluster, 2).await;

    // In the order they were dead-lettered, each with its reason; the same ids when read again.
    assert_eq!(rows[0]["execution_id"], Value::Null, "{rows:?}");
    assert_eq!(rows[1]["execution_id"], execution.as_str(), "{rows:?}");
    assert!(
        rows[1]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid workflow_definition"),
        "{rows:?}"
    );
    assert!(
        rows[1]["dead_lettered_at"].as_str().unwrap().ends_with('Z'),
        "{rows:?}"
    );
    assert_eq!(
        listed(&cluster, &[]).await,
        rows,
        "a read takes nothing away"
    );
    let only = listed(&cluster, &["--execution", &execution]).await;
    assert_eq!(only, vec![rows[1].clone()]);
    let by_reason = listed(&cluster, &["--reason", "INVALID WORKFLOW"]).await;
    assert_eq!(by_reason, vec![rows[1].clone()]);
    assert_eq!(
        listed(&cluster, &["--limit", "1"]).await,
        vec![rows[0].clone()]
    );
    let table = dlq(&cluster, &["list"]).await;
    assert!(
        table.contains(rows[1]["id"].as_str().unwrap()) && table.contains(&execution),
        "{table}"
    );

    let id = rows[1]["id"].as_str().unwrap();
    let shown = dlq(&cluster, &["show", id]).await;
    assert!(
        shown.contains("x-baton-reason: invalid workflow_definition"),
        "{shown}"
    );
    assert!(
        shown.contains("\"current_node\": \"$start\""),
        "pretty body: {shown}"
    );

    // Its execution failed when it was dead-lettered: a replay would be dropped, so it is not
    // replayed (and stays) unless forced.
    let replay = dlq(&cluster, &["replay", id]).await;
    assert!(replay.contains("has finished (failed)"), "{replay}");
    assert_eq!(listed(&cluster, &[]).await.len(), 2);

    // Purge asks for --yes, then empties.
    let dry = dlq(&cluster, &["purge", "--all"]).await;
    assert!(dry.contains("run again with --yes"), "{dry}");
    assert_eq!(listed(&cluster, &[]).await.len(), 2);
    dlq(&cluster, &["purge", "--all", "--yes"]).await;
    assert!(listed(&cluster, &[]).await.is_empty());

    let counted = cluster
        .metric_sum(r#"baton_dead_letters_total{reason="unreadable"}"#)
        .await
        + cluster
            .metric_sum(r#"baton_dead_letters_total{reason="invalid_start"}"#)
            .await;
    assert_eq!(counted, 2.0);
    assert!(cluster.metric_sum("baton_queue_lag_seconds_count").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_signal_resumes_its_execution_to_one_completion_with_a_fresh_delivery_budget() {
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let mut statuses = cluster
        .subscribe(&broker, &[&cluster.topology.status_queue])
        .await;
    let file = cluster.workflow_file(
        "approval.json",
        &json!({"name": "approval", "nodes": [
            {"id": "w", "name": "Approval", "type": "wait",
             "parameters": {"mode": "signal", "signal": "approve", "amount": 10, "unit": "minutes"}},
            {"id": "ok", "name": "Approved", "type": "log", "parameters": {"message": "by {{$Approval.data.by}}"}}
        ], "edges": [{"id": "e1", "src": "w", "dst": "ok"}]}),
    );
    let execution = new_execution_id();
    let out = cluster
        .submit(&file, &json!({}), &["--execution-id", &execution])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logs = || cluster.logs();
    statuses
        .wait_for(&execution, BOUND, |s| s["status"] == "waiting", &logs)
        .await;

    // The approval crashed three workers: the delivery budget dead-lettered it (a signal names
    // no execution to fail, so the execution still waits), with its count left in Redis.
    let signal = serde_json::to_vec(&baton_core::wire::SignalMessage::new(
        execution.clone(),
        "approve".to_owned(),
        json!({"by": "ops"}),
    ))
    .unwrap();
    let options = baton_redis::RedisOptions {
        key_prefix: cluster.key_prefix.clone(),
        ..Default::default()
    };
    let store = baton_redis::RedisStore::connect(&cluster.redis_url, options)
        .await
        .expect("Redis");
    let counts = store.deliveries();
    for _ in 0..3 {
        counts.redelivered(&signal).await.expect("count");
    }
    broker
        .dead_letter(
            signal.clone(),
            "crashed or stalled 3 workers",
            Headers::new(),
        )
        .await
        .expect("dead-letter");
    let rows = wait_listed(&cluster, 1).await;
    assert_eq!(rows[0]["execution_id"], execution.as_str());
    assert_eq!(rows[0]["reason"], "crashed or stalled 3 workers");
    let id = rows[0]["id"].as_str().unwrap().to_owned();

    // The fix is deployed: replay it, once.
    let replay = dlq(&cluster, &["replay", &id]).await;
    assert!(replay.contains(&format!("{id}: replayed")), "{replay}");
    let done = completions.next_for(&execution, BOUND, &logs).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        listed(&cluster, &[]).await.is_empty(),
        "removed once replayed"
    );
    assert_eq!(
        counts.tally(&signal).await.expect("tally"),
        Default::default(),
        "the replay starts with a fresh delivery budget"
    );
    // Replaying the same id again finds nothing: one replay, one completion.
    let again = dlq(&cluster, &["replay", &id]).await;
    assert!(again.contains("0 replayed"), "{again}");
    let more = completions.drain(Duration::from_secs(2)).await;
    assert!(more.is_empty(), "one completion only: {}", more.len());
}
