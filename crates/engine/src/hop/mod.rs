//! The hop: take one message, run (or skip, or join at) its node, store the output, and hand
//! the baton on — successor messages, status events and, at the end, exactly one completion.
//!
//! Order of effects, so a crash at any point is recoverable by redelivery: read context → run
//! the node → commit output and token count atomically (deduplicated by hop id) → status →
//! successor messages → completion. A redelivered message whose hop was committed re-publishes
//! what it handed on unless that was marked published, without re-running the node; a copy
//! that meets another worker's live claim on the hop looks again when the claim expires.
//!
//! One room per job, each a focused `impl Engine`: `dispatch` (the front door) sends a message
//! to `start`, `run` → `succeed` / `fail`, `skip`, `join` (and `race` for a merge that cancels
//! its losers), `aggregate`, `signal` or `subworkflow`; `deadline` fails an execution that
//! outlives its `timeout_ms`; `route` commits and hands on; `complete` sends the one completion.

mod aggregate;
mod bounds;
mod claim;
mod complete;
mod credentials;
mod current;
mod deadline;
mod dispatch;
mod engine;
mod fail;
mod join;
mod local;
mod pure;
mod race;
pub mod redact;
mod route;
mod run;
mod runs;
mod signal;
mod skip;
mod start;
mod status;
mod subworkflow;
mod succeed;

pub use credentials::{CREDENTIAL_REF_KEY, credential_reference};
pub use deadline::deadline_reason;
pub use engine::{
    COMPLETION_LEASE_MS, DEFAULT_MAX_WORKFLOW_DEPTH, Engine, HOP_LEASE_MS, HopOutcome, StartRequest,
};
pub use subworkflow::{CHILD_KEY_PREFIX, PARENT_KEY, SUBWORKFLOW_TYPE, child_execution_id};
