//! `DeliveryCounts`: how often a message came back to a worker, counted durably so that a
//! message which kills every worker that takes it (out of memory, abort, SIGKILL) is stopped
//! after a budget instead of crash-looping the pool forever.
//!
//! One hash per message body, `<prefix>:delivery:<sha256 of the body>`, with two fields:
//! `r`, redeliveries seen (counted when a worker receives the message with the broker's
//! `redelivered` flag), and `h`, the times a worker handed it back *alive* after a transient
//! failure (`nack` with requeue). A redelivery nobody handed back means the previous holder
//! died or lost its connection holding it: crashes = `r − h`. Both expire one day after the
//! last change. A first delivery costs nothing: it is never counted.

use crate::RedisConnection;
use sha2::{Digest, Sha256};

use crate::Error;

/// How long a message's counts are kept after their last change.
const TTL_SECS: u64 = 86_400;

/// What the counts say about one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryTally {
    /// Redeliveries seen, this one included.
    pub redeliveries: u64,
    /// Times a worker handed the message back alive.
    pub handed_back: u64,
}

impl DeliveryTally {
    /// Deliveries that ended without their worker settling or handing back the message: the
    /// workers it crashed or stalled.
    pub fn crashes(&self) -> u64 {
        self.redeliveries.saturating_sub(self.handed_back)
    }
}

/// Durable delivery counts. Cheap to clone.
#[derive(Clone)]
pub struct DeliveryCounts {
    conn: RedisConnection,
    prefix: String,
}

impl std::fmt::Debug for DeliveryCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryCounts")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl DeliveryCounts {
    pub(crate) fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
        }
    }

    /// The key of a message's counts.
    pub fn key(&self, body: &[u8]) -> String {
        let digest = Sha256::digest(body);
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        format!("{}:delivery:{hex}", self.prefix)
    }

    /// Counts one redelivery of `body` and returns the counts (one round trip).
    pub async fn redelivered(&self, body: &[u8]) -> Result<DeliveryTally, Error> {
        let key = self.key(body);
        let mut conn = self.conn.clone();
        let (redeliveries, handed_back): (u64, Option<u64>) = redis::pipe()
            .atomic()
            .hincr(&key, "r", 1)
            .hget(&key, "h")
            .expire(&key, TTL_SECS as i64)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(DeliveryTally {
            redeliveries,
            handed_back: handed_back.unwrap_or(0),
        })
    }

    /// Reads the counts without counting (quorum queues, whose broker counts deliveries).
    pub async fn tally(&self, body: &[u8]) -> Result<DeliveryTally, Error> {
        let key = self.key(body);
        let mut conn = self.conn.clone();
        let (r, h): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(&key)
            .arg("r")
            .arg("h")
            .query_async(&mut conn)
            .await?;
        Ok(DeliveryTally {
            redeliveries: r.unwrap_or(0),
            handed_back: h.unwrap_or(0),
        })
    }

    /// Records that a worker hands `body` back alive (call it *before* the `nack`, so the next
    /// holder sees it) and returns how many times it was handed back, this one included: the
    /// message's durable count of transient failures.
    pub async fn handed_back(&self, body: &[u8]) -> Result<u64, Error> {
        let key = self.key(body);
        let mut conn = self.conn.clone();
        let (h,): (u64,) = redis::pipe()
            .atomic()
            .hincr(&key, "h", 1)
            .expire(&key, TTL_SECS as i64)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(h)
    }

    /// Forgets `body`'s counts (a replay from the dead-letter queue: the replayed message starts
    /// with a fresh budget, so it is not dead-lettered again at its first redelivery). Returns
    /// whether there were counts to forget.
    pub async fn forget(&self, body: &[u8]) -> Result<bool, Error> {
        let key = self.key(body);
        let mut conn = self.conn.clone();
        let removed: u64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
        Ok(removed > 0)
    }
}
