//! The `code` node: runs a small user script (rhai) over its resolved `inputs` and returns
//! `{"result": <value>}`. Parameter handling lives here; where the script runs is a
//! [`ScriptRunner`]: by default a pool of sandbox child processes with a hard memory cap, a
//! CPU cap and kill on timeout or cancel (see `rfcs/0007-code-node.md`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use serde_json::{Map, Value, json};

use crate::engine::Budget;
use crate::pool::{SandboxConfig, SandboxPool};
use crate::runner::{InProcessRunner, Job, ScriptRunner, UnavailableRunner};

/// Default `timeout_ms` (also the default CPU cap) and the default of its maximum.
pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// Default and maximum `max_operations`.
pub const DEFAULT_MAX_OPERATIONS: u64 = 1_000_000;
pub const MAX_MAX_OPERATIONS: u64 = 1_000_000_000;
/// Largest accepted script text.
pub const MAX_SCRIPT_BYTES: usize = 256 * 1024;
/// Default memory cap of one sandbox child, in MiB.
pub const DEFAULT_MEMORY_MB: u64 = 64;
/// Default number of sandbox children.
pub const DEFAULT_SANDBOXES: usize = 2;

/// How a process runs `code` nodes (the worker fills it from `BATON_CODE_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSettings {
    /// Memory cap of each sandbox child, MiB.
    pub memory_mb: u64,
    /// Largest `timeout_ms` a node may ask for.
    pub max_timeout_ms: u64,
    /// Sandbox children, i.e. scripts running at once.
    pub sandboxes: usize,
    /// Run scripts in this process without memory or CPU caps (tests that cannot spawn).
    pub in_process: bool,
    /// The sandbox executable and its arguments; `None`: this executable with `sandbox`.
    pub program: Option<(PathBuf, Vec<String>)>,
    /// Start the children at once (when a tokio runtime is running) rather than at the first
    /// script: a worker does, so no hop pays a process start.
    pub warm: bool,
}

impl Default for CodeSettings {
    fn default() -> Self {
        Self {
            memory_mb: DEFAULT_MEMORY_MB,
            max_timeout_ms: MAX_TIMEOUT_MS,
            sandboxes: DEFAULT_SANDBOXES,
            in_process: false,
            program: None,
            warm: false,
        }
    }
}

impl CodeSettings {
    /// The runner these settings ask for. A missing executable path gives a runner that fails
    /// every script with the reason.
    pub fn runner(&self) -> Arc<dyn ScriptRunner> {
        if self.in_process {
            return Arc::new(InProcessRunner::new(self.sandboxes));
        }
        let (program, args) = match &self.program {
            Some(p) => p.clone(),
            None => match std::env::current_exe() {
                Ok(exe) => (exe, vec!["sandbox".to_string()]),
                Err(e) => {
                    return Arc::new(UnavailableRunner {
                        reason: format!("the path of this executable is unknown: {e}"),
                    });
                }
            },
        };
        let pool = SandboxPool::new(SandboxConfig {
            program,
            args,
            memory_mb: self.memory_mb,
            sandboxes: self.sandboxes,
        });
        if self.warm {
            pool.warm();
        }
        Arc::new(pool)
    }
}

/// The `code` node.
#[derive(Debug)]
pub struct CodeNode {
    spec: NodeSpec,
    runner: Arc<dyn ScriptRunner>,
    max_timeout_ms: u64,
}

impl Default for CodeNode {
    fn default() -> Self {
        Self::new()
    }
}

impl CodeNode {
    /// Sandboxed with the default settings (this executable's `sandbox` subcommand).
    pub fn new() -> Self {
        Self::with_settings(&CodeSettings::default())
    }

    pub fn with_settings(settings: &CodeSettings) -> Self {
        Self::with_runner(settings.runner(), settings.max_timeout_ms)
    }

    /// In this process, at most `slots` scripts at once, without memory or CPU caps.
    pub fn in_process(slots: usize) -> Self {
        Self::with_runner(Arc::new(InProcessRunner::new(slots)), MAX_TIMEOUT_MS)
    }

