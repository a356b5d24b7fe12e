//! The `ExecutionStore` contract: one suite of behavioural checks that every store
//! implementation must pass (the in-memory store in `baton-memory`, the Redis store in
//! `baton-redis`). Feature `contract`; use it from tests:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn contract() {
//!     let store: Arc<dyn StatePorts> = Arc::new(MemoryStore::new());
//!     baton_engine::contract::execution_store_contract(|| store.clone()).await;
//! }
//! ```
//!
//! Every check uses fresh execution ids, so the suite can run against a shared store (and a
//! shared Redis) alongside other tests. A violation panics with the check's name.

use std::sync::Arc;

use crate::ports::StatePorts;

mod claims;
mod commits;
mod finish;
mod joins;
mod lifecycle;
mod races;
mod reads;
mod support;
mod unbegun;

pub use claims::*;
pub use commits::*;
pub use finish::*;
pub use joins::*;
pub use lifecycle::*;
pub use races::*;
pub use reads::*;
pub use support::{start_of, unique_id};
pub use unbegun::*;

/// Runs every check of the contract. `make` returns the store under test (the same store or a
/// fresh one each time: every check uses its own execution ids).
pub async fn execution_store_contract(make: impl Fn() -> Arc<dyn StatePorts>) {
    start_and_lifecycle(make()).await;
    unknown_execution(make()).await;
    read_scope_chain(make()).await;
    values_round_trip(make()).await;
    begin_hop_reads(make()).await;
    committed_hop_replays(make()).await;
    hop_claims_hold_renew_and_expire(make()).await;
    begin_hop_takes_the_claim(make()).await;
    handoff_marked_published(make()).await;
    start_published_flag(make()).await;
    cancel_before_start(make()).await;
    commit_once_and_tokens(make()).await;
    concurrent_commits(make()).await;
    run_commit_applies_once(make()).await;
    run_commit_ignores_and_releases_claims(make()).await;
    run_commit_after_finish_writes_nothing(make()).await;
    concurrent_run_commits(make()).await;
    join_wait_for_all(make()).await;
    join_release_on_first_real(make()).await;
    concurrent_joins(make()).await;
    finish_first_writer_wins(make()).await;
    completion_sent_once(make()).await;
    completion_claim_lease(make()).await;
    completion_adopted_once(make()).await;
    finish_remembers_the_finishing_hop(make()).await;
    final_context_top_level(make()).await;
    identity_and_signals(make()).await;
    signal_releases_its_timeout_once(make()).await;
    race_markers_reach_the_losers_hops(make()).await;
}
