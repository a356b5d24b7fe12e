//! List nodes: `filter`, `sort` and `limit` (Rune's RFC-008 list operations), plus the helpers
//! the data-shaping nodes share: evaluating raw parameters (`{{ expression }}`, `$references`)
//! against the hop's context, resolving `input_array`, and per-item field paths.
//!
//! Their `rules` and `input_array` are raw parameters (`NodeSpec::raw_params`): the engine
//! leaves them unresolved, because a rule field such as `$item.age` names a field of each item,
//! not a context key, and `input_array` may be a bare path (`Fetch.body.users`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use baton_core::expr::Expr;
use baton_core::path::{Reference, parse_bare_at, parse_bare_whole};
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_core::value::to_text;
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value, json};

use crate::compare::{Op, list_compare, number_of, parse_date};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Compiled expressions by source text, so a definition's expressions are compiled once per
/// process rather than once per item.
#[derive(Debug, Default)]
pub struct ExprCache {
    map: Mutex<HashMap<String, Arc<Expr>>>,
}

/// More distinct expressions than this and the cache starts over (bounds memory).
const EXPR_CACHE_LIMIT: usize = 4096;

impl ExprCache {
    pub fn get(&self, source: &str) -> Result<Arc<Expr>, String> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(x) = map.get(source) {
            return Ok(x.clone());
        }
        let compiled = Arc::new(Expr::compile(source).map_err(|e| e.to_string())?);
        if map.len() >= EXPR_CACHE_LIMIT {
            map.clear();
        }
        map.insert(source.to_string(), compiled.clone());
        Ok(compiled)
    }
}

/// The inside of a value that is exactly one `{{ … }}` block, if it is one.
pub fn single_block(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.trim().is_empty())
        .then(|| inner.trim())
}

/// Evaluates a raw value against `ctx`:
/// - exactly one `{{ expression }}` block → the expression's typed result;
/// - exactly one bare reference whose root is in the context → its raw JSON value;
/// - other text → `{{ … }}` blocks and bare references (with a root in the context) are
///   interpolated; references to absent roots stay as written (`"$5 off"`);
/// - non-strings → themselves.
pub fn eval_raw(v: &Value, ctx: &Map<String, Value>, cache: &ExprCache) -> Result<Value, String> {
    let Value::String(s) = v else {
        return Ok(v.clone());
    };
    if let Some(inner) = single_block(s) {
        return cache.get(inner)?.eval(ctx).map_err(|e| e.to_string());
    }
    if let Some(r) = parse_bare_whole(s)
        && ctx.contains_key(&r.root)
    {
        return r
            .resolve(ctx)
            .cloned()
            .ok_or_else(|| format!("missing reference `{r}`"));
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with("{{")
            && let Some(close) = rest.find("}}")
        {
            let inner = rest[2..close].trim();
            let value = cache.get(inner)?.eval(ctx).map_err(|e| e.to_string())?;
            out.push_str(&to_text(&value));
            i += close + 2;
            continue;
        }
        if rest.starts_with('$')
            && let Some((r, end)) = parse_bare_at(s, i)
            && ctx.contains_key(&r.root)
        {
            let value = r
                .resolve(ctx)
                .ok_or_else(|| format!("missing reference `{r}`"))?;
            out.push_str(&to_text(value));
            i = end;
            continue;
        }
        let ch = rest.chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    Ok(Value::String(out))
}

/// Resolves a context path given as text: `$Fetch.body.users`, `{{ $Fetch.body.users }}` or
/// Rune's bare `Fetch.body.users` (a missing `$` is added). `Ok(None)` when it is missing.
pub fn resolve_path_text(
    text: &str,
    ctx: &Map<String, Value>,
    cache: &ExprCache,
) -> Result<Option<Value>, String> {
    let t = text.trim();
    if let Some(inner) = single_block(t) {
        return match cache.get(inner)?.eval(ctx) {
            Ok(v) => Ok(Some(v)),
            Err(baton_core::expr::ExprError::MissingReference { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        };
    }
    let with_dollar = if t.starts_with('$') {
        t.to_string()
    } else {
        format!("${t}")
    };
    let r = parse_bare_whole(&with_dollar)
        .ok_or_else(|| format!("`{text}` is not a reference or path"))?;
    Ok(r.resolve(ctx).cloned())
}

/// The path text of an `input_array` reference, without `$` or braces (`Fetch.body.users`):
/// rule fields may repeat it as a prefix.
fn path_prefix(text: &str) -> String {
    let t = text.trim();
    let t = single_block(t).unwrap_or(t);
    t.trim_start_matches('$').to_string()
}

/// The items a list node works on, and the `input_array` path text (for field prefixes).
pub fn input_array(
    input: &NodeInput<'_>,
    cache: &ExprCache,
) -> Result<(Vec<Value>, Option<String>), NodeError> {
    let bad = |m: String| NodeError::invalid(format!("parameter `input_array`: {m}"));
    let (value, prefix) = match input.params.get("input_array") {
        None | Some(Value::Null) => match input.context.get("$json") {
            Some(v) => (v.clone(), None),
            None => {
                return Err(NodeError::invalid(
                    "parameter `input_array` is not set and no earlier node set `$json`: give an array or a reference such as `$Fetch.body.users`",
                ));
            }
        },
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(bad("must not be blank".into()));
        }
        Some(Value::String(s)) => match resolve_path_text(s, input.context, cache).map_err(bad)? {
            Some(v) => (v, Some(path_prefix(s))),
            None => {
                return Err(bad(format!(
                    "`{s}` does not resolve to a value in the context"
                )));
            }
        },
        Some(other) => (other.clone(), None),
    };
    let items = match value {
        Value::Array(a) => a,
        // The output of a list node itself: `{"$json": [...], "count": n}`.
        Value::Object(mut m) if m.get("$json").is_some_and(Value::is_array) => {
            match m.remove("$json") {
                Some(Value::Array(a)) => a,
                _ => unreachable!("checked above"),
            }
        }
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(a)) => a,
            _ => return Err(bad(format!("expected an array, found the string `{s}`"))),
        },
        other => return Err(bad(format!("expected an array, found `{other}`"))),
    };
    Ok((items, prefix))
}

