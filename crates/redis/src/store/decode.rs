//! Reading what the scripts store and answer: context fields, meta fields (lifecycle, pending
//! tokens, status names), recorded handoffs, and the TTL of a running execution's keys.

use baton_core::message::ExecutionStatus;
use baton_engine::ports::{Handoff, Lifecycle, PortError};
use serde_json::Value;

use super::SEP;
use crate::Error;

pub(super) fn field(scope: &str, key: &str) -> String {
    let mut f = String::with_capacity(scope.len() + 1 + key.len());
    f.push_str(scope);
    f.push(SEP);
    f.push_str(key);
    f
}

pub(crate) fn status_name(status: ExecutionStatus) -> &'static str {
    status.as_str()
}

/// The meta fields a [`Lifecycle`] is read from, in [`lifecycle_of`]'s order.
pub(super) const LIFECYCLE_FIELDS: [&str; 4] =
    ["started_at", "status", "reason", "completion_sent"];

/// The meta hash's `pending` field (absent: 0).
pub(super) fn pending_of(field: Option<&str>) -> Result<i64, Error> {
    field.map_or(Ok(0), |p| {
        p.parse()
            .map_err(|_| Error::Protocol(format!("pending is `{p}`")))
    })
}

pub(super) fn lifecycle_of(fields: &[Option<String>]) -> Result<Lifecycle, Error> {
    let [started, status, reason, sent] = fields else {
        return Err(Error::Protocol(format!(
            "HMGET of the lifecycle answered {} fields",
            fields.len()
        )));
    };
    Ok(match (started, status) {
        (None, _) => Lifecycle::Unknown,
        (Some(_), None) => Lifecycle::Running,
        (Some(_), Some(status)) => Lifecycle::Finished {
            status: parse_status(status)?,
            reason: reason.clone(),
            completion_sent: sent.is_some(),
        },
    })
}

fn parse_status(s: &str) -> Result<ExecutionStatus, Error> {
    serde_json::from_value(Value::String(s.to_string()))
        .map_err(|_| Error::Protocol(format!("unknown execution status `{s}`")))
}

/// A recorded handoff: empty when the commit recorded none.
pub(super) fn handoff_of(stored: &str) -> Result<Option<Handoff>, PortError> {
    if stored.is_empty() {
        return Ok(None);
    }
    Handoff::decode(stored).map(Some)
}

/// How long the keys of a running execution live: until its deadline plus the retention of a
/// finished execution (the deadline timer fails it by then, and `finish` sets the usual TTL);
/// 0 (no TTL) without a deadline, so a wait of any length keeps its state.
pub(super) fn running_ttl_secs(
    deadline_at_ms: Option<u64>,
    started_at_ms: u64,
    finished_ttl_secs: u64,
) -> u64 {
    match deadline_at_ms {
        Some(deadline) => deadline
            .saturating_sub(started_at_ms)
            .div_ceil(1000)
            .saturating_add(finished_ttl_secs.max(3_600)),
        None => 0,
    }
}
