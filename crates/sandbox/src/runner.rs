//! Where a `code` node's script runs: [`ScriptRunner`] and its implementations — the sandbox
//! pool (the default), the in-process engine (only when a setting explicitly allows it), and
//! a runner that fails every script with the reason no sandbox could be set up.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use baton_core::ErrorCode;
use baton_engine::NodeError;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::engine::{Budget, Output, RhaiEngine, cancelled, timeout_error};
use crate::pool::SandboxPool;
use crate::protocol::Request;

/// One script run.
#[derive(Debug, Clone)]
pub struct Job {
    pub script: String,
    pub inputs: Value,
    pub budget: Budget,
    /// For the log lines of what the script prints.
    pub node_id: String,
}

impl Job {
    /// CPU seconds the run may use: its wall-clock budget, rounded up (a script runs on one
    /// thread, so it cannot use more CPU than wall time; this is the kernel's backstop).
    pub fn cpu_secs(&self) -> u64 {
        self.budget.timeout.as_millis().div_ceil(1000).max(1) as u64
    }
}

/// Runs scripts for the `code` node.
#[async_trait]
pub trait ScriptRunner: Send + Sync + Debug {
    async fn run(&self, job: Job, cancel: &CancellationToken) -> Result<Value, NodeError>;
}

fn log_output(node_id: &str, lines: Vec<String>) {
    for line in lines {
        tracing::info!(node_id = %node_id, "script: {line}");
    }
}

#[async_trait]
impl ScriptRunner for SandboxPool {
    async fn run(&self, job: Job, cancel: &CancellationToken) -> Result<Value, NodeError> {
        let cpu_secs = job.cpu_secs();
        let node_id = job.node_id;
        let req = Request {
            script: job.script,
            inputs: job.inputs,
            budget: job.budget,
            cpu_secs,
        };
        let (value, output) = SandboxPool::run(self, req, cancel).await?;
        log_output(&node_id, output);
        Ok(value)
    }
}

/// Scripts on blocking threads of this process: the language limits hold, but neither memory
/// nor CPU is capped and a stuck native call cannot be killed. Only for settings that
/// explicitly allow it (`BATON_CODE_IN_PROCESS`) and tests that cannot start a child.
#[derive(Debug)]
pub struct InProcessRunner {
    engine: RhaiEngine,
    slots: Arc<Semaphore>,
}

impl InProcessRunner {
    /// At most `slots` scripts run at once (the others wait, cancellably).
    pub fn new(slots: usize) -> Self {
        Self {
            engine: RhaiEngine::default(),
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }
}

#[async_trait]
impl ScriptRunner for InProcessRunner {
    async fn run(&self, job: Job, cancel: &CancellationToken) -> Result<Value, NodeError> {
        let permit = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(cancelled()),
            permit = self.slots.clone().acquire_owned() => permit.map_err(|_| cancelled())?,
        };
        let stop = Arc::new(AtomicBool::new(false));
        // Stops the script when this future is dropped too (the engine abandons a node run
        // when its execution or the node's race is cancelled, or its `timeout_ms` passes):
        // without it the script ran on until its own deadline, holding its slot.
        let _stop_on_drop = StopOnDrop(stop.clone());
        let engine = self.engine;
        let flag = stop.clone();
        let budget = job.budget;
        let Job {
            script,
            inputs,
            node_id,
            ..
        } = job;
        let mut task = tokio::task::spawn_blocking(move || {
            // The slot is held until the thread really finishes, even if the caller gave up.
            let _permit = permit;
            let output = Output::default();
            let result = engine.run(&script, inputs, budget, flag, &output);
            let lines = std::mem::take(&mut *output.lock().unwrap_or_else(|p| p.into_inner()));
            log_output(&node_id, lines);
            result
        });
        // The deadline is enforced inside the script; the grace period only covers a single
        // native call that runs long without reporting progress.
        let backstop = tokio::time::sleep(budget.timeout + Duration::from_secs(1));
        let joined = tokio::select! {
            joined = &mut task => joined,
            () = cancel.cancelled() => {
                stop.store(true, Ordering::Relaxed);
                let _ = task.await;
                return Err(cancelled());
            }
            () = backstop => {
                stop.store(true, Ordering::Relaxed);
                return Err(timeout_error(budget));
            }
        };
        joined.map_err(|e| {
            NodeError::new(ErrorCode::CodeError, format!("script thread failed: {e}"))
        })?
    }
}

/// Raises a script's stop flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Fails every script with why no sandbox could be set up (never falls back to running
/// without limits).
#[derive(Debug)]
pub struct UnavailableRunner {
    pub reason: String,
}

#[async_trait]
impl ScriptRunner for UnavailableRunner {
    async fn run(&self, _job: Job, _cancel: &CancellationToken) -> Result<Value, NodeError> {
        Err(NodeError {
            message: format!("code sandbox unavailable: {}", self.reason),
            code: ErrorCode::Internal,
            retryable: false,
        })
    }
}
