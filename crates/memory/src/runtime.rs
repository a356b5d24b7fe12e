//! `EmbeddedRuntime`: the whole engine in one process — in-memory queue, store and events, and
//! a dispatcher running many hops concurrently (independent branches run in parallel).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use baton_core::CompiledWorkflow;
use baton_core::message::{Completion, ExecutionStatus};
use baton_engine::ports::{DefinitionCache, PortError};
use baton_engine::{Engine, HopOutcome, NodeRegistry, StartRequest};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::events::MemoryEvents;
use crate::queue::MemoryQueue;
use crate::store::MemoryStore;

/// Compiled definitions keyed by reference.
#[derive(Debug, Default)]
pub struct MemoryDefinitions {
    map: RwLock<HashMap<String, Arc<CompiledWorkflow>>>,
}

impl MemoryDefinitions {
    pub fn insert(&self, workflow_ref: String, wf: Arc<CompiledWorkflow>) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(workflow_ref, wf);
    }
}

impl DefinitionCache for MemoryDefinitions {
    fn get(&self, workflow_ref: &str) -> Option<Arc<CompiledWorkflow>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(workflow_ref)
            .cloned()
    }
}

/// The embedded runtime. Create inside a tokio runtime.
#[derive(Debug, Clone)]
pub struct EmbeddedRuntime {
    engine: Arc<Engine>,
    store: Arc<MemoryStore>,
    events: Arc<MemoryEvents>,
    definitions: Arc<MemoryDefinitions>,
}

impl EmbeddedRuntime {
    /// Starts the dispatcher with at most `concurrency` hops in flight.
    pub fn start(registry: NodeRegistry, concurrency: usize) -> Self {
        let store = Arc::new(MemoryStore::new());
        let events = Arc::new(MemoryEvents::new());
        let definitions = Arc::new(MemoryDefinitions::default());
        let (queue, mut rx) = MemoryQueue::new();
        let engine = Arc::new(Engine::new(
            store.clone(),
            Arc::new(queue),
            events.clone(),
            definitions.clone(),
            Arc::new(registry),
        ));
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let dispatcher_engine = engine.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let engine = dispatcher_engine.clone();
                tokio::spawn(async move {
                    let node = msg.node_id.clone();
                    // Boxed: the hop's future is several KB, and a task copies its future
                    // when it is spawned and when it completes.
                    match Box::pin(engine.handle(msg)).await {
                        Ok(HopOutcome::Poison(reason)) => {
                            tracing::error!(node, reason, "message dropped as poison")
                        }
                        Err(e) => tracing::error!(node, error = %e, "hop failed"),
                        Ok(_) => {}
                    }
                    drop(permit);
                });
            }
        });
        Self {
            engine,
            store,
            events,
            definitions,
        }
    }

    pub fn events(&self) -> &MemoryEvents {
        &self.events
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Registers a compiled workflow and returns its reference.
    pub fn register(&self, workflow: Arc<CompiledWorkflow>) -> String {
        let workflow_ref = workflow_ref(&workflow);
        self.definitions.insert(workflow_ref.clone(), workflow);
        workflow_ref
    }

    /// Starts an execution; `input` becomes `$input` and `$trigger`.
    pub async fn submit(
        &self,
        workflow: Arc<CompiledWorkflow>,
        execution_id: &str,
        input: Value,
    ) -> Result<tokio::sync::oneshot::Receiver<Completion>, PortError> {
        self.register(workflow.clone());
        let mut seed = Map::new();
        seed.insert("$input".into(), input.clone());
        seed.insert("$trigger".into(), input);
        let done = self.events.completion_of(execution_id);
        let workflow_id = workflow
            .definition
            .name
            .clone()
            .unwrap_or_else(|| "embedded".into());
        let request = StartRequest {
            workflow_id,
            execution_id: execution_id.to_string(),
            seed,
            start_at: None,
            traceparent: None,
        };
        self.engine.start(&workflow, request).await?;
        Ok(done)
    }

    /// Runs a workflow to completion.
    pub async fn run(
        &self,
        workflow: Arc<CompiledWorkflow>,
        execution_id: &str,
        input: Value,
    ) -> Result<Completion, PortError> {
        let done = self.submit(workflow, execution_id, input).await?;
        let completion = done
            .await
            .map_err(|_| PortError("runtime stopped before completion".into()))?;
        // A completed execution has no message left (its token count reached zero): forget
        // it now. After a halt, messages still in flight (cancelled branches, timers) must find
        // the execution finished, not unknown: forget it a little later.
        if completion.status == ExecutionStatus::Completed {
            self.store.forget(execution_id);
        } else {
            let store = self.store.clone();
            let id = execution_id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                store.forget(&id);
            });
        }
        Ok(completion)
    }

    /// Delivers a named signal to an execution (wait nodes in `signal` mode).
    pub async fn signal(
        &self,
        execution_id: &str,
        name: &str,
        data: Value,
    ) -> Result<usize, PortError> {
        self.engine.signal(execution_id, name, data).await
    }

    /// Cancels a running execution.
    pub async fn cancel(
        &self,
        workflow: &CompiledWorkflow,
        execution_id: &str,
    ) -> Result<bool, PortError> {
        let _ = workflow;
        self.engine.cancel(execution_id).await
    }

    pub fn store(&self) -> &MemoryStore {
        &self.store
    }
}

fn workflow_ref(wf: &CompiledWorkflow) -> String {
    wf.reference.clone()
}
