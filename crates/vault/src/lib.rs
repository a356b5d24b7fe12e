//! The credential vault: implementations of [`baton_engine::ports::CredentialVault`] that keep
//! each credential's secret fields encrypted at rest with XChaCha20-Poly1305 (a fresh random
//! nonce per write, the credential id and type as associated data), in Redis ([`RedisVault`])
//! or in memory ([`MemoryVault`]). Only `reveal` — called by the hop right before a node runs —
//! ever decrypts. [`seal_secret`] seals the master's own secrets (webhook signing secrets)
//! with the same key.

mod error;
mod key;
mod memory;
mod redis_vault;
mod seal;
mod sealed;

pub use error::VaultError;
pub use key::{KeyError, VaultKey};
pub use memory::MemoryVault;
pub use redis_vault::RedisVault;
pub use sealed::{OpenError, open_secret, random_bytes, seal_secret};

/// A new credential id: `cred_` and a time-ordered UUID, so listings sort by creation.
fn new_credential_id() -> String {
    format!("cred_{}", uuid::Uuid::now_v7().simple())
}

/// What `reveal` returns: the secret fields plus `"type"` (the credential's type) unless the
/// fields set one themselves — the shape nodes expect (Rune's credential values and type).
fn with_type(
    mut fields: serde_json::Map<String, serde_json::Value>,
    type_name: String,
) -> serde_json::Map<String, serde_json::Value> {
    if !fields.contains_key("type") {
        fields.insert("type".into(), serde_json::Value::String(type_name));
    }
    fields
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
