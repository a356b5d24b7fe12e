//! The names of Baton's exchange and queues (derived from one prefix, in one place) and their
//! declaration on the broker.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use lapin::Channel;
use lapin::ExchangeKind;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::error::Error;

/// The type of the four queues Baton declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum QueueType {
    /// Classic queues, declared without arguments (what the Go Rune worker declares).
    #[default]
    Classic,
    /// Quorum queues (`x-queue-type: quorum`): replicated, durable, with delivery counting.
    Quorum,
}

impl QueueType {
    /// `classic` or `quorum`, as configured and as `x-queue-type` names it.
    pub fn as_str(&self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl fmt::Display for QueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queue type name that is neither `classic` nor `quorum`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("must be `classic` or `quorum`")]
pub struct UnknownQueueType {
    /// The name given.
    pub given: String,
}

impl FromStr for QueueType {
    type Err = UnknownQueueType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "classic" => Ok(QueueType::Classic),
            "quorum" => Ok(QueueType::Quorum),
            _ => Err(UnknownQueueType {
                given: name.to_owned(),
            }),
        }
    }
}

/// The exchange and the four queues (Rune-compatible, see `rune-wire.md` §1).
///
/// [`Topology::new`] is the one place the names are written: `<prefix>workflows`,
/// `<prefix>workflow.execution`, `<prefix>workflow.node.status`, `<prefix>workflow.completion`
/// and `<prefix>workflow.dead-letter`. Production uses the empty prefix; tests and benchmarks
/// give each run its own. The fields are public so a tool can point one name elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Durable topic exchange publishes go through, except
    /// [`Outgoing::direct`](crate::Outgoing::direct) ones.
    pub exchange: String,
    /// Queue of hop messages.
    pub execution_queue: String,
    /// Queue of node status events.
    pub status_queue: String,
    /// Queue of execution completions.
    pub completion_queue: String,
    /// Queue of messages that cannot be processed.
    pub dead_letter_queue: String,
    /// Baton's internal queue of completion requests, which the workers' completion relays
    /// turn into exactly one completion each (not bound to the exchange: nobody else reads or
    /// writes it; not one of the four Rune queues).
    pub completion_outbox_queue: String,
}

impl Topology {
    /// Every name with `prefix` in front of it (nothing in between: the prefix brings its own
    /// separator, e.g. `t-42.`).
    pub fn new(prefix: &str) -> Self {
        Self {
            exchange: format!("{prefix}workflows"),
            execution_queue: format!("{prefix}workflow.execution"),
            status_queue: format!("{prefix}workflow.node.status"),
            completion_queue: format!("{prefix}workflow.completion"),
            dead_letter_queue: format!("{prefix}workflow.dead-letter"),
            completion_outbox_queue: format!("{prefix}workflow.completion.outbox"),
        }
    }

    /// The four queues, in declaration order: execution, status, completion, dead letter.
    pub fn queues(&self) -> [&str; 4] {
        [
            &self.execution_queue,
            &self.status_queue,
            &self.completion_queue,
            &self.dead_letter_queue,
        ]
    }
}

impl Default for Topology {
    /// The production names (empty prefix).
    fn default() -> Self {
        Self::new("")
    }
}

/// Declares the exchange and the queues, binds each of the four with its name, and declares
/// the completion outbox (unbound). Idempotent; the
/// same arguments everywhere (a mismatch is `PRECONDITION_FAILED`, which closes the channel).
pub(crate) async fn declare(
    channel: &Channel,
    topology: &Topology,
    queue_type: QueueType,
) -> Result<(), Error> {
    let exchange = ShortString::from(topology.exchange.as_str());
    channel
        .exchange_declare(
            exchange.clone(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|source| Error::Topology {
            what: format!("exchange '{}'", topology.exchange),
            source,
        })?;
    let mut arguments = FieldTable::default();
    if queue_type == QueueType::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        );
    }
    let mut seen = HashSet::new();
    for queue in topology.queues() {
        if !seen.insert(queue) {
            continue;
        }
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments.clone(),
            )
            .await
            .map_err(|source| Error::Topology {
                what: format!("queue '{queue}' ({queue_type:?})"),
                source,
            })?;
        channel
            .queue_bind(
                queue.into(),
                exchange.clone(),
                queue.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| Error::Topology {
                what: format!("binding of queue '{queue}' to '{}'", topology.exchange),
                source,
            })?;
    }
    let outbox = topology.completion_outbox_queue.as_str();
    channel
        .queue_declare(
            outbox.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .map_err(|source| Error::Topology {
            what: format!("queue '{outbox}' ({queue_type:?})"),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_rune_names_behind_the_prefix() {
        let t = Topology::new("t-1.");
        assert_eq!(t.exchange, "t-1.workflows");
        assert_eq!(
            t.queues(),
            [
                "t-1.workflow.execution",
                "t-1.workflow.node.status",
                "t-1.workflow.completion",
                "t-1.workflow.dead-letter"
            ]
        );
        assert_eq!(t.completion_outbox_queue, "t-1.workflow.completion.outbox");
        assert_eq!(Topology::default(), Topology::new(""));
    }

    #[test]
    fn queue_types_parse_from_their_names_only() {
        for t in [QueueType::Classic, QueueType::Quorum] {
            assert_eq!(t.as_str().parse::<QueueType>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        let err = "lazy".parse::<QueueType>().unwrap_err();
        assert_eq!(err.given, "lazy");
        assert_eq!(err.to_string(), "must be `classic` or `quorum`");
    }
}