    pub fn with_runner(runner: Arc<dyn ScriptRunner>, max_timeout_ms: u64) -> Self {
        let max_timeout_ms = max_timeout_ms.max(1);
        Self {
            spec: NodeSpec {
                type_name: "code",
                aliases: vec![],
                class: NodeClass::Action,
                summary: "Runs a sandboxed rhai script over `inputs` and returns its value.",
                params: vec![
                    ParamSpec::required(
                        "script",
                        ParamKind::String,
                        "rhai script; `inputs` is a map of the resolved `inputs` parameter; the last expression (or `return`) is the result. No file, network or process access; `import` and `eval` are unavailable. Runs in a child process capped in memory (64 MiB by default) and CPU time.",
                    ),
                    ParamSpec::optional(
                        "inputs",
                        ParamKind::Object,
                        "Values for the script (templates resolved), e.g. `{\"items\": \"{{ $Fetch.body.items }}\"}`. Default `{}`.",
                    ),
                    ParamSpec::optional(
                        "timeout_ms",
                        ParamKind::Integer,
                        "Wall-clock and CPU limit in milliseconds, 1..=30000 by default (the worker's BATON_CODE_TIMEOUT_MS caps it; default 1000).",
                    )
                    .min(1.0),
                    ParamSpec::optional(
                        "max_operations",
                        ParamKind::Integer,
                        "Operation budget, 1..=1000000000 (default 1000000).",
                    )
                    .range(1.0, 1_000_000_000.0),
                ],
                output: r#"{"result": <the script's value as JSON>}"#,
                raw_params: vec![],
                example: r#"{"script": "inputs.a + inputs.b", "inputs": {"a": 2, "b": "{{ $input.b }}"}}"#,
                pure: false,
            },
            runner,
            max_timeout_ms,
        }
    }
}

fn int_param(params: &Value, name: &str, default: u64, max: u64) -> Result<u64, NodeError> {
    let bad = |v: &Value| {
        NodeError::invalid(format!(
            "parameter `{name}`: expected an integer from 1 to {max}, found `{v}`"
        ))
    };
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v @ Value::Number(n)) => {
            let n = n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9.0e15)
                    .map(|f| f as u64)
            });
            n.filter(|n| (1..=max).contains(n)).ok_or_else(|| bad(v))
        }
        Some(v @ Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| bad(v)),
        Some(v) => Err(bad(v)),
    }
}

#[async_trait]
impl Node for CodeNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// The script must compile (it is not run): a syntax error is a submit-time problem.
    fn check(&self, params: &Value) -> Vec<baton_core::validate::Problem> {
        match params.get("script") {
            Some(Value::String(s)) if !s.contains("{{") && !s.trim().is_empty() => {
                match crate::engine::RhaiEngine::default().check_syntax(s) {
                    Ok(()) => Vec::new(),
                    Err(m) => vec![baton_core::validate::Problem::new("script", m)],
                }
            }
            _ => Vec::new(),
        }
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let params = input.params;
        let script = match params.get("script") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(NodeError::invalid(
                    "parameter `script` is required: expected a non-blank rhai script",
                ));
            }
            Some(other) => {
                return Err(NodeError::invalid(format!(
                    "parameter `script`: expected a string, found `{other}`"
                )));
            }
        };
        if script.len() > MAX_SCRIPT_BYTES {
            return Err(NodeError::invalid(format!(
                "parameter `script`: expected at most {MAX_SCRIPT_BYTES} bytes, found {}",
                script.len()
            )));
        }
        let inputs = match params.get("inputs") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(other) => {
                return Err(NodeError::invalid(format!(
                    "parameter `inputs`: expected an object, found `{other}`"
                )));
            }
        };
        let max_timeout = self.max_timeout_ms;
        let budget = Budget {
            timeout: Duration::from_millis(int_param(
                params,
                "timeout_ms",
                DEFAULT_TIMEOUT_MS.min(max_timeout),
                max_timeout,
            )?),
            max_operations: int_param(
                params,
                "max_operations",
                DEFAULT_MAX_OPERATIONS,
                MAX_MAX_OPERATIONS,
            )?,
        };
        let job = Job {
            script,
            inputs,
            budget,
            node_id: input.node_id.to_string(),
        };
        let result = self.runner.run(job, input.cancel).await?;
        Ok(NodeOutput::Value(json!({ "result": result })))
    }
}
