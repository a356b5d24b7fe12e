//! The replication fence, Redis Cluster only: after a write a hop relies on before its message
//! is acked, wait until one replica of the written slot's primary has it, so a primary lost
//! right after its acknowledgement cannot take the write with it (replication is asynchronous).
//!
//! `WAIT` blocks the connection it is sent on until the replicas answer, so it never goes on
//! the shared multiplexed cluster connection (every command to that node would queue behind
//! it): each primary has a small pool of dedicated connections here. `WAIT` waits for the
//! calling client's own last write, so the fence first writes a tiny key in the written key's
//! slot (`<prefix>:{<tag>}:fence`, `PX` 60 s) on that connection, then `WAIT 1 <ms>`, in one
//! pipeline: a primary has one replication stream, so the fence acknowledged means every
//! earlier write of that primary acknowledged.
//!
//! - The slot → primary map comes from `CLUSTER SLOTS` (on the shared connection), cached, and
//!   dropped when a fence fails (connection error, `MOVED`): the next fence reloads it.
//! - A fence that fails at the connection is an error (transient): the write may have gone to
//!   a primary that just died, and a fence on the promoted replica would prove nothing about
//!   it. The hop is not acked, its message is redelivered, the retry is deduplicated.
//! - A primary with no replica (a promoted replica whose old primary is dead) is not waited on:
//!   `WAIT` answering 0 is followed by `ROLE`; no replica attached → the fence passes, and the
//!   node is skipped for [`NO_REPLICA_RECHECK`] before it is asked again. A replica attached
//!   that did not acknowledge within the bound → [`Error::NotReplicated`] (transient).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};
use tokio::sync::{Mutex as AsyncMutex, Semaphore};
use tokio::time::Instant;

use crate::connect::{RedisConnection, Timeouts};
use crate::{Error, keyslot};

/// How long a fence key lives: it only has to outlast its own `WAIT`.
const FENCE_TTL_MS: u64 = 60_000;
/// Dedicated connections per primary (fences beyond that wait for one to be free).
const POOL_PER_NODE: usize = 16;
/// How long a primary found without a replica is not waited on before it is asked again.
pub(crate) const NO_REPLICA_RECHECK: Duration = Duration::from_secs(1);

/// What the fences of one store did, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FenceCounts {
    /// Fences that sent `WAIT`.
    pub waits: u64,
    /// Fences a replica acknowledged.
    pub acked: u64,
    /// Fences passed without waiting: the primary has no replica.
    pub no_replica: u64,
    /// Fences that failed: no acknowledgement within the bound, or the primary unreachable.
    pub failed: u64,
}

/// The fence of one store (cheap to clone).
#[derive(Clone)]
pub(crate) struct Fence {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: RedisConnection,
    seed: ConnectionInfo,
    prefix: String,
    wait_ms: u64,
    config: AsyncConnectionConfig,
    map: AsyncMutex<Option<Arc<SlotMap>>>,
    nodes: Mutex<HashMap<(String, u16), Arc<Node>>>,
    waits: AtomicU64,
    acked: AtomicU64,
    no_replica: AtomicU64,
    failed: AtomicU64,
}

/// Slot ranges and the address of the primary serving each.
struct SlotMap {
    ranges: Vec<(u16, u16, (String, u16))>,
}

impl SlotMap {
    fn primary(&self, slot: u16) -> Option<&(String, u16)> {
        self.ranges
            .iter()
            .find(|(from, to, _)| (*from..=*to).contains(&slot))
            .map(|(_, _, addr)| addr)
    }
}

/// One primary: its dedicated connections, and whether it was last seen without a replica.
struct Node {
    name: String,
    client: redis::Client,
    idle: Mutex<Vec<MultiplexedConnection>>,
    permits: Semaphore,
    no_replica_since: Mutex<Option<Instant>>,
}

impl Node {
    fn known_without_replica(&self) -> bool {
        let since = *self
            .no_replica_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        since.is_some_and(|at| at.elapsed() < NO_REPLICA_RECHECK)
    }

    fn set_without_replica(&self, without: bool) {
        *self
            .no_replica_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = without.then(Instant::now);
    }
}

