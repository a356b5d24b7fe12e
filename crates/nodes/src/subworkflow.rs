//! `workflow` (sub-workflow): starts another workflow from the catalog as a child execution and
//! continues with the child's final context as its output. This type only checks and normalises
//! the parameters; starting the child, parking the branch until the child completes, the depth
//! limit and cancellation are the engine's (`baton_engine::hop`, "sub-workflows").

use async_trait::async_trait;
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_engine::{ChildStart, Node, NodeError, NodeInput, NodeOutput};
use serde_json::{Value, json};

/// The type name the engine recognises (`baton_engine::hop::SUBWORKFLOW_TYPE`).
pub const TYPE_NAME: &str = baton_engine::hop::SUBWORKFLOW_TYPE;

/// `workflow`: runs a stored workflow as a child execution.
#[derive(Debug)]
pub struct SubWorkflowNode {
    spec: NodeSpec,
}

impl Default for SubWorkflowNode {
    fn default() -> Self {
        Self {
            spec: NodeSpec {
                type_name: TYPE_NAME,
                aliases: vec!["subworkflow", "sub_workflow"],
                class: NodeClass::Action,
                summary: "Runs a stored workflow (by id, from the workflow catalog) as a child execution and continues with its final context.",
                params: vec![
                    ParamSpec::required(
                        "workflow_id",
                        ParamKind::String,
                        "Id of the workflow in the catalog (`baton run --workflows DIR`, or the master's `POST /workflows`).",
                    ),
                    ParamSpec::optional(
                        "version",
                        ParamKind::Integer,
                        "Catalog version to run, >= 1 (default: the latest when the node runs).",
                    ),
                    ParamSpec::optional(
                        "input",
                        ParamKind::Any,
                        "The child's `$input` and `$trigger` (templated; default `{}`).",
                    ),
                    ParamSpec::optional(
                        "wait",
                        ParamKind::Boolean,
                        "true (default): continue when the child completes, with its final context as output; false: start it and continue at once (fire and forget).",
                    ),
                ],
                output: r#"wait: the child's final context (also `$json`), e.g. {"$input": {...}, "<child node key>": <its output>, ...}; a failed or halted child fails this node with SUBWORKFLOW_FAILED. wait false: {"execution_id": "<child>", "workflow_id": "...", "version": n}"#,
                raw_params: vec![],
                example: r#"{"workflow_id": "enrich-customer", "input": {"customer_id": "{{ $input.id }}"}}"#,
                pure: false,
            },
        }
    }
}

#[async_trait]
impl Node for SubWorkflowNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// Checks the parameters and asks the engine for the child execution.
    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        child_start(input.params).map(NodeOutput::StartChild)
    }
}

/// The parameters the engine acts on, with defaults applied, as JSON:
/// `{workflow_id, version, input, wait}`.
pub fn normalise(params: &Value) -> Result<Value, NodeError> {
    child_start(params).map(|child| child.to_value())
}

/// The child execution the parameters ask for, with defaults applied.
pub fn child_start(params: &Value) -> Result<ChildStart, NodeError> {
    let workflow_id = params
        .get("workflow_id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            NodeError::invalid("parameter `workflow_id` is required: expected a workflow id")
        })?;
    let version = match params.get("version") {
        None | Some(Value::Null) => None,
        Some(v) => match v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
        {
            Some(n) => Some(n),
            None => {
                return Err(NodeError::invalid(format!(
                    "parameter `version`: expected an integer >= 1, found {v}"
                )));
            }
        },
    };
    let wait = match params.get("wait") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(NodeError::invalid(format!(
                "parameter `wait`: expected true or false, found {other}"
            )));
        }
    };
    let child_input = match params.get("input") {
        None | Some(Value::Null) => json!({}),
        Some(v) => v.clone(),
    };
    Ok(ChildStart {
        workflow_id: workflow_id.to_string(),
        version,
        input: child_input,
        wait,
    })
}
