//! Rune's start message (`NodeExecutionMessage`), which a Rune master, Baton's master and
//! `baton submit` publish to start an execution, and the rule that seeds an execution's input.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The context key of an execution's input.
pub const INPUT_KEY: &str = "$input";
/// Rune's name for the same input (what its triggers produce).
pub const TRIGGER_KEY: &str = "$trigger";

/// Rune's `NodeExecutionMessage`, as a master publishes it to start an execution. Rune's other
/// fields (versions, lineage, `is_worker_initiated`) are ignored on receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuneStart {
    /// A string from Baton; a Rune master may send a number.
    pub workflow_id: Value,
    pub execution_id: String,
    /// The node to start at: a trigger or `$start` means the workflow's start nodes.
    pub current_node: String,
    pub workflow_definition: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accumulated_context: Option<Map<String, Value>>,
}

impl RuneStart {
    /// The start message Baton publishes (`baton submit`, the master).
    pub fn new(
        workflow_id: impl Into<String>,
        execution_id: impl Into<String>,
        current_node: impl Into<String>,
        workflow_definition: Value,
        accumulated_context: Map<String, Value>,
    ) -> Self {
        Self {
            workflow_id: Value::String(workflow_id.into()),
            execution_id: execution_id.into(),
            current_node: current_node.into(),
            workflow_definition,
            accumulated_context: Some(accumulated_context),
        }
    }

    /// The workflow id as text (a number in decimal, `""` when null).
    pub fn workflow_id(&self) -> String {
        match &self.workflow_id {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// The execution's initial context: the accumulated context, with `$input` defaulting to
    /// `$trigger` ([`default_input_to_trigger`]).
    pub fn seed(&self) -> Map<String, Value> {
        let mut seed = self.accumulated_context.clone().unwrap_or_default();
        default_input_to_trigger(&mut seed);
        seed
    }
}

/// Seeds an execution's input: `input` becomes both `$input` and `$trigger` (in that order,
/// replacing earlier values), so Baton's and Rune's references both find it.
pub fn seed_input(context: &mut Map<String, Value>, input: Value) {
    context.insert(INPUT_KEY.into(), input.clone());
    context.insert(TRIGGER_KEY.into(), input);
}

/// A start whose context has no `$input` (a Rune master seeds only `$trigger`): `$input`
/// becomes `$trigger`, or `{}` if there is none either.
pub fn default_input_to_trigger(context: &mut Map<String, Value>) {
    if !context.contains_key(INPUT_KEY) {
        let input = context
            .get(TRIGGER_KEY)
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        context.insert(INPUT_KEY.into(), input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_start_message_is_byte_identical_to_the_old_json_form() {
        let definition = json!({"nodes": [{"id": "n1"}], "edges": []});
        let mut context = Map::new();
        seed_input(&mut context, json!({"a": 1}));
        let start = RuneStart::new("wf", "e1", "$start", definition.clone(), context.clone());
        let old = json!({
            "workflow_id": "wf",
            "execution_id": "e1",
            "current_node": "$start",
            "workflow_definition": definition,
            "accumulated_context": context,
        });
        let bytes = serde_json::to_vec(&start).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&old).unwrap());
        assert_eq!(serde_json::from_slice::<RuneStart>(&bytes).unwrap(), start);
    }

    #[test]
    fn a_rune_master_may_send_a_numeric_workflow_id_and_no_context() {
        let body = br#"{"workflow_id":42,"execution_id":"e1","current_node":"n1","workflow_definition":{},"workflow_version":3}"#;
        let start: RuneStart = serde_json::from_slice(body).unwrap();
        assert_eq!(start.workflow_id(), "42");
        assert_eq!(start.accumulated_context, None);
        assert_eq!(Value::Object(start.seed()), json!({"$input": {}}));
    }

    #[test]
    fn input_is_seeded_as_input_then_trigger() {
        let mut context = object(json!({"$input": 0, "Earlier": 1}));
        seed_input(&mut context, json!("x"));
        let keys: Vec<&str> = context.keys().map(String::as_str).collect();
        assert_eq!(keys, ["$input", "Earlier", "$trigger"]);
        assert_eq!(
            Value::Object(context),
            json!({"$input": "x", "Earlier": 1, "$trigger": "x"})
        );
    }

    #[test]
    fn input_defaults_to_trigger_but_never_replaces_it() {
        let mut only_trigger = object(json!({"$trigger": {"a": 1}}));
        default_input_to_trigger(&mut only_trigger);
        assert_eq!(
            Value::Object(only_trigger),
            json!({"$trigger": {"a": 1}, "$input": {"a": 1}})
        );
        let mut both = object(json!({"$input": 1, "$trigger": 2}));
        default_input_to_trigger(&mut both);
        assert_eq!(Value::Object(both), json!({"$input": 1, "$trigger": 2}));
    }
}