/// A rule's per-item field path: `{{ }}` and a `$item.` (or `$json.`) prefix are stripped, so
/// is a repeated `input_array` prefix (`users.` or `users[3].`), and a leading `$`/`.` is
/// ignored. An empty field (or `$item`) is the item itself.
pub fn item_field(field: &str, prefix: Option<&str>) -> Result<Reference, String> {
    let mut f = field.trim();
    f = single_block(f).unwrap_or(f);
    for p in ["$item", "$json"] {
        if f == p {
            f = "";
        } else if let Some(rest) = f
            .strip_prefix(p)
            .filter(|r| r.starts_with('.') || r.starts_with('['))
        {
            f = rest;
        }
    }
    if let Some(p) = prefix.filter(|p| !p.is_empty()) {
        let bare = f.trim_start_matches('$');
        if let Some(rest) = bare.strip_prefix(p) {
            if let Some(r) = rest.strip_prefix('.') {
                f = r;
            } else if rest.starts_with('[')
                && let Some(close) = rest.find("].")
                && rest[1..close].parse::<usize>().is_ok()
            {
                f = &rest[close + 2..];
            }
        }
    }
    let f = f.trim_start_matches(['$', '.']);
    if f.is_empty() {
        return Ok(Reference {
            root: "$item".into(),
            path: Vec::new(),
        });
    }
    let text = if f.starts_with('[') {
        format!("$item{f}")
    } else {
        format!("$item.{f}")
    };
    parse_bare_whole(&text).ok_or_else(|| format!("`{field}` is not a field path"))
}

fn rules<'a>(input: &'a NodeInput<'_>) -> Result<&'a Vec<Value>, NodeError> {
    match input.params.get("rules") {
        Some(Value::Array(r)) if !r.is_empty() => Ok(r),
        Some(Value::Array(_)) => Err(NodeError::invalid("parameter `rules` must not be empty")),
        None | Some(Value::Null) => Err(NodeError::invalid(
            "parameter `rules` is required: expected an array of rules",
        )),
        Some(other) => Err(NodeError::invalid(format!(
            "parameter `rules`: expected an array of rules, found `{other}`"
        ))),
    }
}

fn rule_str<'a>(rule: &'a Value, i: usize, key: &str) -> Result<Option<&'a str>, NodeError> {
    match rule.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(NodeError::invalid(format!(
            "parameter `rules[{i}].{key}`: expected a string, found `{other}`"
        ))),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_fields_strip_item_and_input_prefixes() {
        let item = json!({"age": 3, "a": {"b": [1, 2]}});
        let look = |f: &str, p: Option<&str>| item_field(f, p).unwrap().lookup(&item).cloned();
        assert_eq!(look("$item.age", None), Some(json!(3)));
        assert_eq!(look("age", None), Some(json!(3)));
        assert_eq!(look("$age", None), Some(json!(3)));
        assert_eq!(look(".a.b[1]", None), Some(json!(2)));
        assert_eq!(look("{{ $item.age }}", None), Some(json!(3)));
        assert_eq!(
            look("$Fetch.users.age", Some("Fetch.users")),
            Some(json!(3))
        );
        assert_eq!(
            look("Fetch.users[4].age", Some("Fetch.users")),
            Some(json!(3))
        );
        assert_eq!(look("$item", None), Some(item.clone()));
    }

    #[test]
    fn raw_values_evaluate_and_interpolate() {
        let ctx = json!({"$input": {"min": 5, "name": "Ada"}})
            .as_object()
            .cloned()
            .unwrap();
        let cache = ExprCache::default();
        assert_eq!(
            eval_raw(&json!("{{ $input.min * 2 }}"), &ctx, &cache).unwrap(),
            json!(10)
        );
        assert_eq!(
            eval_raw(&json!("$input.min"), &ctx, &cache).unwrap(),
            json!(5)
        );
        assert_eq!(
            eval_raw(
                &json!("Hi $input.name, {{ $input.min + 1 }}!"),
                &ctx,
                &cache
            )
            .unwrap(),
            json!("Hi Ada, 6!")
        );
        assert_eq!(
            eval_raw(&json!("$5 off"), &ctx, &cache).unwrap(),
            json!("$5 off")
        );
        assert!(eval_raw(&json!("$input.nope"), &ctx, &cache).is_err());
    }
}
