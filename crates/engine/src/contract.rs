//! The `ExecutionStore` contract: one suite of behavioural checks that every store
//! implementation must pass (the in-memory store in `baton-memory`, the Redis store in
//! `baton-redis`). Feature `contract`; use it from tests:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn contract() {
//!     let store: Arc<dyn ExecutionStore> = Arc::new(MemoryStore::new());
//!     baton_engine::contract::execution_store_contract(|| store.clone()).await;
//! }
//! ```
//!
//! Every check uses fresh execution ids, so the suite can run against a shared store (and a
//! shared Redis) alongside other tests. A violation panics with the check's name.

use std::sync::Arc;

use baton_core::message::ExecutionStatus;
use serde_json::{Map, Value, json};

use crate::ports::{
    CommitOutcome, CompletionClaim, ExecutionStart, ExecutionStore, HopCommit, HopStart,
    JoinOutcome, Lifecycle,
};

/// Tasks racing in the concurrency checks.
const RACERS: usize = 32;

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
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn commit(hop_id: &str, outputs: &[(&str, &str, Value)], tokens_out: i64) -> HopCommit {
    HopCommit {
        hop_id: hop_id.into(),
        outputs: outputs
            .iter()
            .map(|(s, k, v)| (s.to_string(), k.to_string(), v.clone()))
            .collect(),
        tokens_out,
        handed_on: String::new(),
    }
}

async fn started(store: &Arc<dyn ExecutionStore>, seed: Value, tokens: i64) -> String {
    let start = start_of(seed, tokens);
    assert!(
        store.start(&start).await.expect("start"),
        "a fresh execution starts"
    );
    start.execution_id
}

/// Runs every check of the contract. `make` returns the store under test (the same store or a
/// fresh one each time: every check uses its own execution ids).
pub async fn execution_store_contract(make: impl Fn() -> Arc<dyn ExecutionStore>) {
    start_and_lifecycle(make()).await;
    unknown_execution(make()).await;
    read_scope_chain(make()).await;
    values_round_trip(make()).await;
    begin_hop_reads(make()).await;
    committed_hop_replays(make()).await;
    start_published_flag(make()).await;
    cancel_before_start(make()).await;
    commit_once_and_tokens(make()).await;
    concurrent_commits(make()).await;
    join_wait_for_all(make()).await;
    join_release_on_first_real(make()).await;
    concurrent_joins(make()).await;
    finish_first_writer_wins(make()).await;
    completion_sent_once(make()).await;
    completion_claim_lease(make()).await;
    finish_remembers_the_finishing_hop(make()).await;
    final_context_top_level(make()).await;
    identity_and_signals(make()).await;
}

/// `identity` names the workflow; signals reach waiters exactly once, are buffered when nobody
/// waits, and a removed (timed-out) waiter is not resumed.
pub async fn identity_and_signals(store: Arc<dyn ExecutionStore>) {
    let start = start_of(json!({}), 1);
    let id = start.execution_id.clone();
    assert_eq!(
        store.identity(&id).await.unwrap(),
        None,
        "unknown before start"
    );
    store.start(&start).await.unwrap();
    assert_eq!(
        store.identity(&id).await.unwrap(),
        Some((start.workflow_id.clone(), start.workflow_ref.clone()))
    );

    assert_eq!(
        store
            .await_signal(&id, "go", "w1", "p1".into())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .await_signal(&id, "go", "w2", "p2".into())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .await_signal(&id, "other", "w3", "p3".into())
            .await
            .unwrap(),
        None
    );
    let mut got = store
        .deliver_signal(&id, "go", json!({"n": 1}))
        .await
        .unwrap();
    got.sort();
    assert_eq!(
        got.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>(),
        ["w1", "w2"],
        "both waiters, once"
    );
    assert!(
        store
            .deliver_signal(&id, "go", json!({"n": 2}))
            .await
            .unwrap()
            .is_empty(),
        "no waiter left: buffered"
    );
    assert_eq!(
        store
            .await_signal(&id, "go", "w4", "p4".into())
            .await
            .unwrap(),
        Some(json!({"n": 2})),
        "buffered signal consumed"
    );
    assert_eq!(
        store
            .await_signal(&id, "go", "w5", "p5".into())
            .await
            .unwrap(),
        None,
        "buffer emptied"
    );
    assert!(
        store
            .remove_signal_waiter(&id, "other", "w3")
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_signal_waiter(&id, "other", "w3")
            .await
            .unwrap(),
        "only once"
    );
    assert!(
        store
            .deliver_signal(&id, "other", json!(null))
            .await
            .unwrap()
            .is_empty(),
        "removed waiter not resumed"
    );
}

