//! The `code` node: runs a small user script in a sandboxed [rhai] engine.
//!
//! The script sees its resolved `inputs` as a map named `inputs` and its last expression (or
//! `return` value) becomes `{"result": <value>}`. The sandbox (see `rfcs/0007-code-node.md`):
//! rhai has no file, network, process or clock-sleeping functions unless registered and none
//! are; `import` is compiled out (`no_module`); `eval` is disabled; `print`/`debug` go to the
//! worker's log. Every run has an operation budget, call-depth, expression-depth, variable,
//! function and string/array/map size limits, a wall-clock deadline checked from
//! `on_progress`, and runs on a blocking thread behind a per-process semaphore so scripts can
//! never starve the async runtime. Cancelling the execution stops the script at its next
//! progress check.

use baton_core::ErrorCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use rhai::{Dynamic, Engine, EvalAltResult, ParseError, ParseErrorType, Position, Scope};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

/// Default and maximum `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// Default and maximum `max_operations`.
pub const DEFAULT_MAX_OPERATIONS: u64 = 1_000_000;
pub const MAX_MAX_OPERATIONS: u64 = 1_000_000_000;
/// Largest accepted script text.
pub const MAX_SCRIPT_BYTES: usize = 256 * 1024;

/// Fixed sandbox limits (the per-run ones are parameters).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub call_levels: usize,
    pub expr_depth: usize,
    pub fn_expr_depth: usize,
    pub string_size: usize,
    pub array_size: usize,
    pub map_size: usize,
    pub variables: usize,
    pub functions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            call_levels: 64,
            expr_depth: 64,
            fn_expr_depth: 32,
            string_size: 1024 * 1024,
            array_size: 10_000,
            map_size: 10_000,
            variables: 1_000,
            functions: 256,
        }
    }
}

/// One script run's budget.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub timeout: Duration,
    pub max_operations: u64,
}

/// Runs scripts. One implementation (rhai) today; the trait keeps the node independent of it.
pub trait ScriptEngine: Send + Sync + std::fmt::Debug {
    /// Runs `script` with `inputs` bound, synchronously (called on a blocking thread). `cancel`
    /// becomes true when the run must stop.
    fn run(
        &self,
        script: &str,
        inputs: Value,
        budget: Budget,
        cancel: Arc<AtomicBool>,
        node_id: &str,
    ) -> Result<Value, NodeError>;
}

/// The rhai-backed [`ScriptEngine`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RhaiEngine {
    pub limits: Limits,
}

/// Why `on_progress` stopped a script.
const STOP_TIMEOUT: &str = "timeout";
const STOP_CANCELLED: &str = "cancelled";

impl RhaiEngine {
    fn engine(&self, budget: Budget, cancel: Arc<AtomicBool>, node_id: &str) -> Engine {
        let l = self.limits;
        let mut engine = Engine::new();
        engine
            .set_max_operations(budget.max_operations)
            .set_max_call_levels(l.call_levels)
            .set_max_expr_depths(l.expr_depth, l.fn_expr_depth)
            .set_max_string_size(l.string_size)
            .set_max_array_size(l.array_size)
            .set_max_map_size(l.map_size)
            .set_max_variables(l.variables)
            .set_max_functions(l.functions);
        engine.disable_symbol("eval");
        let deadline = Instant::now() + budget.timeout;
        engine.on_progress(move |ops| {
            if cancel.load(Ordering::Relaxed) {
                return Some(Dynamic::from(STOP_CANCELLED));
            }
            if ops % 256 == 0 && Instant::now() >= deadline {
                return Some(Dynamic::from(STOP_TIMEOUT));
            }
            None
        });
        let id = node_id.to_string();
        engine.on_print(move |s| tracing::info!(node_id = %id, "script: {s}"));
        let id = node_id.to_string();
        engine.on_debug(move |s, _, pos| tracing::debug!(node_id = %id, "script {pos}: {s}"));
        engine
    }
}

