//! Submit-time checks of node parameters beyond their specs' kinds and ranges: what would
//! otherwise fail only when the node runs (an HTTP method, a time zone, a rule operator, an
//! expression that does not compile, a misspelled rule field). Each node type's
//! `Node::check` calls its function here. Templated values (`{{ }}`, `$references`) are
//! resolved at run time, so only literals are judged; expressions in `{{ }}` are compiled.

use baton_core::expr::Expr;
use baton_core::validate::Problem;
use serde_json::{Map, Value};

use crate::compare::Op;
use crate::listops::single_block;

/// A string resolved at run time.
fn templated(s: &str) -> bool {
    s.contains("{{") || s.contains('$')
}

/// A present, literal (non-templated, non-null) string parameter.
fn literal_str<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !templated(s))
}

/// The HTTP methods the `http` node sends.
pub(crate) const HTTP_METHODS: &[&str] =
    &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

pub(crate) fn http(params: &Value) -> Vec<Problem> {
    let mut p = Vec::new();
    if let Some(m) = literal_str(params, "method")
        && !m.trim().is_empty()
        && !HTTP_METHODS.contains(&m.trim().to_ascii_uppercase().as_str())
    {
        p.push(Problem::new(
            "method",
            format!(
                "unknown HTTP method `{m}`: expected one of {}",
                HTTP_METHODS.join(", ")
            ),
        ));
    }
    if let Some(u) = literal_str(params, "url") {
        match reqwest::Url::parse(u.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(url) => p.push(Problem::new(
                "url",
                format!(
                    "expected an http:// or https:// URL, found scheme `{}`",
                    url.scheme()
                ),
            )),
            Err(e) => p.push(Problem::new("url", format!("is not an absolute URL: {e}"))),
        }
    }
    p
}

pub(crate) fn datetime(params: &Value) -> Vec<Problem> {
    let mut p = Vec::new();
    if let Some(tz) = literal_str(params, "timezone")
        && tz.trim().parse::<chrono_tz::Tz>().is_err()
    {
        let mut message = format!(
            "unknown time zone `{tz}`: expected an IANA name such as `Europe/Paris` or `UTC`"
        );
        if let Some(s) =
            baton_core::suggest::closest(tz, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
        {
            message.push_str(&format!("; did you mean `{s}`?"));
        }
        p.push(Problem::new("timezone", message));
    }
    p
}

/// Checks each element of the array parameter `name` is an object with only `fields`, and
/// hands it to `each` (index, object).
fn rule_objects(
    p: &mut Vec<Problem>,
    params: &Value,
    name: &str,
    fields: &[&str],
    mut each: impl FnMut(&mut Vec<Problem>, usize, &Map<String, Value>),
) {
    let Some(rules) = params.get(name).and_then(Value::as_array) else {
        return;
    };
    for (i, rule) in rules.iter().enumerate() {
        let base = format!("{name}[{i}]");
        match rule.as_object() {
            None if rule.is_string() && templated(rule.as_str().unwrap_or_default()) => {}
            None => p.push(Problem::new(
                base,
                format!(
                    "expected an object {{{}}}, found `{rule}`",
                    fields.join(", ")
                ),
            )),
            Some(o) => {
                baton_core::dsl::unknown_fields(p, o, &base, fields.iter().copied(), "a rule");
                each(p, i, o);
            }
        }
    }
}

/// An operator field: a known operator or a template.
fn operator(p: &mut Vec<Problem>, path: String, v: Option<&Value>) {
    match v {
        Some(Value::String(s)) if templated(s) || Op::parse(s).is_some() => {}
        None | Some(Value::Null) => {}
        Some(other) => p.push(Problem::new(
            path,
            format!(
                "unknown operator `{}`: expected ==, !=, >, <, >=, <=, contains or a word alias (`is greater than`...)",
                other.as_str().map_or_else(|| other.to_string(), str::to_string)
            ),
        )),
    }
}

/// A value that is exactly one `{{ expression }}` is compiled.
fn expression(p: &mut Vec<Problem>, path: String, v: Option<&Value>) {
    if let Some(inner) = v.and_then(Value::as_str).and_then(single_block)
        && let Err(e) = Expr::compile(inner)
    {
        p.push(Problem::new(path, e.to_string()));
    }
}

pub(crate) fn filter(params: &Value) -> Vec<Problem> {
    let mut p = Vec::new();
    rule_objects(
        &mut p,
        params,
        "rules",
        &["field", "operator", "value"],
        |p, i, r| {
            operator(p, format!("rules[{i}].operator"), r.get("operator"));
            expression(p, format!("rules[{i}].value"), r.get("value"));
        },
    );
    p
}

pub(crate) fn sort(params: &Value) -> Vec<Problem> {
    let mut p = Vec::new();
    rule_objects(
        &mut p,
        params,
        "rules",
        &["field", "direction", "type"],
        |p, i, r| {
            if let Some(d) = r
                .get("direction")
                .and_then(Value::as_str)
                .filter(|s| !templated(s))
                && !matches!(
                    d.trim().to_ascii_lowercase().as_str(),
                    "" | "asc" | "desc" | "ascending" | "descending"
                )
            {
                p.push(Problem::new(
                    format!("rules[{i}].direction"),
                    format!("expected asc, desc, ascending or descending, found `{d}`"),
                ));
            }
            if let Some(t) = r
                .get("type")
                .and_then(Value::as_str)
                .filter(|s| !templated(s))
                && !matches!(
                    t.trim().to_ascii_lowercase().as_str(),
                    "" | "auto" | "text" | "string" | "number" | "date"
                )
            {
                p.push(Problem::new(
                    format!("rules[{i}].type"),
                    format!("expected auto, text, number or date, found `{t}`"),
                ));
            }
        },
    );
    p
}

pub(crate) fn switch(params: &Value) -> Vec<Problem> {
    let mut p = Vec::new();
    rule_objects(
        &mut p,
        params,
        "rules",
        &["value", "operator", "compare", "name"],
        |p, i, r| operator(p, format!("rules[{i}].operator"), r.get("operator")),
    );
    p
}

pub(crate) fn edit(params: &Value) -> Vec<Problem> {
    let mut p = Vec::new();
    rule_objects(
        &mut p,
        params,
        "assignments",
        &["name", "value", "type"],
        |p, i, a| {
            if let Some(t) = a
                .get("type")
                .and_then(Value::as_str)
                .filter(|s| !templated(s))
                && !matches!(
                    t.trim().to_ascii_lowercase().as_str(),
                    "" | "string"
                        | "text"
                        | "number"
                        | "boolean"
                        | "bool"
                        | "json"
                        | "object"
                        | "array"
                )
            {
                p.push(Problem::new(
                    format!("assignments[{i}].type"),
                    format!("expected string, number, boolean or json, found `{t}`"),
                ));
            }
            match a.get("name") {
                Some(Value::String(n)) if !n.trim().is_empty() => {}
                _ => p.push(Problem::new(
                    format!("assignments[{i}].name"),
                    "is required: expected a dotted field path",
                )),
            }
            expression(p, format!("assignments[{i}].value"), a.get("value"));
        },
    );
    p
}

pub(crate) fn limit(params: &Value) -> Vec<Problem> {
    match params.get("count") {
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f < 0.0 || f.fract() != 0.0) => {
            vec![Problem::new(
                "count",
                format!("expected an integer >= 0, found {n}"),
            )]
        }
        Some(Value::String(s)) if !templated(s) && s.trim().parse::<u64>().is_err() => {
            vec![Problem::new(
                "count",
                format!("expected an integer >= 0, found `{s}`"),
            )]
        }
        Some(v @ (Value::Bool(_) | Value::Array(_) | Value::Object(_))) => vec![Problem::new(
            "count",
            format!("expected an integer >= 0, found `{v}`"),
        )],
        _ => Vec::new(),
    }
}

