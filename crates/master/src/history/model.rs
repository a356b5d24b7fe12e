//! The records the history keeps and the API's views of them (shapes of the HTTP contract).

use std::collections::BTreeMap;

use baton_core::message::{NodeStatus, StatusEvent, scope_of};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// What the list shows of an execution (`Summary` in the API contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub execution_id: String,
    pub workflow_id: String,
    /// `None` for executions the master did not start (`baton submit`, a Rune master).
    pub version: Option<u32>,
    /// `running|completed|failed|halted`.
    pub status: String,
    /// `api|webhook|cron|replay|cli`.
    pub trigger: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub completed_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub failure_reason: Option<String>,
}

/// A record written when the master starts an execution.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub summary: Summary,
    pub input: Value,
    /// Content hash of the definition, stored with it so replay survives a workflow delete.
    pub definition_hash: String,
    pub definition: Value,
    pub replay_of: Option<String>,
}

/// Everything stored about one execution.
#[derive(Debug, Clone)]
pub struct ExecutionRecord {
    pub summary: Summary,
    pub input: Value,
    pub final_context: Option<Map<String, Value>>,
    pub definition_hash: Option<String>,
    pub replay_of: Option<String>,
    /// The latest event of every run (a node at top level, or one split item of it).
    pub runs: Vec<StatusEvent>,
}

/// A cron schedule of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub schedule_id: String,
    pub workflow_id: String,
    pub cron: String,
    pub timezone: String,
    pub input: Value,
    pub created_at: String,
    /// What happens to ticks missed while no master ran (absent in schedules stored before
    /// the field existed: the default).
    #[serde(default)]
    pub missed: Missed,
}

/// The missed-tick policy of a schedule: what a pass does with ticks more than
/// [`crate::cron::GRACE`] late (the masters were down or stalled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Drop them; the schedule goes on with its next tick.
    Skip,
    /// One execution for all of them (for the first missed tick), then go on.
    #[default]
    FireOnce,
    /// Every one of them, oldest first, at most [`crate::cron::MAX_CATCH_UP`].
    FireAll,
}

impl Missed {
    pub const NAMES: [&'static str; 3] = ["skip", "fire_once", "fire_all"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "skip" => Some(Self::Skip),
            "fire_once" => Some(Self::FireOnce),
            "fire_all" => Some(Self::FireAll),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::FireOnce => "fire_once",
            Self::FireAll => "fire_all",
        }
    }
}

/// A schedule with its cursor: the first tick the scheduler has not handled yet (unix ms);
/// `None` when it never fires again.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    pub schedule: Schedule,
    pub next_ms: Option<i64>,
}

/// Identity of a run: the node and the split scope it ran in.
pub fn run_key(event: &StatusEvent) -> String {
    let scope = scope_of(&event.lineage_stack);
    let scope = if scope.is_empty() {
        event.branch_id.clone().unwrap_or_default()
    } else {
        scope
    };
    format!("{}|{}", event.node_id, scope)
}

/// Order of a run's events: a later attempt wins, then running < waiting < success/failed.
/// A stored event is replaced only by a strictly higher rank, so replays change nothing.
pub fn rank(event: &StatusEvent) -> u64 {
    let status = match event.status {
        NodeStatus::Running => 0,
        NodeStatus::Waiting => 1,
        NodeStatus::Success | NodeStatus::Failed => 2,
    };
    u64::from(event.attempt.unwrap_or(1)) * 10 + status
}

/// One run's event as stored, with its rank.
#[derive(Debug, Clone)]
pub struct RunEvent {
    pub key: String,
    pub rank: u64,
    pub event: StatusEvent,
}

impl RunEvent {
    pub fn of(event: &StatusEvent) -> Self {
        Self {
            key: run_key(event),
            rank: rank(event),
            event: event.clone(),
        }
    }
}