impl ScriptEngine for RhaiEngine {
    fn run(
        &self,
        script: &str,
        inputs: Value,
        budget: Budget,
        cancel: Arc<AtomicBool>,
        node_id: &str,
    ) -> Result<Value, NodeError> {
        let engine = self.engine(budget, cancel, node_id);
        let ast = engine
            .compile(script)
            .map_err(|e| parse_error(&e, &self.limits))?;
        let inputs = rhai::serde::to_dynamic(&inputs).map_err(|e| NodeError {
            message: format!("parameter `inputs` cannot be given to the script: {e}"),
            code: ErrorCode::InvalidParameter,
            retryable: false,
        })?;
        let mut scope = Scope::new();
        scope.push_constant_dynamic("inputs", inputs);
        let result: Dynamic = engine
            .eval_ast_with_scope(&mut scope, &ast)
            .map_err(|e| eval_error(*e, budget, &self.limits))?;
        rhai::serde::from_dynamic::<Value>(&result).map_err(|e| NodeError {
            message: format!(
                "the script returned a `{}` that cannot be turned into JSON: {e}",
                result.type_name()
            ),
            code: ErrorCode::CodeError,
            retryable: false,
        })
    }
}

fn at(pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(line), Some(col)) => format!(" at line {line}, column {col}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

fn limit(message: String) -> NodeError {
    NodeError {
        message,
        code: ErrorCode::CodeLimitExceeded,
        retryable: false,
    }
}

fn parse_error(e: &ParseError, limits: &Limits) -> NodeError {
    let ParseError(kind, pos) = e;
    match kind.as_ref() {
        ParseErrorType::ExprTooDeep => limit(format!(
            "code limit exceeded: expression nesting deeper than {} (max expression depth){}",
            limits.expr_depth,
            at(*pos)
        )),
        ParseErrorType::LiteralTooLarge(what, max) => limit(format!(
            "code limit exceeded: {what} exceeds {max}{}",
            at(*pos)
        )),
        ParseErrorType::TooManyFunctions => limit(format!(
            "code limit exceeded: more than {} functions defined (max functions){}",
            limits.functions,
            at(*pos)
        )),
        other => NodeError::invalid(format!(
            "parameter `script`: syntax error{}: {other}",
            at(*pos)
        )),
    }
}

fn eval_error(e: EvalAltResult, budget: Budget, limits: &Limits) -> NodeError {
    let pos = e.position();
    match e {
        EvalAltResult::ErrorTerminated(token, _) => {
            if token
                .clone()
                .into_string()
                .is_ok_and(|t| t == STOP_CANCELLED)
            {
                NodeError {
                    message: "script cancelled".into(),
                    code: ErrorCode::Cancelled,
                    retryable: false,
                }
            } else {
                timeout_error(budget)
            }
        }
        EvalAltResult::ErrorTooManyOperations(_) => limit(format!(
            "code limit exceeded: more than {} operations (max_operations){}",
            budget.max_operations,
            at(pos)
        )),
        EvalAltResult::ErrorTooManyVariables(_) => limit(format!(
            "code limit exceeded: more than {} variables (max variables){}",
            limits.variables,
            at(pos)
        )),
        EvalAltResult::ErrorStackOverflow(_) => limit(format!(
            "code limit exceeded: calls nested deeper than {} (max call levels){}",
            limits.call_levels,
            at(pos)
        )),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            let max = match what.as_str() {
                w if w.contains("tring") => format!("max string size {} bytes", limits.string_size),
                w if w.contains("rray") => format!("max array size {} items", limits.array_size),
                w if w.contains("ap") => format!("max map size {} entries", limits.map_size),
                _ => "max data size".to_string(),
            };
            limit(format!(
                "code limit exceeded: {what} too large ({max}){}",
                at(pos)
            ))
        }
        EvalAltResult::ErrorParsing(kind, pos) => NodeError::invalid(format!(
            "parameter `script`: syntax error{}: {kind}",
            at(pos)
        )),
        other => NodeError {
            message: format!("script error: {other}"),
            code: ErrorCode::CodeError,
            retryable: false,
        },
    }
}

