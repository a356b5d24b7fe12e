//! Black-box tests of the `smtp` node against a real SMTP server written here with tokio
//! (EHLO/HELO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT) on 127.0.0.1. Nothing
//! leaves the machine.

use baton_core::ErrorCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use baton_core::spec::NodeClass;
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use baton_nodes::smtp::SmtpNode;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::sync::CancellationToken;

const IDEMPOTENCY_KEY: &str = "exec-1:node-1:1";
const USER: &str = "mailer";
const PASSWORD: &str = "s3cret-pa55";

// ---------------------------------------------------------------------------------------------
// Test SMTP server
// ---------------------------------------------------------------------------------------------

/// How the server behaves.
#[derive(Debug, Clone, Default)]
struct Behavior {
    /// Accept connections but never send the greeting.
    silent: bool,
    /// `(recipient, reply)` pairs: `RCPT TO` for that address gets this reply.
    reject_rcpt: Vec<(&'static str, &'static str)>,
    /// Read the message after `DATA` but never answer.
    stall_after_data: bool,
}

/// What one connection carried.
#[derive(Debug, Clone, Default)]
struct Session {
    ehlo: Option<String>,
    /// `(mechanism, username, password)`.
    auth: Option<(String, String, String)>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    /// The message as transmitted, dot-unstuffed, without the final `.` line.
    data: Option<String>,
    quit: bool,
}

struct SmtpServer {
    port: u16,
    sessions: Arc<Mutex<Vec<Session>>>,
}

impl SmtpServer {
    async fn start(behavior: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let shared = sessions.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let behavior = behavior.clone();
                let sessions = shared.clone();
                tokio::spawn(async move {
                    let index = {
                        let mut s = sessions.lock().unwrap();
                        s.push(Session::default());
                        s.len() - 1
                    };
                    let update = |f: &mut dyn FnMut(&mut Session)| {
                        f(&mut sessions.lock().unwrap()[index]);
                    };
                    let _ = serve(stream, &behavior, update).await;
                });
            }
        });
        Self { port, sessions }
    }

    fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().unwrap().clone()
    }

    /// The one session that got as far as `DATA`.
    fn delivered(&self) -> Session {
        let delivered: Vec<Session> = self
            .sessions()
            .into_iter()
            .filter(|s| s.data.is_some())
            .collect();
        assert_eq!(delivered.len(), 1, "expected one delivery: {delivered:?}");
        delivered.into_iter().next().unwrap()
    }
}

