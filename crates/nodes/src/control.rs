//! Control-flow node types: conditional, switch, merge, split, aggregator and wait. Their
//! routing, joins and timers are the engine's job (by `NodeClass`); these types declare the
//! parameters and compute what is computable from resolved parameters alone.

use async_trait::async_trait;
use baton_core::ErrorCode;
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use serde_json::{Value, json};

use crate::compare::{Op, compare, literal};

/// A node type whose whole behaviour is in the engine (conditional, merge, aggregator).
#[derive(Debug)]
pub struct EngineHandled {
    spec: NodeSpec,
}

#[async_trait]
impl Node for EngineHandled {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }
    async fn run(&self, _input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        Err(NodeError::invalid(format!(
            "`{}` is evaluated by the engine, not run directly",
            self.spec.type_name
        )))
    }
}

pub fn conditional() -> EngineHandled {
    EngineHandled {
        spec: NodeSpec {
            type_name: "conditional",
            aliases: vec!["if"],
            class: NodeClass::Conditional,
            summary: "Evaluates a condition and follows its true or false edge.",
            params: vec![
                ParamSpec::required(
                    "expression",
                    ParamKind::Any,
                    "Condition, e.g. `$Fetch.status == 200 and $input.vip` (references are bound as typed values, never re-parsed).",
                ),
                ParamSpec::optional(
                    "true_edge_id",
                    ParamKind::String,
                    "Edge followed when true (or mark the edge `\"on\": \"true\"`).",
                ),
                ParamSpec::optional(
                    "false_edge_id",
                    ParamKind::String,
                    "Edge followed when false (or mark the edge `\"on\": \"false\"`).",
                ),
            ],
            output: r#"{"result": true|false, "expression": "<the expression>"}"#,
            raw_params: vec![],
            example: r#"{"expression": "$input.count > 10 and not $input.muted"}"#,
            pure: true,
        },
    }
}

pub fn merge() -> EngineHandled {
    EngineHandled {
        spec: NodeSpec {
            type_name: "merge",
            aliases: vec![],
            class: NodeClass::Merge,
            summary: "Joins branches: waits for all incoming branches, or the first one. Untaken branches count as skipped, so it never hangs.",
            params: vec![
                ParamSpec::optional(
                    "wait_mode",
                    ParamKind::Enum(vec!["wait_for_all", "wait_for_any"]),
                    "wait_for_all (default) or wait_for_any.",
                ),
                ParamSpec::optional(
                    "cancel_losers",
                    ParamKind::Boolean,
                    "wait_for_any only (default false, as Rune): when the first branch arrives, cancel the other branches' queued, running and timer-parked nodes (reported `cancelled`); the execution ends with the winner's path.",
                ),
                ParamSpec::optional(
                    "mode",
                    ParamKind::String,
                    "Accepted for Rune compatibility; no effect.",
                ),
                ParamSpec::optional(
                    "timeout",
                    ParamKind::Number,
                    "Accepted for Rune compatibility; a merge cannot hang, so it is not needed.",
                ),
            ],
            output: r#"{"merged_context": {"$<parent>": <output>, ...}, "arrived": [names], "skipped": [names], "wait_mode": "...", "_merge_expected": n}"#,
            raw_params: vec![],
            example: r#"{"wait_mode": "wait_for_all"}"#,
            pure: true,
        },
    }
}

pub fn aggregator() -> EngineHandled {
    EngineHandled {
        spec: NodeSpec {
            type_name: "aggregator",
            aliases: vec!["aggregate"],
            class: NodeClass::Aggregator,
            summary: "Collects the results of the innermost enclosing split, in item order.",
            params: vec![ParamSpec::optional(
                "timeout",
                ParamKind::Number,
                "Accepted for Rune compatibility; ignored.",
            )],
            output: r#"{"aggregated": [<output of item i's last node before the aggregator, or null if its branch ended early>], "count": n, "skipped": [item indexes]}"#,
            raw_params: vec![],
            example: r#"{}"#,
            pure: true,
        },
    }
}

/// `switch`: the first matching rule selects its route; the last route is the fallback.
#[derive(Debug)]
pub struct SwitchNode {
    spec: NodeSpec,
}

