//! Raw parameters of the data-shaping nodes, shared by them: evaluating `{{ expression }}` and
//! `$references` against the hop's context (with compiled expressions cached per process),
//! resolving `input_array`, per-item field paths, and reading a node's `rules`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use baton_core::expr::Expr;
use baton_core::path::{Reference, parse_bare_at, parse_bare_whole};
use baton_core::value::to_text;
use baton_engine::{NodeError, NodeInput};
use serde_json::{Map, Value};

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
pub(super) fn path_prefix(text: &str) -> String {
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

pub(super) fn rules<'a>(input: &'a NodeInput<'_>) -> Result<&'a Vec<Value>, NodeError> {
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

pub(super) fn rule_str<'a>(
    rule: &'a Value,
    i: usize,
    key: &str,
) -> Result<Option<&'a str>, NodeError> {
    match rule.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(NodeError::invalid(format!(
            "parameter `rules[{i}].{key}`: expected a string, found `{other}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
