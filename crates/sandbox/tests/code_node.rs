//! Black-box tests of the `code` node, its scripts running in `baton-sandbox` children.

use baton_core::ErrorCode;
use std::time::{Duration, Instant};

use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use baton_sandbox::{CodeNode, CodeSettings};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

async fn run_with(
    node: &CodeNode,
    params: Value,
    cancel: &CancellationToken,
) -> Result<Value, NodeError> {
    let context = Map::new();
    node.run(NodeInput {
        params: &params,
        context: &context,
        credentials: None,
        used_credential: None,
        execution_id: "exec-1",
        node_id: "node-1",
        node_name: "Script",
        attempt: 1,
        idempotency_key: "exec-1:node-1:1",
        cancel,
        clock: &baton_engine::SystemClock,
    })
    .await
    .map(NodeOutput::into_value)
}

/// A node whose scripts run in at most `sandboxes` children of this crate's binary.
fn sandboxed(sandboxes: usize) -> CodeNode {
    CodeNode::with_settings(&CodeSettings {
        sandboxes,
        program: Some((env!("CARGO_BIN_EXE_baton-sandbox").into(), vec![])),
        ..CodeSettings::default()
    })
}

async fn run(params: Value) -> Result<Value, NodeError> {
    run_with(&sandboxed(2), params, &CancellationToken::new()).await
}

async fn fails(params: Value, code: ErrorCode) -> NodeError {
    let e = run(params.clone()).await.expect_err(&params.to_string());
    assert_eq!(e.code, code, "{params}: {e:?}");
    e
}

#[tokio::test]
async fn computes_with_inputs_and_returns_json() {
    let out = run(json!({
        "script": "let total = 0; for x in inputs.items { total += x.price * x.qty; } total",
        "inputs": {"items": [{"price": 3, "qty": 2}, {"price": 10, "qty": 1}]},
    }))
    .await
    .unwrap();
    assert_eq!(out, json!({"result": 16}));

    let out = run(json!({
        "script": r#"
            fn greet(name) { `Hello, ${name}!` }
            let m = #{ greeting: greet(inputs.name), n: inputs.n * 1.5, tags: ["a", "b"], none: () };
            m.even = inputs.n % 2 == 0;
            m
        "#,
        "inputs": {"name": "Ada", "n": 4},
    }))
    .await
    .unwrap();
    assert_eq!(
        out["result"],
        json!({"even": true, "greeting": "Hello, Ada!", "n": 6.0, "none": null, "tags": ["a", "b"]})
    );

    // No inputs: an empty map; `return` works too.
    let out = run(json!({"script": "if inputs.len() == 0 { return \"empty\"; } 1"}))
        .await
        .unwrap();
    assert_eq!(out, json!({"result": "empty"}));
}

#[tokio::test]
async fn infinite_loop_hits_the_operation_budget() {
    let e = fails(json!({"script": "loop { }"}), ErrorCode::CodeLimitExceeded).await;
    assert!(
        e.message.contains("1000000 operations (max_operations)"),
        "{}",
        e.message
    );
    assert!(!e.retryable);
    let e = fails(
        json!({"script": "let x = 0; while true { x += 1; }", "max_operations": 500}),
        ErrorCode::CodeLimitExceeded,
    )
    .await;
    assert!(e.message.contains("500 operations"), "{}", e.message);
}

