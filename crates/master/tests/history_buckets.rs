//! The Redis history with its executions spread over buckets (the cluster layout, forced on the
//! shared single Redis under a unique prefix, and on a real cluster of the test's own): listing
//! merges the buckets' indexes newest first, pages and cursors cross buckets, filters hold, and
//! every page equals the memory history's (the reference) for the same executions; the event
//! scripts and the record limit work per bucket. On a single node without the forced layout
//! the key names are unchanged.

use std::collections::HashSet;
use std::sync::LazyLock;

use baton_core::message::{Completion, StatusEvent};
use baton_master::history::memory::MemoryHistory;
use baton_master::history::redis::RedisHistory;
use baton_master::history::{History, ListQuery, NewExecution, Summary};
use serde_json::json;

fn redis_url() -> String {
    std::env::var("BATON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

async fn single_node() -> baton_redis::RedisConnection {
    let target = baton_redis::RedisTarget::parse(&redis_url(), false).expect("a Redis URL");
    baton_redis::connect(&target, baton_redis::Timeouts::default())
        .await
        .expect("Redis (scripts/services)")
}

async fn keys_under(prefix: &str) -> Vec<String> {
    let mut conn = single_node().await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    keys.sort();
    keys
}

async fn drop_keys(prefix: &str) {
    let keys = keys_under(prefix).await;
    let mut conn = single_node().await;
    for key in keys {
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

/// Ten minutes before this test process started (unix ms): the executions are recent, so the
/// retention does not trim them.
static BASE_MS: LazyLock<i64> =
    LazyLock::new(|| chrono::Utc::now().timestamp_millis() / 1_000 * 1_000 - 600_000);

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a valid instant")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Execution `i`: three workflows, statuses in turn, start times that collide every few
/// executions (the id then orders them).
pub fn execution(i: usize) -> NewExecution {
    let workflow = ["wf-a", "wf-b", "wf-c"][i % 3];
    let status = ["running", "completed", "failed", "completed"][i % 4];
    let started_at = rfc3339(*BASE_MS + (i as i64 / 3) * 1_000);
    NewExecution {
        summary: Summary {
            execution_id: format!("exec-{i:03}"),
            workflow_id: workflow.into(),
            version: Some(1),
            status: status.into(),
            trigger: "api".into(),
            started_at,
            completed_at: None,
            duration_ms: None,
            failure_reason: None,
        },
        input: json!({ "i": i }),
        definition_hash: format!("sha256:{workflow}"),
        definition: json!({ "id": workflow }),
        replay_of: None,
    }
}

/// Every page of `query` with `limit`, as (ids, cursor) pairs.
async fn pages(h: &dyn History, query: &ListQuery) -> Vec<(Vec<String>, Option<String>)> {
    let mut out = Vec::new();
    let mut q = query.clone();
    loop {
        let page = h.list(&q).await.expect("list");
        let ids = page
            .executions
            .iter()
            .map(|s| s.execution_id.clone())
            .collect();
        out.push((ids, page.next_cursor.clone()));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
        assert!(out.len() < 200, "pagination ends");
    }
}

/// Lists the same executions from `redis` and from the memory history, for every filter and
/// page size, and expects the same pages; checks newest-first order on the way.
pub async fn lists_like_the_memory_history(redis: &dyn History, count: usize) {
    let memory = MemoryHistory::new(10_000, 3_600);
    for i in 0..count {
        memory.create(&execution(i)).await.expect("memory create");
    }
    for workflow in [None, Some("wf-b")] {
        for status in [None, Some("failed")] {
            for limit in [1, 4, 7, 50] {
                let q = ListQuery {
                    workflow: workflow.map(str::to_string),
                    status: status.map(str::to_string),
                    limit,
                    cursor: None,
                };
                let got = pages(redis, &q).await;
                let want = pages(&memory, &q).await;
                assert_eq!(got, want, "{workflow:?} {status:?} limit {limit}");
                let all: Vec<&String> = got.iter().flat_map(|(ids, _)| ids).collect();
                let expected = (0..count)
                    .map(execution)
                    .filter(|e| workflow.is_none_or(|w| e.summary.workflow_id == w))
                    .filter(|e| status.is_none_or(|s| e.summary.status == s))
                    .count();
                assert_eq!(all.len(), expected, "every match once");
                let mut sorted = all.clone();
                sorted.sort_by_key(|id| {
                    let i: usize = id[5..].parse().expect("exec-NNN");
                    std::cmp::Reverse((i / 3, id.to_string()))
                });
                assert_eq!(all, sorted, "newest first, ties by id");
            }
        }
    }
}

#[tokio::test]
async fn a_history_over_several_buckets_lists_pages_and_filters_like_one_index() {
    let prefix = baton_testkit_prefix("histbuckets");
    let redis = RedisHistory::new(single_node().await, &prefix, 10_000, 3_600, 16).with_buckets(5);
    let count = 40;
    for i in 0..count {
        redis.create(&execution(i)).await.expect("create");
    }
    // The executions are in several buckets, each with its own indexes.
    let keys = keys_under(&prefix).await;
    let indexes: HashSet<&String> = keys.iter().filter(|k| k.ends_with("}idx")).collect();
    assert_eq!(indexes.len(), 5, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with(&format!("{{{prefix}"))),
        "every key is hash-tagged: {keys:?}"
    );
    lists_like_the_memory_history(&redis, count).await;
    // A record is found in its bucket.
    let got = redis.get("exec-007").await.expect("get").expect("a record");
    assert_eq!(got.summary.workflow_id, "wf-b");
    assert_eq!(
        redis.definition("sha256:wf-b").await.expect("definition"),
        Some(json!({ "id": "wf-b" }))
    );
    drop_keys(&prefix).await;
}

#[tokio::test]
async fn on_a_single_node_the_history_keys_are_unchanged() {
    let prefix = baton_testkit_prefix("histsingle");
    let redis = RedisHistory::new(single_node().await, &prefix, 10_000, 3_600, 16);
    for i in 0..2 {
        redis.create(&execution(i)).await.expect("create");
    }
    let keys = keys_under(&prefix).await;
    let want: Vec<String> = [
        "def:sha256:wf-a",
        "def:sha256:wf-b",
        "idx",
        "idx:wf-a",
        "idx:wf-b",
        "x:exec-000",
        "x:exec-001",
    ]
    .iter()
    .map(|k| format!("{prefix}{k}"))
    .collect();
    assert_eq!(keys, want);
    lists_like_the_memory_history(&redis, 2).await;
    drop_keys(&prefix).await;
}

#[tokio::test]
async fn over_buckets_the_record_limit_is_kept_per_bucket_dropping_each_buckets_oldest() {
    let prefix = baton_testkit_prefix("histtrim");
    // 8 records over 4 buckets: 2 per bucket.
    let redis = RedisHistory::new(single_node().await, &prefix, 8, 3_600, 16).with_buckets(4);
    for i in 0..60 {
        redis.create(&execution(i)).await.expect("create");
    }
    let page = redis
        .list(&ListQuery {
            limit: 100,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(page.executions.len(), 8, "two per bucket");
    assert!(
        redis.get("exec-059").await.expect("get").is_some(),
        "the newest is kept"
    );
    assert!(redis.get("exec-000").await.expect("get").is_none());
    drop_keys(&prefix).await;
}

/// Executions first seen through their events (no `create`): a status event creates the
/// record, a completion finishes it; each is one script over the execution's bucket.
async fn events_create_and_finish_records(h: &dyn History) {
    for i in 0..12_u8 {
        let id = format!("ev-{i:02}");
        let at = rfc3339(*BASE_MS + i64::from(i) * 1_000);
        let status: StatusEvent = serde_json::from_value(json!({
            "workflow_id": "wf-ev", "execution_id": id, "node_id": "n1", "node_name": "N1",
            "status": "success", "executed_at": at, "duration_ms": 5,
        }))
        .expect("a status event");
        h.apply_status(&status).await.expect("apply_status");
        if i % 2 == 0 {
            let done: Completion = serde_json::from_value(json!({
                "workflow_id": "wf-ev", "execution_id": id, "status": "completed",
                "final_context": {"ok": i}, "completed_at": rfc3339(*BASE_MS + 60_000),
                "total_duration_ms": 60_000 - u64::from(i) * 1_000,
            }))
            .expect("a completion");
            h.apply_completion(&done).await.expect("apply_completion");
        }
        let record = h.get(&id).await.expect("get").expect("a record");
        assert_eq!(record.runs.len(), 1, "{id}");
        let want = if i % 2 == 0 { "completed" } else { "running" };
        assert_eq!(record.summary.status, want, "{id}");
    }
    let q = ListQuery {
        workflow: Some("wf-ev".into()),
        limit: 5,
        ..ListQuery::default()
    };
    let ids: Vec<String> = pages(h, &q)
        .await
        .into_iter()
        .flat_map(|(ids, _)| ids)
        .collect();
    let want: Vec<String> = (0..12).rev().map(|i| format!("ev-{i:02}")).collect();
    assert_eq!(ids, want, "newest first over the buckets");
}

#[tokio::test]
async fn over_buckets_events_create_and_finish_records_in_one_script_each() {
    let prefix = baton_testkit_prefix("histevents");
    let redis = RedisHistory::new(single_node().await, &prefix, 10_000, 3_600, 16).with_buckets(3);
    events_create_and_finish_records(&redis).await;
    drop_keys(&prefix).await;
}

/// On a real cluster (3 primaries + 3 replicas) with the default 16 buckets: any script or
/// pipeline whose keys spanned two slots would fail with `CROSSSLOT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bucketed_history_works_on_a_real_redis_cluster() {
    let cluster = baton_testkit::RedisCluster::start().expect("a Redis Cluster of the test's own");
    let target = baton_redis::RedisTarget::parse(&cluster.url, false).expect("the node URLs");
    let conn = baton_redis::connect(&target, baton_redis::Timeouts::default())
        .await
        .expect("the cluster answers");
    assert!(matches!(conn, baton_redis::RedisConnection::Cluster(_)));
    let listed = RedisHistory::new(conn.clone(), "hist:master:", 10_000, 3_600, 16);
    for i in 0..40 {
        listed.create(&execution(i)).await.expect("create");
    }
    lists_like_the_memory_history(&listed, 40).await;
    let events = RedisHistory::new(conn, "events:master:", 10_000, 3_600, 16);
    events_create_and_finish_records(&events).await;
    // The history's keys (the only keys of this cluster) are on every primary, not one.
    let mut per_primary = Vec::new();
    for port in cluster.base_port..cluster.base_port + 6 {
        let cli = |args: &[&str]| {
            let out = std::process::Command::new("redis-cli")
                .arg("-p")
                .arg(port.to_string())
                .args(args)
                .output()
                .expect("redis-cli runs");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        if cli(&["ROLE"]).starts_with("master") {
            per_primary.push(cli(&["DBSIZE"]).parse::<u64>().expect("a key count"));
        }
    }
    eprintln!("history keys per primary: {per_primary:?}");
    assert_eq!(per_primary.len(), 3);
    assert!(per_primary.iter().all(|&n| n > 0), "{per_primary:?}");
}

/// A key prefix no other test uses.
fn baton_testkit_prefix(test: &str) -> String {
    format!("t-{test}-{}:master:", uuid::Uuid::new_v4().simple())
}