pub fn status_str(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Running => "running",
        NodeStatus::Success => "success",
        NodeStatus::Failed => "failed",
        NodeStatus::Waiting => "waiting",
    }
}

fn millis_of(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|d| d.timestamp_millis())
        .unwrap_or(0)
}

pub fn now_rfc3339_at(ms: i64) -> String {
    rfc3339_of(ms)
}

fn rfc3339_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Runs sorted by time, for replaying them to a new SSE client.
pub fn runs_in_time_order(runs: &[StatusEvent]) -> Vec<StatusEvent> {
    let mut runs = runs.to_vec();
    runs.sort_by_key(|e| {
        chrono::DateTime::parse_from_rfc3339(&e.executed_at)
            .ok()
            .and_then(|d| d.timestamp_nanos_opt())
            .unwrap_or(0)
    });
    runs
}

/// What a run's latest event says, as an index into the view's counts: running, success,
/// failed, waiting, cancelled. A node aborted by a cancel, a halt or a lost race is reported
/// `failed` with code `CANCELLED` on the wire: `cancelled` here. A run still `running` or
/// `waiting` once its execution finished was stopped with it (a parked timer or signal wait,
/// a run whose worker dropped it on the halt): `cancelled` too, never `running` forever. A
/// late status event that arrives after the completion still replaces it (by rank).
fn run_state(event: &StatusEvent, execution_finished: bool) -> usize {
    match event.status {
        _ if event.is_cancelled() => 4,
        NodeStatus::Running | NodeStatus::Waiting if execution_finished => 4,
        NodeStatus::Running => 0,
        NodeStatus::Success => 1,
        NodeStatus::Failed => 2,
        NodeStatus::Waiting => 3,
    }
}

/// The `nodes` map of the execution view: one NodeView per node that ran, and (once the
/// execution is finished) a `skipped` view for every node of `definition` that never ran.
///
/// Status modes (RFC 0011): a `compact` run carries no output, an `off` execution no runs at
/// all; once it finished, a top-level node's output is read from the final context where the
/// view lacks it, and in an execution with no run at all, a node with an output there is shown
/// `success`.
pub fn node_views(record: &ExecutionRecord, definition: Option<&Value>) -> Map<String, Value> {
    let stored = |name: &str| -> Option<&Value> {
        record
            .final_context
            .as_ref()
            .and_then(|c| c.get(&format!("${name}")))
    };
    let mut by_node: BTreeMap<&str, Vec<&StatusEvent>> = BTreeMap::new();
    for e in &record.runs {
        by_node.entry(e.node_id.as_str()).or_default().push(e);
    }
    let finished = record.summary.status != "running";
    let mut out = Map::new();
    for (node_id, runs) in by_node {
        let mut counts = [0u64; 5];
        for r in &runs {
            counts[run_state(r, finished)] += 1;
        }
        let status = if counts[0] > 0 {
            "running"
        } else if counts[3] > 0 {
            "waiting"
        } else if counts[2] > 0 {
            "failed"
        } else if counts[4] > 0 {
            "cancelled"
        } else {
            "success"
        };
        let Some(latest) = runs
            .iter()
            .max_by_key(|e| (millis_of(&e.executed_at), rank(e)))
        else {
            continue;
        };
        let executed_ms = millis_of(&latest.executed_at);
        let started_ms = match latest.status {
            NodeStatus::Running => executed_ms,
            _ => executed_ms - i64::try_from(latest.duration_ms).unwrap_or(0),
        };
        out.insert(
            node_id.to_string(),
            json!({
                "node_id": node_id,
                "node_name": latest.node_name,
                "node_type": latest.node_type,
                "status": status,
                "attempts": latest.attempt.unwrap_or(1),
                "started_at": rfc3339_of(started_ms),
                "executed_at": latest.executed_at,
                "duration_ms": latest.duration_ms,
                "parameters": latest.parameters,
                "output": latest.output.as_ref().or_else(|| {
                    (latest.status == NodeStatus::Success && latest.lineage_stack.is_empty())
                        .then(|| stored(&latest.node_name))
                        .flatten()
                }),
                "error": latest.error.as_ref().map(|e| json!({"message": e.message, "code": e.code})),
                "counts": {"running": counts[0], "success": counts[1], "failed": counts[2], "waiting": counts[3], "cancelled": counts[4]},
            }),
        );
    }
    if record.summary.status != "running"
        && let Some(nodes) = definition
            .and_then(|d| d.get("nodes"))
            .and_then(Value::as_array)
    {
        for n in nodes {
            let Some(id) = n.get("id").and_then(Value::as_str) else {
                continue;
            };
            if out.contains_key(id) {
                continue;
            }
            let name = n.get("name").and_then(Value::as_str).unwrap_or(id);
            // An execution without any run ran with statuses `off`: a node with an output
            // ran, and its output is its detail. (With runs, an output without one was
            // carried over by a replay: the node was skipped.)
            if let Some(output) = stored(name).filter(|_| record.runs.is_empty()) {
                out.insert(
                    id.to_string(),
                    json!({
                        "node_id": id,
                        "node_name": name,
                        "node_type": n.get("type").cloned().unwrap_or(Value::Null),
                        "status": "success",
                        "attempts": 1,
                        "started_at": null,
                        "executed_at": null,
                        "duration_ms": null,
                        "parameters": null,
                        "output": output,
                        "error": null,
                        "counts": {"running": 0, "success": 1, "failed": 0, "waiting": 0, "cancelled": 0},
                    }),
                );
                continue;
            }
            out.insert(
                id.to_string(),
                json!({
                    "node_id": id,
                    "node_name": n.get("name").cloned().unwrap_or_else(|| json!(id)),
                    "node_type": n.get("type").cloned().unwrap_or(Value::Null),
                    "status": "skipped",
                    "attempts": 0,
                    "started_at": null,
                    "executed_at": null,
                    "duration_ms": null,
                    "parameters": null,
                    "output": null,
                    "error": null,
                    "counts": {"running": 0, "success": 0, "failed": 0, "waiting": 0, "cancelled": 0},
                }),
            );
        }
    }
    out
}

