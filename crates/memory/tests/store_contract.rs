//! The shared `ExecutionStore` contract (`baton_engine::contract`) against `MemoryStore`, and
//! the `WorkflowCatalog` contract (`baton_engine::catalog_contract`) against `MemoryCatalog`.

use std::sync::Arc;

use baton_engine::ports::{CompletionLedger, ExecutionStore, StatePorts, WorkflowCatalog};
use baton_memory::{MemoryCatalog, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_meets_the_execution_store_contract() {
    let store: Arc<dyn StatePorts> = Arc::new(MemoryStore::new());
    baton_engine::contract::execution_store_contract(|| store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_catalog_meets_the_workflow_catalog_contract() {
    let catalog: Arc<dyn WorkflowCatalog> = Arc::new(MemoryCatalog::new());
    baton_engine::catalog_contract::workflow_catalog_contract(catalog).await;
}

/// The embedded runtime forgets an execution as soon as it has the completion, which the engine
/// marks sent only afterwards: the state stays until that mark, which then finds it (instead
/// of an unknown execution) and drops it.
#[tokio::test]
async fn an_execution_forgotten_before_its_completion_is_marked_goes_at_the_mark() {
    use baton_core::message::ExecutionStatus;
    use baton_engine::contract::start_of;
    let store = MemoryStore::new();
    let start = start_of(serde_json::json!({}), 1);
    let id = start.execution_id.clone();
    store.start(&start).await.unwrap();
    store
        .finish(&id, ExecutionStatus::Completed, None)
        .await
        .unwrap();
    store.forget(&id);
    assert_eq!(store.len(), 1, "kept until the mark");
    assert!(store.mark_completion_sent(&id).await.unwrap());
    assert_eq!(store.len(), 0, "dropped at the mark");

    let running = start_of(serde_json::json!({}), 1);
    store.start(&running).await.unwrap();
    store.forget(&running.execution_id);
    assert!(store.is_empty(), "an unfinished execution goes at once");
}
