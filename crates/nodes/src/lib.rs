//! Built-in node types and the default registry.

use std::sync::Arc;

use baton_engine::NodeRegistry;

pub mod compare;
pub mod control;
pub mod http;
pub mod log;

/// Every built-in node type.
pub fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register(Arc::new(log::LogNode::new()));
    r.register(Arc::new(http::HttpNode::new()));
    r.register(Arc::new(control::conditional()));
    r.register(Arc::new(control::SwitchNode::default()));
    r.register(Arc::new(control::merge()));
    r.register(Arc::new(control::SplitNode::default()));
    r.register(Arc::new(control::aggregator()));
    r.register(Arc::new(control::WaitNode::default()));
    r
}
