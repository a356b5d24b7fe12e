//! Status modes (RFC 0011): how much a worker tells monitors about node runs — `full` (Rune's
//! `running` + final status per node), `compact` (one [`NodeRun`] per node run, several in one
//! [`StatusBatch`] message) or `off` (completions only) — and the compact record itself.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::hop::Frame;
use super::status::{ErrorInfo, NodeStatus, StatusEvent};

/// How much a worker publishes about node runs. Ordered: `Off < Compact < Full`; a workflow may
/// ask for less than its worker's mode, never more ([`StatusMode::limited_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusMode {
    /// Completions only.
    Off,
    /// One record per node run (start, end, outcome, output reference), batched.
    Compact,
    /// Rune-compatible: `running`, then `success`/`failed`/`waiting`, per node (the default).
    #[default]
    Full,
}

impl StatusMode {
    pub const ALL: [StatusMode; 3] = [StatusMode::Off, StatusMode::Compact, StatusMode::Full];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Compact => "compact",
            Self::Full => "full",
        }
    }

    /// The mode in effect when a workflow asks for `requested` on a worker running `self`: the
    /// lesser of the two (a workflow can lower its statuses, never raise them).
    pub fn limited_to(self, requested: Option<StatusMode>) -> StatusMode {
        requested.map_or(self, |r| self.min(r))
    }

    /// Whether a status event of `status` is sent on its own in this mode (only `full` sends
    /// `running` and `waiting`; `compact` sends the final ones, as [`NodeRun`]s).
    pub fn sends(self, status: NodeStatus) -> bool {
        match self {
            Self::Full => true,
            Self::Compact => matches!(status, NodeStatus::Success | NodeStatus::Failed),
            Self::Off => false,
        }
    }
}

impl fmt::Display for StatusMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status mode name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status mode `{0}`: expected `full`, `compact` or `off`")]
pub struct UnknownStatusMode(pub String);

impl FromStr for StatusMode {
    type Err = UnknownStatusMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "compact" => Ok(Self::Compact),
            "off" => Ok(Self::Off),
            _ => Err(UnknownStatusMode(s.to_string())),
        }
    }
}

/// Read by name ([`FromStr`]), so a wrong one is answered with the three choices.
impl<'de> Deserialize<'de> for StatusMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One node run in `compact` mode: when it started and ended, how it ended, and where its
/// output is (not the output itself: it stays in the execution's context).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRun {
    pub workflow_id: String,
    pub execution_id: String,
    pub node_id: String,
    pub node_name: String,
    #[serde(default)]
    pub node_type: String,
    /// `success` or `failed` (`failed` with code `CANCELLED` for a cancelled run).
    pub status: NodeStatus,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub finished_at: String,
    pub duration_ms: u64,
    /// Where the output is: the context key (`$<name>`), with `@<scope>` inside a split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage_stack: Vec<Frame>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

impl NodeRun {
    /// The compact record of a final status event, which started at `started_at`.
    pub fn of(event: StatusEvent, started_at: String, output_ref: Option<String>) -> Self {
        Self {
            workflow_id: event.workflow_id,
            execution_id: event.execution_id,
            node_id: event.node_id,
            node_name: event.node_name,
            node_type: event.node_type,
            status: event.status,
            started_at,
            finished_at: event.executed_at,
            duration_ms: event.duration_ms,
            output_ref,
            error: event.error,
            lineage_stack: event.lineage_stack,
            attempt: event.attempt,
        }
    }

    /// The final status event this run stands for (no parameters, no output: the output is at
    /// `output_ref`), for consumers that store status events (the master's history).
    pub fn into_status_event(self) -> StatusEvent {
        let top = self.lineage_stack.last();
        StatusEvent {
            workflow_id: self.workflow_id,
            execution_id: self.execution_id,
            node_id: self.node_id,
            node_name: self.node_name,
            node_type: self.node_type,
            status: self.status,
            parameters: None,
            output: None,
            error: self.error,
            executed_at: self.finished_at,
            duration_ms: self.duration_ms,
            branch_id: top.map(|f| f.branch_id.clone()),
            split_node_id: top.map(|f| f.split_node_id.clone()),
            item_index: top.map(|f| f.item_index),
            total_items: top.map(|f| f.total_items),
            lineage_stack: self.lineage_stack,
            attempt: self.attempt,
        }
    }
}

/// One `compact` status message: the node runs that were ready at one flush.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusBatch {
    pub node_runs: Vec<NodeRun>,
}

/// A message on the status queue: a Rune status event (`full`) or a batch (`compact`).
#[derive(Debug, Clone, PartialEq)]
pub enum StatusMessage {
    Event(Box<StatusEvent>),
    Batch(StatusBatch),
}

impl StatusMessage {
    /// Reads a status queue body: a batch has `node_runs`, anything else is a status event.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        match serde_json::from_slice::<StatusBatch>(body) {
            Ok(batch) => Ok(Self::Batch(batch)),
            Err(_) => serde_json::from_slice::<StatusEvent>(body).map(|e| Self::Event(Box::new(e))),
        }
    }

    /// The status events it stands for, in order.
    pub fn into_events(self) -> Vec<StatusEvent> {
        match self {
            Self::Event(e) => vec![*e],
            Self::Batch(b) => b
                .node_runs
                .into_iter()
                .map(NodeRun::into_status_event)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_workflow_can_lower_the_status_mode_but_never_raise_it() {
        use StatusMode::*;
        assert_eq!(Full.limited_to(Some(Compact)), Compact);
        assert_eq!(Full.limited_to(Some(Off)), Off);
        assert_eq!(Compact.limited_to(Some(Full)), Compact);
        assert_eq!(Off.limited_to(Some(Full)), Off);
        assert_eq!(Compact.limited_to(None), Compact);
    }

    #[test]
    fn status_modes_parse_by_name_and_reject_others_naming_the_choices() {
        assert_eq!("compact".parse::<StatusMode>(), Ok(StatusMode::Compact));
        assert_eq!(" OFF ".parse::<StatusMode>(), Ok(StatusMode::Off));
        let err = "quiet".parse::<StatusMode>().unwrap_err().to_string();
        assert!(err.contains("quiet") && err.contains("compact"), "{err}");
    }

    #[test]
    fn a_status_batch_keeps_its_json_shape_and_reads_back_as_final_events() {
        let body = json!({"node_runs": [{
            "workflow_id": "wf", "execution_id": "e1", "node_id": "n1", "node_name": "Fetch",
            "node_type": "http", "status": "success",
            "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:00.004Z",
            "duration_ms": 4, "output_ref": "$Fetch"
        }]});
        let bytes = serde_json::to_vec(&body).expect("json");
        let msg = StatusMessage::parse(&bytes).expect("a batch");
        let StatusMessage::Batch(batch) = &msg else {
            panic!("not a batch: {msg:?}")
        };
        assert_eq!(serde_json::to_value(batch).expect("json"), body);
        let events = msg.into_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].status, NodeStatus::Success);
        assert_eq!(events[0].executed_at, "2026-01-01T00:00:00.004Z");
        assert_eq!(events[0].duration_ms, 4);
    }

    #[test]
    fn a_rune_status_event_on_the_status_queue_reads_as_one_event() {
        let body = json!({"workflow_id": "wf", "execution_id": "e1", "node_id": "n1",
            "node_name": "A", "status": "running", "executed_at": "t", "duration_ms": 0});
        let msg = StatusMessage::parse(&serde_json::to_vec(&body).expect("json")).expect("event");
        assert!(matches!(msg, StatusMessage::Event(_)));
        assert_eq!(msg.into_events()[0].status, NodeStatus::Running);
    }
}
