//! `RedisVault`: credentials in Redis, sealed before they leave the process.
//!
//! Keys (`<prefix>` is the worker's and master's `key_prefix`, so both see the same vault):
//! - `<prefix>:cred:<credential_id>` — a hash: `name`, `type`, `created_at`, `scope` (JSON:
//!   `hosts`, `workflows`) in clear, `data` = `v1.<base64(nonce ‖ XChaCha20-Poly1305
//!   ciphertext)>` (the scope is part of its associated data);
//! - `<prefix>:creds` — a sorted set of credential ids (score 0: ids are time-ordered, so the
//!   lexicographic order is the creation order);
//! - `<prefix>:vault:key_id` — the [`VaultKey::key_id`] of the key the vault is written with,
//!   recorded by the first process that checks it ([`RedisVault::check_key`]).
//!
//! All three are durable (no TTL): they live until deleted.
//!
//! On a Redis Cluster the prefix is wrapped in a hash tag (`{<prefix>}:cred:<id>`,
//! `{<prefix>}:creds`, `{<prefix>}:vault:key_id`), so that a credential and the index change
//! together (one `MULTI` on one slot); a single node keeps the keys above unchanged. The vault
//! is small and rarely written, so one slot is no hot spot.

use async_trait::async_trait;
use baton_engine::CredentialScope;
use baton_engine::ports::{
    CredentialMeta, CredentialVault, PortError, RevealError, RevealedCredential,
};
use baton_redis::RedisConnection;
use serde_json::{Map, Value};

use crate::key::VaultKey;
use crate::{VaultError, seal};

/// Credentials in Redis under one key prefix. Cheap to clone.
#[derive(Clone)]
pub struct RedisVault {
    conn: RedisConnection,
    prefix: String,
    key: VaultKey,
}

impl std::fmt::Debug for RedisVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisVault")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisVault {
    /// The vault on `conn` (the process's shared connection) under `key_prefix`.
    pub fn new(conn: RedisConnection, key_prefix: &str, key: VaultKey) -> Self {
        let prefix = match conn {
            RedisConnection::Single(_) => key_prefix.to_string(),
            RedisConnection::Cluster(_) => format!("{{{key_prefix}}}"),
        };
        Self { conn, prefix, key }
    }

    /// The Redis key holding the vault's key id.
    pub fn key_id_key(&self) -> String {
        format!("{}:vault:key_id", self.prefix)
    }

    /// Checks at startup that this process's key is the vault's: records the key id if the
    /// vault has none yet (after checking that an existing credential, if any, opens with it),
    /// and fails with [`VaultError::KeyMismatch`] when the vault was written with another key.
    /// Returns the key id.
    pub async fn check_key(&self) -> Result<String, VaultError> {
        let ours = self.key.key_id();
        let mut conn = self.conn.clone();
        let recorded: Option<String> = redis::cmd("GET")
            .arg(self.key_id_key())
            .query_async(&mut conn)
            .await?;
        if let Some(theirs) = recorded {
            return if theirs == ours {
                Ok(ours)
            } else {
                Err(VaultError::KeyMismatch { ours, theirs })
            };
        }
        // A vault from before key ids: the oldest credential tells whether the key opens it.
        let oldest: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.index_key())
            .arg(0)
            .arg(0)
            .query_async(&mut conn)
            .await?;
        if let Some(id) = oldest.first() {
            match self.reveal(id).await {
                Err(RevealError::Unreadable(_)) => {
                    return Err(VaultError::KeyMismatch {
                        ours,
                        theirs: "none recorded, and its credentials do not open with this key"
                            .into(),
                    });
                }
                Err(RevealError::Unavailable(e)) => return Err(VaultError::Other(e)),
                Ok(_) => {}
            }
        }
        let set: bool = redis::cmd("SET")
            .arg(self.key_id_key())
            .arg(&ours)
            .arg("NX")
            .query_async::<Option<String>>(&mut conn)
            .await?
            .is_some();
        if !set {
            // Another process recorded one meanwhile: compare with it.
            return Box::pin(self.check_key()).await;
        }
        Ok(ours)
    }

    /// The Redis key of one credential's hash.
    pub fn record_key(&self, credential_id: &str) -> String {
        format!("{}:cred:{credential_id}", self.prefix)
    }

    fn index_key(&self) -> String {
        format!("{}:creds", self.prefix)
    }

    async fn meta_of(&self, ids: Vec<String>) -> Result<Vec<CredentialMeta>, VaultError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(self.record_key(id))
                .arg("name")
                .arg("type")
                .arg("created_at")
                .arg("scope");
        }
        let mut conn = self.conn.clone();
        type Row = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = pipe.query_async(&mut conn).await?;
        Ok(ids
            .into_iter()
            .zip(rows)
            // A record deleted between the two reads is simply gone.
            .filter_map(|(credential_id, (name, type_name, created_at, scope))| {
                // A scope that does not parse lists as empty; revealing it fails loudly.
                let scope = seal::parse_scope(&credential_id, scope.as_deref()).unwrap_or_default();
                Some(CredentialMeta {
                    credential_id,
                    name: name?,
                    type_name: type_name.unwrap_or_default(),
                    created_at: created_at.unwrap_or_default(),
                    scope,
                })
            })
            .collect())
    }
}

#[async_trait]
impl CredentialVault for RedisVault {
    async fn put(
        &self,
        name: &str,
        type_name: &str,
        data: &Map<String, Value>,
        scope: &CredentialScope,
    ) -> Result<CredentialMeta, PortError> {
        let (meta, sealed, scope) = seal::new_credential(&self.key, name, type_name, data, scope)?;
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(self.record_key(&meta.credential_id))
            .arg("name")
            .arg(&meta.name)
            .arg("type")
            .arg(&meta.type_name)
            .arg("created_at")
            .arg(&meta.created_at)
            .arg("scope")
            .arg(scope)
            .arg("data")
            .arg(sealed)
            .ignore()
            .cmd("ZADD")
            .arg(self.index_key())
            .arg(0)
            .arg(&meta.credential_id)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(VaultError::from)?;
        Ok(meta)
    }

    async fn list(&self) -> Result<Vec<CredentialMeta>, PortError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.index_key())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(VaultError::from)?;
        Ok(self.meta_of(ids).await?)
    }

    async fn delete(&self, credential_id: &str) -> Result<bool, PortError> {
        let mut conn = self.conn.clone();
        let (deleted, _): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(self.record_key(credential_id))
            .cmd("ZREM")
            .arg(self.index_key())
            .arg(credential_id)
            .query_async(&mut conn)
            .await
            .map_err(VaultError::from)?;
        Ok(deleted > 0)
    }

    async fn reveal(&self, credential_id: &str) -> Result<Option<RevealedCredential>, RevealError> {
        let mut conn = self.conn.clone();
        type Row = (Option<String>, Option<String>, Option<String>);
        let (type_name, scope, sealed): Row = redis::cmd("HMGET")
            .arg(self.record_key(credential_id))
            .arg("type")
            .arg("scope")
            .arg("data")
            .query_async(&mut conn)
            .await
            .map_err(VaultError::from)?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        Ok(Some(seal::reveal(
            &self.key,
            credential_id,
            type_name.unwrap_or_default(),
            scope.as_deref(),
            &sealed,
        )?))
    }
}
