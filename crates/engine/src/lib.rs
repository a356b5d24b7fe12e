//! The engine: one hop (run a node, store its output, route to the next messages) written once
//! against the `ports` traits, plus the `Node` trait and registry.

#[cfg(feature = "contract")]
pub mod catalog_contract;
pub mod clock;
#[cfg(feature = "contract")]
pub mod contract;
pub mod credential_scope;
pub mod hop;
pub mod node;
pub mod ports;

pub use clock::{Clock, ManualClock, SystemClock};
pub use credential_scope::{CredentialScope, ScopeDenied, UsedCredential};
pub use hop::{Engine, HopOutcome, StartRequest};
pub use node::{ChildStart, Node, NodeError, NodeInput, NodeOutput, NodeRegistry};
