//! Split scopes: the aggregator that closes each split.

use std::collections::{HashSet, VecDeque};

use super::{CompiledWorkflow, NodeIdx};
use crate::spec::NodeClass;

impl CompiledWorkflow {
    /// The aggregator closing the scope a split opens: the first aggregator reached at nesting
    /// depth zero.
    pub(super) fn find_closer(&self, split: NodeIdx) -> Option<NodeIdx> {
        let mut seen = HashSet::new();
        let mut queue: VecDeque<(NodeIdx, i32)> = VecDeque::new();
        for e in &self.nodes[split].out_edges {
            queue.push_back((self.edges_by_def(*e)?.dst, 0));
        }
        while let Some((i, depth)) = queue.pop_front() {
            if !seen.insert((i, depth)) {
                continue;
            }
            let node = &self.nodes[i];
            let next_depth = match node.class {
                NodeClass::Aggregator if depth == 0 => return Some(i),
                NodeClass::Aggregator => depth - 1,
                NodeClass::Split => depth + 1,
                _ => depth,
            };
            for e in &node.out_edges {
                if let Some(edge) = self.edges_by_def(*e) {
                    queue.push_back((edge.dst, next_depth));
                }
            }
        }
        None
    }
}
