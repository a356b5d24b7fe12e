//! `EmbeddedRuntime`: the whole engine in one process — in-memory store and events, each hop
//! message run as a task, many concurrently (independent branches run in parallel).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use async_trait::async_trait;

use baton_core::CompiledWorkflow;
use baton_core::wire::{Completion, ExecutionStatus, HopMessage, StatusMode, seed_input};
use baton_engine::ports::{CredentialVault, DefinitionCache, HopQueue, PortError};
use baton_engine::{Clock, Engine, HopOutcome, NodeRegistry, StartRequest, SystemClock};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::catalog::MemoryCatalog;
use crate::events::MemoryEvents;
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

    /// A sub-workflow's definition: the embedded runtime has no other place to load it from.
    fn keep(&self, workflow: Arc<CompiledWorkflow>) {
        self.insert(workflow.reference.clone(), workflow);
    }
}

/// Runs each published hop message as a task, at most `permits` at once (waiting messages
/// queue on the fair semaphore, in publish order). The first message a hop hands on is kept for
/// the task that ran the hop, which runs it next on the same thread once the hop has returned:
/// a chain of hops needs no hand-off between tasks or threads.
struct Dispatch {
    engine: OnceLock<Weak<Engine>>,
    permits: Arc<Semaphore>,
    /// A traced runtime's hop tasks stay in the span they were started in.
    traced: bool,
    /// Hop tasks spawned and not finished (waiting for a permit included): zero when the
    /// runtime is idle apart from its timers (what `baton test` moves virtual time on).
    in_flight: Arc<AtomicUsize>,
}

/// Counts a hop task as in flight from its spawn to its end (or its drop at shutdown).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a hop task knows about itself: its runtime, and the message to run next.
struct Current {
    owner: usize,
    next: RefCell<Option<HopMessage>>,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// Hops a task runs in a row before it lets other tasks run.
const HOPS_BEFORE_YIELD: u32 = 32;

impl Dispatch {
    fn id(&self) -> usize {
        self as *const Self as usize
    }

    fn spawn(&self, msg: HopMessage) {
        // If the runtime is gone, the message has nowhere to go.
        let Some(engine) = self.engine.get().and_then(Weak::upgrade) else {
            return;
        };
        let permits = self.permits.clone();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let in_flight = InFlight(self.in_flight.clone());
        let current = Current {
            owner: self.id(),
            next: RefCell::new(None),
        };
        // Boxed once per task: the hop's future is several KB, and a task copies its future
        // when it is spawned and when it completes; the hops it runs in a row reuse the box.
        let task = CURRENT.scope(current, async move {
            let _in_flight = in_flight;
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let mut msg = msg;
            let mut ran = 0u32;
            loop {
                match engine.handle_ref(&msg).await {
                    Ok(HopOutcome::Poison(reason)) => {
                        tracing::error!(node = msg.node_id, reason, "message dropped as poison")
                    }
                    Err(e) => tracing::error!(node = msg.node_id, error = %e, "hop failed"),
                    Ok(_) => {}
                }
                let Some(next) = CURRENT.with(|c| c.next.borrow_mut().take()) else {
                    break;
                };
                msg = next;
                ran += 1;
                if ran.is_multiple_of(HOPS_BEFORE_YIELD) {
                    tokio::task::yield_now().await;
                }
            }
        });
        if self.traced {
            // `baton run`'s hops stay in its span: their node spans join its trace.
            let span = tracing::Span::current();
            tokio::spawn(Box::pin(tracing::Instrument::instrument(task, span)));
        } else {
            tokio::spawn(Box::pin(task));
        }
    }

    /// Runs `msg` next on the current task if that task is a hop task of this runtime with
    /// nothing queued yet; otherwise on a new task.
    fn run_next(&self, msg: HopMessage) {
        let free = CURRENT
            .try_with(|c| c.owner == self.id() && c.next.borrow().is_none())
            .unwrap_or(false);
        if free {
            CURRENT.with(|c| *c.next.borrow_mut() = Some(msg));
        } else {
            self.spawn(msg);
        }
    }
}

/// The embedded runtime's `HopQueue`: hops run as tasks; delayed messages wait on the clock in
/// a task of their own, never on a hop slot.
struct SpawnQueue {
    dispatch: Arc<Dispatch>,
    clock: Arc<dyn Clock>,
    /// Timers not fired yet, by `execution_id|hop id`: what `cancel_delayed` aborts.
    timers: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
}

fn timer_key(message: &HopMessage) -> String {
    format!("{}|{}", message.execution_id, message.hop_id())
}

#[async_trait]
impl HopQueue for SpawnQueue {
    async fn publish(&self, messages: Vec<HopMessage>) -> Result<(), PortError> {
        for m in messages {
            self.dispatch.run_next(m);
        }
        Ok(())
    }

    async fn publish_delayed(&self, message: HopMessage, delay_ms: u64) -> Result<(), PortError> {
        let dispatch = self.dispatch.clone();
        let clock = self.clock.clone();
        // The due time is taken now, not when the task first runs: time the clock moves in
        // between counts towards the delay.
        let due = clock.now_ms().saturating_add(delay_ms);
        let key = timer_key(&message);
        let timers = self.timers.clone();
        // Held until the task is registered, so it cannot remove its entry before it exists.
        let mut pending = lock(&self.timers);
        let fired = key.clone();
        // A traced run's hops go on in its span after a timer too.
        let span = self.dispatch.traced.then(tracing::Span::current);
        let task = tokio::spawn(async move {
            clock.sleep_until(due).await;
            lock(&timers).remove(&fired);
            match span {
                Some(span) => span.in_scope(|| dispatch.spawn(message)),
                None => dispatch.spawn(message),
            }
        });
        pending.insert(key, task.abort_handle());
        Ok(())
    }

