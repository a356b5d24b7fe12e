//! The rhai script engine: the language-level sandbox (no capabilities, operation budget,
//! size and depth limits, deadline and cancel checked from `on_progress`) and the mapping of
//! rhai's errors to node errors. It runs inside a sandbox child process (see `child.rs`) or,
//! when explicitly allowed, in-process (see `runner.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_core::ErrorCode;
use baton_engine::NodeError;
use rhai::{Dynamic, Engine, EvalAltResult, ParseError, ParseErrorType, Position, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fixed language limits (the per-run ones are in [`Budget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Wall clock, from the start of the run.
    pub timeout: Duration,
    pub max_operations: u64,
}

/// What a run printed (`print`/`debug`), at most [`MAX_OUTPUT_LINES`] lines.
pub type Output = Arc<Mutex<Vec<String>>>;
pub const MAX_OUTPUT_LINES: usize = 100;

/// The rhai-backed engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct RhaiEngine {
    pub limits: Limits,
}

/// Why `on_progress` stopped a script.
const STOP_TIMEOUT: &str = "timeout";
const STOP_CANCELLED: &str = "cancelled";

fn keep(output: &Output, line: String) {
    // A poisoned lock only means another print panicked: the lines are still usable.
    let mut lines = output.lock().unwrap_or_else(|p| p.into_inner());
    if lines.len() < MAX_OUTPUT_LINES {
        lines.push(line);
    }
}

impl RhaiEngine {
    /// Compiles `script` without running it: `Err` names the syntax error (submit-time check).
    pub fn check_syntax(&self, script: &str) -> Result<(), String> {
        let budget = Budget {
            timeout: Duration::from_secs(1),
            max_operations: 1,
        };
        let output = Output::default();
        let engine = self.engine(budget, Arc::new(AtomicBool::new(false)), &output);
        engine
            .compile(script)
            .map(|_| ())
            .map_err(|e| parse_error(&e, &self.limits).message)
    }

    fn engine(&self, budget: Budget, cancel: Arc<AtomicBool>, output: &Output) -> Engine {
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
        let out = output.clone();
        engine.on_print(move |s| keep(&out, s.to_string()));
        let out = output.clone();
        engine.on_debug(move |s, _, pos| keep(&out, format!("{pos}: {s}")));
        engine
    }

    /// Runs `script` with `inputs` bound, synchronously; `cancel` becomes true when the run
    /// must stop. What the script prints goes to `output`.
    pub fn run(
        &self,
        script: &str,
        inputs: Value,
        budget: Budget,
        cancel: Arc<AtomicBool>,
        output: &Output,
    ) -> Result<Value, NodeError> {
        let engine = self.engine(budget, cancel, output);
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

pub(crate) fn limit(message: String) -> NodeError {
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
                cancelled()
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

/// The error of a run stopped by its execution's cancellation.
pub fn cancelled() -> NodeError {
    NodeError {
        message: "script cancelled".into(),
        code: ErrorCode::Cancelled,
        retryable: false,
    }
}

/// The error of a run that passed its wall-clock `timeout_ms`.
pub fn timeout_error(budget: Budget) -> NodeError {
    NodeError {
        message: format!(
            "script timed out after {} ms (timeout_ms)",
            budget.timeout.as_millis()
        ),
        code: ErrorCode::CodeTimeout,
        retryable: true,
    }
}
