//! List nodes: `filter`, `sort` and `limit` (Rune's RFC-008 list operations), plus the helpers
//! the data-shaping nodes share: evaluating raw parameters (`{{ expression }}`, `$references`)
//! against the hop's context, resolving `input_array`, and per-item field paths.
//!
//! Their `rules` and `input_array` are raw parameters (`NodeSpec::raw_params`): the engine
//! leaves them unresolved, because a rule field such as `$item.age` names a field of each item,
//! not a context key, and `input_array` may be a bare path (`Fetch.body.users`).

use std::cmp::Ordering;

use async_trait::async_trait;
use baton_core::path::Reference;
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_core::value::to_text;
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};

use crate::compare::{Op, list_compare, number_of, parse_date};

mod raw;

pub use raw::{ExprCache, eval_raw, input_array, item_field, resolve_path_text, single_block};
use raw::{rule_str, rules};

// ---------------------------------------------------------------------------------------------
// filter
// ---------------------------------------------------------------------------------------------

/// `filter`: keeps the items matching all (or any) of its rules.
#[derive(Debug)]
pub struct FilterNode {
    spec: NodeSpec,
    cache: ExprCache,
}

impl Default for FilterNode {
    fn default() -> Self {
        Self {
            spec: NodeSpec {
                type_name: "filter",
                aliases: vec![],
                class: NodeClass::Action,
                summary: "Keeps the items of an array that match its rules; the result becomes `$json`.",
                params: vec![
                    ParamSpec::optional(
                        "input_array",
                        ParamKind::Any,
                        "The items: an array, a reference (`$Fetch.body.users`, `{{ $input.items }}`) or a bare path (`Fetch.body.users`). Default: the context's `$json`.",
                    ),
                    ParamSpec::optional(
                        "match_mode",
                        ParamKind::Enum(vec!["all", "any"]),
                        "all (default): every rule must match; any: one is enough.",
                    ),
                    ParamSpec::required(
                        "rules",
                        ParamKind::Array,
                        "Rules `{field, operator, value}`: `field` is a path in each item (`$item.age`, `age`, `address.city`); operators ==, !=, >, <, >=, <=, contains and word aliases (`is greater than`…). Ordering compares numbers, then dates (RFC 3339, `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD`), then case-insensitive text. `value` may be a literal, `$reference` or `{{ expression }}` (evaluated once against the context).",
                    )
                    .non_empty(),
                ],
                output: r#"{"$json": [<kept items>], "count": n, "original_count": m} (also copied to the context key `$json`)"#,
                raw_params: vec!["input_array", "rules"],
                example: r#"{"input_array": "$input.people", "rules": [{"field": "age", "operator": ">=", "value": 18}]}"#,
                pure: true,
            },
            cache: ExprCache::default(),
        }
    }
}

struct FilterRule {
    field: Reference,
    op: Op,
    value: Value,
}