pub(crate) fn wait(params: &Value) -> Vec<Problem> {
    let signal_mode = params.get("mode").and_then(Value::as_str) == Some("signal");
    let has_signal = params
        .get("signal")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    if signal_mode && !has_signal {
        vec![Problem::new(
            "signal",
            "is required in signal mode: expected a signal name",
        )]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(p: Vec<Problem>) -> Vec<String> {
        p.into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn an_unknown_http_method_and_a_relative_url_are_reported() {
        assert_eq!(
            paths(http(&json!({"method": "FETCH", "url": "/x"}))),
            ["method", "url"]
        );
        assert!(http(&json!({"method": "post", "url": "https://a/{{$input.p}}"})).is_empty());
    }

    #[test]
    fn an_unknown_time_zone_is_reported_with_a_suggestion() {
        let p = datetime(&json!({"timezone": "Europe/Pariss"}));
        assert!(
            p[0].message.contains("did you mean `Europe/Paris`?"),
            "{}",
            p[0].message
        );
        assert_eq!(
            paths(datetime(&json!({"timezone": "Mars/Olympus"}))),
            ["timezone"]
        );
        assert!(datetime(&json!({"timezone": "America/New_York"})).is_empty());
    }

    #[test]
    fn rule_operators_fields_and_expressions_are_checked() {
        let p = filter(&json!({"rules": [
            {"field": "a", "operator": "~~~", "value": 1},
            {"field": "a", "operatr": "==", "value": "{{ 1 + }}"}
        ]}));
        assert_eq!(
            paths(p),
            ["rules[0].operator", "rules[1].operatr", "rules[1].value"]
        );
        assert!(
            filter(&json!({"rules": [{"field": "a", "operator": "is greater than", "value": 1}]}))
                .is_empty()
        );
    }
}
