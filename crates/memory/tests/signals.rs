//! Wait nodes in `signal` mode, run through the embedded runtime.

use std::sync::Arc;
use std::time::Duration;

use baton_core::CompiledWorkflow;
use baton_core::message::ExecutionStatus;
use baton_memory::EmbeddedRuntime;
use serde_json::{Value, json};

fn workflow(wait_params: Value) -> Arc<CompiledWorkflow> {
    let doc = json!({
        "nodes": [
            {"id": "w", "name": "Approval", "type": "wait", "parameters": wait_params},
            {"id": "ok", "name": "Approved", "type": "log", "parameters": {"message": "approved by {{$Approval.data.by}}"}},
            {"id": "late", "name": "Too late", "type": "log", "parameters": {"message": "{{$error.code}}"}}
        ],
        "edges": [
            {"id": "e1", "src": "w", "dst": "ok"},
            {"id": "e2", "src": "w", "dst": "late", "on": "error"}
        ]
    });
    Arc::new(CompiledWorkflow::compile(&doc, &baton_nodes::registry()).expect("valid"))
}

async fn until_waiting(
    rt: &EmbeddedRuntime,
    wf: &Arc<CompiledWorkflow>,
    id: &str,
) -> tokio::sync::oneshot::Receiver<baton_core::message::Completion> {
    let mut events = rt.events().subscribe();
    let done = rt
        .submit(wf.clone(), id, json!({}))
        .await
        .expect("submitted");
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
            Ok(Ok(baton_memory::Event::Status(s)))
                if s.status == baton_core::message::NodeStatus::Waiting =>
            {
                break;
            }
            Ok(Ok(_)) => {}
            other => panic!("no waiting status: {other:?}"),
        }
    }
    done
}

#[tokio::test]
async fn a_signal_resumes_the_waiting_branch_with_its_data() {
    let rt = EmbeddedRuntime::start(baton_nodes::registry(), 8);
    let wf = workflow(json!({"mode": "signal", "signal": "approve"}));
    let done = until_waiting(&rt, &wf, "sig-1").await;
    assert_eq!(
        rt.signal("sig-1", "approve", json!({"by": "ada"}))
            .await
            .unwrap(),
        1
    );
    let c = tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, ExecutionStatus::Completed);
    assert_eq!(
        c.final_context["$Approved"]["message"],
        json!("approved by ada")
    );
    assert_eq!(
        c.final_context["$Approval"],
        json!({"signal": "approve", "data": {"by": "ada"}})
    );
    assert!(!c.final_context.contains_key("$Too late"));
}

/// A delivery that took the waiters and then failed or died before resuming them (Redis
/// failing over under it, or its worker killed): the signal's retry still resumes them. It
/// used to find no waiter, buffer the signal, and leave the execution waiting for ever.
#[tokio::test]
async fn a_signal_whose_first_delivery_died_after_taking_the_waiter_still_resumes_it_on_retry() {
    use baton_engine::ports::SignalStore;
    let rt = EmbeddedRuntime::start(baton_nodes::registry(), 8);
    let wf = workflow(json!({"mode": "signal", "signal": "approve"}));
    let done = until_waiting(&rt, &wf, "sig-died").await;
    // The first attempt: it takes the waiter, and nothing after that happens.
    let taken = rt
        .store()
        .deliver_signal("sig-died", "approve", json!({"by": "ada"}))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    // The retry (the signal message redelivered).
    assert_eq!(
        rt.signal("sig-died", "approve", json!({"by": "ada"}))
            .await
            .unwrap(),
        1,
        "the retry resumes the waiter the first attempt took"
    );
    let c = tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .expect("the execution completes")
        .unwrap();
    assert_eq!(c.status, ExecutionStatus::Completed);
    assert_eq!(
        c.final_context["$Approved"]["message"],
        json!("approved by ada")
    );
}