#[tokio::test]
async fn infinite_loop_with_a_large_budget_times_out() {
    let started = Instant::now();
    let e = fails(
        json!({"script": "let x = 0; loop { x += 1; }", "timeout_ms": 150, "max_operations": 1_000_000_000}),
        ErrorCode::CodeTimeout,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(e.message.contains("150 ms"), "{}", e.message);
}

#[tokio::test]
async fn huge_strings_and_arrays_hit_size_limits() {
    let e = fails(
        json!({"script": "let s = \"x\"; loop { s += s; }"}),
        ErrorCode::CodeLimitExceeded,
    )
    .await;
    assert!(e.message.contains("max string size"), "{}", e.message);
    let e = fails(json!({"script": "let a = []; loop { a.push(1); }", "max_operations": 100_000_000, "timeout_ms": 10_000}), ErrorCode::CodeLimitExceeded).await;
    assert!(e.message.contains("max array size"), "{}", e.message);
    let e = fails(
        json!({"script": "fn f(n) { f(n + 1) } f(0)"}),
        ErrorCode::CodeLimitExceeded,
    )
    .await;
    assert!(e.message.contains("max call levels"), "{}", e.message);
}

#[tokio::test]
async fn syntax_errors_are_invalid_parameters_with_a_position() {
    let e = fails(
        json!({"script": "let x = 1;\nlet y = ;"}),
        ErrorCode::InvalidParameter,
    )
    .await;
    assert!(!e.retryable);
    assert!(
        e.message
            .contains("`script`: syntax error at line 2, column"),
        "{}",
        e.message
    );
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    fails(json!({"script": deep}), ErrorCode::CodeLimitExceeded).await;
}

#[tokio::test]
async fn runtime_errors_are_code_errors() {
    let e = fails(
        json!({"script": "throw \"no customer\""}),
        ErrorCode::CodeError,
    )
    .await;
    assert!(e.message.contains("no customer"), "{}", e.message);
    let e = fails(
        json!({"script": "let a = 1;\nundefined_var + a"}),
        ErrorCode::CodeError,
    )
    .await;
    assert!(
        e.message.contains("undefined_var") && e.message.contains("line 2"),
        "{}",
        e.message
    );
    // A value JSON cannot hold.
    fails(json!({"script": "Fn(\"abs\")"}), ErrorCode::CodeError).await;
}

#[tokio::test]
async fn the_sandbox_has_no_eval_import_or_io() {
    let e = fails(
        json!({"script": "eval(\"1 + 1\")"}),
        ErrorCode::InvalidParameter,
    )
    .await;
    assert!(
        e.message.contains("`eval` is disabled") || e.message.contains("'eval' is disabled"),
        "{}",
        e.message
    );
    fails(
        json!({"script": "import \"os\" as os; 1"}),
        ErrorCode::InvalidParameter,
    )
    .await;
    fails(
        json!({"script": "open_file(\"/etc/passwd\")"}),
        ErrorCode::CodeError,
    )
    .await;
    // Inputs are read-only.
    let e = fails(
        json!({"script": "inputs = 1;", "inputs": {}}),
        ErrorCode::CodeError,
    )
    .await;
    assert!(e.message.contains("constant"), "{}", e.message);
}

#[tokio::test]
async fn parameters_are_checked() {
    let e = fails(json!({}), ErrorCode::InvalidParameter).await;
    assert!(e.message.contains("`script` is required"), "{}", e.message);
    let e = fails(json!({"script": 5}), ErrorCode::InvalidParameter).await;
    assert!(
        e.message.contains("`script`: expected a string"),
        "{}",
        e.message
    );
    let e = fails(
        json!({"script": "1", "inputs": [1]}),
        ErrorCode::InvalidParameter,
    )
    .await;
    assert!(
        e.message.contains("`inputs`: expected an object"),
        "{}",
        e.message
    );
    let e = fails(
        json!({"script": "1", "timeout_ms": 60_000}),
        ErrorCode::InvalidParameter,
    )
    .await;
    assert!(
        e.message
            .contains("`timeout_ms`: expected an integer from 1 to 30000"),
        "{}",
        e.message
    );
    let e = fails(
        json!({"script": "1", "max_operations": 0}),
        ErrorCode::InvalidParameter,
    )
    .await;
    assert!(e.message.contains("`max_operations`"), "{}", e.message);
}

#[tokio::test]
async fn cancellation_stops_a_running_script() {
    let node = sandboxed(2);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let e = run_with(
        &node,
        json!({"script": "loop { }", "timeout_ms": 30_000, "max_operations": 1_000_000_000}),
        &cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::Cancelled, "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn scripts_wait_for_a_slot_and_a_waiting_script_can_be_cancelled() {
    let node = sandboxed(1);
    let busy = CancellationToken::new();
    let waiting = CancellationToken::new();
    let long = json!({"script": "loop { }", "timeout_ms": 30_000, "max_operations": 1_000_000_000});
    let quick = json!({"script": "40 + 2"});
    let (first, second) = tokio::join!(run_with(&node, long, &busy), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The only slot is taken: this one waits until cancelled.
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            run_with(&node, quick.clone(), &waiting),
        )
        .await;
        assert!(r.is_err(), "ran without a free slot");
        waiting.cancel();
        let cancelled = run_with(&node, quick.clone(), &waiting).await;
        busy.cancel();
        cancelled
    });
    assert_eq!(first.unwrap_err().code, ErrorCode::Cancelled);
    assert_eq!(second.unwrap_err().code, ErrorCode::Cancelled);
    // The slot is free again.
    let out = run_with(
        &node,
        json!({"script": "40 + 2"}),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(out, json!({"result": 42}));
}
