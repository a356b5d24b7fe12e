//! Claims: one copy of a hop runs at a time. A hop claims its id before it runs (in
//! `begin_hop`'s round trip), renews the claim while it runs, and its commit releases it; a
//! copy that meets a live claim (a duplicate, or the redelivery of a hop whose worker died)
//! looks again when the claim expires. Also the publishing of what a hop hands on, marked
//! once confirmed so that no replay publishes it twice.

use std::future::Future;
use std::time::Duration;

use baton_core::message::HopMessage;

use super::current::Hop;
use super::engine::{Engine, HopOutcome};
use crate::ports::{HeldClaim, HopClaim, HopClaimOutcome, PortError};

/// Added to a re-check's delay: the claim has surely expired by then, and copies that met it
/// at different moments do not all look in the same millisecond.
const RECHECK_MARGIN_MS: u64 = 200;

/// This process runs a hop: removes it from `Engine::running` when dropped, whatever way the
/// hop ends (returns, fails, panics).
pub(super) struct LocalRun<'e> {
    engine: &'e Engine,
    key: String,
}

impl Drop for LocalRun<'_> {
    fn drop(&mut self) {
        let mut running = self
            .engine
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        running.remove(&self.key);
    }
}

impl Engine {
    /// Whether hops take claims: only where messages are redelivered or duplicated (the
    /// embedded runtime runs each message once).
    pub(super) fn claims_hops(&self) -> bool {
        self.store.replays_hops()
    }

    /// The claim this process asks for on a hop now.
    pub(super) fn hop_claim(&self) -> HopClaim<'_> {
        HopClaim {
            owner: &self.worker_id,
            now_ms: self.clock.now_ms(),
            lease_ms: self.hop_lease_ms,
        }
    }

    /// Marks `hop` as running in this process; `None` if it already is (a second copy of the
    /// same message arrived here while the first runs).
    pub(super) fn run_locally(&self, hop: &Hop<'_>) -> Option<LocalRun<'_>> {
        let key = format!("{}\u{1f}{}", hop.msg.execution_id, hop.id);
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .insert(key.clone())
            .then(|| LocalRun { engine: self, key })
    }

    /// A copy of a hop that somebody else is running: not run, not dropped (the holder may be
    /// dead and this copy its redelivery), but published again for when the claim expires.
    pub(super) async fn recheck_later(
        &self,
        msg: &HopMessage,
        held: HeldClaim,
    ) -> Result<HopOutcome, PortError> {
        let now = self.clock.now_ms();
        let delay = held.expires_at_ms.saturating_sub(now) + RECHECK_MARGIN_MS;
        tracing::debug!(execution_id = %msg.execution_id, node_id = %msg.node_id, owner = %held.owner, delay_ms = delay, "hop held by another run: looking again when its claim expires");
        self.queue
            .publish_recheck(msg.clone(), delay, held.expires_at_ms)
            .await?;
        Ok(HopOutcome::Done)
    }

    /// Runs `work` (the hop) while renewing its claim every third of the lease. A renewal that
    /// fails is tried again at the next tick (the store may be back by then); a claim found
    /// lost (taken over after it expired: this run stalled longer than a lease) is reported,
    /// and the run goes on: its commit will be a `Duplicate` that publishes nothing.
    pub(super) async fn renewing<F>(&self, hop: &Hop<'_>, work: F) -> F::Output
    where
        F: Future,
    {
        let every = Duration::from_millis(self.hop_lease_ms / 3);
        let renew = async {
            loop {
                tokio::time::sleep(every).await;
                match self
                    .store
                    .claim_hop(&hop.msg.execution_id, &hop.id, self.hop_claim())
                    .await
                {
                    Ok(HopClaimOutcome::Claimed) => {}
                    Ok(HopClaimOutcome::Committed) => std::future::pending::<()>().await,
                    Ok(HopClaimOutcome::Held(held)) => {
                        tracing::warn!(execution_id = %hop.msg.execution_id, hop_id = %hop.id, owner = %held.owner, "hop claim lost to another worker while running")
                    }
                    Err(e) => {
                        tracing::warn!(execution_id = %hop.msg.execution_id, hop_id = %hop.id, error = %e, "cannot renew hop claim")
                    }
                }
            }
        };
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => out,
            () = renew => unreachable!("renewal never ends"),
        }
    }

    /// Publishes what a hop hands on (`now` at once, `later` as timers), handles the arrivals
    /// among `now` that this process takes itself (`local.rs`), then marks it all published:
    /// a replay of the hop then publishes nothing again. A failed mark is only logged:
    /// everything is published, and the worst it costs is one replay re-publishing.
    pub(super) async fn publish_handoff(
        &self,
        msg: &HopMessage,
        hop_id: &str,
        now: Vec<HopMessage>,
        later: Vec<(u64, HopMessage)>,
    ) -> Result<(), PortError> {
        if now.is_empty() && later.is_empty() {
            return Ok(());
        }
        self.publish_messages(now, later).await?;
        if self.store.replays_hops()
            && let Err(e) = self
                .store
                .mark_handoff_published(&msg.execution_id, hop_id)
                .await
        {
            tracing::warn!(execution_id = %msg.execution_id, hop_id, error = %e, "cannot mark a handoff published (a replay may publish it again)");
        }
        Ok(())
    }

    /// Publishes what a hop hands on (`now` at once, `later` as timers), confirmed, and handles
    /// the arrivals among `now` that this process takes itself (`local.rs`), without marking
    /// it published: a pure hop's (RFC 0011: the mark would be a round trip of its own,
    /// and a replay's copies are absorbed by the successors' deduplication).
    pub(super) async fn publish_messages(
        &self,
        now: Vec<HopMessage>,
        later: Vec<(u64, HopMessage)>,
    ) -> Result<(), PortError> {
        let (local, now) = self.local_arrivals(now);
        if !now.is_empty() {
            self.queue.publish(now).await?;
        }
        for (delay_ms, message) in later {
            self.queue.publish_delayed(message, delay_ms).await?;
        }
        // After the publishes, so that other workers start on those meanwhile; before the
        // caller's mark (if any), so that a worker dying here leaves the handoff for its
        // redelivery to replay.
        if !local.is_empty() {
            self.arrive_locally(local).await?;
        }
        Ok(())
    }
}
