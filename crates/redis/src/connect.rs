//! The one Redis connection every Baton process uses, a single node or a Redis Cluster, built
//! from `BATON_REDIS_URL` by [`connect`]; and the pub/sub subscription that follows it.
//!
//! The URL is a comma-separated list of `redis://` node URLs. One URL is a single node (a
//! self-reconnecting `ConnectionManager`, as before clusters were supported); more than one,
//! or `cluster = true`, is a Redis Cluster (`redis::cluster_async`: it follows `MOVED`/`ASK`,
//! refreshes the slot map after a failover and retries a command whose node went away).

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::Error;

/// Where Redis is: the node URLs and whether they form a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    urls: Vec<String>,
    cluster: bool,
}

impl RedisTarget {
    /// Reads a comma-separated list of node URLs. More than one URL, or `cluster`, means a
    /// Redis Cluster (the URLs are its seed nodes; any one reachable is enough).
    pub fn parse(urls: &str, cluster: bool) -> Result<Self, Error> {
        let urls: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            return Err(Error::NoRedisUrl);
        }
        for url in &urls {
            redis::Client::open(url.as_str())?;
        }
        let cluster = cluster || urls.len() > 1;
        Ok(Self { urls, cluster })
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The node URLs, in the order given.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// One plain client per node URL (pub/sub connects to one node at a time).
    pub(crate) fn node_clients(&self) -> Result<Vec<redis::Client>, Error> {
        self.urls
            .iter()
            .map(|u| Ok(redis::Client::open(u.as_str())?))
            .collect()
    }
}

/// How long one command may wait for its reply and one connection attempt may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub response: Duration,
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            response: Duration::from_secs(5),
            connect: Duration::from_secs(2),
        }
    }
}

/// A shared, multiplexed, self-healing connection to a single node or a cluster. Cheap to
/// clone; every clone shares the same connection(s).
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisConnection::Single(_) => "RedisConnection::Single",
            RedisConnection::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// How often the cluster client retries a command whose node is unreachable or whose slot
/// moved, and how long it waits between tries (ms): enough to ride out a replica's promotion
/// (a few seconds with `cluster-node-timeout` 2 s); after that the command fails and the
/// caller sees a transient error.
const CLUSTER_RETRIES: u32 = 8;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 100;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 2_000;

/// Connects now (fails at once if no node answers); later drops are reconnected in the
/// background, and a command that hit a drop fails with a transient error.
pub async fn connect(target: &RedisTarget, timeouts: Timeouts) -> Result<RedisConnection, Error> {
    if target.cluster {
        let client = ClusterClientBuilder::new(target.urls.iter().map(String::as_str))
            .connection_timeout(timeouts.connect)
            .response_timeout(timeouts.response)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
            .build()?;
        let mut conn = client.get_async_connection().await?;
        let _: Value = redis::cmd("PING").query_async(&mut conn).await?;
        return Ok(RedisConnection::Cluster(conn));
    }
    let client = redis::Client::open(target.urls[0].as_str())?;
    // One plain attempt first: the manager would retry with backoff for seconds, and a
    // process starting against an unreachable Redis should hear so at once.
    let probe = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(timeouts.response))
        .set_connection_timeout(Some(timeouts.connect));
    let mut first = client
        .get_multiplexed_async_connection_with_config(&probe)
        .await?;
    let _: String = redis::cmd("PING").query_async(&mut first).await?;
    drop(first);
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeouts.response))
        .set_connection_timeout(Some(timeouts.connect));
    Ok(RedisConnection::Single(
        ConnectionManager::new_with_config(client, config).await?,
    ))
}

/// Subscribes to `channel` on the first node of `clients` that answers, starting at
/// `*next` and moving `*next` past it: on a cluster a `PUBLISH` reaches the subscribers of
/// every node, so one node is enough, and when that node dies the next call tries the others.
pub(crate) async fn subscribe_any(
    clients: &[redis::Client],
    next: &mut usize,
    channel: &str,
) -> Result<redis::aio::PubSubStream, redis::RedisError> {
    let mut last = None;
    for _ in 0..clients.len() {
        let client = &clients[*next % clients.len()];
        *next = (*next + 1) % clients.len();
        match subscribe(client, channel).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| (redis::ErrorKind::Io, "no Redis node to subscribe on").into()))
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSubStream, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub.into_on_message())
}

/// A never-ending stream of the payloads published on `channel`, subscribed (on one node)
/// when this returns; if that node's connection drops it resubscribes, on the next node that
/// answers (messages published during the gap are missed: pub/sub is not durable).
pub async fn subscribe_stream(
    target: &RedisTarget,
    channel: String,
) -> Result<impl futures_util::Stream<Item = String> + Send + 'static, Error> {
    let clients = target.node_clients()?;
    let mut next = 0;
    let first = subscribe_any(&clients, &mut next, &channel).await?;
    let state = (clients, next, channel, Some(first));
    Ok(futures_util::stream::unfold(
        state,
        |(clients, mut next, channel, mut sub)| async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match sub.as_mut() {
                    Some(stream) => match stream.next().await {
                        Some(msg) => match msg.get_payload::<String>() {
                            Ok(p) => return Some((p, (clients, next, channel, sub))),
                            Err(e) => {
                                tracing::warn!(error = %e, %channel, "ignoring a malformed message")
                            }
                        },
                        None => {
                            tracing::warn!(%channel, "subscription lost; resubscribing");
                            sub = None;
                        }
                    },
                    None => match subscribe_any(&clients, &mut next, &channel).await {
                        Ok(stream) => sub = Some(stream),
                        Err(e) => {
                            tracing::warn!(error = %e, %channel, "cannot resubscribe");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    },
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_a_single_node_and_a_list_is_a_cluster() {
        let one = RedisTarget::parse("redis://127.0.0.1:6379/", false).unwrap();
        assert!(!one.is_cluster());
        let forced = RedisTarget::parse("redis://127.0.0.1:7101", true).unwrap();
        assert!(forced.is_cluster());
        let list = RedisTarget::parse(" redis://a:7101 , redis://b:7102,", false).unwrap();
        assert!(list.is_cluster());
        assert_eq!(list.urls(), ["redis://a:7101", "redis://b:7102"]);
    }

    #[test]
    fn an_empty_list_or_a_bad_url_is_refused() {
        assert!(matches!(
            RedisTarget::parse(" , ", false),
            Err(Error::NoRedisUrl)
        ));
        assert!(RedisTarget::parse("redis://a:1,not a url", false).is_err());
    }
}
