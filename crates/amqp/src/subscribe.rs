//! Private subscriptions: a queue of one's own receiving copies of messages with given routing
//! keys (e.g. statuses and completions for `baton submit --wait`), without taking them from the
//! shared queues other consumers read.

use tokio::time::Instant;

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};

use crate::{Broker, Deliveries, Error};

/// A subscription queue disappears this long after its last consumer leaves.
const SUBSCRIPTION_EXPIRES_MS: i32 = 60_000;

impl Broker {
    /// Declares a non-durable queue `baton.subscription.<random>` bound to the exchange with each
    /// of `routing_keys`, and consumes it. The queue expires a minute after its consumer goes.
    pub async fn subscribe(&self, routing_keys: &[String]) -> Result<Deliveries, Error> {
        let shared = self.shared();
        let session = shared.ready_session(Some(Instant::now() + shared.opts.connect_timeout)).await?;
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(|source| Error::Amqp { op: "channel.open", source })?;
        let suffix: String = (0..12).map(|_| format!("{:x}", rand_nibble())).collect();
        let name = format!("baton.subscription.{suffix}");
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongInt(SUBSCRIPTION_EXPIRES_MS));
        channel
            .queue_declare(ShortString::from(name.as_str()), QueueDeclareOptions::default(), args)
            .await
            .map_err(|source| Error::Topology { what: format!("queue '{name}'"), source })?;
        for key in routing_keys {
            channel
                .queue_bind(
                    ShortString::from(name.as_str()),
                    ShortString::from(shared.opts.exchange.as_str()),
                    ShortString::from(key.as_str()),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|source| Error::Topology { what: format!("binding '{name}' to '{key}'"), source })?;
        }
        let _ = channel.close(200, "declared".into()).await;
        self.consume(&name, "").await
    }
}

fn rand_nibble() -> u8 {
    // Unique enough for a queue name: time and address entropy, no extra dependency.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (h.finish() & 0xf) as u8
}
