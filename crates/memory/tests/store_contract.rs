//! The shared `ExecutionStore` contract (`baton_engine::contract`) against `MemoryStore`, and
//! the `WorkflowCatalog` contract (`baton_engine::catalog_contract`) against `MemoryCatalog`.

use std::sync::Arc;

use baton_engine::ports::{ExecutionStore, WorkflowCatalog};
use baton_memory::{MemoryCatalog, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_meets_the_execution_store_contract() {
    let store: Arc<dyn ExecutionStore> = Arc::new(MemoryStore::new());
    baton_engine::contract::execution_store_contract(|| store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_catalog_meets_the_workflow_catalog_contract() {
    let catalog: Arc<dyn WorkflowCatalog> = Arc::new(MemoryCatalog::new());
    baton_engine::catalog_contract::workflow_catalog_contract(catalog).await;
}
