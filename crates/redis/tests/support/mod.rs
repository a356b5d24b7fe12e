//! Shared harness for the Redis tests: a store on the real Redis at `BATON_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379/`) under a key prefix unique to the test, whose keys are
//! deleted when the guard drops (also when the test panics).

#![allow(dead_code)]

use std::sync::Mutex;

use async_trait::async_trait;
use baton_core::message::{Completion, NodeStatus, StatusEvent};
use baton_engine::ports::{EventSink, PortError};
use baton_redis::{RedisOptions, RedisStore};
use baton_testkit::{delete_keys_blocking, unique_prefix};

pub fn redis_url() -> String {
    std::env::var("BATON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// Deletes every key under its prefix on drop.
pub struct Cleanup {
    pub prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let deleted = delete_keys_blocking(&redis_url(), &self.prefix);
        if let Err(e) = deleted {
            eprintln!("cleanup of `{}:*` failed: {e}", self.prefix);
        }
    }
}

/// A store under a fresh prefix, with its cleanup guard.
pub async fn store(test: &str, options: RedisOptions) -> (RedisStore, Cleanup) {
    let prefix = unique_prefix(test);
    let options = RedisOptions {
        key_prefix: prefix.clone(),
        ..options
    };
    let store = RedisStore::connect(&redis_url(), options)
        .await
        .unwrap_or_else(|e| panic!("Redis at {} (scripts/services starts it): {e}", redis_url()));
    (store, Cleanup { prefix })
}

/// A raw connection for inspecting keys.
pub async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key matching `pattern`.
pub async fn scan(pattern: &str) -> Vec<String> {
    let mut conn = raw().await;
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

/// An event sink that keeps every status and completion, in order.
#[derive(Default)]
pub struct Recorded {
    pub statuses: Mutex<Vec<StatusEvent>>,
    pub completions: Mutex<Vec<Completion>>,
}

impl Recorded {
    /// (node, status) of every status so far, in order.
    pub fn statuses(&self) -> Vec<(String, NodeStatus)> {
        let statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        statuses
            .iter()
            .map(|s| (s.node_id.clone(), s.status))
            .collect()
    }
}

#[async_trait]
impl EventSink for Recorded {
    async fn status(&self, event: StatusEvent) -> Result<(), PortError> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
        Ok(())
    }

    async fn completion(&self, completion: Completion) -> Result<(), PortError> {
        self.completions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(completion);
        Ok(())
    }
}
