//! Every node type's documented example (`NodeSpec::example`, shown by `baton nodes` and in
//! `docs/nodes.md`) is JSON that passes validation as that node's `parameters`.

use baton_core::CompiledWorkflow;
use baton_core::spec::NodeClass;
use serde_json::{Value, json};

/// A workflow in which a node of `type_name` with `parameters` sits where its class allows:
/// after a trigger, and for an aggregator inside a split.
fn workflow_around(type_name: &str, class: NodeClass, parameters: Value) -> Value {
    let node = json!({"id": "n", "name": "Example", "type": type_name, "parameters": parameters});
    if class == NodeClass::Aggregator {
        return json!({
            "id": "wf", "name": "example",
            "nodes": [
                {"id": "t", "name": "Start", "type": "ManualTrigger", "parameters": {}},
                {"id": "s", "name": "Each", "type": "split", "parameters": {"input_array": "$input.items"}},
                node
            ],
            "edges": [{"id": "e0", "src": "t", "dst": "s"}, {"id": "e1", "src": "s", "dst": "n"}]
        });
    }
    json!({
        "id": "wf", "name": "example",
        "nodes": [
            {"id": "t", "name": "Start", "type": "ManualTrigger", "parameters": {}},
            node
        ],
        "edges": [{"id": "e0", "src": "t", "dst": "n"}]
    })
}

#[test]
fn every_example_is_json_that_validates_as_the_nodes_parameters() {
    let registry = baton_nodes::registry();
    let mut failures = Vec::new();
    for node in registry.nodes() {
        let spec = node.spec();
        let params: Value = match serde_json::from_str(spec.example) {
            Ok(v @ Value::Object(_)) => v,
            Ok(other) => {
                failures.push(format!(
                    "{}: example is not an object: {other}",
                    spec.type_name
                ));
                continue;
            }
            Err(e) => {
                failures.push(format!("{}: example is not JSON: {e}", spec.type_name));
                continue;
            }
        };
        let doc = workflow_around(spec.type_name, spec.class, params);
        if let Err(e) = CompiledWorkflow::compile(&doc, &registry) {
            failures.push(format!("{}: {e}", spec.type_name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
