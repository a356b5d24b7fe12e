//! Time-based behaviour driven by a `ManualClock` instead of sleeping: timers and signal
//! timeouts of the embedded runtime fire when the test moves time past them, never before.

mod support;

use std::sync::Arc;
use std::time::Duration;

use baton_core::message::{Completion, NodeStatus};
use baton_engine::{Clock, ManualClock};
use baton_memory::{EmbeddedRuntime, MemoryCatalog};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use support::*;
use tokio::sync::oneshot;

const HOUR: Duration = Duration::from_secs(3600);

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .expect("a valid timestamp")
        .with_timezone(&Utc)
}

fn harness_on(clock: &Arc<ManualClock>) -> Harness {
    Harness::with_runtime(EmbeddedRuntime::start_with_clock(
        baton_nodes::registry(),
        16,
        None,
        Arc::new(MemoryCatalog::new()),
        clock.clone(),
    ))
}

/// Submits `doc` and waits until node `parked` is waiting with its timer registered on the
/// clock, so that moving time from here on is what fires it.
async fn submit_until_parked(
    h: &Harness,
    clock: &ManualClock,
    doc: &Value,
    execution_id: &str,
    parked: &str,
) -> oneshot::Receiver<Completion> {
    let done = h
        .runtime
        .submit(compile(doc), execution_id, json!({}))
        .await
        .expect("submitted");
    h.until_status(execution_id, parked, NodeStatus::Waiting)
        .await;
    tokio::time::timeout(BOUND, async {
        while clock.sleepers() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the timer was registered on the clock");
    done
}

/// Asserts the execution has not completed after the runtime had time to act on the clock.
async fn assert_still_running(done: &mut oneshot::Receiver<Completion>) {
    tokio::time::sleep(GRACE).await;
    assert!(
        matches!(done.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        "the execution completed before its time"
    );
}

async fn completion(done: oneshot::Receiver<Completion>) -> Completion {
    tokio::time::timeout(BOUND, done)
        .await
        .expect("completed once time passed")
        .expect("runtime running")
}

#[tokio::test]
async fn a_one_hour_wait_completes_once_the_clock_passes_the_hour_and_not_before() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let h = harness_on(&clock);
    let doc = workflow(
        vec![
            json!({"id": "w", "name": "Pause", "type": "wait", "parameters": {"amount": 1, "unit": "hours"}}),
            log("after", "resumed"),
        ],
        vec![edge("w", "after")],
    );
    let mut done = submit_until_parked(&h, &clock, &doc, "clock-wait", "w").await;
    assert_still_running(&mut done).await;
    clock.advance(HOUR - Duration::from_secs(1));
    assert_still_running(&mut done).await;
    assert!(!h.ran("clock-wait", "after"));

    clock.advance(Duration::from_secs(1));
    let c = completion(done).await;
    assert_completed(&c);
    assert_eq!(out(&c, "after")["message"], json!("resumed"));
    let resume_at = clock.now_ms() as i64;
    assert_eq!(out(&c, "Pause")["resume_at"], json!(resume_at));
}

#[tokio::test]
async fn a_signal_wait_with_a_one_hour_timeout_halts_with_signal_timeout_once_the_hour_passes() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let h = harness_on(&clock);
    let doc = workflow(
        vec![
            json!({"id": "w", "name": "Approval", "type": "wait",
                   "parameters": {"mode": "signal", "signal": "approve", "amount": 1, "unit": "hours"}}),
            log("ok", "approved"),
        ],
        vec![edge("w", "ok")],
    );
    let mut done = submit_until_parked(&h, &clock, &doc, "clock-signal", "w").await;
    clock.advance(HOUR - Duration::from_secs(1));
    assert_still_running(&mut done).await;

    clock.advance(Duration::from_secs(2));
    let c = completion(done).await;
    let reason = assert_halted(&c);
    assert!(reason.contains("SIGNAL_TIMEOUT"), "{reason}");
    assert!(!h.ran("clock-signal", "ok"));
    assert_eq!(
        h.runtime
            .signal("clock-signal", "approve", json!({}))
            .await
            .unwrap(),
        0
    );
}

/// Issue 14, item 2: a signal wait with a ten-minute timeout, signalled after one second,
/// completes right after the signal (the clock never reaches the timeout), and its timeout
/// timer is gone.
#[tokio::test]
async fn a_signal_before_its_timeout_completes_the_execution_at_once_and_cancels_the_timer() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let h = harness_on(&clock);
    let doc = workflow(
        vec![
            json!({"id": "w", "name": "Approval", "type": "wait",
                   "parameters": {"mode": "signal", "signal": "approve", "amount": 10, "unit": "minutes"}}),
            log("ok", "approved"),
            json!({"id": "late", "name": "Too late", "type": "log", "parameters": {"message": "{{$error.code}}"}}),
        ],
        vec![edge("w", "ok"), edge_on("w", "late", "error")],
    );
    let mut done = submit_until_parked(&h, &clock, &doc, "clock-signal-early", "w").await;
    clock.advance(Duration::from_secs(1));
    assert_still_running(&mut done).await;
    assert_eq!(
        h.runtime
            .signal("clock-signal-early", "approve", json!({"by": "ada"}))
            .await
            .unwrap(),
        1
    );
    let c = completion(done).await;
    assert_completed(&c);
    assert_eq!(out(&c, "ok")["message"], json!("approved"));
    assert!(!h.ran("clock-signal-early", "late"));
    assert_eq!(
        c.total_duration_ms, 1_000,
        "completed at the signal, not the timeout"
    );
    assert_eq!(clock.sleepers(), 0, "the timeout timer was cancelled");
    // Passing the old timeout changes nothing: no second completion, no error route.
    clock.advance(Duration::from_secs(600));
    tokio::time::sleep(GRACE).await;
    assert_eq!(h.completions("clock-signal-early").len(), 1);
    assert!(!h.ran("clock-signal-early", "late"));
}

