//! A fixed amount of embedded hops for profiling (`valgrind --tool=callgrind`) and allocation
//! counts (`valgrind --tool=dhat`): `n` executions of a 20-node chain of debug `log` nodes (the
//! bench's phase (a)), one at a time, then the hops/s of that run.
//!
//! `cargo run --release -p baton-memory --example embedded_chain -- [executions] [chain_len]`

use std::sync::Arc;
use std::time::Instant;

use baton_core::CompiledWorkflow;
use baton_core::wire::ExecutionStatus;
use baton_memory::EmbeddedRuntime;
use serde_json::{Value, json};

/// `n1 → n2 → … → n<len>`, each a debug-level `log` node (as `baton bench`'s chain).
fn chain(len: usize) -> Value {
    let nodes: Vec<Value> = (1..=len)
        .map(|i| json!({"id": format!("n{i}"), "name": format!("Hop {i}"), "type": "log", "parameters": {"message": "hop", "level": "debug"}}))
        .collect();
    let edges: Vec<Value> = (1..len)
        .map(|i| json!({"id": format!("e{i}"), "src": format!("n{i}"), "dst": format!("n{}", i + 1)}))
        .collect();
    json!({"name": format!("bench-chain-{len}"), "version": 1, "nodes": nodes, "edges": edges})
}

fn main() {
    let mut args = std::env::args().skip(1);
    let executions: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let len: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let on_worker = args.next().as_deref() == Some("on-worker");
    let body = async move {
        let wf = Arc::new(
            CompiledWorkflow::compile(&chain(len), &baton_nodes::registry()).expect("chain"),
        );
        let runtime = EmbeddedRuntime::start(baton_nodes::registry(), 256);
        let input = json!({});
        // Warm-up: lazy statics, allocator pools.
        for i in 0..50 {
            run(&runtime, &wf, &input, &format!("warm-{i}")).await;
        }
        let t0 = Instant::now();
        for i in 0..executions {
            run(&runtime, &wf, &input, &format!("emb-{i}")).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        let hops = executions * len as u64;
        println!(
            "{executions} executions x {len} hops: {:.0} hops/s",
            hops as f64 / secs
        );
    };
    if on_worker {
        rt.block_on(rt.spawn(body)).expect("driver task");
    } else {
        rt.block_on(body);
    }
}

async fn run(runtime: &EmbeddedRuntime, wf: &Arc<CompiledWorkflow>, input: &Value, id: &str) {
    let c = runtime
        .run(wf.clone(), id, input.clone())
        .await
        .expect("embedded run");
    assert_eq!(
        c.status,
        ExecutionStatus::Completed,
        "{:?}",
        c.failure_reason
    );
}