/// `start` creates once; a duplicate start returns false and changes nothing.
pub async fn start_and_lifecycle(store: Arc<dyn ExecutionStore>) {
    let start = start_of(json!({"$input": {"n": 1}}), 1);
    let id = start.execution_id.clone();
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Unknown,
        "not started yet"
    );
    assert!(store.start(&start).await.unwrap(), "first start");
    assert_eq!(store.lifecycle(&id).await.unwrap(), Lifecycle::Running);

    let mut again = start.clone();
    again.seed = json!({"$input": {"n": 2}, "extra": true})
        .as_object()
        .unwrap()
        .clone();
    again.initial_tokens = 5;
    assert!(
        !store.start(&again).await.unwrap(),
        "duplicate start returns false"
    );
    let read = store
        .read(&id, &strings(&[""]), &strings(&["$input", "extra"]))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(read),
        json!({"$input": {"n": 1}}),
        "duplicate start changes nothing"
    );
    assert_eq!(
        store.commit(&id, commit("h", &[], 0)).await.unwrap(),
        CommitOutcome::Applied { pending: 0 },
        "duplicate start keeps the token count"
    );
}

/// Unknown executions: lifecycle/begin_hop say Unknown; state operations fail.
pub async fn unknown_execution(store: Arc<dyn ExecutionStore>) {
    let id = unique_id();
    assert_eq!(store.lifecycle(&id).await.unwrap(), Lifecycle::Unknown);
    let HopStart {
        lifecycle: life,
        context: ctx,
        ..
    } = store
        .begin_hop(&id, "next", &strings(&[""]), &strings(&["a"]))
        .await
        .unwrap();
    assert_eq!(
        (life, ctx.len()),
        (Lifecycle::Unknown, 0),
        "begin_hop of an unknown execution"
    );
    assert!(
        store
            .read(&id, &strings(&[""]), &strings(&["a"]))
            .await
            .is_err(),
        "read"
    );
    assert!(
        store
            .read_exact(&id, &[(String::new(), "a".into())])
            .await
            .is_err(),
        "read_exact"
    );
    assert!(
        store
            .commit(&id, commit("h", &[("", "a", json!(1))], 1))
            .await
            .is_err(),
        "commit"
    );
    assert!(
        store
            .join(&id, "j", "a", json!({"real": true}), 2, false)
            .await
            .is_err(),
        "join"
    );
    assert!(
        store
            .finish(&id, ExecutionStatus::Halted, None)
            .await
            .is_err(),
        "finish"
    );
    assert!(
        store.mark_completion_sent(&id).await.is_err(),
        "mark_completion_sent"
    );
    assert!(store.final_context(&id).await.is_err(), "final_context");
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Unknown,
        "nothing was created"
    );
}

