//! The `http` node: one HTTP request per run, Rune-compatible parameters and output.
//!
//! Retries are the engine's job (the node-level `retry` policy): this node makes exactly one
//! attempt and reports through [`NodeError::retryable`] whether another attempt could help
//! (`retry_on` chooses which statuses count). Hardening: a streamed response size cap
//! (`max_response_bytes`), a redirect policy (`follow_redirects`, `max_redirects`) and an SSRF
//! guard ([`guard`] over [`crate::egress`]: `allowed_hosts`, `denied_hosts` and the
//! process-wide [`HttpPolicy`]). A failed connection reports `could not connect to host:port`
//! whatever the reason (refused, closed, filtered, timed out), as every connector does.

mod credentials;
mod errors;
pub mod guard;
mod hardening;
mod request;
mod response;

use credentials::*;
use errors::*;
use request::*;
use response::*;

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

/// The W3C trace-context header sent when traces are exported.
const TRACEPARENT: HeaderName = HeaderName::from_static(baton_telemetry::context::TRACEPARENT);
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
        pure: false,
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

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
            mut headers,
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
        // Traces exported: the called service continues the execution's trace as a child of
        // this node attempt (unless the workflow sets `traceparent` itself).
        if !headers.contains_key(TRACEPARENT)
            && let Some(traceparent) = baton_telemetry::context::current()
            && let Ok(value) = HeaderValue::from_str(&traceparent)
        {
            headers.insert(TRACEPARENT, value);
        }
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
