//! Black-box tests of the `http` and `log` nodes. Every HTTP test talks to its own axum server
//! on 127.0.0.1; nothing leaves the machine.

use baton_core::ErrorCode;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::{any, get};
use baton_core::spec::NodeClass;
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use baton_nodes::http::HttpNode;
use baton_nodes::log::LogNode;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

const IDEMPOTENCY_KEY: &str = "exec-1:node-1:1";

// ---------------------------------------------------------------------------------------------
// Test server
// ---------------------------------------------------------------------------------------------

/// Echoes the request back as JSON: method, path, raw and parsed query, headers, body text.
async fn echo(
    method: Method,
    uri: axum::http::Uri,
    RawQuery(raw_query): RawQuery,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let query: Map<String, Value> = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "raw_query": raw_query,
        "query": query,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn status(Path(code): Path<u16>) -> impl IntoResponse {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, format!("status {code}"))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(2)).await;
    "late"
}

async fn text() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::HeaderName::from_static("x-custom-thing"), "1"),
        ],
        "hello, world",
    )
}

async fn big() -> Vec<u8> {
    vec![b'a'; 11 * 1024 * 1024]
}

/// 11 MiB in 1 MiB chunks, without a Content-Length.
async fn big_chunked() -> axum::body::Body {
    let chunks = (0..11).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; 1024 * 1024])));
    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
}

async fn empty() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Starts a server on an ephemeral port and returns its base URL.
async fn server() -> String {
    let app = Router::new()
        .route("/echo", any(echo))
        .route("/status/{code}", any(status))
        .route("/slow", get(slow))
        .route("/text", get(text))
        .route("/big", get(big))
        .route("/big-chunked", get(big_chunked))
        .route("/empty", get(empty));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn credentials(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("credentials must be an object, got {other}"),
    }
}

async fn run_with(
    node: &dyn Node,
    params: Value,
    creds: Option<Map<String, Value>>,
    cancel: &CancellationToken,
) -> Result<Value, NodeError> {
    node.run(NodeInput {
        params: &params,
        context: &Map::new(),
        credentials: creds.as_ref(),
        used_credential: None,
        execution_id: "exec-1",
        node_id: "node-1",
        node_name: "Call API",
        attempt: 1,
        idempotency_key: IDEMPOTENCY_KEY,
        cancel,
        clock: &baton_engine::SystemClock,
    })
    .await
    .map(NodeOutput::into_value)
}

async fn run(params: Value) -> Result<Value, NodeError> {
    run_with(&HttpNode::new(), params, None, &CancellationToken::new()).await
}

async fn run_creds(params: Value, creds: Value) -> Result<Value, NodeError> {
    run_with(
        &HttpNode::new(),
        params,
        Some(credentials(creds)),
        &CancellationToken::new(),
    )
    .await
}

fn ok(result: Result<Value, NodeError>) -> Value {
    match result {
        Ok(v) => v,
        Err(e) => panic!("expected success, got {e:?}"),
    }
}

fn err(result: Result<Value, NodeError>) -> NodeError {
    match result {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e,
    }
}

/// The header the echo server received (lower-case name).
fn echoed_header<'a>(out: &'a Value, name: &str) -> Option<&'a str> {
    out["body"]["headers"][name].as_str()
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_sends_query_and_headers_and_returns_the_parsed_json_response() {
    let base = server().await;
    let out = ok(run(json!({
        "url": format!("{base}/echo"),
        "query": {"q": "a b&c", "page": 2, "exact": true},
        "headers": {"X-Trace": "abc", "X-Count": 3},
    }))
    .await);

    assert_eq!(out["status"], 200);
    assert_eq!(out["status_text"], "200 OK");
    assert_eq!(out["body"]["method"], "GET");
    assert_eq!(
        out["body"]["query"],
        json!({"q": "a b&c", "page": "2", "exact": "true"})
    );
    assert_eq!(echoed_header(&out, "x-trace"), Some("abc"));
    assert_eq!(echoed_header(&out, "x-count"), Some("3"));
    assert_eq!(out["headers"]["Content-Type"], "application/json");
    assert!(out["duration_ms"].is_u64(), "{}", out["duration_ms"]);
}

