//! Status events: Rune's NodeStatusMessage, one per step of a node (running, success, failed,
//! waiting), published for monitors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::hop::Frame;

/// Node status values (Rune's set). A node aborted by a cancel, a halt or a lost race is
/// `Failed` with error code `CANCELLED` on the wire ([`StatusEvent::is_cancelled`]), since Rune
/// monitors know only these four; Baton's history shows it as `cancelled` (RFC 0003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Running,
    Success,
    Failed,
    Waiting,
}

/// A node error as reported in statuses and in `$error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub message: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Rune's NodeStatusMessage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub workflow_id: String,
    pub execution_id: String,
    pub node_id: String,
    pub node_name: String,
    #[serde(default)]
    pub node_type: String,
    pub status: NodeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// RFC 3339 UTC.
    pub executed_at: String,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_index: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_items: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage_stack: Vec<Frame>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

impl StatusEvent {
    /// A node aborted by a cancel, a halt or a lost race: `failed` with code `CANCELLED`.
    pub fn is_cancelled(&self) -> bool {
        self.status == NodeStatus::Failed
            && self
                .error
                .as_ref()
                .is_some_and(|e| e.code == crate::ErrorCode::Cancelled.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_status_event_keeps_its_json_shape_and_round_trips() {
        let event = StatusEvent {
            workflow_id: "wf".into(),
            execution_id: "e1".into(),
            node_id: "n1".into(),
            node_name: "Fetch".into(),
            node_type: "http".into(),
            status: NodeStatus::Failed,
            parameters: Some(json!({"url": "u"})),
            output: None,
            error: Some(ErrorInfo {
                message: "boom".into(),
                code: "NODE_EXECUTION_FAILED".into(),
                details: Some(json!({"status": 500})),
            }),
            executed_at: "2025-01-01T00:00:00.000Z".into(),
            duration_ms: 12,
            branch_id: Some("e1_s_0".into()),
            split_node_id: Some("s".into()),
            item_index: Some(0),
            total_items: Some(2),
            lineage_stack: vec![Frame {
                split_node_id: "s".into(),
                branch_id: "e1_s_0".into(),
                item_index: 0,
                total_items: 2,
            }],
            attempt: Some(1),
        };
        let want = json!({
            "workflow_id": "wf", "execution_id": "e1", "node_id": "n1", "node_name": "Fetch",
            "node_type": "http", "status": "failed", "parameters": {"url": "u"},
            "error": {"message": "boom", "code": "NODE_EXECUTION_FAILED", "details": {"status": 500}},
            "executed_at": "2025-01-01T00:00:00.000Z", "duration_ms": 12,
            "branch_id": "e1_s_0", "split_node_id": "s", "item_index": 0, "total_items": 2,
            "lineage_stack": [{"split_node_id": "s", "branch_id": "e1_s_0", "item_index": 0, "total_items": 2}],
            "attempt": 1
        });
        let bytes = serde_json::to_vec(&event).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&want).unwrap());
        assert_eq!(
            serde_json::from_slice::<StatusEvent>(&bytes).unwrap(),
            event
        );
    }

    #[test]
    fn a_rune_status_without_baton_fields_is_read() {
        let body = br#"{"workflow_id":"wf","execution_id":"e1","node_id":"n1","node_name":"A","status":"waiting","executed_at":"t","duration_ms":0}"#;
        let event: StatusEvent = serde_json::from_slice(body).unwrap();
        assert_eq!(event.status, NodeStatus::Waiting);
        assert_eq!(event.node_type, "");
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"workflow_id":"wf","execution_id":"e1","node_id":"n1","node_name":"A","node_type":"","status":"waiting","executed_at":"t","duration_ms":0}"#
        );
    }
}
