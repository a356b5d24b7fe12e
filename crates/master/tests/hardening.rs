//! The master's HTTP hardening (RFC 0008) against a real master, RabbitMQ, Redis and worker:
//! the auth matrix over every route of `/openapi.json`, query tokens, body and request limits
//! in the JSON error format, security headers, safe ids, the header-read deadline and the
//! connection limit.

mod common;

use std::time::Duration;

use common::{Env, TOKEN, call_at, hello};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound on a raw exchange; only a hang takes this long.
const RAW_BOUND: Duration = Duration::from_secs(20);

/// Sends `request` as is (no URL normalisation) and reads until the server closes; returns
/// the status, the lower-cased head and the JSON body (`Value::Null` when not JSON).
async fn raw(addr: &str, request: &[u8]) -> (u16, String, Value) {
    try_raw(addr, request)
        .await
        .expect("the server answers and closes")
}

/// [`raw`], `None` when the connection fails or is reset.
async fn try_raw(addr: &str, request: &[u8]) -> Option<(u16, String, Value)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(request).await.ok()?;
    let mut bytes = Vec::new();
    tokio::time::timeout(RAW_BOUND, stream.read_to_end(&mut bytes))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Some((
        status,
        head.to_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    ))
}

fn addr(env: &Env) -> String {
    env.masters[0].trim_start_matches("http://").to_string()
}

