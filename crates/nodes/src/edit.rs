//! The `edit` node (Rune's "edit"/"set", RFC-007): sets fields on an object, or on every object
//! of an array, from literals, `$references` and `{{ expressions }}`.
//!
//! `assignments` and `target_path` are raw parameters: the engine does not resolve them, so a
//! `{{ $json.price * $json.qty }}` value is evaluated here with the core expression engine,
//! with `$json` bound to the object being edited (each array item in turn).

use async_trait::async_trait;
use baton_core::spec::{NodeClass, NodeSpec, ParamKind, ParamSpec};
use baton_core::value::to_text;
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use serde_json::{Map, Number, Value, json};

use crate::listops::{ExprCache, eval_raw, resolve_path_text};

/// Sets fields from assignments; the result becomes `$json`.
#[derive(Debug)]
pub struct EditNode {
    spec: NodeSpec,
    cache: ExprCache,
}

impl Default for EditNode {
    fn default() -> Self {
        Self::new()
    }
}

impl EditNode {
    pub fn new() -> Self {
        Self {
            spec: NodeSpec {
                type_name: "edit",
                aliases: vec!["set"],
                class: NodeClass::Action,
                summary: "Sets fields on an object (or on each object of an array) from literals, references and `{{ expressions }}`; the result becomes `$json`.",
                params: vec![
                    ParamSpec::optional(
                        "mode",
                        ParamKind::Enum(vec!["assignments", "keep_only"]),
                        "assignments (default): the source object plus the assigned fields; keep_only: only the assigned fields.",
                    ),
                    ParamSpec::optional(
                        "target_path",
                        ParamKind::Any,
                        "What to edit: a reference (`$Fetch.body`) or bare path (`Fetch.body.users`) to an object or an array of objects. Default: the context's `$json`, else an empty object.",
                    ),
                    ParamSpec::optional("array_path", ParamKind::Any, "Alias of `target_path`."),
                    ParamSpec::required(
                        "assignments",
                        ParamKind::Array,
                        "Non-empty list of `{name, value, type}`: `name` is a dotted path (`address.city`); `value` is a literal, text with `$references`, or one `{{ expression }}` (arithmetic, `+` concatenation, comparisons, property access; `$json` is the object being edited, every other context key is available); `type` string (default), number, boolean or json.",
                    )
                    .non_empty(),
                ],
                output: r#"{"$json": <the edited object or array of objects>} (also copied to the context key `$json`)"#,
                raw_params: vec!["assignments", "target_path", "array_path"],
                example: r#"{"assignments": [{"name": "total", "value": "{{ $json.price * $json.qty }}", "type": "number"}, {"name": "status", "value": "priced"}]}"#,
                pure: true,
            },
            cache: ExprCache::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cast {
    String,
    Number,
    Boolean,
    Json,
}

struct Assignment<'a> {
    path: Vec<&'a str>,
    value: &'a Value,
    cast: Cast,
}

fn parse_assignments(params: &Value) -> Result<Vec<Assignment<'_>>, NodeError> {
    let list = match params.get("assignments") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(NodeError::invalid(
                "parameter `assignments` must not be empty",
            ));
        }
        None | Some(Value::Null) => {
            return Err(NodeError::invalid(
                "parameter `assignments` is required: expected a non-empty array of `{name, value, type}`",
            ));
        }
        Some(other) => {
            return Err(NodeError::invalid(format!(
                "parameter `assignments`: expected an array, found `{other}`"
            )));
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let name = match a.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
            _ => {
                return Err(NodeError::invalid(format!(
                    "parameter `assignments[{i}].name` is required: expected a dotted field path"
                )));
            }
        };
        let name = name.strip_prefix("$json.").unwrap_or(name);
        let path: Vec<&str> = name.split('.').collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(NodeError::invalid(format!(
                "parameter `assignments[{i}].name`: `{name}` has an empty segment"
            )));
        }
        let cast = match a.get("type") {
            None | Some(Value::Null) => Cast::String,
            Some(Value::String(t)) => match t.trim().to_ascii_lowercase().as_str() {
                "" | "string" | "text" => Cast::String,
                "number" => Cast::Number,
                "boolean" | "bool" => Cast::Boolean,
                "json" | "object" | "array" => Cast::Json,
                other => {
                    return Err(NodeError::invalid(format!(
                        "parameter `assignments[{i}].type`: expected string, number, boolean or json, found `{other}`"
                    )));
                }
            },
            Some(other) => {
                return Err(NodeError::invalid(format!(
                    "parameter `assignments[{i}].type`: expected a string, found `{other}`"
                )));
            }
        };
        out.push(Assignment {
            path,
            value: a.get("value").unwrap_or(&Value::Null),
            cast,
        });
    }
    Ok(out)
}

/// Rune's casts (§4.2): `string` is the value's text; `number` accepts numbers and numeric
/// strings; `boolean` accepts booleans, `true|yes|1` / `false|no|0` and numbers (≠ 0 is true);
/// `json` parses a string and passes other values through.
fn cast(v: Value, to: Cast) -> Result<Value, String> {
    match to {
        Cast::String => Ok(match v {
            Value::String(s) => Value::String(s),
            Value::Null => Value::String(String::new()),
            other => Value::String(to_text(&other)),
        }),
        Cast::Number => match &v {
            // Whole results of float arithmetic (`12 * 4.25`) read as integers: `51`, not `51.0`.
            Value::Number(n) => Ok(match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    Value::Number((f as i64).into())
                }
                _ => v,
            }),
            Value::String(s) => {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    return Ok(Value::Number(i.into()));
                }
                t.parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("cannot convert `{s}` to a number"))
            }
            other => Err(format!("cannot convert `{}` to a number", to_text(other))),
        },
        Cast::Boolean => match &v {
            Value::Bool(_) => Ok(v),
            Value::Number(n) => Ok(Value::Bool(n.as_f64().is_some_and(|f| f != 0.0))),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(Value::Bool(true)),
                "false" | "no" | "0" => Ok(Value::Bool(false)),
                _ => Err(format!(
                    "cannot convert `{s}` to a boolean (expected true/false, yes/no or 1/0)"
                )),
            },
            other => Err(format!("cannot convert `{}` to a boolean", to_text(other))),
        },
        Cast::Json => match v {
            Value::String(s) => {
                serde_json::from_str(&s).map_err(|e| format!("`{s}` is not valid JSON: {e}"))
            }
            other => Ok(other),
        },
    }
}

