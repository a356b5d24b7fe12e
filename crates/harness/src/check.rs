//! Comparing what a case run saw with what it expects. Every mismatch is one line naming the
//! JSON path of the expectation: `$.context.order.total: expected 42, got 41`.

use serde_json::Value;

use crate::file::Expect;
use crate::run::Observed;

/// Longest value shown in a mismatch line.
const SHOWN: usize = 200;

/// The mismatches between `expect` and `obs`; empty when the case passed.
pub fn check(expect: &Expect, obs: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    let Some(completion) = &obs.completion else {
        out.push(format!(
            "$.status: the execution did not finish: {}",
            obs.aborted.as_deref().unwrap_or("no completion")
        ));
        return out;
    };
    let status = completion.status.as_str();
    let reason = completion
        .failure_reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    if let Some(want) = &expect.status
        && want != status
    {
        out.push(format!(
            "$.status: expected {want:?}, got {status:?}{reason}"
        ));
    }
    if let Some(want) = &expect.error {
        match completion.failure_reason.as_deref().and_then(error_code) {
            Some(got) if got == want => {}
            Some(got) => out.push(format!("$.error: expected {want:?}, got {got:?}{reason}")),
            None => out.push(format!(
                "$.error: expected {want:?}, got none (status {status:?})"
            )),
        }
    }
    if let Some(want) = &expect.context {
        let got = Value::Object(completion.final_context.clone());
        subset(want, &got, "$.context", &mut out);
    }
    let incomplete = if obs.lagged {
        " (status events were lost: the record may be incomplete)"
    } else {
        ""
    };
    for (i, id) in expect.ran.iter().enumerate() {
        if !obs.seen.contains(id) {
            out.push(format!(
                "$.ran[{i}]: expected node {id:?} to run, it did not{incomplete}"
            ));
        }
    }
    for (i, id) in expect.not_ran.iter().enumerate() {
        if obs.seen.contains(id) {
            out.push(format!(
                "$.not_ran[{i}]: expected node {id:?} not to run, it did"
            ));
        }
    }
    for (id, want) in &expect.attempts {
        let got = obs.attempts.get(id).copied().unwrap_or(0);
        if got != *want {
            out.push(format!(
                "$.attempts.{id}: expected {want}, got {got}{incomplete}"
            ));
        }
    }
    out
}

/// The `[CODE]` a failure reason ends with.
pub fn error_code(reason: &str) -> Option<&str> {
    let inner = reason.trim_end().strip_suffix(']')?;
    let open = inner.rfind('[')?;
    let code = &inner[open + 1..];
    (!code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_')).then_some(code)
}

/// Checks that `want` is a subset of `got`: objects by their keys (extra keys in `got` are
/// fine), arrays item by item with the same length, numbers by value (`2` matches `2.0`).
pub fn subset(want: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (key, wv) in w {
                let here = child(path, key);
                match g.get(key) {
                    Some(gv) => subset(wv, gv, &here, out),
                    None => out.push(format!("{here}: expected {}, got nothing", show(wv))),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                out.push(format!(
                    "{path}: expected {} items, got {}: {}",
                    w.len(),
                    g.len(),
                    show(got)
                ));
                return;
            }
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                subset(wv, gv, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => {}
        _ if want == got => {}
        _ => out.push(format!(
            "{path}: expected {}, got {}",
            show(want),
            show(got)
        )),
    }
}

/// `path.key`, or `path["key"]` when the key is not a plain name (context keys like
/// `$Long timer`).
fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_string()))
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= SHOWN {
        return s;
    }
    let cut: String = s.chars().take(SHOWN).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn diff(want: Value, got: Value) -> Vec<String> {
        let mut out = Vec::new();
        subset(&want, &got, "$.context", &mut out);
        out
    }

    #[test]
    fn a_subset_ignores_extra_keys_and_names_the_path_of_each_difference() {
        assert!(
            diff(
                json!({"a": {"b": 1}}),
                json!({"a": {"b": 1.0, "c": 2}, "d": 3})
            )
            .is_empty()
        );
        assert_eq!(
            diff(
                json!({"order": {"total": 42}}),
                json!({"order": {"total": 41}})
            ),
            vec!["$.context.order.total: expected 42, got 41"]
        );
        assert_eq!(
            diff(json!({"$Long timer": {"x": "a"}}), json!({})),
            vec![r#"$.context["$Long timer"]: expected {"x":"a"}, got nothing"#]
        );
        assert_eq!(
            diff(
                json!({"l": [1, {"k": true}]}),
                json!({"l": [1, {"k": false}]})
            ),
            vec!["$.context.l[1].k: expected true, got false"]
        );
        assert_eq!(
            diff(json!({"l": [1]}), json!({"l": [1, 2]})),
            vec!["$.context.l: expected 1 items, got 2: [1,2]"]
        );
    }

    #[test]
    fn the_error_code_is_the_bracketed_code_a_failure_reason_ends_with() {
        assert_eq!(
            error_code("node `A` (a) failed: boom [HTTP_STATUS]"),
            Some("HTTP_STATUS")
        );
        assert_eq!(error_code("no code here"), None);
        assert_eq!(error_code("odd [not a code]"), None);
    }
}
