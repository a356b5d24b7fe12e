//! Structural validation of a workflow document and the `Problem` type every check reports.
//! All problems are collected (never stop at the first), each with a JSON path.

use crate::dsl::{
    CREDENTIAL_FIELDS, EDGE_FIELDS, ERROR_FIELDS, Model, NODE_FIELDS, RETRY_FIELDS,
    WORKFLOW_FIELDS, names, unknown_fields, unknown_model_fields,
};
use crate::value::kind_name;
use serde::Serialize;
use serde_json::Value;

/// One thing wrong with a workflow definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// JSONPath of the offending value, e.g. `$.nodes[2].parameters.url`.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A rejected workflow: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workflow is invalid ({} problem{}): {}", .0.len(), if .0.len() == 1 { "" } else { "s" },
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<Problem>);

fn expect(
    problems: &mut Vec<Problem>,
    obj: &serde_json::Map<String, Value>,
    base: &str,
    key: &str,
    want: &str,
    ok: fn(&Value) -> bool,
    required: bool,
) {
    match obj.get(key) {
        None if required => problems.push(Problem::new(
            format!("{base}.{key}"),
            format!("is required: expected {want}"),
        )),
        Some(v) if !ok(v) && (required || !v.is_null()) => problems.push(Problem::new(
            format!("{base}.{key}"),
            format!("expected {want}, found {}", kind_name(v)),
        )),
        _ => {}
    }
}

