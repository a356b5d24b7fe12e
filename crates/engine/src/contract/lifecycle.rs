//! Store contract: Starting, identifying and cancelling executions; signals.

use std::sync::Arc;

use baton_core::message::ExecutionStatus;
use serde_json::{Value, json};

use crate::ports::{CommitOutcome, ExecutionIdentity, HopStart, Lifecycle, StartState, StatePorts};

use super::support::*;

/// The hop's signal path: a parked wait holds two tokens (its own and its timeout's). The
/// signal takes the waiter, commits the resume and releases the timeout's token under the
/// timeout message's hop id, so the timeout, racing it or firing later, finds that id
/// committed (`Duplicate`) and releases nothing more, and the waiter is gone for it.
pub async fn signal_releases_its_timeout_once(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    assert_eq!(
        store.commit(&id, commit("w|Run", &[], 2)).await.unwrap(),
        CommitOutcome::Applied { pending: 2 },
        "the waiter and its timeout"
    );
    assert_eq!(
        store
            .await_signal(&id, "approve", "w|Run", "resume".into())
            .await
            .unwrap(),
        None
    );
    let waiters = store
        .deliver_signal(&id, "approve", json!({"by": "ada"}))
        .await
        .unwrap();
    assert_eq!(waiters.len(), 1);
    assert_eq!(
        store
            .commit(&id, commit("signal|w|Run", &[], 1))
            .await
            .unwrap(),
        CommitOutcome::Applied { pending: 2 },
        "the waiter's token becomes the resume's"
    );
    assert_eq!(
        store
            .commit(&id, commit("w|SignalTimeout", &[], 0))
            .await
            .unwrap(),
        CommitOutcome::Applied { pending: 1 },
        "the timeout's token is released with the signal"
    );
    assert!(
        !store
            .remove_signal_waiter(&id, "approve", "w|Run")
            .await
            .unwrap(),
        "the timeout finds no waiter"
    );
    assert_eq!(
        store
            .commit(&id, commit("w|SignalTimeout", &[], 0))
            .await
            .unwrap(),
        CommitOutcome::Duplicate { pending: 1 },
        "the timeout firing later releases nothing more"
    );
    assert_eq!(
        store.commit(&id, commit("resume|w", &[], 0)).await.unwrap(),
        CommitOutcome::Applied { pending: 0 },
        "the resumed branch's end completes the execution"
    );
}

/// `identity` names the workflow; signals reach waiters exactly once, are buffered when nobody
/// waits, and a removed (timed-out) waiter is not resumed.
pub async fn identity_and_signals(store: Arc<dyn StatePorts>) {
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
        Some(ExecutionIdentity {
            workflow_id: start.workflow_id.clone(),
            workflow_ref: start.workflow_ref.clone(),
        })
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
        got.iter().map(|w| w.waiter_id.as_str()).collect::<Vec<_>>(),
        ["w1", "w2"],
        "both waiters, once"
    );
    assert!(
        !store.remove_signal_waiter(&id, "go", "w1").await.unwrap(),
        "a waiter the delivery took is not its timeout's any more"
    );
    let mut again = store
        .deliver_signal(&id, "go", json!({"n": 1}))
        .await
        .unwrap();
    again.sort();
    assert_eq!(
        again, got,
        "taken but not reported resumed (the delivery failed half way): its retry gets them again"
    );
    for w in ["w1", "w2"] {
        store.signal_resumed(&id, "go", w).await.unwrap();
    }
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
            .await_signal(&id, "go", "w4", "p4".into())
            .await
            .unwrap(),
        Some(json!({"n": 2})),
        "a retried await of the same waiter (its hop failed before its commit) takes it again"
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
pub async fn start_and_lifecycle(store: Arc<dyn StatePorts>) {
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
pub async fn unknown_execution(store: Arc<dyn StatePorts>) {
    let id = unique_id();
    assert_eq!(store.lifecycle(&id).await.unwrap(), Lifecycle::Unknown);
    let HopStart {
        lifecycle: life,
        context: ctx,
        ..
    } = store
        .begin_hop(&id, "next", &strings(&[""]), &strings(&["a"]), None)
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
        store.read_exact(&id, &[at("", "a")]).await.is_err(),
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
/// A cancel recorded before the start makes the start create the execution already halted
/// (and report it as not created: its completion is all that is left to do).
pub async fn cancel_before_start(store: Arc<dyn StatePorts>) {
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
        store
            .start_state(&id)
            .await
            .unwrap()
            .map(|s| s.first_messages_published),
        Some(false)
    );
    assert!(store.mark_completion_sent(&id).await.unwrap());
}
/// `start_state` tells a duplicate start whether the first one published its messages.
pub async fn start_published_flag(store: Arc<dyn StatePorts>) {
    let missing = unique_id();
    assert_eq!(store.start_state(&missing).await.unwrap(), None);
    store.mark_started(&missing).await.unwrap();
    assert_eq!(
        store.lifecycle(&missing).await.unwrap(),
        Lifecycle::Unknown,
        "marking an unknown execution creates nothing"
    );
    let id = started(&store, json!({}), 1).await;
    let state = store.start_state(&id).await.unwrap().expect("exists");
    assert!(state.started_at_ms > 0);
    assert!(!state.first_messages_published, "not published yet");
    store.mark_started(&id).await.unwrap();
    assert_eq!(
        store.start_state(&id).await.unwrap(),
        Some(StartState {
            started_at_ms: state.started_at_ms,
            first_messages_published: true
        })
    );
}
