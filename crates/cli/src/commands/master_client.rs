//! The master's HTTP API as the CLI uses it (`--master URL` / `BATON_MASTER_URL`, bearer token
//! `--token` / `BATON_API_TOKEN`): JSON requests whose error bodies become readable errors (the
//! master's `error.message` and every `problems` entry), and an execution's Server-Sent Events
//! followed to its completion.

use std::collections::HashSet;
use std::time::Duration;

use baton_core::message::{Completion, StatusEvent};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// `--master URL` and `--token TOKEN`: where the master's API is and how to authenticate;
/// every command that talks to a master takes both.
#[derive(Args, Clone, Default)]
pub struct MasterTarget {
    /// Master URL (e.g. http://127.0.0.1:8080): talk to its HTTP API.
    #[arg(long = "master", env = "BATON_MASTER_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token for the master's API (one of its BATON_API_TOKENS).
    #[arg(
        long = "token",
        env = "BATON_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

impl std::fmt::Debug for MasterTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterTarget")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl MasterTarget {
    /// Whether a master is named (then the command goes through its API).
    pub fn is_set(&self) -> bool {
        self.url.as_deref().is_some_and(|u| !u.trim().is_empty())
    }

    /// The client, or an error saying how to name the master.
    pub fn required(&self) -> Result<MasterClient, MasterError> {
        match self.url.as_deref().filter(|u| !u.trim().is_empty()) {
            Some(url) => MasterClient::new(url, self.token.as_deref()),
            None => Err(MasterError::Usage(
                "this command talks to a master: pass --master URL or set BATON_MASTER_URL".into(),
            )),
        }
    }
}

/// One entry of a 422 answer's `problems`.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// A request the master did not fulfil.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the master at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{}", api_text(*status, code, message, problems, *token_set))]
    Api {
        status: u16,
        code: String,
        message: String,
        problems: Vec<Problem>,
        token_set: bool,
    },
    #[error("the master at {url} answered something unexpected: {reason}")]
    Protocol { url: String, reason: String },
}

fn api_text(
    status: u16,
    code: &str,
    message: &str,
    problems: &[Problem],
    token_set: bool,
) -> String {
    let mut text = format!("the master answered {status} ({code}): {message}");
    for p in problems {
        text.push_str(&format!("\n  {}: {}", p.path, p.message));
    }
    if status == 401 && !token_set {
        text.push_str(
            "\n  (pass --token or set BATON_API_TOKEN to one of the master's BATON_API_TOKENS)",
        );
    }
    text
}

/// The innermost cause of a transport error ("Connection refused", "dns error: …").
fn root_cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    let inner = source.to_string();
    if e.is_timeout() {
        format!("timed out ({inner})")
    } else {
        inner
    }
}

/// Talks to one master. The token never appears in `Debug` output.
pub struct MasterClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for MasterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How long a plain request may take; event streams have no limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl MasterClient {
    pub fn new(url: &str, token: Option<&str>) -> Result<Self, MasterError> {
        let base = url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(MasterError::Usage(format!(
                "--master `{url}`: expected an http:// or https:// URL"
            )));
        }
        let token = token
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("baton-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MasterError::Usage(format!("HTTP client: {e}")))?;
        Ok(Self { base, token, http })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    fn unreachable(&self, e: &reqwest::Error) -> MasterError {
        MasterError::Unreachable {
            url: self.base.clone(),
            reason: root_cause(e),
        }
    }

    fn protocol(&self, reason: impl Into<String>) -> MasterError {
        MasterError::Protocol {
            url: self.base.clone(),
            reason: reason.into(),
        }
    }

    /// Sends `req`; a non-2xx answer becomes `MasterError::Api` with the master's message.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, MasterError> {
        let response = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(self.api_error(status, &body))
    }

