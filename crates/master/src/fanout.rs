//! Live events to SSE clients: every replica's clients see every event, whichever replica
//! consumed it. Across replicas through a Redis pub/sub channel; in one process through a
//! broadcast channel.

use std::time::Duration;

use async_trait::async_trait;
use baton_redis::{RedisConnection, RedisTarget};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::backend::LiveEvent;

/// Events a slow SSE client may fall behind before it misses some.
const CAPACITY: usize = 4096;

#[async_trait]
pub trait Fanout: Send + Sync {
    /// Sends an event to every subscriber of every replica.
    async fn publish(&self, event: &LiveEvent);
    fn subscribe(&self) -> broadcast::Receiver<LiveEvent>;
}

/// One process: a broadcast channel.
pub struct LocalFanout {
    tx: broadcast::Sender<LiveEvent>,
}

impl Default for LocalFanout {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

#[async_trait]
impl Fanout for LocalFanout {
    async fn publish(&self, event: &LiveEvent) {
        let _ = self.tx.send(event.clone());
    }

    fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }
}

/// Several replicas: `PUBLISH` on a channel every replica subscribes to (a supervised
/// subscription, re-established after Redis restarts; on a cluster, on one node, moving to
/// another when that one is lost: a cluster `PUBLISH` reaches every node's subscribers) and
/// re-broadcasts locally.
pub struct RedisFanout {
    conn: RedisConnection,
    channel: String,
    tx: broadcast::Sender<LiveEvent>,
}

impl RedisFanout {
    pub fn start(
        target: RedisTarget,
        conn: RedisConnection,
        channel: String,
        shutdown: CancellationToken,
    ) -> Self {
        let tx = broadcast::channel(CAPACITY).0;
        let local = tx.clone();
        let name = channel.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            while !shutdown.is_cancelled() {
                match baton_redis::subscribe_stream(&target, name.clone()).await {
                    Ok(messages) => {
                        // The stream resubscribes by itself (on another node if need be).
                        let mut messages = Box::pin(messages);
                        loop {
                            let payload = tokio::select! {
                                () = shutdown.cancelled() => return,
                                m = messages.next() => m,
                            };
                            let Some(payload) = payload else { break };
                            if let Ok(event) = serde_json::from_str::<LiveEvent>(&payload) {
                                let _ = local.send(event);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "live events: Redis unreachable"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        });
        Self { conn, channel, tx }
    }
}

#[async_trait]
impl Fanout for RedisFanout {
    async fn publish(&self, event: &LiveEvent) {
        let Ok(payload) = serde_json::to_string(event) else {
            return;
        };
        let mut conn = self.conn.clone();
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            // Live updates are best effort: the history has the event.
            tracing::warn!(error = %e, "live event not published");
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }
}
