//! A transactional relay: consumes a queue of requests on its own channel in AMQP transaction
//! mode (`tx.select`) and, for each request, publishes what the handler says and acks the
//! request in ONE transaction. A crash before `tx.commit` rolls both back (the request comes
//! back, nothing was published); after it, the request is gone and the message is out. This is
//! what makes "publish once" decidable inside the broker, where no ordering of a publish and a
//! mark in another store is.

use crate::broker::Broker;
use crate::error::Error;
use crate::message::{Headers, Outgoing, headers_from_table, publish_properties, short_string};
use crate::session::{BACKOFF_MIN, Session, Shared, next_backoff};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Consumer};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

/// Requests handled per transaction, at most (one commit for all of them).
const BATCH: usize = 64;

/// A request read from the relay's queue.
#[derive(Debug, Clone)]
pub struct RelayRequest {
    /// The body.
    pub body: Vec<u8>,
    /// String headers.
    pub headers: Headers,
    /// Whether the broker delivered this request before (to this or another relay).
    pub redelivered: bool,
}

/// What the relay does with one request; the publish and the settlement go in one transaction.
#[derive(Debug)]
pub enum Relayed {
    /// Publish this, and ack the request.
    Publish(Outgoing),
    /// Ack the request, publish nothing.
    Drop,
    /// Requeue the request (the handler could not decide now, e.g. its store is unreachable).
    Retry,
}

/// The relay's decisions. `decide` runs before the transaction, `committed` after a commit
/// with the requests whose message it published.
pub trait RelayHandler: Send + Sync + 'static {
    fn decide<'a>(&'a self, request: &'a RelayRequest) -> BoxFuture<'a, Relayed>;
    fn committed(&self, published: Vec<RelayRequest>) -> BoxFuture<'_, ()>;
}

impl Broker {
    /// Runs a relay on `queue` until `shutdown` (or the broker is closed): see the module
    /// documentation. Survives reconnects: a channel that fails is dropped (its uncommitted
    /// transaction rolls back, its requests are redelivered) and a fresh one is opened with
    /// `tx.select` again (lapin's own recovery of a channel would not restore transaction mode).
    pub async fn run_relay(
        &self,
        queue: &str,
        prefetch: u16,
        handler: Arc<dyn RelayHandler>,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let shared = self.shared().clone();
        let queue = short_string("queue name", queue)?;
        let mut delay = BACKOFF_MIN;
        loop {
            let session = tokio::select! {
                session = shared.ready_session(None) => match session {
                    Ok(session) => session,
                    Err(_) => return Ok(()),
                },
                () = shutdown.cancelled() => return Ok(()),
            };
            match relay_on(&shared, &session, &queue, prefetch, &*handler, &shutdown).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(queue = %queue, error = %e, retry_in = ?delay, "relay interrupted");
                }
            }
            tokio::select! {
                () = sleep(delay) => {}
                () = shutdown.cancelled() => return Ok(()),
                () = shared.closed.cancelled() => return Ok(()),
            }
            delay = next_backoff(delay);
        }
    }
}

async fn open(
    session: &Session,
    queue: &ShortString,
    prefetch: u16,
) -> Result<(Channel, Consumer), Error> {
    let channel = session
        .connection
        .create_channel()
        .await
        .map_err(|e| Error::amqp("channel.open", e))?;
    channel
        .tx_select()
        .await
        .map_err(|e| Error::amqp("tx.select", e))?;
    channel
        .basic_qos(prefetch.max(1), BasicQosOptions { global: false })
        .await
        .map_err(|e| Error::amqp("basic.qos", e))?;
    let consumer = channel
        .basic_consume(
            queue.clone(),
            ShortString::from(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| Error::amqp("basic.consume", e))?;
    Ok((channel, consumer))
}

/// Relays on one channel until shutdown (`Ok`) or a failure (`Err`: the caller opens another).
async fn relay_on(
    shared: &Shared,
    session: &Session,
    queue: &ShortString,
    prefetch: u16,
    handler: &dyn RelayHandler,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let (channel, mut consumer) = open(session, queue, prefetch).await?;
    tracing::info!(queue = %queue, "relay consuming");
    let result = async {
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                () = shared.closed.cancelled() => return Ok(()),
                item = consumer.next() => item,
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match futures_util::FutureExt::now_or_never(consumer.next()) {
                    Some(item) => batch.push(item),
                    None => break,
                }
            }
            let mut published = Vec::new();
            let mut retried = false;
            for item in batch {
                let delivery = match item {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(e)) => return Err(Error::amqp("basic.consume", e)),
                    None => return Err(Error::Closed),
                };
                let tag = delivery.delivery_tag;
                let request = RelayRequest {
                    headers: delivery
                        .properties
                        .headers()
                        .as_ref()
                        .map(headers_from_table)
                        .unwrap_or_default(),
                    body: delivery.data,
                    redelivered: delivery.redelivered,
                };
                match handler.decide(&request).await {
                    Relayed::Publish(out) => {
                        publish(shared, &channel, &out).await?;
                        ack(&channel, tag).await?;
                        published.push(request);
                    }
                    Relayed::Drop => ack(&channel, tag).await?,
                    Relayed::Retry => {
                        retried = true;
                        channel
                            .basic_nack(
                                tag,
                                BasicNackOptions {
                                    multiple: false,
                                    requeue: true,
                                },
                            )
                            .await
                            .map_err(|e| Error::amqp("basic.nack", e))?;
                    }
                }
            }
            // The publishes and the settlements of the batch take effect here, together.
            channel
                .tx_commit()
                .await
                .map_err(|e| Error::amqp("tx.commit", e))?;
            if !published.is_empty() {
                handler.committed(published).await;
            }
            if retried {
                // The handler's store is unreachable: do not spin on the requeued requests.
                sleep(Duration::from_millis(200)).await;
            }
        }
    }
    .await;
    // Uncommitted work on this channel rolls back when it closes.
    let _ = channel.close(200, ShortString::from("relay done")).await;
    result
}

async fn publish(shared: &Shared, channel: &Channel, out: &Outgoing) -> Result<(), Error> {
    let exchange = if out.direct {
        ShortString::from("")
    } else {
        shared.exchange.clone()
    };
    channel
        .basic_publish(
            exchange,
            short_string("routing key", &out.routing_key)?,
            BasicPublishOptions::default(),
            &out.body,
            publish_properties(&out.headers)?,
        )
        .await
        .map_err(|e| Error::amqp("basic.publish", e))?;
    Ok(())
}

async fn ack(channel: &Channel, tag: u64) -> Result<(), Error> {
    channel
        .basic_ack(tag, BasicAckOptions::default())
        .await
        .map_err(|e| Error::amqp("basic.ack", e))
}