#[tokio::test]
async fn query_parameters_are_appended_to_a_url_that_already_has_a_query() {
    let base = server().await;
    let out =
        ok(run(json!({"url": format!("{base}/echo?fixed=1"), "query": {"extra": "x"}})).await);
    assert_eq!(out["body"]["raw_query"], "fixed=1&extra=x");
}

#[tokio::test]
async fn method_is_case_insensitive() {
    let base = server().await;
    let out = ok(run(json!({"method": "delete", "url": format!("{base}/echo")})).await);
    assert_eq!(out["body"]["method"], "DELETE");
}

#[tokio::test]
async fn unsupported_method_is_an_invalid_parameter() {
    let e = err(run(json!({"method": "FETCH", "url": "http://127.0.0.1:9/"})).await);
    assert_eq!(e.code, ErrorCode::InvalidParameter);
    assert!(e.message.contains("`method`"), "{}", e.message);
    assert!(!e.retryable);
}

#[tokio::test]
async fn post_json_body_is_sent_as_json_with_a_json_content_type() {
    let base = server().await;
    let payload = json!({"name": "Ada", "tags": ["x", "y"], "n": 1.5});
    let out =
        ok(run(json!({"method": "POST", "url": format!("{base}/echo"), "body": payload})).await);

    assert_eq!(out["body"]["method"], "POST");
    assert_eq!(
        echoed_header(&out, "content-type"),
        Some("application/json")
    );
    let received: Value =
        serde_json::from_str(out["body"]["body"].as_str().unwrap_or_default()).expect("JSON body");
    assert_eq!(received, payload);
}

#[tokio::test]
async fn explicit_content_type_is_kept_for_a_json_body() {
    let base = server().await;
    let out = ok(run(json!({
        "method": "PUT",
        "url": format!("{base}/echo"),
        "headers": {"content-type": "application/vnd.api+json"},
        "body": [1, 2],
    }))
    .await);
    assert_eq!(
        echoed_header(&out, "content-type"),
        Some("application/vnd.api+json")
    );
    assert_eq!(out["body"]["body"], "[1,2]");
}

#[tokio::test]
async fn string_body_is_sent_raw() {
    let base = server().await;
    let out = ok(run(json!({
        "method": "POST",
        "url": format!("{base}/echo"),
        "headers": {"Content-Type": "text/plain"},
        "body": "not \"json\" {at all",
    }))
    .await);
    assert_eq!(out["body"]["body"], "not \"json\" {at all");
    assert_eq!(echoed_header(&out, "content-type"), Some("text/plain"));
}

#[tokio::test]
async fn string_body_without_content_type_defaults_to_json_like_rune() {
    let base = server().await;
    let out = ok(run(
        json!({"method": "POST", "url": format!("{base}/echo"), "body": "{\"a\":1}"}),
    )
    .await);
    assert_eq!(out["body"]["body"], "{\"a\":1}");
    assert_eq!(
        echoed_header(&out, "content-type"),
        Some("application/json")
    );
}

#[tokio::test]
async fn null_or_empty_object_body_sends_no_body() {
    let base = server().await;
    for body in [Value::Null, json!({})] {
        let out =
            ok(run(json!({"method": "POST", "url": format!("{base}/echo"), "body": body})).await);
        assert_eq!(out["body"]["body"], "");
        assert_eq!(echoed_header(&out, "content-type"), None);
    }
}

#[tokio::test]
async fn non_scalar_query_value_is_rejected_naming_the_key() {
    let e = err(run(json!({"url": "http://127.0.0.1:9/", "query": {"ids": [1, 2]}})).await);
    assert_eq!(e.code, ErrorCode::InvalidParameter);
    assert!(e.message.contains("`query.ids`"), "{}", e.message);
}

#[tokio::test]
async fn non_scalar_header_value_is_rejected_naming_the_key() {
    let e = err(run(json!({"url": "http://127.0.0.1:9/", "headers": {"X-A": {"b": 1}}})).await);
    assert_eq!(e.code, ErrorCode::InvalidParameter);
    assert!(e.message.contains("`headers.X-A`"), "{}", e.message);
}

// ---------------------------------------------------------------------------------------------
// Credentials and idempotency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn basic_auth_credentials_become_an_authorization_header() {
    let base = server().await;
    let out = ok(run_creds(
        json!({"url": format!("{base}/echo")}),
        json!({"type": "basic_auth", "username": "alice", "password": "s3cret"}),
    )
    .await);
    assert_eq!(
        echoed_header(&out, "authorization"),
        Some("Basic YWxpY2U6czNjcmV0")
    );
}

