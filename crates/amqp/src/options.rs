//! Connection and topology settings.

use std::fmt;
use std::time::Duration;

/// The type of the four queues Baton declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum QueueType {
    /// Classic queues, declared without arguments (what the Go Rune worker declares).
    #[default]
    Classic,
    /// Quorum queues (`x-queue-type: quorum`): replicated, durable, with delivery counting.
    Quorum,
}

/// Settings of a [`Broker`](crate::Broker).
///
/// Build it with struct-update syntax so that fields added later keep compiling:
/// `AmqpOptions { url, ..AmqpOptions::default() }`.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpOptions {
    /// `amqp://user:password@host:port/vhost` (the vhost `/` is `%2f`).
    pub url: String,
    /// Durable topic exchange publishes go through, except [`Outgoing::direct`](crate::Outgoing::direct)
    /// ones (default `workflows`).
    pub exchange: String,
    /// Queue of hop messages (default `workflow.execution`).
    pub execution_queue: String,
    /// Queue of node status events (default `workflow.node.status`).
    pub status_queue: String,
    /// Queue of execution completions (default `workflow.completion`).
    pub completion_queue: String,
    /// Queue of messages that cannot be processed (default `workflow.dead-letter`).
    pub dead_letter_queue: String,
    /// Type of the four queues (default classic).
    pub queue_type: QueueType,
    /// Per-consumer prefetch: how many unacknowledged deliveries a consumer may hold (default 256).
    pub prefetch: u16,
    /// Connection name shown by `rabbitmqctl list_connections client_properties` and the
    /// management UI (client property `connection_name`). Default `None` → `baton`.
    pub connection_name: Option<String>,
    /// How long [`Broker::connect`](crate::Broker::connect) keeps retrying before it gives up
    /// (default 30 s).
    pub connect_timeout: Duration,
    /// How long a [`publish`](crate::Broker::publish) waits for the connection to recover
    /// before it fails with a transient error (default 30 s).
    pub publish_timeout: Duration,
    /// Number of confirm-mode publishing channels publishes are spread over (default 4, min 1).
    pub publisher_channels: usize,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            exchange: "workflows".to_owned(),
            execution_queue: "workflow.execution".to_owned(),
            status_queue: "workflow.node.status".to_owned(),
            completion_queue: "workflow.completion".to_owned(),
            dead_letter_queue: "workflow.dead-letter".to_owned(),
            queue_type: QueueType::Classic,
            prefetch: 256,
            connection_name: None,
            connect_timeout: Duration::from_secs(30),
            publish_timeout: Duration::from_secs(30),
            publisher_channels: 4,
        }
    }
}

impl AmqpOptions {
    /// The four queues, in declaration order: execution, status, completion, dead letter.
    pub fn queues(&self) -> [&str; 4] {
        [
            &self.execution_queue,
            &self.status_queue,
            &self.completion_queue,
            &self.dead_letter_queue,
        ]
    }

    /// The URL with its password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    pub(crate) fn effective_connection_name(&self) -> &str {
        self.connection_name.as_deref().unwrap_or("baton")
    }
}

impl fmt::Debug for AmqpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpOptions")
            .field("url", &self.redacted_url())
            .field("exchange", &self.exchange)
            .field("execution_queue", &self.execution_queue)
            .field("status_queue", &self.status_queue)
            .field("completion_queue", &self.completion_queue)
            .field("dead_letter_queue", &self.dead_letter_queue)
            .field("queue_type", &self.queue_type)
            .field("prefetch", &self.prefetch)
            .field("connection_name", &self.connection_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("publish_timeout", &self.publish_timeout)
            .field("publisher_channels", &self.publisher_channels)
            .finish()
    }
}

/// `scheme://user:password@host/…` → `scheme://user:***@host/…`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_rune_topology() {
        let o = AmqpOptions::default();
        assert_eq!(o.exchange, "workflows");
        assert_eq!(
            o.queues(),
            [
                "workflow.execution",
                "workflow.node.status",
                "workflow.completion",
                "workflow.dead-letter"
            ]
        );
        assert_eq!(o.queue_type, QueueType::Classic);
        assert_eq!(o.prefetch, 256);
    }

    #[test]
    fn password_is_redacted() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://127.0.0.1"), "amqp://127.0.0.1");
        assert_eq!(redact_url("amqp://user@host/v"), "amqp://user@host/v");
        let o = AmqpOptions {
            url: "amqps://u:p%40ss@h/v".into(),
            ..AmqpOptions::default()
        };
        let debug = format!("{o:?}");
        assert!(debug.contains("u:***@h"), "{debug}");
        assert!(!debug.contains("p%40ss"), "{debug}");
    }
}