/// The fence key in `key`'s slot, under `prefix`; `None` for a key whose slot no such name
/// shares (an untagged key with a `}`: Baton writes none).
fn fence_key(prefix: &str, key: &str) -> Option<String> {
    let fence = match keyslot::hash_tag(key) {
        Some(tag) => format!("{prefix}:{{{tag}}}:fence"),
        None => format!("{prefix}:fence:{{{key}}}"),
    };
    (keyslot::slot(&fence) == keyslot::slot(key)).then_some(fence)
}

/// The `[start, end, [host, port, …], replicas…]` entries of a `CLUSTER SLOTS` reply.
fn parse_slots(reply: &Value) -> Result<SlotMap, Error> {
    let bad = || Error::Protocol("CLUSTER SLOTS answered an unexpected shape".into());
    let Value::Array(entries) = reply else {
        return Err(bad());
    };
    let mut ranges = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(fields) = entry else {
            return Err(bad());
        };
        let (Some(Value::Int(from)), Some(Value::Int(to)), Some(Value::Array(primary))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(bad());
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return Err(bad()),
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            return Err(bad());
        };
        let (from, to, port) = (
            u16::try_from(*from).map_err(|_| bad())?,
            u16::try_from(*to).map_err(|_| bad())?,
            u16::try_from(*port).map_err(|_| bad())?,
        );
        ranges.push((from, to, (host, port)));
    }
    Ok(SlotMap { ranges })
}

/// How many replicas a `ROLE` reply of a primary lists (a replica's own `ROLE`: none).
fn replicas_in_role(reply: &Value) -> usize {
    match reply {
        Value::Array(items) => match (items.first(), items.get(2)) {
            (Some(Value::BulkString(role)), Some(Value::Array(replicas))) if role == b"master" => {
                replicas.len()
            }
            _ => 0,
        },
        _ => 0,
    }
}

