//! The start message, which a Rune master, Baton's master and `baton submit` publish to start
//! an execution, and the rule that seeds an execution's input.
//!
//! It is Rune's `NodeExecutionMessage` with the workflow inline (`workflow_definition`), or
//! Baton's start by reference (RFC 0011): the same message naming a definition stored where
//! workers read definitions by its content hash (`workflow_ref`) instead of carrying it.
//! Exactly one of the two.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::graph::is_reference;

/// The context key of an execution's input.
pub const INPUT_KEY: &str = "$input";
/// Rune's name for the same input (what its triggers produce).
pub const TRIGGER_KEY: &str = "$trigger";

/// Where a start message's workflow definition is.
#[derive(Debug, Clone, PartialEq)]
pub enum StartDefinition {
    /// Rune's shape: the whole definition in the message (`workflow_definition`).
    Inline(Value),
    /// A definition stored by its content hash ([`crate::graph::content_hash`]), where workers
    /// read definitions (`workflow_ref`).
    Reference(String),
}

/// Why a start message's definition fields are not exactly one of the two shapes. The text is
/// the dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartShapeError {
    #[error(
        "start message: needs `workflow_definition` (the workflow) or `workflow_ref` (a stored definition's reference); it has neither"
    )]
    Neither,
    #[error(
        "start message: has both `workflow_definition` and `workflow_ref`; exactly one names the workflow"
    )]
    Both,
    #[error(
        "start message: `workflow_ref` must be a definition reference (32 lowercase hex digits)"
    )]
    BadReference,
}

/// The start message, as a master publishes it to start an execution. Rune's other fields
/// (versions, lineage, `is_worker_initiated`) are ignored on receipt.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "WireStart")]
pub struct RuneStart {
    /// A string from Baton; a Rune master may send a number.
    pub workflow_id: Value,
    pub execution_id: String,
    /// The node to start at: a trigger or `$start` means the workflow's start nodes.
    pub current_node: String,
    /// `workflow_definition` or `workflow_ref`.
    pub definition: StartDefinition,
    pub accumulated_context: Option<Map<String, Value>>,
}

/// The fields as they are on the wire: both definition fields optional (`null` is absent).
#[derive(Deserialize)]
struct WireStart {
    workflow_id: Value,
    execution_id: String,
    current_node: String,
    #[serde(default)]
    workflow_definition: Option<Value>,
    #[serde(default)]
    workflow_ref: Option<String>,
    #[serde(default)]
    accumulated_context: Option<Map<String, Value>>,
}

impl TryFrom<WireStart> for RuneStart {
    type Error = StartShapeError;

    fn try_from(wire: WireStart) -> Result<Self, StartShapeError> {
        let definition = match (wire.workflow_definition, wire.workflow_ref) {
            (Some(doc), None) => StartDefinition::Inline(doc),
            (None, Some(r)) if is_reference(&r) => StartDefinition::Reference(r),
            (None, Some(_)) => return Err(StartShapeError::BadReference),
            (None, None) => return Err(StartShapeError::Neither),
            (Some(_), Some(_)) => return Err(StartShapeError::Both),
        };
        Ok(Self {
            workflow_id: wire.workflow_id,
            execution_id: wire.execution_id,
            current_node: wire.current_node,
            definition,
            accumulated_context: wire.accumulated_context,
        })
    }
}

/// The shape of a start message's definition fields, read from its JSON tree: what
/// [`RuneStart`] would refuse, without parsing the rest.
pub fn check_shape(message: &Value) -> Result<(), StartShapeError> {
    let present = |field| message.get(field).filter(|v| !v.is_null());
    match (present("workflow_definition"), present("workflow_ref")) {
        (Some(_), None) => Ok(()),
        (None, Some(r)) if r.as_str().is_some_and(is_reference) => Ok(()),
        (None, Some(_)) => Err(StartShapeError::BadReference),
        (None, None) => Err(StartShapeError::Neither),
        (Some(_), Some(_)) => Err(StartShapeError::Both),
    }
}

/// Field by field in Rune's order, the definition field where Rune has `workflow_definition`:
/// an inline start is byte-identical to what Rune's master sends.
impl Serialize for RuneStart {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = 4 + usize::from(self.accumulated_context.is_some());
        let mut s = serializer.serialize_struct("RuneStart", fields)?;
        s.serialize_field("workflow_id", &self.workflow_id)?;
        s.serialize_field("execution_id", &self.execution_id)?;
        s.serialize_field("current_node", &self.current_node)?;
        match &self.definition {
            StartDefinition::Inline(doc) => s.serialize_field("workflow_definition", doc)?,
            StartDefinition::Reference(r) => s.serialize_field("workflow_ref", r)?,
        }
        if let Some(context) = &self.accumulated_context {
            s.serialize_field("accumulated_context", context)?;
        }
        s.end()
    }
}

