//! Measures whether a pool of connections (what `deadpool-redis` would give) beats the one
//! shared multiplexed connection Baton uses: `tasks` concurrent tasks each run `ops` store
//! operations (a script call per op, like a hop's `begin_hop`/`commit`), first all over one
//! connection, then spread round-robin over `pool` connections. Prints ops/s for both.
//!
//! `cargo run --release -p baton-redis --example pool_bench -- <redis url list> [tasks] [ops] [pool]`

use std::sync::Arc;
use std::time::Instant;

use baton_redis::{RedisConnection, RedisTarget, Timeouts, connect};
use redis::Script;

const SCRIPT: &str =
    "redis.call('HINCRBY', KEYS[1], 'n', 1) return redis.call('HGET', KEYS[1], 'n')";

async fn run(conns: Arc<Vec<RedisConnection>>, tasks: usize, ops: usize) -> f64 {
    let script = Arc::new(Script::new(SCRIPT));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let conns = conns.clone();
        let script = script.clone();
        handles.push(tokio::spawn(async move {
            let mut conn = conns[t % conns.len()].clone();
            for i in 0..ops {
                let key = format!("poolbench:{{e{t}-{}}}:meta", i % 64);
                let _: i64 = script
                    .key(&key)
                    .invoke_async(&mut conn)
                    .await
                    .unwrap_or_default();
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    (tasks * ops) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into());
    let arg =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (tasks, ops, pool) = (arg(2, 64), arg(3, 500), arg(4, 8));
    let target = RedisTarget::parse(&url, false)?;
    let one = Arc::new(vec![connect(&target, Timeouts::default()).await?]);
    let mut many = Vec::with_capacity(pool);
    for _ in 0..pool {
        many.push(connect(&target, Timeouts::default()).await?);
    }
    let many = Arc::new(many);
    // Warm up (script load, slot map), then alternate the two to even out machine noise.
    run(one.clone(), tasks, 50).await;
    run(many.clone(), tasks, 50).await;
    let mut a = Vec::new();
    let mut b = Vec::new();
    for _ in 0..3 {
        a.push(run(one.clone(), tasks, ops).await);
        b.push(run(many.clone(), tasks, ops).await);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "cluster={} tasks={tasks} ops/task={ops}: one multiplexed connection {:.0} ops/s; pool of {pool} {:.0} ops/s (median of 3)",
        target.is_cluster(),
        median(&mut a),
        median(&mut b)
    );
    let mut conn = one[0].clone();
    for t in 0..tasks {
        for i in 0..64 {
            let _: Result<i64, _> = redis::cmd("DEL")
                .arg(format!("poolbench:{{e{t}-{i}}}:meta"))
                .query_async(&mut conn)
                .await;
        }
    }
    Ok(())
}
