//! `MemoryCatalog`: the in-memory [`WorkflowCatalog`] (named, versioned definitions) for the
//! embedded runtime (`baton run --workflows DIR`) and tests. Same semantics as the Redis
//! catalog, checked by the shared suite `baton_engine::catalog_contract`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use baton_core::graph::content_hash;
use baton_engine::ports::{PortError, WorkflowCatalog, WorkflowVersion};
use serde_json::Value;

/// Versions of every workflow, in memory; versions of one workflow are 1, 2, 3, … in order.
#[derive(Debug, Default)]
pub struct MemoryCatalog {
    workflows: Mutex<BTreeMap<String, Vec<(WorkflowVersion, Value)>>>,
}

impl MemoryCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<(WorkflowVersion, Value)>>> {
        // A panic while holding the lock cannot leave a half-written entry (every update is a
        // single push or remove), so a poisoned lock is still consistent.
        self.workflows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[async_trait]
impl WorkflowCatalog for MemoryCatalog {
    async fn put(
        &self,
        workflow_id: &str,
        definition: &Value,
    ) -> Result<(WorkflowVersion, bool), PortError> {
        if workflow_id.is_empty() {
            return Err(PortError::permanent_msg("workflow id must not be empty"));
        }
        let hash = content_hash(definition);
        let mut workflows = self.locked();
        let versions = workflows.entry(workflow_id.to_string()).or_default();
        if let Some((latest, _)) = versions.last()
            && latest.hash == hash
        {
            return Ok((latest.clone(), false));
        }
        let version = WorkflowVersion {
            workflow_id: workflow_id.to_string(),
            version: u32::try_from(versions.len() + 1).map_err(|_| {
                PortError::permanent_msg(format!("workflow `{workflow_id}` has too many versions"))
            })?,
            hash,
            created_at: now_rfc3339(),
        };
        versions.push((version.clone(), definition.clone()));
        Ok((version, true))
    }

    async fn latest(
        &self,
        workflow_id: &str,
    ) -> Result<Option<(WorkflowVersion, Value)>, PortError> {
        Ok(self
            .locked()
            .get(workflow_id)
            .and_then(|versions| versions.last().cloned()))
    }

    async fn get(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Option<(WorkflowVersion, Value)>, PortError> {
        let index = (version as usize).checked_sub(1);
        Ok(self
            .locked()
            .get(workflow_id)
            .and_then(|versions| index.and_then(|i| versions.get(i).cloned())))
    }

    async fn versions(&self, workflow_id: &str) -> Result<Vec<WorkflowVersion>, PortError> {
        Ok(self
            .locked()
            .get(workflow_id)
            .map(|versions| versions.iter().map(|(v, _)| v.clone()).collect())
            .unwrap_or_default())
    }

    async fn list(&self) -> Result<Vec<WorkflowVersion>, PortError> {
        Ok(self
            .locked()
            .values()
            .filter_map(|versions| versions.last().map(|(v, _)| v.clone()))
            .collect())
    }

    async fn delete(&self, workflow_id: &str) -> Result<bool, PortError> {
        Ok(self.locked().remove(workflow_id).is_some())
    }
}