    fn api_error(&self, status: StatusCode, body: &str) -> MasterError {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |key: &str| error.and_then(|e| e.get(key)).and_then(Value::as_str);
        let problems = error
            .and_then(|e| e.get("problems"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|p| Problem {
                        path: p["path"].as_str().unwrap_or("$").to_string(),
                        message: p["message"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let fallback = body.trim();
        MasterError::Api {
            status: status.as_u16(),
            code: text("code")
                .unwrap_or(status.canonical_reason().unwrap_or("error"))
                .to_string(),
            message: text("message")
                .map(str::to_string)
                .unwrap_or_else(|| match fallback {
                    "" => "(no message)".to_string(),
                    other => other.chars().take(500).collect(),
                }),
            problems,
            token_set: self.token.is_some(),
        }
    }

    async fn json_of(&self, response: reqwest::Response) -> Result<Value, MasterError> {
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| self.protocol(format!("not JSON: {e}")))
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, MasterError> {
        let req = self
            .request(Method::GET, path)
            .query(query)
            .timeout(REQUEST_TIMEOUT);
        let response = self.send(req).await?;
        self.json_of(response).await
    }

    /// POSTs `body`; `headers` are extra request headers (e.g. `Idempotency-Key`).
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<Value, MasterError> {
        let mut req = self
            .request(Method::POST, path)
            .json(body)
            .timeout(REQUEST_TIMEOUT);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = self.send(req).await?;
        self.json_of(response).await
    }

    /// Opens `GET /executions/{id}/events`.
    async fn open_events(&self, execution_id: &str) -> Result<reqwest::Response, MasterError> {
        let req = self
            .request(
                Method::GET,
                &format!("/executions/{}/events", segment(execution_id)),
            )
            .header("Accept", "text/event-stream");
        self.send(req).await
    }

    /// Follows an execution's events until its completion: every status event (history first,
    /// then live; each at most once, even across reconnects) goes to `on_status`. A stream that
    /// drops is reopened a few times, since the master replays the history on connect.
    pub async fn follow(
        &self,
        execution_id: &str,
        mut on_status: impl FnMut(&StatusEvent),
    ) -> Result<Completion, MasterError> {
        const REOPENS: u32 = 5;
        let mut seen: HashSet<String> = HashSet::new();
        let mut reopened = 0;
        loop {
            let mut response = self.open_events(execution_id).await?;
            let mut parser = SseParser::default();
            loop {
                let chunk = match response.chunk().await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(e) if reopened < REOPENS => {
                        tracing::debug!(error = %e, "event stream dropped");
                        break;
                    }
                    Err(e) => return Err(self.unreachable(&e)),
                };
                for event in parser.push(&chunk) {
                    match event.event.as_str() {
                        "status" => {
                            if !seen.insert(event.data.clone()) {
                                continue;
                            }
                            match serde_json::from_str::<StatusEvent>(&event.data) {
                                Ok(status) => on_status(&status),
                                Err(e) => tracing::debug!(error = %e, "unreadable status event"),
                            }
                        }
                        "completion" => {
                            return serde_json::from_str::<Completion>(&event.data).map_err(|e| {
                                self.protocol(format!("unreadable completion event: {e}"))
                            });
                        }
                        _ => {}
                    }
                }
            }
            if reopened >= REOPENS {
                return Err(self.protocol(format!(
                    "the event stream of execution `{execution_id}` ended {} times without a \
                     completion",
                    reopened + 1
                )));
            }
            reopened += 1;
            tokio::time::sleep(Duration::from_millis(500 * u64::from(reopened))).await;
        }
    }
}

/// A path segment with the characters that would change the path escaped.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseEvent {
    /// The `event:` field (`message` when absent).
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Incremental `text/event-stream` parser: feed it chunks as they arrive (a line may be split
/// across chunks); it returns each event once its terminating blank line has arrived.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if !self.data.is_empty() || self.event.is_some() {
                    events.push(SseEvent {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment (keep-alive)
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.event = Some(value.to_string()),
                "data" => self.data.push(value.to_string()),
                _ => {} // id, retry: not needed here
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_crlf_lines_are_reassembled() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nevent: sta").is_empty());
        assert!(p.push(b"tus\r\ndata: {\"a\":").is_empty());
        let got = p.push(b"1}\r\n\r\ndata: x\ndata: y\n\n");
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: "status".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: "message".into(),
                    data: "x\ny".into()
                },
            ]
        );
    }

    #[test]
    fn an_error_body_becomes_a_message_with_every_problem() {
        let client = MasterClient::new("http://127.0.0.1:1/", None).unwrap();
        let body = r#"{"error": {"code": "invalid_workflow", "message": "2 problems",
            "problems": [{"path": "$.nodes[0].type", "message": "unknown node type"},
                         {"path": "$.edges[1].dst", "message": "missing node"}]}}"#;
        let text = client
            .api_error(StatusCode::UNPROCESSABLE_ENTITY, body)
            .to_string();
        assert!(text.starts_with("the master answered 422 (invalid_workflow): 2 problems"));
        assert!(
            text.contains("\n  $.nodes[0].type: unknown node type"),
            "{text}"
        );
        assert!(text.contains("\n  $.edges[1].dst: missing node"), "{text}");
        let text = client
            .api_error(StatusCode::BAD_GATEWAY, "upstream down")
            .to_string();
        assert!(
            text.contains("502") && text.contains("upstream down"),
            "{text}"
        );
    }

    #[test]
    fn ids_are_escaped_as_path_segments() {
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("0190-ab_c.d"), "0190-ab_c.d");
    }
}
