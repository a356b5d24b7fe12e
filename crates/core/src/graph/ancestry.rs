//! "Is `j` an ancestor of `i`?" for the check that a node reads only outputs that can exist
//! when it runs. Answered per node by a reverse walk from `i`, pruned by topological position
//! (a node placed before `j` cannot have `j` upstream), with one visited array reused: memory
//! is O(V + E) whatever the graph. (A full ancestor set per node was O(V²): a 19,000-node chain
//! needed 2.85 GB.)

use super::NodeIdx;

pub(super) struct Ancestry {
    /// Direct predecessors of each node (edges from triggers included: a trigger is upstream).
    preds: Vec<Vec<NodeIdx>>,
    /// Position of each node in the topological order.
    pos: Vec<usize>,
    /// `seen[k] == walk` marks `k` visited in the current walk: no clearing between walks.
    seen: Vec<u32>,
    walk: u32,
    stack: Vec<NodeIdx>,
}

impl Ancestry {
    /// `edges` are `(src, dst)` pairs (a dangling edge is `None`); `order` is topological.
    pub(super) fn new(n: usize, edges: &[Option<(NodeIdx, NodeIdx)>], order: &[NodeIdx]) -> Self {
        let mut preds = vec![Vec::new(); n];
        for (s, d) in edges.iter().flatten() {
            preds[*d].push(*s);
        }
        let mut pos = vec![0; n];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = p;
        }
        Self {
            preds,
            pos,
            seen: vec![0; n],
            walk: 0,
            stack: Vec::new(),
        }
    }

    /// The `targets` that are not ancestors of `node` (a node is not its own ancestor).
    pub(super) fn not_ancestors(&mut self, node: NodeIdx, targets: &[NodeIdx]) -> Vec<NodeIdx> {
        let mut missing: Vec<NodeIdx> = Vec::new();
        for &t in targets {
            if !missing.contains(&t) {
                missing.push(t);
            }
        }
        if missing.is_empty() {
            return missing;
        }
        self.walk = self.walk.wrapping_add(1);
        if self.walk == 0 {
            // Wrapped: stale marks could read as current, so start the marks afresh.
            self.seen.iter_mut().for_each(|s| *s = 0);
            self.walk = 1;
        }
        let walk = self.walk;
        self.stack.clear();
        self.stack.push(node);
        self.seen[node] = walk;
        while let Some(k) = self.stack.pop() {
            let floor = missing.iter().map(|t| self.pos[*t]).min().unwrap_or(0);
            for &p in &self.preds[k] {
                if self.seen[p] == walk || self.pos[p] < floor {
                    continue;
                }
                self.seen[p] = walk;
                if let Some(at) = missing.iter().position(|t| *t == p) {
                    missing.swap_remove(at);
                    if missing.is_empty() {
                        return missing;
                    }
                }
                self.stack.push(p);
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0 -> 1 -> 2 -> 3, and 0 -> 4 (a side branch).
    fn graph() -> Ancestry {
        let edges = [Some((0, 1)), Some((1, 2)), Some((2, 3)), Some((0, 4)), None];
        Ancestry::new(5, &edges, &[0, 1, 4, 2, 3])
    }

    #[test]
    fn upstream_nodes_are_ancestors_and_others_are_not() {
        let mut a = graph();
        assert!(a.not_ancestors(3, &[0, 1, 2]).is_empty());
        assert_eq!(a.not_ancestors(3, &[4]), vec![4]);
        assert_eq!(a.not_ancestors(3, &[3]), vec![3]);
        assert_eq!(a.not_ancestors(1, &[2, 0]), vec![2]);
        assert!(a.not_ancestors(4, &[0, 0]).is_empty());
    }

    #[test]
    fn walks_reuse_the_marks_without_leaking_between_nodes() {
        let mut a = graph();
        for _ in 0..3 {
            assert!(a.not_ancestors(2, &[0]).is_empty());
            assert_eq!(a.not_ancestors(4, &[1]), vec![1]);
        }
    }

    #[test]
    fn a_long_chain_answers_without_quadratic_memory() {
        let n = 50_000;
        let edges: Vec<_> = (0..n - 1).map(|i| Some((i, i + 1))).collect();
        let order: Vec<_> = (0..n).collect();
        let mut a = Ancestry::new(n, &edges, &order);
        assert!(a.not_ancestors(n - 1, &[0, n - 2]).is_empty());
        assert_eq!(a.not_ancestors(0, &[n - 1]), vec![n - 1]);
    }
}
