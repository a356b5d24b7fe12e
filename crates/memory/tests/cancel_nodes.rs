//! Cancel stops every node type within a bound (RFC 0003, "Cancellation"): a node in flight
//! when its execution is cancelled is abandoned (its future dropped: a request aborted, a
//! script stopped) and reported `cancelled` (status `failed` with code `CANCELLED`); a node
//! parked on a timer, a signal or a child holds nothing, and the execution halts at once. The
//! same bound holds for a node's own `timeout_ms` (`NODE_TIMEOUT`). Every other node type
//! does bounded in-memory work (limits on definitions, splits and templates) and ends on its
//! own; its successors are dropped. On the embedded runtime with the built-in registry.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::message::{Completion, NodeStatus, StatusEvent};
use baton_engine::ports::WorkflowCatalog;
use baton_memory::{EmbeddedRuntime, Event, MemoryCatalog};
use baton_nodes::code::CodeSettings;
use baton_nodes::http::HttpPolicy;
use serde_json::{Value, json};
use support::*;
use tokio::net::TcpListener;

/// The documented bound (RFC 0003): a cancelled or timed-out node has stopped and the
/// execution has its completion within this long. Generous for a loaded machine; every node
/// under test would otherwise run for 30 s or more.
const CANCEL_BOUND: Duration = Duration::from_secs(5);

/// Accepts SMTP connections and never says a word: a client waits for the greeting until its
/// own timeout (30 s by default).
async fn silent_smtp_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

fn registry() -> baton_engine::NodeRegistry {
    let code = CodeSettings {
        in_process: true,
        sandboxes: 1,
        ..CodeSettings::default()
    };
    baton_nodes::registry_for(HttpPolicy::embedded(), &code)
}

fn harness(catalog: Arc<MemoryCatalog>) -> Harness {
    Harness::with_runtime(EmbeddedRuntime::start_with_catalog(
        registry(),
        16,
        None,
        catalog,
    ))
}

/// A script that runs for far longer than the bound unless stopped.
fn endless_script(id: &str) -> Value {
    json!({"id": id, "name": id, "type": "code", "parameters": {
        "script": "let n = 0; loop { n += 1; }", "timeout_ms": 30000, "max_operations": 1000000000}})
}

fn smtp(id: &str, port: u16) -> Value {
    json!({"id": id, "name": id, "type": "smtp",
        "parameters": {"from": "ops@example.com", "to": "ada@example.com", "subject": "s", "security": "none"},
        "credentials": {"id": "c", "name": "c", "type": "smtp",
            "values": {"host": "127.0.0.1", "port": port.to_string()}}})
}

fn is_cancelled(s: &StatusEvent) -> bool {
    s.status == NodeStatus::Failed && s.error.as_ref().is_some_and(|e| e.code == "CANCELLED")
}

/// How the node under test is busy when the cancel comes.
enum Busy {
    /// Running (a request, a script): it must be abandoned and reported `cancelled`.
    Running,
    /// Parked (a timer, a signal, a child): nothing runs; the execution halts at once.
    Parked,
}

struct Case {
    name: &'static str,
    node: Value,
    busy: Busy,
}

async fn cases(server: &Server, catalog: &MemoryCatalog) -> Vec<Case> {
    let smtp_port = silent_smtp_server().await;
    catalog
        .put(
            "held-child",
            &workflow(vec![http("Hold", &server.url("/gate/child"))], vec![]),
        )
        .await
        .expect("catalog put");
    vec![
        Case {
            name: "http",
            node: http("N", &server.url("/gate/never")),
            busy: Busy::Running,
        },
        Case {
            name: "smtp",
            node: smtp("N", smtp_port),
            busy: Busy::Running,
        },
        Case {
            name: "code",
            node: endless_script("N"),
            busy: Busy::Running,
        },
        Case {
            name: "wait (timer)",
            node: wait_ms("N", json!(600_000)),
            busy: Busy::Parked,
        },
        Case {
            name: "wait (signal)",
            node: json!({"id": "N", "name": "N", "type": "wait",
                "parameters": {"mode": "signal", "signal": "go", "amount": 10, "unit": "minutes"}}),
            busy: Busy::Parked,
        },
        Case {
            name: "workflow (child running)",
            node: json!({"id": "N", "name": "N", "type": "workflow",
                "parameters": {"workflow_id": "held-child", "input": {}}}),
            busy: Busy::Parked,
        },
    ]
}

