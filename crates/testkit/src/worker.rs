//! A `baton worker` child process: started with its environment on an admin port of the
//! caller's choosing, logging to a file, probed on `/readyz` and `/metrics`, stopped
//! gracefully (SIGTERM) or killed, and always killed on drop so a failed test or benchmark
//! leaves no worker behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::http::{http_get, http_get_status, metric_sum};
use crate::wait::wait_until;

/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(100);
const EXIT_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot create the worker log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the worker exited ({status}) before it got ready; see {}", log.display())]
    Exited { status: ExitStatus, log: PathBuf },
    #[error("the worker did not get ready in time; see {}", log.display())]
    NotReady { log: PathBuf },
    #[error("cannot signal the worker (pid {pid}): {source}")]
    Signal {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// One worker process. See the module documentation.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Known once the process has been reaped.
    exit: Option<ExitStatus>,
}

impl WorkerProcess {
    /// Starts `command` (the `baton` executable with its arguments, e.g. `worker`, and
    /// environment) with `BATON_HTTP_PORT=port`, no stdin, and stdout and stderr appended to a
    /// new file at `log`.
    pub fn spawn(
        mut command: Command,
        port: u16,
        log: impl Into<PathBuf>,
    ) -> Result<Self, WorkerError> {
        let log = log.into();
        let log_error = |source| WorkerError::Log {
            path: log.clone(),
            source,
        };
        let file = std::fs::File::create(&log).map_err(log_error)?;
        let stderr = file.try_clone().map_err(log_error)?;
        command
            .env("BATON_HTTP_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr);
        let child = command.spawn().map_err(|source| WorkerError::Spawn {
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        Ok(Self {
            child,
            port,
            log,
            exit: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin port (`/readyz`, `/metrics`).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status once the process has ended (reaps it), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Polls `/readyz` until it answers 200, the process exits, or `deadline` passes.
    pub async fn wait_ready(&mut self, deadline: impl Into<Instant>) -> Result<(), WorkerError> {
        let outcome = wait_until(deadline, POLL, async || {
            if let Some(status) = self.exited() {
                return Some(Err(status));
            }
            (self.readyz().await == Some(200)).then_some(Ok(()))
        })
        .await;
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(status)) => Err(WorkerError::Exited {
                status,
                log: self.log.clone(),
            }),
            None => Err(WorkerError::NotReady {
                log: self.log.clone(),
            }),
        }
    }

    /// The HTTP status of `/readyz`, `None` when nothing answers.
    pub async fn readyz(&self) -> Option<u16> {
        http_get_status(self.port, "/readyz").await
    }

    /// The `/metrics` response, `None` when nothing answers.
    pub async fn metrics(&self) -> Option<String> {
        http_get(self.port, "/metrics").await
    }

    /// The sum of the samples of the Prometheus series `name` in `/metrics` (see
    /// [`metric_sum`]), `None` when nothing answers.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        Some(metric_sum(&self.metrics().await?, name))
    }

    /// SIGTERM: the worker drains and exits on its own.
    pub fn terminate(&self) -> Result<(), WorkerError> {
        let pid = self.pid();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map_err(|source| WorkerError::Signal { pid, source })?;
        if status.success() {
            Ok(())
        } else {
            Err(WorkerError::Signal {
                pid,
                source: std::io::Error::other(format!("kill -TERM {pid}: {status}")),
            })
        }
    }

    /// SIGKILL, and reap (nothing when it has exited already).
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }

    /// Waits for the process to exit on its own; `None` if it still runs at `deadline`.
    pub async fn wait_exit(&mut self, deadline: impl Into<Instant>) -> Option<ExitStatus> {
        wait_until(deadline, EXIT_POLL, async || self.exited()).await
    }

    /// SIGTERM (graceful drain), then SIGKILL if it has not exited within `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        let _ = self.terminate();
        if self.wait_exit(Instant::now() + grace).await.is_none() {
            self.kill();
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
