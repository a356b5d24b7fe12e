//! The `http` node's protective parameters: `max_response_bytes`, `follow_redirects`,
//! `max_redirects`, `allowed_hosts`, `denied_hosts` and `retry_on`, and the `Retry-After`
//! header that a retryable status may carry.

use std::time::Duration;

use baton_engine::NodeError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use super::guard::HttpPolicy;
use super::{
    DEFAULT_MAX_REDIRECTS, MAX_REDIRECTS_LIMIT, MAX_RETRY_AFTER, StatusPattern,
    parse_status_pattern,
};
use crate::egress::HostRule;
use crate::params::param;
use baton_core::value::kind_name;

/// The validated protective parameters of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hardening {
    /// Already lowered to the process-wide ceiling.
    pub max_response_bytes: usize,
    pub follow_redirects: bool,
    pub max_redirects: usize,
    pub allowed: Vec<HostRule>,
    pub denied: Vec<HostRule>,
    /// `None`: not set (then 5xx and 429 `raise_on_status` failures are retryable).
    pub retry_on: Option<Vec<StatusPattern>>,
}

pub(super) fn parse_hardening(params: &Value, policy: &HttpPolicy) -> Result<Hardening, NodeError> {
    let requested = parse_count(
        param(params, "max_response_bytes"),
        "max_response_bytes",
        1,
        usize::MAX,
    )?;
    Ok(Hardening {
        max_response_bytes: requested
            .unwrap_or(policy.max_response_bytes)
            .min(policy.max_response_bytes),
        follow_redirects: parse_flag(param(params, "follow_redirects"), "follow_redirects")?
            .unwrap_or(true),
        max_redirects: parse_count(
            param(params, "max_redirects"),
            "max_redirects",
            0,
            MAX_REDIRECTS_LIMIT,
        )?
        .unwrap_or(DEFAULT_MAX_REDIRECTS),
        allowed: parse_host_rules(param(params, "allowed_hosts"), "allowed_hosts")?,
        denied: parse_host_rules(param(params, "denied_hosts"), "denied_hosts")?,
        retry_on: parse_retry_on(param(params, "retry_on"))?,
    })
}

/// A boolean; templates resolve to text, so `"true"` / `"false"` are accepted too.
fn parse_flag(v: Option<&Value>, name: &str) -> Result<Option<bool>, NodeError> {
    match v {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(NodeError::invalid(format!(
            "parameter `{name}` must be a boolean, got {}",
            describe(other)
        ))),
    }
}

/// An integer in `min..=max`; a numeric string (from a template) is accepted.
fn parse_count(
    v: Option<&Value>,
    name: &str,
    min: usize,
    max: usize,
) -> Result<Option<usize>, NodeError> {
    let Some(v) = v else { return Ok(None) };
    let number = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    number
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (min..=max).contains(n))
        .map(Some)
        .ok_or_else(|| {
            let range = if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("from {min} to {max}")
            };
            NodeError::invalid(format!(
                "parameter `{name}` must be an integer {range}, got {}",
                describe(v)
            ))
        })
}

