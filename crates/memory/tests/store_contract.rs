//! The shared `ExecutionStore` contract (`baton_engine::contract`) against `MemoryStore`.

use std::sync::Arc;

use baton_engine::ports::ExecutionStore;
use baton_memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_meets_the_execution_store_contract() {
    let store: Arc<dyn ExecutionStore> = Arc::new(MemoryStore::new());
    baton_engine::contract::execution_store_contract(|| store.clone()).await;
}