/// A GET with `Connection: close` and the test token.
fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// A concrete path for a route of the contract (ids that exist nowhere).
fn concrete(route: &str) -> String {
    route
        .replace("{workflow_id}", "matrix-wf")
        .replace("{execution_id}", "0190c0de-0000-7000-8000-000000000000")
        .replace("{schedule_id}", "matrix-schedule")
        .replace("{credential_id}", "matrix-credential")
        .replace("{name}", "go")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_of_the_contract_needs_a_bearer_token_unless_documented_open() {
    let env = Env::start().await;
    let (_, openapi) = call_at(&env.http, &env.url("/openapi.json"), "GET", None, None).await;
    let paths = openapi["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (route, operations) in paths {
        for (method, operation) in operations.as_object().expect("operations") {
            if !matches!(method.as_str(), "get" | "post" | "put" | "delete" | "patch") {
                continue;
            }
            let method = method.to_uppercase();
            let path = concrete(route);
            let url = env.url(&path);
            let documented: Vec<u16> = operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .filter_map(|k| k.parse().ok())
                .collect();
            let open = operation
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
            let what = format!("{method} {route}");
            let (no_token, _) = call_at(&env.http, &url, &method, None, None).await;
            let query = format!("{url}?access_token={TOKEN}");
            let (in_query, _) = call_at(&env.http, &query, &method, None, None).await;
            let (good, body) = call_at(&env.http, &url, &method, None, Some(TOKEN)).await;
            assert!(
                documented.contains(&good),
                "{what} with the token answered {good}, not among its documented responses {documented:?}: {body}"
            );
            assert_ne!(good, 401, "{what} accepts a configured token: {body}");
            if open {
                assert_ne!(no_token, 401, "{what} is documented open");
                checked += 1;
                continue;
            }
            assert!(documented.contains(&401), "{what} documents its 401");
            assert_eq!(no_token, 401, "{what} without a token");
            for wrong in ["wrong", "test-token", "test-token-12", "TEST-TOKEN-1", " "] {
                let (status, body) = call_at(&env.http, &url, &method, None, Some(wrong)).await;
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (401, Some("unauthorized")),
                    "{what} with the token {wrong:?}"
                );
            }
            if route == "/executions/{execution_id}/events" && method == "GET" {
                assert_eq!(
                    in_query, good,
                    "{what} accepts ?access_token= (EventSource)"
                );
            } else {
                assert_eq!(in_query, 401, "{what} refuses ?access_token=");
            }
            checked += 1;
        }
    }
    assert!(checked >= 27, "every operation was checked ({checked})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_event_stream_query_token_is_url_decoded() {
    let token = "a+b/c=d%e&f g";
    let env = Env::start_with(|s| s.api_tokens = format!("{token},other")).await;
    let stream = concrete("/executions/{execution_id}/events");
    let encoded = "a%2Bb%2Fc%3Dd%25e%26f%20g";
    let (status, body) = call_at(
        &env.http,
        &env.url(&format!("{stream}?access_token={encoded}")),
        "GET",
        None,
        None,
    )
    .await;
    assert_eq!(
        status, 404,
        "the decoded token passes, the execution is unknown: {body}"
    );
    let (status, _) = call_at(
        &env.http,
        &env.url(&format!("{stream}?access_token=a+b/c=d%e")),
        "GET",
        None,
        None,
    )
    .await;
    assert_eq!(status, 401, "the raw, undecoded text is not the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_bodies_answer_413_and_slow_requests_408_in_the_json_error_format() {
    let env = Env::start_with(|s| {
        s.master_max_body_bytes = 1024;
        s.master_request_timeout_ms = 300;
    })
    .await;
    let mut big = hello("big");
    big["description"] = Value::String("x".repeat(2048));
    let (status, body) = env.call("POST", "/workflows", Some(big)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("BATON_MASTER_MAX_BODY_BYTES"),
        "{body}"
    );
    // A body announced but never sent in full: the request times out.
    let slow = format!(
        "POST /workflows HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    let (status, head, body) = raw(&addr(&env), slow.as_bytes()).await;
    assert_eq!(status, 408, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    // Other rejections of the framework are JSON too.
    let (status, body) = env.call("PATCH", "/workflows", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // A small body still works.
    let (status, _) = env.call("POST", "/workflows", Some(hello("small"))).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_response_carries_the_security_headers() {
    let env = Env::start().await;
    for (path, token) in [
        ("/", None),
        ("/ui/app.js", None),
        ("/healthz", None),
        ("/workflows", None),
        ("/workflows", Some(TOKEN)),
        ("/no/such/route", None),
    ] {
        let mut req = env.http.get(env.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("answer");
        let h = resp.headers();
        let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_outside_the_safe_alphabet_answer_400_naming_the_parameter() {
    let env = Env::start().await;
    let addr = addr(&env);
    let long = "a".repeat(129);
    for (path, param) in [
        ("/workflows/..".to_string(), "workflow_id"),
        ("/workflows/%2E%2E".to_string(), "workflow_id"),
        ("/workflows/.".to_string(), "workflow_id"),
        ("/workflows/a%2Fb".to_string(), "workflow_id"),
        ("/workflows/a%20b".to_string(), "workflow_id"),
        ("/workflows/%C3%A9".to_string(), "workflow_id"),
        (format!("/workflows/{long}"), "workflow_id"),
        ("/workflows/%2E%2E/schedules".to_string(), "workflow_id"),
        ("/workflows/ok/schedules/..".to_string(), "schedule_id"),
        ("/executions/..".to_string(), "execution_id"),
        ("/executions/a%00b/events".to_string(), "execution_id"),
        ("/credentials/..".to_string(), "credential_id"),
    ] {
        let method = if path.starts_with("/credentials") || path.contains("/schedules/") {
            "DELETE"
        } else {
            "GET"
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        );
        let (status, head, body) = raw(&addr, request.as_bytes()).await;
        assert_eq!(status, 400, "{method} {path}: {head}");
        assert_eq!(
            body["error"]["problems"][0]["path"], param,
            "{method} {path}: {body}"
        );
    }
    // Webhooks are open routes: the same check, before anything is looked up.
    let hook =
        "POST /hooks/.. HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (status, _, body) = raw(&addr, hook.as_bytes()).await;
    assert_eq!(
        (status, body["error"]["problems"][0]["path"].as_str()),
        (400, Some("workflow_id"))
    );
    // Ids with `:` and `.` inside are fine (404: nothing stored under them).
    let (status, _, _) = raw(&addr, &get("/executions/run:1.2")).await;
    assert_eq!(status, 404);
    // A definition cannot take a dot segment as its id.
    let mut dots = hello("x");
    dots["id"] = Value::String("..".into());
    let (status, body) = env.call("POST", "/workflows", Some(dots)).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_sent_requests_are_closed_at_the_header_deadline_and_the_limit_keeps_a_reserve() {
    // Long enough to tell the three fates of a connection apart: closed at once (over the
    // limit and its reserve), after 0.5 s (a reserve slot), after 12 s (a slot of the limit).
    let header_timeout = Duration::from_secs(12);
    let well_before = Duration::from_secs(6);
    let env = Env::start_with(|s| {
        s.master_header_timeout_ms = header_timeout.as_millis() as u64;
        s.master_max_connections = 4;
    })
    .await;
    let addr = addr(&env);
    let reserve = baton_master::server::RESERVE_CONNECTIONS;
    // The limit and its reserve, each holding a connection with half a request head.
    let mut held = Vec::new();
    for _ in 0..4 + reserve {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            .await
            .expect("send");
        held.push(s);
    }
    // One more is closed well before any header deadline of the limit.
    let mut over = TcpStream::connect(&addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(well_before, over.read(&mut buf))
        .await
        .expect("a connection over the limit is closed, not served")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    // The reserve frees within its short deadline: a probe gets through while the limit is
    // still full of slow clients.
    let probe = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let deadline = tokio::time::Instant::now() + well_before;
    while try_raw(&addr, probe).await.map(|(status, _, _)| status) != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz did not answer through the reserve while the limit was full"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every held connection is closed by the master by its header deadline.
    for mut s in held {
        let n = tokio::time::timeout(RAW_BOUND, s.read(&mut buf))
            .await
            .expect("the master closes a connection whose request head never completes")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
}
