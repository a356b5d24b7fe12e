//! Classifying a delivery: a Baton hop message, a Rune start message (a master that speaks
//! Rune's protocol), or poison.

use serde::Deserialize;
use serde_json::{Map, Value};

use baton_core::message::HopMessage;

/// Rune's `NodeExecutionMessage`, as a Rune master publishes it to start an execution.
#[derive(Debug, Deserialize)]
pub struct RuneStart {
    pub workflow_id: Value,
    pub execution_id: String,
    pub current_node: String,
    pub workflow_definition: Value,
    #[serde(default)]
    pub accumulated_context: Option<Map<String, Value>>,
}

impl RuneStart {
    pub fn workflow_id(&self) -> String {
        match &self.workflow_id {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }
}

/// What a delivery turned out to be.
#[derive(Debug)]
pub enum Intake {
    Hop(Box<HopMessage>),
    RuneStart(Box<RuneStart>),
    /// `{"cancel_execution": "<id>"}`: stop that execution.
    Cancel(String),
    /// `{"signal": {"execution_id", "name", "data"}}`: deliver a named signal.
    Signal {
        execution_id: String,
        name: String,
        data: serde_json::Value,
    },
    /// Never processable. `execution` names the execution when it could be read.
    Poison {
        reason: String,
        execution: Option<(String, String)>,
    },
}

pub fn classify(body: &[u8], max_bytes: usize) -> Intake {
    if body.len() > max_bytes {
        return Intake::Poison {
            reason: format!(
                "message is {} bytes, over the {max_bytes}-byte limit",
                body.len()
            ),
            execution: None,
        };
    }
    // The common case, a Baton hop message, parses straight into its type (no intermediate
    // JSON tree). Anything else — including a malformed hop — goes the slow, explanatory way.
    if let Ok(msg) = serde_json::from_slice::<HopMessage>(body) {
        return Intake::Hop(Box::new(msg));
    }
    // Then a well-formed Rune start message, also straight into its type: its definition is
    // the bulk of the bytes, and a JSON tree of it would be built and copied for nothing.
    if let Ok(start) = serde_json::from_slice::<RuneStart>(body)
        && !start.execution_id.is_empty()
        && !start.current_node.is_empty()
        && start.workflow_definition.is_object()
    {
        return Intake::RuneStart(Box::new(start));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Intake::Poison {
                reason: format!("body is not JSON: {e}"),
                execution: None,
            };
        }
    };
    let execution = || -> Option<(String, String)> {
        let exec = value.get("execution_id")?.as_str()?.to_string();
        let wf = match value.get("workflow_id") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        (!exec.is_empty()).then_some((wf, exec))
    };
    if let Some(id) = value.get("cancel_execution") {
        return match id.as_str() {
            Some(id) if !id.is_empty() => Intake::Cancel(id.to_string()),
            _ => Intake::Poison {
                reason: "`cancel_execution` must be a non-empty execution id".into(),
                execution: None,
            },
        };
    }
    if let Some(sig) = value
        .get("signal")
        .filter(|_| value.get("workflow_ref").is_none())
    {
        let field = |k: &str| {
            sig.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        return match (field("execution_id"), field("name")) {
            (Some(execution_id), Some(name)) => Intake::Signal {
                execution_id,
                name,
                data: sig.get("data").cloned().unwrap_or(Value::Null),
            },
            _ => Intake::Poison {
                reason: "`signal` needs non-empty `execution_id` and `name`".into(),
                execution: None,
            },
        };
    }
    if value.get("workflow_definition").is_some() {
        return match serde_json::from_value::<RuneStart>(value.clone()) {
            Ok(s) if s.execution_id.is_empty() => Intake::Poison {
                reason: "Rune message: `execution_id` must be a non-empty string".into(),
                execution: None,
            },
            Ok(s) if s.current_node.is_empty() => Intake::Poison {
                reason: "Rune message: `current_node` must be a non-empty string".into(),
                execution: execution(),
            },
            Ok(s) => Intake::RuneStart(Box::new(s)),
            Err(e) => Intake::Poison {
                reason: format!("Rune message does not match NodeExecutionMessage: {e}"),
                execution: execution(),
            },
        };
    }
    if value.get("workflow_ref").is_some() {
        return match serde_json::from_value::<HopMessage>(value.clone()) {
            Ok(m) => Intake::Hop(Box::new(m)),
            Err(e) => Intake::Poison {
                reason: format!("hop message is malformed: {e}"),
                execution: execution(),
            },
        };
    }
    Intake::Poison {
        reason: "neither a Baton hop message (`workflow_ref`) nor a Rune NodeExecutionMessage (`workflow_definition`)".into(),
        execution: execution(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_poison_with_a_reason() {
        assert!(
            matches!(classify(b"not json", 100), Intake::Poison { reason, .. } if reason.starts_with("body is not JSON"))
        );
        assert!(
            matches!(classify(&[b' '; 200], 100), Intake::Poison { reason, .. } if reason.contains("limit"))
        );
        assert!(
            matches!(classify(br#"{"execution_id":"e1","workflow_id":7}"#, 100), Intake::Poison { execution: Some((w, e)), .. } if w == "7" && e == "e1")
        );
    }

    #[test]
    fn rune_start_messages_are_recognised() {
        let body = br#"{"workflow_id":"42","execution_id":"x","current_node":"n1","workflow_definition":{"nodes":[]},"accumulated_context":{"$trigger":{}}}"#;
        assert!(matches!(classify(body, 10_000), Intake::RuneStart(_)));
    }
}