#[tokio::test]
async fn header_credentials_set_the_named_header() {
    let base = server().await;
    let out = ok(run_creds(
        json!({"url": format!("{base}/echo")}),
        json!({"type": "header", "field": "X-Api-Token", "value": "tok-1"}),
    )
    .await);
    assert_eq!(echoed_header(&out, "x-api-token"), Some("tok-1"));
}

#[tokio::test]
async fn token_credentials_become_a_bearer_authorization_header() {
    let base = server().await;
    let out = ok(run_creds(
        json!({"url": format!("{base}/echo")}),
        json!({"type": "token", "token": "abc123"}),
    )
    .await);
    assert_eq!(echoed_header(&out, "authorization"), Some("Bearer abc123"));
}

#[tokio::test]
async fn oauth2_credentials_use_the_token_type_or_bearer() {
    let base = server().await;
    let url = json!({"url": format!("{base}/echo")});
    let out = ok(run_creds(
        url.clone(),
        json!({"type": "oauth2", "access_token": "at-1"}),
    )
    .await);
    assert_eq!(echoed_header(&out, "authorization"), Some("Bearer at-1"));

    let out = ok(run_creds(
        url.clone(),
        json!({"type": "oauth2", "access_token": "at-2", "token_type": "MAC"}),
    )
    .await);
    assert_eq!(echoed_header(&out, "authorization"), Some("MAC at-2"));

    let out = ok(run_creds(
        url,
        json!({"type": "oauth2", "access_token": "at-3", "token_type": "bearer"}),
    )
    .await);
    assert_eq!(echoed_header(&out, "authorization"), Some("Bearer at-3"));
}

#[tokio::test]
async fn api_key_credentials_use_the_key_header_or_a_bearer_token() {
    let base = server().await;
    let url = json!({"url": format!("{base}/echo")});
    let out = ok(run_creds(
        url.clone(),
        json!({"type": "api_key", "key": "X-Api-Key", "value": "k-1"}),
    )
    .await);
    assert_eq!(echoed_header(&out, "x-api-key"), Some("k-1"));
    assert_eq!(echoed_header(&out, "authorization"), None);

    let out = ok(run_creds(url, json!({"type": "api_key", "value": "k-2"})).await);
    assert_eq!(echoed_header(&out, "authorization"), Some("Bearer k-2"));
}

#[tokio::test]
async fn unknown_credential_type_is_ignored() {
    let base = server().await;
    let out = ok(run_creds(
        json!({"url": format!("{base}/echo")}),
        json!({"type": "smtp", "host": "mail", "username": "u", "password": "p"}),
    )
    .await);
    assert_eq!(echoed_header(&out, "authorization"), None);
}

#[tokio::test]
async fn credentials_missing_their_secret_fail_without_retry() {
    let e = err(run_creds(
        json!({"url": "http://127.0.0.1:9/"}),
        json!({"type": "token"}),
    )
    .await);
    assert_eq!(e.code, ErrorCode::InvalidCredentials);
    assert!(!e.retryable);
}

#[tokio::test]
async fn explicit_header_wins_over_credential_header_case_insensitively() {
    let base = server().await;
    let out = ok(run_creds(
        json!({"url": format!("{base}/echo"), "headers": {"authorization": "Custom mine"}}),
        json!({"type": "token", "token": "theirs"}),
    )
    .await);
    assert_eq!(echoed_header(&out, "authorization"), Some("Custom mine"));
}

#[tokio::test]
async fn idempotency_key_header_is_sent() {
    let base = server().await;
    let out = ok(run(json!({"url": format!("{base}/echo")})).await);
    assert_eq!(
        echoed_header(&out, "idempotency-key"),
        Some(IDEMPOTENCY_KEY)
    );
}

#[tokio::test]
async fn user_idempotency_key_header_wins() {
    let base = server().await;
    let out = ok(run(
        json!({"url": format!("{base}/echo"), "headers": {"IDEMPOTENCY-KEY": "mine"}}),
    )
    .await);
    assert_eq!(echoed_header(&out, "idempotency-key"), Some("mine"));
}

