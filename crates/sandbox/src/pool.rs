//! The parent side: a small pool of sandbox child processes. A child is reused for script
//! after script, and killed (SIGKILL) and replaced when its script passes `timeout_ms`, its
//! execution is cancelled, its caller stops waiting, or the exchange breaks (a cap breached,
//! a crash, a protocol error). Each exchange runs on its own task, so a timeout or cancel
//! kills the child even when nobody polls the node's future any more.

use std::collections::HashSet;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use baton_core::ErrorCode;
use baton_engine::NodeError;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::child::MEMORY_FLAG;
use crate::engine::{cancelled, limit, timeout_error};
use crate::protocol::{Request, Response, read_frame_async, write_frame_async};

/// How long after `timeout_ms` the parent kills a child that has not answered (the child's
/// own deadline normally answers `CODE_TIMEOUT` first and the child is kept).
pub const KILL_GRACE: Duration = Duration::from_millis(200);

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;
/// What Rust's allocator prints before aborting when `RLIMIT_DATA` refuses memory.
const ALLOC_FAILED: &str = "memory allocation of";

/// How sandbox children are started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The executable, and the arguments that select its sandbox loop (`["sandbox"]` for
    /// `baton`, none for `baton-sandbox`).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Each child's `RLIMIT_DATA`, in MiB.
    pub memory_mb: u64,
    /// Children (and so scripts running at once) at most.
    pub sandboxes: usize,
}

struct Sandbox {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Ends with the child's stderr; yields its last lines.
    stderr: JoinHandle<String>,
}

impl Sandbox {
    async fn call(&mut self, req: &Request) -> io::Result<Response> {
        write_frame_async(&mut self.stdin, req).await?;
        read_frame_async(&mut self.stdout).await
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn kill(mut self) {
        // Fails only if the child already exited; waiting then just reaps it.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// The exchange broke: waits for the child to end (killing it if it lingers) and returns
    /// how it ended with the last lines of its stderr.
    async fn end(mut self) -> (Option<ExitStatus>, String) {
        let status = match tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                None
            }
        };
        let stderr = tokio::time::timeout(Duration::from_secs(1), self.stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        (status, stderr)
    }
}

struct Inner {
    config: SandboxConfig,
    idle: Mutex<Vec<Sandbox>>,
    slots: Arc<Semaphore>,
    live: Mutex<HashSet<u32>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one still holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A pool of sandbox children; cheap to clone.
#[derive(Clone)]
pub struct SandboxPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SandboxPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxPool")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn internal(message: String) -> NodeError {
    NodeError {
        message,
        code: ErrorCode::Internal,
        retryable: false,
    }
}

/// Keeps the last 4 KiB of a child's stderr, logging each line.
async fn tail(stderr: tokio::process::ChildStderr, pid: u32) -> String {
    let mut lines = BufReader::new(stderr).lines();
    let mut kept = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::warn!(sandbox_pid = pid, "code sandbox: {line}");
        kept.push_str(&line);
        kept.push('\n');
        if kept.len() > 4096 {
            let cut = kept.len() - 4096;
            let cut = (cut..kept.len())
                .find(|i| kept.is_char_boundary(*i))
                .unwrap_or(kept.len());
            kept.drain(..cut);
        }
    }
    kept
}

