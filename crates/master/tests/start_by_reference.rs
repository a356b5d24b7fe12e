//! Starts by reference (RFC 0011) from the master, on the real RabbitMQ and Redis: the
//! definition is stored where the workers read definitions once per hash (again only after
//! the refresh period), the start names it by hash, and a worker runs it; with the setting off
//! the master sends Rune's shape, the workflow inline, and that runs too.

mod common;

use std::sync::Arc;
use std::time::Duration;

use baton_core::graph::content_hash;
use baton_core::wire::StartDefinition;
use baton_engine::ManualClock;
use baton_master::backend::StartOrder;
use baton_master::backend::stored_refs::{REFRESH_MS, StoredRefs};
use common::{Env, hello, redis_url};
use redis::AsyncCommands;
use serde_json::{Map, json};

fn order(definition: serde_json::Value, definition_hash: String) -> StartOrder {
    StartOrder {
        workflow_id: "hello".into(),
        execution_id: uuid::Uuid::now_v7().to_string(),
        definition,
        definition_hash,
        current_node: "$start".into(),
        context: Map::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_stores_a_definition_once_per_hash_and_again_after_the_refresh_period() {
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let target = baton_redis::RedisTarget::parse(&redis_url(), false).unwrap();
    let conn = baton_redis::connect(&target, baton_redis::Timeouts::default())
        .await
        .expect("Redis (scripts/services starts it)");
    let store = baton_redis::DefinitionStore::new(conn, &prefix);
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let refs = StoredRefs::new(store.clone(), clock.clone());
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let definition = hello("by-ref");
    let reference = content_hash(&definition);
    let key = format!("{prefix}:def:{reference}");

    let first = refs
        .message(&order(definition.clone(), reference.clone()))
        .await
        .unwrap();
    assert_eq!(
        first.definition,
        StartDefinition::Reference(reference.clone())
    );
    assert_eq!(
        store.get(&reference).await.unwrap(),
        Some(definition.to_string())
    );
    let ttl: i64 = redis.ttl(&key).await.unwrap();
    assert!(ttl > 0, "an unpinned definition expires: {ttl}");

    // Remembered: the next start does not write it again (gone, it stays gone).
    let _: i64 = redis.del(&key).await.unwrap();
    let again = refs
        .message(&order(definition.clone(), reference.clone()))
        .await
        .unwrap();
    assert_eq!(
        again.definition,
        StartDefinition::Reference(reference.clone())
    );
    let exists: bool = redis.exists(&key).await.unwrap();
    assert!(!exists, "stored once per hash, not per start");
    assert_eq!(refs.remembered(), 1);

    // After the refresh period it is stored again (which refreshes the TTL).
    clock.advance(Duration::from_millis(REFRESH_MS));
    refs.message(&order(definition.clone(), reference.clone()))
        .await
        .unwrap();
    let exists: bool = redis.exists(&key).await.unwrap();
    assert!(exists, "stored again after the refresh period");

    // A hash that is not the definition's: the workflow goes inline.
    let wrong = content_hash(&json!({"other": true}));
    let inline = refs
        .message(&order(definition.clone(), wrong.clone()))
        .await
        .unwrap();
    assert_eq!(inline.definition, StartDefinition::Inline(definition));
    let exists: bool = redis.exists(format!("{prefix}:def:{wrong}")).await.unwrap();
    assert!(!exists);
    let _: i64 = redis.del(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executions_started_through_the_master_complete_by_reference_and_with_it_off() {
    for by_reference in [true, false] {
        let env = Env::start_with(|s| s.master_start_by_reference = by_reference).await;
        let workflow = env.put_workflow(hello("by-ref-e2e")).await;
        for _ in 0..2 {
            let id = env.run(&workflow, json!({"name": "Ref"})).await;
            let done = env.finished(&id).await;
            assert_eq!(
                done["status"], "completed",
                "by reference {by_reference}: {done}"
            );
        }
    }
}
