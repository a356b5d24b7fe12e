//! The `Node` trait every node type implements, and the registry that maps type names to
//! implementations. Nodes see resolved parameters only; routing and state are the engine's job.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use baton_core::ErrorCode;
use baton_core::spec::{NodeCatalog, NodeSpec};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::credential_scope::UsedCredential;

/// What a node gets for one run. Its `Debug` shows which credential fields exist, never
/// their values.
pub struct NodeInput<'a> {
    /// The node's parameters with every template resolved, except the node type's raw
    /// parameters (`NodeSpec::raw_params`), which are passed exactly as written.
    pub params: &'a Value,
    /// The context keys the hop read (`$<node>`, `$input`, `$json`, `$item`, …) for nodes that
    /// evaluate raw parameters themselves.
    pub context: &'a Map<String, Value>,
    /// Credential values with Rune's extra `"type"` key, if the node has credentials.
    pub credentials: Option<&'a Map<String, Value>>,
    /// The vault credential behind `credentials` and its scope (`None` for inline
    /// credentials). A node that sends `credentials` somewhere must check every target host
    /// with [`UsedCredential::check_host`] first — redirects included.
    pub used_credential: Option<&'a UsedCredential>,
    pub execution_id: &'a str,
    pub node_id: &'a str,
    pub node_name: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Stable across redeliveries and retries of the same node in the same scope: safe to send
    /// as an `Idempotency-Key`.
    pub idempotency_key: &'a str,
    /// Cancelled when the execution halts or is cancelled; long-running nodes should watch it.
    pub cancel: &'a CancellationToken,
    /// Where the node reads the time (`datetime`'s `now`, timestamps): the engine's clock.
    pub clock: &'a dyn Clock,
}

impl std::fmt::Debug for NodeInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let credential_fields: Option<Vec<&String>> = self.credentials.map(|c| c.keys().collect());
        f.debug_struct("NodeInput")
            .field("params", self.params)
            .field("context", self.context)
            .field("credentials", &credential_fields.map(|k| (k, "<redacted>")))
            .field("used_credential", &self.used_credential)
            .field("execution_id", &self.execution_id)
            .field("node_id", &self.node_id)
            .field("node_name", &self.node_name)
            .field("attempt", &self.attempt)
            .field("idempotency_key", &self.idempotency_key)
            .finish_non_exhaustive()
    }
}

/// A node failure. `code` is machine-readable (e.g. `HTTP_STATUS`, `INVALID_PARAMETER`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    pub message: String,
    pub code: ErrorCode,
    /// False when retrying cannot help (bad parameters); retries are then skipped.
    pub retryable: bool,
}

impl NodeError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code,
            retryable: true,
        }
    }
    /// A failure caused by the node's parameters: retrying would fail the same way.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: ErrorCode::InvalidParameter,
            retryable: false,
        }
    }
}

/// What a node run produced, and what it asks the engine to do with its branch. The engine
/// routes on the variant; a node never signals through keys of its output.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeOutput {
    /// An output to store under the node's key, show in its `success` status and route on.
    Value(Value),
    /// A data-shaping node's result (edit, filter, sort, limit): `output` is stored and shown
    /// like [`NodeOutput::Value`]; `json` is also handed on to later nodes as the context key
    /// `$json`.
    Shaped { output: Value, json: Value },
    /// A split's items: each runs the split's successors in its own scope, where it is
    /// `$item`. The items are stored per item, never in the split's own output.
    Split { items: Vec<Value> },
    /// A timer: the branch parks and resumes after `delay_ms`.
    Wait { delay_ms: u64 },
    /// The branch parks until the signal `name` is delivered, or fails with `SIGNAL_TIMEOUT`
    /// after `timeout_ms`.
    AwaitSignal {
        name: String,
        timeout_ms: Option<u64>,
    },
    /// Start a child execution of a catalog workflow (the `workflow` node).
    StartChild(ChildStart),
}

impl NodeOutput {
    /// The output as the node's context key would show it, for callers that only want a value
    /// (an `on_failure` node's run, tests): the split's item count instead of its items, the
    /// timer's delay, the signal awaited, the child to start.
    pub fn into_value(self) -> Value {
        match self {
            Self::Value(output) | Self::Shaped { output, .. } => output,
            Self::Split { items } => json!({"_split_items_count": items.len()}),
            Self::Wait { delay_ms } => json!({"delay_ms": delay_ms}),
            Self::AwaitSignal { name, timeout_ms } => {
                json!({"signal": name, "timeout_ms": timeout_ms})
            }
            Self::StartChild(child) => child.to_value(),
        }
    }
}

impl From<Value> for NodeOutput {
    fn from(output: Value) -> Self {
        Self::Value(output)
    }
}

/// What a `workflow` node asks for: a child execution of `workflow_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildStart {
    pub workflow_id: String,
    /// The catalog version; `None`: the latest.
    pub version: Option<u32>,
    /// The child's `$input` (and `$trigger`).
    pub input: Value,
    /// Park the branch until the child completes (true), or go on at once with its id.
    pub wait: bool,
}

impl ChildStart {
    /// `{workflow_id, version, input, wait}`.
    pub fn to_value(&self) -> Value {
        json!({
            "workflow_id": self.workflow_id,
            "version": self.version,
            "input": self.input,
            "wait": self.wait,
        })
    }
}

/// A node type.
#[async_trait]
pub trait Node: Send + Sync {
    fn spec(&self) -> &NodeSpec;
    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError>;
    /// Submit-time checks of literal parameters beyond the [`NodeSpec`]'s kinds and ranges
    /// (methods, time zones, operators, scripts compiled). Paths are relative to `parameters`;
    /// templated values are the node's to skip. Default: none.
    fn check(&self, _params: &serde_json::Value) -> Vec<baton_core::validate::Problem> {
        Vec::new()
    }
}

/// Node types by name and alias.
#[derive(Clone, Default)]
pub struct NodeRegistry {
    by_name: HashMap<String, Arc<dyn Node>>,
    ordered: Vec<Arc<dyn Node>>,
}

impl std::fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.ordered.iter().map(|n| n.spec().type_name))
            .finish()
    }
}

impl NodeRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, node: Arc<dyn Node>) {
        let spec = node.spec();
        self.by_name
            .insert(spec.type_name.to_string(), node.clone());
        for alias in &spec.aliases {
            self.by_name.insert((*alias).to_string(), node.clone());
        }
        self.ordered.push(node);
    }

    pub fn get(&self, type_name: &str) -> Option<&Arc<dyn Node>> {
        self.by_name.get(type_name)
    }

    /// Node types in registration order (for `baton nodes`).
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<dyn Node>> {
        self.ordered.iter()
    }
}

impl NodeCatalog for NodeRegistry {
    fn spec(&self, type_name: &str) -> Option<&NodeSpec> {
        self.by_name.get(type_name).map(|n| n.spec())
    }

    fn specs(&self) -> Vec<&NodeSpec> {
        self.ordered.iter().map(|n| n.spec()).collect()
    }

    fn check_params(
        &self,
        type_name: &str,
        params: &serde_json::Value,
    ) -> Vec<baton_core::validate::Problem> {
        self.by_name
            .get(type_name)
            .map(|n| n.check(params))
            .unwrap_or_default()
    }
}
