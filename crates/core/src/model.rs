//! The workflow definition as users write it: Rune's DSL shape plus Baton's additions
//! (typed edges, retry, timeout, workflow name/version, `on_failure`). Unknown fields are kept
//! in `extra` so a definition round-trips without loss.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A workflow: a DAG of nodes connected by edges.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Workflow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Value>,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// Id of a node run once when the execution fails or halts, before the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// The execution's deadline (ms from its start): still running then, it fails with
    /// `EXECUTION_TIMEOUT` and its running nodes are cancelled (RFC 0003).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The most status detail this workflow's runs publish (RFC 0011): a worker's own
    /// `BATON_STATUS_MODE` is lowered to it, never raised. `None`: the worker's mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_mode: Option<crate::wire::StatusMode>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One step of a workflow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Node {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub node_type: String,
    #[serde(default)]
    pub trigger: bool,
    #[serde(default = "empty_object")]
    pub parameters: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorHandling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Rune's credential object; `values` holds the secrets injected by the master.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Credential {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type", default)]
    pub cred_type: String,
    #[serde(default)]
    pub values: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Rune's per-node error policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorHandling {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_edge: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The error policy after defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Stop the execution and cancel other branches (default).
    Halt,
    /// Record the failure and continue on the success edges.
    Ignore,
    /// Follow only the error edge; `$error` describes the failure.
    Branch,
}

impl ErrorKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "halt" => Some(Self::Halt),
            "ignore" | "continue" => Some(Self::Ignore),
            "branch" => Some(Self::Branch),
            _ => None,
        }
    }
}

/// An edge between two nodes. `on` says when it is followed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Edge {
    pub id: String,
    pub src: String,
    pub dst: String,
    /// `success` (default), `error`, `true`, `false`, or a switch case name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Per-node retry with exponential backoff. `max_attempts` counts the first attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
    pub multiplier: f64,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            initial_delay_ms: 200,
            max_delay_ms: 10_000,
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `next_attempt` (2 = first retry), before jitter.
    /// `unit_random` in [0,1) is supplied by the caller so this stays pure.
    pub fn delay_ms(&self, next_attempt: u32, unit_random: f64) -> u64 {
        let exponent = next_attempt.saturating_sub(2) as i32;
        let base = self.initial_delay_ms as f64 * self.multiplier.max(1.0).powi(exponent);
        let capped = base.min(self.max_delay_ms as f64).max(0.0);
        let delay = if self.jitter {
            // "Equal jitter": half fixed, half random, so retries never collapse to zero.
            capped / 2.0 + capped / 2.0 * unit_random.clamp(0.0, 1.0)
        } else {
            capped
        };
        delay.round() as u64
    }
}

impl Workflow {
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}
