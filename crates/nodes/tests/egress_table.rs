//! The egress guard, black-box through the `http` and `smtp` nodes under the worker pool's
//! policy: a table of denied targets in every encoding (for both nodes), redirects from an
//! allowed real server to denied targets, the operator allow list (`BATON_EGRESS_ALLOW`) and
//! one error text for a closed port and a filtered target.
//!
//! The allowed server listens on this machine's non-loopback address (the source address of
//! its default route): loopback can never be allowed by the list, only by the development
//! switch, which allows everything.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use baton_core::ErrorCode;
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use baton_nodes::egress::{EgressPolicy, HostRule};
use baton_nodes::http::{HttpNode, HttpPolicy};
use baton_nodes::smtp::SmtpNode;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct App {
    hits: Arc<AtomicUsize>,
    redirects: Arc<Vec<String>>,
}

async fn ok(State(app): State<App>) -> &'static str {
    app.hits.fetch_add(1, Ordering::SeqCst);
    "fine"
}

/// `/to/N` redirects to the N-th target.
async fn to(State(app): State<App>, Path(n): Path<usize>) -> Response {
    match app.redirects.get(n) {
        Some(target) => (StatusCode::FOUND, [(header::LOCATION, target.clone())]).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An HTTP server on `ip` redirecting `/to/N` to `redirects[N]` (`{self}` is replaced by
/// its own `host:port`); returns its address and the count of `/ok` requests.
async fn http_server(ip: IpAddr, redirects: Vec<String>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    let hits = Arc::new(AtomicUsize::new(0));
    let redirects = redirects
        .into_iter()
        .map(|t| t.replace("{self}", &addr.to_string()))
        .collect();
    let app = Router::new()
        .route("/ok", get(ok))
        .route("/to/{n}", get(to))
        .with_state(App {
            hits: hits.clone(),
            redirects: Arc::new(redirects),
        });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, hits)
}

/// A minimal SMTP server on `ip` that accepts every message; returns its address and the
/// count of connections it accepted.
async fn smtp_server(ip: IpAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 test ESMTP\r\n").await;
                let mut line = String::new();
                let mut in_data = false;
                while r.read_line(&mut line).await.is_ok_and(|n| n > 0) {
                    let answer: &[u8] = if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            b"250 queued\r\n"
                        } else {
                            b""
                        }
                    } else {
                        match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                            Some("EHLO") => b"250 test\r\n",
                            Some("DATA") => {
                                in_data = true;
                                b"354 go on\r\n"
                            }
                            Some("QUIT") => b"221 bye\r\n",
                            _ => b"250 ok\r\n",
                        }
                    };
                    if !answer.is_empty() && w.write_all(answer).await.is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
    });
    (addr, connections)
}

/// This machine's non-loopback address: the source address of its default route (a UDP
/// `connect` sends nothing). Tests that need an allowed server skip without one.
fn local_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("bind a port");
    listener.local_addr().expect("local address").port()
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

fn policy(allow: &str, connect_timeout: Duration) -> EgressPolicy {
    EgressPolicy {
        allow: HostRule::parse_list(allow).unwrap_or_else(|e| panic!("{allow}: {e}")),
        connect_timeout,
        ..EgressPolicy::production()
    }
}

fn http_node(egress: EgressPolicy) -> HttpNode {
    HttpNode::with_policy(HttpPolicy {
        egress,
        ..HttpPolicy::production()
    })
}

async fn run(
    node: &dyn Node,
    params: Value,
    credentials: Option<&Map<String, Value>>,
) -> Result<Value, NodeError> {
    node.run(NodeInput {
        params: &params,
        context: &Map::new(),
        credentials,
        execution_id: "exec-egress",
        node_id: "node-egress",
        node_name: "Egress",
        attempt: 1,
        idempotency_key: "exec-egress:node-egress:1",
        cancel: &CancellationToken::new(),
        clock: &baton_engine::SystemClock,
        used_credential: None,
    })
    .await
    .map(NodeOutput::into_value)
}

async fn get_url(node: &HttpNode, url: &str) -> Result<Value, NodeError> {
    run(node, json!({"url": url, "timeout": 5}), None).await
}

async fn send_mail(node: &SmtpNode, host: &str, port: u16) -> Result<Value, NodeError> {
    let credentials = json!({"type": "smtp", "host": host, "port": port});
    let credentials = credentials.as_object().cloned().unwrap_or_default();
    run(
        node,
        json!({"from": "ops@example.com", "to": "a@example.com", "subject": "s", "body": "b",
               "security": "none", "timeout": 5}),
        Some(&credentials),
    )
    .await
}

