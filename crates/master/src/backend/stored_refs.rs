//! Starts by reference (RFC 0011), the master's side: before a start names its definition by
//! hash, the definition is stored where the workers read definitions (`<prefix>:def:<hash>`,
//! [`DefinitionStore`], same TTL rules: pinned while a stored workflow references it, else
//! expiring 30 days after its last use). Once per hash: the hashes stored recently are
//! remembered (bounded), so a workflow started again and again costs no Redis write per start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use baton_core::graph::{content_hash, is_reference};
use baton_core::wire::RuneStart;
use baton_engine::Clock;
use baton_redis::DefinitionStore;

use super::StartOrder;

/// How many hashes are remembered; beyond, the one stored longest ago is forgotten (and stored
/// again at its next start).
pub const CAPACITY: usize = 4096;

/// A remembered hash is stored again after this long: one Redis write per workflow per period.
/// Storing refreshes the TTL of an unpinned definition, so one still being started never
/// expires, even while every worker holds it compiled and never reads it; and a definition
/// Redis lost (a failover's lost write, a flush) is back within the period.
pub const REFRESH_MS: u64 = 10 * 60 * 1000;

/// When each recently stored hash was stored. Bounded; pure (the time is given).
#[derive(Debug)]
pub struct RecentRefs {
    stored_at_ms: Mutex<HashMap<String, u64>>,
    capacity: usize,
    refresh_ms: u64,
}

impl RecentRefs {
    pub fn new(capacity: usize, refresh_ms: u64) -> Self {
        Self {
            stored_at_ms: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            refresh_ms,
        }
    }

    /// `reference` was stored less than the refresh period before `now_ms`.
    pub fn is_fresh(&self, reference: &str, now_ms: u64) -> bool {
        let map = self.stored_at_ms.lock().unwrap_or_else(|p| p.into_inner());
        map.get(reference)
            .is_some_and(|at| now_ms.saturating_sub(*at) < self.refresh_ms)
    }

    /// Remembers that `reference` was stored at `now_ms`, forgetting the oldest when full.
    pub fn remember(&self, reference: &str, now_ms: u64) {
        let mut map = self.stored_at_ms.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(reference) && map.len() >= self.capacity {
            // Rare (more distinct definitions than the capacity), and then a Redis write is
            // due anyway: a scan is cheap next to it.
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(r, _)| r.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(reference.to_string(), now_ms);
    }

    pub fn len(&self) -> usize {
        self.stored_at_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds the start messages of a master that starts by reference.
pub struct StoredRefs {
    store: DefinitionStore,
    clock: Arc<dyn Clock>,
    recent: RecentRefs,
}

impl StoredRefs {
    pub fn new(store: DefinitionStore, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            recent: RecentRefs::new(CAPACITY, REFRESH_MS),
        }
    }

    /// The start message of `order`: by reference, its definition stored first unless stored
    /// recently. Inline (Rune's shape) if the order's hash is not its definition's content
    /// hash: never expected (the catalog hashes what it stores), but a worker would then
    /// compile a definition under a reference its hop messages do not carry.
    pub async fn message(&self, order: &StartOrder) -> Result<RuneStart, baton_redis::Error> {
        let reference = order.definition_hash.as_str();
        let now_ms = self.clock.now_ms();
        if self.recent.is_fresh(reference, now_ms) {
            return Ok(order.message_by_reference());
        }
        if !is_reference(reference) || content_hash(&order.definition) != reference {
            tracing::warn!(
                execution_id = %order.execution_id,
                reference,
                "the start's hash is not its definition's: started with the definition inline"
            );
            return Ok(order.rune_message());
        }
        self.store
            .put(reference, &order.definition.to_string())
            .await?;
        self.recent.remember(reference, now_ms);
        Ok(order.message_by_reference())
    }

    /// The hashes remembered as stored.
    pub fn remembered(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_hash_is_fresh_until_the_refresh_period_passes() {
        let recent = RecentRefs::new(8, 1_000);
        assert!(!recent.is_fresh("a", 0));
        recent.remember("a", 10);
        assert!(recent.is_fresh("a", 10));
        assert!(recent.is_fresh("a", 1_009));
        assert!(!recent.is_fresh("a", 1_010));
        recent.remember("a", 1_010);
        assert!(recent.is_fresh("a", 1_500));
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn the_hash_stored_longest_ago_is_forgotten_first_when_full() {
        let recent = RecentRefs::new(2, u64::MAX);
        recent.remember("old", 1);
        recent.remember("newer", 2);
        recent.remember("newer", 3);
        assert_eq!(recent.len(), 2);
        recent.remember("newest", 4);
        assert_eq!(recent.len(), 2);
        assert!(!recent.is_fresh("old", 5));
        assert!(recent.is_fresh("newer", 5));
        assert!(recent.is_fresh("newest", 5));
    }
}
