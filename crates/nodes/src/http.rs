//! The `http` node: one HTTP request per run, Rune-compatible parameters and output.
//!
//! Retries are the engine's job (the node-level `retry` policy): this node makes exactly one
//! attempt and reports through [`NodeError::retryable`] whether another attempt could help
//! (`retry_on` chooses which statuses count). Hardening: a streamed response size cap
//! (`max_response_bytes`), a redirect policy (`follow_redirects`, `max_redirects`) and an SSRF
//! guard ([`guard`] over [`crate::egress`]: `allowed_hosts`, `denied_hosts` and the
//! process-wide [`HttpPolicy`]). A failed connection reports `could not connect to host:port`
//! whatever the reason (refused, closed, filtered, timed out), as every connector does.

pub mod guard;
mod hardening;

use crate::params::{param, timeout_secs};
use baton_core::ErrorCode;
use baton_core::value::kind_name;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_engine::{Node, NodeError, NodeInput, NodeOutput, ScopeDenied, UsedCredential};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value, json};

use crate::egress::{EgressError, Guard};
pub use crate::egress::{EgressPolicy, HostDenied, HostRule};
pub use guard::{DEFAULT_MAX_RESPONSE_BYTES, HttpPolicy};
use guard::{GuardedResolver, TooManyRedirects, check_url, redirect_policy};
use hardening::{Hardening, parse_hardening, retry_after};

/// Responses with a larger body than `max_response_bytes` (by default this) fail with
/// `HTTP_BODY_TOO_LARGE`.
pub const MAX_RESPONSE_BYTES: usize = DEFAULT_MAX_RESPONSE_BYTES;

const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
/// Upper bound for the `timeout` parameter (one day).
const MAX_TIMEOUT_SECS: f64 = 86_400.0;
const DEFAULT_MAX_REDIRECTS: usize = 10;
/// Upper bound for the `max_redirects` parameter.
const MAX_REDIRECTS_LIMIT: usize = 50;
/// A `Retry-After` longer than this is waited for this long only.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Distinct (host lists, redirect settings, `ignore_ssl`) combinations that keep their own
/// pooled client; past this the cache starts over.
const MAX_CACHED_CLIENTS: usize = 64;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const ALLOWED_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Sends one HTTP request. Keeps one pooled client per distinct combination of host lists,
/// redirect settings and `ignore_ssl` (in practice: one per workflow node), each with the
/// guard's DNS resolver and redirect policy built in.
#[derive(Debug)]
pub struct HttpNode {
    policy: HttpPolicy,
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
    spec: NodeSpec,
}

/// Everything a client's configuration depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    ignore_ssl: bool,
    /// The policy's connect timeout, lowered below the request's `timeout` so that a target
    /// that cannot be reached is reported as such, not as a timed-out request.
    connect_timeout: Duration,
    follow_redirects: bool,
    max_redirects: usize,
    guard: Guard,
    /// The vault credential the requests carry: redirects must stay within its `hosts`.
    credential: Option<UsedCredential>,
}

