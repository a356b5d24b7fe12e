//! The `smtp` node: sends one email per run through an SMTP server, Rune-compatible parameters,
//! credentials and output.
//!
//! Unlike Rune's node it has a timeout, honours cancellation, supports STARTTLS, implicit TLS
//! and plain connections, and reports whether a failure is worth retrying. Retries are the
//! engine's job: this node makes exactly one attempt.
//!
//! Its connection goes through the egress guard ([`crate::egress`]): the SMTP host is resolved
//! and checked like an `http` node's, a denied host fails with `EGRESS_DENIED`, and every
//! connection failure reads `could not connect to host:port`, whatever the reason.
//!
//! The `Message-ID` is derived from the run's idempotency key, so a redelivered or retried run
//! sends the same `Message-ID` and receivers that deduplicate on it see one message.

mod session;

use crate::egress::{EgressError, EgressPolicy, Guard};
use crate::params::{param, timeout_secs};
use baton_core::ErrorCode;
use baton_core::value::kind_name;
use session::{Security, deliver};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Mailboxes};
use serde_json::{Map, Value, json};

const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
/// Upper bound for the `timeout` parameter (one hour).
const MAX_TIMEOUT_SECS: f64 = 3_600.0;
const DEFAULT_PORT: u16 = 587;
const IMPLICIT_TLS_PORT: u16 = 465;

/// Sends one email per run. Each run opens its own connection (credentials differ per node).
#[derive(Debug)]
pub struct SmtpNode {
    spec: NodeSpec,
    egress: EgressPolicy,
}

impl SmtpNode {
    /// The node under [`EgressPolicy::embedded`] (every host reachable): embedded runs, tests.
    pub fn new() -> Self {
        Self::with_policy(EgressPolicy::embedded())
    }

    /// The node connecting only where `egress` allows (the worker pool's policy).
    pub fn with_policy(egress: EgressPolicy) -> Self {
        Self {
            spec: spec(),
            egress,
        }
    }
}

impl Default for SmtpNode {
    fn default() -> Self {
        Self::new()
    }
}

fn spec() -> NodeSpec {
    NodeSpec {
        type_name: "smtp",
        aliases: Vec::new(),
        class: NodeClass::Action,
        summary: "Sends one email through an SMTP server (credentials: host, port, username, password); the host obeys the worker's egress policy like the http node's (EGRESS_DENIED).",
        params: vec![
            ParamSpec::required(
                "from",
                ParamKind::String,
                "Sender address, e.g. \"ops@example.com\" or \"Ops <ops@example.com>\".",
            ),
            ParamSpec::required(
                "to",
                ParamKind::StringOrArray,
                "Recipient address(es): one address, a comma-separated list, or an array.",
            ),
            ParamSpec::optional("cc", ParamKind::StringOrArray, "Carbon-copy address(es)."),
            ParamSpec::optional(
                "bcc",
                ParamKind::StringOrArray,
                "Blind-copy address(es): in the envelope, never in the headers.",
            ),
            ParamSpec::required(
                "subject",
                ParamKind::Any,
                "Subject line; a non-string value is sent as its JSON text.",
            ),
            ParamSpec::optional(
                "body",
                ParamKind::Any,
                "Message body; a non-string value is sent as its JSON text (default empty).",
            ),
            ParamSpec::optional(
                "html",
                ParamKind::Boolean,
                "Send the body as text/html instead of text/plain (default false).",
            ),
            ParamSpec::optional(
                "security",
                ParamKind::Enum(vec!["starttls", "tls", "none"]),
                "starttls (required STARTTLS), tls (implicit TLS) or none (plain, for local servers); default tls on port 465, else starttls.",
            ),
            ParamSpec::optional(
                "timeout",
                ParamKind::Number,
                "Timeout for the whole exchange in seconds (default 30).",
            )
            .range(0.001, MAX_TIMEOUT_SECS),
        ],
        output: r#"{"success": true, "message": "Email sent successfully", "from": "...", "to": ["..."], "cc": [...], "bcc": [...], "subject": "...", "duration_ms": 12, "recipients": 3, "message_id": "<...>"}"#,
        raw_params: vec![],
        example: r#"{"from": "ops@example.com", "to": ["{{$input.email}}"], "subject": "Order {{$input.order_id}} shipped", "body": "It is on its way."}"#,
        pure: false,
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// A fully validated email, built before anything is sent.
#[derive(Debug)]
struct Email {
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    subject: String,
    body: String,
    html: bool,
    security: Option<Security>,
    timeout: Duration,
}

/// Where and how to connect.
#[derive(Debug)]
struct Server {
    host: String,
    port: u16,
    /// `(username, password)`; `None` sends no `AUTH`.
    login: Option<(String, String)>,
}

/// Strings as is, anything else as its JSON text (`null` as empty).
fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn not_an_address(name: &str, text: &str) -> NodeError {
    NodeError::invalid(format!("{name}: {text:?} is not an email address"))
}

/// One address (`a@x` or `Name <a@x>`), or a comma-separated list of them.
fn parse_addresses(name: &str, text: &str) -> Result<Vec<Mailbox>, NodeError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(NodeError::invalid(format!(
            "{name}: an empty string is not an email address"
        )));
    }
    if let Ok(mailbox) = text.parse::<Mailbox>() {
        return Ok(vec![mailbox]);
    }
    match text.parse::<Mailboxes>() {
        Ok(list) if list.iter().next().is_some() => Ok(list.into_iter().collect()),
        _ => Err(not_an_address(name, text)),
    }
}

