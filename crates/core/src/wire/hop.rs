//! The hop message: the small message that moves an execution forward from node to node, with
//! its kind, its split lineage and the scope that lineage names.

use serde::{Deserialize, Serialize};

use super::hop_id::HopId;

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
    /// The execution's deadline (`timeout_ms` of the workflow) passed: fail it if still
    /// running. Holds no token; `node_id` is the workflow's first node (any node would do).
    Deadline,
}

impl HopKind {
    /// The kind's part of a [`HopId`]. These strings are stored in Redis as part of hop ids,
    /// so they never change, whatever the variants are called (they were once `{:?}` of the
    /// variant, hence the capitalised names).
    pub fn hop_id_tag(self) -> &'static str {
        match self {
            Self::Run => "Run",
            Self::Skip => "Skip",
            Self::Resume => "Resume",
            Self::EmptySplit => "EmptySplit",
            Self::OnFailure => "OnFailure",
            Self::SignalTimeout => "SignalTimeout",
            Self::Deadline => "Deadline",
        }
    }
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

    /// Deduplication id of this hop: identical for redeliveries of the same message (format
    /// documented on [`HopId`]).
    pub fn hop_id(&self) -> HopId {
        HopId::new(
            &self.node_id,
            &self.scope(),
            self.kind.hop_id_tag(),
            self.from_edge.as_deref(),
            self.attempt,
        )
    }
}

/// The scope a lineage names: `""` at top level, `split#i/split2#j` nested.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(split: &str, index: usize) -> Frame {
        Frame {
            split_node_id: split.into(),
            branch_id: format!("e1_{split}_{index}"),
            item_index: index,
            total_items: 10,
        }
    }

    fn full() -> HopMessage {
        HopMessage {
            execution_id: "e1".into(),
            workflow_id: "wf".into(),
            workflow_ref: "abc".into(),
            node_id: "n2".into(),
            kind: HopKind::EmptySplit,
            from_node: Some("n1".into()),
            from_edge: Some("x1".into()),
            lineage: vec![frame("s", 3)],
            attempt: 2,
            traceparent: Some("00-t-s-01".into()),
        }
    }

    #[test]
    fn a_hop_message_keeps_its_json_shape_and_round_trips() {
        let msg = full();
        let want = json!({
            "execution_id": "e1", "workflow_id": "wf", "workflow_ref": "abc", "node_id": "n2",
            "kind": "empty_split", "from_node": "n1", "from_edge": "x1",
            "lineage": [{"split_node_id": "s", "branch_id": "e1_s_3", "item_index": 3, "total_items": 10}],
            "attempt": 2, "traceparent": "00-t-s-01"
        });
        let bytes = serde_json::to_vec(&msg).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&want).unwrap());
        assert_eq!(serde_json::from_slice::<HopMessage>(&bytes).unwrap(), msg);
    }

    #[test]
    fn optional_hop_fields_are_left_out_and_attempt_defaults_to_one() {
        let body = br#"{"execution_id":"e1","workflow_id":"wf","workflow_ref":"abc","node_id":"n1","kind":"run"}"#;
        let msg: HopMessage = serde_json::from_slice(body).unwrap();
        assert_eq!(msg.attempt, 1);
        assert_eq!(
            serde_json::to_string(&msg).unwrap(),
            r#"{"execution_id":"e1","workflow_id":"wf","workflow_ref":"abc","node_id":"n1","kind":"run","attempt":1}"#
        );
    }

    #[test]
    fn every_kind_has_its_snake_case_name_on_the_wire() {
        let kinds = [
            (HopKind::Run, "run"),
            (HopKind::Skip, "skip"),
            (HopKind::Resume, "resume"),
            (HopKind::EmptySplit, "empty_split"),
            (HopKind::OnFailure, "on_failure"),
            (HopKind::SignalTimeout, "signal_timeout"),
            (HopKind::Deadline, "deadline"),
        ];
        for (kind, name) in kinds {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
        }
    }

    #[test]
    fn scopes_name_the_lineage_innermost_last() {
        let lineage = vec![frame("s", 3), frame("t", 0)];
        assert_eq!(scope_of(&[]), "");
        assert_eq!(scope_of(&lineage), "s#3/t#0");
        assert_eq!(scope_chain(&lineage), ["s#3/t#0", "s#3", ""]);
    }
}
