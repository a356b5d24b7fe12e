//! The `log` node: writes one message to the worker's log at a chosen level and passes it on.

use async_trait::async_trait;
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use chrono::SecondsFormat;
use serde_json::{Value, json};

/// Emits a `tracing` event with the execution, node id and node name as fields.
#[derive(Debug)]
pub struct LogNode {
    spec: NodeSpec,
}

impl LogNode {
    pub fn new() -> Self {
        Self {
            spec: NodeSpec {
                type_name: "log",
                aliases: Vec::new(),
                class: NodeClass::Action,
                summary: "Writes a message to the worker log and returns it.",
                params: vec![
                    ParamSpec::required(
                        "message",
                        ParamKind::Any,
                        "Text to log; must not be blank. A non-string value is logged as JSON.",
                    )
                    .non_empty(),
                    ParamSpec::optional(
                        "level",
                        ParamKind::String,
                        "debug, info, warn or error (default info; any other value logs at info).",
                    ),
                ],
                output: r#"{"message": "<the logged text>", "level": "debug|info|warn|error", "logged_at": "<RFC 3339 UTC timestamp>"}"#,
                raw_params: vec![],
                example: r#"{"message": "Order {{$input.order_id}} shipped", "level": "info"}"#,
                pure: true,
            },
        }
    }
}

impl Default for LogNode {
    fn default() -> Self {
        Self::new()
    }
}

/// The level a message is logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// Rune's rule: the four names (case-insensitive here), anything else is `info`.
    fn parse(v: Option<&Value>) -> Self {
        match v
            .and_then(Value::as_str)
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("debug") => Level::Debug,
            Some("warn") => Level::Warn,
            Some("error") => Level::Error,
            _ => Level::Info,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

const MISSING_MESSAGE: &str = "parameter `message` is required: expected a non-blank string";

/// The text to log: a non-blank string as is, any other non-null value JSON-encoded.
fn message_text(v: Option<&Value>) -> Result<String, NodeError> {
    match v {
        None | Some(Value::Null) => Err(NodeError::invalid(MISSING_MESSAGE)),
        Some(Value::String(s)) if s.trim().is_empty() => Err(NodeError::invalid(MISSING_MESSAGE)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
    }
}

#[async_trait]
impl Node for LogNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let message = message_text(input.params.get("message"))?;
        let level = Level::parse(input.params.get("level"));

        let (execution_id, node_id, node_name) =
            (input.execution_id, input.node_id, input.node_name);
        match level {
            Level::Debug => tracing::debug!(execution_id, node_id, node_name, "{message}"),
            Level::Info => tracing::info!(execution_id, node_id, node_name, "{message}"),
            Level::Warn => tracing::warn!(execution_id, node_id, node_name, "{message}"),
            Level::Error => tracing::error!(execution_id, node_id, node_name, "{message}"),
        }

        Ok(NodeOutput::Value(json!({
            "message": message,
            "level": level.as_str(),
            "logged_at": input.clock.now_utc().to_rfc3339_opts(SecondsFormat::Millis, true),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_levels_fall_back_to_info() {
        assert_eq!(Level::parse(None), Level::Info);
        assert_eq!(Level::parse(Some(&json!("trace"))), Level::Info);
        assert_eq!(Level::parse(Some(&json!(3))), Level::Info);
        assert_eq!(Level::parse(Some(&json!(" WARN "))), Level::Warn);
    }

    #[test]
    fn non_string_messages_are_json_encoded_and_blank_ones_rejected() {
        assert_eq!(
            message_text(Some(&json!({"a": 1}))).ok().as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(message_text(Some(&json!(42))).ok().as_deref(), Some("42"));
        assert!(message_text(Some(&json!("  \n"))).is_err());
        assert!(message_text(Some(&Value::Null)).is_err());
    }
}