#[track_caller]
fn expect_denied(result: Result<Value, NodeError>, code: ErrorCode, target: &str) -> NodeError {
    match result {
        Ok(v) => panic!("{target}: expected {code}, got success {v}"),
        Err(e) => {
            assert_eq!(e.code, code, "{target}: {e:?}");
            assert!(
                !e.retryable,
                "{target}: a denial must not be retryable: {e:?}"
            );
            assert!(
                e.message.contains("BATON_EGRESS_ALLOW"),
                "{target}: the denial must name the setting that allows it: {}",
                e.message
            );
            e
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// Hosts every connector must refuse under the production policy, `{port}` being a live
/// loopback server's port. Loopback, this host and metadata in many spellings, then every
/// internal range.
const DENIED_HOSTS: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "LOCALHOST",
    "localhost.",
    "[::1]",
    "2130706433",
    "0177.0.0.1",
    "0x7f.1",
    "0x7f000001",
    "127.1",
    "127.0.0.2",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",
    "[::ffff:0:127.0.0.1]",
    "[64:ff9b::127.0.0.1]",
    "[64:ff9b::a9fe:a9fe]",
    "[64:ff9b:1::10.0.0.1]",
    "[2002:7f00:1::]",
    "[2002:c0a8:101::1]",
    "[2001::1]",
    "0.0.0.0",
    "0",
    "[::]",
    "169.254.169.254",
    "[fd00:ec2::254]",
    "metadata.google.internal",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.0.1",
    "100.64.0.1",
    "169.254.1.1",
    "[fe80::1]",
    "[fec0::1]",
    "[fc00::1]",
    "224.0.0.1",
    "[ff02::1]",
    "240.0.0.1",
    "255.255.255.255",
    "198.18.0.1",
    "192.0.2.1",
    "[2001:db8::1]",
];

#[tokio::test]
async fn http_refuses_every_denied_target_in_every_encoding_before_connecting() {
    let (addr, hits) = http_server(IpAddr::from([127, 0, 0, 1]), vec![]).await;
    let node = http_node(EgressPolicy::production());
    assert!(DENIED_HOSTS.len() >= 30);
    for host in DENIED_HOSTS {
        let url = format!("http://{host}:{}/ok", addr.port());
        expect_denied(get_url(&node, &url).await, ErrorCode::HttpHostDenied, &url);
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the loopback server was reached"
    );
}

#[tokio::test]
async fn smtp_refuses_the_same_targets_before_connecting() {
    let (addr, connections) = smtp_server(IpAddr::from([127, 0, 0, 1])).await;
    let node = SmtpNode::with_policy(EgressPolicy::production());
    for host in DENIED_HOSTS {
        expect_denied(
            send_mail(&node, host, addr.port()).await,
            ErrorCode::EgressDenied,
            host,
        );
    }
    // Unbracketed IPv6 is how an SMTP host is usually written.
    for host in ["::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"] {
        expect_denied(
            send_mail(&node, host, addr.port()).await,
            ErrorCode::EgressDenied,
            host,
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the loopback server was reached"
    );
}

#[tokio::test]
async fn redirects_from_an_allowed_server_to_denied_targets_are_refused() {
    let Some(local) = local_address() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let targets: Vec<String> = [
        "http://127.0.0.1/ok",
        "http://localhost/ok",
        "http://[::1]/ok",
        "http://2130706433/ok",
        "http://0x7f.1/ok",
        "http://[::ffff:127.0.0.1]/ok",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.1/",
        "http://[2002:a9fe:a9fe::]/",
    ]
    .iter()
    .map(|t| (*t).to_string())
    .chain(["http://{self}/ok".to_string()])
    .collect();
    let count = targets.len() - 1;
    let (addr, hits) = http_server(local, targets).await;
    let node = http_node(policy(&format!("{local}/32"), Duration::from_secs(2)));
    for n in 0..count {
        let url = format!("http://{addr}/to/{n}");
        let e = expect_denied(get_url(&node, &url).await, ErrorCode::HttpHostDenied, &url);
        assert!(e.message.contains("HTTP redirect refused"), "{url}: {e:?}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // The allowed server itself, directly and through a redirect to itself.
    let out = get_url(&node, &format!("http://{addr}/to/{count}")).await;
    assert!(out.as_ref().is_ok_and(|v| v["body"] == "fine"), "{out:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_allow_list_admits_its_ranges_but_never_loopback_or_metadata() {
    let Some(local) = local_address() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let (loopback, loopback_hits) = http_server(IpAddr::from([127, 0, 0, 1]), vec![]).await;
    let (addr, hits) = http_server(local, vec![]).await;
    let (mail, connections) = smtp_server(local).await;
    let allow = format!(
        "{local}/32,127.0.0.0/8,localhost,*.localhost,169.254.169.254,metadata.google.internal"
    );
    let http = http_node(policy(&allow, Duration::from_secs(2)));
    let smtp = SmtpNode::with_policy(policy(&allow, Duration::from_secs(2)));

    let out = get_url(&http, &format!("http://{addr}/ok")).await;
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let sent = send_mail(&smtp, &local.to_string(), mail.port()).await;
    assert!(sent.is_ok(), "{sent:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    for host in [
        "127.0.0.1",
        "localhost",
        "169.254.169.254",
        "metadata.google.internal",
    ] {
        let url = format!("http://{host}:{}/ok", loopback.port());
        let e = expect_denied(get_url(&http, &url).await, ErrorCode::HttpHostDenied, &url);
        assert!(
            e.message.contains("BATON_EGRESS_ALLOW_PRIVATE"),
            "only the development switch may allow {host}: {e:?}"
        );
        expect_denied(
            send_mail(&smtp, host, loopback.port()).await,
            ErrorCode::EgressDenied,
            host,
        );
    }
    assert_eq!(loopback_hits.load(Ordering::SeqCst), 0);

    // Without the list, the same local address is denied unless it is public.
    if !matches!(
        baton_nodes::egress::ranges::classify(local),
        baton_nodes::egress::ranges::Class::Public
    ) {
        let strict = http_node(EgressPolicy::production());
        let url = format!("http://{addr}/ok");
        let e = expect_denied(
            get_url(&strict, &url).await,
            ErrorCode::HttpHostDenied,
            &url,
        );
        assert!(e.message.contains("BATON_EGRESS_ALLOW"), "{e:?}");
    }
}

/// `message` with `host` written as `HOST`.
fn anonymous(message: &str, host: &str) -> String {
    message.replace(host, "HOST")
}

#[tokio::test]
async fn a_closed_port_and_a_filtered_target_fail_with_the_same_error() {
    let (closed_host, egress) = match local_address() {
        Some(local) => (
            local.to_string(),
            policy(
                &format!("{local}/32,198.51.100.0/24"),
                Duration::from_secs(1),
            ),
        ),
        // Without another address, the development switch lets 127.0.0.1 be the closed one.
        None => (
            "127.0.0.1".to_string(),
            EgressPolicy {
                connect_timeout: Duration::from_secs(1),
                ..EgressPolicy::embedded()
            },
        ),
    };
    // TEST-NET-2: nothing answers there, the connection attempt is dropped or unreachable.
    let filtered_host = "198.51.100.7";
    let port = closed_port();

    let http = http_node(egress.clone());
    let mut texts = Vec::new();
    for host in [closed_host.as_str(), filtered_host] {
        let url = format!("http://{host}:{port}/ok");
        let e = match get_url(&http, &url).await {
            Ok(v) => panic!("{url}: expected a failure, got {v}"),
            Err(e) => e,
        };
        assert_eq!(
            (e.code, e.retryable),
            (ErrorCode::HttpRequestFailed, true),
            "{e:?}"
        );
        assert!(
            e.message
                .ends_with(&format!("could not connect to {host}:{port}")),
            "{e:?}"
        );
        texts.push(anonymous(&e.message, host));
    }
    assert_eq!(texts[0], texts[1]);

    let smtp = SmtpNode::with_policy(egress);
    let mut texts = Vec::new();
    for host in [closed_host.as_str(), filtered_host] {
        let e = match send_mail(&smtp, host, port).await {
            Ok(v) => panic!("{host}: expected a failure, got {v}"),
            Err(e) => e,
        };
        assert_eq!(
            (e.code, e.retryable),
            (ErrorCode::SmtpFailed, true),
            "{e:?}"
        );
        assert!(
            e.message
                .ends_with(&format!("could not connect to {host}:{port}")),
            "{e:?}"
        );
        texts.push(anonymous(&e.message, host));
    }
    assert_eq!(texts[0], texts[1]);
}