impl Default for SwitchNode {
    fn default() -> Self {
        Self {
            spec: NodeSpec {
                type_name: "switch",
                aliases: vec![],
                class: NodeClass::Switch,
                summary: "Routes to the first rule that matches, or to the fallback route.",
                params: vec![
                    ParamSpec::required(
                        "rules",
                        ParamKind::Array,
                        "Rules `{value, operator, compare, name?}`; operators ==, !=, >, <, >=, <=, contains and Rune's word aliases.",
                    ),
                    ParamSpec::optional(
                        "routes",
                        ParamKind::Array,
                        "Edge id per rule plus a last fallback edge (or mark edges `\"on\": \"<rule name|index|fallback>\"`).",
                    ),
                ],
                output: r#"{"output_index": i, "matched_rule": {"value", "operator", "compare"}} or {"output_index": <rules count>, "fallback": true}"#,
                raw_params: vec![],
                example: r#"{"rules": [{"value": "$input.tier", "operator": "==", "compare": "gold"}]}"#,
                pure: true,
            },
        }
    }
}

#[async_trait]
impl Node for SwitchNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn check(&self, params: &Value) -> Vec<baton_core::validate::Problem> {
        crate::checks::switch(params)
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let rules = input
            .params
            .get("rules")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                NodeError::invalid("parameter `rules` is required: expected an array of rules")
            })?;
        for (i, rule) in rules.iter().enumerate() {
            let op_text = rule.get("operator").and_then(Value::as_str).unwrap_or("==");
            let op = Op::parse(op_text).ok_or_else(|| {
                NodeError::invalid(format!(
                    "parameter `rules[{i}].operator`: unknown operator `{op_text}`"
                ))
            })?;
            let value = literal(rule.get("value").unwrap_or(&Value::Null));
            let against = literal(rule.get("compare").unwrap_or(&Value::Null));
            // Rune skips a rule whose ordering comparison is not numeric.
            if compare(&value, op, &against).unwrap_or(false) {
                return Ok(NodeOutput::Value(json!({
                    "output_index": i,
                    "matched_rule": {"value": rule.get("value"), "operator": op_text, "compare": rule.get("compare")},
                })));
            }
        }
        Ok(NodeOutput::Value(
            json!({"output_index": rules.len(), "fallback": true}),
        ))
    }
}

/// `split`: fans out one branch per item of `input_array`.
#[derive(Debug)]
pub struct SplitNode {
    spec: NodeSpec,
}

impl Default for SplitNode {
    fn default() -> Self {
        Self {
            spec: NodeSpec {
                type_name: "split",
                aliases: vec![],
                class: NodeClass::Split,
                summary: "Runs its successors once per item of an array; each branch sees `$item`.",
                params: vec![
                    ParamSpec::required(
                        "input_array",
                        ParamKind::Array,
                        "The items: a JSON array or a reference such as `$Fetch.body.users` / `{{ $input.items }}`.",
                    ),
                    ParamSpec::optional(
                        "max_items",
                        ParamKind::Integer,
                        "The most items this split fans out to; more fail the node with LIMIT_EXCEEDED. The worker's BATON_MAX_SPLIT_ITEMS (default 10,000) applies too: the smaller wins.",
                    )
                    .min(0.0),
                ],
                output: r#"{"_split_items_count": n} (each item runs in its own branch, where it is `$item`)"#,
                raw_params: vec![],
                example: r#"{"input_array": "{{ $input.teams }}"}"#,
                pure: true,
            },
        }
    }
}

#[async_trait]
impl Node for SplitNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let items = match input.params.get("input_array") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(a)) => a,
                _ => {
                    return Err(NodeError::invalid(format!(
                        "parameter `input_array`: expected an array, found the string `{s}`"
                    )));
                }
            },
            Some(other) => {
                return Err(NodeError::invalid(format!(
                    "parameter `input_array`: expected an array, found `{other}`"
                )));
            }
            None => {
                return Err(NodeError::invalid(
                    "parameter `input_array` is required: expected an array",
                ));
            }
        };
        if let Some(max) = input.params.get("max_items").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            return Err(NodeError {
                retryable: false,
                ..NodeError::new(
                    ErrorCode::LimitExceeded,
                    format!(
                        "split over {} items, over its `max_items` of {max}",
                        items.len()
                    ),
                )
            });
        }
        Ok(NodeOutput::Split { items })
    }
}

