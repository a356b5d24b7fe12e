//! The cancellation broadcast of [`RedisStore`]: `PUBLISH` on `<prefix>:cancel`, and the
//! subscription every worker follows (best effort: the execution's final status is what makes
//! later messages no-ops; this only interrupts nodes already running).

use futures_util::Stream;

use super::RedisStore;
use crate::Error;

impl RedisStore {
    /// The channel cancellations are broadcast on: `<prefix>:cancel`.
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.prefix)
    }

    /// Tells every subscribed worker to cancel the running nodes of `execution_id`. Best
    /// effort (pub/sub is not durable): the execution's final status is what makes later
    /// messages no-ops; this only interrupts nodes already running.
    pub async fn publish_cancel(&self, execution_id: &str) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.cancel_channel())
            .arg(execution_id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Payloads of `publish_cancel`: execution ids, and the races' `NodeCancel` objects
    /// (`broadcast_node_cancel`; tell them apart with `NodeCancel::from_payload`), on a
    /// dedicated pub/sub connection (never the shared one; on a cluster, to one node: a
    /// cluster `PUBLISH` reaches every node's subscribers). Subscribed when this returns; if
    /// the connection drops, the stream resubscribes by itself, on another node if that one is
    /// gone (cancellations published during the gap are missed). Never ends.
    pub async fn subscribe_cancels(
        &self,
    ) -> Result<impl Stream<Item = String> + Send + 'static, Error> {
        crate::connect::subscribe_stream(&self.target, self.cancel_channel()).await
    }
}
