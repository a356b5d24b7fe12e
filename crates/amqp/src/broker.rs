//! The broker handle: connecting, the public operations (publish, consume, dead-letter,
//! close), and the checks on its options.

use crate::consume::{self, Deliveries};
use crate::error::Error;
use crate::message::{
    DEAD_LETTERED_AT_HEADER, Headers, MAX_HEADER_BYTES, Outgoing, REASON_HEADER, bounded,
    bounded_headers, publish_properties, short_string,
};
use crate::options::{AmqpOptions, redact_url};
use crate::session::{
    ATTEMPT_TIMEOUT, BACKOFF_MIN, CLOSE_TIMEOUT, Shared, next_backoff, open_session,
};
use crate::supervisor::supervise;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

/// Closes the broker when the last [`Broker`] clone is dropped.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.cancel();
    }
}

/// A supervised RabbitMQ connection: topology, confirmed publishing and consumers that survive
/// reconnects. Cheap to clone; the connection is closed by [`Broker::close`] or when the last
/// clone is dropped (consumer streams then end).
#[derive(Clone)]
pub struct Broker {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.handle.shared.opts.redacted_url())
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Broker {
    /// Connects (retrying with exponential backoff until the first success, or failing after
    /// [`AmqpOptions::connect_timeout`], default 30 s; configuration errors fail at once),
    /// declares the topology idempotently on a dedicated channel — the durable topic exchange and
    /// the four durable queues, each bound with its own name as routing key — and starts the
    /// supervisor task that keeps the connection alive. Must be called inside a tokio runtime.
    pub async fn connect(opts: AmqpOptions) -> Result<Broker, Error> {
        validate(&opts)?;
        let shared = Arc::new(Shared::new(opts));

        let started = Instant::now();
        let deadline = started + shared.opts.connect_timeout;
        let mut delay = BACKOFF_MIN;
        // Every node is tried in turn; the backoff pauses only after a whole round failed.
        let mut node = 0;
        let session = loop {
            let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
            let attempt_deadline = deadline.max(Instant::now() + Duration::from_millis(500));
            let attempt = timeout(
                ATTEMPT_TIMEOUT.min(attempt_deadline - Instant::now()),
                open_session(&shared, generation, node),
            )
            .await;
            let error = match attempt {
                Ok(Ok(session)) => break session,
                Ok(Err(e)) if !e.is_transient() => return Err(e),
                Ok(Err(e)) => e,
                Err(_) => Error::Timeout {
                    waited: started.elapsed(),
                    last_error: None,
                },
            };
            let url = redact_url(&shared.nodes[node]);
            node = shared.next_node(node);
            if node != 0 {
                tracing::warn!(url = %url, error = %error, "cannot connect to this RabbitMQ node; trying the next");
                continue;
            }
            if Instant::now() + delay >= deadline {
                tracing::error!(url = %shared.opts.redacted_url(), error = %error, "giving up connecting to RabbitMQ");
                return Err(error);
            }
            tracing::warn!(url = %url, error = %error, retry_in = ?delay, "cannot connect to RabbitMQ yet");
            sleep(delay).await;
            delay = next_backoff(delay);
        };
        let session = Arc::new(session);
        tracing::info!(
            url = %redact_url(&shared.nodes[session.node]),
            connection_name = shared.opts.effective_connection_name(),
            "connected to RabbitMQ, topology declared"
        );
        shared.set_state(Some(session.clone()), true);
        let supervisor = tokio::spawn(supervise(shared.clone(), session));
        *shared.supervisor.lock().expect("supervisor lock") = Some(supervisor);
        Ok(Broker {
            handle: Arc::new(Handle { shared }),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Publishes a batch through the exchange (each [`Outgoing::direct`] one through the default
    /// exchange, straight to its queue): persistent (delivery mode 2), content type
    /// `application/json`, mandatory, on a confirm-mode channel; all messages are sent, then
    /// all confirms awaited together. A nack or an unroutable (returned) message is an error
    /// (the other messages of the batch are still published). During a reconnect it waits for
    /// the connection to recover — at most [`AmqpOptions::publish_timeout`] — and resends what
    /// was not confirmed (at-least-once: a message may then be published twice).
    pub async fn publish(&self, batch: Vec<Outgoing>) -> Result<(), Error> {
        self.publish_all(&batch).await
    }

    /// [`publish`](Broker::publish) of a borrowed batch: a caller that may publish the same
    /// batch again (a retry) keeps it without copying it first.
    pub async fn publish_all(&self, batch: &[Outgoing]) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut prepared = Vec::with_capacity(batch.len());
        for message in batch {
            prepared.push((
                short_string("routing key", &message.routing_key)?,
                publish_properties(&message.headers)?,
            ));
        }
        self.shared().publish_prepared(batch, &prepared).await
    }

    /// Starts a consumer on `queue` on its own channel, with a per-consumer `basic_qos(prefetch)`
    /// before `basic_consume` (manual acknowledgement). The stream survives reconnects and ends
    /// only after [`Deliveries::cancel`] or [`Broker::close`]. An empty `consumer_tag` lets the
    /// broker choose one. During a reconnect it first waits for the connection (at most
    /// [`AmqpOptions::connect_timeout`]). Errors from the first attempt (e.g. `NOT_FOUND` for a
    /// missing queue) are returned; later re-creations retry with backoff, and after repeated
    /// failures ask the supervisor to rebuild the connection and topology.
    pub async fn consume(&self, queue: &str, consumer_tag: &str) -> Result<Deliveries, Error> {
        consume::start(self.shared().clone(), queue, consumer_tag, None).await
    }

    /// Publishes `body` to the dead-letter queue with the original headers plus
    /// `x-baton-reason` (the reason) and `x-baton-dead-lettered-at` (RFC 3339 UTC). Every
    /// header value, the reason included, is cut to [`MAX_HEADER_BYTES`]: a reason quoting a
    /// 200 KB field would exceed the broker's frame limit, the broker would close the
    /// connection, and the message would come back to be refused again.
    pub async fn dead_letter(
        &self,
        body: Vec<u8>,
        reason: &str,
        original_headers: Headers,
    ) -> Result<(), Error> {
        let mut headers = bounded_headers(original_headers);
        headers.insert(REASON_HEADER.to_owned(), bounded(reason, MAX_HEADER_BYTES));
        headers.insert(
            DEAD_LETTERED_AT_HEADER.to_owned(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
        let message = Outgoing {
            headers,
            ..Outgoing::new(self.shared().opts.topology.dead_letter_queue.clone(), body)
        };
        self.publish(vec![message]).await
    }

    /// The node the connection is to now (its URI, password redacted), `None` while
    /// reconnecting. On a cluster (a URL list) it changes when the broker moves to another node.
    pub fn node(&self) -> Option<String> {
        self.shared().vitals.snapshot().node
    }

    /// Connected, and the topology declared on this connection (as the supervisor last saw
    /// it, within a fraction of a second). Takes no lapin lock.
    pub fn is_ready(&self) -> bool {
        self.shared().vitals.snapshot().ready
    }

    /// The connection's vital signs (ready, blocked by an alarm, down for how long, whether
    /// its supervisor still turns, publishes and probes that got stuck). Reads atomics only:
    /// answers at once even when lapin is wedged, so a health probe may call it.
    pub fn health(&self) -> crate::BrokerHealth {
        crate::BrokerHealth {
            closed: self.shared().closed.is_cancelled(),
            ..self.shared().vitals.snapshot()
        }
    }

    /// Closes the connection and stops the supervisor; consumer streams end, pending publishes
    /// fail with [`Error::Closed`]. Unacknowledged deliveries are redelivered by the broker.
    pub async fn close(&self) {
        let shared = self.shared();
        shared.closed.cancel();
        let supervisor = shared.supervisor.lock().expect("supervisor lock").take();
        if let Some(supervisor) = supervisor {
            let _ = timeout(CLOSE_TIMEOUT * 2, supervisor).await;
        }
    }

    /// The options the broker was created with.
    pub fn options(&self) -> &AmqpOptions {
        &self.shared().opts
    }

    /// The connection name the broker announces (client property `connection_name`).
    pub fn connection_name(&self) -> &str {
        self.shared().opts.effective_connection_name()
    }

    /// Deletes the four queues, the completion outbox and the exchange (for tests and tooling; messages in the queues
    /// are lost). Missing ones are ignored.
    pub async fn delete_topology(&self) -> Result<(), Error> {
        let shared = self.shared();
        let session = shared
            .ready_session(Some(Instant::now() + shared.opts.publish_timeout))
            .await?;
        // A dedicated channel: a failure closes only it.
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(|e| Error::amqp("channel.open", e))?;
        let mut seen = HashSet::new();
        for queue in shared.opts.topology.queues() {
            if seen.insert(queue) {
                channel
                    .queue_delete(queue.into(), QueueDeleteOptions::default())
                    .await
                    .map_err(|e| Error::amqp("queue.delete", e))?;
            }
        }
        channel
            .queue_delete(
                shared.opts.topology.completion_outbox_queue.as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await
            .map_err(|e| Error::amqp("queue.delete", e))?;
        channel
            .exchange_delete(shared.exchange.clone(), ExchangeDeleteOptions::default())
            .await
            .map_err(|e| Error::amqp("exchange.delete", e))?;
        let _ = channel.close(200, "OK".into()).await;
        Ok(())
    }
}

fn validate(opts: &AmqpOptions) -> Result<(), Error> {
    let nodes = opts.nodes();
    if nodes.is_empty() {
        return Err(Error::Config(
            "the AMQP URL is empty (expected amqp://user:password@host:port/vhost, or a comma-separated list of them)".into(),
        ));
    }
    for (i, node) in nodes.iter().enumerate() {
        node.parse::<lapin::uri::AMQPUri>().map_err(|e| {
            Error::Config(format!(
                "invalid AMQP URL {} (entry {} of the list): {e}",
                redact_url(node),
                i + 1
            ))
        })?;
    }
    let topology = &opts.topology;
    if topology.exchange.is_empty() {
        return Err(Error::Config(
            "exchange name is empty (the default exchange cannot be declared)".into(),
        ));
    }
    short_string("exchange name", &topology.exchange)?;
    for queue in topology
        .queues()
        .into_iter()
        .chain([topology.completion_outbox_queue.as_str()])
    {
        if queue.is_empty() {
            return Err(Error::Config("a queue name is empty".into()));
        }
        short_string("queue name", queue)?;
    }
    if opts.prefetch == 0 {
        return Err(Error::Config(
            "prefetch must be at least 1 (0 would mean unlimited)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    #[test]
    fn invalid_options_are_config_errors() {
        let bad_url = AmqpOptions {
            url: "http://nope".into(),
            ..AmqpOptions::default()
        };
        assert!(matches!(validate(&bad_url), Err(Error::Config(_))));
        let no_exchange = AmqpOptions {
            topology: Topology {
                exchange: String::new(),
                ..Topology::default()
            },
            ..AmqpOptions::default()
        };
        assert!(matches!(validate(&no_exchange), Err(Error::Config(_))));
        let long_queue = AmqpOptions {
            topology: Topology {
                status_queue: "q".repeat(300),
                ..Topology::default()
            },
            ..AmqpOptions::default()
        };
        assert!(matches!(validate(&long_queue), Err(Error::Config(_))));
        let zero_prefetch = AmqpOptions {
            prefetch: 0,
            ..AmqpOptions::default()
        };
        assert!(matches!(validate(&zero_prefetch), Err(Error::Config(_))));
        let bad_second_node = AmqpOptions {
            url: "amqp://127.0.0.1:5701,http://nope".into(),
            ..AmqpOptions::default()
        };
        let Err(Error::Config(why)) = validate(&bad_second_node) else {
            panic!("a bad second node must be a config error");
        };
        assert!(why.contains("entry 2"), "{why}");
        let empty = AmqpOptions {
            url: " , ".into(),
            ..AmqpOptions::default()
        };
        assert!(matches!(validate(&empty), Err(Error::Config(_))));
        assert!(validate(&AmqpOptions::default()).is_ok());
    }

    #[tokio::test]
    async fn connect_with_invalid_url_fails_fast() {
        let started = std::time::Instant::now();
        let err = Broker::connect(AmqpOptions {
            url: "not a url".into(),
            ..AmqpOptions::default()
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn connect_gives_up_after_the_connect_timeout() {
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let started = std::time::Instant::now();
        let err = Broker::connect(AmqpOptions {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            connect_timeout: Duration::from_millis(800),
            ..AmqpOptions::default()
        })
        .await
        .unwrap_err();
        assert!(err.is_transient(), "{err}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
}
