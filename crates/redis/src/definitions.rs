//! `DefinitionStore`: workflow definitions by reference (content hash), written once. Key
//! `<prefix>:def:<workflow_ref>` (a plain string; one key per operation).
//!
//! Retention: a definition expires [`DEFINITION_TTL_SECS`] after its last use (stored again or
//! loaded: both refresh the TTL) unless a stored workflow's version references it — the
//! catalog [`pin`](DefinitionStore::pin)s those (no TTL) and
//! [`unpin`](DefinitionStore::unpin)s them when the workflow is deleted.

use crate::RedisConnection;
use crate::fence::Fence;

use crate::Error;

/// How long a definition no stored workflow references outlives its last use: 30 days.
pub const DEFINITION_TTL_SECS: u64 = 30 * 24 * 3600;

/// Workflow definitions by reference. Cheap to clone.
#[derive(Clone)]
pub struct DefinitionStore {
    conn: RedisConnection,
    prefix: String,
    /// Cluster mode: a stored definition is confirmed on a replica before `put` returns.
    fence: Option<Fence>,
}

impl std::fmt::Debug for DefinitionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefinitionStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl DefinitionStore {
    /// The definitions under `<prefix>:def:` (`prefix`: the workers' `BATON_KEY_PREFIX`),
    /// unfenced (the master's and the catalog's: a lost definition is stored again by the
    /// master's refresh, or by the catalog's next save).
    pub fn new(conn: RedisConnection, prefix: &str) -> Self {
        Self::fenced(conn, prefix, None)
    }

    /// [`new`](Self::new), with the replication fence of a cluster (`None` on a single node).
    pub(crate) fn fenced(conn: RedisConnection, prefix: &str, fence: Option<Fence>) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
            fence,
        }
    }

    fn key(&self, workflow_ref: &str) -> String {
        format!("{}:def:{workflow_ref}", self.prefix)
    }

    /// Stores a definition unless one is stored under `workflow_ref` already (`SET NX`: a
    /// reference is a content hash, so the first writer's text is the text), with the TTL of
    /// an unreferenced definition; an existing one's TTL is refreshed (a pinned one stays
    /// pinned). Returns true if this call stored it.
    pub async fn put(&self, workflow_ref: &str, json: &str) -> Result<bool, Error> {
        let mut conn = self.conn.clone();
        let key = self.key(workflow_ref);
        let (set, _): (Option<String>, i64) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(json)
            .arg("NX")
            .arg("EX")
            .arg(DEFINITION_TTL_SECS)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(DEFINITION_TTL_SECS)
            .arg("XX")
            .query_async(&mut conn)
            .await?;
        if let Some(fence) = &self.fence {
            fence.confirm(&key).await?;
        }
        Ok(set.is_some())
    }

    /// The definition stored under `workflow_ref`, if any; refreshes its TTL unless pinned.
    pub async fn get(&self, workflow_ref: &str) -> Result<Option<String>, Error> {
        let mut conn = self.conn.clone();
        let key = self.key(workflow_ref);
        let (text, _): (Option<String>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(DEFINITION_TTL_SECS)
            .arg("XX")
            .query_async(&mut conn)
            .await?;
        Ok(text)
    }

    /// A stored workflow's version references the definition: it no longer expires.
    pub async fn pin(&self, workflow_ref: &str) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("PERSIST")
            .arg(self.key(workflow_ref))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Its workflow was deleted: the definition expires like an unreferenced one (executions
    /// still running keep loading it, which refreshes the TTL).
    pub async fn unpin(&self, workflow_ref: &str) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("EXPIRE")
            .arg(self.key(workflow_ref))
            .arg(DEFINITION_TTL_SECS)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}
