//! The execution lifecycle through the embedded runtime: wait timers, retries, timeouts,
//! exactly one completion, final context and duration, status events, `on_failure`, cancel.

mod support;

use std::time::{Duration, Instant};

use baton_core::message::NodeStatus;
use serde_json::{Value, json};
use support::*;

// ---------------------------------------------------------------------------------------------
// Wait
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_reports_waiting_then_success_and_completes_after_the_delay() {
    let doc = workflow(
        vec![wait_ms("Pause", json!(300)), log("After", "after")],
        vec![edge("Pause", "After")],
    );
    let h = Harness::new();
    let started = Instant::now();
    let c = h.run(&doc, "x", json!({})).await;
    let elapsed = started.elapsed();
    assert_completed(&c);
    assert_eq!(
        h.sequence("x", "Pause"),
        vec![
            NodeStatus::Running,
            NodeStatus::Waiting,
            NodeStatus::Success
        ]
    );
    let waiting = &h.statuses_of("x", "Pause")[1];
    assert_eq!(waiting.output.as_ref().unwrap()["delay_ms"], json!(300));
    assert!(waiting.output.as_ref().unwrap()["resume_at"].is_u64());
    assert!(
        elapsed >= Duration::from_millis(300),
        "completed before the delay: {elapsed:?}"
    );
    assert!(
        c.total_duration_ms >= 300,
        "total_duration_ms = {}",
        c.total_duration_ms
    );
    let resumed = h
        .status_position("x", "Pause", NodeStatus::Success)
        .unwrap();
    let after = h
        .status_position("x", "After", NodeStatus::Running)
        .unwrap();
    assert!(
        resumed < after,
        "the successor runs only after the timer fired"
    );
}

// ---------------------------------------------------------------------------------------------
// Retry and timeout
// ---------------------------------------------------------------------------------------------

