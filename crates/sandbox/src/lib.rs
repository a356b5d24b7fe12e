//! The `code` node and its sandbox. A script runs in a small pool of child processes (the
//! `baton` binary's hidden `sandbox` subcommand, or the `baton-sandbox` binary) that cap their
//! own memory (`RLIMIT_DATA`) and CPU time (`RLIMIT_CPU`) and that the parent kills on
//! timeout or cancel. See `rfcs/0007-code-node.md`.
//!
//! - `engine`: rhai, its language limits and error mapping;
//! - `protocol`: length-prefixed JSON between parent and child;
//! - `child`: the child's main loop;
//! - `pool`: the parent's pool of children;
//! - `runner`: where a script runs (pool, or in-process when explicitly allowed);
//! - `node`: the `code` node's parameters.

pub mod child;
pub mod engine;
pub mod node;
pub mod pool;
pub mod protocol;
pub mod runner;

pub use node::{CodeNode, CodeSettings};
pub use pool::{SandboxConfig, SandboxPool};
pub use runner::{InProcessRunner, Job, ScriptRunner};