    async fn cancel_delayed(&self, message: &HopMessage) -> Result<(), PortError> {
        if let Some(task) = lock(&self.timers).remove(&timer_key(message)) {
            task.abort();
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The embedded runtime. Create inside a tokio runtime.
#[derive(Debug, Clone)]
pub struct EmbeddedRuntime {
    engine: Arc<Engine>,
    in_flight: Arc<AtomicUsize>,
    store: Arc<MemoryStore>,
    events: Arc<MemoryEvents>,
    definitions: Arc<MemoryDefinitions>,
    catalog: Arc<MemoryCatalog>,
}

impl EmbeddedRuntime {
    /// Starts the runtime with at most `concurrency` hops in flight.
    pub fn start(registry: NodeRegistry, concurrency: usize) -> Self {
        Self::start_with_vault(registry, concurrency, None)
    }

    /// Like `start`; with `node_spans`, each node attempt runs in a `node` span and hops run
    /// in the span current when their execution was submitted (for a process that exports
    /// traces).
    pub fn start_traced(registry: NodeRegistry, concurrency: usize, node_spans: bool) -> Self {
        Self::build(
            registry,
            concurrency,
            None,
            Arc::new(MemoryCatalog::new()),
            Arc::new(SystemClock),
            node_spans,
            StatusMode::Full,
        )
    }

    /// Like `start`, with a credential vault that reveals nodes' `{"$credential": id}`
    /// references (without one, such nodes fail with a clear error).
    pub fn start_with_vault(
        registry: NodeRegistry,
        concurrency: usize,
        vault: Option<Arc<dyn CredentialVault>>,
    ) -> Self {
        Self::start_with_catalog(registry, concurrency, vault, Arc::new(MemoryCatalog::new()))
    }

    /// Like `start_with_vault`, with `workflow` (sub-workflow) nodes starting workflows from
    /// `catalog` (shared with whoever fills it, e.g. the embedded master's `POST /workflows`).
    pub fn start_with_catalog(
        registry: NodeRegistry,
        concurrency: usize,
        vault: Option<Arc<dyn CredentialVault>>,
        catalog: Arc<MemoryCatalog>,
    ) -> Self {
        Self::start_with_clock(registry, concurrency, vault, catalog, Arc::new(SystemClock))
    }

    /// Like `start_with_catalog`, reading the time from `clock`: a test's `ManualClock`
    /// moves timers, signal timeouts and the nodes' `now` without sleeping.
    pub fn start_with_clock(
        registry: NodeRegistry,
        concurrency: usize,
        vault: Option<Arc<dyn CredentialVault>>,
        catalog: Arc<MemoryCatalog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::build(
            registry,
            concurrency,
            vault,
            catalog,
            clock,
            false,
            StatusMode::Full,
        )
    }

    /// Like `start_with_clock`, publishing node statuses in `status_mode` (RFC 0011; a
    /// workflow's `status_mode` may lower it, never raise it).
    pub fn start_with_status_mode(
        registry: NodeRegistry,
        concurrency: usize,
        vault: Option<Arc<dyn CredentialVault>>,
        catalog: Arc<MemoryCatalog>,
        clock: Arc<dyn Clock>,
        status_mode: StatusMode,
    ) -> Self {
        Self::build(
            registry,
            concurrency,
            vault,
            catalog,
            clock,
            false,
            status_mode,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        registry: NodeRegistry,
        concurrency: usize,
        vault: Option<Arc<dyn CredentialVault>>,
        catalog: Arc<MemoryCatalog>,
        clock: Arc<dyn Clock>,
        node_spans: bool,
        status_mode: StatusMode,
    ) -> Self {
        let store = Arc::new(MemoryStore::new());
        let events = Arc::new(MemoryEvents::new());
        let definitions = Arc::new(MemoryDefinitions::default());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let dispatch = Arc::new(Dispatch {
            engine: OnceLock::new(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            traced: node_spans,
            in_flight: in_flight.clone(),
        });
        let mut engine = Engine::new(
            store.clone(),
            Arc::new(SpawnQueue {
                dispatch: dispatch.clone(),
                clock: clock.clone(),
                timers: Arc::default(),
            }),
            events.clone(),
            definitions.clone(),
            Arc::new(registry),
        )
        .with_clock(clock)
        .with_node_spans(node_spans)
        .with_status_mode(status_mode);
        if let Some(vault) = vault {
            engine = engine.with_vault(vault);
        }
        engine = engine.with_catalog(catalog.clone());
        let engine = Arc::new(engine);
        let _ = dispatch.engine.set(Arc::downgrade(&engine));
        Self {
            engine,
            in_flight,
            store,
            events,
            definitions,
            catalog,
        }
    }

    /// The workflows `workflow` (sub-workflow) nodes start: put definitions here before
    /// running a workflow that uses them (`baton run --workflows DIR`).
    pub fn catalog(&self) -> &MemoryCatalog {
        &self.catalog
    }

    pub fn events(&self) -> &MemoryEvents {
        &self.events
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Hop tasks running or waiting to run (not timers waiting on the clock). With the
    /// clock's pending sleepers, this is how a driver of virtual time (`baton test`) knows
    /// the runtime is idle.
    pub fn hops_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The compiled workflow registered under `workflow_ref` (its content hash), if any: a
    /// start by reference needs no compile.
    pub fn definition(&self, workflow_ref: &str) -> Option<Arc<CompiledWorkflow>> {
        self.definitions.get(workflow_ref)
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
        seed_input(&mut seed, input);
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
            .map_err(|_| PortError::transient_msg("runtime stopped before completion"))?;
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
