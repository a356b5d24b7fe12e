//! The crate's error type and its mapping to the engine's `PortError`.

use baton_engine::ports::PortError;

/// A failure of a Redis adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connection, I/O, timeout or server error (includes a Lua script error).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The key prefix would break the `{…}` hash tags that keep an execution's keys in one slot.
    #[error("invalid key prefix `{0}`: it must be non-empty and must not contain `{{` or `}}`")]
    InvalidPrefix(String),
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
    /// A script or command answered something this crate does not expect.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
}

impl From<Error> for PortError {
    fn from(e: Error) -> Self {
        PortError(e.to_string())
    }
}
