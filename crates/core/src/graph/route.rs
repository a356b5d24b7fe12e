//! Routing: which outgoing edges a node's outcome follows, and which switch case an edge names.

use serde_json::Value;

use super::{CompiledEdge, CompiledNode, CompiledWorkflow, EdgeIdx, NodeIdx, Route, RouteOutcome};

impl CompiledWorkflow {
    /// Edge by its index in the definition (compiled edges keep definition order when valid).
    pub fn edges_by_def(&self, e: EdgeIdx) -> Option<&CompiledEdge> {
        self.edges.get(e)
    }

    /// Which outgoing edges a node's outcome follows; the rest are "not taken" and carry skips.
    pub fn route(&self, node: NodeIdx, outcome: RouteOutcome<'_>) -> (Vec<EdgeIdx>, Vec<EdgeIdx>) {
        let n = &self.nodes[node];
        let mut taken = Vec::new();
        let mut untaken = Vec::new();
        let selected_case = |output: Option<&Value>| -> Option<usize> {
            output
                .and_then(|o| o.get("output_index"))
                .and_then(Value::as_u64)
                .map(|x| x as usize)
        };
        for &e in &n.out_edges {
            let route = &self.edges[e].route;
            let follow = match outcome {
                RouteOutcome::ErrorBranch => *route == Route::Error,
                RouteOutcome::Success(output) => {
                    self.follows(n, route, Some(output), selected_case(Some(output)))
                }
                RouteOutcome::Ignored => self.follows(n, route, None, None),
            };
            if follow {
                taken.push(e)
            } else {
                untaken.push(e)
            }
        }
        (taken, untaken)
    }

    fn follows(
        &self,
        n: &CompiledNode,
        route: &Route,
        output: Option<&Value>,
        case: Option<usize>,
    ) -> bool {
        match route {
            Route::Error => false,
            Route::Success => true,
            Route::True | Route::False => {
                let result = output
                    .and_then(|o| o.get("result"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                (*route == Route::True) == result
            }
            Route::Case(k) => {
                let fallback = self.switch_fallback_index(n);
                *k == case.unwrap_or(fallback)
            }
        }
    }

    fn switch_fallback_index(&self, n: &CompiledNode) -> usize {
        self.definition.nodes[n.idx]
            .parameters
            .get("rules")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }
}

/// Which switch case an edge's `on` names: a rule `name`/`case`, a rule index, or the fallback.
pub(super) fn case_index(on: &str, rules: &[Value]) -> Option<usize> {
    if matches!(on, "fallback" | "default") {
        return Some(rules.len());
    }
    if let Some(k) = rules.iter().position(|r| {
        ["name", "case", "label"]
            .iter()
            .any(|f| r.get(*f).and_then(Value::as_str) == Some(on))
    }) {
        return Some(k);
    }
    on.parse::<usize>().ok().filter(|k| *k <= rules.len())
}
