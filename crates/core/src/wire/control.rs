//! Control messages a master or the CLI sends to the worker pool through `workflow.execution`:
//! cancel an execution, deliver a named signal to it; and the broadcast a race's release sends
//! every worker to cancel its losing nodes ([`NodeCancel`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// `{"cancel_execution": "<id>"}`: stop that execution (RFC 0004, "Cancel before start").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelMessage {
    pub execution_id: String,
}

#[derive(Serialize, Deserialize)]
struct CancelEnvelope<S> {
    cancel_execution: S,
}

impl Serialize for CancelMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CancelEnvelope {
            cancel_execution: self.execution_id.as_str(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CancelMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let envelope = CancelEnvelope::<String>::deserialize(deserializer)?;
        Ok(Self {
            execution_id: envelope.cancel_execution,
        })
    }
}

impl CancelMessage {
    pub fn new(execution_id: impl Into<String>) -> Self {
        Self {
            execution_id: execution_id.into(),
        }
    }

    /// Reads the value of a body's `cancel_execution` field: a non-empty execution id.
    pub(crate) fn from_field(id: &Value) -> Option<Self> {
        id.as_str().filter(|id| !id.is_empty()).map(Self::new)
    }
}

/// `{"execution_id", "scope", "node_ids"}`: cancel the runs of these nodes of the execution in
/// `scope` or a scope nested in it (a `cancel_losers` merge released for its winner). Sent on
/// the store's cancellation broadcast next to plain execution ids, which never start with `{`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCancel {
    pub execution_id: String,
    pub scope: String,
    pub node_ids: Vec<String>,
}

impl NodeCancel {
    /// The broadcast's payload.
    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A node cancellation if `payload` is one (a JSON object), `None` for an execution id.
    pub fn from_payload(payload: &str) -> Option<Self> {
        payload
            .starts_with('{')
            .then(|| serde_json::from_str(payload).ok())
            .flatten()
    }
}

/// `{"signal": {"execution_id", "name", "data"}}`: deliver the signal `name` with `data` to the
/// execution's waiting nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalMessage {
    pub execution_id: String,
    pub name: String,
    /// `null` when the sender gave none.
    pub data: Value,
}

#[derive(Serialize)]
struct SignalEnvelopeOut<'a> {
    signal: SignalBodyOut<'a>,
}

#[derive(Serialize)]
struct SignalBodyOut<'a> {
    execution_id: &'a str,
    name: &'a str,
    data: &'a Value,
}

#[derive(Deserialize)]
struct SignalEnvelopeIn {
    signal: SignalBodyIn,
}

#[derive(Deserialize)]
struct SignalBodyIn {
    execution_id: String,
    name: String,
    #[serde(default)]
    data: Value,
}

impl From<SignalBodyIn> for SignalMessage {
    fn from(body: SignalBodyIn) -> Self {
        Self {
            execution_id: body.execution_id,
            name: body.name,
            data: body.data,
        }
    }
}

impl Serialize for SignalMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SignalEnvelopeOut {
            signal: SignalBodyOut {
                execution_id: &self.execution_id,
                name: &self.name,
                data: &self.data,
            },
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SignalMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(SignalEnvelopeIn::deserialize(deserializer)?.signal.into())
    }
}

impl SignalMessage {
    pub fn new(execution_id: impl Into<String>, name: impl Into<String>, data: Value) -> Self {
        Self {
            execution_id: execution_id.into(),
            name: name.into(),
            data,
        }
    }

    /// Reads the value of a body's `signal` field: non-empty `execution_id` and `name`
    /// strings, and any `data` (`null` if absent).
    pub(crate) fn from_field(signal: &Value) -> Option<Self> {
        let body = SignalBodyIn::deserialize(signal).ok()?;
        (!body.execution_id.is_empty() && !body.name.is_empty()).then(|| body.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cancel_is_byte_identical_to_the_old_json_form_and_round_trips() {
        let cancel = CancelMessage::new("e1");
        let bytes = serde_json::to_vec(&cancel).unwrap();
        assert_eq!(
            bytes,
            serde_json::to_vec(&json!({"cancel_execution": "e1"})).unwrap()
        );
        assert_eq!(
            serde_json::from_slice::<CancelMessage>(&bytes).unwrap(),
            cancel
        );
    }

    #[test]
    fn a_signal_is_byte_identical_to_the_old_json_form_and_round_trips() {
        let data = json!({"by": "ada", "n": [1, 2]});
        let signal = SignalMessage::new("e1", "approve", data.clone());
        let bytes = serde_json::to_vec(&signal).unwrap();
        let old = json!({"signal": {"execution_id": "e1", "name": "approve", "data": data}});
        assert_eq!(bytes, serde_json::to_vec(&old).unwrap());
        assert_eq!(
            serde_json::from_slice::<SignalMessage>(&bytes).unwrap(),
            signal
        );
    }

    #[test]
    fn signal_data_defaults_to_null() {
        let signal: SignalMessage =
            serde_json::from_str(r#"{"signal":{"execution_id":"e1","name":"go"}}"#).unwrap();
        assert_eq!(signal, SignalMessage::new("e1", "go", Value::Null));
        assert_eq!(
            serde_json::to_string(&signal).unwrap(),
            r#"{"signal":{"execution_id":"e1","name":"go","data":null}}"#
        );
    }

    #[test]
    fn fields_must_be_non_empty_strings() {
        assert_eq!(
            CancelMessage::from_field(&json!("e1")),
            Some(CancelMessage::new("e1"))
        );
        assert_eq!(CancelMessage::from_field(&json!("")), None);
        assert_eq!(CancelMessage::from_field(&json!(7)), None);
        assert_eq!(
            SignalMessage::from_field(&json!({"execution_id": "e1", "name": "go", "data": 1})),
            Some(SignalMessage::new("e1", "go", json!(1)))
        );
        assert_eq!(
            SignalMessage::from_field(&json!({"execution_id": "", "name": "go"})),
            None
        );
        assert_eq!(
            SignalMessage::from_field(&json!({"execution_id": "e1", "name": 3})),
            None
        );
        assert_eq!(SignalMessage::from_field(&json!("go")), None);
    }

    #[test]
    fn a_node_cancel_keeps_its_payload_and_is_told_apart_from_an_execution_id() {
        let cancel = NodeCancel {
            execution_id: "e1".into(),
            scope: "s#2".into(),
            node_ids: vec!["slow".into()],
        };
        let payload = cancel.to_payload();
        assert_eq!(
            payload,
            r#"{"execution_id":"e1","scope":"s#2","node_ids":["slow"]}"#
        );
        assert_eq!(NodeCancel::from_payload(&payload), Some(cancel));
        assert_eq!(NodeCancel::from_payload("e1"), None);
    }
}
