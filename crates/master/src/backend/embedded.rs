//! The embedded backend (`baton dev`): executions run on an `EmbeddedRuntime` in this process;
//! its event channel feeds the history.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::CompiledWorkflow;
use baton_core::wire::{ExecutionStatus, default_input_to_trigger};
use baton_engine::ports::CredentialVault;
use baton_engine::{NodeRegistry, StartRequest};
use baton_memory::{EmbeddedRuntime, Event};
use serde_json::Value;
use tokio::sync::{Mutex, broadcast};
use tokio_util::sync::CancellationToken;

use super::{Backend, BackendError, EventHandler, LiveEvent, StartOrder};

pub struct EmbeddedBackend {
    runtime: EmbeddedRuntime,
    registry: NodeRegistry,
    /// Subscribed at construction, so no event of any execution is missed.
    events: Mutex<Option<broadcast::Receiver<Event>>>,
}

impl EmbeddedBackend {
    /// A runtime with at most `concurrency` hops in flight, revealing credentials from
    /// `vault` at hop time; `workflow` (sub-workflow) nodes start workflows from `catalog`, the
    /// one the master's `POST /workflows` writes. Create inside a tokio runtime.
    pub fn start(
        concurrency: usize,
        vault: Option<Arc<dyn CredentialVault>>,
        catalog: Arc<baton_memory::MemoryCatalog>,
    ) -> Self {
        let runtime = EmbeddedRuntime::start_with_catalog(
            baton_nodes::registry(),
            concurrency,
            vault,
            catalog,
        );
        let events = runtime.events().subscribe();
        Self {
            runtime,
            registry: baton_nodes::registry(),
            events: Mutex::new(Some(events)),
        }
    }

    pub fn runtime(&self) -> &EmbeddedRuntime {
        &self.runtime
    }

    /// Frees an execution's state once nothing can reach it any more (as `EmbeddedRuntime::run`).
    fn forget_later(&self, execution_id: String, status: ExecutionStatus) {
        let runtime = self.runtime.clone();
        tokio::spawn(async move {
            if status != ExecutionStatus::Completed {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            runtime.store().forget(&execution_id);
        });
    }
}

#[async_trait]
impl Backend for EmbeddedBackend {
    async fn start(&self, order: &StartOrder) -> Result<(), BackendError> {
        // By reference: a workflow started before is compiled already (RFC 0011).
        let wf = match self.runtime.definition(&order.definition_hash) {
            Some(wf) => wf,
            None => Arc::new(
                CompiledWorkflow::compile(&order.definition, &self.registry)
                    .map_err(|e| BackendError::Invalid(format!("invalid definition: {e:?}")))?,
            ),
        };
        let start_at = if order.current_node == "$start" {
            None
        } else {
            match wf.node(&order.current_node) {
                Some(n) if n.trigger => None,
                Some(_) => Some(order.current_node.clone()),
                None => {
                    return Err(BackendError::Invalid(format!(
                        "`{}` is not a node of the workflow",
                        order.current_node
                    )));
                }
            }
        };
        let mut seed = order.context.clone();
        default_input_to_trigger(&mut seed);
        self.runtime.register(wf.clone());
        // The runtime keeps a completion for a waiter; take the slot now so none piles up.
        drop(self.runtime.events().completion_of(&order.execution_id));
        self.runtime
            .engine()
            .start(
                &wf,
                StartRequest {
                    workflow_id: order.workflow_id.clone(),
                    execution_id: order.execution_id.clone(),
                    seed,
                    start_at,
                    traceparent: None,
                },
            )
            .await
            .map(|_| ())
            .map_err(BackendError::from)
    }

    async fn cancel(&self, execution_id: &str) -> Result<(), BackendError> {
        self.runtime
            .engine()
            .cancel(execution_id)
            .await
            .map(|_| ())
            .map_err(BackendError::from)
    }

    async fn signal(
        &self,
        execution_id: &str,
        name: &str,
        data: Value,
    ) -> Result<(), BackendError> {
        self.runtime
            .signal(execution_id, name, data)
            .await
            .map(|_| ())
            .map_err(BackendError::from)
    }

    async fn ready(&self) -> bool {
        true
    }

    async fn run_intake(&self, handler: Arc<dyn EventHandler>, shutdown: CancellationToken) {
        let Some(mut events) = self.events.lock().await.take() else {
            tracing::error!("the embedded intake runs once");
            return;
        };
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                e = events.recv() => e,
            };
            let event = match event {
                Ok(Event::Status(s)) => LiveEvent::Status(s),
                Ok(Event::Completion(c)) => {
                    self.forget_later(c.execution_id.clone(), c.status);
                    LiveEvent::Completion(c)
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "history fell behind; {n} events missed");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            // In one process a failed write cannot be retried later: log it.
            if let Err(e) = handler.handle(event).await {
                tracing::error!(error = %e, "event not stored");
            }
        }
    }
}