#[tokio::test]
async fn a_signal_that_arrives_before_the_wait_is_kept_for_it() {
    let rt = EmbeddedRuntime::start(baton_nodes::registry(), 8);
    let doc = json!({
        "nodes": [
            {"id": "slow", "name": "Slow", "type": "wait", "parameters": {"amount": 300, "unit": "milliseconds"}},
            {"id": "w", "name": "Approval", "type": "wait", "parameters": {"mode": "signal", "signal": "approve"}},
            {"id": "ok", "name": "Approved", "type": "log", "parameters": {"message": "approved by {{$Approval.data.by}}"}}
        ],
        "edges": [{"id": "e0", "src": "slow", "dst": "w"}, {"id": "e1", "src": "w", "dst": "ok"}]
    });
    let wf = Arc::new(CompiledWorkflow::compile(&doc, &baton_nodes::registry()).expect("valid"));
    let done = rt.submit(wf, "sig-2", json!({})).await.unwrap();
    assert_eq!(
        rt.signal("sig-2", "approve", json!({"by": "grace"}))
            .await
            .unwrap(),
        0,
        "nobody waits yet"
    );
    let c = tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, ExecutionStatus::Completed);
    assert_eq!(
        c.final_context["$Approved"]["message"],
        json!("approved by grace")
    );
}

#[tokio::test]
async fn a_signal_timeout_takes_the_error_route_and_a_late_signal_changes_nothing() {
    let rt = EmbeddedRuntime::start(baton_nodes::registry(), 8);
    let wf = workflow(
        json!({"mode": "signal", "signal": "approve", "amount": 100, "unit": "milliseconds"}),
    );
    let done = rt.submit(wf, "sig-3", json!({})).await.unwrap();
    let c = tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, ExecutionStatus::Completed);
    assert_eq!(
        c.final_context["$Too late"]["message"],
        json!("SIGNAL_TIMEOUT")
    );
    assert!(!c.final_context.contains_key("$Approved"));
    assert_eq!(rt.signal("sig-3", "approve", json!({})).await.unwrap(), 0);
}

#[tokio::test]
async fn a_signal_before_the_timeout_wins_and_the_execution_ends_before_the_timeout() {
    let rt = EmbeddedRuntime::start(baton_nodes::registry(), 8);
    let wf =
        workflow(json!({"mode": "signal", "signal": "approve", "amount": 10, "unit": "minutes"}));
    let done = until_waiting(&rt, &wf, "sig-4").await;
    assert_eq!(
        rt.signal("sig-4", "approve", json!({"by": "linus"}))
            .await
            .unwrap(),
        1
    );
    let c = tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .unwrap()
        .unwrap();
    // The signal releases the timeout's token: the execution ends with the signal's route,
    // without waiting for the timeout.
    assert_eq!(c.status, ExecutionStatus::Completed);
    assert_eq!(
        c.final_context["$Approved"]["message"],
        json!("approved by linus")
    );
    assert!(!c.final_context.contains_key("$Too late"));
    assert!(c.total_duration_ms < 600_000, "{}", c.total_duration_ms);
}

#[tokio::test]
async fn signal_mode_without_a_name_fails_naming_the_parameter() {
    // A literal omission is caught at submit time; a template resolving to blank at run time.
    let missing = json!({"nodes": [{"id": "w", "name": "W", "type": "wait", "parameters": {"mode": "signal"}}]});
    let invalid = CompiledWorkflow::compile(&missing, &baton_nodes::registry()).unwrap_err();
    assert_eq!(invalid.0[0].path, "$.nodes[0].parameters.signal");
    let rt = EmbeddedRuntime::start(baton_nodes::registry(), 8);
    let wf = workflow(json!({"mode": "signal", "signal": "{{$input.sig}}"}));
    let c = rt.run(wf, "sig-5", json!({"sig": " "})).await.unwrap();
    assert_eq!(
        c.status,
        ExecutionStatus::Completed,
        "the error route handles it"
    );
    assert_eq!(
        c.final_context["$Too late"]["message"],
        json!("INVALID_PARAMETER")
    );
}
