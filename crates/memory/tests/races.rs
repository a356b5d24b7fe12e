//! Races on the embedded runtime: a `wait_for_any` merge with `cancel_losers` cancels its
//! losing branches (running, queued, or parked on a timer), reports them `cancelled` (status
//! `failed` with code `CANCELLED`), and the execution ends with the winner's path; without it
//! the losers run to their end, as in Rune.

mod support;

use std::sync::Arc;
use std::time::Duration;

use baton_core::message::{NodeStatus, StatusEvent};
use baton_engine::{Clock, ManualClock};
use baton_memory::{EmbeddedRuntime, MemoryCatalog};
use serde_json::{Value, json};
use support::*;

fn racing_merge(id: &str) -> Value {
    json!({"id": id, "name": id, "type": "merge",
        "parameters": {"wait_mode": "wait_for_any", "cancel_losers": true}})
}

/// `Start` forks to `Fast` and `Slow` → `SlowNext`; both race into `Join` → `After`.
fn race(fast: Value, slow: Value) -> Value {
    workflow(
        vec![
            log("Start", "go"),
            fast,
            slow,
            log("SlowNext", "after the loser"),
            racing_merge("Join"),
            log("After", "after"),
        ],
        vec![
            edge("Start", "Fast"),
            edge("Start", "Slow"),
            edge("Slow", "SlowNext"),
            edge("Fast", "Join"),
            edge("SlowNext", "Join"),
            edge("Join", "After"),
        ],
    )
}

