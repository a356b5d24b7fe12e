//! Store contract: fresh ids, starts and commits the checks share.

use std::sync::Arc;

use serde_json::Value;

use crate::ports::{ContextWrite, ExecutionStart, HopCommit, JoinArrival, ScopedKey, StatePorts};

/// Tasks racing in the concurrency checks.
pub(super) const RACERS: usize = 32;

/// A fresh execution id (a random UUID v4 string).
pub fn unique_id() -> String {
    let mut n: u128 = rand::random();
    n = (n & !(0xf << 76)) | (0x4 << 76); // version 4
    n = (n & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        n >> 96,
        (n >> 80) & 0xffff,
        (n >> 64) & 0xffff,
        (n >> 48) & 0xffff,
        n & 0xffff_ffff_ffff
    )
}
/// An `ExecutionStart` for a fresh id with `seed` and `initial_tokens`.
pub fn start_of(seed: Value, initial_tokens: i64) -> ExecutionStart {
    let Value::Object(seed) = seed else {
        panic!("seed must be a JSON object")
    };
    ExecutionStart {
        execution_id: unique_id(),
        workflow_id: "wf-contract".into(),
        workflow_ref: "sha256:contract".into(),
        seed,
        initial_tokens,
        started_at_ms: 1_700_000_000_123,
        deadline_at_ms: None,
    }
}
pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
pub(super) fn commit(hop_id: &str, outputs: &[(&str, &str, Value)], tokens_out: i64) -> HopCommit {
    HopCommit {
        hop_id: hop_id.into(),
        outputs: outputs
            .iter()
            .map(|(s, k, v)| ContextWrite::new(*s, *k, v.clone()))
            .collect(),
        tokens_out,
        handoff: None,
    }
}
/// `RACERS` hops of `execution_id`, each sent twice, all at once through `send` (`commit` or
/// `run_commit`; hop `hop-<i>` writes `k<i>` and hands on no token); their answers.
pub(super) async fn race_hops<T, F, Fut>(
    store: &Arc<dyn StatePorts>,
    execution_id: &str,
    send: F,
) -> Vec<T>
where
    F: Fn(Arc<dyn StatePorts>, String, HopCommit) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..RACERS * 2)
        .map(|i| {
            let hop = i % RACERS;
            let c = commit(
                &format!("hop-{hop}"),
                &[("", &format!("k{hop}"), serde_json::json!(hop))],
                0,
            );
            tokio::spawn(send(store.clone(), execution_id.to_owned(), c))
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for t in tasks {
        answers.push(t.await.expect("a racing hop"));
    }
    answers
}
pub(super) fn arrival(key: &str, value: &Value) -> JoinArrival {
    JoinArrival {
        key: key.into(),
        value: value.clone(),
    }
}
pub(super) fn at(scope: &str, key: &str) -> ScopedKey {
    ScopedKey {
        scope: scope.into(),
        key: key.into(),
    }
}
pub(super) async fn started(store: &Arc<dyn StatePorts>, seed: Value, tokens: i64) -> String {
    let start = start_of(seed, tokens);
    assert!(
        store.start(&start).await.expect("start"),
        "a fresh execution starts"
    );
    start.execution_id
}