/// `read` takes each key from the innermost scope of the chain that has it; `read_exact`
/// reads exact `(scope, key)` entries.
pub async fn read_scope_chain(store: Arc<dyn ExecutionStore>) {
    let id = started(
        &store,
        json!({"$input": {"items": [1, 2]}, "shared": "top"}),
        1,
    )
    .await;
    let outer = "split-a#1";
    let inner = "split-a#1/split-b#0";
    let outputs = [
        (outer, "$item", json!({"i": 1})),
        (outer, "shared", json!("outer")),
        (inner, "$item", json!({"j": 0})),
        (inner, "only_inner", json!(true)),
        ("split-a#0", "$item", json!("other item")),
    ];
    store
        .commit(&id, commit("seed-scopes", &outputs, 1))
        .await
        .unwrap();

    let chain = strings(&[inner, outer, ""]);
    let got = store
        .read(
            &id,
            &chain,
            &strings(&["$item", "shared", "only_inner", "$input", "missing"]),
        )
        .await
        .unwrap();
    let want = json!({
        "$item": {"j": 0}, "shared": "outer", "only_inner": true, "$input": {"items": [1, 2]}
    });
    assert_eq!(
        Value::Object(got),
        want,
        "innermost scope wins; missing keys are absent"
    );

    let got = store
        .read(
            &id,
            &strings(&[outer, ""]),
            &strings(&["$item", "shared", "only_inner"]),
        )
        .await
        .unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"$item": {"i": 1}, "shared": "outer"}),
        "outer chain"
    );
    let got = store
        .read(&id, &strings(&[""]), &strings(&["$item", "shared"]))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"shared": "top"}),
        "top-level chain"
    );
    assert!(
        store.read(&id, &chain, &[]).await.unwrap().is_empty(),
        "no keys, nothing read"
    );

    let exact = store
        .read_exact(
            &id,
            &[
                (outer.into(), "$item".into()),
                (inner.into(), "shared".into()),
                (String::new(), "shared".into()),
                ("split-a#0".into(), "$item".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        exact,
        vec![
            Some(json!({"i": 1})),
            None,
            Some(json!("top")),
            Some(json!("other item"))
        ]
    );
    assert!(store.read_exact(&id, &[]).await.unwrap().is_empty());
}

/// JSON values come back as they went in: every type, object key order, unicode, odd keys.
pub async fn values_round_trip(store: Arc<dyn ExecutionStore>) {
    let odd_keys = ["a:b", "{tag}", "sp ace", "ünï", "$", "x\u{1f}y", ""];
    let values = vec![
        json!(null),
        json!(true),
        json!(-17),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5e-7),
        json!("text with \"quotes\", \n newline, \u{1f} unit separator and emoji 🦀"),
        json!([]),
        json!({}),
        json!({"z": 1, "a": 2, "m": {"y": [1, {"b": 2, "a": 1}], "x": null}}),
    ];
    let mut seed = Map::new();
    for (i, v) in values.iter().enumerate() {
        seed.insert(format!("seed{i}"), v.clone());
    }
    let id = started(&store, Value::Object(seed), 1).await;
    let outputs: Vec<(&str, &str, Value)> = odd_keys
        .iter()
        .zip(values.iter().cycle())
        .map(|(k, v)| ("s\u{1f}x#0", *k, v.clone()))
        .collect();
    store.commit(&id, commit("odd", &outputs, 1)).await.unwrap();

    let keys: Vec<String> = (0..values.len()).map(|i| format!("seed{i}")).collect();
    let got = store.read(&id, &strings(&[""]), &keys).await.unwrap();
    for (i, v) in values.iter().enumerate() {
        let g = &got[&format!("seed{i}")];
        assert_eq!(g, v, "value {i}");
        assert_eq!(
            g.to_string(),
            v.to_string(),
            "value {i} keeps its object key order"
        );
    }
    let got = store
        .read(&id, &strings(&["s\u{1f}x#0"]), &strings(&odd_keys))
        .await
        .unwrap();
    assert_eq!(
        got.len(),
        odd_keys.len(),
        "odd context keys and scopes: {got:?}"
    );
    for (k, v) in odd_keys.iter().zip(values.iter().cycle()) {
        assert_eq!(&got[*k], v, "key {k:?}");
    }
}

/// `begin_hop`: the lifecycle and only the requested keys (nothing once finished).
pub async fn begin_hop_reads(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({"a": 1, "b": "x".repeat(10_000)}), 1).await;
    store
        .commit(
            &id,
            commit("h1", &[("s#0", "a", json!(2)), ("", "c", json!(3))], 1),
        )
        .await
        .unwrap();
    let chain = strings(&["s#0", ""]);
    let HopStart {
        lifecycle: life,
        context: ctx,
        ..
    } = store
        .begin_hop(&id, "next", &chain, &strings(&["a", "c", "nope"]))
        .await
        .unwrap();
    assert_eq!(life, Lifecycle::Running);
    assert_eq!(
        Value::Object(ctx),
        json!({"a": 2, "c": 3}),
        "only the requested keys, innermost first"
    );
    let ctx = store
        .begin_hop(&id, "next", &chain, &[])
        .await
        .unwrap()
        .context;
    assert!(ctx.is_empty(), "no keys requested, none read");

    store
        .finish(&id, ExecutionStatus::Halted, Some("stop".into()))
        .await
        .unwrap();
    let HopStart {
        lifecycle: life,
        context: ctx,
        ..
    } = store
        .begin_hop(&id, "next", &chain, &strings(&["a"]))
        .await
        .unwrap();
    assert_eq!(
        life,
        Lifecycle::Finished {
            status: ExecutionStatus::Halted,
            reason: Some("stop".into()),
            completion_sent: false
        }
    );
    assert!(
        ctx.is_empty(),
        "a finished execution reads nothing in begin_hop"
    );
}