impl Fence {
    /// A fence over `cluster`, waiting at most `wait_ms` per fence; `seed` gives the other
    /// nodes' connection settings (password, TLS), with their own address.
    pub(crate) fn new(
        cluster: RedisConnection,
        seed: &str,
        prefix: &str,
        wait_ms: u64,
        timeouts: Timeouts,
    ) -> Result<Self, Error> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response + Duration::from_millis(wait_ms)));
        Ok(Self {
            inner: Arc::new(Inner {
                cluster,
                seed: seed.into_connection_info()?,
                prefix: prefix.to_string(),
                wait_ms,
                config,
                map: AsyncMutex::new(None),
                nodes: Mutex::new(HashMap::new()),
                waits: AtomicU64::new(0),
                acked: AtomicU64::new(0),
                no_replica: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        })
    }

    pub(crate) fn counts(&self) -> FenceCounts {
        let i = &self.inner;
        FenceCounts {
            waits: i.waits.load(Ordering::Relaxed),
            acked: i.acked.load(Ordering::Relaxed),
            no_replica: i.no_replica.load(Ordering::Relaxed),
            failed: i.failed.load(Ordering::Relaxed),
        }
    }

    /// Returns once every write acknowledged so far by the primary of `key`'s slot is on one of
    /// its replicas (or that primary has no replica); an error otherwise.
    pub(crate) async fn confirm(&self, key: &str) -> Result<(), Error> {
        let Some(fence) = fence_key(&self.inner.prefix, key) else {
            tracing::warn!(key, "no fence key shares this key's slot; not fenced");
            return Ok(());
        };
        let map = self.slot_map().await?;
        let Some(addr) = map.primary(keyslot::slot(key)) else {
            self.forget_map(&map).await;
            return Err(Error::Protocol(format!(
                "no primary serves the slot of `{key}`"
            )));
        };
        let node = self.node(addr)?;
        if node.known_without_replica() {
            self.inner.no_replica.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let result = self.fence_on(&node, &fence).await;
        let counter = match &result {
            Ok(true) => &self.inner.acked,
            Ok(false) => &self.inner.no_replica,
            Err(_) => &self.inner.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &result
            && !matches!(e, Error::NotReplicated { .. })
        {
            // The node is gone or no longer serves the slot: its idle connections are as
            // stale as the map.
            node.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            self.forget_map(&map).await;
        }
        result.map(|_| ())
    }

    /// Fence key and `WAIT` on a dedicated connection of `node`: `Ok(true)` acknowledged,
    /// `Ok(false)` the node has no replica.
    async fn fence_on(&self, node: &Node, fence: &str) -> Result<bool, Error> {
        let _permit = node
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Protocol("the fence pool is closed".into()))?;
        let idle = node
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                node.client
                    .get_multiplexed_async_connection_with_config(&self.inner.config)
                    .await?
            }
        };
        self.inner.waits.fetch_add(1, Ordering::Relaxed);
        let (acked,): (i64,) = redis::pipe()
            .cmd("SET")
            .arg(fence)
            .arg("1")
            .arg("PX")
            .arg(FENCE_TTL_MS)
            .ignore()
            .cmd("WAIT")
            .arg(1)
            .arg(self.inner.wait_ms)
            .query_async(&mut conn)
            .await?;
        let outcome = if acked >= 1 {
            Ok(true)
        } else {
            let role: Value = redis::cmd("ROLE").query_async(&mut conn).await?;
            match replicas_in_role(&role) {
                0 => Ok(false),
                _ => Err(Error::NotReplicated {
                    node: node.name.clone(),
                    wait_ms: self.inner.wait_ms,
                }),
            }
        };
        node.set_without_replica(matches!(outcome, Ok(false)));
        node.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        outcome
    }

    async fn slot_map(&self) -> Result<Arc<SlotMap>, Error> {
        let mut cached = self.inner.map.lock().await;
        if let Some(map) = cached.as_ref() {
            return Ok(map.clone());
        }
        let mut conn = self.inner.cluster.clone();
        let reply: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await?;
        let map = Arc::new(parse_slots(&reply)?);
        *cached = Some(map.clone());
        Ok(map)
    }

    /// Drops the cached map if it is still `seen` (one reload for many failed fences).
    async fn forget_map(&self, seen: &Arc<SlotMap>) {
        let mut cached = self.inner.map.lock().await;
        if cached.as_ref().is_some_and(|m| Arc::ptr_eq(m, seen)) {
            *cached = None;
        }
    }

    fn node(&self, addr: &(String, u16)) -> Result<Arc<Node>, Error> {
        let mut nodes = self
            .inner
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(node) = nodes.get(addr) {
            return Ok(node.clone());
        }
        let (host, port) = addr.clone();
        let at = match self.inner.seed.addr().clone() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.clone(),
                port,
                insecure,
                tls_params,
            },
            _ => ConnectionAddr::Tcp(host.clone(), port),
        };
        let node = Arc::new(Node {
            name: format!("{host}:{port}"),
            client: redis::Client::open(self.inner.seed.clone().set_addr(at))?,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(POOL_PER_NODE),
            no_replica_since: Mutex::new(None),
        });
        nodes.insert(addr.clone(), node.clone());
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_key_shares_the_written_keys_slot() {
        for key in [
            "p:{exec-1}:meta",
            "p:{timers:3}:due",
            "p:def:0123abcd",
            "p:{a{b}:ctx",
        ] {
            let fence = fence_key("p", key).expect("a fence key");
            assert!(fence.starts_with("p:"), "{fence} is under the prefix");
            assert_eq!(keyslot::slot(&fence), keyslot::slot(key), "{key} / {fence}");
        }
        assert_eq!(fence_key("p", "p:{e}:meta").as_deref(), Some("p:{e}:fence"));
    }

    #[test]
    fn cluster_slots_and_role_replies_are_read() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(7101), bulk("id1")]),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(7105), bulk("id5")]),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(7102), bulk("id2")]),
            ]),
        ]);
        let map = parse_slots(&reply).unwrap();
        assert_eq!(map.primary(0), Some(&("127.0.0.1".to_string(), 7101)));
        assert_eq!(map.primary(5461), Some(&("127.0.0.1".to_string(), 7102)));
        assert!(parse_slots(&Value::Int(1)).is_err());

        let replica = Value::Array(vec![bulk("127.0.0.1"), bulk("7105"), bulk("42")]);
        let with = Value::Array(vec![
            bulk("master"),
            Value::Int(42),
            Value::Array(vec![replica]),
        ]);
        assert_eq!(replicas_in_role(&with), 1);
        let alone = Value::Array(vec![bulk("master"), Value::Int(42), Value::Array(vec![])]);
        assert_eq!(replicas_in_role(&alone), 0);
    }
}