// ---------------------------------------------------------------------------------------------
// Status handling
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn raise_on_status_5xx_fails_a_503_with_a_retryable_http_status_error() {
    let base = server().await;
    let url = format!("{base}/status/503");
    let e = err(run(json!({"url": url, "raise_on_status": "5xx"})).await);
    assert_eq!(e.code, ErrorCode::HttpStatus);
    assert_eq!(
        e.message,
        format!("HTTP 503 Service Unavailable from GET {url}")
    );
    assert!(e.retryable);
}

#[tokio::test]
async fn raise_on_status_on_a_404_fails_without_retry() {
    let base = server().await;
    let e = err(
        run(json!({"url": format!("{base}/status/404"), "raise_on_status": "404 or 500"})).await,
    );
    assert_eq!(e.code, ErrorCode::HttpStatus);
    assert!(!e.retryable);
}

#[tokio::test]
async fn raise_on_status_on_a_429_is_retryable() {
    let base = server().await;
    let e =
        err(run(json!({"url": format!("{base}/status/429"), "raise_on_status": "4xx,5xx"})).await);
    assert_eq!(e.code, ErrorCode::HttpStatus);
    assert!(e.retryable);
}

#[tokio::test]
async fn raise_on_status_4xx_on_a_200_succeeds() {
    let base = server().await;
    let out = ok(run(json!({"url": format!("{base}/status/200"), "raise_on_status": "4xx"})).await);
    assert_eq!(out["status"], 200);
}

#[tokio::test]
async fn non_2xx_status_without_raise_on_status_is_a_success_with_the_status_in_the_output() {
    let base = server().await;
    let out = ok(run(json!({"url": format!("{base}/status/500")})).await);
    assert_eq!(out["status"], 500);
    assert_eq!(out["status_text"], "500 Internal Server Error");
    assert_eq!(out["body"], "status 500");
}

#[tokio::test]
async fn invalid_raise_on_status_is_an_invalid_parameter() {
    let e = err(run(json!({"url": "http://127.0.0.1:9/", "raise_on_status": "7xx"})).await);
    assert_eq!(e.code, ErrorCode::InvalidParameter);
    assert!(e.message.contains("`raise_on_status`"), "{}", e.message);
}

// ---------------------------------------------------------------------------------------------
// URL, transport, timeout, cancellation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_url_is_an_invalid_parameter_naming_url() {
    for params in [
        json!({"url": "not a url"}),
        json!({"url": "ftp://example.com/file"}),
        json!({"url": "/relative/path"}),
        json!({"url": ""}),
        json!({"url": 42}),
        json!({}),
    ] {
        let e = err(run(params.clone()).await);
        assert_eq!(e.code, ErrorCode::InvalidParameter, "{params}");
        assert!(e.message.contains("`url`"), "{params}: {}", e.message);
        assert!(!e.retryable);
    }
}

#[tokio::test]
async fn connection_refused_is_a_retryable_request_failure_naming_method_and_url() {
    // Bind then drop a listener to get a local port nobody listens on.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/x");
    let e = err(run(json!({"method": "POST", "url": url, "body": {"a": 1}})).await);
    assert_eq!(e.code, ErrorCode::HttpRequestFailed);
    assert!(e.retryable);
    assert!(e.message.contains(&format!("POST {url}")), "{}", e.message);
}

#[tokio::test]
async fn ignore_ssl_requests_use_the_second_client_and_still_succeed() {
    let base = server().await;
    let node = HttpNode::new();
    let cancel = CancellationToken::new();
    for _ in 0..2 {
        let out = ok(run_with(
            &node,
            json!({"url": format!("{base}/echo"), "ignore_ssl": true}),
            None,
            &cancel,
        )
        .await);
        assert_eq!(out["status"], 200);
    }
    let e = err(run(json!({"url": format!("{base}/echo"), "ignore_ssl": [true]})).await);
    assert!(e.message.contains("`ignore_ssl`"), "{}", e.message);
}