/// A cancel recorded before the start makes the start create the execution already halted
/// (and report it as not created: its completion is all that is left to do).
pub async fn cancel_before_start(store: Arc<dyn ExecutionStore>) {
    let start = start_of(json!({"x": 1}), 1);
    let id = start.execution_id.clone();
    store.cancel_unstarted(&id).await.unwrap();
    assert_eq!(store.lifecycle(&id).await.unwrap(), Lifecycle::Unknown);
    assert!(
        !store.start(&start).await.unwrap(),
        "a start after a cancel does not create a running execution"
    );
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status: ExecutionStatus::Halted,
            reason: Some("execution cancelled before it started".into()),
            completion_sent: false
        }
    );
    assert_eq!(
        store.start_state(&id).await.unwrap().map(|s| s.1),
        Some(false)
    );
    assert!(store.mark_completion_sent(&id).await.unwrap());
}

/// `start_state` tells a duplicate start whether the first one published its messages.
pub async fn start_published_flag(store: Arc<dyn ExecutionStore>) {
    let missing = unique_id();
    assert_eq!(store.start_state(&missing).await.unwrap(), None);
    store.mark_started(&missing).await.unwrap();
    assert_eq!(
        store.lifecycle(&missing).await.unwrap(),
        Lifecycle::Unknown,
        "marking an unknown execution creates nothing"
    );
    let id = started(&store, json!({}), 1).await;
    let (at, published) = store.start_state(&id).await.unwrap().expect("exists");
    assert!(at > 0);
    assert!(!published, "not published yet");
    store.mark_started(&id).await.unwrap();
    assert_eq!(store.start_state(&id).await.unwrap(), Some((at, true)));
}

/// A hop that committed is recognised by `begin_hop` (a redelivery), with the messages it
/// handed on when the store records them, so the node is not run again.
pub async fn committed_hop_replays(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({}), 1).await;
    let chain = strings(&[""]);
    let before = store.begin_hop(&id, "h1", &chain, &[]).await.unwrap();
    assert_eq!(before.committed, None, "not committed yet");
    let mut first = commit("h1", &[("", "a", json!(1))], 2);
    first.handed_on = r#"[{"to":"b"},{"to":"c"}]"#.into();
    store.commit(&id, first).await.unwrap();
    let again = store
        .begin_hop(&id, "h1", &chain, &strings(&["a"]))
        .await
        .unwrap();
    assert_eq!(again.lifecycle, Lifecycle::Running);
    if store.replays_hops() {
        assert_eq!(
            again.committed,
            Some((r#"[{"to":"b"},{"to":"c"}]"#.to_string(), 2)),
            "a committed hop is recognised with what it handed on"
        );
    } else {
        assert_eq!(
            again.committed, None,
            "a store that never replays says nothing"
        );
    }
    let other = store
        .begin_hop(&id, "h2", &chain, &strings(&["a"]))
        .await
        .unwrap();
    assert_eq!(other.committed, None, "another hop is not committed");
    assert_eq!(Value::Object(other.context), json!({"a": 1}));
}

/// `commit` applies once per hop id (a replay is `Duplicate` and changes nothing) and keeps the
/// token count: `pending += tokens_out − 1`.
pub async fn commit_once_and_tokens(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({}), 1).await;
    let top = strings(&[""]);
    let first = commit("trigger", &[("", "trigger", json!({"ok": 1}))], 3);
    assert_eq!(
        store.commit(&id, first.clone()).await.unwrap(),
        CommitOutcome::Applied { pending: 3 }
    );

    let mut replay = first.clone();
    replay.outputs = vec![(String::new(), "trigger".into(), json!("overwritten?"))];
    replay.tokens_out = 10;
    assert!(
        matches!(
            store.commit(&id, replay).await.unwrap(),
            CommitOutcome::Duplicate { .. }
        ),
        "replay"
    );
    assert!(
        matches!(
            store.commit(&id, first).await.unwrap(),
            CommitOutcome::Duplicate { .. }
        ),
        "identical replay"
    );
    let got = store.read(&id, &top, &strings(&["trigger"])).await.unwrap();
    assert_eq!(got["trigger"], json!({"ok": 1}), "a replay writes nothing");

    // A later hop overwrites a key (last writer wins within a scope).
    assert_eq!(
        store
            .commit(&id, commit("b1", &[("", "trigger", json!(2))], 1))
            .await
            .unwrap(),
        CommitOutcome::Applied { pending: 3 }
    );
    assert_eq!(
        store.read(&id, &top, &strings(&["trigger"])).await.unwrap()["trigger"],
        json!(2)
    );
    assert_eq!(
        store.commit(&id, commit("b2", &[], 0)).await.unwrap(),
        CommitOutcome::Applied { pending: 2 }
    );
    assert_eq!(
        store.commit(&id, commit("b3", &[], 0)).await.unwrap(),
        CommitOutcome::Applied { pending: 1 }
    );
    assert!(matches!(
        store.commit(&id, commit("b2", &[], 0)).await.unwrap(),
        CommitOutcome::Duplicate { .. }
    ));
    assert_eq!(
        store.commit(&id, commit("b4", &[], 0)).await.unwrap(),
        CommitOutcome::Applied { pending: 0 }
    );
    assert_eq!(
        store.commit(&id, commit("b4", &[], 0)).await.unwrap(),
        CommitOutcome::Duplicate { pending: 0 },
        "a replay reports the pending count so a redelivery can finish the execution"
    );
}

