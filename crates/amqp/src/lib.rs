//! RabbitMQ transport for Baton's distributed runtime.
//!
//! One [`Broker`] per process holds one supervised connection (lapin 4.12 with auto-recovery,
//! wrapped in a supervisor task that rebuilds connection, channels, topology and consumers from
//! scratch when lapin's recovery fails), and separate channels for topology, publishing (a small
//! pool of confirm-mode channels) and each consumer.
//!
//! Topology (Rune-compatible, see `rune-wire.md` §1, names from a prefix in [`Topology`]): a
//! durable topic exchange and four durable queues — execution, node status, completion, dead
//! letter — each bound with its own name as routing key; classic (no arguments, as Rune declares
//! them) or quorum.
//!
//! ```no_run
//! # async fn demo() -> Result<(), baton_amqp::Error> {
//! use baton_amqp::{AmqpOptions, Broker, Outgoing};
//! use futures_util::StreamExt;
//!
//! let options = AmqpOptions::default();
//! let queue = options.topology.execution_queue.clone();
//! let broker = Broker::connect(options).await?;
//! broker
//!     .publish(vec![Outgoing::new(queue.clone(), br#"{"node_id":"a"}"#.to_vec())
//!         .with_header("traceparent", "00-…")])
//!     .await?;
//! let mut deliveries = broker.consume(&queue, "worker-1").await?;
//! while let Some(delivery) = deliveries.next().await {
//!     // … run the hop, publish its successors …
//!     delivery.ack().await?;
//! }
//! # Ok(()) }
//! ```

mod broker;
mod consume;
mod dead_letters;
mod error;
mod health;
mod message;
mod options;
mod publish;
mod relay;
mod session;
mod subscribe;
mod supervisor;
mod topology;

pub use broker::Broker;
pub use consume::{ConsumerProbe, Deliveries};
pub use dead_letters::{DeadLetter, DeadLetterBatch, DeadLetterFilter, REPLAYED_FROM_HEADER};
pub use error::Error;
pub use health::{BrokerHealth, ConsumerHealth};
pub use message::{
    DEAD_LETTERED_AT_HEADER, DELIVERY_COUNT_HEADER, Delivery, Headers, MAX_HEADER_BYTES, Outgoing,
    REASON_HEADER, bounded,
};
pub use options::AmqpOptions;
pub use relay::{RelayHandler, RelayRequest, Relayed};
pub use topology::{QueueType, Topology, UnknownQueueType};

#[cfg(test)]
mod send_sync {
    use super::*;

    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}

    /// The worker spawns these futures on a multi-threaded runtime: they must be `Send`.
    #[allow(dead_code, clippy::diverging_sub_expression)]
    async fn futures_are_send(broker: Broker, delivery: Delivery, mut deliveries: Deliveries) {
        send_sync(&broker);
        send(&deliveries);
        send_sync(&delivery);
        send(&broker.publish(Vec::new()));
        send(&broker.consume("q", "t"));
        send(&broker.dead_letter(Vec::new(), "r", Headers::new()));
        send(&broker.close());
        send(&Broker::connect(AmqpOptions::default()));
        send(&deliveries.cancel());
        send(&delivery.ack());
    }
}