/// Sets `value` at a dotted path, creating (or replacing non-object) intermediate objects.
fn set_path(target: &mut Map<String, Value>, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("paths are non-empty");
    let mut cur = target;
    for p in parents {
        let slot = cur
            .entry((*p).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        cur = match slot {
            Value::Object(m) => m,
            _ => unreachable!("made an object just above"),
        };
    }
    cur.insert((*last).to_string(), value);
}

impl EditNode {
    /// Edits one object; `ctx` has `$json` bound to it.
    fn edit_one(
        &self,
        item: &Map<String, Value>,
        keep_only: bool,
        assignments: &[Assignment<'_>],
        ctx: &Map<String, Value>,
    ) -> Result<Value, NodeError> {
        let mut out = if keep_only { Map::new() } else { item.clone() };
        for (i, a) in assignments.iter().enumerate() {
            let value = eval_raw(a.value, ctx, &self.cache)
                .and_then(|v| cast(v, a.cast))
                .map_err(|m| {
                    NodeError::invalid(format!("parameter `assignments[{i}].value`: {m}"))
                })?;
            set_path(&mut out, &a.path, value);
        }
        Ok(Value::Object(out))
    }
}

#[async_trait]
impl Node for EditNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn check(&self, params: &Value) -> Vec<baton_core::validate::Problem> {
        crate::checks::edit(params)
    }

    async fn run(&self, input: NodeInput<'_>) -> Result<NodeOutput, NodeError> {
        let keep_only = match input.params.get("mode") {
            None | Some(Value::Null) => false,
            Some(Value::String(m)) if m == "assignments" || m.is_empty() => false,
            Some(Value::String(m)) if m == "keep_only" => true,
            Some(other) => {
                return Err(NodeError::invalid(format!(
                    "parameter `mode`: expected assignments or keep_only, found `{}`",
                    to_text(other)
                )));
            }
        };
        let assignments = parse_assignments(input.params)?;
        let target = ["target_path", "array_path"].into_iter().find_map(|k| {
            input
                .params
                .get(k)
                .filter(|v| !v.is_null() && v.as_str() != Some(""))
                .map(|v| (k, v))
        });
        let source = match target {
            Some((k, Value::String(path))) => resolve_path_text(path, input.context, &self.cache)
                .map_err(|m| NodeError::invalid(format!("parameter `{k}`: {m}")))?
                .ok_or_else(|| {
                    NodeError::invalid(format!(
                        "parameter `{k}`: `{path}` does not resolve to a value in the context"
                    ))
                })?,
            Some((_, literal)) => literal.clone(),
            None => input
                .context
                .get("$json")
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new())),
        };
        let mut ctx = input.context.clone();
        let edited = match source {
            Value::Object(item) => {
                ctx.insert("$json".into(), Value::Object(item.clone()));
                self.edit_one(&item, keep_only, &assignments, &ctx)?
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (j, item) in items.into_iter().enumerate() {
                    let Value::Object(obj) = item else {
                        return Err(NodeError::invalid(format!(
                            "the target's item {j} is `{item}`: every item of an edited array must be an object"
                        )));
                    };
                    ctx.insert("$json".into(), Value::Object(obj.clone()));
                    out.push(self.edit_one(&obj, keep_only, &assignments, &ctx)?);
                }
                Value::Array(out)
            }
            other => {
                return Err(NodeError::invalid(format!(
                    "the target must be an object or an array of objects, found `{other}`"
                )));
            }
        };
        Ok(NodeOutput::Shaped {
            output: json!({"$json": edited.clone()}),
            json: edited,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_follow_rune() {
        assert_eq!(cast(json!(3), Cast::String).unwrap(), json!("3"));
        assert_eq!(cast(json!("42"), Cast::Number).unwrap(), json!(42));
        assert_eq!(cast(json!(" 2.5 "), Cast::Number).unwrap(), json!(2.5));
        assert_eq!(cast(json!(51.0), Cast::Number).unwrap(), json!(51));
        assert!(cast(json!("abc"), Cast::Number).is_err());
        assert_eq!(cast(json!("Yes"), Cast::Boolean).unwrap(), json!(true));
        assert_eq!(cast(json!(0), Cast::Boolean).unwrap(), json!(false));
        assert!(cast(json!("maybe"), Cast::Boolean).is_err());
        assert_eq!(
            cast(json!("{\"a\":[1]}"), Cast::Json).unwrap(),
            json!({"a": [1]})
        );
        assert_eq!(cast(json!([1]), Cast::Json).unwrap(), json!([1]));
        assert!(cast(json!("{nope"), Cast::Json).is_err());
    }

    #[test]
    fn dotted_names_create_nested_objects() {
        let mut m = Map::new();
        m.insert("a".into(), json!(1));
        set_path(&mut m, &["a", "b"], json!(2));
        set_path(&mut m, &["c", "d", "e"], json!(3));
        assert_eq!(
            Value::Object(m),
            json!({"a": {"b": 2}, "c": {"d": {"e": 3}}})
        );
    }
}
