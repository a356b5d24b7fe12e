//! The wire format: every message Baton reads from or writes to the broker, in one place.
//!
//! - [`hop`]: the hop message between workers, its lineage frames, kinds and scopes;
//! - [`hop_id`]: the versioned deduplication id of a hop ([`HopId`]);
//! - [`status`] and [`completion`]: the Rune-shaped events monitors consume;
//! - [`status_mode`]: the status modes and `compact` mode's batched node runs (RFC 0011);
//! - [`start`]: the start message (Rune's, or by reference) and the `$input`/`$trigger` seeding
//!   rule;
//! - [`control`]: cancel and signal requests;
//! - [`intake`]: what an inbound delivery is ([`classify`]), and why it is poison if it is.
//!
//! Changing a serialised shape here changes the protocol (RFC 0004): every type has a test
//! pinning its bytes.

pub mod completion;
pub mod control;
pub mod hop;
pub mod hop_id;
pub mod intake;
pub mod start;
pub mod status;
pub mod status_mode;

pub use completion::{Completion, ExecutionStatus};
pub use control::{CancelMessage, NodeCancel, SignalMessage};
pub use hop::{Frame, HopKind, HopMessage, scope_chain, scope_of};
pub use hop_id::HopId;
pub use intake::{Intake, PoisonReason, classify};
pub use start::{
    INPUT_KEY, RuneStart, StartDefinition, StartShapeError, TRIGGER_KEY, default_input_to_trigger,
    seed_input,
};
pub use status::{ErrorInfo, NodeStatus, StatusEvent};
pub use status_mode::{NodeRun, StatusBatch, StatusMessage, StatusMode, UnknownStatusMode};
