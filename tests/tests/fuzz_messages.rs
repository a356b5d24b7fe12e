//! Black-box fuzzing of the execution queue: two `baton worker` processes on the real RabbitMQ
//! and Redis receive over a thousand mutated messages (random bytes, truncated and bit-flipped
//! hops, type-swapped fields, a body over the size limit, 10,000-deep JSON, `total_items =
//! 2^63`), each of which must be dead-lettered exactly once with a reason of at most 1 KB;
//! then both workers are still ready and a normal execution completes.
//!
//! The RNG is seeded (`FUZZ_SEED`, else the clock) and the seed printed, so a failure replays.
//! `FUZZ_MESSAGES` sets the count (default 1,000, which runs well under two minutes in CI).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use baton_amqp::Outgoing;
use common::distributed::{BOUND, Cluster, new_execution_id, rune_start};
use serde_json::{Value, json};

/// xorshift64*: small, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn workflow() -> Value {
    json!({"name": "fuzz-target", "version": 1, "nodes": [
        {"id": "a", "name": "A", "type": "log", "parameters": {"message": "hi"}},
        {"id": "b", "name": "B", "type": "log", "parameters": {"message": "{{$A.message}}"}}
    ], "edges": [{"id": "e1", "src": "a", "dst": "b"}]})
}

/// A well-formed hop message for an execution nobody started: poison (unknown execution).
fn hop(workflow_ref: &str) -> Value {
    json!({"execution_id": new_execution_id(), "workflow_id": "fuzz-target",
           "workflow_ref": workflow_ref, "node_id": "b", "kind": "run",
           "from_node": "a", "from_edge": "e1", "attempt": 1})
}