async fn reply(w: &mut OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

fn decode_b64(s: &str) -> String {
    String::from_utf8(BASE64.decode(s.trim()).unwrap_or_default()).unwrap_or_default()
}

/// `<addr>` (with optional parameters after it) → `addr`.
fn angle_addr(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg.find('>').unwrap_or(arg.len());
    arg[start..end].to_string()
}

async fn serve(
    stream: tokio::net::TcpStream,
    behavior: &Behavior,
    update: impl Fn(&mut dyn FnMut(&mut Session)),
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    if behavior.silent {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut r, &mut sink).await;
        return Ok(());
    }
    reply(&mut w, "220 localhost test ESMTP").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end_matches(['\r', '\n']).to_string();
        let (verb, arg) = cmd.split_once(' ').unwrap_or((cmd.as_str(), ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                let name = arg.to_string();
                update(&mut |s| s.ehlo = Some(name.clone()));
                reply(
                    &mut w,
                    "250-localhost\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME",
                )
                .await?;
            }
            "HELO" => {
                let name = arg.to_string();
                update(&mut |s| s.ehlo = Some(name.clone()));
                reply(&mut w, "250 localhost").await?;
            }
            "AUTH" => {
                let (mechanism, initial) = arg.split_once(' ').unwrap_or((arg, ""));
                let (user, pass) = match mechanism.to_ascii_uppercase().as_str() {
                    "PLAIN" => {
                        let payload = if initial.is_empty() {
                            reply(&mut w, "334 ").await?;
                            let mut l = String::new();
                            r.read_line(&mut l).await?;
                            l
                        } else {
                            initial.to_string()
                        };
                        let decoded = decode_b64(&payload);
                        let mut parts = decoded.split('\0').skip(1);
                        (
                            parts.next().unwrap_or_default().to_string(),
                            parts.next().unwrap_or_default().to_string(),
                        )
                    }
                    "LOGIN" => {
                        let user = if initial.is_empty() {
                            reply(&mut w, "334 VXNlcm5hbWU6").await?;
                            let mut l = String::new();
                            r.read_line(&mut l).await?;
                            decode_b64(&l)
                        } else {
                            decode_b64(initial)
                        };
                        reply(&mut w, "334 UGFzc3dvcmQ6").await?;
                        let mut l = String::new();
                        r.read_line(&mut l).await?;
                        (user, decode_b64(&l))
                    }
                    _ => {
                        reply(&mut w, "504 5.5.4 mechanism not supported").await?;
                        continue;
                    }
                };
                let ok = user == USER && pass == PASSWORD;
                let record = (mechanism.to_ascii_uppercase(), user, pass);
                update(&mut |s| s.auth = Some(record.clone()));
                if ok {
                    reply(&mut w, "235 2.7.0 Authentication successful").await?;
                } else {
                    reply(&mut w, "535 5.7.8 Authentication credentials invalid").await?;
                }
            }
            "MAIL" => {
                let from = angle_addr(arg);
                update(&mut |s| s.mail_from = Some(from.clone()));
                reply(&mut w, "250 2.1.0 OK").await?;
            }
            "RCPT" => {
                let to = angle_addr(arg);
                if let Some((_, answer)) = behavior.reject_rcpt.iter().find(|(a, _)| *a == to) {
                    reply(&mut w, answer).await?;
                } else {
                    update(&mut |s| s.rcpt_to.push(to.clone()));
                    reply(&mut w, "250 2.1.5 OK").await?;
                }
            }
            "DATA" => {
                reply(&mut w, "354 End data with <CR><LF>.<CR><LF>").await?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                update(&mut |s| s.data = Some(data.clone()));
                if behavior.stall_after_data {
                    std::future::pending::<()>().await;
                }
                reply(&mut w, "250 2.0.0 OK queued as 42").await?;
            }
            "RSET" | "NOOP" => reply(&mut w, "250 2.0.0 OK").await?,
            "QUIT" => {
                update(&mut |s| s.quit = true);
                reply(&mut w, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            _ => reply(&mut w, "502 5.5.2 command not recognized").await?,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn credentials(port: u16, login: bool) -> Map<String, Value> {
    let mut v = json!({"type": "smtp", "host": "127.0.0.1", "port": port.to_string()});
    if login {
        v["username"] = json!(USER);
        v["password"] = json!(PASSWORD);
    }
    v.as_object().cloned().unwrap()
}

async fn run_with(
    params: Value,
    creds: Option<Map<String, Value>>,
    cancel: &CancellationToken,
) -> Result<Value, NodeError> {
    SmtpNode::new()
        .run(NodeInput {
            params: &params,
            context: &Map::new(),
            credentials: creds.as_ref(),
            used_credential: None,
            execution_id: "exec-1",
            node_id: "node-1",
            node_name: "Notify",
            attempt: 1,
            idempotency_key: IDEMPOTENCY_KEY,
            cancel,
            clock: &baton_engine::SystemClock,
        })
        .await
        .map(NodeOutput::into_value)
}

async fn run(params: Value, creds: Option<Map<String, Value>>) -> Result<Value, NodeError> {
    run_with(params, creds, &CancellationToken::new()).await
}

/// The header block of a transmitted message, unfolded, as `(name, value)` pairs.
fn headers(data: &str) -> Vec<(String, String)> {
    let head = data.split("\r\n\r\n").next().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn body(data: &str) -> &str {
    data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn spec_and_registry() {
    let node = SmtpNode::new();
    assert_eq!(node.spec().type_name, "smtp");
    assert_eq!(node.spec().class, NodeClass::Action);
    for p in ["from", "to", "subject"] {
        assert!(
            node.spec().params.iter().any(|s| s.name == p && s.required),
            "{p} must be required"
        );
    }
    assert!(baton_nodes::registry().get("smtp").is_some());
}

#[tokio::test]
async fn sends_with_auth_envelope_headers_and_hidden_bcc() {
    let server = SmtpServer::start(Behavior::default()).await;
    let out = run(
        json!({
            "from": "Baton Ops <ops@example.com>",
            "to": ["ada@example.com", "grace@example.com"],
            "cc": "linus@example.com",
            "bcc": ["audit@example.com"],
            "subject": "Order 42 shipped",
            "body": "Hello Ada,\r\nyour order shipped.\r\n.leading dot line",
            "security": "none",
            "timeout": 5,
        }),
        Some(credentials(server.port, true)),
    )
    .await
    .unwrap();

    assert_eq!(out["success"], json!(true));
    assert_eq!(out["message"], json!("Email sent successfully"));
    assert_eq!(out["from"], json!("Baton Ops <ops@example.com>"));
    assert_eq!(out["to"], json!(["ada@example.com", "grace@example.com"]));
    assert_eq!(out["cc"], json!(["linus@example.com"]));
    assert_eq!(out["bcc"], json!(["audit@example.com"]));
    assert_eq!(out["subject"], json!("Order 42 shipped"));
    assert_eq!(out["recipients"], json!(4));
    assert!(out["duration_ms"].is_u64());
    assert_eq!(
        out["message_id"],
        json!("<baton.exec-1=3Anode-1=3A1@example.com>")
    );

    let s = server.delivered();
    assert!(s.ehlo.is_some());
    assert_eq!(
        s.auth,
        Some(("PLAIN".to_string(), USER.to_string(), PASSWORD.to_string()))
    );
    assert_eq!(s.mail_from.as_deref(), Some("ops@example.com"));
    assert_eq!(
        s.rcpt_to,
        [
            "ada@example.com",
            "grace@example.com",
            "linus@example.com",
            "audit@example.com"
        ]
    );
    let data = s.data.unwrap();
    let hs = headers(&data);
    let from = header(&hs, "From").unwrap_or_default();
    assert!(
        from.contains("Baton Ops") && from.ends_with("<ops@example.com>"),
        "{data}"
    );
    assert_eq!(
        header(&hs, "To"),
        Some("ada@example.com, grace@example.com")
    );
    assert_eq!(header(&hs, "Cc"), Some("linus@example.com"));
    assert_eq!(header(&hs, "Bcc"), None, "Bcc must stay out of the headers");
    assert!(!data.contains("audit@example.com"));
    assert_eq!(header(&hs, "Subject"), Some("Order 42 shipped"));
    assert_eq!(
        header(&hs, "Message-ID"),
        out["message_id"].as_str(),
        "{data}"
    );
    assert!(
        header(&hs, "Content-Type").is_some_and(|v| v.starts_with("text/plain")),
        "{data}"
    );
    assert!(header(&hs, "Date").is_some());
    let b = body(&data);
    assert!(b.contains("Hello Ada,\r\nyour order shipped.\r\n"), "{b:?}");
    assert!(b.contains("\r\n.leading dot line"), "dot-stuffing: {b:?}");
    assert!(s.quit, "the connection should end with QUIT");
}

#[tokio::test]
async fn without_login_sends_no_auth_and_html_and_non_string_subject_work() {
    let server = SmtpServer::start(Behavior::default()).await;
    let mut creds = credentials(server.port, false);
    creds.insert("port".into(), json!(server.port)); // a number works as well as a string
    let out = run(
        json!({
            "from": "ops@example.com",
            "to": "ada@example.com, grace@example.com",
            "subject": 42,
            "body": {"k": [1, 2]},
            "html": true,
            "security": "none",
        }),
        Some(creds),
    )
    .await
    .unwrap();
    assert_eq!(out["subject"], json!("42"));
    assert_eq!(out["to"], json!(["ada@example.com", "grace@example.com"]));
    assert_eq!(out["cc"], json!([]));
    assert_eq!(out["bcc"], json!([]));
    assert_eq!(out["recipients"], json!(2));

    let s = server.delivered();
    assert_eq!(s.auth, None);
    assert_eq!(s.rcpt_to, ["ada@example.com", "grace@example.com"]);
    let data = s.data.unwrap();
    let hs = headers(&data);
    assert_eq!(header(&hs, "Subject"), Some("42"));
    assert!(
        header(&hs, "Content-Type").is_some_and(|v| v.starts_with("text/html")),
        "{data}"
    );
    assert!(body(&data).contains(r#"{"k":[1,2]}"#), "{data}");
}

#[tokio::test]
async fn rejected_recipient_fails_permanently_and_4xx_transiently() {
    let server = SmtpServer::start(Behavior {
        reject_rcpt: vec![
            ("nobody@example.com", "550 5.1.1 No such user here"),
            ("busy@example.com", "450 4.2.1 Mailbox busy, try later"),
        ],
        ..Behavior::default()
    })
    .await;
    let params = |to: &str| json!({"from": "ops@example.com", "to": ["ada@example.com", to], "subject": "s", "security": "none"});

    let err = run(
        params("nobody@example.com"),
        Some(credentials(server.port, true)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::SmtpFailed);
    assert!(!err.retryable);
    assert!(err.message.contains("550"), "{}", err.message);
    assert!(err.message.contains("No such user"), "{}", err.message);
    assert!(!err.message.contains(PASSWORD));

    let err = run(
        params("busy@example.com"),
        Some(credentials(server.port, true)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::SmtpFailed);
    assert!(err.retryable, "a 4xx reply may pass on retry: {err:?}");
    assert!(err.message.contains("450"), "{}", err.message);

    assert!(server.sessions().iter().all(|s| s.data.is_none()));
}

#[tokio::test]
async fn wrong_password_fails_without_retry_or_echo() {
    let server = SmtpServer::start(Behavior::default()).await;
    let mut creds = credentials(server.port, true);
    creds.insert("password".into(), json!("wrong-horse-battery"));
    let err = run(
        json!({"from": "ops@example.com", "to": "ada@example.com", "subject": "s", "security": "none"}),
        Some(creds),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::SmtpFailed);
    assert!(!err.retryable);
    assert!(err.message.contains("535"), "{}", err.message);
    assert!(!err.message.contains("wrong-horse-battery"));
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].auth.as_ref().map(|a| a.2.as_str()),
        Some("wrong-horse-battery")
    );
    assert!(sessions[0].mail_from.is_none());
}

#[tokio::test]
async fn silent_server_times_out() {
    let server = SmtpServer::start(Behavior {
        silent: true,
        ..Behavior::default()
    })
    .await;
    let started = Instant::now();
    let err = run(
        json!({"from": "ops@example.com", "to": "ada@example.com", "subject": "s", "security": "none", "timeout": 0.5}),
        Some(credentials(server.port, true)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::SmtpTimeout, "{err:?}");
    assert!(err.retryable);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn cancellation_interrupts_a_stalled_send() {
    let server = SmtpServer::start(Behavior {
        stall_after_data: true,
        ..Behavior::default()
    })
    .await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let err = run_with(
        json!({"from": "ops@example.com", "to": "ada@example.com", "subject": "s", "security": "none", "timeout": 30}),
        Some(credentials(server.port, true)),
        &cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Cancelled);
    assert!(!err.retryable);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The message reached the server before the cancellation.
    assert!(server.delivered().data.is_some());

    // Already cancelled: nothing is sent.
    let server = SmtpServer::start(Behavior::default()).await;
    let err = run_with(
        json!({"from": "ops@example.com", "to": "ada@example.com", "subject": "s", "security": "none"}),
        Some(credentials(server.port, false)),
        &cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Cancelled);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(server.sessions().iter().all(|s| s.mail_from.is_none()));
}

#[tokio::test]
async fn refused_connection_is_retryable() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let err = run(
        json!({"from": "ops@example.com", "to": "ada@example.com", "subject": "s", "security": "none", "timeout": 5}),
        Some(credentials(port, true)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::SmtpFailed, "{err:?}");
    assert!(err.retryable);
    assert!(
        err.message.contains(&format!("127.0.0.1:{port}")),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn default_security_never_downgrades_to_plain_text() {
    // Not port 465, so STARTTLS is required; the test server does not offer it.
    let server = SmtpServer::start(Behavior::default()).await;
    let err = run(
        json!({"from": "ops@example.com", "to": "ada@example.com", "subject": "s", "timeout": 5}),
        Some(credentials(server.port, true)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::SmtpFailed, "{err:?}");
    assert!(!err.retryable);
    assert!(
        server
            .sessions()
            .iter()
            .all(|s| s.auth.is_none() && s.data.is_none())
    );
}

#[tokio::test]
async fn invalid_parameters_and_credentials_are_named() {
    let creds = Some(credentials(2525, true));
    let err = run(
        json!({"from": "ops@example.com", "to": ["ada@example.com", "x"], "subject": "s"}),
        creds.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameter);
    assert_eq!(err.message, r#"to[1]: "x" is not an email address"#);
    assert!(!err.retryable);

    let err = run(
        json!({"from": "ops@example.com", "to": "ada@example.com", "cc": ["not an address"], "subject": "s"}),
        creds.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        r#"cc[0]: "not an address" is not an email address"#
    );

    let err = run(
        json!({"to": "ada@example.com", "subject": "s"}),
        creds.clone(),
    )
    .await
    .unwrap_err();
    assert!(err.message.contains("`from`"), "{}", err.message);

    let err = run(
        json!({"from": "ops@example.com", "to": "ada@example.com"}),
        creds.clone(),
    )
    .await
    .unwrap_err();
    assert!(err.message.contains("`subject`"), "{}", err.message);

    let err = run(
        json!({"from": "ops@example.com", "to": "ada@example.com", "subject": "s", "security": "ssl3"}),
        creds.clone(),
    )
    .await
    .unwrap_err();
    assert!(err.message.contains("`security`"), "{}", err.message);

    let ok = json!({"from": "ops@example.com", "to": "ada@example.com", "subject": "s"});
    let err = run(ok.clone(), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCredentials);
    assert!(!err.retryable);

    let mut no_host = credentials(2525, true);
    no_host.remove("host");
    let err = run(ok.clone(), Some(no_host)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCredentials);
    assert!(err.message.contains("`host`"), "{}", err.message);
    assert!(!err.message.contains(PASSWORD));

    let mut no_password = credentials(2525, true);
    no_password.remove("password");
    let err = run(ok.clone(), Some(no_password)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCredentials);
    assert!(err.message.contains("`password`"), "{}", err.message);

    let mut bad_port = credentials(2525, true);
    bad_port.insert("port".into(), json!("smtp"));
    let err = run(ok, Some(bad_port)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidCredentials);
    assert!(err.message.contains("`port`"), "{}", err.message);
    assert!(!err.message.contains(PASSWORD));
}
