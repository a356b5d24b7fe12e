//! The `http` node's protections, black-box against a real axum server on 127.0.0.1: response
//! size cap, redirect policy, SSRF guard (process policy, allow and deny lists, resolved
//! addresses) and `retry_on` through the engine's retry policy.

use baton_core::ErrorCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use baton_core::CompiledWorkflow;
use baton_core::message::ExecutionStatus;
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use baton_memory::EmbeddedRuntime;
use baton_nodes::http::{HttpNode, HttpPolicy};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Test server
// ---------------------------------------------------------------------------------------------

/// Requests seen per path, and when.
#[derive(Clone, Default)]
struct Hits(Arc<Mutex<HashMap<String, Vec<Instant>>>>);

impl Hits {
    fn record(&self, path: &str) -> usize {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let times = map.entry(path.to_string()).or_default();
        times.push(Instant::now());
        times.len()
    }
    fn times(&self, path: &str) -> Vec<Instant> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(path).cloned().unwrap_or_default()
    }
    fn count(&self, path: &str) -> usize {
        self.times(path).len()
    }
}

#[derive(Clone)]
struct App {
    hits: Hits,
    port: u16,
}

async fn ok(State(app): State<App>) -> &'static str {
    app.hits.record("/ok");
    "fine"
}

/// A body that never ends, 1 KiB at a time, without a Content-Length.
async fn endless(State(app): State<App>) -> Body {
    app.hits.record("/endless");
    let chunks = futures_util::stream::repeat_with(|| {
        Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 1024]))
    });
    Body::from_stream(chunks)
}

/// 2000 bytes with a Content-Length.
async fn sized() -> Vec<u8> {
    vec![b'y'; 2000]
}

/// `/hop/N` redirects to `/hop/N-1`; `/hop/0` answers.
async fn hop(State(app): State<App>, Path(n): Path<u32>) -> Response {
    app.hits.record(&format!("/hop/{n}"));
    if n == 0 {
        return "arrived".into_response();
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("/hop/{}", n - 1))],
    )
        .into_response()
}

/// Redirects to the same server under the name `localhost`.
async fn to_localhost(State(app): State<App>) -> Response {
    (
        StatusCode::FOUND,
        [(
            header::LOCATION,
            format!("http://localhost:{}/ok", app.port),
        )],
    )
        .into_response()
}

/// Redirects to the same server by its literal address.
async fn to_ip(State(app): State<App>) -> Response {
    (
        StatusCode::FOUND,
        [(
            header::LOCATION,
            format!("http://127.0.0.1:{}/ok", app.port),
        )],
    )
        .into_response()
}

/// 503 twice, then 200.
async fn flaky(State(app): State<App>) -> Response {
    if app.hits.record("/flaky") <= 2 {
        (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
    } else {
        "recovered".into_response()
    }
}

/// 429 with `Retry-After: 1` once, then 200.
async fn busy(State(app): State<App>) -> Response {
    if app.hits.record("/busy") == 1 {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "slow down",
        )
            .into_response()
    } else {
        "served".into_response()
    }
}

async fn missing(State(app): State<App>) -> StatusCode {
    app.hits.record("/missing");
    StatusCode::NOT_FOUND
}

/// Starts a server on 127.0.0.1 (only) and returns its port and hit log.
async fn server() -> (u16, Hits) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let port = listener.local_addr().expect("local address").port();
    let hits = Hits::default();
    let app = Router::new()
        .route("/ok", get(ok))
        .route("/endless", get(endless))
        .route("/sized", get(sized))
        .route("/hop/{n}", get(hop))
        .route("/to-localhost", get(to_localhost))
        .route("/to-ip", get(to_ip))
        .route("/flaky", get(flaky))
        .route("/busy", get(busy))
        .route("/missing", get(missing))
        .with_state(App {
            hits: hits.clone(),
            port,
        });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, hits)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn call(node: &HttpNode, params: Value) -> Result<Value, NodeError> {
    node.run(NodeInput {
        params: &params,
        context: &Map::new(),
        credentials: None,
        used_credential: None,
        execution_id: "exec-h",
        node_id: "node-h",
        node_name: "Fetch",
        attempt: 1,
        idempotency_key: "exec-h:node-h:1",
        cancel: &CancellationToken::new(),
        clock: &baton_engine::SystemClock,
    })
    .await
    .map(NodeOutput::into_value)
}

