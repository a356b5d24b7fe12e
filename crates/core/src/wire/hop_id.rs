//! The deduplication id of a hop, a durable key: Redis holds these ids across a rolling upgrade,
//! so their format is versioned and pinned by tests.

use std::fmt;
use std::ops::Deref;

/// The deduplication id of a hop: identical for every redelivery of the same hop message, and
/// different for any two hops of one execution.
///
/// Format, version 1 (the only one so far):
///
/// ```text
/// {node_id}|{scope}|{kind}|{from_edge}|{attempt}
/// ```
///
/// - `scope`: the split scope ([`scope_of`](super::scope_of)), `""` at top level;
/// - `kind`: [`HopKind::hop_id_tag`](super::HopKind::hop_id_tag): `Run`, `Skip`, `Resume`, `EmptySplit`, `OnFailure`,
///   `SignalTimeout`, `Deadline`;
/// - `from_edge`: the edge the hop arrived by, `""` if none;
/// - `attempt`: the attempt number in decimal (1 for the first).
///
/// For example `n2|s#3|Run|e1|1`. The id does not name the execution: stores key it under the
/// execution. Any change to this format must keep reading version 1 ids until no execution that
/// holds them can still be running (a new version needs a marker that version 1 cannot produce).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HopId(String);

impl HopId {
    /// Builds a version 1 id from its parts; `kind_tag` is the hop kind's
    /// [`hop_id_tag`](super::HopKind::hop_id_tag) (a tag, not the kind, so this file needs
    /// nothing from the message types that build ids).
    pub fn new(
        node_id: &str,
        scope: &str,
        kind_tag: &str,
        from_edge: Option<&str>,
        attempt: u32,
    ) -> Self {
        Self(format!(
            "{node_id}|{scope}|{kind_tag}|{}|{attempt}",
            from_edge.unwrap_or("")
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for HopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for HopId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Deref for HopId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<HopId> for String {
    fn from(id: HopId) -> Self {
        id.0
    }
}

impl PartialEq<str> for HopId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for HopId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::super::hop::{Frame, HopKind, HopMessage};

    fn message(kind: HopKind) -> HopMessage {
        HopMessage {
            execution_id: "e1".into(),
            workflow_id: "wf".into(),
            workflow_ref: "abc".into(),
            node_id: "n2".into(),
            kind,
            from_node: Some("n1".into()),
            from_edge: Some("x1".into()),
            lineage: vec![Frame {
                split_node_id: "s".into(),
                branch_id: "e1_s_3".into(),
                item_index: 3,
                total_items: 10,
            }],
            attempt: 2,
            traceparent: None,
        }
    }

    /// Version 1, byte for byte: these ids are in Redis (commits, `finished_by`, signal
    /// waiters, timers) while an upgrade rolls.
    #[test]
    fn version_1_ids_are_pinned_for_every_kind() {
        let pinned = [
            (HopKind::Run, "n2|s#3|Run|x1|2"),
            (HopKind::Skip, "n2|s#3|Skip|x1|2"),
            (HopKind::Resume, "n2|s#3|Resume|x1|2"),
            (HopKind::EmptySplit, "n2|s#3|EmptySplit|x1|2"),
            (HopKind::OnFailure, "n2|s#3|OnFailure|x1|2"),
            (HopKind::SignalTimeout, "n2|s#3|SignalTimeout|x1|2"),
        ];
        for (kind, id) in pinned {
            assert_eq!(message(kind).hop_id().as_str(), id);
        }
    }

    #[test]
    fn top_level_hops_without_an_edge_leave_those_parts_empty() {
        let mut msg = message(HopKind::Run);
        msg.lineage.clear();
        msg.from_edge = None;
        msg.attempt = 1;
        let id = msg.hop_id();
        assert_eq!(id, "n2||Run||1");
        assert_eq!(id.to_string(), "n2||Run||1");
        assert_eq!(String::from(id), "n2||Run||1");
    }
}
