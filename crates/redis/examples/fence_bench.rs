//! What the replication fence costs a write on a Redis Cluster: `tasks` concurrent tasks each
//! start `per_task` executions (one `start` script, then its fence) with the fence off
//! (`replication_wait_ms` 0) and on (200 ms bound), and report writes/s and the mean latency.
//!
//! `cargo run -q -p baton-redis --example fence_bench -- <cluster url list> [tasks] [per_task]`

use std::time::Instant;

use baton_engine::contract::start_of;
use baton_engine::ports::ExecutionStore;
use baton_redis::{RedisOptions, RedisStore};
use serde_json::json;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: fence_bench <cluster url list> [tasks] [per_task]");
        std::process::exit(2);
    };
    let tasks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let per_task: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    for wait_ms in [0, 200, 0, 200] {
        let options = RedisOptions {
            key_prefix: format!("fencebench{}", std::process::id()),
            completed_ttl_secs: 60,
            replication_wait_ms: wait_ms,
            ..RedisOptions::default()
        };
        let store = match RedisStore::connect(&url, options).await {
            Ok(store) => store,
            Err(e) => {
                eprintln!("connect {url}: {e}");
                std::process::exit(1);
            }
        };
        let began = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let mut failed = 0;
                for _ in 0..per_task {
                    if store.start(&start_of(json!({"n": 1}), 1)).await.is_err() {
                        failed += 1;
                    }
                }
                failed
            }));
        }
        let mut failed = 0;
        for h in handles {
            failed += h.await.unwrap_or(per_task);
        }
        let took = began.elapsed();
        let n = tasks * per_task;
        println!(
            "wait_ms={wait_ms:>3} writes={n} failed={failed} writes/s={:.0} mean_latency_ms={:.2} fence={:?}",
            n as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 * tasks as f64 / n as f64,
            store.fence_counts(),
        );
    }
}
