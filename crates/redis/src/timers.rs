//! `TimerStore`: durable timers (waits, retry backoff) that survive a worker crash between
//! claiming a timer and publishing its message.
//!
//! Keys (one hash tag, so every script runs on one cluster slot):
//! `<prefix>:{timers}:due` (zset id → due ms), `<prefix>:{timers}:claimed` (zset id → lease
//! deadline ms), `<prefix>:{timers}:payload` (hash id → payload).
//!
//! A poller calls `claim_due`, publishes each payload, then `complete`s it. A claim whose
//! worker died before `complete` is claimed again once its lease expires, so a timer fires at
//! least once (the hop dedupes by hop id).

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionManager;

use crate::{Error, reply};

static SCHEDULE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/timer_schedule.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/timer_claim.lua")));
static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/timer_complete.lua")));

/// Durable timers. Cheap to clone.
#[derive(Clone)]
pub struct TimerStore {
    conn: ConnectionManager,
    due: String,
    claimed: String,
    payload: String,
}

impl std::fmt::Debug for TimerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerStore")
            .field("due", &self.due)
            .finish_non_exhaustive()
    }
}

/// A timer claimed by [`TimerStore::claim_due_timed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedTimer {
    /// The timer's id.
    pub id: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// When it was due (Unix ms); `None` for a timer re-claimed after its lease expired.
    pub due_ms: Option<u64>,
}

impl TimerStore {
    pub(crate) fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            due: format!("{prefix}:{{timers}}:due"),
            claimed: format!("{prefix}:{{timers}}:claimed"),
            payload: format!("{prefix}:{{timers}}:payload"),
        }
    }

    /// Schedules `payload` under `id` for `due_ms` (Unix ms). Idempotent: while `id` is pending
    /// (scheduled or claimed), scheduling it again changes nothing and returns false.
    pub async fn schedule(&self, id: &str, payload: &[u8], due_ms: u64) -> Result<bool, Error> {
        let mut inv = SCHEDULE.prepare_invoke();
        inv.key(&self.due)
            .key(&self.payload)
            .arg(id)
            .arg(payload)
            .arg(due_ms);
        let mut conn = self.conn.clone();
        Ok(reply::int(&inv.invoke_async(&mut conn).await?)? == 1)
    }

    /// Atomically claims up to `limit` timers due at `now_ms` — first claims whose lease
    /// expired (their worker died), then due timers — leasing each until `now_ms + lease_ms`.
    /// Returns `(id, payload)` pairs; `complete` each once its message is published.
    pub async fn claim_due(
        &self,
        now_ms: u64,
        limit: usize,
        lease_ms: u64,
    ) -> Result<Vec<(String, Vec<u8>)>, Error> {
        Ok(self
            .claim_due_timed(now_ms, limit, lease_ms)
            .await?
            .into_iter()
            .map(|t| (t.id, t.payload))
            .collect())
    }

    /// [`claim_due`](Self::claim_due), with the time each timer was due (for the timer-lag
    /// metric).
    pub async fn claim_due_timed(
        &self,
        now_ms: u64,
        limit: usize,
        lease_ms: u64,
    ) -> Result<Vec<ClaimedTimer>, Error> {
        let mut inv = CLAIM.prepare_invoke();
        inv.key(&self.due)
            .key(&self.claimed)
            .key(&self.payload)
            .arg(now_ms)
            .arg(limit)
            .arg(now_ms.saturating_add(lease_ms));
        let mut conn = self.conn.clone();
        let items = reply::array(inv.invoke_async(&mut conn).await?)?;
        items
            .chunks_exact(3)
            .map(|t| {
                Ok(ClaimedTimer {
                    id: reply::text(&t[0])?,
                    payload: reply::bytes(&t[1])?.to_vec(),
                    due_ms: u64::try_from(reply::int(&t[2])?).ok(),
                })
            })
            .collect()
    }

    /// Forgets a fired timer (its claim, schedule and payload). Returns false if it was not
    /// pending.
    pub async fn complete(&self, id: &str) -> Result<bool, Error> {
        let mut inv = COMPLETE.prepare_invoke();
        inv.key(&self.due)
            .key(&self.claimed)
            .key(&self.payload)
            .arg(id);
        let mut conn = self.conn.clone();
        Ok(reply::int(&inv.invoke_async(&mut conn).await?)? == 1)
    }

    /// Forgets every pending timer of `execution_id` (ids `<execution_id>|…`): a cancelled
    /// execution's timers would otherwise stay until due, however far away. Scans the payload
    /// hash (pending timers only). Returns how many were removed.
    pub async fn forget_execution(&self, execution_id: &str) -> Result<usize, Error> {
        let escaped: String = execution_id
            .chars()
            .flat_map(|c| {
                let escape = matches!(c, '*' | '?' | '[' | ']' | '\\');
                escape.then_some('\\').into_iter().chain(std::iter::once(c))
            })
            .collect();
        let pattern = format!("{escaped}|*");
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut ids: Vec<String> = Vec::new();
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("HSCAN")
                .arg(&self.payload)
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            // HSCAN answers field, value, field, value, …
            ids.extend(page.into_iter().step_by(2));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        ids.sort();
        ids.dedup();
        let mut removed = 0;
        for id in ids {
            if self.complete(&id).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Timers scheduled or claimed and not completed (for metrics and tests).
    pub async fn pending(&self) -> Result<u64, Error> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HLEN")
            .arg(&self.payload)
            .query_async(&mut conn)
            .await?)
    }
}