fn embedded() -> HttpNode {
    HttpNode::with_policy(HttpPolicy::embedded())
}

fn production() -> HttpNode {
    HttpNode::with_policy(HttpPolicy::production())
}

#[track_caller]
fn expect_ok(result: Result<Value, NodeError>) -> Value {
    match result {
        Ok(v) => v,
        Err(e) => panic!("expected success, got {e:?}"),
    }
}

#[track_caller]
fn expect_err(result: Result<Value, NodeError>, code: ErrorCode) -> NodeError {
    match result {
        Ok(v) => panic!("expected {code}, got success {v}"),
        Err(e) => {
            assert_eq!(e.code, code, "{e:?}");
            assert!(!e.retryable, "{code} must not be retryable: {e:?}");
            e
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Response size
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_endless_body_fails_as_soon_as_it_passes_max_response_bytes() {
    let (port, _) = server().await;
    // Buffering the whole body first would never finish; the timeout would fire instead.
    let e = expect_err(
        call(
            &embedded(),
            json!({"url": format!("http://127.0.0.1:{port}/endless"), "max_response_bytes": 4096, "timeout": 20}),
        )
        .await,
        ErrorCode::HttpBodyTooLarge,
    );
    assert!(e.message.contains("4096 bytes"), "{e:?}");
}

#[tokio::test]
async fn an_announced_length_over_the_limit_fails_and_one_under_it_succeeds() {
    let (port, _) = server().await;
    let url = format!("http://127.0.0.1:{port}/sized");
    expect_err(
        call(&embedded(), json!({"url": url, "max_response_bytes": 1999})).await,
        ErrorCode::HttpBodyTooLarge,
    );
    let out = expect_ok(call(&embedded(), json!({"url": url, "max_response_bytes": 2000})).await);
    assert_eq!(out["body"].as_str().map(str::len), Some(2000));
}

#[tokio::test]
async fn max_response_bytes_cannot_exceed_the_process_ceiling() {
    let (port, _) = server().await;
    let node = HttpNode::with_policy(HttpPolicy {
        max_response_bytes: 1000,
        ..HttpPolicy::embedded()
    });
    let e = expect_err(
        call(
            &node,
            json!({"url": format!("http://127.0.0.1:{port}/sized"), "max_response_bytes": 1_000_000}),
        )
        .await,
        ErrorCode::HttpBodyTooLarge,
    );
    assert!(e.message.contains("1000 bytes"), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn redirects_are_followed_by_default() {
    let (port, hits) = server().await;
    let out = expect_ok(
        call(
            &embedded(),
            json!({"url": format!("http://127.0.0.1:{port}/hop/3")}),
        )
        .await,
    );
    assert_eq!(
        (out["status"].as_u64(), out["body"].as_str()),
        (Some(200), Some("arrived"))
    );
    assert_eq!(hits.count("/hop/0"), 1);
}

#[tokio::test]
async fn a_redirect_is_returned_not_followed_when_follow_redirects_is_false() {
    let (port, hits) = server().await;
    let out = expect_ok(
        call(
            &embedded(),
            json!({"url": format!("http://127.0.0.1:{port}/hop/1"), "follow_redirects": false}),
        )
        .await,
    );
    assert_eq!(out["status"], 302);
    assert_eq!(out["headers"]["Location"], "/hop/0");
    assert_eq!(
        hits.count("/hop/0"),
        0,
        "the redirect target must not be requested"
    );
}

#[tokio::test]
async fn more_redirects_than_max_redirects_fail_with_too_many_redirects() {
    let (port, hits) = server().await;
    let base = format!("http://127.0.0.1:{port}");
    let e = expect_err(
        call(
            &embedded(),
            json!({"url": format!("{base}/hop/3"), "max_redirects": 2}),
        )
        .await,
        ErrorCode::HttpTooManyRedirects,
    );
    assert!(e.message.contains("more than 2 redirects"), "{e:?}");
    assert_eq!(hits.count("/hop/0"), 0);
    let out = expect_ok(
        call(
            &embedded(),
            json!({"url": format!("{base}/hop/2"), "max_redirects": 2}),
        )
        .await,
    );
    assert_eq!(out["body"], "arrived");
}

#[tokio::test]
async fn a_redirect_to_a_denied_host_is_refused() {
    let (port, hits) = server().await;
    let e = expect_err(
        call(
            &embedded(),
            json!({"url": format!("http://127.0.0.1:{port}/to-localhost"), "denied_hosts": ["localhost"]}),
        )
        .await,
        ErrorCode::HttpHostDenied,
    );
    assert!(
        e.message.contains("redirect refused") && e.message.contains("`localhost`"),
        "{e:?}"
    );
    assert_eq!(hits.count("/ok"), 0);
}

#[tokio::test]
async fn a_redirect_outside_the_allow_list_is_refused() {
    let (port, hits) = server().await;
    expect_err(
        call(
            &embedded(),
            json!({"url": format!("http://localhost:{port}/to-ip"), "allowed_hosts": "localhost"}),
        )
        .await,
        ErrorCode::HttpHostDenied,
    );
    assert_eq!(hits.count("/ok"), 0);
}

// ---------------------------------------------------------------------------------------------
// SSRF guard
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_production_policy_denies_loopback_by_address_and_by_resolved_name() {
    let (port, hits) = server().await;
    for host in ["127.0.0.1", "localhost", "[::1]"] {
        let e = expect_err(
            call(
                &production(),
                json!({"url": format!("http://{host}:{port}/ok")}),
            )
            .await,
            ErrorCode::HttpHostDenied,
        );
        assert!(
            e.message.contains("private networks are not allowed"),
            "{host}: {e:?}"
        );
    }
    assert_eq!(hits.count("/ok"), 0);
}

#[tokio::test]
async fn the_production_policy_denies_the_cloud_metadata_address_before_connecting() {
    let e = expect_err(
        call(
            &production(),
            json!({"url": "http://169.254.169.254/latest/meta-data/", "timeout": 5}),
        )
        .await,
        ErrorCode::HttpHostDenied,
    );
    assert!(e.message.contains("cloud metadata"), "{e:?}");
}

#[tokio::test]
async fn an_allow_list_cannot_lift_the_process_policy() {
    let (port, hits) = server().await;
    expect_err(
        call(
            &production(),
            json!({"url": format!("http://127.0.0.1:{port}/ok"), "allowed_hosts": ["127.0.0.1", "localhost"]}),
        )
        .await,
        ErrorCode::HttpHostDenied,
    );
    assert_eq!(hits.count("/ok"), 0);
}

#[tokio::test]
async fn the_embedded_policy_allows_loopback() {
    let (port, hits) = server().await;
    expect_ok(
        call(
            &embedded(),
            json!({"url": format!("http://localhost:{port}/ok")}),
        )
        .await,
    );
    assert_eq!(hits.count("/ok"), 1);
}

#[tokio::test]
async fn an_allow_list_permits_listed_names_and_ranges_and_refuses_the_rest() {
    let (port, hits) = server().await;
    let node = embedded();
    expect_ok(
        call(
            &node,
            json!({"url": format!("http://localhost:{port}/ok"), "allowed_hosts": ["localhost"]}),
        )
        .await,
    );
    // `localhost` is not named, but it resolves into the allowed range (and ::1 is dropped).
    expect_ok(
        call(
            &node,
            json!({"url": format!("http://localhost:{port}/ok"), "allowed_hosts": ["127.0.0.0/8"]}),
        )
        .await,
    );
    expect_ok(
        call(&node, json!({"url": format!("http://localhost:{port}/ok"), "allowed_hosts": ["*.example.com", "localhost"]})).await,
    );
    assert_eq!(hits.count("/ok"), 3);
    let e = expect_err(
        call(
            &node,
            json!({"url": format!("http://127.0.0.1:{port}/ok"), "allowed_hosts": ["localhost"]}),
        )
        .await,
        ErrorCode::HttpHostDenied,
    );
    assert!(e.message.contains("not in `allowed_hosts`"), "{e:?}");
    expect_err(
        call(&node, json!({"url": format!("http://localhost:{port}/ok"), "allowed_hosts": ["*.example.com"]})).await,
        ErrorCode::HttpHostDenied,
    );
    assert_eq!(hits.count("/ok"), 3);
}

#[tokio::test]
async fn a_deny_list_range_applies_to_the_addresses_a_name_resolves_to() {
    let (port, hits) = server().await;
    let e = expect_err(
        call(
            &embedded(),
            json!({"url": format!("http://localhost:{port}/ok"), "denied_hosts": ["127.0.0.0/8", "::1"]}),
        )
        .await,
        ErrorCode::HttpHostDenied,
    );
    assert!(e.message.contains("matches `denied_hosts`"), "{e:?}");
    assert_eq!(hits.count("/ok"), 0);
}

#[tokio::test]
async fn malformed_host_lists_are_invalid_parameters() {
    let e = call(
        &embedded(),
        json!({"url": "http://example.com/", "allowed_hosts": ["10.0.0.0/40"]}),
    )
    .await;
    assert!(
        e.as_ref().is_err_and(
            |e| e.code == ErrorCode::InvalidParameter && e.message.contains("allowed_hosts")
        ),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// retry_on, through the engine's retry policy
// ---------------------------------------------------------------------------------------------

fn one_node_workflow(params: Value) -> Value {
    json!({
        "id": "wf-http-retry",
        "name": "http retry",
        "nodes": [
            {"id": "fetch", "name": "Fetch", "type": "http", "parameters": params,
             "retry": {"max_attempts": 3, "initial_delay_ms": 10, "max_delay_ms": 50, "jitter": false}}
        ],
        "edges": []
    })
}

async fn run_workflow(
    registry: baton_engine::NodeRegistry,
    params: Value,
    id: &str,
) -> baton_core::message::Completion {
    let wf = Arc::new(
        CompiledWorkflow::compile(&one_node_workflow(params), &registry).expect("valid workflow"),
    );
    let rt = EmbeddedRuntime::start(registry, 4);
    tokio::time::timeout(Duration::from_secs(60), rt.run(wf, id, json!({})))
        .await
        .expect("bounded")
        .expect("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_listed_in_retry_on_is_retried_until_it_succeeds() {
    let (port, hits) = server().await;
    let c = run_workflow(
        baton_nodes::registry(),
        json!({"url": format!("http://127.0.0.1:{port}/flaky"), "retry_on": ["5xx", "429"]}),
        "retry-503",
    )
    .await;
    assert_eq!(
        c.status,
        ExecutionStatus::Completed,
        "{:?}",
        c.failure_reason
    );
    assert_eq!(c.final_context["$Fetch"]["body"], "recovered");
    assert_eq!(hits.count("/flaky"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_outside_retry_on_fails_without_a_retry() {
    let (port, hits) = server().await;
    let c = run_workflow(
        baton_nodes::registry(),
        json!({"url": format!("http://127.0.0.1:{port}/missing"), "retry_on": ["5xx", "429"], "raise_on_status": "4xx,5xx"}),
        "retry-404",
    )
    .await;
    assert_ne!(c.status, ExecutionStatus::Completed);
    let reason = c.failure_reason.unwrap_or_default();
    assert!(reason.contains("404"), "{reason}");
    assert_eq!(hits.count("/missing"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_waited_out_before_the_retry() {
    let (port, hits) = server().await;
    let c = run_workflow(
        baton_nodes::registry(),
        json!({"url": format!("http://127.0.0.1:{port}/busy"), "retry_on": [429]}),
        "retry-after",
    )
    .await;
    assert_eq!(
        c.status,
        ExecutionStatus::Completed,
        "{:?}",
        c.failure_reason
    );
    let times = hits.times("/busy");
    assert_eq!(times.len(), 2);
    let gap = times[1].duration_since(times[0]);
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, before Retry-After: 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_built_with_the_production_policy_denies_private_hosts() {
    let (port, hits) = server().await;
    let c = run_workflow(
        baton_nodes::registry_with(HttpPolicy::production()),
        json!({"url": format!("http://localhost:{port}/ok")}),
        "policy-registry",
    )
    .await;
    assert_ne!(c.status, ExecutionStatus::Completed);
    let reason = c.failure_reason.unwrap_or_default();
    assert!(reason.contains("HTTP_HOST_DENIED"), "{reason}");
    assert_eq!(hits.count("/ok"), 0);
}

#[test]
fn the_hardening_parameters_are_declared_in_the_spec() {
    let node = embedded();
    let names: Vec<&str> = node.spec().params.iter().map(|p| p.name).collect();
    for name in [
        "max_response_bytes",
        "follow_redirects",
        "max_redirects",
        "allowed_hosts",
        "denied_hosts",
        "retry_on",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}