#[tokio::test]
async fn slow_response_past_the_timeout_fails_with_http_timeout() {
    let base = server().await;
    let started = Instant::now();
    let e = err(run(json!({"url": format!("{base}/slow"), "timeout": 0.2})).await);
    assert_eq!(e.code, ErrorCode::HttpTimeout);
    assert!(e.retryable);
    assert!(e.message.contains("GET "), "{}", e.message);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn cancellation_token_cancels_an_in_flight_request() {
    let base = server().await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let node = HttpNode::new();
    let e = err(run_with(&node, json!({"url": format!("{base}/slow")}), None, &cancel).await);
    assert_eq!(e.code, ErrorCode::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Response handling
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn non_json_body_is_returned_as_a_string_with_canonical_header_names() {
    let base = server().await;
    let out = ok(run(json!({"url": format!("{base}/text")})).await);
    assert_eq!(out["body"], "hello, world");
    assert_eq!(out["headers"]["Content-Type"], "text/plain; charset=utf-8");
    assert_eq!(out["headers"]["X-Custom-Thing"], "1");
}

#[tokio::test]
async fn empty_body_is_returned_as_an_empty_string() {
    let base = server().await;
    let out = ok(run(json!({"url": format!("{base}/empty")})).await);
    assert_eq!(out["status"], 204);
    assert_eq!(out["body"], "");
}

#[tokio::test]
async fn response_body_over_ten_mebibytes_fails_with_body_too_large() {
    let base = server().await;
    for path in ["big", "big-chunked"] {
        let e = err(run(json!({"url": format!("{base}/{path}")})).await);
        assert_eq!(e.code, ErrorCode::HttpBodyTooLarge, "{path}: {e:?}");
        assert!(!e.retryable);
    }
}

#[test]
fn http_spec_documents_every_parameter() {
    let node = HttpNode::new();
    let spec = node.spec();
    assert_eq!(spec.type_name, "http");
    assert_eq!(spec.class, NodeClass::Action);
    assert!(spec.params.iter().all(|p| !p.doc.is_empty()));
    assert!(spec.params.iter().any(|p| p.name == "url" && p.required));
    assert!(spec.params.iter().any(|p| p.name == "retry" && !p.required));
}

// ---------------------------------------------------------------------------------------------
// log node
// ---------------------------------------------------------------------------------------------

type Events = Arc<Mutex<Vec<(tracing::Level, BTreeMap<String, String>)>>>;

/// Records every event's level and fields.
#[derive(Clone, Default)]
struct Capture(Events);

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Ok(mut events) = self.0.lock() {
            events.push((*event.metadata().level(), fields.0));
        }
    }
}

#[tokio::test]
async fn log_node_emits_an_event_at_the_level_and_returns_the_message() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));

    let out = ok(run_with(
        &LogNode::new(),
        json!({"message": "order 42 shipped", "level": "warn"}),
        None,
        &CancellationToken::new(),
    )
    .await);

    assert_eq!(out["message"], "order 42 shipped");
    assert_eq!(out["level"], "warn");
    let logged_at = out["logged_at"].as_str().unwrap_or_default();
    let parsed = chrono::DateTime::parse_from_rfc3339(logged_at).expect("RFC 3339 timestamp");
    assert_eq!(parsed.offset().local_minus_utc(), 0);

    let events = capture.0.lock().map(|e| e.clone()).unwrap_or_default();
    let (level, fields) = events
        .iter()
        .find(|(_, f)| f.get("message").map(String::as_str) == Some("order 42 shipped"))
        .expect("a log event with the message");
    assert_eq!(*level, tracing::Level::WARN);
    assert_eq!(
        fields.get("execution_id").map(String::as_str),
        Some("exec-1")
    );
    assert_eq!(fields.get("node_id").map(String::as_str), Some("node-1"));
    assert_eq!(
        fields.get("node_name").map(String::as_str),
        Some("Call API")
    );
}

#[tokio::test]
async fn log_node_defaults_to_info_and_json_encodes_non_string_messages() {
    let out = ok(run_with(
        &LogNode::new(),
        json!({"message": {"order": 42}, "level": "verbose"}),
        None,
        &CancellationToken::new(),
    )
    .await);
    assert_eq!(out["message"], r#"{"order":42}"#);
    assert_eq!(out["level"], "info");
}

#[tokio::test]
async fn log_node_without_a_message_is_an_invalid_parameter() {
    for params in [
        json!({}),
        json!({"message": "   "}),
        json!({"message": null, "level": "error"}),
    ] {
        let e = err(run_with(
            &LogNode::new(),
            params.clone(),
            None,
            &CancellationToken::new(),
        )
        .await);
        assert_eq!(e.code, ErrorCode::InvalidParameter, "{params}");
        assert_eq!(
            e.message,
            "parameter `message` is required: expected a non-blank string"
        );
        assert!(!e.retryable);
    }
}