/// A client enforcing `key` (rustls, the egress policy's connect timeout, pooled keep-alive
/// connections).
fn build_client(key: &ClientKey) -> Result<reqwest::Client, reqwest::Error> {
    let guard = Arc::new(key.guard.clone());
    reqwest::Client::builder()
        .tls_backend_rustls()
        .connect_timeout(key.connect_timeout)
        .redirect(redirect_policy(
            &guard,
            key.follow_redirects,
            key.max_redirects,
            key.credential.clone(),
        ))
        .dns_resolver(Arc::new(GuardedResolver { guard }))
        .danger_accept_invalid_certs(key.ignore_ssl)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_keepalive(TCP_KEEPALIVE)
        .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl HttpNode {
    /// The node under [`HttpPolicy::embedded`] (private networks allowed), as before policies
    /// existed.
    ///
    /// # Panics
    ///
    /// If the TLS backend cannot be initialised; use [`HttpNode::try_new`] to handle that.
    pub fn new() -> Self {
        Self::with_policy(HttpPolicy::embedded())
    }

    /// The node under `policy`.
    ///
    /// # Panics
    ///
    /// If the TLS backend cannot be initialised; use [`HttpNode::try_with_policy`].
    pub fn with_policy(policy: HttpPolicy) -> Self {
        Self::try_with_policy(policy)
            .unwrap_or_else(|e| panic!("cannot build the HTTP client: {e}"))
    }

    /// Like [`HttpNode::new`], returning the client build error instead of panicking.
    pub fn try_new() -> Result<Self, reqwest::Error> {
        Self::try_with_policy(HttpPolicy::embedded())
    }

    /// Like [`HttpNode::with_policy`]; builds the default client now so that a TLS backend
    /// problem shows at startup.
    pub fn try_with_policy(policy: HttpPolicy) -> Result<Self, reqwest::Error> {
        let node = Self {
            clients: Mutex::new(HashMap::new()),
            spec: spec(),
            policy,
        };
        let key = node.client_key(
            false,
            Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS),
            true,
            DEFAULT_MAX_REDIRECTS,
            Vec::new(),
            Vec::new(),
        );
        let client = build_client(&key)?;
        node.lock_clients().insert(key, client);
        Ok(node)
    }

    /// The process-wide policy this node obeys.
    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    fn client_key(
        &self,
        ignore_ssl: bool,
        timeout: Duration,
        follow_redirects: bool,
        max_redirects: usize,
        allowed: Vec<HostRule>,
        denied: Vec<HostRule>,
    ) -> ClientKey {
        // Whole milliseconds keep the keys of equal timeouts equal.
        let below_timeout = Duration::from_millis(
            u64::try_from(timeout.as_millis().saturating_mul(9) / 10).unwrap_or(u64::MAX),
        );
        ClientKey {
            ignore_ssl,
            connect_timeout: self.policy.egress.connect_timeout.min(below_timeout),
            follow_redirects,
            max_redirects,
            guard: Guard {
                policy: self.policy.egress.clone(),
                allowed,
                denied,
            },
            credential: None,
        }
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, reqwest::Client>> {
        // A panic while holding the lock cannot leave the map inconsistent: keep using it.
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn client(&self, key: &ClientKey) -> Result<reqwest::Client, NodeError> {
        if let Some(client) = self.lock_clients().get(key) {
            return Ok(client.clone());
        }
        let client = build_client(key).map_err(|e| NodeError {
            message: format!("cannot build the HTTP client: {e}"),
            code: ErrorCode::HttpClient,
            retryable: false,
        })?;
        let mut clients = self.lock_clients();
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert(key.clone(), client.clone());
        Ok(client)
    }
}

impl Default for HttpNode {
    fn default() -> Self {
        Self::new()
    }
}

fn spec() -> NodeSpec {
    const RUNE_RETRY: &str = "Accepted for Rune compatibility; use the node-level `retry` policy.";
    NodeSpec {
        type_name: "http",
        aliases: Vec::new(),
        class: NodeClass::Action,
        summary: "Sends one HTTP request and returns the response status, headers and body.",
        params: vec![
            ParamSpec::optional(
                "method",
                ParamKind::String,
                "GET (default), POST, PUT, PATCH, DELETE, HEAD or OPTIONS; case-insensitive.",
            )
            .with_default("GET"),
            ParamSpec::required(
                "url",
                ParamKind::String,
                "Absolute http:// or https:// URL to call.",
            ),
            ParamSpec::optional(
                "query",
                ParamKind::Object,
                "Query parameters appended to the URL; string, number and boolean values are sent as text.",
            ),
            ParamSpec::optional(
                "headers",
                ParamKind::Object,
                "Request headers (string, number or boolean values); they win over credential headers.",
            ),
            ParamSpec::optional(
                "body",
                ParamKind::Any,
                "A string is sent as is, anything else as JSON; null or {} sends no body. Content-Type defaults to application/json.",
            ),
            ParamSpec::optional(
                "timeout",
                ParamKind::Number,
                "Timeout for the whole request in seconds, body included (default 30).",
            )
            .with_default("30")
            .range(0.001, MAX_TIMEOUT_SECS),
            ParamSpec::optional(
                "raise_on_status",
                ParamKind::String,
                "Statuses that fail the node, e.g. \"5xx\", \"4xx,5xx\" or \"404 or 500\"; otherwise every status succeeds.",
            ),
            ParamSpec::optional(
                "retry_on",
                ParamKind::Any,
                "Statuses that fail the node as retryable, e.g. [\"5xx\", \"429\"] or \"5xx,429\"; the node's `retry` policy then retries with backoff, after waiting out a `Retry-After` header (at most 60 s). When set, `raise_on_status` failures outside it are not retried.",
            ),
            ParamSpec::optional(
                "ignore_ssl",
                ParamKind::Boolean,
                "Skip TLS certificate verification (insecure; for self-signed endpoints only).",
            )
            .with_default("false"),
            ParamSpec::optional(
                "max_response_bytes",
                ParamKind::Integer,
                "Largest response body accepted, in bytes; a larger one fails with HTTP_BODY_TOO_LARGE as soon as it is exceeded. Capped by the process-wide limit.",
            )
            .with_default("10485760")
            .min(0.0),
            ParamSpec::optional(
                "follow_redirects",
                ParamKind::Boolean,
                "Follow 3xx redirects; when false the 3xx response is the output.",
            )
            .with_default("true"),
            ParamSpec::optional(
                "max_redirects",
                ParamKind::Integer,
                "Most redirects followed (0-50); one more fails with HTTP_TOO_MANY_REDIRECTS.",
            )
            .with_default("10")
            .range(0.0, 50.0),
            ParamSpec::optional(
                "allowed_hosts",
                ParamKind::StringOrArray,
                "Only these hosts may be called (redirects included): exact names, `*.suffix` wildcards, IP addresses or CIDR ranges. Others fail with HTTP_HOST_DENIED.",
            ),
            ParamSpec::optional(
                "denied_hosts",
                ParamKind::StringOrArray,
                "Hosts never called (redirects and resolved addresses included), same forms as `allowed_hosts`. On the worker pool every non-public address is denied anyway unless the worker's BATON_EGRESS_ALLOW lists it (loopback and cloud metadata: never); a failed connection reads `could not connect to host:port` whatever the reason.",
            ),
            ParamSpec::optional("retry", ParamKind::Any, RUNE_RETRY),
            ParamSpec::optional("retry_delay", ParamKind::Any, RUNE_RETRY),
        ],
        output: r#"{"status": 200, "status_text": "200 OK", "body": <parsed JSON, else the text, "" if empty>, "headers": {"Content-Type": "<first value>", ...}, "duration_ms": 12}"#,
        raw_params: vec![],
        example: r#"{"url": "https://api.example.com/orders", "method": "POST", "body": {"id": "{{ $json.id }}"}, "retry_on": ["5xx", "429"], "allowed_hosts": ["api.example.com"]}"#,
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// A fully validated request, built before anything is sent.
#[derive(Debug)]
struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    timeout: Duration,
    raise_on_status: Vec<StatusPattern>,
    ignore_ssl: bool,
    hardening: Hardening,
}

/// One entry of `raise_on_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusPattern {
    /// `4xx`: every status whose first digit is this.
    Class(u16),
    Exact(u16),
}

impl StatusPattern {
    fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Class(c) => status / 100 == c,
            StatusPattern::Exact(s) => status == s,
        }
    }
}