/// `wait`: suspends the branch for a duration without holding a worker.
#[derive(Debug)]
pub struct WaitNode {
    spec: NodeSpec,
}

impl Default for WaitNode {
    fn default() -> Self {
        Self {
            spec: NodeSpec {
                type_name: "wait",
                aliases: vec![],
                class: NodeClass::Wait,
                summary: "Suspends this branch durably for a duration (a timer, not a sleeping worker).",
                params: vec![
                    ParamSpec::optional(
                        "mode",
                        ParamKind::Enum(vec!["timer", "signal"]),
                        "timer (default): wait `amount` `unit`; signal: wait for a named signal (`baton signal`), `amount`/`unit` being an optional timeout that takes the error route.",
                    ),
                    ParamSpec::optional("signal", ParamKind::String, "Signal name (signal mode)."),
                    ParamSpec::optional(
                        "amount",
                        ParamKind::Number,
                        "How long (default 1 in timer mode; no timeout in signal mode), >= 0.",
                    )
                    .min(0.0),
                    ParamSpec::optional(
                        "unit",
                        ParamKind::Enum(vec![
                            "milliseconds",
                            "seconds",
                            "minutes",
                            "hours",
                            "days",
                        ]),
                        "Unit of `amount` (default seconds).",
                    ),
                    ParamSpec::optional(
                        "resume",
                        ParamKind::Any,
                        "Accepted for Rune compatibility (`time_interval`); ignored.",
                    ),
                ],
                output: r#"timer: {"resume_at": <epoch ms>, "delay_ms": n}; signal: {"signal": name, "data": <signal data>} (status `waiting`, then `success`; a signal timeout fails with SIGNAL_TIMEOUT)"#,
                raw_params: vec![],
                example: r#"{"amount": 5, "unit": "minutes"}"#,
                pure: false,
            },
        }
    }
}

#[async_trait]
impl Node for WaitNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn check(&self, params: &Value) -> Vec<baton_core::validate::Problem> {
        crate::checks::wait(params)
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let signal_mode = match input.params.get("mode").and_then(Value::as_str) {
            None | Some("timer") => false,
            Some("signal") => true,
            Some(other) => {
                return Err(NodeError::invalid(format!(
                    "parameter `mode`: expected timer or signal, found `{other}`"
                )));
            }
        };
        if signal_mode {
            let name = input
                .params
                .get("signal")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| {
                    NodeError::invalid(
                        "parameter `signal` is required in signal mode: expected a signal name",
                    )
                })?;
            let timeout = match input.params.get("amount") {
                None | Some(Value::Null) => None,
                Some(_) => Some(delay_ms(input.params)?),
            };
            return Ok(NodeOutput::AwaitSignal {
                name: name.to_string(),
                timeout_ms: timeout,
            });
        }
        Ok(NodeOutput::Wait {
            delay_ms: delay_ms(input.params)?,
        })
    }
}

/// `amount` × `unit` in milliseconds.
fn delay_ms(params: &Value) -> Result<u64, NodeError> {
    let amount = match params.get("amount") {
        None | Some(Value::Null) => 1.0,
        Some(v) => v
            .as_f64()
            .filter(|a| *a >= 0.0 && a.is_finite())
            .ok_or_else(|| {
                NodeError::invalid(format!(
                    "parameter `amount`: expected a number >= 0, found `{v}`"
                ))
            })?,
    };
    let unit = params
        .get("unit")
        .and_then(Value::as_str)
        .unwrap_or("seconds");
    let factor = match unit {
        "ms" | "millisecond" | "milliseconds" => 1.0,
        "s" | "second" | "seconds" => 1_000.0,
        "m" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        other => {
            return Err(NodeError::invalid(format!(
                "parameter `unit`: expected milliseconds, seconds, minutes, hours or days, found `{other}`"
            )));
        }
    };
    Ok((amount * factor).round() as u64)
}