fn timeout_error(budget: Budget) -> NodeError {
    NodeError {
        message: format!(
            "script timed out after {} ms (timeout_ms)",
            budget.timeout.as_millis()
        ),
        code: ErrorCode::CodeTimeout,
        retryable: true,
    }
}

/// The `code` node.
#[derive(Debug)]
pub struct CodeNode {
    spec: NodeSpec,
    engine: Arc<dyn ScriptEngine>,
    slots: Arc<Semaphore>,
}

impl Default for CodeNode {
    fn default() -> Self {
        Self::new()
    }
}

impl CodeNode {
    /// One concurrent script per CPU.
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::with_concurrency(cpus)
    }

    /// At most `slots` scripts run at once in this process (the others wait, cancellably).
    pub fn with_concurrency(slots: usize) -> Self {
        Self::with_engine(Arc::new(RhaiEngine::default()), slots)
    }

    pub fn with_engine(engine: Arc<dyn ScriptEngine>, slots: usize) -> Self {
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
                        "rhai script; `inputs` is a map of the resolved `inputs` parameter; the last expression (or `return`) is the result. No file, network or process access; `import` and `eval` are unavailable.",
                    ),
                    ParamSpec::optional(
                        "inputs",
                        ParamKind::Object,
                        "Values for the script (templates resolved), e.g. `{\"items\": \"{{ $Fetch.body.items }}\"}`. Default `{}`.",
                    ),
                    ParamSpec::optional(
                        "timeout_ms",
                        ParamKind::Integer,
                        "Wall-clock limit in milliseconds, 1..=30000 (default 1000).",
                    ),
                    ParamSpec::optional(
                        "max_operations",
                        ParamKind::Integer,
                        "Operation budget, 1..=1000000000 (default 1000000).",
                    ),
                ],
                output: r#"{"result": <the script's value as JSON>}"#,
                raw_params: vec![],
                example: r#"{"script": "inputs.a + inputs.b", "inputs": {"a": 2, "b": "{{ $input.b }}"}}"#,
            },
            engine,
            slots: Arc::new(Semaphore::new(slots.max(1))),
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
        let budget = Budget {
            timeout: Duration::from_millis(int_param(
                params,
                "timeout_ms",
                DEFAULT_TIMEOUT_MS,
                MAX_TIMEOUT_MS,
            )?),
            max_operations: int_param(
                params,
                "max_operations",
                DEFAULT_MAX_OPERATIONS,
                MAX_MAX_OPERATIONS,
            )?,
        };
        let cancelled = || NodeError {
            message: "script cancelled".into(),
            code: ErrorCode::Cancelled,
            retryable: false,
        };

        let permit = tokio::select! {
            biased;
            () = input.cancel.cancelled() => return Err(cancelled()),
            permit = self.slots.clone().acquire_owned() => permit.map_err(|_| cancelled())?,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let engine = self.engine.clone();
        let node_id = input.node_id.to_string();
        let flag = stop.clone();
        let mut task = tokio::task::spawn_blocking(move || {
            // The slot is held until the thread really finishes, even if the caller gave up.
            let _permit = permit;
            engine.run(&script, inputs, budget, flag, &node_id)
        });
        // The deadline is enforced inside the script; the grace period only covers a single
        // native call that runs long without reporting progress.
        let backstop = tokio::time::sleep(budget.timeout + Duration::from_secs(1));
        let joined = tokio::select! {
            joined = &mut task => joined,
            () = input.cancel.cancelled() => {
                stop.store(true, Ordering::Relaxed);
                let _ = task.await;
                return Err(cancelled());
            }
            () = backstop => {
                stop.store(true, Ordering::Relaxed);
                return Err(timeout_error(budget));
            }
        };
        let result = joined.map_err(|e| {
            NodeError::new(ErrorCode::CodeError, format!("script thread failed: {e}"))
        })??;
        Ok(NodeOutput::Value(json!({ "result": result })))
    }
}
