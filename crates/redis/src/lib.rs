//! Redis adapters for the distributed runtime:
//!
//! - [`RedisStore`]: the production [`ExecutionStore`](baton_engine::ports::ExecutionStore),
//!   with the same semantics as the in-memory store (checked by the shared contract suite,
//!   `baton_engine::contract`). A hop costs two round trips: `begin_hop` (lifecycle, the claim
//!   on running the hop, the keys the node reads) and `commit`, plus the mark that its
//!   successors are published.
//! - [`DefinitionStore`]: workflow definitions by reference.
//! - [`RedisCatalog`]: named, versioned workflow definitions (the `WorkflowCatalog` port).
//! - [`TimerStore`]: durable timers with leased claims.
//! - [`DeliveryCounts`]: durable redelivery counts, the worker's crash budget.
//! - [`buckets`]: the bucket of an id (FNV-1a mod `BATON_REDIS_BUCKETS`, timers and the
//!   master's history) and the cluster slot of a key.
//! - cancellation broadcast: [`RedisStore::publish_cancel`] / [`RedisStore::subscribe_cancels`].
//!
//! On a Redis Cluster, the writes a hop relies on before its message is acked are fenced:
//! confirmed on a replica of their primary (`WAIT`, on dedicated connections; `fence.rs`).
//!
//! Every multi-key operation is one Lua script (`src/lua/`), run with `EVALSHA` (loaded on
//! `NOSCRIPT`), with all its keys in `KEYS[]` under one hash tag, so it is cluster-safe.

pub mod buckets;
mod catalog;
mod connect;
mod definitions;
mod deliveries;
mod error;
mod fence;
mod keyslot;
mod ledger;
mod reply;
mod signals;
#[cfg(test)]
mod slots;
mod store;
mod timers;

pub use catalog::RedisCatalog;
pub use connect::{RedisConnection, RedisTarget, Timeouts, connect, subscribe_stream};
pub use definitions::{DEFINITION_TTL_SECS, DefinitionStore};
pub use deliveries::{DeliveryCounts, DeliveryTally};
pub use error::Error;
pub use fence::FenceCounts;
pub use store::{RedisOptions, RedisStore};
pub use timers::{ClaimedTimer, TimerStore};