/// Many hops committing at once (each also redelivered): every hop applies once, and exactly
/// one sees `pending: 0`.
pub async fn concurrent_commits(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({}), RACERS as i64).await;
    let mut tasks = Vec::new();
    for i in 0..RACERS * 2 {
        let (store, id) = (store.clone(), id.clone());
        let hop = i % RACERS;
        tasks.push(tokio::spawn(async move {
            store
                .commit(
                    &id,
                    commit(
                        &format!("hop-{hop}"),
                        &[("", &format!("k{hop}"), json!(hop))],
                        0,
                    ),
                )
                .await
                .unwrap()
        }));
    }
    let mut applied = 0;
    let mut zero = 0;
    for t in tasks {
        match t.await.unwrap() {
            CommitOutcome::Applied { pending } => {
                applied += 1;
                assert!((0..RACERS as i64).contains(&pending), "pending {pending}");
                zero += usize::from(pending == 0);
            }
            CommitOutcome::Duplicate { .. } => {}
        }
    }
    assert_eq!(
        (applied, zero),
        (RACERS, 1),
        "each hop applies once; one commit reaches zero"
    );
    let (ctx, _) = store.final_context(&id).await.unwrap();
    assert_eq!(ctx.len(), RACERS, "every hop's output is stored");
}

/// A `wait_for_all` join waits for `expected` distinct arrivals, releases exactly once (arrivals
/// in arrival order), re-releases only to a redelivery of the releasing arrival.
pub async fn join_wait_for_all(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({}), 1).await;
    let j = "join|merge|";
    let a = json!({"real": true, "from": "a", "z": 1, "y": 2});
    let b = json!({"real": false, "from": "b"});
    let c = json!({"real": true, "from": "c"});
    assert_eq!(
        store
            .join(&id, j, "e-a", a.clone(), 3, false)
            .await
            .unwrap(),
        JoinOutcome::Waiting {
            arrived: 1,
            expected: 3
        }
    );
    assert_eq!(
        store
            .join(&id, j, "e-a", json!({"dup": true}), 3, false)
            .await
            .unwrap(),
        JoinOutcome::Waiting {
            arrived: 1,
            expected: 3
        },
        "a duplicate arrival is ignored"
    );
    assert_eq!(
        store
            .join(&id, j, "e-b", b.clone(), 3, false)
            .await
            .unwrap(),
        JoinOutcome::Waiting {
            arrived: 2,
            expected: 3
        }
    );
    // Another join of the same execution is independent.
    assert_eq!(
        store
            .join(&id, "join|merge|s#1", "e-a", a.clone(), 2, false)
            .await
            .unwrap(),
        JoinOutcome::Waiting {
            arrived: 1,
            expected: 2
        }
    );

    let released = JoinOutcome::Released {
        arrivals: vec![
            ("e-a".into(), a.clone()),
            ("e-b".into(), b.clone()),
            ("e-c".into(), c.clone()),
        ],
    };
    let got = store
        .join(&id, j, "e-c", c.clone(), 3, false)
        .await
        .unwrap();
    assert_eq!(got, released, "the last expected arrival releases");
    if let JoinOutcome::Released { arrivals } = &got {
        assert_eq!(
            arrivals[0].1.to_string(),
            a.to_string(),
            "arrival JSON keeps its key order"
        );
    }
    assert_eq!(
        store
            .join(&id, j, "e-c", c.clone(), 3, false)
            .await
            .unwrap(),
        released,
        "the releaser's redelivery releases again"
    );
    assert_eq!(
        store
            .join(&id, j, "e-a", a.clone(), 3, false)
            .await
            .unwrap(),
        JoinOutcome::AlreadyReleased,
        "an earlier arrival's redelivery"
    );
    assert_eq!(
        store
            .join(&id, j, "e-late", json!({"real": true}), 3, false)
            .await
            .unwrap(),
        JoinOutcome::AlreadyReleased,
        "a late arrival"
    );
    let again = store.join(&id, j, "e-c", c, 3, false).await.unwrap();
    assert_released_with_prefix(
        &again,
        &released,
        "the releaser's redelivery after a late arrival",
    );
}

