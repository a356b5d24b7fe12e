//! `NodeSpec::pure` (RFC 0011, "One round trip for pure nodes"): a pure node's hops take no
//! claim and may run twice, so only types that call nothing outside the engine are pure.

use baton_core::spec::NodeCatalog;

#[test]
fn only_node_types_that_call_nothing_outside_the_engine_are_pure() {
    let registry = baton_nodes::registry();
    let pure = |t: &str| {
        registry
            .spec(t)
            .unwrap_or_else(|| panic!("node type `{t}` is registered"))
            .pure
    };
    for t in [
        "log",
        "edit",
        "filter",
        "sort",
        "limit",
        "datetime.now",
        "conditional",
        "switch",
        "merge",
        "split",
        "aggregator",
    ] {
        assert!(pure(t), "`{t}` only computes: pure");
    }
    for t in ["http", "smtp", "code", "wait", "workflow"] {
        assert!(!pure(t), "`{t}` calls out, waits or starts work: not pure");
    }
}