fn is_cancelled(s: &StatusEvent) -> bool {
    s.status == NodeStatus::Failed && s.error.as_ref().is_some_and(|e| e.code == "CANCELLED")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_race_with_cancel_losers_cancels_the_running_loser_and_ends_with_the_winner() {
    let server = Server::start().await;
    let h = Harness::new();
    let doc = race(
        http("Fast", &server.url("/gate/fast")),
        http("Slow", &server.url("/gate/slow")),
    );
    let run = {
        let rt = h.runtime.clone();
        let wf = compile(&doc);
        tokio::spawn(async move { rt.run(wf, "x", json!({})).await })
    };
    // Both requests are in flight; only Fast's gate ever opens.
    server.until_hits("fast", 1).await;
    server.until_hits("slow", 1).await;
    server.open("fast");
    let c = tokio::time::timeout(BOUND, run)
        .await
        .expect("the execution ended although the loser's request never returns")
        .unwrap()
        .unwrap();
    h.completion_event("x").await;
    assert_completed(&c);
    assert_eq!(out(&c, "Join")["_merge_winner"], json!("Fast"));
    assert_eq!(h.runs("x", "After"), 1);
    let slow = h.statuses_of("x", "Slow");
    assert!(
        slow.last().is_some_and(is_cancelled),
        "the running loser is reported cancelled: {slow:?}"
    );
    assert!(!h.ran("x", "SlowNext"), "the loser's branch went on");
    assert!(
        c.final_context
            .keys()
            .all(|k| !k.starts_with("$cancelled:")),
        "race markers are bookkeeping, not output: {:?}",
        c.final_context.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_race_with_cancel_losers_releases_a_loser_parked_on_a_timer_at_once() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let h = Harness::with_runtime(EmbeddedRuntime::start_with_clock(
        baton_nodes::registry(),
        16,
        None,
        Arc::new(MemoryCatalog::new()),
        clock.clone(),
    ));
    // Slow parks on a one-hour timer; Fast waits 50 ms.
    let doc = race(
        wait_ms("Fast", json!(50)),
        wait_ms("Slow", json!(3_600_000)),
    );
    let started_ms = clock.now_ms();
    let done = h
        .runtime
        .submit(compile(&doc), "t", json!({}))
        .await
        .expect("submitted");
    h.until_status("t", "Slow", NodeStatus::Waiting).await;
    h.until_status("t", "Fast", NodeStatus::Waiting).await;
    tokio::time::timeout(BOUND, async {
        while clock.sleepers() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("both timers registered on the clock");
    clock.advance(Duration::from_millis(50));
    let c = tokio::time::timeout(BOUND, done)
        .await
        .expect("the execution ended without the clock reaching the loser's timer")
        .expect("completion");
    assert_completed(&c);
    assert_eq!(out(&c, "Join")["_merge_winner"], json!("Fast"));
    h.completion_event("t").await;
    assert_eq!(
        clock.now_ms() - started_ms,
        50,
        "only the winner's timer was reached"
    );
    assert!(
        h.statuses_of("t", "Slow").last().is_some_and(is_cancelled),
        "the parked loser is reported cancelled: {:?}",
        h.sequence("t", "Slow")
    );
    assert!(!h.ran("t", "SlowNext"));
    assert_eq!(h.completions("t").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loser_that_has_not_started_when_the_race_is_won_never_runs() {
    let server = Server::start().await;
    let h = Harness::new();
    // Slow's branch is a gate, then SlowNext: SlowNext is queued only if the gate opens.
    let doc = race(log("Fast", "fast"), http("Slow", &server.url("/gate/slow")));
    let run = {
        let rt = h.runtime.clone();
        let wf = compile(&doc);
        tokio::spawn(async move { rt.run(wf, "q", json!({})).await })
    };
    let c = tokio::time::timeout(BOUND, run)
        .await
        .expect("bounded")
        .unwrap()
        .unwrap();
    h.completion_event("q").await;
    assert_completed(&c);
    // Whether Slow was cancelled running or before it started, it ends cancelled and its
    // successor never runs, even once its request could have returned.
    server.open("slow");
    tokio::time::sleep(GRACE).await;
    assert!(h.statuses_of("q", "Slow").last().is_some_and(is_cancelled));
    assert!(!h.ran("q", "SlowNext"));
    assert_eq!(h.completions("q").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_inside_a_split_cancel_only_their_own_items_losers() {
    let server = Server::start().await;
    let h = Harness::new();
    // Item "a" races fast; item "b"'s fast side is gated too, so b's Slow is still running
    // when a's race is won and must not be cancelled by it.
    let doc = workflow(
        vec![
            split("Each", "{{ $input.items }}"),
            http("Fast", &server.url("/gate/fast-{{ $item }}")),
            http("Slow", &server.url("/gate/slow-{{ $item }}")),
            log("SlowNext", "after the loser"),
            racing_merge("Join"),
            aggregator("All"),
        ],
        vec![
            edge("Each", "Fast"),
            edge("Each", "Slow"),
            edge("Slow", "SlowNext"),
            edge("Fast", "Join"),
            edge("SlowNext", "Join"),
            edge("Join", "All"),
        ],
    );
    let run = {
        let rt = h.runtime.clone();
        let wf = compile(&doc);
        tokio::spawn(async move { rt.run(wf, "s", json!({"items": ["a", "b"]})).await })
    };
    for key in ["fast-a", "slow-a", "fast-b", "slow-b"] {
        server.until_hits(key, 1).await;
    }
    server.open("fast-a");
    h.until(|e| matches!(e, baton_memory::Event::Status(s) if s.execution_id == "s" && s.node_id == "Slow" && is_cancelled(s)))
        .await;
    // b's loser is still running: b's race is not won yet. Let b's slow side win it.
    server.open("slow-b");
    let c = tokio::time::timeout(BOUND, run)
        .await
        .expect("bounded")
        .unwrap()
        .unwrap();
    h.completion_event("s").await;
    assert_completed(&c);
    let item = |s: &StatusEvent| s.item_index;
    let slow_cancelled: Vec<_> = h
        .statuses_of("s", "Slow")
        .iter()
        .filter(|s| is_cancelled(s))
        .map(item)
        .collect();
    assert_eq!(slow_cancelled, [Some(0)], "only item a's Slow lost");
    let fast_cancelled: Vec<_> = h
        .statuses_of("s", "Fast")
        .iter()
        .filter(|s| is_cancelled(s))
        .map(item)
        .collect();
    assert_eq!(fast_cancelled, [Some(1)], "item b's Fast lost to its Slow");
    let winners: Vec<&Value> = out(&c, "All")["aggregated"]
        .as_array()
        .expect("aggregated")
        .iter()
        .map(|j| &j["_merge_winner"])
        .collect();
    assert_eq!(winners, [&json!("Fast"), &json!("SlowNext")]);
}