/// The index member of an execution: time-ordered, unique.
pub fn index_member(started_at: &str, execution_id: &str) -> String {
    format!("{:013}|{execution_id}", millis_of(started_at).max(0))
}

pub fn now_rfc3339() -> String {
    rfc3339_millis(chrono::Utc::now())
}

/// A history timestamp: RFC 3339 with milliseconds.
pub fn rfc3339_millis(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn member_millis(member: &str) -> i64 {
    member
        .split('|')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(node: &str, status: NodeStatus, item: Option<usize>) -> StatusEvent {
        StatusEvent {
            workflow_id: "w".into(),
            execution_id: "x".into(),
            node_id: node.into(),
            node_name: node.into(),
            node_type: "log".into(),
            status,
            parameters: None,
            output: None,
            error: None,
            executed_at: "2026-01-01T00:00:01.000Z".into(),
            duration_ms: 5,
            branch_id: item.map(|i| format!("b{i}")),
            split_node_id: None,
            item_index: item,
            total_items: None,
            lineage_stack: vec![],
            attempt: Some(1),
        }
    }

    #[test]
    fn split_runs_are_counted_and_a_node_is_running_while_any_run_is() {
        let record = ExecutionRecord {
            summary: Summary {
                execution_id: "x".into(),
                workflow_id: "w".into(),
                version: Some(1),
                status: "running".into(),
                trigger: "api".into(),
                started_at: now_rfc3339(),
                completed_at: None,
                duration_ms: None,
                failure_reason: None,
            },
            input: json!({}),
            final_context: None,
            definition_hash: None,
            replay_of: None,
            runs: vec![
                event("a", NodeStatus::Success, Some(0)),
                event("a", NodeStatus::Running, Some(1)),
                event("a", NodeStatus::Success, Some(2)),
            ],
        };
        let views = node_views(&record, None);
        assert_eq!(views["a"]["status"], "running");
        assert_eq!(views["a"]["counts"]["success"], 2);
        assert_eq!(views["a"]["counts"]["running"], 1);
        assert_ne!(
            run_key(&record.runs[0]),
            run_key(&record.runs[1]),
            "each split item is its own run"
        );
    }

    fn record(status: &str, runs: Vec<StatusEvent>) -> ExecutionRecord {
        ExecutionRecord {
            summary: Summary {
                execution_id: "x".into(),
                workflow_id: "w".into(),
                version: Some(1),
                status: status.into(),
                trigger: "api".into(),
                started_at: now_rfc3339(),
                completed_at: None,
                duration_ms: None,
                failure_reason: None,
            },
            input: json!({}),
            final_context: None,
            definition_hash: None,
            replay_of: None,
            runs,
        }
    }

    #[test]
    fn without_statuses_a_finished_execution_shows_node_outputs_from_its_final_context() {
        let definition = json!({"nodes": [
            {"id": "a", "name": "a", "type": "log"},
            {"id": "b", "name": "b", "type": "log"},
            {"id": "c", "name": "c", "type": "log"},
        ]});
        let context = json!({"$a": {"n": 1}, "$b": {"n": 2}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        // `compact`: a's run has no output (b's output is a replay's carried-over one).
        let mut compact = record("completed", vec![event("a", NodeStatus::Success, None)]);
        compact.final_context = Some(context.clone());
        let views = node_views(&compact, Some(&definition));
        assert_eq!(views["a"]["output"], json!({"n": 1}));
        assert_eq!(views["a"]["duration_ms"], 5);
        assert_eq!(views["b"]["status"], "skipped");
        // `off`: no run at all; c never ran.
        let mut off = record("completed", vec![]);
        off.final_context = Some(context);
        let views = node_views(&off, Some(&definition));
        assert_eq!(views["a"]["status"], "success");
        assert_eq!(views["b"]["output"], json!({"n": 2}));
        assert_eq!(views["c"]["status"], "skipped");
    }

    #[test]
    fn a_node_aborted_by_a_cancel_is_shown_cancelled() {
        let mut aborted = event("a", NodeStatus::Failed, None);
        aborted.error = Some(baton_core::message::ErrorInfo {
            message: "cancelled: the execution stopped".into(),
            code: "CANCELLED".into(),
            details: None,
        });
        let views = node_views(&record("halted", vec![aborted]), None);
        assert_eq!(views["a"]["status"], "cancelled");
        assert_eq!(views["a"]["counts"]["cancelled"], 1);
        assert_eq!(views["a"]["counts"]["failed"], 0);
    }

    #[test]
    fn runs_still_running_or_waiting_when_the_execution_finished_are_closed_as_cancelled() {
        let runs = vec![
            event("parked", NodeStatus::Waiting, None),
            event("busy", NodeStatus::Running, None),
            event("done", NodeStatus::Success, None),
        ];
        let halted = node_views(&record("halted", runs.clone()), None);
        assert_eq!(halted["parked"]["status"], "cancelled");
        assert_eq!(halted["busy"]["status"], "cancelled");
        assert_eq!(halted["done"]["status"], "success");
        let running = node_views(&record("running", runs), None);
        assert_eq!(running["parked"]["status"], "waiting");
        assert_eq!(running["busy"]["status"], "running");
    }

    #[test]
    fn a_final_status_outranks_running_and_a_retry_outranks_both() {
        let running = event("a", NodeStatus::Running, None);
        let done = event("a", NodeStatus::Failed, None);
        let mut retry = event("a", NodeStatus::Running, None);
        retry.attempt = Some(2);
        assert!(rank(&done) > rank(&running));
        assert!(rank(&retry) > rank(&done));
    }
}
