//! The harness on inline workflows: mocks replace node runs attempt by attempt, signals and
//! timers follow virtual time, runaway cases end on their limits, and bad test files are
//! refused naming the field.

use std::path::PathBuf;
use std::time::Duration;

use baton_harness::{FileReport, InvalidTestFile, run_file};
use serde_json::{Value, json};

const WALL: Duration = Duration::from_secs(30);

/// Writes `test` as a test file in a fresh directory and runs it.
fn run(test: Value) -> FileReport {
    let path = write(&test);
    let report = run_file(&path, &baton_nodes::registry(), WALL);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    report
}

fn write(test: &Value) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "baton-harness-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("case.test.json");
    std::fs::write(&path, test.to_string()).unwrap();
    path
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The failures of the file's only case.
fn failures(report: &FileReport) -> Vec<String> {
    let cases = report.outcome.as_ref().expect("a valid test file");
    assert_eq!(cases.len(), 1);
    cases[0].failures.clone()
}

fn invalid(test: Value) -> InvalidTestFile {
    run(test).outcome.expect_err("an invalid test file")
}

fn node(id: &str, kind: &str, parameters: Value) -> Value {
    json!({"id": id, "name": id, "type": kind, "parameters": parameters})
}

fn edge(src: &str, dst: &str) -> Value {
    json!({"id": format!("{src}-{dst}"), "src": src, "dst": dst})
}

fn workflow(nodes: Vec<Value>, edges: Vec<Value>) -> Value {
    json!({"name": "inline", "nodes": nodes, "edges": edges})
}

#[test]
fn a_mocked_http_node_returns_its_mock_and_never_calls_its_url() {
    let wf = workflow(
        vec![
            node(
                "fetch",
                "http",
                json!({"method": "GET", "url": "http://127.0.0.1:9/never"}),
            ),
            node("show", "log", json!({"message": "got {{$fetch.body.n}}"})),
        ],
        vec![edge("fetch", "show")],
    );
    let report = run(json!({
        "workflow": wf,
        "mocks": {"fetch": {"output": {"status": 200, "body": {"n": 7}}}},
        "expect": {"status": "completed", "context": {"$show": {"message": "got 7"}}, "attempts": {"fetch": 1}}
    }));
    assert_eq!(failures(&report), Vec::<String>::new());
}

#[test]
fn retries_take_the_mocks_in_order_and_their_backoff_passes_in_virtual_time() {
    let mut flaky = node(
        "call",
        "http",
        json!({"method": "GET", "url": "http://127.0.0.1:9/"}),
    );
    flaky["retry"] = json!({"max_attempts": 4, "initial_delay_ms": 3_600_000, "max_delay_ms": 3_600_000, "multiplier": 1.0, "jitter": false});
    let wf = workflow(vec![flaky], vec![]);
    let report = run(json!({
        "workflow": wf,
        "mocks": {"call": [
            {"error": {"code": "HTTP_STATUS", "message": "503"}},
            {"error": {"code": "HTTP_TIMEOUT", "message": "slow"}},
            {"output": {"status": 200}}
        ]},
        "expect": {"status": "completed", "attempts": {"call": 3}, "context": {"$call": {"status": 200}}}
    }));
    assert_eq!(failures(&report), Vec::<String>::new());
    let case = &report.outcome.as_ref().unwrap()[0];
    assert!(
        case.observed.virtual_ms >= 2 * 3_600_000,
        "two one-hour backoffs passed in virtual time: {} ms",
        case.observed.virtual_ms
    );
}

#[test]
fn a_non_retryable_mocked_error_halts_at_once_with_its_code() {
    let mut call = node(
        "call",
        "http",
        json!({"method": "GET", "url": "http://127.0.0.1:9/"}),
    );
    call["retry"] = json!({"max_attempts": 5});
    let report = run(json!({
        "workflow": workflow(vec![call], vec![]),
        "mocks": {"call": {"error": {"code": "INVALID_PARAMETER", "message": "bad", "retryable": false}}},
        "expect": {"status": "halted", "error": "INVALID_PARAMETER", "attempts": {"call": 1}}
    }));
    assert_eq!(failures(&report), Vec::<String>::new());
}

fn approval() -> Value {
    workflow(
        vec![
            node("ask", "log", json!({"message": "asking"})),
            node("wait", "wait", json!({"mode": "signal", "signal": "go"})),
            node("done", "log", json!({"message": "go by {{$wait.data.by}}"})),
        ],
        vec![edge("ask", "wait"), edge("wait", "done")],
    )
}

#[test]
fn signals_are_delivered_when_waited_for_after_a_node_or_at_a_virtual_time() {
    for (signal, virtual_ms) in [
        (json!({"name": "go", "data": {"by": "x"}}), 0),
        (
            json!({"name": "go", "data": {"by": "x"}, "after_node": "ask"}),
            0,
        ),
        (
            json!({"name": "go", "data": {"by": "x"}, "at_ms": 90_000}),
            90_000,
        ),
    ] {
        let report = run(json!({
            "workflow": approval(),
            "signals": [signal],
            "expect": {"status": "completed", "context": {"$done": {"message": "go by x"}}}
        }));
        assert_eq!(failures(&report), Vec::<String>::new(), "{signal}");
        let case = &report.outcome.as_ref().unwrap()[0];
        assert_eq!(case.observed.virtual_ms, virtual_ms, "{signal}");
    }
}

