//! The crate's error type and its mapping to the engine's `PortError`.

use baton_engine::ports::{PortError, PortErrorKind};

/// A failure of a Redis adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connection, I/O, timeout or server error (includes a Lua script error).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The key prefix would break the `{…}` hash tags that keep an execution's keys in one slot.
    #[error("invalid key prefix `{0}`: it must be non-empty and must not contain `{{` or `}}`")]
    InvalidPrefix(String),
    /// `BATON_REDIS_URL` names no node.
    #[error(
        "the Redis URL list is empty: expected one `redis://` URL, or several comma-separated for a cluster"
    )]
    NoRedisUrl,
    /// The execution does not exist (never started, or its state expired).
    #[error("unknown execution `{0}`")]
    UnknownExecution(String),
    /// A stored context value or join arrival is not valid JSON.
    #[error("stored value `{key}` is not valid JSON: {source}")]
    Json {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// Cluster mode: a write's primary has a replica, and it did not acknowledge the write
    /// within `BATON_REDIS_WAIT_MS` (the write is not known to survive that primary's loss).
    #[error("redis: no replica of {node} acknowledged the write within {wait_ms} ms")]
    NotReplicated { node: String, wait_ms: u64 },
    /// A script or command answered something this crate does not expect.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
}

impl Error {
    /// Whether the same operation may succeed later: connection trouble, timeouts and a server
    /// that is loading or failing over pass; a script error, bad data or an odd reply do not.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Redis(e) => redis_transient(e),
            Error::NotReplicated { .. } => true,
            Error::InvalidPrefix(_)
            | Error::NoRedisUrl
            | Error::UnknownExecution(_)
            | Error::Json { .. }
            | Error::Protocol(_) => false,
        }
    }
}

/// Whether a Redis client error is about reaching the server rather than about what was asked.
pub fn redis_transient(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || !matches!(e.retry_method(), redis::RetryMethod::NoRetry)
}

impl From<Error> for PortError {
    fn from(e: Error) -> Self {
        let kind = if e.is_transient() {
            PortErrorKind::Transient
        } else {
            PortErrorKind::Permanent
        };
        PortError::new(kind, e.to_string(), Some(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_trouble_is_transient_and_bad_data_is_permanent() {
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(PortError::from(Error::Redis(io)).is_transient());
        let script = redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "odd"));
        assert!(!PortError::from(Error::Redis(script)).is_transient());
        assert!(!PortError::from(Error::Protocol("odd".into())).is_transient());
        let unacked = Error::NotReplicated {
            node: "127.0.0.1:7101".into(),
            wait_ms: 200,
        };
        assert!(PortError::from(unacked).is_transient());
        assert!(!PortError::from(Error::UnknownExecution("e".into())).is_transient());
    }
}
