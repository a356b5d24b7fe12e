//! Built-in node types and the default registry.

use std::sync::Arc;

use baton_engine::NodeRegistry;

pub mod code;
pub mod compare;
pub mod control;
pub mod datetime;
pub mod edit;
pub mod http;
pub mod listops;
pub mod log;
pub mod smtp;

/// Every built-in node type.
pub fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register(Arc::new(log::LogNode::new()));
    r.register(Arc::new(http::HttpNode::new()));
    r.register(Arc::new(smtp::SmtpNode::new()));
    r.register(Arc::new(control::conditional()));
    r.register(Arc::new(control::SwitchNode::default()));
    r.register(Arc::new(control::merge()));
    r.register(Arc::new(control::SplitNode::default()));
    r.register(Arc::new(control::aggregator()));
    r.register(Arc::new(control::WaitNode::default()));
    r.register(Arc::new(edit::EditNode::new()));
    r.register(Arc::new(listops::FilterNode::default()));
    r.register(Arc::new(listops::SortNode::default()));
    r.register(Arc::new(listops::LimitNode::default()));
    r.register(Arc::new(datetime::DateTimeNode::now()));
    r.register(Arc::new(datetime::DateTimeNode::add()));
    r.register(Arc::new(datetime::DateTimeNode::subtract()));
    r.register(Arc::new(datetime::DateTimeNode::format()));
    r.register(Arc::new(datetime::DateTimeNode::parse()));
    r.register(Arc::new(code::CodeNode::new()));
    r
}
