//! Private subscriptions: a queue of one's own receiving copies of messages with given routing
//! keys (e.g. statuses and completions for `baton submit --wait`), without taking them from the
//! shared queues other consumers read.

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};

use crate::consume::{self, QueueSetup};
use crate::message::short_string;
use crate::{Broker, Deliveries, Error};

/// A subscription queue disappears this long after its last consumer leaves.
const SUBSCRIPTION_EXPIRES_MS: i32 = 60_000;

impl Broker {
    /// Declares a non-durable queue `baton.subscription.<random>` bound to the exchange with each
    /// of `routing_keys`, and consumes it. The queue expires a minute after its consumer goes.
    /// The consumer declares and binds the queue again whenever it is re-created (after a
    /// reconnect or a broker restart, which loses non-durable queues); messages published
    /// meanwhile are missed.
    pub async fn subscribe(&self, routing_keys: &[String]) -> Result<Deliveries, Error> {
        let shared = self.shared();
        let suffix: String = (0..12).map(|_| format!("{:x}", rand_nibble())).collect();
        let name = format!("baton.subscription.{suffix}");
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-expires".into(),
            AMQPValue::LongInt(SUBSCRIPTION_EXPIRES_MS),
        );
        let exchange = ShortString::from(shared.opts.topology.exchange.as_str());
        let mut bindings = Vec::with_capacity(routing_keys.len());
        for key in routing_keys {
            bindings.push((exchange.clone(), short_string("routing key", key)?));
        }
        let setup = QueueSetup {
            options: QueueDeclareOptions::default(),
            arguments,
            bindings,
        };
        consume::start(shared.clone(), &name, "", Some(setup)).await
    }
}

fn rand_nibble() -> u8 {
    // Unique enough for a queue name: time and address entropy, no extra dependency.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() & 0xf) as u8
}