impl SandboxPool {
    /// No child starts until [`warm`](Self::warm) or the first script.
    pub fn new(config: SandboxConfig) -> Self {
        let slots = Arc::new(Semaphore::new(config.sandboxes.max(1)));
        Self {
            inner: Arc::new(Inner {
                config,
                idle: Mutex::new(Vec::new()),
                slots,
                live: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Starts idle children up to the pool's size in the background, so the first scripts do
    /// not pay a process start. Needs a tokio runtime; without one it does nothing.
    pub fn warm(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        for _ in 0..self.inner.config.sandboxes.max(1) {
            self.inner.refill();
        }
    }

    /// Process ids of the children alive now (idle or busy).
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.inner.live).iter().copied().collect()
    }

    /// Runs one script in a child. Waiting for a free child is cancellable.
    pub async fn run(
        &self,
        req: Request,
        cancel: &CancellationToken,
    ) -> Result<(Value, Vec<String>), NodeError> {
        let permit = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(cancelled()),
            permit = self.inner.slots.clone().acquire_owned() => {
                permit.map_err(|_| cancelled())?
            }
        };
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        let cancel = cancel.clone();
        // The exchange owns the child: dropping this future cannot leave a script running.
        tokio::spawn(async move {
            let _permit = permit;
            let mut tx = tx;
            let result = inner.exchange(req, &cancel, &mut tx).await;
            let _ = tx.send(result);
        });
        rx.await
            .unwrap_or_else(|_| Err(internal("code sandbox: the exchange task ended".into())))
    }
}

enum Outcome {
    Answered(io::Result<Response>),
    Cancelled,
    TimedOut,
    Abandoned,
}

impl Inner {
    async fn spawn(self: &Arc<Self>) -> Result<Sandbox, NodeError> {
        let c = &self.config;
        let mut child = Command::new(&c.program)
            .args(&c.args)
            .arg(MEMORY_FLAG)
            .arg(c.memory_mb.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                internal(format!(
                    "code sandbox: cannot start `{}`: {e}",
                    c.program.display()
                ))
            })?;
        let broken = || internal("code sandbox: the child's pipes are missing".into());
        let pid = child.id().ok_or_else(broken)?;
        let stdin = child.stdin.take().ok_or_else(broken)?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(broken)?);
        let stderr = tokio::spawn(tail(child.stderr.take().ok_or_else(broken)?, pid));
        lock(&self.live).insert(pid);
        Ok(Sandbox {
            child,
            pid,
            stdin,
            stdout,
            stderr,
        })
    }

    fn take_idle(&self) -> Option<Sandbox> {
        let mut idle = lock(&self.idle);
        while let Some(mut sb) = idle.pop() {
            if sb.alive() {
                return Some(sb);
            }
            lock(&self.live).remove(&sb.pid);
        }
        None
    }

    fn put_idle(&self, sb: Sandbox) {
        let mut idle = lock(&self.idle);
        if idle.len() < self.config.sandboxes.max(1) {
            idle.push(sb);
        } else {
            // Closing its stdin ends the child; kill_on_drop makes sure.
            lock(&self.live).remove(&sb.pid);
        }
    }

    fn forget(&self, pid: u32) {
        lock(&self.live).remove(&pid);
    }

    /// Starts one idle child in the background.
    fn refill(self: &Arc<Self>) {
        let inner = self.clone();
        tokio::spawn(async move {
            match inner.spawn().await {
                Ok(sb) => inner.put_idle(sb),
                Err(e) => tracing::warn!("{e}"),
            }
        });
    }

    async fn exchange(
        self: &Arc<Self>,
        req: Request,
        cancel: &CancellationToken,
        tx: &mut oneshot::Sender<Result<(Value, Vec<String>), NodeError>>,
    ) -> Result<(Value, Vec<String>), NodeError> {
        let mut sb = match self.take_idle() {
            Some(sb) => sb,
            None => self.spawn().await?,
        };
        let budget = req.budget;
        let outcome = tokio::select! {
            r = sb.call(&req) => Outcome::Answered(r),
            () = cancel.cancelled() => Outcome::Cancelled,
            () = tokio::time::sleep(budget.timeout + KILL_GRACE) => Outcome::TimedOut,
            () = tx.closed() => Outcome::Abandoned,
        };
        let pid = sb.pid;
        let result = match outcome {
            Outcome::Answered(Ok(resp)) => {
                self.put_idle(sb);
                return resp.result.map(|v| (v, resp.output)).map_err(Into::into);
            }
            Outcome::Answered(Err(e)) => {
                let (status, stderr) = sb.end().await;
                Err(self.broken(&req, &e, status, &stderr))
            }
            Outcome::Cancelled | Outcome::Abandoned => {
                sb.kill().await;
                Err(cancelled())
            }
            Outcome::TimedOut => {
                sb.kill().await;
                Err(timeout_error(budget))
            }
        };
        self.forget(pid);
        self.refill();
        result
    }

    /// Why an exchange broke, as the node's error.
    fn broken(
        &self,
        req: &Request,
        e: &io::Error,
        status: Option<ExitStatus>,
        stderr: &str,
    ) -> NodeError {
        let signal = status.and_then(|s| s.signal());
        if stderr.contains(ALLOC_FAILED) {
            return limit(format!(
                "code limit exceeded: the script needs more than {} MiB of memory (BATON_CODE_MEMORY_MB)",
                self.config.memory_mb
            ));
        }
        if signal == Some(SIGXCPU) {
            return limit(format!(
                "code limit exceeded: the script used more than {} s of CPU time",
                req.cpu_secs
            ));
        }
        if signal == Some(SIGKILL) {
            // The parent did not send it: a hard CPU limit or the kernel's out-of-memory killer.
            return limit(format!(
                "code limit exceeded: the sandbox process was killed (more than {} s of CPU time, or the machine ran out of memory)",
                req.cpu_secs
            ));
        }
        let how = status.map_or_else(|| "did not exit".to_string(), |s| s.to_string());
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        internal(format!(
            "code sandbox process failed ({how}; {e}){}",
            last.map(|l| format!(": {l}")).unwrap_or_default()
        ))
    }
}
