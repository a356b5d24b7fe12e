//! `PortError`: how an adapter tells the hop (and the worker around it) that a port operation
//! failed, and whether trying the same message again later may succeed.

use std::error::Error as StdError;

/// Whether retrying may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// The store or the broker is unreachable, timed out or recovering: the message is handed
    /// back and retried later.
    Transient,
    /// Retrying the same message cannot succeed (an unroutable message, data the adapter cannot
    /// read, a logic error): the message is dead-lettered at once.
    Permanent,
}

/// A failure of the store, the queue or another port, with its kind and the adapter's error as
/// its source. Displays as its message (which names the adapter's error today's way).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    kind: PortErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl PortError {
    pub fn new(
        kind: PortErrorKind,
        message: impl Into<String>,
        source: Option<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source,
        }
    }

    /// A failure that may pass (I/O, connection, timeout), caused by `source`.
    pub fn transient(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::new(PortErrorKind::Transient, message, Some(source.into()))
    }

    /// A failure retrying cannot fix, caused by `source`.
    pub fn permanent(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::new(PortErrorKind::Permanent, message, Some(source.into()))
    }

    /// A transient failure with no underlying error (a channel closed, a runtime stopping).
    pub fn transient_msg(message: impl Into<String>) -> Self {
        Self::new(PortErrorKind::Transient, message, None)
    }

    /// A permanent failure with no underlying error (an odd reply, invalid input).
    pub fn permanent_msg(message: impl Into<String>) -> Self {
        Self::new(PortErrorKind::Permanent, message, None)
    }

    pub fn kind(&self) -> PortErrorKind {
        self.kind
    }

    pub fn is_transient(&self) -> bool {
        self.kind == PortErrorKind::Transient
    }

    /// The message without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// JSON the hop itself cannot encode or decode will not encode or decode next time either.
impl From<serde_json::Error> for PortError {
    fn from(e: serde_json::Error) -> Self {
        PortError::permanent(e.to_string(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_error_keeps_its_kind_message_and_source() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = PortError::transient("redis: connection reset", io);
        assert!(e.is_transient());
        assert_eq!(e.kind(), PortErrorKind::Transient);
        assert_eq!(e.to_string(), "redis: connection reset");
        assert!(e.source().is_some());
        let p = PortError::permanent_msg("unroutable");
        assert!(!p.is_transient());
        assert!(p.source().is_none());
    }
}
