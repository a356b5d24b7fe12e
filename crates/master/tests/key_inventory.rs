//! Retention of every Redis key: after 100 executions through a real master and worker (plus a
//! stored credential and an execution cancelled while it waited on a signal with a timeout —
//! whose timer must be removed), every key under
//! the test's prefixes is listed with its TTL — the inventory is printed — and none lives
//! forever except the documented durable ones: stored workflows (the catalog and the
//! definitions its versions reference), credentials (the vault and its key id) and schedules.
//!
//! Not covered yet: an execution still waiting (on a signal or a timer) keeps its keys without
//! a TTL until it finishes (the task's "keys live as long as their deadline" is open).

mod common;

use std::collections::BTreeMap;

use common::{Env, approval, hello};
use serde_json::json;

/// Key shapes that are durable by design (RFC 0005 "Retention"): `<prefix>` stripped.
const DURABLE: &[&str] = &[
    ":{catalog}:ids",
    ":{catalog}:wf:",
    ":cred:",
    ":creds",
    ":vault:key_id",
    ":schedules",
];

/// A key's shape: ids, hashes and numbers replaced, so the inventory groups like keys.
fn shape(key: &str, prefix: &str) -> String {
    let rest = key.strip_prefix(prefix).unwrap_or(key);
    rest.split(':')
        .map(|part| {
            let looks_like_id = part.len() >= 16
                && part.chars().filter(|c| c.is_ascii_hexdigit()).count() * 2 > part.len();
            if part.starts_with('{') && part.len() > 20 {
                "{<execution>}".to_string()
            } else if looks_like_id || part.starts_with("cred_") || part.starts_with("sha256") {
                "<id>".to_string()
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_100_executions_every_key_has_a_ttl_except_the_durable_ones() {
    let env = Env::start().await;
    let (status, body) = env
        .call(
            "POST",
            "/credentials",
            Some(
                json!({"name": "api", "type": "token", "data": {"token": "t0ken-x"},
                        "hosts": ["api.example.com"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let wf = env.put_workflow(hello("inventory-hello")).await;
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(env.run(&wf, json!({"name": format!("n{i}")})).await);
    }
    for id in &ids {
        let view = env.finished(id).await;
        assert_eq!(view["status"], "completed", "{view}");
    }
    // One execution cancelled while it waited on a signal (with a deadline).
    let mut waiting = approval("inventory-wait");
    waiting["nodes"][0]["parameters"]["amount"] = json!(10);
    waiting["nodes"][0]["parameters"]["unit"] = json!("minutes");
    let wait_wf = env.put_workflow(waiting).await;
    let cancelled_id = env.run(&wait_wf, json!({})).await;
    env.wait_for(&cancelled_id, |v| v.to_string().contains("\"waiting\""))
        .await;
    let (status, body) = env
        .call("POST", &format!("/executions/{cancelled_id}/cancel"), None)
        .await;
    assert!(status < 300, "{status} {body}");
    env.finished(&cancelled_id).await;

    let mut conn = env.redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("t-{}*", env.id))
        .query_async(&mut conn)
        .await
        .unwrap();
    let prefix = format!("t-{}", env.id);
    // The definitions the catalog's versions reference (pinned: durable while they exist).
    let mut pinned = Vec::new();
    for key in keys.iter().filter(|k| k.contains(":{catalog}:wf:")) {
        let entries: Vec<String> = redis::cmd("HVALS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        for entry in entries {
            let v: serde_json::Value = serde_json::from_str(&entry).unwrap();
            pinned.push(format!("{prefix}:def:{}", v["hash"].as_str().unwrap()));
        }
    }
    let mut inventory: BTreeMap<String, (usize, i64, i64)> = BTreeMap::new();
    let mut forever = Vec::new();
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let shape = shape(key, &prefix);
        let entry = inventory
            .entry(shape.clone())
            .or_insert((0, i64::MAX, i64::MIN));
        entry.0 += 1;
        entry.1 = entry.1.min(ttl);
        entry.2 = entry.2.max(ttl);
        let durable = DURABLE.iter().any(|d| shape.starts_with(d)) || pinned.contains(key);
        if ttl == -1 && !durable {
            forever.push(key.clone());
        }
    }
    println!("key inventory after 100 executions ({} keys):", keys.len());
    println!(
        "{:<60} {:>6} {:>10} {:>10}",
        "key", "count", "min ttl", "max ttl"
    );
    for (shape, (count, min, max)) in &inventory {
        println!("{shape:<60} {count:>6} {min:>10} {max:>10}");
    }
    forever.sort();
    forever.dedup();
    assert!(
        forever.is_empty(),
        "keys without a TTL that are not durable by design: {forever:#?}"
    );
}
