//! Parameter readers the node types share: present parameters and timeouts in seconds.

use std::time::Duration;

use baton_core::value::kind_name;
use baton_engine::NodeError;
use serde_json::Value;

/// A present, non-null parameter.
pub(crate) fn param<'a>(params: &'a Value, name: &str) -> Option<&'a Value> {
    params.get(name).filter(|v| !v.is_null())
}

/// The `timeout` parameter: seconds above 0 and at most `max_secs` (`default_secs` when
/// absent), as a number or a numeric string (templates resolve to strings).
pub(crate) fn timeout_secs(
    v: Option<&Value>,
    default_secs: f64,
    max_secs: f64,
) -> Result<Duration, NodeError> {
    let secs = match v {
        None => default_secs,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| {
            NodeError::invalid(format!(
                "parameter `timeout` must be a number of seconds, got {s:?}"
            ))
        })?,
        Some(other) => {
            return Err(NodeError::invalid(format!(
                "parameter `timeout` must be a number of seconds, got {}",
                kind_name(other)
            )));
        }
    };
    if !(secs > 0.0 && secs <= max_secs) {
        return Err(NodeError::invalid(format!(
            "parameter `timeout` must be a number of seconds above 0 and at most {max_secs}, got {secs}"
        )));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| {
        NodeError::invalid(format!("parameter `timeout` is not a valid duration: {e}"))
    })
}
