//! The message a hop is processing, with what the rooms need of it computed once per hop: its
//! hop id (the deduplication key of its commit) and its scope (where its outputs live).

use baton_core::message::HopMessage;

/// One hop's message and its derived keys.
pub(super) struct Hop<'a> {
    pub(super) msg: &'a HopMessage,
    /// `msg.hop_id()`.
    pub(super) id: String,
    /// `msg.scope()`.
    pub(super) scope: String,
}

impl<'a> Hop<'a> {
    pub(super) fn new(msg: &'a HopMessage) -> Self {
        Self {
            msg,
            id: msg.hop_id().into(),
            scope: msg.scope(),
        }
    }
}
