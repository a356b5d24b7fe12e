//! Races: the losing branches of a `wait_for_any` merge with `cancel_losers`, and the context
//! key that marks a node cancelled in a scope once the merge released for its winner.

use super::{CompiledWorkflow, NodeIdx};

/// Prefix of the context keys marking a node cancelled by a race (`$cancelled:<node_id>`),
/// written in the merge's scope; like `$child:` records they are left out of completions.
pub const RACE_MARKER_PREFIX: &str = "$cancelled:";

/// The context key marking `node_id` cancelled by a race.
pub fn race_marker(node_id: &str) -> String {
    format!("{RACE_MARKER_PREFIX}{node_id}")
}

impl CompiledWorkflow {
    /// The nodes upstream of `target` (not `target` itself), following incoming edges.
    fn upstream_of(&self, target: NodeIdx, include_self: bool) -> Vec<bool> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![target];
        while let Some(i) = stack.pop() {
            for e in &self.edges {
                if e.dst == i && !seen[e.src] {
                    seen[e.src] = true;
                    stack.push(e.src);
                }
            }
        }
        seen[target] = include_self;
        seen
    }

    /// The losers when merge `join` releases for the arrival over edge `winner_edge`: every
    /// node upstream of the merge that is not upstream of (or) the winner's node, and not a
    /// trigger. Nodes downstream of a loser that do not lead to the merge are not losers, but
    /// they only run if something else than the cancelled loser sends them a message.
    pub fn race_losers(&self, join: NodeIdx, winner_edge: &str) -> Vec<NodeIdx> {
        let Some(winner) = self
            .edges
            .iter()
            .find(|e| e.id == winner_edge && e.dst == join)
        else {
            return Vec::new();
        };
        let upstream = self.upstream_of(join, false);
        let winners = self.upstream_of(winner.src, true);
        (0..self.nodes.len())
            .filter(|i| upstream[*i] && !winners[*i] && !self.nodes[*i].trigger)
            .collect()
    }

    /// Sets `may_lose` on every node upstream of a `cancel_losers` merge.
    pub(super) fn mark_race_losers(&mut self) {
        let joins: Vec<NodeIdx> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].cancel_losers)
            .collect();
        for j in joins {
            let upstream = self.upstream_of(j, false);
            for (i, up) in upstream.into_iter().enumerate() {
                if up && !self.nodes[i].trigger {
                    self.nodes[i].may_lose = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::CompiledWorkflow;
    use crate::spec::{NodeCatalog, NodeClass, NodeSpec, ParamKind, ParamSpec};
    use serde_json::json;

    struct Catalog(Vec<NodeSpec>);
    impl NodeCatalog for Catalog {
        fn spec(&self, type_name: &str) -> Option<&NodeSpec> {
            self.0.iter().find(|s| s.type_name == type_name)
        }
    }

    fn spec(type_name: &'static str, class: NodeClass) -> NodeSpec {
        NodeSpec {
            type_name,
            aliases: vec![],
            class,
            summary: "",
            params: vec![],
            output: "",
            raw_params: vec![],
            example: "{}",
            pure: false,
        }
    }

    #[test]
    fn the_losers_of_a_race_are_the_other_branches_upstream_of_the_merge() {
        let catalog = Catalog(vec![
            spec("log", NodeClass::Action),
            NodeSpec {
                params: vec![
                    ParamSpec::optional(
                        "wait_mode",
                        ParamKind::Enum(vec!["wait_for_all", "wait_for_any"]),
                        "",
                    ),
                    ParamSpec::optional("cancel_losers", ParamKind::Boolean, ""),
                ],
                ..spec("merge", NodeClass::Merge)
            },
        ]);
        let node = |id: &str, t: &str| json!({"id": id, "name": id, "type": t, "parameters": {}});
        let doc = json!({
            "name": "race", "version": 1,
            "nodes": [node("go", "log"), node("fast", "log"), node("slow1", "log"), node("slow2", "log"),
                {"id": "first", "name": "first", "type": "merge", "parameters": {"wait_mode": "wait_for_any", "cancel_losers": true}},
                node("after", "log")],
            "edges": [
                {"id": "a", "src": "go", "dst": "fast"}, {"id": "b", "src": "go", "dst": "slow1"},
                {"id": "b2", "src": "slow1", "dst": "slow2"},
                {"id": "c", "src": "fast", "dst": "first"}, {"id": "d", "src": "slow2", "dst": "first"},
                {"id": "e", "src": "first", "dst": "after"}]
        });
        let wf = CompiledWorkflow::compile(&doc, &catalog).expect("compiles");
        let names = |v: Vec<usize>| {
            v.into_iter()
                .map(|i| wf.nodes[i].id.clone())
                .collect::<Vec<_>>()
        };
        let first = wf.by_id["first"];
        assert!(wf.nodes[first].cancel_losers);
        assert_eq!(names(wf.race_losers(first, "c")), ["slow1", "slow2"]);
        assert_eq!(names(wf.race_losers(first, "d")), ["fast"]);
        let may_lose: Vec<&str> = wf
            .nodes
            .iter()
            .filter(|n| n.may_lose)
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(may_lose, ["go", "fast", "slow1", "slow2"]);
    }
}
