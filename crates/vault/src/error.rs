//! What can go wrong in the vault. No variant ever carries a secret.

use baton_engine::ports::{PortError, PortErrorKind, RevealError};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The stored ciphertext does not open with this key: a different `BATON_CREDENTIALS_KEY`
    /// than the one it was written with, or the stored value was altered or moved.
    #[error(
        "credential `{credential_id}` cannot be decrypted: it was written with another \
         BATON_CREDENTIALS_KEY, or its stored value was altered"
    )]
    Decrypt { credential_id: String },
    /// The stored record is not in the vault's format.
    #[error("credential `{credential_id}` is stored in an unreadable form: {problem}")]
    Corrupt {
        credential_id: String,
        problem: String,
    },
    #[error("credential name must not be empty")]
    EmptyName,
    /// A `hosts` pattern or `workflows` id that cannot be used.
    #[error("credential scope: {0}")]
    Scope(String),
    /// This process's key is not the one the vault's credentials were written with.
    #[error(
        "credentials key does not match the vault (key id {ours}, vault has {theirs}): set \
         BATON_CREDENTIALS_KEY to the key the master and the other workers use"
    )]
    KeyMismatch { ours: String, theirs: String },
    #[error("credential vault: redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("credential vault: {0}")]
    Other(String),
}

impl From<VaultError> for PortError {
    /// Only an unreachable Redis may pass; a credential that does not open or parse, or an
    /// empty name, fails the same way next time.
    fn from(e: VaultError) -> Self {
        let kind = match &e {
            VaultError::Redis(r)
                if r.is_io_error()
                    || r.is_connection_dropped()
                    || r.is_connection_refusal()
                    || r.is_timeout()
                    || !matches!(r.retry_method(), redis::RetryMethod::NoRetry) =>
            {
                PortErrorKind::Transient
            }
            _ => PortErrorKind::Permanent,
        };
        PortError::new(kind, e.to_string(), Some(Box::new(e)))
    }
}

impl From<VaultError> for RevealError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Decrypt { .. } | VaultError::Corrupt { .. } => {
                RevealError::Unreadable(e.to_string())
            }
            other => RevealError::Unavailable(other.to_string()),
        }
    }
}
