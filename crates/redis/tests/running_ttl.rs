//! How long the keys of a running execution live in Redis: as long as its deadline (plus the
//! finished-execution retention) when its workflow has `timeout_ms`, and until it finishes
//! when it has none (a wait of any length keeps its state).

mod support;

use baton_engine::contract::start_of;
use baton_engine::ports::ExecutionStore;
use baton_redis::RedisOptions;
use serde_json::json;
use support::{raw, scan, store};

async fn ttls(prefix: &str) -> Vec<(String, i64)> {
    let mut conn = raw().await;
    let mut out = Vec::new();
    for key in scan(&format!("{prefix}:*")).await {
        let t: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("TTL");
        out.push((key, t));
    }
    out
}

#[tokio::test]
async fn a_running_execution_with_a_deadline_keeps_its_keys_until_the_deadline_plus_retention() {
    let retention = 7_200;
    let (store, _cleanup) = store(
        "runttl",
        RedisOptions {
            completed_ttl_secs: retention,
            ..Default::default()
        },
    )
    .await;
    let mut start = start_of(json!({"a": 1}), 1);
    // A day-long approval deadline.
    start.deadline_at_ms = Some(start.started_at_ms + 86_400_000);
    assert!(store.start(&start).await.expect("start"));
    let keys = ttls(store.prefix()).await;
    assert!(!keys.is_empty(), "the execution wrote keys");
    let expected = 86_400 + retention as i64;
    for (key, t) in keys {
        assert!(
            t > expected - 60 && t <= expected,
            "{key}: TTL {t}, expected about {expected}"
        );
    }
}

#[tokio::test]
async fn a_running_execution_without_a_deadline_keeps_its_keys_until_it_finishes() {
    let (store, _cleanup) = store("runttl-none", RedisOptions::default()).await;
    let start = start_of(json!({"a": 1}), 1);
    assert!(store.start(&start).await.expect("start"));
    let keys = ttls(store.prefix()).await;
    assert!(!keys.is_empty(), "the execution wrote keys");
    for (key, t) in keys {
        assert_eq!(t, -1, "{key} has no TTL while running without a deadline");
    }
}
