//! What can go wrong in the vault. No variant ever carries a secret.

use baton_engine::ports::{PortError, RevealError};

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
    #[error("credential vault: redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("credential vault: {0}")]
    Other(String),
}

impl From<VaultError> for PortError {
    fn from(e: VaultError) -> Self {
        PortError(e.to_string())
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