/// One message that no worker can process.
fn mutant(rng: &mut Rng, workflow_ref: &str) -> Vec<u8> {
    let valid = serde_json::to_vec(&hop(workflow_ref)).expect("serialises");
    match rng.below(8) {
        // Random bytes (never valid UTF-8 JSON of a known shape).
        0 => {
            let len = 1 + rng.below(2048);
            (0..len).map(|_| rng.next() as u8).collect()
        }
        // A truncated hop.
        1 => valid[..rng.below(valid.len() - 1)].to_vec(),
        // A bit-flipped hop (JSON or not, it names no running execution).
        2 => {
            let mut body = valid;
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(body.len());
                body[at] ^= 1 << rng.below(8);
            }
            body
        }
        // A field of the wrong type.
        3 => {
            let mut m = hop(workflow_ref);
            let field = ["attempt", "kind", "lineage", "node_id", "workflow_ref"][rng.below(5)];
            m[field] = [
                json!("x"),
                json!(-1),
                json!({"a": 1}),
                json!([1, 2]),
                json!(1.5),
            ][rng.below(5)]
            .clone();
            serde_json::to_vec(&m).expect("serialises")
        }
        // Impossible numbers: 2^63 items, an index past its split, an absurd attempt.
        4 => {
            let mut m = hop(workflow_ref);
            let frame = |index: u64, total: u64| json!([{"split_node_id": "a", "branch_id": "x", "item_index": index, "total_items": total}]);
            match rng.below(4) {
                0 => m["lineage"] = frame(0, 1 << 63),
                1 => m["lineage"] = frame(7, 3),
                2 => m["attempt"] = json!(u32::MAX),
                _ => m["lineage"] = frame(0, u64::MAX),
            }
            serde_json::to_vec(&m).expect("serialises")
        }
        // A start whose fields have the wrong types, or whose definition is broken.
        5 => {
            let mut s = rune_start(&workflow(), &new_execution_id(), &json!({}));
            match rng.below(3) {
                0 => s["accumulated_context"] = json!(42),
                1 => s["workflow_definition"]["nodes"][0]["type"] = json!("no-such-type"),
                _ => s["workflow_definition"]["edges"][0]["dst"] = json!("nowhere"),
            }
            serde_json::to_vec(&s).expect("serialises")
        }
        // A huge field, quoted by the parser's error.
        6 => {
            let mut m = hop(workflow_ref);
            m["attempt"] = json!("9".repeat(200_000 + rng.below(1000)));
            serde_json::to_vec(&m).expect("serialises")
        }
        // Deeply nested JSON, bare or inside a hop.
        _ => {
            let depth = 10_000 + rng.below(100);
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            if rng.below(2) == 0 {
                nested.into_bytes()
            } else {
                let text = String::from_utf8(valid).expect("utf-8");
                text.replacen("\"attempt\":1", &format!("\"attempt\":{nested}"), 1)
                    .into_bytes()
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unprocessable_message_is_dead_lettered_once_with_a_short_reason_and_the_pool_keeps_working()
 {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let count: usize = std::env::var("FUZZ_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    eprintln!("fuzz seed {seed} ({count} messages): FUZZ_SEED={seed} replays it");
    let mut rng = Rng(seed);

    let mut cluster = Cluster::new();
    let workers = [
        cluster.spawn_worker(&[]).await,
        cluster.spawn_worker(&[]).await,
    ];
    let broker = cluster.broker().await;
    let mut dead = cluster
        .consume(&broker, &cluster.topology.dead_letter_queue)
        .await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let queue = cluster.topology.execution_queue.clone();
    let logs = || cluster.logs();

    // A first execution stores the definition, so hops naming its reference get past the
    // definition lookup to the bounds and lifecycle checks.
    let first = new_execution_id();
    let start = serde_json::to_vec(&rune_start(&workflow(), &first, &json!({}))).unwrap();
    broker
        .publish(vec![Outgoing::new(queue.clone(), start)])
        .await
        .unwrap();
    let done = completions.next_for(&first, BOUND, &logs).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let workflow_ref = baton_core::graph::content_hash(&workflow());

    // The messages, each distinct (so each dead letter is matched to its message).
    let mut published: HashMap<Vec<u8>, usize> = HashMap::new();
    // One body over the 10 MiB default message limit.
    published.insert(vec![b' '; 10 * 1024 * 1024 + 1024], 0);
    while published.len() < count {
        published.insert(mutant(&mut rng, &workflow_ref), 0);
    }
    let bodies: Vec<Vec<u8>> = published.keys().cloned().collect();
    for batch in bodies.chunks(100) {
        let messages = batch
            .iter()
            .map(|b| Outgoing::new(queue.clone(), b.clone()))
            .collect();
        broker.publish(messages).await.expect("publish the mutants");
    }

    let mut letters = 0;
    while letters < bodies.len() {
        let Some(letter) = dead.next(BOUND).await else {
            let missing = published.values().filter(|n| **n == 0).count();
            panic!(
                "{letters} of {} dead-lettered, {missing} missing (seed {seed})\n{}",
                bodies.len(),
                cluster.logs()
            );
        };
        let reason = letter.header("x-baton-reason").unwrap_or_default();
        assert!(
            !reason.is_empty() && reason.len() <= 1024,
            "reason of {} bytes (seed {seed}): {}",
            reason.len(),
            &reason[..reason.len().min(200)]
        );
        match published.get_mut(&letter.body) {
            Some(n) => *n += 1,
            None => panic!(
                "dead letter for a message not published by the fuzzer (seed {seed}): {reason}"
            ),
        }
        letters += 1;
    }
    // Nothing more comes: each was dead-lettered once.
    let extra = dead.drain(Duration::from_secs(3)).await;
    assert!(
        extra.is_empty(),
        "{} extra dead letters (seed {seed})",
        extra.len()
    );
    assert!(
        published.values().all(|n| *n == 1),
        "some message was dead-lettered twice (seed {seed})"
    );

    for w in workers {
        assert_eq!(
            cluster.readyz(w).await,
            Some(200),
            "worker {w} is ready after the fuzzing (seed {seed})\n{}",
            cluster.log_tail(w, 50)
        );
    }
    let after = new_execution_id();
    let start = serde_json::to_vec(&rune_start(&workflow(), &after, &json!({}))).unwrap();
    broker
        .publish(vec![Outgoing::new(queue.clone(), start)])
        .await
        .unwrap();
    let done = completions.next_for(&after, BOUND, &logs).await;
    assert_eq!(done["status"], "completed", "{done:#}");
}