/// `release_on_first_real` (`wait_for_any`): the first real arrival releases; skips wait; a
/// join of only skips releases when all `expected` arrived.
pub async fn join_release_on_first_real(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({}), 1).await;
    let j = "join|race|";
    let skip = json!({"real": false});
    let run = json!({"real": true, "winner": "b"});
    assert_eq!(
        store
            .join(&id, j, "e-a", skip.clone(), 3, true)
            .await
            .unwrap(),
        JoinOutcome::Waiting {
            arrived: 1,
            expected: 3
        }
    );
    let released = JoinOutcome::Released {
        arrivals: vec![("e-a".into(), skip.clone()), ("e-b".into(), run.clone())],
    };
    assert_eq!(
        store
            .join(&id, j, "e-b", run.clone(), 3, true)
            .await
            .unwrap(),
        released,
        "first real arrival releases"
    );
    assert_eq!(
        store
            .join(&id, j, "e-c", json!({"real": true}), 3, true)
            .await
            .unwrap(),
        JoinOutcome::AlreadyReleased
    );
    let again = store.join(&id, j, "e-b", run, 3, true).await.unwrap();
    assert_released_with_prefix(&again, &released, "redelivered winner");

    let j2 = "join|race|all-skipped";
    assert!(matches!(
        store
            .join(&id, j2, "e-a", skip.clone(), 2, true)
            .await
            .unwrap(),
        JoinOutcome::Waiting { .. }
    ));
    assert_eq!(
        store
            .join(&id, j2, "e-b", skip.clone(), 2, true)
            .await
            .unwrap(),
        JoinOutcome::Released {
            arrivals: vec![("e-a".into(), skip.clone()), ("e-b".into(), skip.clone())]
        },
        "only skips: released when all arrived"
    );
    // `real` must be a JSON true; without release_on_first_real a real arrival just counts.
    let j3 = "join|plain|";
    assert!(matches!(
        store
            .join(&id, j3, "e-a", json!({"real": "yes"}), 2, true)
            .await
            .unwrap(),
        JoinOutcome::Waiting { .. }
    ));
    assert!(matches!(
        store
            .join(&id, "join|all|", "e-a", json!({"real": true}), 2, false)
            .await
            .unwrap(),
        JoinOutcome::Waiting { .. }
    ));
}

/// A redelivered releaser is released again with the original arrivals first (arrivals that
/// came after the release may follow).
fn assert_released_with_prefix(got: &JoinOutcome, original: &JoinOutcome, what: &str) {
    let (JoinOutcome::Released { arrivals }, JoinOutcome::Released { arrivals: first }) =
        (got, original)
    else {
        panic!("{what}: expected a release, got {got:?}");
    };
    assert!(
        arrivals.len() >= first.len() && arrivals[..first.len()] == first[..],
        "{what}: {arrivals:?} does not start with {first:?}"
    );
}

