//! `TimerStore`: durable timers (waits, retry backoff) that survive a worker crash between
//! claiming a timer and publishing its message.
//!
//! Keys: the timers are spread over `buckets` shards (default 16), each under its own hash tag
//! so each shard's scripts run on one cluster slot and no slot holds every timer:
//! `<prefix>:{timers:<b>}:due` (zset id → due ms), `<prefix>:{timers:<b>}:claimed` (zset id →
//! lease deadline ms), `<prefix>:{timers:<b>}:payload` (hash id → payload). A timer's bucket is
//! an FNV-1a hash of its execution id (the id's part before `|`), so `forget_execution` reads
//! one shard. The unsharded layout of earlier versions (`<prefix>:{timers}:…`) is still
//! claimed from and completed in, so timers scheduled before an upgrade fire; nothing new is
//! written there.
//!
//! On a single node one `claim_due` is one script over every shard (no slot rule there); on a
//! cluster it is one script per shard, walked in turn from a rotating start.
//!
//! A poller calls `claim_due`, publishes each payload, then `complete`s it. A claim whose
//! worker died before `complete` is claimed again once its lease expires, so a timer fires at
//! least once (the hop dedupes by hop id).

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis::Script;

use crate::fence::Fence;
use crate::{Error, RedisConnection, reply};

static SCHEDULE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/timer_schedule.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/timer_claim.lua")));
static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/timer_complete.lua")));

/// The three keys of one shard of the timers.
#[derive(Debug, Clone)]
struct Shard {
    due: String,
    claimed: String,
    payload: String,
}

impl Shard {
    fn new(prefix: &str, tag: &str) -> Self {
        Self {
            due: format!("{prefix}:{{{tag}}}:due"),
            claimed: format!("{prefix}:{{{tag}}}:claimed"),
            payload: format!("{prefix}:{{{tag}}}:payload"),
        }
    }
}

/// Durable timers. Cheap to clone.
#[derive(Clone)]
pub struct TimerStore {
    conn: RedisConnection,
    /// The buckets new timers go to.
    buckets: Arc<[Shard]>,
    /// The unsharded layout of earlier versions, drained but never written.
    legacy: Shard,
    /// Where the next `claim_due` starts walking the buckets (fairness under a small limit).
    start: Arc<AtomicUsize>,
    /// Cluster mode: a scheduled timer is confirmed on a replica before `schedule` returns.
    fence: Option<Fence>,
}

impl std::fmt::Debug for TimerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerStore")
            .field("buckets", &self.buckets.len())
            .field("legacy", &self.legacy.due)
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
    pub(crate) fn new(
        conn: RedisConnection,
        prefix: &str,
        buckets: u32,
        fence: Option<Fence>,
    ) -> Self {
        let buckets: Arc<[Shard]> = (0..buckets.max(1))
            .map(|b| Shard::new(prefix, &format!("timers:{b}")))
            .collect();
        Self {
            conn,
            buckets,
            legacy: Shard::new(prefix, "timers"),
            start: Arc::new(AtomicUsize::new(0)),
            fence,
        }
    }

    /// The bucket of timer `id` (ids are `<execution id>|…`; the whole id if it has no `|`).
    fn bucket(&self, id: &str) -> &Shard {
        let execution = id.split_once('|').map_or(id, |(e, _)| e);
        let n = u32::try_from(self.buckets.len()).unwrap_or(u32::MAX);
        &self.buckets[crate::buckets::bucket_of(execution, n) as usize]
    }

    /// The keys of every shard timer `id` can be in, for tests (a slot check).
    #[doc(hidden)]
    pub fn keys_of(&self, id: &str) -> [[String; 3]; 2] {
        let b = self.bucket(id);
        let l = &self.legacy;
        [
            [b.due.clone(), b.claimed.clone(), b.payload.clone()],
            [l.due.clone(), l.claimed.clone(), l.payload.clone()],
        ]
    }

    /// Schedules `payload` under `id` for `due_ms` (Unix ms). Idempotent: while `id` is pending
    /// (scheduled or claimed), scheduling it again changes nothing and returns false.
    pub async fn schedule(&self, id: &str, payload: &[u8], due_ms: u64) -> Result<bool, Error> {
        let shard = self.bucket(id);
        let mut inv = SCHEDULE.prepare_invoke();
        inv.key(&shard.due)
            .key(&shard.payload)
            .arg(id)
            .arg(payload)
            .arg(due_ms);
        let mut conn = self.conn.clone();
        let scheduled = reply::int(&inv.invoke_async(&mut conn).await?)? == 1;
        if let Some(fence) = &self.fence {
            fence.confirm(&shard.due).await?;
        }
        Ok(scheduled)
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
        let n = self.buckets.len();
        let first = self.start.fetch_add(1, Ordering::Relaxed) % n;
        let shards = (0..n)
            .map(|i| &self.buckets[(first + i) % n])
            .chain(std::iter::once(&self.legacy));
        // A single node has no slot rule: one script claims over every shard. A cluster takes
        // one script per shard (each shard's keys share a slot).
        let groups: Vec<Vec<&Shard>> = match self.conn {
            RedisConnection::Single(_) => vec![shards.collect()],
            RedisConnection::Cluster(_) => shards.map(|s| vec![s]).collect(),
        };
        let mut out = Vec::new();
        for group in groups {
            if out.len() >= limit {
                break;
            }
            let mut inv = CLAIM.prepare_invoke();
            for shard in group {
                inv.key(&shard.due).key(&shard.claimed).key(&shard.payload);
            }
            inv.arg(now_ms)
                .arg(limit - out.len())
                .arg(now_ms.saturating_add(lease_ms));
            let mut conn = self.conn.clone();
            let items = reply::array(inv.invoke_async(&mut conn).await?)?;
            for t in items.chunks_exact(3) {
                out.push(ClaimedTimer {
                    id: reply::text(&t[0])?,
                    payload: reply::bytes(&t[1])?.to_vec(),
                    due_ms: u64::try_from(reply::int(&t[2])?).ok(),
                });
            }
        }
        Ok(out)
    }

    async fn complete_in(&self, shard: &Shard, id: &str) -> Result<bool, Error> {
        let mut inv = COMPLETE.prepare_invoke();
        inv.key(&shard.due)
            .key(&shard.claimed)
            .key(&shard.payload)
            .arg(id);
        let mut conn = self.conn.clone();
        Ok(reply::int(&inv.invoke_async(&mut conn).await?)? == 1)
    }

    /// Forgets a fired timer (its claim, schedule and payload). Returns false if it was not
    /// pending.
    pub async fn complete(&self, id: &str) -> Result<bool, Error> {
        // Its bucket, or else the unsharded layout (a timer scheduled before an upgrade).
        if self.complete_in(self.bucket(id), id).await? {
            return Ok(true);
        }
        self.complete_in(&self.legacy, id).await
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
        let mut ids: Vec<String> = Vec::new();
        for payload in [&self.bucket(execution_id).payload, &self.legacy.payload] {
            let mut cursor: u64 = 0;
            loop {
                let (next, page): (u64, Vec<String>) = redis::cmd("HSCAN")
                    .arg(payload)
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

    /// Timers scheduled or claimed and not completed, in every shard (for metrics and tests).
    pub async fn pending(&self) -> Result<u64, Error> {
        let mut total = 0;
        for shard in self.buckets.iter().chain(std::iter::once(&self.legacy)) {
            let mut conn = self.conn.clone();
            let n: u64 = redis::cmd("HLEN")
                .arg(&shard.payload)
                .query_async(&mut conn)
                .await?;
            total += n;
        }
        Ok(total)
    }
}
