//! Definitions by content hash: stored once in Redis, cached parsed and compiled per worker.
//! A running execution stays pinned to the reference it started with.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use baton_core::CompiledWorkflow;
use baton_core::limits::DefinitionLimits;
use baton_core::validate::Invalid;
use baton_engine::NodeRegistry;
use baton_engine::ports::{DefinitionCache, PortError};
use baton_redis::DefinitionStore;
use serde_json::Value;

/// Local cache in front of the Redis definition store.
pub struct Definitions {
    local: RwLock<HashMap<String, Arc<CompiledWorkflow>>>,
    store: DefinitionStore,
    registry: Arc<NodeRegistry>,
    /// Checked before compiling: an oversized definition is refused, not compiled.
    limits: DefinitionLimits,
}

/// Why a definition is not available.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("workflow definition `{0}` is not stored")]
    Unknown(String),
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("stored definition `{reference}` is not JSON: {message}")]
    Corrupt { reference: String, message: String },
    #[error("definition store: {0}")]
    Store(#[source] baton_redis::Error),
}

impl Definitions {
    pub fn new(store: DefinitionStore, registry: Arc<NodeRegistry>) -> Self {
        Self {
            local: RwLock::new(HashMap::new()),
            store,
            registry,
            limits: DefinitionLimits::default(),
        }
    }

    /// Compiles within `limits` (default: `DefinitionLimits::default()`).
    pub fn with_limits(mut self, limits: DefinitionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Compiles a definition, stores it under its hash (once) and caches it.
    pub async fn register(&self, doc: &Value) -> Result<Arc<CompiledWorkflow>, DefinitionError> {
        // A master starting many executions of one workflow sends the same definition each
        // time: hashing it is far cheaper than compiling it again.
        if let Some(wf) = self.get(&baton_core::graph::content_hash(doc)) {
            return Ok(wf);
        }
        let wf = Arc::new(CompiledWorkflow::compile_within(
            doc,
            self.registry.as_ref(),
            &self.limits,
        )?);
        if self.get(&wf.reference).is_none() {
            self.store
                .put(&wf.reference, &doc.to_string())
                .await
                .map_err(DefinitionError::Store)?;
            self.local
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(wf.reference.clone(), wf.clone());
        }
        Ok(self.get(&wf.reference).unwrap_or(wf))
    }

    /// Makes sure `reference` is in the local cache, loading it from Redis if needed.
    pub async fn ensure(&self, reference: &str) -> Result<Arc<CompiledWorkflow>, DefinitionError> {
        if let Some(wf) = self.get(reference) {
            return Ok(wf);
        }
        let text = self
            .store
            .get(reference)
            .await
            .map_err(DefinitionError::Store)?
            .ok_or_else(|| DefinitionError::Unknown(reference.to_string()))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| DefinitionError::Corrupt {
            reference: reference.to_string(),
            message: e.to_string(),
        })?;
        let wf = Arc::new(CompiledWorkflow::compile_within(
            &doc,
            self.registry.as_ref(),
            &self.limits,
        )?);
        self.local
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reference.to_string(), wf.clone());
        Ok(wf)
    }
}

#[async_trait::async_trait]
impl DefinitionCache for Definitions {
    fn get(&self, workflow_ref: &str) -> Option<Arc<CompiledWorkflow>> {
        self.local
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(workflow_ref)
            .cloned()
    }

    /// A definition this worker has not run yet (a sub-workflow's child, or its parent) is
    /// loaded from Redis like any other.
    async fn load(&self, workflow_ref: &str) -> Result<Option<Arc<CompiledWorkflow>>, PortError> {
        match self.ensure(workflow_ref).await {
            Ok(wf) => Ok(Some(wf)),
            Err(DefinitionError::Store(e)) => Err(e.into()),
            Err(_) => Ok(None),
        }
    }

    /// A child's definition compiled by the engine: the catalog already stored it in Redis.
    fn keep(&self, workflow: Arc<CompiledWorkflow>) {
        self.local
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(workflow.reference.clone())
            .or_insert(workflow);
    }
}