/// A string or an array of strings; `required` demands at least one address.
fn parse_recipients(params: &Value, name: &str, required: bool) -> Result<Vec<Mailbox>, NodeError> {
    let out = match param(params, name) {
        None => Vec::new(),
        Some(Value::String(s)) if s.trim().is_empty() && !required => Vec::new(),
        Some(Value::String(s)) => parse_addresses(name, s)?,
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let label = format!("{name}[{i}]");
                match item {
                    Value::String(s) => out.extend(parse_addresses(&label, s)?),
                    other => {
                        return Err(NodeError::invalid(format!(
                            "{label}: expected an email address string, got {}",
                            kind_name(other)
                        )));
                    }
                }
            }
            out
        }
        Some(other) => {
            return Err(NodeError::invalid(format!(
                "parameter `{name}` must be a string or an array of strings, got {}",
                kind_name(other)
            )));
        }
    };
    if required && out.is_empty() {
        return Err(NodeError::invalid(format!(
            "parameter `{name}` is required: expected at least one email address"
        )));
    }
    Ok(out)
}

fn parse_bool(params: &Value, name: &str) -> Result<bool, NodeError> {
    match param(params, name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        // Templates resolve to strings; accept the obvious spellings.
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" | "" => Ok(false),
            _ => Err(NodeError::invalid(format!(
                "parameter `{name}` must be a boolean, got {s:?}"
            ))),
        },
        Some(other) => Err(NodeError::invalid(format!(
            "parameter `{name}` must be a boolean, got {}",
            kind_name(other)
        ))),
    }
}

fn parse_security(params: &Value) -> Result<Option<Security>, NodeError> {
    match param(params, "security") {
        None => Ok(None),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "starttls" => Ok(Some(Security::StartTls)),
            "tls" | "ssl" => Ok(Some(Security::Tls)),
            "none" => Ok(Some(Security::None)),
            _ => Err(NodeError::invalid(format!(
                "parameter `security` must be one of starttls, tls, none, got {s:?}"
            ))),
        },
        Some(other) => Err(NodeError::invalid(format!(
            "parameter `security` must be one of starttls, tls, none, got {}",
            kind_name(other)
        ))),
    }
}

fn parse_timeout(v: Option<&Value>) -> Result<Duration, NodeError> {
    timeout_secs(v, DEFAULT_TIMEOUT_SECS, MAX_TIMEOUT_SECS)
}