fn flaky(server: &Server, max_attempts: u32) -> Value {
    let call = with(
        http_raising("Call", &server.url("/flaky/svc/2")),
        "retry",
        json!({"max_attempts": max_attempts, "initial_delay_ms": 10, "max_delay_ms": 50, "multiplier": 2.0, "jitter": true}),
    );
    workflow(
        vec![call, log("After", "got {{$Call.body.calls}}")],
        vec![edge("Call", "After")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_with_backoff_succeeds_on_the_third_attempt() {
    let server = Server::start().await;
    let h = Harness::new();
    let c = h.run(&flaky(&server, 3), "x", json!({})).await;
    assert_completed(&c);
    assert_eq!(server.hits("svc"), 3);
    assert_eq!(out(&c, "Call")["status"], json!(200));
    assert_eq!(out(&c, "After")["message"], json!("got 3"));
    assert_eq!(
        h.sequence("x", "Call"),
        vec![
            NodeStatus::Running,
            NodeStatus::Waiting,
            NodeStatus::Running,
            NodeStatus::Waiting,
            NodeStatus::Running,
            NodeStatus::Success
        ]
    );
    let retries: Vec<_> = h
        .statuses_of("x", "Call")
        .into_iter()
        .filter(|s| s.status == NodeStatus::Waiting)
        .collect();
    for s in &retries {
        assert_eq!(
            s.error
                .as_ref()
                .expect("a retry status carries the error")
                .code,
            "HTTP_STATUS"
        );
    }
    // Exponential backoff with equal jitter: 10 ms doubling, each delay in [base/2, base].
    let delays: Vec<u64> = retries
        .iter()
        .map(|s| {
            s.output.as_ref().unwrap()["retry"]["delay_ms"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        (5..=10).contains(&delays[0]) && (10..=20).contains(&delays[1]),
        "delays {delays:?}"
    );
    let attempts: Vec<Option<u32>> = h
        .statuses_of("x", "Call")
        .iter()
        .filter(|s| s.status == NodeStatus::Running)
        .map(|s| s.attempt)
        .collect();
    assert_eq!(attempts, vec![None, Some(2), Some(3)]);
    assert_eq!(h.runs("x", "After"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_gives_up_after_max_attempts_and_halts() {
    let server = Server::start().await;
    let h = Harness::new();
    let c = h.run(&flaky(&server, 2), "x", json!({})).await;
    let reason = assert_halted(&c);
    assert_eq!(server.hits("svc"), 2);
    assert!(
        reason.contains("Call") && reason.contains("HTTP_STATUS"),
        "{reason}"
    );
    assert!(reason.contains("2 attempts"), "{reason}");
    assert!(!h.ran("x", "After"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_timeout_halts_with_node_timeout_in_the_reason() {
    let server = Server::start().await;
    let call = with(
        http("Call", &server.url("/sleep/20000")),
        "timeout_ms",
        json!(200),
    );
    let doc = workflow(
        vec![call, log("After", "after")],
        vec![edge("Call", "After")],
    );
    let h = Harness::new();
    // Well below the endpoint's 20 s: only the node timeout can end this.
    let c = h
        .run_within(Duration::from_secs(15), compile(&doc), "x", json!({}))
        .await;
    let reason = assert_halted(&c);
    assert!(
        reason.contains("NODE_TIMEOUT") && reason.contains("Call"),
        "{reason}"
    );
    assert_eq!(
        h.sequence("x", "Call"),
        vec![NodeStatus::Running, NodeStatus::Failed]
    );
    assert!(!h.ran("x", "After"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_timeout_is_retried_like_any_transient_failure() {
    let server = Server::start().await;
    let call = with(
        http("Call", &server.url("/sleep/20000")),
        "timeout_ms",
        json!(200),
    );
    let call = with(
        call,
        "retry",
        json!({"max_attempts": 2, "initial_delay_ms": 10}),
    );
    let doc = workflow(vec![call], vec![]);
    let h = Harness::new();
    let c = h
        .run_within(Duration::from_secs(15), compile(&doc), "x", json!({}))
        .await;
    let reason = assert_halted(&c);
    assert!(
        reason.contains("NODE_TIMEOUT") && reason.contains("2 attempts"),
        "{reason}"
    );
    assert_eq!(server.hits("sleep"), 2);
}

// ---------------------------------------------------------------------------------------------
// Exactly one completion
// ---------------------------------------------------------------------------------------------

async fn assert_one_completion(h: &Harness, exec: &str) {
    tokio::time::sleep(GRACE).await;
    let n = h.completions(exec).len();
    assert_eq!(n, 1, "execution `{exec}` emitted {n} completions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_completion_with_parallel_leaves() {
    let server = Server::start().await;
    let doc = workflow(
        vec![
            log("Start", "go"),
            log("A", "a"),
            wait_ms("B", json!(50)),
            http("C", &server.url("/ok/c")),
            log("D", "d"),
        ],
        vec![
            edge("Start", "A"),
            edge("Start", "B"),
            edge("Start", "C"),
            edge("Start", "D"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({})).await;
    assert_completed(&c);
    for n in ["A", "B", "C", "D"] {
        assert_eq!(
            h.sequence("x", n).last(),
            Some(&NodeStatus::Success),
            "`{n}` finished before the completion"
        );
    }
    assert_one_completion(&h, "x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_completion_for_a_split_without_aggregator() {
    let doc = workflow(
        vec![
            split("Items", "$input.items"),
            log("Each", "item $item"),
            wait_ms("Pause", json!(20)),
        ],
        vec![edge("Items", "Each"), edge("Each", "Pause")],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"items": [1, 2, 3, 4, 5]})).await;
    assert_completed(&c);
    let resumed = h
        .statuses_of("x", "Pause")
        .into_iter()
        .filter(|s| s.status == NodeStatus::Success)
        .count();
    assert_eq!(resumed, 5, "every item finished before the completion");
    assert_one_completion(&h, "x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_completion_when_two_branches_fail_at_once() {
    let server = Server::start().await;
    let doc = workflow(
        vec![
            log("Start", "go"),
            http_raising("Left", &server.url("/code/500")),
            http_raising("Right", &server.url("/code/502")),
        ],
        vec![edge("Start", "Left"), edge("Start", "Right")],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({})).await;
    assert_halted(&c);
    assert_one_completion(&h, "x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_completion_per_execution_under_concurrent_executions() {
    let doc = workflow(
        vec![
            log("Start", "go"),
            split("Items", "$input.items"),
            log("Each", "$item"),
            aggregator("Collect"),
            log("Leaf", "leaf"),
            conditional("Check", "$input.n > 5"),
            log("Yes", "y"),
            log("No", "n"),
        ],
        vec![
            edge("Start", "Items"),
            edge("Items", "Each"),
            edge("Each", "Collect"),
            edge("Start", "Leaf"),
            edge("Start", "Check"),
            edge_on("Check", "Yes", "true"),
            edge_on("Check", "No", "false"),
        ],
    );
    let h = Harness::new();
    let wf = compile(&doc);
    let mut runs = Vec::new();
    for i in 0..25 {
        let rt = h.runtime.clone();
        let wf = wf.clone();
        runs.push(tokio::spawn(async move {
            rt.run(
                wf,
                &format!("x{i}"),
                json!({"n": i % 10, "items": [1, 2, 3]}),
            )
            .await
        }));
    }
    for r in runs {
        let c = tokio::time::timeout(BOUND, r)
            .await
            .expect("bounded")
            .unwrap()
            .unwrap();
        assert_completed(&c);
        assert_eq!(out(&c, "Collect")["count"], json!(3));
    }
    tokio::time::sleep(GRACE).await;
    for i in 0..25 {
        assert_eq!(h.completions(&format!("x{i}")).len(), 1, "x{i}");
    }
}

// ---------------------------------------------------------------------------------------------
// Final context, duration, statuses
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn final_context_is_the_union_of_top_level_outputs_of_all_branches() {
    let server = Server::start().await;
    let doc = workflow(
        vec![
            log("Start", "go"),
            log("A", "a"),
            http("B", &server.url("/ok/b")),
            conditional("Check", "$B.status == 200"),
            log("Yes", "yes"),
            log("No", "no"),
            wait_ms("Pause", json!(10)),
        ],
        vec![
            edge("Start", "A"),
            edge("Start", "B"),
            edge("B", "Check"),
            edge_on("Check", "Yes", "true"),
            edge_on("Check", "No", "false"),
            edge("A", "Pause"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"who": "me"})).await;
    assert_completed(&c);
    let mut got = keys(&c.final_context);
    got.sort();
    let mut want: Vec<String> = [
        "$input", "$trigger", "$Start", "$A", "$B", "$Check", "$Yes", "$Pause",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(out(&c, "A")["message"], json!("a"));
    assert_eq!(out(&c, "B")["body"]["key"], json!("b"));
    assert_eq!(out(&c, "input")["who"], json!("me"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn total_duration_covers_the_whole_execution() {
    // The long branch runs in parallel with a quick one and ends the execution last.
    let doc = workflow(
        vec![
            log("Start", "go"),
            log("Quick", "q"),
            wait_ms("First", json!(150)),
            wait_ms("Second", json!(150)),
        ],
        vec![
            edge("Start", "Quick"),
            edge("Start", "First"),
            edge("First", "Second"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({})).await;
    assert_completed(&c);
    assert!(
        c.total_duration_ms >= 300,
        "total_duration_ms = {} < 300 ms of waits",
        c.total_duration_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statuses_go_running_then_success_with_rune_fields() {
    let server = Server::start().await;
    let mut fetch = http("Fetch", &server.url("/ok/{{$input.key}}"));
    fetch["id"] = json!("fetch-id");
    let doc = workflow(
        vec![
            log("Start", "hello {{$input.key}}"),
            fetch,
            log("Done", "{{$Fetch.body.key}}"),
        ],
        vec![
            json!({"id": "e1", "src": "Start", "dst": "fetch-id"}),
            json!({"id": "e2", "src": "fetch-id", "dst": "Done"}),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "exec-42", json!({"key": "k1"})).await;
    assert_completed(&c);
    assert_eq!(c.workflow_id, "semantics");
    assert_eq!(c.execution_id, "exec-42");
    chrono::DateTime::parse_from_rfc3339(&c.completed_at).expect("completed_at is RFC 3339");
    for (id, name) in [("Start", "Start"), ("fetch-id", "Fetch"), ("Done", "Done")] {
        let statuses = h.statuses_of("exec-42", id);
        assert_eq!(
            statuses.iter().map(|s| s.status).collect::<Vec<_>>(),
            vec![NodeStatus::Running, NodeStatus::Success],
            "{id}"
        );
        for s in &statuses {
            assert_eq!(s.node_id, id);
            assert_eq!(s.node_name, name);
            assert_eq!(s.execution_id, "exec-42");
            assert_eq!(s.workflow_id, "semantics");
            chrono::DateTime::parse_from_rfc3339(&s.executed_at).expect("executed_at is RFC 3339");
            assert!(
                s.branch_id.is_none()
                    && s.split_node_id.is_none()
                    && s.item_index.is_none()
                    && s.lineage_stack.is_empty()
            );
        }
        assert!(
            statuses[0].parameters.is_some(),
            "running carries the resolved parameters"
        );
        assert!(statuses[1].output.is_some(), "success carries the output");
    }
    let running = &h.statuses_of("exec-42", "fetch-id")[0];
    assert_eq!(
        running.parameters.as_ref().unwrap()["url"],
        json!(server.url("/ok/k1"))
    );
    let fetched = &h.statuses_of("exec-42", "fetch-id")[1];
    assert_eq!(fetched.output.as_ref().unwrap()["body"]["key"], json!("k1"));
    // Statuses follow the graph: a node succeeds before its successor starts.
    let start_done = h
        .status_position("exec-42", "Start", NodeStatus::Success)
        .unwrap();
    let fetch_start = h
        .status_position("exec-42", "fetch-id", NodeStatus::Running)
        .unwrap();
    let fetch_done = h
        .status_position("exec-42", "fetch-id", NodeStatus::Success)
        .unwrap();
    let done_start = h
        .status_position("exec-42", "Done", NodeStatus::Running)
        .unwrap();
    assert!(start_done < fetch_start && fetch_done < done_start);
    assert!(
        h.completion_position("exec-42").unwrap()
            > h.status_position("exec-42", "Done", NodeStatus::Success)
                .unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// on_failure and cancel
// ---------------------------------------------------------------------------------------------

fn halting_with_cleanup(cleanup: Value) -> Value {
    let mut doc = workflow(
        vec![
            log("Start", "go"),
            log("Charge", "charging {{$input.card.number}}"),
            cleanup,
        ],
        vec![edge("Start", "Charge")],
    );
    doc["on_failure"] = json!("Cleanup");
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_failure_node_runs_after_a_halt_and_before_the_completion() {
    let h = Harness::new();
    let c = h
        .run(
            &halting_with_cleanup(log("Cleanup", "cleaning up")),
            "x",
            json!({"card": {}}),
        )
        .await;
    let reason = assert_halted(&c);
    assert!(reason.contains("Charge"), "{reason}");
    assert_eq!(out(&c, "Cleanup")["message"], json!("cleaning up"));
    assert_eq!(
        h.sequence("x", "Cleanup"),
        vec![NodeStatus::Running, NodeStatus::Success]
    );
    let failed = h
        .status_position("x", "Charge", NodeStatus::Failed)
        .unwrap();
    let cleaned = h
        .status_position("x", "Cleanup", NodeStatus::Success)
        .unwrap();
    let completed = h.completion_position("x").unwrap();
    assert!(
        failed < cleaned && cleaned < completed,
        "order: failed {failed}, cleanup {cleaned}, completion {completed}"
    );
    assert_one_completion(&h, "x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_failure_node_is_not_cancelled_by_the_halt_it_follows() {
    // The halt cancels the execution's running nodes; the on_failure node runs afterwards and
    // must not inherit that cancellation (an http call would be aborted before it is sent).
    let server = Server::start().await;
    let h = Harness::new();
    let c = h
        .run(
            &halting_with_cleanup(http("Cleanup", &server.url("/ok/cleanup"))),
            "x",
            json!({"card": {}}),
        )
        .await;
    assert_halted(&c);
    assert_eq!(server.hits("cleanup"), 1);
    assert_eq!(out(&c, "Cleanup")["body"]["key"], json!("cleanup"));
    assert_eq!(
        h.sequence("x", "Cleanup"),
        vec![NodeStatus::Running, NodeStatus::Success]
    );
}

fn long_wait() -> Value {
    workflow(
        vec![
            log("Start", "go"),
            json!({"id": "Long", "name": "Long", "type": "wait", "parameters": {"amount": 1, "unit": "hours"}}),
            log("Never", "never"),
        ],
        vec![edge("Start", "Long"), edge("Long", "Never")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_halts_an_execution_stuck_in_a_long_wait() {
    let h = Harness::new();
    let wf = compile(&long_wait());
    let done = h.runtime.submit(wf.clone(), "x", json!({})).await.unwrap();
    h.until_status("x", "Long", NodeStatus::Waiting).await;
    assert!(
        h.runtime.cancel(&wf, "x").await.unwrap(),
        "the first cancel stops the execution"
    );
    let c = tokio::time::timeout(BOUND, done)
        .await
        .expect("bounded")
        .unwrap();
    let reason = assert_halted(&c);
    assert!(reason.contains("cancelled"), "{reason}");
    assert!(c.final_context.contains_key("$Start"));
    assert!(!h.ran("x", "Never"));
    assert!(
        !h.runtime.cancel(&wf, "x").await.unwrap(),
        "a second cancel is a no-op"
    );
    h.completion_event("x").await;
    assert_one_completion(&h, "x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_that_arrives_before_the_start_halts_the_execution_without_running_a_node() {
    // On a worker pool the cancel and the start are separate messages that different workers
    // may take in either order.
    let h = Harness::new();
    let wf = compile(&long_wait());
    assert!(
        !h.runtime.cancel(&wf, "early").await.unwrap(),
        "nothing to cancel yet"
    );
    let done = h
        .runtime
        .submit(wf.clone(), "early", json!({}))
        .await
        .unwrap();
    let c = tokio::time::timeout(BOUND, done)
        .await
        .expect("bounded")
        .unwrap();
    let reason = assert_halted(&c);
    assert!(reason.contains("cancelled before it started"), "{reason}");
    assert!(!h.ran("early", "Start"), "no node runs");
    h.completion_event("early").await;
    assert_one_completion(&h, "early").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_runs_the_on_failure_node_before_the_completion() {
    let mut doc = long_wait();
    doc["nodes"]
        .as_array_mut()
        .unwrap()
        .push(log("Cleanup", "cancelled, cleaning up"));
    doc["on_failure"] = json!("Cleanup");
    let h = Harness::new();
    let wf = compile(&doc);
    let done = h.runtime.submit(wf.clone(), "x", json!({})).await.unwrap();
    h.until_status("x", "Long", NodeStatus::Waiting).await;
    h.runtime.cancel(&wf, "x").await.unwrap();
    let c = tokio::time::timeout(BOUND, done)
        .await
        .expect("bounded")
        .unwrap();
    assert!(assert_halted(&c).contains("cancelled"));
    assert_eq!(
        out(&c, "Cleanup")["message"],
        json!("cancelled, cleaning up")
    );
}