async fn completion_within(h: &Harness, execution_id: &str, bound: Duration) -> Completion {
    tokio::time::timeout(bound, h.completion_event(execution_id))
        .await
        .unwrap_or_else(|_| panic!("`{execution_id}` did not finish within {bound:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_stops_every_long_running_node_type_within_the_bound() {
    let server = Server::start().await;
    let catalog = Arc::new(MemoryCatalog::new());
    let h = harness(catalog.clone());
    for (i, case) in cases(&server, &catalog).await.into_iter().enumerate() {
        let id = format!("cancel-{i}");
        let doc = workflow(
            vec![case.node, log("After", "after")],
            vec![edge("N", "After")],
        );
        let wf = compile(&doc);
        let _done = h
            .runtime
            .submit(wf.clone(), &id, json!({}))
            .await
            .expect("submitted");
        let awaited = match case.busy {
            Busy::Running => NodeStatus::Running,
            Busy::Parked => NodeStatus::Waiting,
        };
        h.until_status(&id, "N", awaited).await;
        // Let the node get into its work (a request sent, a script looping, a child started).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let cancelled_at = Instant::now();
        assert!(
            h.runtime.cancel(&wf, &id).await.expect("cancel"),
            "{}: was running",
            case.name
        );
        let c = completion_within(&h, &id, CANCEL_BOUND).await;
        assert_eq!(c.status.as_str(), "halted", "{}", case.name);
        if let Busy::Running = case.busy {
            let status = tokio::time::timeout(
                CANCEL_BOUND.saturating_sub(cancelled_at.elapsed()),
                h.until(|e| matches!(e, Event::Status(s) if s.execution_id == id && s.node_id == "N" && is_cancelled(s))),
            )
            .await;
            assert!(
                status.is_ok(),
                "{}: not reported cancelled within the bound: {:?}",
                case.name,
                h.sequence(&id, "N")
            );
        }
        assert!(!h.ran(&id, "After"), "{}: its successor ran", case.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_timeout_stops_every_long_running_node_type_within_the_bound() {
    let server = Server::start().await;
    let smtp_port = silent_smtp_server().await;
    let h = harness(Arc::new(MemoryCatalog::new()));
    let nodes = [
        ("http", http("N", &server.url("/gate/never"))),
        ("smtp", smtp("N", smtp_port)),
        ("code", endless_script("N")),
    ];
    for (i, (name, node)) in nodes.into_iter().enumerate() {
        let id = format!("timeout-{i}");
        let node = with(node, "timeout_ms", json!(300));
        let doc = workflow(vec![node, log("After", "after")], vec![edge("N", "After")]);
        let started = Instant::now();
        let _done = h
            .runtime
            .submit(compile(&doc), &id, json!({}))
            .await
            .expect("submitted");
        let c = completion_within(&h, &id, Duration::from_millis(300) + CANCEL_BOUND).await;
        assert_eq!(c.status.as_str(), "halted", "{name}");
        let last = h.statuses_of(&id, "N").pop().expect("statuses");
        assert_eq!(
            last.error.as_ref().map(|e| e.code.as_str()),
            Some("NODE_TIMEOUT"),
            "{name}: {last:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(300), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_script_gives_back_its_slot_at_once() {
    // One script slot: a second script can only run once the cancelled one really stopped
    // (the in-process runner holds the slot until its thread ends).
    let h = harness(Arc::new(MemoryCatalog::new()));
    let looping = compile(&workflow(vec![endless_script("N")], vec![]));
    let _done = h
        .runtime
        .submit(looping.clone(), "loop", json!({}))
        .await
        .expect("submitted");
    h.until_status("loop", "N", NodeStatus::Running).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.runtime.cancel(&looping, "loop").await.expect("cancel"));
    let quick = workflow(
        vec![json!({"id": "Q", "name": "Q", "type": "code", "parameters": {"script": "40 + 2"}})],
        vec![],
    );
    let c = tokio::time::timeout(
        CANCEL_BOUND,
        h.runtime.run(compile(&quick), "quick", json!({})),
    )
    .await
    .expect("the next script got the slot within the bound")
    .expect("runtime");
    assert_completed(&c);
    assert_eq!(out(&c, "Q")["result"], json!(42));
}