/// Checks the document's shape (types of every known field, and no unknown field at any level)
/// before it is deserialized.
pub fn check_shape(doc: &Value) -> Vec<Problem> {
    let mut p = Vec::new();
    let Some(root) = doc.as_object() else {
        p.push(Problem::new(
            "$",
            format!("expected a workflow object, found {}", kind_name(doc)),
        ));
        return p;
    };
    // A Rune execution message wraps the workflow in `workflow_definition`; callers unwrap it.
    unknown_model_fields(
        &mut p,
        root,
        "$",
        names(WORKFLOW_FIELDS),
        "the workflow",
        Model::Workflow,
    );
    match root.get("nodes") {
        None => p.push(Problem::new(
            "$.nodes",
            "is required: expected a non-empty array of nodes",
        )),
        Some(Value::Array(nodes)) if nodes.is_empty() => p.push(Problem::new(
            "$.nodes",
            "expected a non-empty array of nodes, found an empty array",
        )),
        Some(Value::Array(nodes)) => {
            for (i, n) in nodes.iter().enumerate() {
                let base = format!("$.nodes[{i}]");
                let Some(o) = n.as_object() else {
                    p.push(Problem::new(
                        base,
                        format!("expected a node object, found {}", kind_name(n)),
                    ));
                    continue;
                };
                unknown_model_fields(&mut p, o, &base, names(NODE_FIELDS), "a node", Model::Node);
                expect(
                    &mut p,
                    o,
                    &base,
                    "id",
                    "a non-empty string",
                    |v| v.as_str().is_some_and(|s| !s.is_empty()),
                    true,
                );
                expect(
                    &mut p,
                    o,
                    &base,
                    "name",
                    "a non-empty string",
                    |v| v.as_str().is_some_and(|s| !s.trim().is_empty()),
                    true,
                );
                expect(
                    &mut p,
                    o,
                    &base,
                    "type",
                    "a node type name (string)",
                    Value::is_string,
                    true,
                );
                expect(
                    &mut p,
                    o,
                    &base,
                    "trigger",
                    "a boolean",
                    Value::is_boolean,
                    false,
                );
                expect(
                    &mut p,
                    o,
                    &base,
                    "parameters",
                    "an object",
                    Value::is_object,
                    false,
                );
                expect(
                    &mut p,
                    o,
                    &base,
                    "timeout_ms",
                    "a positive integer (milliseconds)",
                    |v| v.as_u64().is_some_and(|n| n > 0),
                    false,
                );
                if let Some(c) = o.get("credentials").filter(|v| !v.is_null()) {
                    match c.as_object() {
                        None => p.push(Problem::new(
                            format!("{base}.credentials"),
                            format!("expected an object, found {}", kind_name(c)),
                        )),
                        Some(co) => {
                            let cb = format!("{base}.credentials");
                            unknown_fields(
                                &mut p,
                                co,
                                &cb,
                                names(CREDENTIAL_FIELDS),
                                "credentials",
                            );
                            if let Some(reference) = co.get("$credential") {
                                // A reference to a vault credential, revealed at hop time.
                                if reference.as_str().is_none_or(|s| s.trim().is_empty()) {
                                    p.push(Problem::new(
                                        format!("{cb}.$credential"),
                                        format!(
                                            "expected a credential id (a non-empty string), \
                                             found {}",
                                            kind_name(reference)
                                        ),
                                    ));
                                }
                                if co.contains_key("values") {
                                    p.push(Problem::new(
                                        format!("{cb}.values"),
                                        "not allowed with `$credential`: the secret fields \
                                         come from the credential vault",
                                    ));
                                }
                            }
                            expect(&mut p, co, &cb, "type", "a string", Value::is_string, false);
                            expect(
                                &mut p,
                                co,
                                &cb,
                                "values",
                                "an object",
                                Value::is_object,
                                false,
                            );
                        }
                    }
                }
                if let Some(e) = o.get("error").filter(|v| !v.is_null()) {
                    match e.as_object() {
                        None => p.push(Problem::new(
                            format!("{base}.error"),
                            format!("expected an object, found {}", kind_name(e)),
                        )),
                        Some(eo) => {
                            let eb = format!("{base}.error");
                            unknown_fields(&mut p, eo, &eb, names(ERROR_FIELDS), "an error policy");
                            expect(
                                &mut p,
                                eo,
                                &eb,
                                "type",
                                "one of halt, ignore, branch",
                                |v| {
                                    v.as_str().is_some_and(|s| {
                                        crate::model::ErrorKind::parse(s).is_some()
                                    })
                                },
                                false,
                            );
                            expect(
                                &mut p,
                                eo,
                                &eb,
                                "error_edge",
                                "an edge id (string)",
                                Value::is_string,
                                false,
                            );
                        }
                    }
                }
                if let Some(r) = o.get("retry").filter(|v| !v.is_null()) {
                    match r.as_object() {
                        None => p.push(Problem::new(
                            format!("{base}.retry"),
                            format!("expected an object, found {}", kind_name(r)),
                        )),
                        Some(ro) => {
                            let rb = format!("{base}.retry");
                            unknown_fields(&mut p, ro, &rb, names(RETRY_FIELDS), "a retry policy");
                            expect(
                                &mut p,
                                ro,
                                &rb,
                                "max_attempts",
                                "an integer >= 1",
                                |v| v.as_u64().is_some_and(|n| n >= 1),
                                false,
                            );
                            expect(
                                &mut p,
                                ro,
                                &rb,
                                "initial_delay_ms",
                                "a non-negative integer",
                                |v| v.as_u64().is_some(),
                                false,
                            );
                            expect(
                                &mut p,
                                ro,
                                &rb,
                                "max_delay_ms",
                                "a non-negative integer",
                                |v| v.as_u64().is_some(),
                                false,
                            );
                            expect(
                                &mut p,
                                ro,
                                &rb,
                                "multiplier",
                                "a number >= 1",
                                |v| v.as_f64().is_some_and(|f| f >= 1.0),
                                false,
                            );
                            expect(
                                &mut p,
                                ro,
                                &rb,
                                "jitter",
                                "a boolean",
                                Value::is_boolean,
                                false,
                            );
                        }
                    }
                }
            }
        }
        Some(other) => p.push(Problem::new(
            "$.nodes",
            format!("expected an array of nodes, found {}", kind_name(other)),
        )),
    }
    match root.get("edges") {
        None | Some(Value::Null) => {}
        Some(Value::Array(edges)) => {
            for (i, e) in edges.iter().enumerate() {
                let base = format!("$.edges[{i}]");
                let Some(o) = e.as_object() else {
                    p.push(Problem::new(
                        base,
                        format!("expected an edge object, found {}", kind_name(e)),
                    ));
                    continue;
                };
                unknown_model_fields(&mut p, o, &base, names(EDGE_FIELDS), "an edge", Model::Edge);
                expect(
                    &mut p,
                    o,
                    &base,
                    "id",
                    "a non-empty string",
                    |v| v.as_str().is_some_and(|s| !s.is_empty()),
                    true,
                );
                expect(
                    &mut p,
                    o,
                    &base,
                    "src",
                    "a node id (string)",
                    Value::is_string,
                    true,
                );
                expect(
                    &mut p,
                    o,
                    &base,
                    "dst",
                    "a node id (string)",
                    Value::is_string,
                    true,
                );
                expect(
                    &mut p,
                    o,
                    &base,
                    "on",
                    "a string (success, error, true, false or a switch case)",
                    Value::is_string,
                    false,
                );
            }
        }
        Some(other) => p.push(Problem::new(
            "$.edges",
            format!("expected an array of edges, found {}", kind_name(other)),
        )),
    }
    expect(
        &mut p,
        root,
        "$",
        "name",
        "a string",
        Value::is_string,
        false,
    );
    expect(
        &mut p,
        root,
        "$",
        "$schema",
        "a string (a JSON Schema URL or path)",
        Value::is_string,
        false,
    );
    expect(
        &mut p,
        root,
        "$",
        "description",
        "a string",
        Value::is_string,
        false,
    );
    expect(
        &mut p,
        root,
        "$",
        "on_failure",
        "a node id (string)",
        Value::is_string,
        false,
    );
    expect(
        &mut p,
        root,
        "$",
        "timeout_ms",
        "a positive integer (milliseconds, the execution's deadline)",
        |v| v.as_u64().is_some_and(|n| n > 0),
        false,
    );
    expect(
        &mut p,
        root,
        "$",
        "status_mode",
        "one of `full`, `compact`, `off`",
        |v| {
            v.as_str()
                .is_some_and(|s| matches!(s, "full" | "compact" | "off"))
        },
        false,
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_shape_problem_with_its_path() {
        let doc = json!({"nodes": [{"id": 1, "type": "log"}, {"id": "b", "name": "B", "type": "log", "retry": {"max_attempts": 0}}],
                         "edges": [{"id": "e", "src": "a"}]});
        let problems = check_shape(&doc);
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"$.nodes[0].id"));
        assert!(paths.contains(&"$.nodes[0].name"));
        assert!(paths.contains(&"$.nodes[1].retry.max_attempts"));
        assert!(paths.contains(&"$.edges[0].dst"));
    }

    #[test]
    fn a_workflow_deadline_must_be_a_positive_number_of_milliseconds() {
        for bad in [json!(0), json!(-5), json!("10s"), json!(1.5)] {
            let doc = json!({"nodes": [], "timeout_ms": bad});
            let problems = check_shape(&doc);
            assert!(
                problems.iter().any(|p| p.path == "$.timeout_ms"),
                "{bad}: {problems:?}"
            );
        }
        let good = check_shape(&json!({"nodes": [], "timeout_ms": 60000}));
        assert!(!good.iter().any(|p| p.path == "$.timeout_ms"), "{good:?}");
    }

    #[test]
    fn a_workflow_status_mode_must_name_one_of_the_three_modes() {
        let problems = check_shape(&json!({"nodes": [], "status_mode": "verbose"}));
        let p = problems
            .iter()
            .find(|p| p.path == "$.status_mode")
            .expect("status_mode reported");
        assert!(p.message.contains("compact"), "{p:?}");
        for good in ["full", "compact", "off"] {
            let ok = check_shape(&json!({"nodes": [], "status_mode": good}));
            assert!(!ok.iter().any(|p| p.path == "$.status_mode"), "{ok:?}");
        }
    }
}