/// A workflow-level `timeout_ms` fails an execution still running at its deadline, with the
/// reason, and cancels its parked branch; not a moment before.
#[tokio::test]
async fn an_execution_still_running_at_its_deadline_fails_with_execution_timeout() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let h = harness_on(&clock);
    let mut doc = workflow(
        vec![
            json!({"id": "w", "name": "Pause", "type": "wait", "parameters": {"amount": 1, "unit": "hours"}}),
            log("after", "resumed"),
        ],
        vec![edge("w", "after")],
    );
    doc["timeout_ms"] = json!(60_000);
    let mut done = submit_until_parked(&h, &clock, &doc, "clock-deadline", "w").await;
    clock.advance(Duration::from_millis(59_999));
    assert_still_running(&mut done).await;

    clock.advance(Duration::from_millis(1));
    let c = completion(done).await;
    assert_eq!(
        c.status,
        baton_core::message::ExecutionStatus::Failed,
        "{c:?}"
    );
    assert_eq!(
        c.failure_reason.as_deref(),
        Some("execution exceeded its deadline of 60000 ms [EXECUTION_TIMEOUT]")
    );
    assert_eq!(c.total_duration_ms, 60_000);
    // The parked branch never runs on: the hour passing changes nothing.
    clock.advance(HOUR);
    tokio::time::sleep(GRACE).await;
    assert!(!h.ran("clock-deadline", "after"));
    assert_eq!(h.completions("clock-deadline").len(), 1);
}

/// An execution that completes before its deadline is not touched by it, and its deadline
/// timer is cancelled with the completion.
#[tokio::test]
async fn an_execution_that_ends_before_its_deadline_completes_and_drops_the_deadline_timer() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let h = harness_on(&clock);
    let mut doc = workflow(
        vec![
            json!({"id": "w", "name": "Pause", "type": "wait", "parameters": {"amount": 10, "unit": "seconds"}}),
            log("after", "resumed"),
        ],
        vec![edge("w", "after")],
    );
    doc["timeout_ms"] = json!(60_000);
    let done = submit_until_parked(&h, &clock, &doc, "clock-deadline-ok", "w").await;
    // Both the wait's timer and the deadline are registered.
    tokio::time::timeout(BOUND, async {
        while clock.sleepers() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("two timers on the clock");
    clock.advance(Duration::from_secs(10));
    let c = completion(done).await;
    assert_completed(&c);
    assert_eq!(out(&c, "after")["message"], json!("resumed"));
    tokio::time::timeout(BOUND, async {
        while clock.sleepers() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the deadline timer was cancelled");
    clock.advance(HOUR);
    tokio::time::sleep(GRACE).await;
    assert_eq!(h.completions("clock-deadline-ok").len(), 1);
}

/// A signal wait without a deadline of its own is cut by the execution's deadline.
#[tokio::test]
async fn a_signal_wait_with_no_timeout_is_failed_by_the_execution_deadline() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let h = harness_on(&clock);
    let mut doc = workflow(
        vec![
            json!({"id": "w", "name": "Approval", "type": "wait",
                   "parameters": {"mode": "signal", "signal": "approve"}}),
            log("ok", "approved"),
        ],
        vec![edge("w", "ok")],
    );
    doc["timeout_ms"] = json!(5_000);
    let mut done = submit_until_parked(&h, &clock, &doc, "clock-deadline-signal", "w").await;
    assert_still_running(&mut done).await;
    clock.advance(Duration::from_secs(5));
    let c = completion(done).await;
    assert_eq!(c.status, baton_core::message::ExecutionStatus::Failed);
    assert!(
        c.failure_reason
            .as_deref()
            .is_some_and(|r| r.contains("EXECUTION_TIMEOUT")),
        "{c:?}"
    );
    assert_eq!(
        h.runtime
            .signal("clock-deadline-signal", "approve", json!({}))
            .await
            .unwrap(),
        0,
        "a failed execution takes no signal"
    );
}