fn parse_email(params: &Value) -> Result<Email, NodeError> {
    if !params.is_object() {
        return Err(NodeError::invalid(format!(
            "the smtp node's parameters must be an object, got {}",
            kind_name(params)
        )));
    }
    let from = match param(params, "from") {
        None => {
            return Err(NodeError::invalid(
                "parameter `from` is required: expected the sender's email address",
            ));
        }
        Some(Value::String(s)) => {
            let s = s.trim();
            s.parse::<Mailbox>()
                .map_err(|_| not_an_address("from", s))?
        }
        Some(other) => {
            return Err(NodeError::invalid(format!(
                "parameter `from` must be an email address string, got {}",
                kind_name(other)
            )));
        }
    };
    let to = parse_recipients(params, "to", true)?;
    let cc = parse_recipients(params, "cc", false)?;
    let bcc = parse_recipients(params, "bcc", false)?;
    let subject = match param(params, "subject") {
        None => {
            return Err(NodeError::invalid("parameter `subject` is required"));
        }
        // A header is one line: fold any line breaks into spaces.
        Some(v) => text_of(v).replace(['\r', '\n'], " "),
    };
    let body = param(params, "body").map(text_of).unwrap_or_default();
    Ok(Email {
        from,
        to,
        cc,
        bcc,
        subject,
        body,
        html: parse_bool(params, "html")?,
        security: parse_security(params)?,
        timeout: parse_timeout(param(params, "timeout"))?,
    })
}

fn invalid_credentials(message: impl Into<String>) -> NodeError {
    NodeError {
        message: message.into(),
        code: ErrorCode::InvalidCredentials,
        retryable: false,
    }
}

/// A non-empty string credential value (numbers accepted as text); never echoes the value.
fn credential_text(
    credentials: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, NodeError> {
    match credentials.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(invalid_credentials(format!(
            "`smtp` credentials: `{field}` must be a string, got {}",
            kind_name(other)
        ))),
    }
}

fn parse_server(credentials: Option<&Map<String, Value>>) -> Result<Server, NodeError> {
    let Some(credentials) = credentials else {
        return Err(invalid_credentials(
            "the smtp node needs `smtp` credentials (host, port, username, password)",
        ));
    };
    let host = credential_text(credentials, "host")?
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid_credentials("`smtp` credentials need a non-empty `host` value"))?;
    let port = match credentials.get("port") {
        None | Some(Value::Null) => DEFAULT_PORT,
        Some(Value::String(s)) if s.trim().is_empty() => DEFAULT_PORT,
        Some(Value::String(s)) => {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    invalid_credentials(format!(
                        "`smtp` credentials: `port` must be a port number (1-65535), got {s:?}"
                    ))
                })?
        }
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                invalid_credentials(format!(
                    "`smtp` credentials: `port` must be a port number (1-65535), got {n}"
                ))
            })?,
        Some(other) => {
            return Err(invalid_credentials(format!(
                "`smtp` credentials: `port` must be a port number, got {}",
                kind_name(other)
            )));
        }
    };
    let username = credential_text(credentials, "username")?;
    let password = credential_text(credentials, "password")?;
    let login = match (username, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid_credentials(
                "`smtp` credentials have a `username` but no `password`",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid_credentials(
                "`smtp` credentials have a `password` but no `username`",
            ));
        }
    };
    Ok(Server { host, port, login })
}

impl Server {
    /// The name TLS certificates must match: the host without IPv6 brackets.
    fn tls_name(&self) -> String {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    }
}

/// `<baton.{key}@{domain}>` with the key's characters outside `[A-Za-z0-9_-]` written as `=HH`
/// (an injective, RFC 5322 dot-atom-safe encoding).
fn message_id(idempotency_key: &str, from: &Mailbox) -> String {
    let mut left = String::from("baton.");
    for b in idempotency_key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            left.push(char::from(b));
        } else {
            let _ = write!(left, "={b:02X}");
        }
    }
    let domain = from.email.domain();
    let domain = if domain.is_empty() || domain.starts_with('[') {
        "baton.local"
    } else {
        domain
    };
    format!("<{left}@{domain}>")
}

fn build_message(email: &Email, id: &str) -> Result<Message, NodeError> {
    let mut builder = Message::builder()
        .from(email.from.clone())
        .subject(email.subject.clone())
        .message_id(Some(id.to_string()))
        .header(if email.html {
            ContentType::TEXT_HTML
        } else {
            ContentType::TEXT_PLAIN
        });
    for m in &email.to {
        builder = builder.to(m.clone());
    }
    for m in &email.cc {
        builder = builder.cc(m.clone());
    }
    for m in &email.bcc {
        builder = builder.bcc(m.clone());
    }
    builder
        .body(email.body.clone())
        .map_err(|e| NodeError::invalid(format!("cannot build the email: {e}")))
}

fn security_name(s: Security) -> &'static str {
    match s {
        Security::StartTls => "starttls",
        Security::Tls => "tls",
        Security::None => "none",
    }
}

