//! `RedisStore` against the real Redis: the shared `ExecutionStore` contract, and what only the
//! Redis store has (TTLs, key layout, round trips, definitions, timers, cancellation); the
//! shared `WorkflowCatalog` contract against `RedisCatalog`.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use baton_core::message::ExecutionStatus;
use baton_engine::catalog_contract::workflow_catalog_contract;
use baton_engine::contract::{execution_store_contract, start_of, unique_id};
use baton_engine::ports::{
    CommitOutcome, CompletionLedger, ContextWrite, ExecutionStore, HopClaim, HopCommit, HopStart,
    JoinOutcome, Lifecycle, StatePorts, WorkflowCatalog,
};
use baton_redis::{Error, RedisOptions, RedisStore};
use futures_util::StreamExt;
use serde_json::{Value, json};
use support::{raw, redis_url, scan, store};

const BOUND: Duration = Duration::from_secs(10);

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_meets_the_execution_store_contract() {
    let (redis, _cleanup) = store("contract", RedisOptions::default()).await;
    let store: Arc<dyn StatePorts> = Arc::new(redis);
    execution_store_contract(|| store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_catalog_meets_the_workflow_catalog_contract() {
    let (redis, _cleanup) = store("catalog", RedisOptions::default()).await;
    let catalog: Arc<dyn WorkflowCatalog> = Arc::new(redis.catalog());
    workflow_catalog_contract(catalog).await;
}

/// The catalog stores each definition once by its hash, in the same place the workers load
/// definitions from, and its keys share one hash tag.
#[tokio::test]
async fn catalog_definitions_are_loadable_by_reference() {
    let (redis, _cleanup) = store("catalogkeys", RedisOptions::default()).await;
    let catalog = redis.catalog();
    let doc = json!({"id": "child", "nodes": [], "edges": []});
    let (v, _) = catalog.put("child", &doc).await.unwrap();
    let text = redis.definitions().get(&v.hash).await.unwrap().unwrap();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc);
    let keys = scan(&format!("{}:{{catalog}}:*", redis.prefix())).await;
    assert_eq!(
        keys,
        vec![
            format!("{}:{{catalog}}:ids", redis.prefix()),
            format!("{}:{{catalog}}:wf:child", redis.prefix()),
        ]
    );
}

/// After `finish`, every key of the execution has the completed TTL — including join keys
/// and keys first written after the finish (an on_failure node, a late join).
#[tokio::test]
async fn finish_puts_the_ttl_on_every_execution_key() {
    let ttl = 600;
    let (store, _cleanup) = store(
        "ttl",
        RedisOptions {
            completed_ttl_secs: ttl,
            ..Default::default()
        },
    )
    .await;
    let start = start_of(json!({"$input": {"a": 1}}), 1);
    let id = start.execution_id.clone();
    assert!(store.start(&start).await.unwrap());
    let outputs = vec![
        ContextWrite::new("", "n1", json!(1)),
        ContextWrite::new("split#0", "n2", json!(2)),
    ];
    store
        .commit(
            &id,
            HopCommit {
                hop_id: "h1".into(),
                outputs,
                tokens_out: 2,
                handoff: None,
            },
        )
        .await
        .unwrap();
    store
        .join(&id, "join|m|", "e1", json!({"real": true}), 2, false)
        .await
        .unwrap();
    store
        .join(&id, "agg|a||split", "0|e", json!({"real": true}), 2, false)
        .await
        .unwrap();

    let pattern = format!("{}:{{{id}}}:*", store.prefix());
    let keys = scan(&pattern).await;
    let names: HashSet<String> = keys
        .iter()
        .map(|k| k.rsplit_once("}:").unwrap().1.to_string())
        .collect();
    let want: HashSet<String> = [
        "meta",
        "ctx",
        "top",
        "hops",
        "keys",
        "join:join|m|",
        "join:agg|a||split",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names, want, "the execution's keys");
    let mut conn = raw().await;
    for key in &keys {
        let t: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(t, -1, "{key} has no TTL while running");
    }

    assert!(
        store
            .finish(&id, ExecutionStatus::Halted, Some("boom".into()))
            .await
            .unwrap()
    );
    // Written after the finish: an on_failure node's output, a brand-new join.
    let late = vec![ContextWrite::new("", "on_failure", json!("ran"))];
    store
        .commit(
            &id,
            HopCommit {
                hop_id: "h2".into(),
                outputs: late,
                tokens_out: 0,
                handoff: None,
            },
        )
        .await
        .unwrap();
    store
        .join(&id, "join|late|", "e1", json!({"real": true}), 2, false)
        .await
        .unwrap();

    let keys = scan(&pattern).await;
    assert_eq!(keys.len(), want.len() + 1, "{keys:?}");
    for key in &keys {
        let t: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(t > 0 && t <= ttl as i64, "{key}: TTL {t}");
    }
    // Definitions are not execution keys: their own retention applies (30 days after last use).
    store.definitions().put("sha256:x", "{}").await.unwrap();
    let t: i64 = redis::cmd("TTL")
        .arg(format!("{}:def:sha256:x", store.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        t > ttl as i64 && t <= baton_redis::DEFINITION_TTL_SECS as i64,
        "a definition keeps its own TTL: {t}"
    );
}

/// `completed_ttl_secs: 0` keeps finished executions (no TTL).
#[tokio::test]
async fn zero_ttl_keeps_finished_executions() {
    let (store, _cleanup) = store(
        "ttl0",
        RedisOptions {
            completed_ttl_secs: 0,
            ..Default::default()
        },
    )
    .await;
    let start = start_of(json!({"a": 1}), 1);
    assert!(store.start(&start).await.unwrap());
    assert!(
        store
            .finish(&start.execution_id, ExecutionStatus::Completed, None)
            .await
            .unwrap()
    );
    let mut conn = raw().await;
    for key in scan(&format!("{}:*", store.prefix())).await {
        let t: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(t, -1, "{key}");
    }
}

/// A hop reads only the keys it references: a 1 MB value elsewhere in the context is not
/// part of `begin_hop`'s reply unless requested.
#[tokio::test]
async fn begin_hop_does_not_read_unreferenced_values() {
    let (store, _cleanup) = store("bigvalue", RedisOptions::default()).await;
    let big = json!({"blob": "x".repeat(1 << 20)});
    let start = start_of(json!({"small": 1}), 1);
    let id = start.execution_id.clone();
    store.start(&start).await.unwrap();
    let outputs = vec![ContextWrite::new("", "big", big.clone())];
    store
        .commit(
            &id,
            HopCommit {
                hop_id: "h".into(),
                outputs,
                tokens_out: 1,
                handoff: None,
            },
        )
        .await
        .unwrap();

    let HopStart {
        lifecycle: life,
        context: ctx,
        ..
    } = store
        .begin_hop(
            &id,
            "next",
            &strings(&[""]),
            &strings(&["small", "absent"]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(life, Lifecycle::Running);
    assert_eq!(
        ctx.keys().collect::<Vec<_>>(),
        ["small"],
        "only the referenced key comes back"
    );
    assert_eq!(Value::Object(ctx), json!({"small": 1}));

    let HopStart { context: ctx, .. } = store
        .begin_hop(&id, "next", &strings(&[""]), &strings(&["big"]), None)
        .await
        .unwrap();
    assert_eq!(ctx["big"], big, "the 1 MB value when it is referenced");
}

/// One hop = `begin_hop` (one script: reads and the claim) + `commit` (one script) = 2 round
/// trips, the commands seen on the server with MONITOR.
#[tokio::test]
async fn a_hop_costs_two_round_trips() {
    let (store, _cleanup) = store("roundtrips", RedisOptions::default()).await;
    // Warm the script cache so EVALSHA does not fall back to SCRIPT LOAD during the count.
    let warm = start_of(json!({}), 2);
    store.start(&warm).await.unwrap();
    store
        .begin_hop(
            &warm.execution_id,
            "next",
            &strings(&[""]),
            &strings(&["a"]),
            None,
        )
        .await
        .unwrap();
    store
        .commit(
            &warm.execution_id,
            HopCommit {
                hop_id: "w".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let start = start_of(json!({"a": 1}), 1);
    let id = start.execution_id.clone();
    store.start(&start).await.unwrap();

    let client = redis::Client::open(redis_url()).unwrap();
    let mut monitor = client
        .get_async_monitor()
        .await
        .unwrap()
        .into_on_message::<String>();
    // MONITOR is asynchronous to other clients: wait until it sees a marker of ours.
    let mut conn = raw().await;
    let marker = format!("{}:marker:{id}", store.prefix());
    let _: i64 = redis::cmd("EXISTS")
        .arg(&marker)
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::timeout(BOUND, async {
        while !monitor.next().await.unwrap().contains(&marker) {}
    })
    .await
    .unwrap();

    let HopStart {
        lifecycle: life, ..
    } = store
        .begin_hop(
            &id,
            "next",
            &strings(&["s#0", ""]),
            &strings(&["a"]),
            Some(HopClaim {
                owner: "w1",
                now_ms: 1_000,
                lease_ms: 10_000,
            }),
        )
        .await
        .unwrap();
    assert_eq!(life, Lifecycle::Running);
    let outputs = vec![ContextWrite::new("", "n", json!({"ok": true}))];
    let out = store
        .commit(
            &id,
            HopCommit {
                hop_id: "h".into(),
                outputs,
                tokens_out: 2,
                handoff: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(out, CommitOutcome::Applied { pending: 2 });
    let end = format!("{}:end:{id}", store.prefix());
    let _: i64 = redis::cmd("EXISTS")
        .arg(&end)
        .query_async(&mut conn)
        .await
        .unwrap();

    let mut commands = Vec::new();
    tokio::time::timeout(BOUND, async {
        loop {
            let line = monitor.next().await.unwrap();
            if line.contains(&end) {
                break;
            }
            // Client commands only, not the ones our scripts run inside the server (`[0 lua]`).
            if line.contains(&id) && !line.contains(" lua] ") {
                commands.push(line);
            }
        }
    })
    .await
    .unwrap();
    // begin_hop: one script (the lifecycle, this hop's record, its claim, the context fields
    // of every scope); commit: one script.
    let verbs: Vec<&str> = commands
        .iter()
        .filter_map(|c| c.split('"').nth(1))
        .collect();
    assert_eq!(
        verbs,
        ["EVALSHA", "EVALSHA"],
        "begin_hop + commit: {commands:#?}"
    );
}

#[tokio::test]
async fn definitions_are_written_once() {
    let (store, _cleanup) = store("defs", RedisOptions::default()).await;
    let defs = store.definitions();
    assert_eq!(defs.get("sha256:abc").await.unwrap(), None);
    assert!(
        defs.put("sha256:abc", r#"{"id":"wf","nodes":[]}"#)
            .await
            .unwrap()
    );
    assert!(
        !defs.put("sha256:abc", r#"{"other":true}"#).await.unwrap(),
        "SET NX"
    );
    assert_eq!(
        defs.get("sha256:abc").await.unwrap().as_deref(),
        Some(r#"{"id":"wf","nodes":[]}"#)
    );
    assert_eq!(defs.get("sha256:other").await.unwrap(), None);
}

/// Retention: a definition expires after its last use unless a stored workflow's version
/// references it; deleting the workflow lets its definitions expire.
#[tokio::test]
async fn definitions_expire_unless_a_stored_workflow_references_them() {
    let (redis, _cleanup) = store("defttl", RedisOptions::default()).await;
    let mut conn = raw().await;
    let probe = conn.clone();
    let ttl = |key: String| {
        let mut conn = probe.clone();
        async move {
            redis::cmd("TTL")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
                .unwrap()
        }
    };
    let defs = redis.definitions();
    defs.put("sha256:adhoc", "{}").await.unwrap();
    let adhoc = format!("{}:def:sha256:adhoc", redis.prefix());
    let max = baton_redis::DEFINITION_TTL_SECS as i64;
    assert!((max - 5..=max).contains(&ttl(adhoc.clone()).await));
    let _: () = redis::cmd("EXPIRE")
        .arg(&adhoc)
        .arg(100)
        .query_async(&mut conn)
        .await
        .unwrap();
    defs.get("sha256:adhoc").await.unwrap();
    assert!(ttl(adhoc).await > 100, "a load refreshes the TTL");

    let catalog = redis.catalog();
    let doc = json!({"id": "kept", "nodes": [], "edges": []});
    let (v, _) = catalog.put("kept", &doc).await.unwrap();
    let pinned = format!("{}:def:{}", redis.prefix(), v.hash);
    assert_eq!(
        ttl(pinned.clone()).await,
        -1,
        "referenced by a stored workflow"
    );
    defs.get(&v.hash).await.unwrap();
    assert_eq!(ttl(pinned.clone()).await, -1, "a load does not unpin it");
    assert!(catalog.delete("kept").await.unwrap());
    assert!(ttl(pinned).await > 0, "its workflow is gone: it expires");
}

#[tokio::test]
async fn on_a_single_node_one_claim_takes_due_timers_from_every_bucket_up_to_the_limit() {
    let options = RedisOptions {
        buckets: 16,
        ..RedisOptions::default()
    };
    let (store, _cleanup) = store("timer-buckets", options).await;
    let timers = store.timers();
    let now = 1_800_000_000_000u64;
    let mut buckets = std::collections::HashSet::new();
    for i in 0..40 {
        let id = format!("ex-{i}|node|0");
        let [bucket, _] = timers.keys_of(&id);
        buckets.insert(bucket[0].clone());
        assert!(timers.schedule(&id, b"payload", now - 1).await.unwrap());
    }
    assert!(
        timers
            .schedule("ex-late|n|0", b"late", now + 60_000)
            .await
            .unwrap()
    );
    assert!(
        buckets.len() > 8,
        "40 executions use many buckets: {buckets:?}"
    );

    let first = timers.claim_due(now, 25, 60_000).await.unwrap();
    assert_eq!(first.len(), 25, "the limit holds across buckets");
    let rest = timers.claim_due(now, 100, 60_000).await.unwrap();
    assert_eq!(rest.len(), 15, "the rest, and not the timer due later");
    let mut ids: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "each due timer claimed exactly once");
    assert_eq!(timers.claim_due(now, 100, 60_000).await.unwrap(), vec![]);
    for id in &ids {
        assert!(timers.complete(id).await.unwrap());
    }
    assert_eq!(timers.pending().await.unwrap(), 1);
}

#[tokio::test]
async fn timers_claim_complete_and_recover_expired_claims() {
    // One bucket: "earliest first" holds within a bucket (the claim walks the buckets in turn;
    // several buckets are covered by tests/cluster.rs).
    let options = RedisOptions {
        buckets: 1,
        ..RedisOptions::default()
    };
    let (store, _cleanup) = store("timers", options).await;
    let timers = store.timers();
    let now = 1_800_000_000_000u64;
    assert!(timers.schedule("t1", b"payload-1", now - 5).await.unwrap());
    assert!(
        timers
            .schedule("t2", &[0, 159, 146, 150, 255], now)
            .await
            .unwrap(),
        "binary payload"
    );
    assert!(
        timers
            .schedule("later", b"later", now + 60_000)
            .await
            .unwrap()
    );
    assert!(
        !timers.schedule("t1", b"changed", now - 5).await.unwrap(),
        "scheduling twice is idempotent"
    );
    assert_eq!(timers.pending().await.unwrap(), 3);

    assert_eq!(
        timers.claim_due(now, 0, 1_000).await.unwrap(),
        vec![],
        "limit 0"
    );
    let claimed = timers.claim_due(now, 1, 1_000).await.unwrap();
    assert_eq!(
        claimed,
        vec![("t1".to_string(), b"payload-1".to_vec())],
        "earliest first, up to the limit"
    );
    let claimed = timers.claim_due(now, 10, 1_000).await.unwrap();
    assert_eq!(
        claimed,
        vec![("t2".to_string(), vec![0, 159, 146, 150, 255])]
    );
    assert_eq!(
        timers.claim_due(now + 999, 10, 1_000).await.unwrap(),
        vec![],
        "leased claims are not handed out again"
    );
    assert!(
        !timers.schedule("t1", b"again", now).await.unwrap(),
        "a claimed timer is still pending"
    );

    // The worker that claimed t2 publishes and completes it; the one that claimed t1 dies.
    assert!(timers.complete("t2").await.unwrap());
    assert!(!timers.complete("t2").await.unwrap());
    let recovered = timers.claim_due(now + 1_000, 10, 1_000).await.unwrap();
    assert_eq!(
        recovered,
        vec![("t1".to_string(), b"payload-1".to_vec())],
        "re-claimed after its lease expired"
    );
    assert_eq!(
        timers.claim_due(now + 1_500, 10, 1_000).await.unwrap(),
        vec![],
        "the new lease holds"
    );
    assert!(timers.complete("t1").await.unwrap());
    assert_eq!(
        timers.claim_due(now + 59_999, 10, 1_000).await.unwrap(),
        vec![]
    );
    assert_eq!(timers.pending().await.unwrap(), 1);
    assert_eq!(
        timers.claim_due(now + 60_000, 10, 1_000).await.unwrap(),
        vec![("later".to_string(), b"later".to_vec())]
    );
    assert!(timers.complete("later").await.unwrap());
    assert_eq!(timers.pending().await.unwrap(), 0);
    assert!(
        timers.schedule("t1", b"new", now).await.unwrap(),
        "a completed id can be scheduled anew"
    );
}

/// A cancelled execution's timers are removed, not left until due; others stay.
#[tokio::test]
async fn forgetting_an_execution_removes_only_its_timers() {
    let (store, _cleanup) = store("timerforget", RedisOptions::default()).await;
    let timers = store.timers();
    let far = 4_000_000_000_000;
    for id in ["ex-1|w|", "ex-1|r|recheck@5", "ex-10|w|", "ex-2|w|"] {
        assert!(timers.schedule(id, b"{}", far).await.unwrap());
    }
    assert_eq!(timers.forget_execution("ex-1").await.unwrap(), 2);
    assert_eq!(timers.pending().await.unwrap(), 2, "ex-10 and ex-2 stay");
    assert_eq!(timers.forget_execution("ex-1").await.unwrap(), 0);
    assert_eq!(timers.forget_execution("ex-*").await.unwrap(), 0, "no glob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_timer_claims_never_share_a_timer() {
    let (store, _cleanup) = store("timerrace", RedisOptions::default()).await;
    let timers = store.timers();
    for i in 0..200 {
        timers
            .schedule(&format!("t{i}"), format!("p{i}").as_bytes(), 1_000 + i)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let timers = timers.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = timers.claim_due(10_000, 7, 60_000).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|(id, _)| id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(
        (all.len(), distinct.len()),
        (200, 200),
        "every timer claimed exactly once"
    );
}

#[tokio::test]
async fn cancellations_are_broadcast() {
    let (store, _cleanup) = store("cancel", RedisOptions::default()).await;
    let mut cancels = Box::pin(store.subscribe_cancels().await.unwrap());
    let mut other = Box::pin(store.subscribe_cancels().await.unwrap());
    let id = unique_id();
    store.publish_cancel(&id).await.unwrap();
    let got = tokio::time::timeout(BOUND, cancels.next()).await.unwrap();
    assert_eq!(got.as_deref(), Some(id.as_str()));
    let got = tokio::time::timeout(BOUND, other.next()).await.unwrap();
    assert_eq!(
        got.as_deref(),
        Some(id.as_str()),
        "every subscriber hears it"
    );
}

#[tokio::test]
async fn ping_and_connection_errors() {
    let (store, _cleanup) = store("ping", RedisOptions::default()).await;
    store.ping().await.unwrap();
    for prefix in ["", "a{b", "a}b"] {
        let options = RedisOptions {
            key_prefix: prefix.into(),
            ..Default::default()
        };
        assert!(
            matches!(
                RedisStore::connect(&redis_url(), options).await,
                Err(Error::InvalidPrefix(_))
            ),
            "{prefix:?}"
        );
    }
    let options = RedisOptions {
        connect_timeout_ms: 500,
        ..Default::default()
    };
    assert!(
        RedisStore::connect("redis://127.0.0.1:1/", options)
            .await
            .is_err(),
        "nothing listens on port 1"
    );
    assert!(
        RedisStore::connect("not a url", RedisOptions::default())
            .await
            .is_err()
    );
}

/// Values that are not valid JSON (written by something else) surface as errors, not panics.
#[tokio::test]
async fn corrupt_values_are_errors() {
    let (store, _cleanup) = store("corrupt", RedisOptions::default()).await;
    let start = start_of(json!({}), 1);
    let id = start.execution_id.clone();
    store.start(&start).await.unwrap();
    let mut conn = raw().await;
    let _: i64 = redis::cmd("HSET")
        .arg(format!("{}:{{{id}}}:ctx", store.prefix()))
        .arg("\u{1f}bad")
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = store
        .read(&id, &strings(&[""]), &strings(&["bad"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad"), "{err}");
    assert!(
        !err.is_transient(),
        "corrupt data does not heal on retry: {err}"
    );
    assert!(matches!(
        store
            .join(&id, "j", "a", json!({"real": true}), 1, false)
            .await
            .unwrap(),
        JoinOutcome::Released { .. }
    ));
}