#[async_trait]
impl Node for FilterNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn check(&self, params: &Value) -> Vec<baton_core::validate::Problem> {
        crate::checks::filter(params)
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let (items, prefix) = input_array(&input, &self.cache)?;
        let any = match input.params.get("match_mode") {
            None | Some(Value::Null) => false,
            Some(Value::String(m)) if m.eq_ignore_ascii_case("all") => false,
            Some(Value::String(m)) if m.eq_ignore_ascii_case("any") => true,
            Some(other) => {
                return Err(NodeError::invalid(format!(
                    "parameter `match_mode`: expected all or any, found `{}`",
                    to_text(other)
                )));
            }
        };
        let mut compiled = Vec::new();
        for (i, rule) in rules(&input)?.iter().enumerate() {
            if !rule.is_object() {
                return Err(NodeError::invalid(format!(
                    "parameter `rules[{i}]`: expected an object `{{field, operator, value}}`, found `{rule}`"
                )));
            }
            let field = rule_str(rule, i, "field")?.ok_or_else(|| {
                NodeError::invalid(format!(
                    "parameter `rules[{i}].field` is required: expected a field path"
                ))
            })?;
            let field = item_field(field, prefix.as_deref())
                .map_err(|m| NodeError::invalid(format!("parameter `rules[{i}].field`: {m}")))?;
            let op_text = rule_str(rule, i, "operator")?.unwrap_or("==");
            let op = Op::parse(op_text).ok_or_else(|| {
                NodeError::invalid(format!(
                    "parameter `rules[{i}].operator`: unknown operator `{op_text}`"
                ))
            })?;
            let value = eval_raw(
                rule.get("value").unwrap_or(&Value::Null),
                input.context,
                &self.cache,
            )
            .map_err(|m| NodeError::invalid(format!("parameter `rules[{i}].value`: {m}")))?;
            compiled.push(FilterRule { field, op, value });
        }
        let original_count = items.len();
        let kept: Vec<Value> = items
            .into_iter()
            .filter(|item| {
                let matches = |r: &FilterRule| {
                    list_compare(r.field.lookup(item).unwrap_or(&Value::Null), r.op, &r.value)
                };
                if any {
                    compiled.iter().any(matches)
                } else {
                    compiled.iter().all(matches)
                }
            })
            .collect();
        let count = kept.len();
        let kept = Value::Array(kept);
        Ok(NodeOutput::Shaped {
            output: json!({"$json": kept.clone(), "count": count, "original_count": original_count}),
            json: kept,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// sort
// ---------------------------------------------------------------------------------------------

/// `sort`: a stable multi-key sort.
#[derive(Debug)]
pub struct SortNode {
    spec: NodeSpec,
    cache: ExprCache,
}

impl Default for SortNode {
    fn default() -> Self {
        Self {
            spec: NodeSpec {
                type_name: "sort",
                aliases: vec![],
                class: NodeClass::Action,
                summary: "Sorts an array by one or more fields (stable; missing values last); the result becomes `$json`.",
                params: vec![
                    ParamSpec::optional(
                        "input_array",
                        ParamKind::Any,
                        "The items: an array, a reference or a bare path. Default: the context's `$json`.",
                    ),
                    ParamSpec::required(
                        "rules",
                        ParamKind::Array,
                        "Sort keys in priority order `{field, direction, type}`: `direction` asc (default), desc, ascending or descending; `type` auto (default: numbers if every value is numeric, else dates if every value is a date, else text), text (case-insensitive), number or date (a value that is not one is an error).",
                    )
                    .non_empty(),
                ],
                output: r#"{"$json": [<sorted items>], "count": n} (also copied to the context key `$json`)"#,
                raw_params: vec!["input_array", "rules"],
                example: r#"{"input_array": "$input.people", "rules": [{"field": "age", "direction": "desc"}]}"#,
                pure: true,
            },
            cache: ExprCache::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortType {
    Auto,
    Text,
    Number,
    Date,
}

#[derive(Debug)]
enum Key {
    Number(f64),
    Date(DateTime<FixedOffset>),
    Text(String),
}

impl Key {
    fn order(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Number(a), Key::Number(b)) => a.total_cmp(b),
            (Key::Date(a), Key::Date(b)) => a.cmp(b),
            (Key::Text(a), Key::Text(b)) => a.cmp(b),
            // One rule yields one kind of key; this is never reached.
            _ => Ordering::Equal,
        }
    }
}

fn text_key(v: &Value) -> Key {
    Key::Text(to_text(v).to_lowercase())
}

/// The keys of one rule for every item (`None` = missing or null), of one kind.
fn column_keys(
    values: &[Option<&Value>],
    kind: SortType,
    i: usize,
) -> Result<Vec<Option<Key>>, NodeError> {
    let present = || values.iter().flatten();
    let kind = match kind {
        SortType::Auto if present().all(|v| number_of(v).is_some()) => SortType::Number,
        SortType::Auto if present().all(|v| parse_date(v).is_some()) => SortType::Date,
        SortType::Auto => SortType::Text,
        k => k,
    };
    values
        .iter()
        .enumerate()
        .map(|(j, v)| {
            let Some(v) = v else { return Ok(None) };
            Ok(Some(match kind {
                SortType::Number => Key::Number(number_of(v).ok_or_else(|| {
                    NodeError::invalid(format!(
                        "parameter `rules[{i}]`: item {j} has `{}`, which is not a number",
                        to_text(v)
                    ))
                })?),
                SortType::Date => Key::Date(parse_date(v).ok_or_else(|| {
                    NodeError::invalid(format!(
                        "parameter `rules[{i}]`: item {j} has `{}`, which is not a date",
                        to_text(v)
                    ))
                })?),
                _ => text_key(v),
            }))
        })
        .collect()
}

#[async_trait]
impl Node for SortNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn check(&self, params: &Value) -> Vec<baton_core::validate::Problem> {
        crate::checks::sort(params)
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let (items, prefix) = input_array(&input, &self.cache)?;
        let mut columns: Vec<(Vec<Option<Key>>, bool)> = Vec::new();
        for (i, rule) in rules(&input)?.iter().enumerate() {
            if !rule.is_object() {
                return Err(NodeError::invalid(format!(
                    "parameter `rules[{i}]`: expected an object `{{field, direction, type}}`, found `{rule}`"
                )));
            }
            let field = rule_str(rule, i, "field")?.ok_or_else(|| {
                NodeError::invalid(format!(
                    "parameter `rules[{i}].field` is required: expected a field path"
                ))
            })?;
            let field = item_field(field, prefix.as_deref())
                .map_err(|m| NodeError::invalid(format!("parameter `rules[{i}].field`: {m}")))?;
            let descending = match rule_str(rule, i, "direction")?
                .map(|d| d.trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("asc" | "ascending") => false,
                Some("desc" | "descending") => true,
                Some(other) => {
                    return Err(NodeError::invalid(format!(
                        "parameter `rules[{i}].direction`: expected asc, desc, ascending or descending, found `{other}`"
                    )));
                }
            };
            let kind = match rule_str(rule, i, "type")?
                .map(|d| d.trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("auto") => SortType::Auto,
                Some("text" | "string") => SortType::Text,
                Some("number" | "numeric") => SortType::Number,
                Some("date" | "datetime") => SortType::Date,
                Some(other) => {
                    return Err(NodeError::invalid(format!(
                        "parameter `rules[{i}].type`: expected auto, text, number or date, found `{other}`"
                    )));
                }
            };
            let values: Vec<Option<&Value>> = items
                .iter()
                .map(|it| field.lookup(it).filter(|v| !v.is_null()))
                .collect();
            columns.push((column_keys(&values, kind, i)?, descending));
        }
        let mut order: Vec<usize> = (0..items.len()).collect();
        // Stable; each column is a total order with missing values last in either direction.
        order.sort_by(|&a, &b| {
            for (keys, descending) in &columns {
                let ord = match (&keys[a], &keys[b]) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(x), Some(y)) if *descending => y.order(x),
                    (Some(x), Some(y)) => x.order(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        let mut slots: Vec<Option<Value>> = items.into_iter().map(Some).collect();
        let sorted: Vec<Value> = order.into_iter().filter_map(|i| slots[i].take()).collect();
        let count = sorted.len();
        let sorted = Value::Array(sorted);
        Ok(NodeOutput::Shaped {
            output: json!({"count": count, "$json": sorted.clone()}),
            json: sorted,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// limit
// ---------------------------------------------------------------------------------------------

/// `limit`: the first `count` items.
#[derive(Debug)]
pub struct LimitNode {
    spec: NodeSpec,
    cache: ExprCache,
}

impl Default for LimitNode {
    fn default() -> Self {
        Self {
            spec: NodeSpec {
                type_name: "limit",
                aliases: vec![],
                class: NodeClass::Action,
                summary: "Keeps the first `count` items of an array; the result becomes `$json`.",
                params: vec![
                    ParamSpec::optional(
                        "input_array",
                        ParamKind::Any,
                        "The items: an array, a reference or a bare path. Default: the context's `$json`.",
                    ),
                    ParamSpec::required(
                        "count",
                        ParamKind::Any,
                        "How many items to keep: an integer >= 0 (a numeric string or a whole float is accepted).",
                    ),
                ],
                output: r#"{"$json": [<first count items>], "count": n, "original_count": m} (also copied to the context key `$json`)"#,
                raw_params: vec!["input_array"],
                example: r#"{"input_array": "$input.people", "count": 3}"#,
                pure: true,
            },
            cache: ExprCache::default(),
        }
    }
}

fn count_param(v: Option<&Value>) -> Result<usize, NodeError> {
    let bad = |v: &Value| {
        NodeError::invalid(format!(
            "parameter `count`: expected an integer >= 0, found `{}`",
            to_text(v)
        ))
    };
    let v = match v {
        None | Some(Value::Null) => {
            return Err(NodeError::invalid(
                "parameter `count` is required: expected an integer >= 0",
            ));
        }
        Some(v) => v,
    };
    let f = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| bad(v))?;
    if !f.is_finite() || f < 0.0 || f.fract() != 0.0 {
        return Err(bad(v));
    }
    Ok(f as usize)
}

#[async_trait]
impl Node for LimitNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn check(&self, params: &Value) -> Vec<baton_core::validate::Problem> {
        crate::checks::limit(params)
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let count = count_param(input.params.get("count"))?;
        let (mut items, _) = input_array(&input, &self.cache)?;
        let original_count = items.len();
        items.truncate(count);
        let count = items.len();
        let items = Value::Array(items);
        Ok(NodeOutput::Shaped {
            output: json!({"count": count, "original_count": original_count, "$json": items.clone()}),
            json: items,
        })
    }
}
