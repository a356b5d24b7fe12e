//! The `code` node lives in `baton-sandbox` with the sandbox processes its scripts run in;
//! re-exported here so the node's path stays `baton_nodes::code`.

pub use baton_sandbox::engine::{Budget, Limits, RhaiEngine};
pub use baton_sandbox::node::*;
pub use baton_sandbox::runner::{InProcessRunner, Job, ScriptRunner};
