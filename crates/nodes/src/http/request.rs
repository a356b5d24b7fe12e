//! The `http` node's parameters, read and checked: method, URL and query, headers, body,
//! timeout, `raise_on_status` and `ignore_ssl`.

use super::*;

/// A fully validated request, built before anything is sent.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<Vec<u8>>,
    pub(super) timeout: Duration,
    pub(super) raise_on_status: Vec<StatusPattern>,
    pub(super) ignore_ssl: bool,
    pub(super) hardening: Hardening,
}

/// One entry of `raise_on_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatusPattern {
    /// `4xx`: every status whose first digit is this.
    Class(u16),
    Exact(u16),
}

impl StatusPattern {
    pub(super) fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Class(c) => status / 100 == c,
            StatusPattern::Exact(s) => status == s,
        }
    }
}

/// Strings as is, numbers and booleans as their JSON text.
pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn parse_request(
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

pub(super) fn parse_method(v: Option<&Value>) -> Result<Method, NodeError> {
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

pub(super) fn parse_url(v: Option<&Value>) -> Result<Url, NodeError> {
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

pub(super) fn apply_query(url: &mut Url, v: Option<&Value>) -> Result<(), NodeError> {
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

pub(super) fn parse_headers(v: Option<&Value>) -> Result<HeaderMap, NodeError> {
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
pub(super) fn parse_body(v: Option<&Value>) -> Result<Option<Vec<u8>>, NodeError> {
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

pub(super) fn parse_timeout(v: Option<&Value>) -> Result<Duration, NodeError> {
    timeout_secs(v, DEFAULT_TIMEOUT_SECS, MAX_TIMEOUT_SECS)
}

pub(super) fn parse_raise_on_status(v: Option<&Value>) -> Result<Vec<StatusPattern>, NodeError> {
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

pub(super) fn parse_status_pattern(token: &str) -> Option<StatusPattern> {
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

pub(super) fn parse_ignore_ssl(v: Option<&Value>) -> Result<bool, NodeError> {
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
