//! Messages: the small hop message that moves an execution forward, and the Rune-shaped status
//! and completion events that monitors consume.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One level of split lineage: which item of which split a branch is running for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub split_node_id: String,
    pub branch_id: String,
    pub item_index: usize,
    pub total_items: usize,
}

/// What a hop message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HopKind {
    /// Run the node (or arrive at it, if it is a join).
    Run,
    /// The branch reaching this node was not taken: propagate the skip (joins count it).
    Skip,
    /// A wait node's timer fired.
    Resume,
    /// A split produced no items: the aggregator closing it releases an empty result.
    EmptySplit,
    /// The workflow's `on_failure` node, run after a halt or failure.
    OnFailure,
    /// A wait node in `signal` mode timed out (unless the signal came first).
    SignalTimeout,
}

/// The message between hops. Small whatever the context size: node outputs live in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopMessage {
    pub execution_id: String,
    pub workflow_id: String,
    /// Content hash of the compiled definition this execution is pinned to.
    pub workflow_ref: String,
    pub node_id: String,
    pub kind: HopKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_edge: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<Frame>,
    #[serde(default = "one")]
    pub attempt: u32,
    /// W3C trace context of the execution, carried from hop to hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

fn one() -> u32 {
    1
}

impl HopMessage {
    /// The split scope this message runs in: `""` at top level, `split#i/split2#j` nested.
    pub fn scope(&self) -> String {
        scope_of(&self.lineage)
    }

    /// Deduplication id of this hop: identical for redeliveries of the same message.
    pub fn hop_id(&self) -> String {
        format!(
            "{}|{}|{:?}|{}|{}",
            self.node_id,
            self.scope(),
            self.kind,
            self.from_edge.as_deref().unwrap_or(""),
            self.attempt
        )
    }
}

pub fn scope_of(lineage: &[Frame]) -> String {
    let mut s = String::new();
    for (i, f) in lineage.iter().enumerate() {
        if i > 0 {
            s.push('/');
        }
        s.push_str(&f.split_node_id);
        s.push('#');
        s.push_str(&f.item_index.to_string());
    }
    s
}

/// The chain of scopes to search for a context key, innermost first, ending at top level.
pub fn scope_chain(lineage: &[Frame]) -> Vec<String> {
    (0..=lineage.len())
        .rev()
        .map(|k| scope_of(&lineage[..k]))
        .collect()
}

/// Node status values (Rune's set).
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