/// Many tasks arriving at one join at once (each arrival also redelivered): exactly one
/// distinct arrival releases it, and it sees every arrival.
pub async fn concurrent_joins(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({}), 1).await;
    for (j, any) in [("join|all|", false), ("join|any|", true)] {
        let mut tasks = Vec::new();
        for i in 0..RACERS * 2 {
            let (store, id) = (store.clone(), id.clone());
            let edge = format!("e-{}", i % RACERS);
            tasks.push(tokio::spawn(async move {
                let out = store
                    .join(
                        &id,
                        j,
                        &edge,
                        json!({"real": true, "edge": edge}),
                        RACERS,
                        any,
                    )
                    .await
                    .unwrap();
                (edge, out)
            }));
        }
        let mut releasers = std::collections::HashSet::new();
        for t in tasks {
            let (edge, out) = t.await.unwrap();
            match out {
                JoinOutcome::Released { arrivals } => {
                    releasers.insert(edge);
                    if !any {
                        assert_eq!(
                            arrivals.len(),
                            RACERS,
                            "{j}: the releaser sees every arrival"
                        );
                    }
                    let mut keys: Vec<_> = arrivals.iter().map(|(k, _)| k.clone()).collect();
                    keys.sort();
                    keys.dedup();
                    assert_eq!(keys.len(), arrivals.len(), "{j}: arrivals are distinct");
                }
                JoinOutcome::Waiting { arrived, expected } => {
                    assert!(
                        !any,
                        "{j}: a real arrival never waits under release_on_first_real"
                    );
                    assert!(arrived < expected && expected == RACERS);
                }
                JoinOutcome::AlreadyReleased => {}
            }
        }
        assert_eq!(
            releasers.len(),
            1,
            "{j}: exactly one arrival releases, got {releasers:?}"
        );
    }
}

/// `finish` sets the final status once: the first caller wins, under contention too.
pub async fn finish_first_writer_wins(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({}), 1).await;
    assert!(
        store
            .finish(&id, ExecutionStatus::Halted, Some("node `x` failed".into()))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish(&id, ExecutionStatus::Completed, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish(&id, ExecutionStatus::Halted, Some("other".into()))
            .await
            .unwrap()
    );
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status: ExecutionStatus::Halted,
            reason: Some("node `x` failed".into()),
            completion_sent: false
        }
    );

    let id = started(&store, json!({}), 1).await;
    assert!(
        store
            .finish(&id, ExecutionStatus::Completed, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status: ExecutionStatus::Completed,
            reason: None,
            completion_sent: false
        },
        "no reason stays None"
    );
    let id = started(&store, json!({}), 1).await;
    assert!(
        store
            .finish(&id, ExecutionStatus::Failed, Some(String::new()))
            .await
            .unwrap()
    );
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status: ExecutionStatus::Failed,
            reason: Some(String::new()),
            completion_sent: false
        },
        "an empty reason stays Some"
    );

    // A finished execution still takes commits and joins (an on_failure node runs after it).
    assert_eq!(
        store
            .commit(&id, commit("after", &[("", "k", json!(1))], 0))
            .await
            .unwrap(),
        CommitOutcome::Applied { pending: 0 }
    );
    assert!(matches!(
        store
            .join(&id, "join|late|", "e", json!({"real": true}), 1, false)
            .await
            .unwrap(),
        JoinOutcome::Released { .. }
    ));

    let id = started(&store, json!({}), 1).await;
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let (store, id) = (store.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let status = if i % 2 == 0 {
                ExecutionStatus::Completed
            } else {
                ExecutionStatus::Halted
            };
            let won = store
                .finish(&id, status, Some(format!("racer {i}")))
                .await
                .unwrap();
            (won, status, i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (won, status, i) = t.await.unwrap();
        if won {
            winners.push((status, i));
        }
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent finish wins");
    let (status, i) = winners[0];
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status,
            reason: Some(format!("racer {i}")),
            completion_sent: false
        },
        "the winner's status and reason stick"
    );
}