#[test]
fn a_wait_for_a_signal_never_sent_fails_as_stuck_instead_of_hanging() {
    let report = run(json!({
        "workflow": approval(),
        "signals": [{"name": "other", "data": 1}],
        "expect": {"status": "completed"}
    }));
    let failures = failures(&report);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("idle with no timer pending")
            && failures[0].contains(r#"waited for signal(s) "go""#)
            && failures[0].contains(r#"never delivered: "other""#),
        "{failures:?}"
    );
}

#[test]
fn a_timer_beyond_the_virtual_time_limit_fails_the_case() {
    let wf = workflow(
        vec![node("nap", "wait", json!({"amount": 2, "unit": "days"}))],
        vec![],
    );
    let report = run(json!({
        "workflow": wf,
        "limits": {"max_virtual_ms": 86_400_000},
        "expect": {"status": "completed"}
    }));
    let failures = failures(&report);
    assert!(
        failures[0].contains("limits.max_virtual_ms = 86400000"),
        "{failures:?}"
    );
}

#[test]
fn endless_retries_end_on_the_node_run_limit() {
    let mut call = node(
        "call",
        "http",
        json!({"method": "GET", "url": "http://127.0.0.1:9/"}),
    );
    call["retry"] = json!({"max_attempts": 100000, "initial_delay_ms": 1});
    let report = run(json!({
        "workflow": workflow(vec![call], vec![]),
        "mocks": {"call": {"error": {"code": "HTTP_STATUS", "message": "down"}}},
        "limits": {"max_node_runs": 50},
        "expect": {"status": "completed"}
    }));
    let failures = failures(&report);
    assert!(
        failures[0].contains("more than limits.max_node_runs = 50 node runs"),
        "{failures:?}"
    );
}

#[test]
fn every_mismatch_is_reported_with_its_path() {
    let wf = workflow(
        vec![
            node("a", "log", json!({"message": "one"})),
            node("b", "log", json!({"message": "two"})),
        ],
        vec![edge("a", "b")],
    );
    let report = run(json!({
        "workflow": wf,
        "expect": {
            "status": "halted",
            "context": {"$a": {"message": "uno"}, "$c": 1},
            "ran": ["a"],
            "not_ran": ["b"],
            "attempts": {"a": 2}
        }
    }));
    assert_eq!(
        failures(&report),
        vec![
            r#"$.status: expected "halted", got "completed""#,
            r#"$.context.$a.message: expected "uno", got "one""#,
            "$.context.$c: expected 1, got nothing",
            r#"$.not_ran[0]: expected node "b" not to run, it did"#,
            "$.attempts.a: expected 2, got 1",
        ]
    );
}

#[test]
fn cases_share_the_workflow_and_override_the_file_level_input() {
    let wf = workflow(
        vec![node("say", "log", json!({"message": "{{$input.word}}"}))],
        vec![],
    );
    let report = run(json!({
        "workflow": wf,
        "input": {"word": "default"},
        "cases": [
            {"name": "file input", "expect": {"context": {"$say": {"message": "default"}}}},
            {"name": "own input", "input": {"word": "own"}, "expect": {"context": {"$say": {"message": "own"}}}}
        ]
    }));
    let cases = report.outcome.expect("valid");
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["file input", "own input"]);
    assert!(cases.iter().all(|c| c.passed()), "{cases:?}");
}

#[test]
fn a_bad_test_file_is_refused_naming_the_field() {
    let wf = approval();
    let cases = [
        (
            json!({"workflow": wf, "expect": {}, "mock": {}}),
            "$.mock",
            "unknown field",
        ),
        (json!({"expect": {}}), "$.workflow", "missing"),
        (
            json!({"workflow": "nope.json", "expect": {}}),
            "$.workflow",
            "cannot read",
        ),
        (json!({"workflow": wf}), "$.expect", "missing"),
        (
            json!({"workflow": wf, "mocks": {"ask": {"error": {"code": "BOOM"}}}, "expect": {}}),
            "$.mocks.ask.error.code",
            "unknown error code \"BOOM\"",
        ),
        (
            json!({"workflow": wf, "mocks": {"ask": [{"output": 1}, {"outptu": 2}]}, "expect": {}}),
            "$.mocks.ask[1]",
            "expected {\"output\"",
        ),
        (
            json!({"workflow": wf, "signals": [{"name": "go", "at_ms": 1, "after_node": "ask"}], "expect": {}}),
            "$.signals[0]",
            "not both",
        ),
        (
            json!({"workflow": wf, "cases": [{"expect": {"status": "done"}}]}),
            "$.cases[0].expect.status",
            "expected \"completed\"",
        ),
        (
            json!({"workflow": wf, "expect": {"ran": ["ask", "ghost"]}}),
            "$.expect.ran[1]",
            "no node with id \"ghost\"",
        ),
        (
            json!({"workflow": {"nodes": []}, "expect": {}}),
            "$.workflow",
            "not a valid workflow",
        ),
    ];
    for (test, field, message) in cases {
        let e = invalid(test.clone());
        assert_eq!(e.field, field, "{test}: {e}");
        assert!(e.message.contains(message), "{test}: {e}");
    }
}