/// Strings as is, numbers and booleans as their JSON text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_request(
    params: &Value,
    credentials: Option<&Map<String, Value>>,
    idempotency_key: &str,
    policy: &HttpPolicy,
) -> Result<Request, NodeError> {
    if !(params.is_object() || params.is_null()) {
        return Err(NodeError::invalid(format!(
            "the http node's parameters must be an object, got {}",
            kind_name(params)
        )));
    }
    let method = parse_method(param(params, "method"))?;
    let mut url = parse_url(param(params, "url"))?;
    apply_query(&mut url, param(params, "query"))?;
    let mut headers = parse_headers(param(params, "headers"))?;
    let body = parse_body(param(params, "body"))?;
    let timeout = parse_timeout(param(params, "timeout"))?;
    let raise_on_status = parse_raise_on_status(param(params, "raise_on_status"))?;
    let ignore_ssl = parse_ignore_ssl(param(params, "ignore_ssl"))?;
    let hardening = parse_hardening(params, policy)?;

    apply_credentials(&mut headers, credentials)?;
    if !headers.contains_key(IDEMPOTENCY_KEY) && !idempotency_key.is_empty() {
        match HeaderValue::from_str(idempotency_key) {
            Ok(v) => {
                headers.insert(HeaderName::from_static(IDEMPOTENCY_KEY), v);
            }
            Err(_) => tracing::warn!("idempotency key is not a valid header value; not sent"),
        }
    }
    if body.is_some() && !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }

    Ok(Request {
        method,
        url,
        headers,
        body,
        timeout,
        raise_on_status,
        ignore_ssl,
        hardening,
    })
}

