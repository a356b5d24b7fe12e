//! Baton's pure core: the workflow model and its validation, the template and expression
//! languages, the compiled graph used for routing, and the wire messages.
//!
//! Invariant: nothing in this crate performs I/O or depends on an async runtime, so every rule
//! here is testable as a plain function and shared unchanged by the embedded and the
//! distributed runtimes.

pub mod dsl;
pub mod error_code;
pub mod expr;
pub mod graph;
pub mod limits;
/// The wire messages under their former name; new code uses [`wire`].
pub mod message {
    pub use crate::wire::*;
}
pub mod model;
pub mod path;
pub mod schema;
pub mod spec;
pub mod suggest;
pub mod template;
pub mod validate;
pub mod value;
pub mod wire;

pub use error_code::ErrorCode;
pub use graph::{CompiledWorkflow, NodeIdx};
pub use model::{Edge, ErrorKind, Node, RetryPolicy, Workflow};
pub use spec::{NodeCatalog, NodeClass, NodeSpec, ParamKind, ParamSpec};