/// A string (comma or whitespace separated) or an array of strings.
fn parse_host_rules(v: Option<&Value>, name: &str) -> Result<Vec<HostRule>, NodeError> {
    let texts: Vec<String> = match v {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str().map(str::to_string).ok_or_else(|| {
                    NodeError::invalid(format!(
                        "parameter `{name}[{i}]` must be a string, got {}",
                        kind_name(item)
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(NodeError::invalid(format!(
                "parameter `{name}` must be a string or an array of strings, got {}",
                kind_name(other)
            )));
        }
    };
    texts
        .iter()
        .map(|t| {
            HostRule::parse(t).map_err(|problem| {
                NodeError::invalid(format!(
                    "parameter `{name}`: {problem}; expected a host name, `*.suffix` wildcard, IP address or CIDR range"
                ))
            })
        })
        .collect()
}

/// `["5xx", 429]`, `"5xx,429"` or `503`.
fn parse_retry_on(v: Option<&Value>) -> Result<Option<Vec<StatusPattern>>, NodeError> {
    let tokens: Vec<String> = match v {
        None => return Ok(None),
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        Some(Value::Number(n)) => vec![n.to_string()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(NodeError::invalid(format!(
                    "parameter `retry_on[{i}]` must be a status code or class like \"5xx\", got {}",
                    kind_name(other)
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(NodeError::invalid(format!(
                "parameter `retry_on` must be an array like [\"5xx\", \"429\"] or a string like \"5xx,429\", got {}",
                kind_name(other)
            )));
        }
    };
    tokens
        .iter()
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .map(|token| {
            parse_status_pattern(&token).ok_or_else(|| {
                NodeError::invalid(format!(
                    "parameter `retry_on`: {token:?} is not a status code (100-599) or class (1xx-5xx)"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A short rendering of a bad value for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => kind_name(other).to_string(),
    }
}

/// How long the server asks to wait (`Retry-After`: seconds or an HTTP date), at most
/// [`MAX_RETRY_AFTER`]; `None` when absent or unreadable.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
            let millis = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
            Duration::from_millis(u64::try_from(millis).unwrap_or(0))
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn parse(params: Value) -> Result<Hardening, NodeError> {
        parse_hardening(&params, &HttpPolicy::production())
    }

    #[test]
    fn defaults_follow_ten_redirects_and_cap_bodies_at_ten_mebibytes() {
        let h = parse(json!({})).ok();
        assert_eq!(
            h,
            Some(Hardening {
                max_response_bytes: 10 * 1024 * 1024,
                follow_redirects: true,
                max_redirects: 10,
                allowed: vec![],
                denied: vec![],
                retry_on: None,
            })
        );
    }

    #[test]
    fn max_response_bytes_is_lowered_to_the_process_ceiling() {
        let policy = HttpPolicy {
            max_response_bytes: 1000,
            ..HttpPolicy::production()
        };
        let h = parse_hardening(&json!({"max_response_bytes": 5000}), &policy).ok();
        assert_eq!(h.map(|h| h.max_response_bytes), Some(1000));
        let h = parse(json!({"max_response_bytes": "64"})).ok();
        assert_eq!(h.map(|h| h.max_response_bytes), Some(64));
    }

    #[test]
    fn bad_values_name_the_parameter_and_what_was_expected() {
        for (params, needle) in [
            (
                json!({"max_response_bytes": 0}),
                "`max_response_bytes` must be an integer at least 1",
            ),
            (json!({"max_response_bytes": -5}), "`max_response_bytes`"),
            (
                json!({"max_redirects": 51}),
                "`max_redirects` must be an integer from 0 to 50",
            ),
            (
                json!({"follow_redirects": "yes"}),
                "`follow_redirects` must be a boolean",
            ),
            (
                json!({"allowed_hosts": [3]}),
                "`allowed_hosts[0]` must be a string",
            ),
            (
                json!({"denied_hosts": "10.0.0.0/33"}),
                "`denied_hosts`: \"10.0.0.0/33\" is not a valid CIDR range",
            ),
            (json!({"retry_on": ["6xx"]}), "`retry_on`: \"6xx\""),
            (json!({"retry_on": {"a": 1}}), "`retry_on` must be an array"),
        ] {
            let e = parse(params.clone()).err();
            assert!(
                e.as_ref()
                    .is_some_and(|e| e.code == baton_core::ErrorCode::InvalidParameter
                        && e.message.contains(needle)),
                "{params}: {e:?}"
            );
        }
    }

    #[test]
    fn retry_on_accepts_arrays_strings_and_numbers() {
        let expected = Some(Some(vec![
            StatusPattern::Class(5),
            StatusPattern::Exact(429),
        ]));
        assert_eq!(
            parse(json!({"retry_on": ["5xx", 429]}))
                .ok()
                .map(|h| h.retry_on),
            expected
        );
        assert_eq!(
            parse(json!({"retry_on": "5XX, 429"}))
                .ok()
                .map(|h| h.retry_on),
            expected
        );
        assert_eq!(
            parse(json!({"retry_on": 503})).ok().map(|h| h.retry_on),
            Some(Some(vec![StatusPattern::Exact(503)]))
        );
    }

    #[test]
    fn retry_after_reads_seconds_or_a_date_and_is_bounded() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
