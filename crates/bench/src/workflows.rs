//! The benchmark workflows: a sequential chain of no-op nodes and a fan-out → join. "No-op" is
//! a `log` node at `debug` level (filtered out by the default log level), the cheapest built-in
//! node.

use serde_json::{Value, json};

/// Id of the `i`-th node (0-based) of the chain.
pub fn chain_node_id(i: usize) -> String {
    format!("n{}", i + 1)
}

/// Position of a chain node from its id (`n1` → 0).
pub fn chain_node_index(id: &str) -> Option<usize> {
    id.strip_prefix('n')?.parse::<usize>().ok()?.checked_sub(1)
}

/// `n1 → n2 → … → n<len>`, each a debug-level `log` node.
pub fn chain(len: usize) -> Value {
    let nodes: Vec<Value> = (0..len)
        .map(|i| json!({"id": chain_node_id(i), "name": format!("Hop {}", i + 1), "type": "log", "parameters": {"message": "hop", "level": "debug"}}))
        .collect();
    let edges: Vec<Value> = (1..len)
        .map(|i| json!({"id": format!("e{i}"), "src": chain_node_id(i - 1), "dst": chain_node_id(i)}))
        .collect();
    json!({"name": format!("bench-chain-{len}"), "version": 1, "nodes": nodes, "edges": edges})
}

/// The chain asking for statuses in `mode` (`compact` or `off`; RFC 0011): it lowers the
/// worker's `full`, so one worker measures every mode.
pub fn chain_with_status_mode(len: usize, mode: &str) -> Value {
    let mut doc = chain(len);
    doc["status_mode"] = json!(mode);
    doc
}

/// Node runs (hop messages) of one chain execution.
pub fn chain_hops(len: usize) -> u64 {
    len as u64
}

/// `split` over `$input.items` → one debug `log` per item → `aggregator`.
pub fn fanout() -> Value {
    json!({
        "name": "bench-fanout",
        "version": 1,
        "nodes": [
            {"id": "split", "name": "Split", "type": "split", "parameters": {"input_array": "{{ $input.items }}"}},
            {"id": "work", "name": "Work", "type": "log", "parameters": {"message": "item {{$item}}", "level": "debug"}},
            {"id": "join", "name": "Join", "type": "aggregator", "parameters": {}}
        ],
        "edges": [
            {"id": "e1", "src": "split", "dst": "work"},
            {"id": "e2", "src": "work", "dst": "join"}
        ]
    })
}

/// The fan-out's input: `{"items": [0, 1, …, width-1]}`.
pub fn fanout_input(width: usize) -> Value {
    json!({"items": (0..width).collect::<Vec<_>>()})
}

/// Hop messages of one fan-out execution: the split, one per item, one aggregator arrival per
/// item (the last one releases it).
pub fn fanout_hops(width: usize) -> u64 {
    1 + 2 * width as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflows_compile() {
        let registry = baton_nodes::registry();
        let wf = baton_core::CompiledWorkflow::compile(&chain(20), &registry).unwrap();
        assert_eq!(wf.nodes.len(), 20);
        assert_eq!(wf.start.len(), 1);
        assert_eq!(chain_node_index("n20"), Some(19));
        baton_core::CompiledWorkflow::compile(&fanout(), &registry).unwrap();
    }
}