/// `finish_by` remembers which hop finished the execution (the first finisher only);
/// `finish` and an unfinished execution name none.
pub async fn finish_remembers_the_finishing_hop(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({}), 1).await;
    assert_eq!(store.finished_by(&id).await.unwrap(), None, "running");
    assert!(
        store
            .finish_by(
                &id,
                ExecutionStatus::Halted,
                Some("a failed".into()),
                "a|||Run||1"
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_by(
                &id,
                ExecutionStatus::Halted,
                Some("b failed".into()),
                "b|||Run||1"
            )
            .await
            .unwrap(),
        "the second finisher loses"
    );
    assert_eq!(
        store.finished_by(&id).await.unwrap().as_deref(),
        Some("a|||Run||1")
    );
    assert!(matches!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished { status: ExecutionStatus::Halted, reason: Some(r), .. } if r == "a failed"
    ));

    let plain = started(&store, json!({}), 1).await;
    assert!(
        store
            .finish(&plain, ExecutionStatus::Completed, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.finished_by(&plain).await.unwrap(),
        None,
        "finish names no hop"
    );
}

/// `mark_completion_sent`: true once, visible in the lifecycle.
/// One claimer at a time sends a completion; a claim older than its lease can be taken over
/// (its holder died); once marked sent, nobody claims it again.
pub async fn completion_claim_lease(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({}), 1).await;
    store
        .finish(&id, ExecutionStatus::Halted, Some("stop".into()))
        .await
        .unwrap();
    let claim = |now: u64| {
        let (store, id) = (store.clone(), id.clone());
        async move { store.claim_completion(&id, now, 1_000).await.unwrap() }
    };
    let mut racers = Vec::new();
    for _ in 0..RACERS {
        racers.push(tokio::spawn(claim(10_000)));
    }
    let mut claimed = 0;
    for r in racers {
        match r.await.unwrap() {
            CompletionClaim::Claimed => claimed += 1,
            other => assert_eq!(other, CompletionClaim::Held),
        }
    }
    assert_eq!(claimed, 1, "one claimer within the lease");
    assert_eq!(
        claim(10_999).await,
        CompletionClaim::Held,
        "still within the lease"
    );
    assert_eq!(
        claim(11_000).await,
        CompletionClaim::Claimed,
        "an expired claim is taken over"
    );
    assert!(store.mark_completion_sent(&id).await.unwrap());
    assert_eq!(claim(50_000).await, CompletionClaim::Sent);
    assert_eq!(
        store
            .claim_completion(&unique_id(), 1, 1_000)
            .await
            .unwrap(),
        CompletionClaim::Unknown
    );
}

pub async fn completion_sent_once(store: Arc<dyn ExecutionStore>) {
    let id = started(&store, json!({}), 1).await;
    store
        .finish(&id, ExecutionStatus::Completed, None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let (store, id) = (store.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            store.mark_completion_sent(&id).await.unwrap()
        }));
    }
    let mut firsts = 0;
    for t in tasks {
        firsts += usize::from(t.await.unwrap());
    }
    assert_eq!(firsts, 1, "exactly one caller marks the completion sent");
    assert!(!store.mark_completion_sent(&id).await.unwrap());
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status: ExecutionStatus::Completed,
            reason: None,
            completion_sent: true
        }
    );
}

/// `final_context`: the top-level scope only (seed, then outputs in first-write order; a
/// rewrite keeps its place) and the start time.
pub async fn final_context_top_level(store: Arc<dyn ExecutionStore>) {
    let start = start_of(json!({"$input": {"x": 1}, "$trigger": "t"}), 1);
    let id = start.execution_id.clone();
    assert!(store.start(&start).await.unwrap());
    store
        .commit(
            &id,
            commit(
                "h1",
                &[
                    ("", "node_b", json!({"b": 1})),
                    ("split#0", "inner", json!(0)),
                    ("", "node_a", json!("a")),
                ],
                1,
            ),
        )
        .await
        .unwrap();
    store
        .commit(
            &id,
            commit(
                "h2",
                &[
                    ("", "$input", json!({"x": 2})),
                    ("split#1/deep#0", "node_b", json!("scoped")),
                ],
                1,
            ),
        )
        .await
        .unwrap();
    store
        .finish(&id, ExecutionStatus::Completed, None)
        .await
        .unwrap();

    let (ctx, started_at) = store.final_context(&id).await.unwrap();
    assert_eq!(started_at, start.started_at_ms);
    let want = json!({"$input": {"x": 2}, "$trigger": "t", "node_b": {"b": 1}, "node_a": "a"});
    assert_eq!(Value::Object(ctx.clone()), want, "top-level keys only");
    let order: Vec<&str> = ctx.keys().map(String::as_str).collect();
    assert_eq!(
        order,
        ["$input", "$trigger", "node_b", "node_a"],
        "insertion order"
    );
}
