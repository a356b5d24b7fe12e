//! The message a hop is processing, with what the rooms need of it computed once per hop: its
//! hop id (the deduplication key of its commit) and its scope (where its outputs live), and
//! how it commits (the one-round-trip path of a pure node, RFC 0011).

use std::sync::Mutex;

use baton_core::message::{HopMessage, StatusEvent};

/// One hop's message and its derived keys.
pub(super) struct Hop<'a> {
    pub(super) msg: &'a HopMessage,
    /// `msg.hop_id()`.
    pub(super) id: String,
    /// `msg.scope()`.
    pub(super) scope: String,
    /// A run of a pure node: no claim was taken, and its handoff is not marked published (a
    /// replay re-publishes it; the successors' own deduplication absorbs the copies).
    pub(super) pure: bool,
    /// No `begin_hop` ran before the node: the commit is `run_commit`, which makes its checks.
    pub(super) unbegun: bool,
    /// The `running` status of an unbegun hop, held until its commit applies: a hop that finds
    /// its execution finished, or itself a duplicate, emits nothing, as one that began would.
    pub(super) deferred_running: Mutex<Option<StatusEvent>>,
}

impl<'a> Hop<'a> {
    pub(super) fn new(msg: &'a HopMessage) -> Self {
        Self {
            msg,
            id: msg.hop_id().into(),
            scope: msg.scope(),
            pure: false,
            unbegun: false,
            deferred_running: Mutex::new(None),
        }
    }

    /// The deferred `running` status, taken (`None` if there is none).
    pub(super) fn take_deferred_running(&self) -> Option<StatusEvent> {
        self.deferred_running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}
