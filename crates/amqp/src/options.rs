//! The settings of a broker: where it connects, its topology, its limits and timeouts.

use std::fmt;
use std::time::Duration;

use crate::topology::{QueueType, Topology};

/// Settings of a [`Broker`](crate::Broker).
///
/// Build it with struct-update syntax so that fields added later keep compiling:
/// `AmqpOptions { url, topology: Topology::new(prefix), ..AmqpOptions::default() }`.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpOptions {
    /// `amqp://user:password@host:port/vhost` (the vhost `/` is `%2f`), or a comma-separated
    /// list of such URIs, one per node of a RabbitMQ cluster: the broker connects to the first
    /// that answers and, when that connection is lost, to the next (round robin).
    pub url: String,
    /// The exchange and the four queues (default: the production names, no prefix).
    pub topology: Topology,
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
            topology: Topology::default(),
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
    /// The URL with its password replaced by `***`, for logs and errors (every node's, when
    /// [`url`](Self::url) is a list).
    pub fn redacted_url(&self) -> String {
        self.nodes()
            .iter()
            .map(|node| redact_url(node))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node URIs of [`url`](Self::url): the comma-separated entries, trimmed, empty ones
    /// dropped, in order. One entry for a single broker.
    pub fn nodes(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|node| !node.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn effective_connection_name(&self) -> &str {
        self.connection_name.as_deref().unwrap_or("baton")
    }
}

impl fmt::Debug for AmqpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpOptions")
            .field("url", &self.redacted_url())
            .field("topology", &self.topology)
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
        assert_eq!(o.topology.exchange, "workflows");
        assert_eq!(
            o.topology.queues(),
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

    #[test]
    fn a_url_list_names_one_node_per_entry_and_redacts_each() {
        let o = AmqpOptions {
            url: " amqp://u:a@h1:5701/%2f, amqp://u:b@h2:5702/%2f,,amqp://h3 ".into(),
            ..AmqpOptions::default()
        };
        assert_eq!(
            o.nodes(),
            [
                "amqp://u:a@h1:5701/%2f",
                "amqp://u:b@h2:5702/%2f",
                "amqp://h3"
            ]
        );
        assert_eq!(
            o.redacted_url(),
            "amqp://u:***@h1:5701/%2f,amqp://u:***@h2:5702/%2f,amqp://h3"
        );
        assert_eq!(AmqpOptions::default().nodes().len(), 1);
    }
}
