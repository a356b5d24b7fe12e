//! Classifying an inbound delivery on `workflow.execution`: a Baton hop message, a start message
//! (Rune's, with the workflow inline, or by reference), a cancel or signal request, or poison
//! with the reason it is dead-lettered for. Pure: the worker does the I/O.

use serde_json::Value;

use super::control::{CancelMessage, SignalMessage};
use super::hop::HopMessage;
use super::start::{RuneStart, StartDefinition, StartShapeError, check_shape};

/// What a delivery turned out to be.
#[derive(Debug)]
pub enum Intake {
    Hop(Box<HopMessage>),
    RuneStart(Box<RuneStart>),
    Cancel(CancelMessage),
    Signal(SignalMessage),
    /// Never processable. `execution` names the execution (`(workflow_id, execution_id)`) when
    /// it could be read, so that it can be failed.
    Poison {
        reason: PoisonReason,
        execution: Option<(String, String)>,
    },
}

/// Why a delivery cannot be processed; its text is the dead-letter reason (header
/// `x-baton-reason`, RFC 0004).
#[derive(Debug, thiserror::Error)]
pub enum PoisonReason {
    #[error("message is {bytes} bytes, over the {limit}-byte limit")]
    TooLarge { bytes: usize, limit: usize },
    #[error("body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("`cancel_execution` must be a non-empty execution id")]
    BadCancel,
    #[error("`signal` needs non-empty `execution_id` and `name`")]
    BadSignal,
    #[error("Rune message: `execution_id` must be a non-empty string")]
    RuneWithoutExecutionId,
    #[error("Rune message: `current_node` must be a non-empty string")]
    RuneWithoutCurrentNode,
    #[error("Rune message does not match NodeExecutionMessage: {0}")]
    RuneMalformed(#[source] serde_json::Error),
    /// A start message that names its workflow neither inline nor by reference, both ways, or
    /// by a malformed reference.
    #[error(transparent)]
    StartShape(#[from] StartShapeError),
    #[error("hop message is malformed: {0}")]
    HopMalformed(#[source] serde_json::Error),
    #[error(
        "neither a Baton hop message (`workflow_ref`) nor a Rune NodeExecutionMessage (`workflow_definition`)"
    )]
    Unrecognised,
}

impl PoisonReason {
    /// The poison is a start message's: the execution it names may not exist yet, and is
    /// created to be failed (its master's record would stay `running` otherwise).
    pub fn is_start(&self) -> bool {
        matches!(self, Self::StartShape(_))
    }
}

pub fn classify(body: &[u8], max_bytes: usize) -> Intake {
    let poison = |reason, execution| Intake::Poison { reason, execution };
    if body.len() > max_bytes {
        let reason = PoisonReason::TooLarge {
            bytes: body.len(),
            limit: max_bytes,
        };
        return poison(reason, None);
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
        && match &start.definition {
            StartDefinition::Inline(doc) => doc.is_object(),
            StartDefinition::Reference(_) => true,
        }
    {
        return Intake::RuneStart(Box::new(start));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return poison(PoisonReason::NotJson(e), None),
    };
    let execution = || -> Option<(String, String)> {
        let exec = value.get("execution_id")?.as_str()?.to_string();
        let wf = match value.get("workflow_id") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        // An id longer than any real one is not one: nothing to fail under it.
        (!exec.is_empty() && exec.len() <= 256 && wf.len() <= 256).then_some((wf, exec))
    };
    if let Some(id) = value.get("cancel_execution") {
        return match CancelMessage::from_field(id) {
            Some(cancel) => Intake::Cancel(cancel),
            None => poison(PoisonReason::BadCancel, None),
        };
    }
    if let Some(sig) = value
        .get("signal")
        .filter(|_| value.get("workflow_ref").is_none())
    {
        return match SignalMessage::from_field(sig) {
            Some(signal) => Intake::Signal(signal),
            None => poison(PoisonReason::BadSignal, None),
        };
    }
    // `current_node` is a start's field (a hop names `node_id`).
    if value.get("workflow_definition").is_some() || value.get("current_node").is_some() {
        if let Err(shape) = check_shape(&value) {
            return poison(PoisonReason::StartShape(shape), execution());
        }
        return match serde_json::from_value::<RuneStart>(value.clone()) {
            Ok(s) if s.execution_id.is_empty() => {
                poison(PoisonReason::RuneWithoutExecutionId, None)
            }
            Ok(s) if s.current_node.is_empty() => {
                poison(PoisonReason::RuneWithoutCurrentNode, execution())
            }
            Ok(s) => Intake::RuneStart(Box::new(s)),
            Err(e) => poison(PoisonReason::RuneMalformed(e), execution()),
        };
    }
    if value.get("workflow_ref").is_some() {
        return match serde_json::from_value::<HopMessage>(value.clone()) {
            Ok(m) => Intake::Hop(Box::new(m)),
            Err(e) => poison(PoisonReason::HopMalformed(e), execution()),
        };
    }
    poison(PoisonReason::Unrecognised, execution())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::start::seed_input;
    use serde_json::{Map, json};

    fn reason_of(intake: Intake) -> String {
        match intake {
            Intake::Poison { reason, .. } => reason.to_string(),
            other => panic!("not poison: {other:?}"),
        }
    }

    #[test]
    fn garbage_is_poison_with_a_reason() {
        assert!(
            matches!(classify(b"not json", 100), Intake::Poison { reason, .. } if reason.to_string().starts_with("body is not JSON"))
        );
        assert!(
            matches!(classify(&[b' '; 200], 100), Intake::Poison { reason, .. } if reason.to_string().contains("limit"))
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

    #[test]
    fn what_baton_publishes_is_classified_as_what_it_is() {
        let mut context = Map::new();
        seed_input(&mut context, json!({}));
        let start = RuneStart::new("wf", "e1", "$start", json!({"nodes": []}), context);
        let body = serde_json::to_vec(&start).unwrap();
        assert!(matches!(classify(&body, 10_000), Intake::RuneStart(s) if *s == start));

        let cancel = CancelMessage::new("e1");
        let body = serde_json::to_vec(&cancel).unwrap();
        assert!(matches!(classify(&body, 10_000), Intake::Cancel(c) if c == cancel));

        let signal = SignalMessage::new("e1", "go", json!({"ok": true}));
        let body = serde_json::to_vec(&signal).unwrap();
        assert!(matches!(classify(&body, 10_000), Intake::Signal(s) if s == signal));
    }

    /// The reasons are what operators read in `x-baton-reason`: their text is pinned.
    #[test]
    fn poison_reasons_keep_their_text() {
        assert_eq!(
            reason_of(classify(&[b' '; 200], 100)),
            "message is 200 bytes, over the 100-byte limit"
        );
        assert_eq!(
            reason_of(classify(br#"{"cancel_execution":""}"#, 1000)),
            "`cancel_execution` must be a non-empty execution id"
        );
        assert_eq!(
            reason_of(classify(br#"{"signal":{"execution_id":"e1"}}"#, 1000)),
            "`signal` needs non-empty `execution_id` and `name`"
        );
        assert_eq!(
            reason_of(classify(
                br#"{"workflow_id":"w","execution_id":"","current_node":"n","workflow_definition":{}}"#,
                1000
            )),
            "Rune message: `execution_id` must be a non-empty string"
        );
        assert!(matches!(
            classify(br#"{"workflow_id":"w","execution_id":"e1","current_node":"","workflow_definition":{}}"#, 1000),
            Intake::Poison { reason: PoisonReason::RuneWithoutCurrentNode, execution: Some((w, e)) } if w == "w" && e == "e1"
        ));
        assert!(
            reason_of(classify(
                br#"{"execution_id":"e1","workflow_definition":{}}"#,
                1000
            ))
            .starts_with("Rune message does not match NodeExecutionMessage: ")
        );
        assert!(
            reason_of(classify(
                br#"{"execution_id":"e1","workflow_ref":"r"}"#,
                1000
            ))
            .starts_with("hop message is malformed: ")
        );
        assert_eq!(
            reason_of(classify(br#"{"hello":1}"#, 1000)),
            "neither a Baton hop message (`workflow_ref`) nor a Rune NodeExecutionMessage (`workflow_definition`)"
        );
    }

    #[test]
    fn a_200_kb_field_gives_a_reason_that_bounds_to_a_kilobyte() {
        let body = format!(
            r#"{{"execution_id":"e1","workflow_ref":"r","workflow_id":"w","node_id":"n","kind":"run","attempt":"{}"}}"#,
            "x".repeat(200_000)
        );
        let reason = reason_of(classify(body.as_bytes(), 1_000_000));
        let bounded = crate::limits::bounded(&reason, crate::limits::MAX_REASON_BYTES);
        assert!(bounded.len() <= crate::limits::MAX_REASON_BYTES);
        assert!(bounded.starts_with("hop message is malformed"), "{bounded}");
    }

    #[test]
    fn a_start_by_reference_is_a_start_and_its_malformed_shapes_are_poison_naming_the_field() {
        let reference = crate::graph::content_hash(&json!({"nodes": []}));
        let start = RuneStart::by_reference("wf", "e1", "$start", &reference, Map::new());
        let body = serde_json::to_vec(&start).unwrap();
        assert!(matches!(classify(&body, 10_000), Intake::RuneStart(s) if *s == start));

        let neither = br#"{"workflow_id":"w","execution_id":"e1","current_node":"$start"}"#;
        let both = format!(
            r#"{{"workflow_id":"w","execution_id":"e1","current_node":"$start","workflow_definition":{{}},"workflow_ref":"{reference}"}}"#
        );
        let bad = br#"{"workflow_id":"w","execution_id":"e1","current_node":"$start","workflow_ref":"sha256:0"}"#;
        for (body, expected) in [
            (&neither[..], StartShapeError::Neither),
            (both.as_bytes(), StartShapeError::Both),
            (&bad[..], StartShapeError::BadReference),
        ] {
            match classify(body, 10_000) {
                Intake::Poison {
                    reason: reason @ PoisonReason::StartShape(_),
                    execution: Some((w, e)),
                } => {
                    assert_eq!(reason.to_string(), expected.to_string());
                    assert!(reason.is_start());
                    assert_eq!((w.as_str(), e.as_str()), ("w", "e1"));
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    /// The start shape reasons name the fields; their text is pinned like the others.
    #[test]
    fn start_shape_reasons_keep_their_text() {
        let neither = br#"{"workflow_id":"w","execution_id":"e1","current_node":"n"}"#;
        assert_eq!(
            reason_of(classify(neither, 1000)),
            "start message: needs `workflow_definition` (the workflow) or `workflow_ref` (a stored definition's reference); it has neither"
        );
        let both = br#"{"execution_id":"e1","current_node":"n","workflow_definition":{},"workflow_ref":"x"}"#;
        assert_eq!(
            reason_of(classify(both, 1000)),
            "start message: has both `workflow_definition` and `workflow_ref`; exactly one names the workflow"
        );
        let bad = br#"{"execution_id":"e1","current_node":"n","workflow_ref":"not-a-hash"}"#;
        assert_eq!(
            reason_of(classify(bad, 1000)),
            "start message: `workflow_ref` must be a definition reference (32 lowercase hex digits)"
        );
    }

    #[test]
    fn a_hop_message_naming_a_signal_is_a_hop_not_a_signal() {
        let body = br#"{"execution_id":"e1","workflow_id":"wf","workflow_ref":"r","node_id":"n","kind":"run","signal":{"name":"x"}}"#;
        assert!(matches!(classify(body, 1000), Intake::Hop(_)));
    }
}
