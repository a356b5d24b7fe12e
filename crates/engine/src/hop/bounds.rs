//! The numbers a message supplies, checked before anything is computed from them: split
//! lineage (depth, `total_items` against the split cap, `item_index` inside it) and `attempt`
//! against the node's retry policy. A message outside them cannot have been sent by an engine
//! of this workflow: it is poison, refused with a short reason before it can overflow a
//! product or size an allocation.

use baton_core::graph::CompiledNode;
use baton_core::limits::MAX_LINEAGE_DEPTH;
use baton_core::message::HopMessage;

/// Why `msg` is impossible for `node` under a split cap of `max_items`, if it is.
pub(super) fn out_of_bounds(
    msg: &HopMessage,
    node: &CompiledNode,
    max_items: usize,
) -> Option<String> {
    if msg.lineage.len() > MAX_LINEAGE_DEPTH {
        return Some(format!(
            "lineage is {} splits deep, over the limit of {MAX_LINEAGE_DEPTH}",
            msg.lineage.len()
        ));
    }
    for (depth, f) in msg.lineage.iter().enumerate() {
        if f.total_items > max_items {
            return Some(format!(
                "lineage[{depth}].total_items is {}, over the split cap of {max_items}",
                f.total_items
            ));
        }
        if f.item_index >= f.total_items {
            return Some(format!(
                "lineage[{depth}].item_index {} is not below total_items {}",
                f.item_index, f.total_items
            ));
        }
    }
    // Retries count up to `max_attempts`; a first attempt is 1. (0 is what a hand-written
    // message says when it means "first", so it is let through.)
    if msg.attempt > node.retry.max_attempts.max(1) {
        return Some(format!(
            "attempt {} is over node `{}`'s max_attempts {}",
            msg.attempt, node.id, node.retry.max_attempts
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::CompiledWorkflow;
    use baton_core::message::{Frame, HopKind};
    use baton_core::spec::{NodeCatalog, NodeClass, NodeSpec};
    use serde_json::json;

    struct Catalog(NodeSpec);

    impl NodeCatalog for Catalog {
        fn spec(&self, type_name: &str) -> Option<&NodeSpec> {
            (type_name == self.0.type_name).then_some(&self.0)
        }
    }

    fn workflow() -> CompiledWorkflow {
        let catalog = Catalog(NodeSpec {
            type_name: "noop",
            aliases: vec![],
            class: NodeClass::Action,
            summary: "",
            params: vec![],
            output: "",
            raw_params: vec![],
            example: "{}",
            pure: false,
        });
        let doc = json!({"nodes": [
            {"id": "a", "name": "A", "type": "noop", "parameters": {},
             "retry": {"max_attempts": 3}}
        ], "edges": []});
        CompiledWorkflow::compile(&doc, &catalog).expect("compiles")
    }

    fn msg(lineage: Vec<Frame>, attempt: u32) -> HopMessage {
        HopMessage {
            execution_id: "e".into(),
            workflow_id: "w".into(),
            workflow_ref: "r".into(),
            node_id: "a".into(),
            kind: HopKind::Run,
            from_node: None,
            from_edge: None,
            lineage,
            attempt,
            traceparent: None,
        }
    }

    fn frame(item_index: usize, total_items: usize) -> Frame {
        Frame {
            split_node_id: "s".into(),
            branch_id: String::new(),
            item_index,
            total_items,
        }
    }

    #[test]
    fn ordinary_messages_are_within_bounds() {
        let wf = workflow();
        let node = wf.node("a").expect("node");
        assert_eq!(out_of_bounds(&msg(vec![], 1), node, 10), None);
        assert_eq!(out_of_bounds(&msg(vec![frame(9, 10)], 3), node, 10), None);
    }

    #[test]
    fn total_items_of_two_to_the_63_is_poison_not_an_overflow() {
        let wf = workflow();
        let node = wf.node("a").expect("node");
        let reason =
            out_of_bounds(&msg(vec![frame(0, 1usize << 63)], 1), node, 10_000).expect("poison");
        assert!(reason.contains("over the split cap of 10000"), "{reason}");
    }

    #[test]
    fn an_item_index_outside_its_split_is_poison() {
        let wf = workflow();
        let node = wf.node("a").expect("node");
        let reason = out_of_bounds(&msg(vec![frame(5, 5)], 1), node, 10).expect("poison");
        assert!(
            reason.contains("item_index 5 is not below total_items 5"),
            "{reason}"
        );
    }

    #[test]
    fn lineage_deeper_than_the_limit_is_poison() {
        let wf = workflow();
        let node = wf.node("a").expect("node");
        let deep = vec![frame(0, 1); MAX_LINEAGE_DEPTH + 1];
        assert!(out_of_bounds(&msg(deep, 1), node, 10).is_some());
    }

    #[test]
    fn an_attempt_past_the_retry_policy_is_poison() {
        let wf = workflow();
        let node = wf.node("a").expect("node");
        assert!(out_of_bounds(&msg(vec![], 4), node, 10).is_some());
        assert!(out_of_bounds(&msg(vec![], u32::MAX), node, 10).is_some());
    }
}
