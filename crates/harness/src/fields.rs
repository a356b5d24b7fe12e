//! Reading the fields of a test file that say what a case does and expects (`mocks`,
//! `signals`, `limits`, `expect`): each problem is the JSON path of the field and what was
//! expected there.

use std::collections::{BTreeMap, HashSet};

use baton_core::ErrorCode;
use serde_json::{Map, Value};

use crate::file::{Deliver, Expect, Limits, Mock, SignalSpec};

/// A field's JSON path and what is wrong with it.
pub(crate) type FieldError = (String, String);

pub(crate) fn unknown_fields(
    obj: &Map<String, Value>,
    known: &[&str],
    at: &str,
) -> Result<(), FieldError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err((
            format!("{at}.{k}"),
            format!("unknown field; expected one of {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn known_node(id: &str, ids: &HashSet<String>, at: &str) -> Result<(), FieldError> {
    if ids.contains(id) {
        return Ok(());
    }
    let mut known: Vec<&String> = ids.iter().collect();
    known.sort();
    let known: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
    Err((
        at.to_string(),
        format!(
            "no node with id {id:?}; the node ids are {}",
            known.join(", ")
        ),
    ))
}

pub(crate) fn read_mocks(
    v: &Value,
    at: &str,
    ids: &HashSet<String>,
) -> Result<BTreeMap<String, Vec<Mock>>, FieldError> {
    let Value::Object(obj) = v else {
        return Err((at.into(), "expected an object: node id → mock".into()));
    };
    let mut out = BTreeMap::new();
    for (id, m) in obj {
        let here = format!("{at}.{id}");
        known_node(id, ids, &here)?;
        let list = match m {
            Value::Array(list) if !list.is_empty() => list
                .iter()
                .enumerate()
                .map(|(i, m)| read_mock(m, &format!("{here}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
            Value::Array(_) => return Err((here, "expected at least one attempt".into())),
            m => vec![read_mock(m, &here)?],
        };
        out.insert(id.clone(), list);
    }
    Ok(out)
}

fn read_mock(v: &Value, at: &str) -> Result<Mock, FieldError> {
    let shape = "expected {\"output\": …} or {\"error\": {\"code\", \"message\"}}";
    let Value::Object(obj) = v else {
        return Err((at.into(), shape.into()));
    };
    match (obj.get("output"), obj.get("error"), obj.len()) {
        (Some(out), None, 1) => Ok(Mock::Output(out.clone())),
        (None, Some(Value::Object(err)), 1) => {
            let here = format!("{at}.error");
            unknown_fields(err, &["code", "message", "retryable"], &here)?;
            let code = err.get("code").and_then(Value::as_str).ok_or_else(|| {
                (
                    format!("{here}.code"),
                    "expected an error code string".into(),
                )
            })?;
            let code: ErrorCode =
                serde_json::from_value(Value::String(code.into())).map_err(|_| {
                    let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
                    (
                        format!("{here}.code"),
                        format!(
                            "unknown error code {code:?}; expected one of {}",
                            all.join(", ")
                        ),
                    )
                })?;
            let message = match err.get("message") {
                Some(Value::String(s)) => s.clone(),
                None => format!("mocked {}", code.as_str()),
                Some(_) => return Err((format!("{here}.message"), "expected a string".into())),
            };
            let retryable = match err.get("retryable") {
                Some(Value::Bool(b)) => *b,
                None => true,
                Some(_) => return Err((format!("{here}.retryable"), "expected a boolean".into())),
            };
            Ok(Mock::Error {
                code,
                message,
                retryable,
            })
        }
        _ => Err((at.into(), shape.into())),
    }
}

pub(crate) fn read_signals(
    v: &Value,
    at: &str,
    ids: &HashSet<String>,
) -> Result<Vec<SignalSpec>, FieldError> {
    let Value::Array(list) = v else {
        return Err((at.into(), "expected an array of signals".into()));
    };
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let Value::Object(obj) = s else {
            return Err((
                here,
                "expected {\"name\", \"data\", \"at_ms\" or \"after_node\"}".into(),
            ));
        };
        unknown_fields(obj, &["name", "data", "at_ms", "after_node"], &here)?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| (format!("{here}.name"), "expected a non-empty string".into()))?;
        let when = match (obj.get("at_ms"), obj.get("after_node")) {
            (Some(_), Some(_)) => {
                return Err((here, "give `at_ms` or `after_node`, not both".into()));
            }
            (Some(ms), None) => Deliver::AtMs(ms.as_u64().ok_or_else(|| {
                (
                    format!("{here}.at_ms"),
                    "expected a non-negative integer (virtual ms after the start)".into(),
                )
            })?),
            (None, Some(node)) => {
                let id = node
                    .as_str()
                    .ok_or_else(|| (format!("{here}.after_node"), "expected a node id".into()))?;
                known_node(id, ids, &format!("{here}.after_node"))?;
                Deliver::AfterNode(id.into())
            }
            (None, None) => Deliver::Waited,
        };
        out.push(SignalSpec {
            name: name.into(),
            data: obj.get("data").cloned().unwrap_or(Value::Null),
            when,
        });
    }
    Ok(out)
}

pub(crate) fn read_limits(v: &Value, at: &str) -> Result<Limits, FieldError> {
    let Value::Object(obj) = v else {
        return Err((at.into(), "expected an object".into()));
    };
    unknown_fields(obj, &["max_virtual_ms", "max_node_runs"], at)?;
    let mut limits = Limits::default();
    for (name, slot) in [
        ("max_virtual_ms", &mut limits.max_virtual_ms),
        ("max_node_runs", &mut limits.max_node_runs),
    ] {
        if let Some(v) = obj.get(name) {
            *slot = v
                .as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| (format!("{at}.{name}"), "expected a positive integer".into()))?;
        }
    }
    Ok(limits)
}

fn string_list(v: &Value, at: &str, ids: &HashSet<String>) -> Result<Vec<String>, FieldError> {
    let Value::Array(list) = v else {
        return Err((at.into(), "expected an array of node ids".into()));
    };
    list.iter()
        .enumerate()
        .map(|(i, id)| {
            let here = format!("{at}[{i}]");
            let id = id
                .as_str()
                .ok_or_else(|| (here.clone(), "expected a node id".to_string()))?;
            known_node(id, ids, &here)?;
            Ok(id.to_string())
        })
        .collect()
}

pub(crate) fn read_expect(
    v: &Value,
    at: &str,
    ids: &HashSet<String>,
) -> Result<Expect, FieldError> {
    let Value::Object(obj) = v else {
        return Err((at.into(), "expected an object".into()));
    };
    unknown_fields(
        obj,
        &["status", "context", "ran", "not_ran", "attempts", "error"],
        at,
    )?;
    let mut expect = Expect::default();
    if let Some(s) = obj.get("status") {
        let s = s
            .as_str()
            .filter(|s| ["completed", "failed", "halted"].contains(s));
        expect.status = Some(
            s.ok_or_else(|| {
                (
                    format!("{at}.status"),
                    "expected \"completed\", \"failed\" or \"halted\"".into(),
                )
            })?
            .into(),
        );
    }
    if let Some(c) = obj.get("context") {
        if !c.is_object() {
            return Err((
                format!("{at}.context"),
                "expected an object (a subset of the final context)".into(),
            ));
        }
        expect.context = Some(c.clone());
    }
    if let Some(v) = obj.get("ran") {
        expect.ran = string_list(v, &format!("{at}.ran"), ids)?;
    }
    if let Some(v) = obj.get("not_ran") {
        expect.not_ran = string_list(v, &format!("{at}.not_ran"), ids)?;
    }
    if let Some(v) = obj.get("attempts") {
        let Value::Object(map) = v else {
            return Err((
                format!("{at}.attempts"),
                "expected an object: node id → attempts".into(),
            ));
        };
        for (id, n) in map {
            let here = format!("{at}.attempts.{id}");
            known_node(id, ids, &here)?;
            let n = n
                .as_u64()
                .ok_or_else(|| (here, "expected a non-negative integer".to_string()))?;
            expect.attempts.insert(id.clone(), n);
        }
    }
    if let Some(e) = obj.get("error") {
        let code = e.as_str().ok_or_else(|| {
            (
                format!("{at}.error"),
                "expected an error code string".to_string(),
            )
        })?;
        expect.error = Some(code.into());
    }
    Ok(expect)
}