impl RuneStart {
    /// The start message Baton publishes with the workflow inline (`baton submit`, the
    /// master with starts by reference off): Rune's shape.
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
            definition: StartDefinition::Inline(workflow_definition),
            accumulated_context: Some(accumulated_context),
        }
    }

    /// A start naming a stored definition by its content hash (the master, RFC 0011). The
    /// definition must be stored where the workers read definitions before this is sent.
    pub fn by_reference(
        workflow_id: impl Into<String>,
        execution_id: impl Into<String>,
        current_node: impl Into<String>,
        workflow_ref: impl Into<String>,
        accumulated_context: Map<String, Value>,
    ) -> Self {
        Self {
            workflow_id: Value::String(workflow_id.into()),
            execution_id: execution_id.into(),
            current_node: current_node.into(),
            definition: StartDefinition::Reference(workflow_ref.into()),
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
    fn a_start_by_reference_names_the_definition_where_rune_has_it_inline() {
        let reference = crate::graph::content_hash(&json!({"nodes": []}));
        let mut context = Map::new();
        seed_input(&mut context, json!({"a": 1}));
        let start = RuneStart::by_reference("wf", "e1", "$start", &reference, context.clone());
        let bytes = serde_json::to_vec(&start).unwrap();
        let expected = json!({
            "workflow_id": "wf",
            "execution_id": "e1",
            "current_node": "$start",
            "workflow_ref": reference,
            "accumulated_context": context,
        });
        assert_eq!(bytes, serde_json::to_vec(&expected).unwrap());
        let back: RuneStart = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.definition, StartDefinition::Reference(reference));
        assert_eq!(back, start);
    }

    #[test]
    fn a_start_names_its_definition_exactly_once_by_a_well_formed_reference() {
        let reference = crate::graph::content_hash(&json!({}));
        let parse = |v: Value| serde_json::from_value::<RuneStart>(v).map_err(|e| e.to_string());
        let base = json!({"workflow_id": "w", "execution_id": "e", "current_node": "$start"});
        let with = |fields: Value| {
            let mut v = base.clone();
            for (k, x) in fields.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        let neither = with(json!({}));
        let both = with(json!({"workflow_definition": {}, "workflow_ref": reference}));
        let null_definition = with(json!({"workflow_definition": null, "workflow_ref": reference}));
        for (message, expected) in [
            (neither, Err(StartShapeError::Neither)),
            (both, Err(StartShapeError::Both)),
            (
                with(json!({"workflow_ref": "sha256:abc"})),
                Err(StartShapeError::BadReference),
            ),
            (
                with(json!({"workflow_ref": reference.to_uppercase()})),
                Err(StartShapeError::BadReference),
            ),
            (
                with(json!({"workflow_ref": 42})),
                Err(StartShapeError::BadReference),
            ),
            (null_definition, Ok(())),
            (with(json!({"workflow_definition": {"nodes": []}})), Ok(())),
        ] {
            assert_eq!(check_shape(&message), expected, "{message}");
            match expected {
                Ok(()) => assert!(parse(message).is_ok()),
                // A non-string reference is refused by its type before its shape is looked at.
                Err(e)
                    if message["workflow_ref"].is_string()
                        || e != StartShapeError::BadReference =>
                {
                    let err = parse(message.clone()).unwrap_err();
                    assert!(err.starts_with(&e.to_string()), "{message}: {err}");
                }
                Err(_) => assert!(parse(message).is_err()),
            }
        }
    }

    #[test]
    fn a_content_hash_is_a_reference() {
        let reference = crate::graph::content_hash(&json!({"nodes": [{"id": "n"}]}));
        assert!(crate::graph::is_reference(&reference), "{reference}");
        assert!(!crate::graph::is_reference(""));
        assert!(!crate::graph::is_reference(&format!("{reference}0")));
    }

    #[test]
    fn a_rune_master_may_send_a_numeric_workflow_id_and_no_context() {
        let body = br#"{"workflow_id":42,"execution_id":"e1","current_node":"n1","workflow_definition":{},"workflow_version":3}"#;
        let start: RuneStart = serde_json::from_slice(body).unwrap();
        assert_eq!(start.workflow_id(), "42");
        assert_eq!(start.accumulated_context, None);
        assert_eq!(start.definition, StartDefinition::Inline(json!({})));
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
