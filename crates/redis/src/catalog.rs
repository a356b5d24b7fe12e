//! `RedisCatalog`: the production [`WorkflowCatalog`] (named, versioned definitions), shared by
//! the master (`POST /workflows`) and every worker (the `workflow` node). Same semantics as the
//! in-memory catalog, checked by the shared suite `baton_engine::catalog_contract`.
//!
//! Keys (prefix `P`; the catalog keys share the hash tag `{catalog}`, so the put script runs on
//! one cluster slot):
//!
//! | Key | Type | Holds |
//! |---|---|---|
//! | `P:{catalog}:ids` | zset | every workflow id, score 0 (so it orders by id) |
//! | `P:{catalog}:wf:<id>` | hash | version (`1`, `2`, …) → JSON `{"hash","created_at"}` |
//! | `P:def:<hash>` | string | the definition itself, once per content hash ([`DefinitionStore`]); pinned (no TTL) while a version references it, expiring after the workflow is deleted |
//!
//! The definition is written (by hash, `SET NX`) before its version is added, so a version
//! that exists always has its definition; and its hash is the `reference` executions pin to,
//! so a worker loads a child's definition exactly like any other.

use std::sync::LazyLock;

use crate::RedisConnection;
use async_trait::async_trait;
use baton_core::graph::content_hash;
use baton_engine::ports::{PortError, WorkflowCatalog, WorkflowVersion};
use redis::Script;
use serde_json::Value;

use crate::{DefinitionStore, Error, reply};

static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/catalog_put.lua")));
static DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/catalog_delete.lua")));

/// What a version's hash field holds.
#[derive(serde::Deserialize)]
struct Entry {
    hash: String,
    created_at: String,
}

/// Named, versioned workflow definitions in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisCatalog {
    conn: RedisConnection,
    prefix: String,
    definitions: DefinitionStore,
}

impl std::fmt::Debug for RedisCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCatalog")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisCatalog {
    /// A catalog on `conn` under `key_prefix` (the store's prefix, so the master and the
    /// workers configured with the same prefix share it).
    pub fn new(conn: RedisConnection, key_prefix: &str) -> Self {
        Self {
            definitions: DefinitionStore::new(conn.clone(), key_prefix, None),
            conn,
            prefix: key_prefix.to_string(),
        }
    }

    pub(crate) fn ids_key(&self) -> String {
        format!("{}:{{catalog}}:ids", self.prefix)
    }

    pub(crate) fn versions_key(&self, workflow_id: &str) -> String {
        format!("{}:{{catalog}}:wf:{workflow_id}", self.prefix)
    }

    fn version_of(workflow_id: &str, version: u32, entry: &[u8]) -> Result<WorkflowVersion, Error> {
        let entry: Entry = serde_json::from_slice(entry).map_err(|source| Error::Json {
            key: format!("catalog {workflow_id} v{version}"),
            source,
        })?;
        Ok(WorkflowVersion {
            workflow_id: workflow_id.to_string(),
            version,
            hash: entry.hash,
            created_at: entry.created_at,
        })
    }

    /// Every version of `workflow_id` as stored, oldest first.
    async fn all_versions(&self, workflow_id: &str) -> Result<Vec<WorkflowVersion>, Error> {
        let mut conn = self.conn.clone();
        let fields: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.versions_key(workflow_id))
            .query_async(&mut conn)
            .await?;
        let mut versions = fields
            .iter()
            .map(|(field, entry)| {
                let version = field.parse::<u32>().map_err(|_| {
                    Error::Protocol(format!("catalog `{workflow_id}`: version field `{field}`"))
                })?;
                Self::version_of(workflow_id, version, entry)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }

    /// The definition of a version, read by its hash.
    async fn with_definition(
        &self,
        version: WorkflowVersion,
    ) -> Result<(WorkflowVersion, Value), Error> {
        let text = self.definitions.get(&version.hash).await?.ok_or_else(|| {
            Error::Protocol(format!(
                "catalog `{}` v{}: definition `{}` is not stored",
                version.workflow_id, version.version, version.hash
            ))
        })?;
        let doc = serde_json::from_str(&text).map_err(|source| Error::Json {
            key: format!("def:{}", version.hash),
            source,
        })?;
        Ok((version, doc))
    }
}

#[async_trait]
impl WorkflowCatalog for RedisCatalog {
    async fn put(
        &self,
        workflow_id: &str,
        definition: &Value,
    ) -> Result<(WorkflowVersion, bool), PortError> {
        if workflow_id.is_empty() {
            return Err(PortError::permanent_msg("workflow id must not be empty"));
        }
        let hash = content_hash(definition);
        self.definitions.put(&hash, &definition.to_string()).await?;
        self.definitions.pin(&hash).await?;
        let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut inv = PUT.prepare_invoke();
        inv.key(self.ids_key())
            .key(self.versions_key(workflow_id))
            .arg(workflow_id)
            .arg(&hash)
            .arg(&created_at);
        let mut conn = self.conn.clone();
        let reply = reply::array(inv.invoke_async(&mut conn).await.map_err(Error::from)?)?;
        let [version, added, entry] = reply.as_slice() else {
            return Err(Error::Protocol(format!("catalog put: {reply:?}")).into());
        };
        let version = u32::try_from(reply::int(version)?)
            .map_err(|_| Error::Protocol(format!("catalog put: version {version:?}")))?;
        let stored = Self::version_of(workflow_id, version, reply::bytes(entry)?)?;
        Ok((stored, reply::int(added)? == 1))
    }

    async fn latest(
        &self,
        workflow_id: &str,
    ) -> Result<Option<(WorkflowVersion, Value)>, PortError> {
        match self.all_versions(workflow_id).await?.pop() {
            Some(v) => Ok(Some(self.with_definition(v).await?)),
            None => Ok(None),
        }
    }

    async fn get(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Option<(WorkflowVersion, Value)>, PortError> {
        let mut conn = self.conn.clone();
        let entry: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.versions_key(workflow_id))
            .arg(version)
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        match entry {
            Some(entry) => {
                let v = Self::version_of(workflow_id, version, &entry)?;
                Ok(Some(self.with_definition(v).await?))
            }
            None => Ok(None),
        }
    }

    async fn versions(&self, workflow_id: &str) -> Result<Vec<WorkflowVersion>, PortError> {
        Ok(self.all_versions(workflow_id).await?)
    }

    async fn list(&self) -> Result<Vec<WorkflowVersion>, PortError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.ids_key())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(Error::from)?;
        let mut latest = Vec::with_capacity(ids.len());
        for id in ids {
            // A workflow deleted between the two reads simply drops out.
            if let Some(v) = self.all_versions(&id).await?.pop() {
                latest.push(v);
            }
        }
        Ok(latest)
    }

    async fn delete(&self, workflow_id: &str) -> Result<bool, PortError> {
        // Its definitions expire once the versions are gone (not before: a failed delete keeps
        // them pinned).
        let hashes: Vec<String> = self
            .all_versions(workflow_id)
            .await?
            .into_iter()
            .map(|v| v.hash)
            .collect();
        let mut inv = DELETE.prepare_invoke();
        inv.key(self.ids_key())
            .key(self.versions_key(workflow_id))
            .arg(workflow_id);
        let mut conn = self.conn.clone();
        let reply = inv.invoke_async(&mut conn).await.map_err(Error::from)?;
        for hash in &hashes {
            self.definitions.unpin(hash).await?;
        }
        Ok(reply::int(&reply)? == 1)
    }
}
