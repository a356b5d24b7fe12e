//! What a failed request reports: the target it names, the cause found in reqwest's error
//! chain, and the same `could not connect` text for every failed connection.

use super::*;

/// The request line used in messages; a password in the URL is masked.
pub(super) struct Target<'a> {
    pub(super) method: &'a Method,
    pub(super) url: String,
    /// Where the request first goes; an error elsewhere happened after a redirect.
    pub(super) origin: (Option<String>, Option<u16>),
}

impl<'a> Target<'a> {
    pub(super) fn new(method: &'a Method, url: &Url) -> Self {
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
    pub(super) fn is_host(&self, host: &str) -> bool {
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
    pub(super) fn redirected(&self, e: &reqwest::Error) -> bool {
        e.is_redirect() || e.url().is_some_and(|u| origin_of(u) != self.origin)
    }
}

pub(super) fn origin_of(url: &Url) -> (Option<String>, Option<u16>) {
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
pub(super) fn error_chain(e: reqwest::Error) -> String {
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
pub(super) fn is_tcp_connect_failure(e: &reqwest::Error) -> bool {
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
pub(super) fn error_chain_ref(e: &reqwest::Error) -> String {
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
pub(super) fn find_cause<E: std::error::Error + 'static>(e: &reqwest::Error) -> Option<&E> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(found) = cause.downcast_ref::<E>() {
            return Some(found);
        }
        source = cause.source();
    }
    None
}

pub(super) fn host_denied(denied: &HostDenied, target: &Target<'_>) -> NodeError {
    NodeError {
        message: format!("HTTP request refused: {target}: {denied}"),
        code: ErrorCode::HttpHostDenied,
        retryable: false,
    }
}

pub(super) fn scope_denied(denied: &ScopeDenied, target: &Target<'_>) -> NodeError {
    NodeError {
        message: format!("HTTP request refused: {target}: {denied}"),
        code: ErrorCode::CredentialScope,
        retryable: false,
    }
}

pub(super) fn transport_error(
    e: reqwest::Error,
    target: &Target<'_>,
    timeout: Duration,
) -> NodeError {
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

pub(super) fn too_large(target: &Target<'_>, limit: usize) -> NodeError {
    NodeError {
        message: format!(
            "response body from {target} exceeds the limit of {limit} bytes (`max_response_bytes`)"
        ),
        code: ErrorCode::HttpBodyTooLarge,
        retryable: false,
    }
}
