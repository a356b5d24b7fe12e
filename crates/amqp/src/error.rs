//! The crate's error type.

use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use std::time::Duration;

/// What can go wrong talking to RabbitMQ. [`Error::is_transient`] tells whether retrying later
/// may succeed (connection trouble, timeouts, nacks) or not (configuration, unroutable messages).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid options or arguments (bad URL, a name longer than 255 bytes, …).
    #[error("invalid AMQP configuration: {0}")]
    Config(String),
    /// The connection could not be established.
    #[error("cannot connect to RabbitMQ at {url}: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },
    /// Declaring the exchange, a queue or a binding failed (e.g. `PRECONDITION_FAILED` when a
    /// queue already exists with other arguments, such as another queue type).
    #[error("declaring {what} failed: {source}")]
    Topology {
        /// The exchange, queue or binding concerned.
        what: String,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },
    /// An AMQP operation failed.
    #[error("AMQP {op} failed: {source}")]
    Amqp {
        /// The operation (`basic.publish`, `basic.consume`, …).
        op: &'static str,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },
    /// A mandatory message matched no queue and the broker returned it.
    #[error(
        "message for routing key '{routing_key}' is unroutable: the broker returned it ({reply_code} {reply_text})"
    )]
    Unroutable {
        /// The routing key that matched no binding.
        routing_key: String,
        /// AMQP reply code (312 NO_ROUTE).
        reply_code: u16,
        /// AMQP reply text.
        reply_text: String,
    },
    /// The broker negatively acknowledged a published message (internal broker error).
    #[error("the broker nacked the message for routing key '{routing_key}'")]
    Nacked {
        /// The message's routing key.
        routing_key: String,
    },
    /// The connection did not become usable in time.
    #[error("RabbitMQ unavailable: gave up after {waited:?}{}", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout {
        /// How long was waited.
        waited: Duration,
        /// The last error seen while waiting, if any.
        last_error: Option<lapin::Error>,
    },
    /// The broker was closed with [`Broker::close`](crate::Broker::close).
    #[error("the AMQP broker connection is closed")]
    Closed,
}

impl Error {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Config(_) | Error::Unroutable { .. } | Error::Closed => false,
            Error::Nacked { .. } | Error::Timeout { .. } => true,
            Error::Connect { source, .. }
            | Error::Topology { source, .. }
            | Error::Amqp { source, .. } => lapin_transient(source),
        }
    }

    pub(crate) fn amqp(op: &'static str, source: lapin::Error) -> Self {
        Error::Amqp { op, source }
    }
}

/// Whether a lapin error is about the connection/channel going away (retry after recovery)
/// rather than about what was asked.
pub(crate) fn lapin_transient(error: &lapin::Error) -> bool {
    use lapin::ErrorKind as K;
    match error.kind() {
        K::IOError(_)
        | K::InvalidChannelState(..)
        | K::InvalidConnectionState(_)
        | K::InvalidChannel(_)
        | K::MissingHeartbeatError
        | K::ChannelsLimitReached => true,
        K::ProtocolError(e) => match e.kind() {
            AMQPErrorKind::Hard(h) => matches!(
                h,
                AMQPHardError::CONNECTIONFORCED
                    | AMQPHardError::INTERNALERROR
                    | AMQPHardError::RESOURCEERROR
                    | AMQPHardError::CHANNELERROR
                    | AMQPHardError::FRAMEERROR
                    | AMQPHardError::UNEXPECTEDFRAME
            ),
            AMQPErrorKind::Soft(s) => matches!(s, AMQPSoftError::RESOURCELOCKED),
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::ErrorKind;
    use lapin::protocol::AMQPError;

    fn protocol(kind: AMQPErrorKind) -> lapin::Error {
        ErrorKind::ProtocolError(AMQPError::new(kind, "x".into())).into()
    }

    #[test]
    fn transient_classification() {
        let io: lapin::Error = std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();
        assert!(Error::amqp("basic.publish", io).is_transient());
        assert!(
            Error::amqp(
                "basic.publish",
                protocol(AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED))
            )
            .is_transient()
        );
        assert!(
            !Error::Topology {
                what: "queue q".into(),
                source: protocol(AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED))
            }
            .is_transient()
        );
        assert!(
            !Error::Unroutable {
                routing_key: "x".into(),
                reply_code: 312,
                reply_text: "NO_ROUTE".into()
            }
            .is_transient()
        );
        assert!(
            Error::Nacked {
                routing_key: "x".into()
            }
            .is_transient()
        );
        assert!(!Error::Closed.is_transient());
        assert!(!Error::Config("x".into()).is_transient());
        let t = Error::Timeout {
            waited: Duration::from_secs(1),
            last_error: None,
        };
        assert!(t.is_transient());
        assert_eq!(t.to_string(), "RabbitMQ unavailable: gave up after 1s");
    }
}
