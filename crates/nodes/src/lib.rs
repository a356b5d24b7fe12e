//! Built-in node types and the default registry.

use std::sync::Arc;

use baton_engine::NodeRegistry;

mod checks;
pub mod code;
pub mod compare;
pub mod control;
pub mod datetime;
pub mod edit;
pub mod egress;
pub mod http;
pub mod listops;
pub mod log;
mod params;
pub mod smtp;
pub mod subworkflow;

/// Every built-in node type, with the `http` node under [`http::HttpPolicy::embedded`]
/// (private networks allowed): for `baton run`, validation, docs and tests.
pub fn registry() -> NodeRegistry {
    registry_with(http::HttpPolicy::embedded())
}

/// Every built-in node type, with the `http` node obeying `http_policy` (the worker pool
/// passes [`http::HttpPolicy::production`], adjusted by its settings).
pub fn registry_with(http_policy: http::HttpPolicy) -> NodeRegistry {
    registry_for(http_policy, &code::CodeSettings::default())
}

/// Every built-in node type, with the `http` node obeying `http_policy`, every connector
/// (`http`, `smtp`) its egress policy, and the `code` node running its scripts as
/// `code_settings` say (the worker passes its `BATON_CODE_*` and `BATON_EGRESS_*` settings).
pub fn registry_for(
    http_policy: http::HttpPolicy,
    code_settings: &code::CodeSettings,
) -> NodeRegistry {
    let egress = http_policy.egress.clone();
    let mut r = NodeRegistry::new();
    r.register(Arc::new(log::LogNode::new()));
    r.register(Arc::new(http::HttpNode::with_policy(http_policy)));
    r.register(Arc::new(smtp::SmtpNode::with_policy(egress)));
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
    r.register(Arc::new(code::CodeNode::with_settings(code_settings)));
    r.register(Arc::new(subworkflow::SubWorkflowNode::default()));
    r
}