fn timeout_error(server: &Server, timeout: Duration) -> NodeError {
    NodeError::new(
        ErrorCode::SmtpTimeout,
        format!(
            "SMTP exchange with {}:{} timed out after {}s",
            server.host,
            server.port,
            timeout.as_secs_f64()
        ),
    )
}

/// A connection the egress guard did not open: denied (never retried), or unreachable (the
/// same message for refused, closed and filtered targets).
fn egress_error(e: EgressError, server: &Server) -> NodeError {
    match e {
        EgressError::Denied(denied) => NodeError {
            message: format!("SMTP connection refused: {denied}"),
            code: ErrorCode::EgressDenied,
            retryable: false,
        },
        other => NodeError {
            message: format!(
                "cannot reach the SMTP server ({}:{}): {other}",
                server.host, server.port
            ),
            code: ErrorCode::SmtpFailed,
            retryable: true,
        },
    }
}

/// Classifies a send failure: connection trouble and 4xx replies may pass, 5xx replies,
/// authentication, TLS and protocol failures will not.
fn send_error(e: &lettre::transport::smtp::Error, server: &Server, timeout: Duration) -> NodeError {
    if e.is_timeout() {
        return timeout_error(server, timeout);
    }
    let target = format!("{}:{}", server.host, server.port);
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = s.source();
    }
    let (what, retryable) = if e.is_transient() {
        ("SMTP send failed", true)
    } else if e.is_permanent() {
        ("SMTP send failed", false)
    } else if e.is_tls() {
        ("TLS failure", false)
    } else if e.is_client() || e.is_response() {
        ("SMTP protocol failure", false)
    } else {
        ("cannot reach the SMTP server", true)
    };
    NodeError {
        message: format!("{what} ({target}): {detail}"),
        code: ErrorCode::SmtpFailed,
        retryable,
    }
}

fn mailbox_list(list: &[Mailbox]) -> Value {
    Value::Array(list.iter().map(|m| Value::String(m.to_string())).collect())
}

#[async_trait]
impl Node for SmtpNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let email = parse_email(input.params)?;
        let server = parse_server(input.credentials)?;
        // A vault credential goes only to its `hosts`.
        if let Some(used) = input.used_credential {
            used.check_host(&server.host)?;
        }
        let security = email
            .security
            .unwrap_or(if server.port == IMPLICIT_TLS_PORT {
                Security::Tls
            } else {
                Security::StartTls
            });
        let id = message_id(input.idempotency_key, &email.from);
        let message = build_message(&email, &id)?;
        let guard = Guard::new(self.egress.clone());

        tracing::debug!(
            execution_id = input.execution_id,
            node_id = input.node_id,
            host = %server.host,
            port = server.port,
            security = security_name(security),
            "sending email"
        );
        let started = Instant::now();
        let tls_name = server.tls_name();
        let exchange = async {
            let stream = guard
                .connect(&server.host, server.port, email.timeout)
                .await
                .map_err(|e| egress_error(e, &server))?;
            let left = email.timeout.saturating_sub(started.elapsed());
            let session = deliver(stream, &tls_name, security, server.login.as_ref(), &message);
            match tokio::time::timeout(left, session).await {
                Err(_elapsed) => Err(timeout_error(&server, email.timeout)),
                Ok(result) => result.map_err(|e| send_error(&e, &server, email.timeout)),
            }
        };
        // The connection is bounded by the guard (within the timeout), the session by what
        // is left of it.
        let result = tokio::select! {
            biased;
            () = input.cancel.cancelled() => {
                return Err(NodeError {
                    message: format!(
                        "sending email cancelled ({}:{})",
                        server.host, server.port
                    ),
                    code: ErrorCode::Cancelled,
                    retryable: false,
                });
            }
            result = exchange => result,
        };
        result?;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

        Ok(NodeOutput::Value(json!({
            "success": true,
            "message": "Email sent successfully",
            "from": email.from.to_string(),
            "to": mailbox_list(&email.to),
            "cc": mailbox_list(&email.cc),
            "bcc": mailbox_list(&email.bcc),
            "subject": email.subject,
            "duration_ms": duration_ms,
            "recipients": email.to.len() + email.cc.len() + email.bcc.len(),
            "message_id": id,
        })))
    }
}

#[cfg(test)]
mod tests;
