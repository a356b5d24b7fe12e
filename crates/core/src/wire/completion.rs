//! Completions: Rune's CompletionMessage, exactly one per execution, with its final status.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Final status of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Completed,
    Failed,
    Halted,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Halted => "halted",
        }
    }
}

/// Rune's CompletionMessage; exactly one per execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub workflow_id: String,
    pub execution_id: String,
    pub status: ExecutionStatus,
    pub final_context: Map<String, Value>,
    /// RFC 3339 UTC.
    pub completed_at: String,
    /// From the execution's start to its end.
    pub total_duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_completion_keeps_its_json_shape_and_round_trips() {
        let completion = Completion {
            workflow_id: "wf".into(),
            execution_id: "e1".into(),
            status: ExecutionStatus::Halted,
            final_context: json!({"$input": {"a": 1}, "Fetch": 2})
                .as_object()
                .cloned()
                .unwrap(),
            completed_at: "2025-01-01T00:00:00.000Z".into(),
            total_duration_ms: 40,
            failure_reason: Some("node failed".into()),
        };
        let want = json!({
            "workflow_id": "wf", "execution_id": "e1", "status": "halted",
            "final_context": {"$input": {"a": 1}, "Fetch": 2},
            "completed_at": "2025-01-01T00:00:00.000Z", "total_duration_ms": 40,
            "failure_reason": "node failed"
        });
        let bytes = serde_json::to_vec(&completion).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&want).unwrap());
        assert_eq!(
            serde_json::from_slice::<Completion>(&bytes).unwrap(),
            completion
        );
    }

    #[test]
    fn statuses_are_named_as_on_the_wire() {
        for status in [
            ExecutionStatus::Completed,
            ExecutionStatus::Failed,
            ExecutionStatus::Halted,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                json!(status.as_str())
            );
        }
    }
}
