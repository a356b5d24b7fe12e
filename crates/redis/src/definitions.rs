//! `DefinitionStore`: workflow definitions by reference (content hash), written once, never
//! expired. Key `<prefix>:def:<workflow_ref>` (a plain string; one key per operation).

use redis::aio::ConnectionManager;

use crate::Error;

/// Workflow definitions by reference. Cheap to clone.
#[derive(Clone)]
pub struct DefinitionStore {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for DefinitionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefinitionStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl DefinitionStore {
    pub(crate) fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
        }
    }

    fn key(&self, workflow_ref: &str) -> String {
        format!("{}:def:{workflow_ref}", self.prefix)
    }

    /// Stores a definition unless one is stored under `workflow_ref` already (`SET NX`, no
    /// TTL: a reference is a content hash, so the first writer's text is the text). Returns
    /// true if this call stored it.
    pub async fn put(&self, workflow_ref: &str, json: &str) -> Result<bool, Error> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(workflow_ref))
            .arg(json)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// The definition stored under `workflow_ref`, if any.
    pub async fn get(&self, workflow_ref: &str) -> Result<Option<String>, Error> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("GET")
            .arg(self.key(workflow_ref))
            .query_async(&mut conn)
            .await?)
    }
}