fn parse_method(v: Option<&Value>) -> Result<Method, NodeError> {
    let raw = match v {
        None => return Ok(Method::GET),
        Some(Value::String(s)) => s.trim(),
        Some(other) => {
            return Err(NodeError::invalid(format!(
                "parameter `method` must be a string, got {}",
                kind_name(other)
            )));
        }
    };
    if raw.is_empty() {
        return Ok(Method::GET);
    }
    let upper = raw.to_ascii_uppercase();
    if !ALLOWED_METHODS.contains(&upper.as_str()) {
        return Err(NodeError::invalid(format!(
            "parameter `method` must be one of {}, got {raw:?}",
            ALLOWED_METHODS.join(", ")
        )));
    }
    Method::from_bytes(upper.as_bytes()).map_err(|_| {
        NodeError::invalid(format!(
            "parameter `method`: {raw:?} is not a valid HTTP method"
        ))
    })
}

fn parse_url(v: Option<&Value>) -> Result<Url, NodeError> {
    const REQUIRED: &str = "parameter `url` is required: expected an absolute http(s) URL";
    let raw = match v {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
        None | Some(Value::String(_)) => return Err(NodeError::invalid(REQUIRED)),
        Some(other) => {
            return Err(NodeError::invalid(format!(
                "parameter `url` must be a string with an absolute http(s) URL, got {}",
                kind_name(other)
            )));
        }
    };
    let url = Url::parse(raw).map_err(|e| {
        NodeError::invalid(format!(
            "parameter `url` is not a valid absolute URL ({e}): {raw:?}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(NodeError::invalid(format!(
            "parameter `url` must be an http or https URL, got scheme `{}`",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(NodeError::invalid(format!(
            "parameter `url` has no host: {raw:?}"
        )));
    }
    Ok(url)
}

fn apply_query(url: &mut Url, v: Option<&Value>) -> Result<(), NodeError> {
    let Some(v) = v else { return Ok(()) };
    let Value::Object(map) = v else {
        return Err(NodeError::invalid(format!(
            "parameter `query` must be an object, got {}",
            kind_name(v)
        )));
    };
    let mut pairs = Vec::with_capacity(map.len());
    for (key, value) in map {
        let text = scalar_text(value).ok_or_else(|| {
            NodeError::invalid(format!(
                "parameter `query.{key}` must be a string, number or boolean, got {}",
                kind_name(value)
            ))
        })?;
        pairs.push((key, text));
    }
    if !pairs.is_empty() {
        let mut query = url.query_pairs_mut();
        for (key, text) in pairs {
            query.append_pair(key, &text);
        }
    }
    Ok(())
}

fn parse_headers(v: Option<&Value>) -> Result<HeaderMap, NodeError> {
    let mut headers = HeaderMap::new();
    let Some(v) = v else { return Ok(headers) };
    let Value::Object(map) = v else {
        return Err(NodeError::invalid(format!(
            "parameter `headers` must be an object, got {}",
            kind_name(v)
        )));
    };
    for (key, value) in map {
        let text = scalar_text(value).ok_or_else(|| {
            NodeError::invalid(format!(
                "parameter `headers.{key}` must be a string, number or boolean, got {}",
                kind_name(value)
            ))
        })?;
        let name = HeaderName::from_bytes(key.trim().as_bytes()).map_err(|_| {
            NodeError::invalid(format!(
                "parameter `headers.{key}`: {key:?} is not a valid header name"
            ))
        })?;
        let value = HeaderValue::from_str(&text).map_err(|_| {
            NodeError::invalid(format!(
                "parameter `headers.{key}` is not a valid header value (control characters?)"
            ))
        })?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// `None` when nothing is to be sent: absent, null, `{}` or `""`.
fn parse_body(v: Option<&Value>) -> Result<Option<Vec<u8>>, NodeError> {
    match v {
        None => Ok(None),
        Some(Value::Object(m)) if m.is_empty() => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone().into_bytes())),
        Some(other) => serde_json::to_vec(other).map(Some).map_err(|e| {
            NodeError::invalid(format!("parameter `body` cannot be encoded as JSON: {e}"))
        }),
    }
}

fn parse_timeout(v: Option<&Value>) -> Result<Duration, NodeError> {
    timeout_secs(v, DEFAULT_TIMEOUT_SECS, MAX_TIMEOUT_SECS)
}

fn parse_raise_on_status(v: Option<&Value>) -> Result<Vec<StatusPattern>, NodeError> {
    let text = match v {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(NodeError::invalid(format!(
                "parameter `raise_on_status` must be a string like \"4xx,5xx\" or \"404 or 500\", got {}",
                kind_name(other)
            )));
        }
    };
    // Rune joins patterns with `,`, ` or ` or ` and `; all of them mean "any of".
    let text = text.replace(" or ", ",").replace(" and ", ",");
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|token| {
            parse_status_pattern(token).ok_or_else(|| {
                NodeError::invalid(format!(
                    "parameter `raise_on_status`: {token:?} is not a status code (100-599) or class (1xx-5xx)"
                ))
            })
        })
        .collect()
}

fn parse_status_pattern(token: &str) -> Option<StatusPattern> {
    if let Some(digit) = token.strip_suffix("xx") {
        return match digit {
            "1" | "2" | "3" | "4" | "5" => digit.parse().ok().map(StatusPattern::Class),
            _ => None,
        };
    }
    token
        .parse::<u16>()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .map(StatusPattern::Exact)
}

fn parse_ignore_ssl(v: Option<&Value>) -> Result<bool, NodeError> {
    match v {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") || s.trim().is_empty() => {
            Ok(false)
        }
        Some(other) => Err(NodeError::invalid(format!(
            "parameter `ignore_ssl` must be a boolean, got {}",
            kind_name(other)
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

fn credential_error(message: String) -> NodeError {
    NodeError {
        message,
        code: ErrorCode::InvalidCredentials,
        retryable: false,
    }
}

/// A credential field as text (numbers and booleans allowed), `None` when absent or blank.
fn credential_field(creds: &Map<String, Value>, field: &str) -> Option<String> {
    creds
        .get(field)
        .and_then(scalar_text)
        .filter(|s| !s.trim().is_empty())
}

fn required_field(
    creds: &Map<String, Value>,
    kind: &str,
    field: &str,
) -> Result<String, NodeError> {
    credential_field(creds, field).ok_or_else(|| {
        credential_error(format!(
            "`{kind}` credentials need a non-empty `{field}` value"
        ))
    })
}

/// Adds the header a credential implies (§3.4 of the Rune reference), unless the request
/// already has that header. Never puts a secret into an error message.
fn apply_credentials(
    headers: &mut HeaderMap,
    creds: Option<&Map<String, Value>>,
) -> Result<(), NodeError> {
    let Some(creds) = creds else { return Ok(()) };
    let kind = creds
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (name, value) = match kind.as_str() {
        "basic_auth" => {
            let username = required_field(creds, &kind, "username")?;
            let password = creds
                .get("password")
                .and_then(scalar_text)
                .unwrap_or_default();
            (
                AUTHORIZATION,
                format!("Basic {}", BASE64.encode(format!("{username}:{password}"))),
            )
        }
        "header" => {
            let field = required_field(creds, &kind, "field")?;
            let value = creds.get("value").and_then(scalar_text).unwrap_or_default();
            (credential_header_name(&kind, &field)?, value)
        }
        "token" => (
            AUTHORIZATION,
            format!("Bearer {}", required_field(creds, &kind, "token")?),
        ),
        "oauth2" => {
            let token = required_field(creds, &kind, "access_token")?;
            let token_type = match credential_field(creds, "token_type") {
                // OAuth servers often answer `bearer`; some APIs only accept the canonical case.
                Some(t) if t.trim().eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
                Some(t) => t.trim().to_string(),
                None => "Bearer".to_string(),
            };
            (AUTHORIZATION, format!("{token_type} {token}"))
        }
        "api_key" => {
            let value = required_field(creds, &kind, "value")?;
            match credential_field(creds, "key") {
                Some(key) => (credential_header_name(&kind, &key)?, value),
                None => (AUTHORIZATION, format!("Bearer {value}")),
            }
        }
        "" => {
            tracing::warn!("http node credentials have no `type`; they are ignored");
            return Ok(());
        }
        other => {
            tracing::warn!(
                credential_type = other,
                "credential type is not used by the http node; ignored"
            );
            return Ok(());
        }
    };
    if headers.contains_key(&name) {
        return Ok(());
    }
    let mut value = HeaderValue::from_str(&value).map_err(|_| {
        credential_error(format!(
            "`{kind}` credentials produce an invalid `{name}` header value"
        ))
    })?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

fn credential_header_name(kind: &str, field: &str) -> Result<HeaderName, NodeError> {
    HeaderName::from_bytes(field.trim().as_bytes()).map_err(|_| {
        credential_error(format!(
            "`{kind}` credentials name an invalid header {field:?}"
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------------

/// The request line used in messages; a password in the URL is masked.
struct Target<'a> {
    method: &'a Method,
    url: String,
    /// Where the request first goes; an error elsewhere happened after a redirect.
    origin: (Option<String>, Option<u16>),
}

impl<'a> Target<'a> {
    fn new(method: &'a Method, url: &Url) -> Self {
        let mut url = url.clone();
        if url.password().is_some() {
            // Cannot fail: the URL already has a password, so it has a host.
            let _ = url.set_password(Some("***"));
        }
        Self {
            method,
            origin: origin_of(&url),
            url: url.to_string(),
        }
    }

    /// Whether `host` (as the guard names it) is the host first asked.
    fn is_host(&self, host: &str) -> bool {
        let bare = |h: &str| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .trim_end_matches('.')
                .to_ascii_lowercase()
        };
        self.origin
            .0
            .as_deref()
            .is_some_and(|h| bare(h) == bare(host))
    }

    /// Whether `e` concerns another host than the one first asked (a redirect target).
    fn redirected(&self, e: &reqwest::Error) -> bool {
        e.is_redirect() || e.url().is_some_and(|u| origin_of(u) != self.origin)
    }
}

fn origin_of(url: &Url) -> (Option<String>, Option<u16>) {
    (
        url.host_str().map(str::to_string),
        url.port_or_known_default(),
    )
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

/// The error and its causes, without the URL reqwest adds (the target is reported separately).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether `e` is a failure to open the TCP connection (refused, reset, unreachable, timed
/// out), as opposed to a TLS or protocol failure on an open one.
fn is_tcp_connect_failure(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind;
    if !e.is_connect() {
        return false;
    }
    if e.is_timeout() {
        return true;
    }
    find_cause::<std::io::Error>(e).is_some_and(|io| {
        matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::TimedOut
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable
                | ErrorKind::NotConnected
        )
    })
}

/// [`error_chain`] of a borrowed error (for logs).
fn error_chain_ref(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first error of type `E` in `e`'s source chain.
fn find_cause<E: std::error::Error + 'static>(e: &reqwest::Error) -> Option<&E> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(found) = cause.downcast_ref::<E>() {
            return Some(found);
        }
        source = cause.source();
    }
    None
}

fn host_denied(denied: &HostDenied, target: &Target<'_>) -> NodeError {
    NodeError {
        message: format!("HTTP request refused: {target}: {denied}"),
        code: ErrorCode::HttpHostDenied,
        retryable: false,
    }
}

fn scope_denied(denied: &ScopeDenied, target: &Target<'_>) -> NodeError {
    NodeError {
        message: format!("HTTP request refused: {target}: {denied}"),
        code: ErrorCode::CredentialScope,
        retryable: false,
    }
}

fn transport_error(e: reqwest::Error, target: &Target<'_>, timeout: Duration) -> NodeError {
    if let Some(denied) = find_cause::<ScopeDenied>(&e) {
        let mut err = scope_denied(denied, target);
        err.message = format!("HTTP redirect refused: {target}: {denied}");
        return err;
    }
    if let Some(denied) = find_cause::<HostDenied>(&e) {
        let mut err = host_denied(denied, target);
        if target.redirected(&e) || !target.is_host(&denied.host) {
            err.message = format!("HTTP redirect refused: {target}: {denied}");
        }
        return err;
    }
    if let Some(too_many) = find_cause::<TooManyRedirects>(&e) {
        return NodeError {
            message: format!("HTTP request failed: {target}: {too_many}"),
            code: ErrorCode::HttpTooManyRedirects,
            retryable: false,
        };
    }
    if let Some(EgressError::Unresolved { host }) = find_cause::<EgressError>(&e) {
        return NodeError::new(
            ErrorCode::HttpRequestFailed,
            format!("HTTP request failed: {target}: could not resolve host `{host}`"),
        );
    }
    if is_tcp_connect_failure(&e) {
        // One message for refused, reset, unreachable and filtered targets: the reason
        // would turn the node into a port scanner. It goes to the debug log only.
        tracing::debug!(error = %error_chain_ref(&e), "HTTP connection failed");
        let (host, port) = e
            .url()
            .map(|u| {
                (
                    u.host_str().unwrap_or_default().to_string(),
                    u.port_or_known_default().unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        return NodeError::new(
            ErrorCode::HttpRequestFailed,
            format!("HTTP request failed: {target}: could not connect to {host}:{port}"),
        );
    }
    if e.is_timeout() {
        return NodeError::new(
            ErrorCode::HttpTimeout,
            format!(
                "HTTP request timed out after {}s: {target}",
                timeout.as_secs_f64()
            ),
        );
    }
    let retryable = !(e.is_builder() || e.is_redirect());
    NodeError {
        message: format!("HTTP request failed: {target}: {}", error_chain(e)),
        code: ErrorCode::HttpRequestFailed,
        retryable,
    }
}

fn too_large(target: &Target<'_>, limit: usize) -> NodeError {
    NodeError {
        message: format!(
            "response body from {target} exceeds the limit of {limit} bytes (`max_response_bytes`)"
        ),
        code: ErrorCode::HttpBodyTooLarge,
        retryable: false,
    }
}

/// Reads the body chunk by chunk, failing as soon as it exceeds `limit` bytes (or at once
/// when the announced length does).
async fn read_body_capped(
    response: &mut reqwest::Response,
    target: &Target<'_>,
    timeout: Duration,
    limit: usize,
) -> Result<Vec<u8>, NodeError> {
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(too_large(target, limit));
    }
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, target, timeout))?
    {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large(target, limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `content-type` → `Content-Type` (Go's canonical MIME header key).
fn canonical_header_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in headers {
        let key = canonical_header_name(name.as_str());
        if !out.contains_key(&key) {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            out.insert(key, Value::String(text));
        }
    }
    Value::Object(out)
}

/// `"200 OK"`, like Go's `Response.Status`.
fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Parsed JSON when the body is JSON, else the text (lossy UTF-8), `""` when empty.
fn body_json(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::String(String::new());
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[async_trait]
impl Node for HttpNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn check(&self, params: &Value) -> Vec<baton_core::validate::Problem> {
        crate::checks::http(params)
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let request = parse_request(
            input.params,
            input.credentials,
            input.idempotency_key,
            &self.policy,
        )?;
        let Request {
            method,
            url,
            headers,
            body,
            timeout,
            raise_on_status,
            ignore_ssl,
            hardening,
        } = request;
        let target = Target::new(&method, &url);

        let mut key = self.client_key(
            ignore_ssl,
            timeout,
            hardening.follow_redirects,
            hardening.max_redirects,
            hardening.allowed,
            hardening.denied,
        );
        // A vault credential goes only to its `hosts`: the URL's host now, each redirect's in
        // the redirect policy.
        if let Some(used) = input.used_credential {
            used.check_host(url.host_str().unwrap_or_default())
                .map_err(|denied| scope_denied(&denied, &target))?;
            key.credential = Some(used.clone());
        }
        // Literal-IP URLs never reach the resolver; names are checked here too for a clear
        // message before any connection is attempted.
        check_url(&key.guard, &url).map_err(|denied| host_denied(&denied, &target))?;
        let client = self.client(&key)?;
        let mut builder = client
            .request(method.clone(), url)
            .headers(headers)
            .timeout(timeout);
        if let Some(body) = body {
            builder = builder.body(body);
        }

        tracing::debug!(
            execution_id = input.execution_id,
            node_id = input.node_id,
            attempt = input.attempt,
            method = %method,
            "sending HTTP request"
        );
        let started = Instant::now();
        let limit = hardening.max_response_bytes;
        let exchange = async {
            let mut response = builder
                .send()
                .await
                .map_err(|e| transport_error(e, &target, timeout))?;
            let status = response.status();
            let raw_headers = response.headers().clone();
            let bytes = read_body_capped(&mut response, &target, timeout, limit).await?;
            Ok::<_, NodeError>((status, raw_headers, bytes))
        };
        let cancelled = || NodeError {
            message: format!("HTTP request cancelled: {target}"),
            code: ErrorCode::Cancelled,
            retryable: false,
        };
        let (status, raw_headers, bytes) = tokio::select! {
            biased;
            () = input.cancel.cancelled() => return Err(cancelled()),
            result = exchange => result?,
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

        let code = status.as_u16();
        let retry_status = hardening
            .retry_on
            .as_ref()
            .is_some_and(|patterns| patterns.iter().any(|p| p.matches(code)));
        if retry_status {
            let wait = retry_after(&raw_headers);
            let mut message = format!(
                "HTTP {} from {target} (retryable: `retry_on`)",
                status_text(status)
            );
            if let Some(wait) = wait.filter(|w| !w.is_zero()) {
                message.push_str(&format!(
                    "; waited {:.1}s for Retry-After",
                    wait.as_secs_f64()
                ));
                // Waiting here keeps the engine's backoff policy untouched: its delay comes
                // on top of what the server asked for.
                tokio::select! {
                    biased;
                    () = input.cancel.cancelled() => return Err(cancelled()),
                    () = tokio::time::sleep(wait) => {}
                }
            }
            return Err(NodeError {
                message,
                code: ErrorCode::HttpStatus,
                retryable: true,
            });
        }
        if raise_on_status.iter().any(|p| p.matches(code)) {
            // With `retry_on` set, it alone decides what is retried.
            let retryable = hardening.retry_on.is_none()
                && (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS);
            return Err(NodeError {
                message: format!("HTTP {} from {target}", status_text(status)),
                code: ErrorCode::HttpStatus,
                retryable,
            });
        }

        Ok(NodeOutput::Value(json!({
            "status": code,
            "status_text": status_text(status),
            "body": body_json(&bytes),
            "headers": headers_json(&raw_headers),
            "duration_ms": duration_ms,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_on_status_accepts_classes_codes_and_rune_separators() {
        let patterns = parse_raise_on_status(Some(&json!("4XX, 500 or 503 and 2xx"))).ok();
        assert_eq!(
            patterns,
            Some(vec![
                StatusPattern::Class(4),
                StatusPattern::Exact(500),
                StatusPattern::Exact(503),
                StatusPattern::Class(2),
            ])
        );
        assert_eq!(
            parse_raise_on_status(Some(&json!(404))).ok(),
            Some(vec![StatusPattern::Exact(404)])
        );
        assert_eq!(parse_raise_on_status(Some(&json!(""))).ok(), Some(vec![]));
    }

    #[test]
    fn raise_on_status_rejects_unknown_tokens_naming_the_parameter() {
        for bad in ["6xx", "99", "600", "4xx 5xx", "xx", "abc"] {
            let err = parse_raise_on_status(Some(&json!(bad))).err();
            assert!(
                err.as_ref()
                    .is_some_and(|e| e.code == ErrorCode::InvalidParameter
                        && e.message.contains("raise_on_status")),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn status_classes_match_by_first_digit() {
        assert!(StatusPattern::Class(5).matches(503));
        assert!(!StatusPattern::Class(5).matches(404));
        assert!(StatusPattern::Exact(404).matches(404));
        assert!(!StatusPattern::Exact(404).matches(405));
    }

    #[test]
    fn header_names_are_canonicalised_like_go() {
        assert_eq!(canonical_header_name("content-type"), "Content-Type");
        assert_eq!(canonical_header_name("x-request-id"), "X-Request-Id");
        assert_eq!(canonical_header_name("etag"), "Etag");
    }

    #[test]
    fn timeout_must_be_positive_and_bounded() {
        assert_eq!(parse_timeout(None).ok(), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_timeout(Some(&json!("1.5"))).ok(),
            Some(Duration::from_millis(1500))
        );
        for bad in [
            json!(0),
            json!(-1),
            json!(1e300),
            json!("soon"),
            json!(true),
        ] {
            assert!(parse_timeout(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_bodies_are_not_sent() {
        assert_eq!(parse_body(None).ok(), Some(None));
        assert_eq!(parse_body(Some(&json!({}))).ok(), Some(None));
        assert_eq!(parse_body(Some(&json!(""))).ok(), Some(None));
        assert_eq!(
            parse_body(Some(&json!([]))).ok(),
            Some(Some(b"[]".to_vec()))
        );
        assert_eq!(
            parse_body(Some(&json!("raw"))).ok(),
            Some(Some(b"raw".to_vec()))
        );
    }

    #[test]
    fn passwords_in_urls_are_masked_in_messages() {
        let url = Url::parse("https://user:hunter2@example.com/x").ok();
        let text = url.map(|u| Target::new(&Method::GET, &u).to_string());
        assert_eq!(text.as_deref(), Some("GET https://user:***@example.com/x"));
    }
}
