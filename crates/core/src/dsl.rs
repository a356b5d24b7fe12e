//! The fields of the workflow DSL's fixed objects (workflow, node, edge, retry, error,
//! credentials): their names, JSON Schema fragments and documentation. The unknown-field check
//! and the published JSON Schema (`baton schema`) both read these tables, so a field added here
//! is accepted and documented at once. Fields kept only for Rune's wire format say so.

use serde_json::{Map, Value};

use crate::validate::Problem;

/// One field of a fixed DSL object.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    /// The field's JSON Schema (draft 2020-12) as JSON text; `#/$defs/...` references name the
    /// definitions `crate::schema` builds.
    pub schema: &'static str,
    pub doc: &'static str,
    pub required: bool,
}

const fn field(name: &'static str, schema: &'static str, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        schema,
        doc,
        required: false,
    }
}

const fn required(name: &'static str, schema: &'static str, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        schema,
        doc,
        required: true,
    }
}

/// The top-level workflow object.
pub const WORKFLOW_FIELDS: &[FieldSpec] = &[
    field(
        "$schema",
        r#"{"type":"string"}"#,
        "The JSON Schema this document follows (for editors), e.g. `./docs/workflow.schema.json`; ignored by Baton.",
    ),
    field(
        "id",
        r#"{"type":"string","pattern":"^[A-Za-z0-9._-]{1,128}$"}"#,
        "Catalog id of the workflow (`POST /workflows`); default: the slugified `name`.",
    ),
    field(
        "name",
        r#"{"type":"string"}"#,
        "Human name of the workflow.",
    ),
    field(
        "version",
        "{}",
        "Free-form version label (the catalog numbers versions itself).",
    ),
    field(
        "description",
        r#"{"type":"string"}"#,
        "What the workflow does.",
    ),
    required(
        "nodes",
        r##"{"type":"array","minItems":1,"items":{"$ref":"#/$defs/node"}}"##,
        "The steps (at least one).",
    ),
    field(
        "edges",
        r##"{"type":"array","items":{"$ref":"#/$defs/edge"}}"##,
        "Connections between nodes.",
    ),
    field(
        "on_failure",
        r#"{"type":"string"}"#,
        "Id of a node run once when the execution fails or halts, before the completion.",
    ),
    field(
        "timeout_ms",
        r#"{"type":"integer","minimum":1}"#,
        "Deadline of the whole execution in milliseconds: still running when it passes, the execution fails with `EXECUTION_TIMEOUT` and its running nodes are cancelled.",
    ),
    field(
        "status_mode",
        r#"{"type":"string","enum":["full","compact","off"]}"#,
        "The most status detail its runs publish: `full` (Rune's `running` + final status per node), `compact` (one batched record per node run) or `off` (completions only). Lowers the worker's `BATON_STATUS_MODE`, never raises it.",
    ),
    field(
        "workflow_id",
        r#"{"type":"string"}"#,
        "Accepted for Rune compatibility (its message-level id wins); ignored.",
    ),
    field(
        "execution_id",
        r#"{"type":"string"}"#,
        "Accepted for Rune compatibility (its message-level id wins); ignored.",
    ),
    field(
        "notes",
        r#"{"type":"array"}"#,
        "Accepted for Rune compatibility: canvas notes, decorative; ignored.",
    ),
];

/// A node.
pub const NODE_FIELDS: &[FieldSpec] = &[
    required(
        "id",
        r#"{"type":"string","minLength":1}"#,
        "Unique id, used by edges.",
    ),
    required(
        "name",
        r#"{"type":"string","pattern":"\\S"}"#,
        "Unique name; the node's output is the context key `$<name>`.",
    ),
    required(
        "type",
        r##"{"$ref":"#/$defs/node_type"}"##,
        "Node type (see `baton nodes`).",
    ),
    field(
        "trigger",
        r#"{"type":"boolean"}"#,
        "A trigger node starts the workflow and is never executed.",
    ),
    field(
        "parameters",
        r#"{"type":"object"}"#,
        "The node type's parameters (see `baton nodes`).",
    ),
    field(
        "credentials",
        r##"{"$ref":"#/$defs/credentials"}"##,
        "Credentials: inline values, or `{\"$credential\": \"<id>\"}` from the vault.",
    ),
    field(
        "error",
        r##"{"$ref":"#/$defs/error"}"##,
        "What a failure does: halt (default), ignore or branch.",
    ),
    field(
        "retry",
        r##"{"$ref":"#/$defs/retry"}"##,
        "Retry with exponential backoff.",
    ),
    field(
        "timeout_ms",
        r#"{"type":"integer","minimum":1}"#,
        "Time limit of one attempt, in milliseconds.",
    ),
    field(
        "output",
        r#"{"type":"object"}"#,
        "Accepted for Rune compatibility (a placeholder); ignored.",
    ),
    field(
        "position",
        "{}",
        "Accepted for Rune compatibility: the canvas position; ignored.",
    ),
    field(
        "webhook_guid",
        r#"{"type":"string"}"#,
        "Accepted for Rune compatibility (webhook triggers); ignored.",
    ),
];

/// An edge.
pub const EDGE_FIELDS: &[FieldSpec] = &[
    required(
        "id",
        r#"{"type":"string","minLength":1}"#,
        "Unique edge id.",
    ),
    required("src", r#"{"type":"string"}"#, "Id of the node it leaves."),
    required("dst", r#"{"type":"string"}"#, "Id of the node it enters."),
    field(
        "on",
        r#"{"type":"string"}"#,
        "When it is followed: success (default), error, true, false, or a switch case (rule name, index or `fallback`).",
    ),
    field(
        "label",
        r#"{"type":"string"}"#,
        "Accepted for Rune compatibility (canvas label); ignored.",
    ),
    field(
        "is_error",
        r#"{"type":"boolean"}"#,
        "Accepted for Rune compatibility (canvas flag); ignored: use `on: \"error\"`.",
    ),
];

/// A node's `retry` policy.
pub const RETRY_FIELDS: &[FieldSpec] = &[
    field(
        "max_attempts",
        r#"{"type":"integer","minimum":1}"#,
        "Attempts in all, the first included (default 1).",
    ),
    field(
        "initial_delay_ms",
        r#"{"type":"integer","minimum":0}"#,
        "Delay before the first retry (default 200).",
    ),
    field(
        "max_delay_ms",
        r#"{"type":"integer","minimum":0}"#,
        "Largest delay between attempts (default 10000).",
    ),
    field(
        "multiplier",
        r#"{"type":"number","minimum":1}"#,
        "Growth of the delay per attempt (default 2).",
    ),
    field(
        "jitter",
        r#"{"type":"boolean"}"#,
        "Randomize half of each delay (default true).",
    ),
];

/// A node's `error` policy.
pub const ERROR_FIELDS: &[FieldSpec] = &[
    field(
        "type",
        r#"{"enum":["halt","ignore","continue","branch"]}"#,
        "halt (default): stop the execution; ignore (Rune: continue): carry on; branch: follow the error edge.",
    ),
    field(
        "error_edge",
        r#"{"type":"string"}"#,
        "Id of the edge followed on failure (with `branch`).",
    ),
];

/// A node's `credentials`.
pub const CREDENTIAL_FIELDS: &[FieldSpec] = &[
    field(
        "$credential",
        r#"{"type":"string","minLength":1}"#,
        "Id of a vault credential, revealed when the node runs (no `values` then).",
    ),
    field("id", r#"{"type":"string"}"#, "Rune's credential id."),
    field("name", r#"{"type":"string"}"#, "Rune's credential name."),
    field(
        "type",
        r#"{"type":"string"}"#,
        "Credential kind: api_key, oauth2, basic_auth, header, token, custom or smtp.",
    ),
    field(
        "values",
        r#"{"type":"object"}"#,
        "The secret fields, handed to the node with `type`.",
    ),
];

/// The model structs whose fields a key may belong to before its table lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Workflow,
    Node,
    Edge,
}

/// Whether the model struct itself reads `key`: a field added to `crate::model` but not yet to
/// its table here is accepted (it still needs a table entry to appear in the JSON Schema).
/// Probed by deserializing a minimal object with the key: a struct field does not land in
/// `extra` (or fails on its type).
pub fn read_by_model(model: Model, key: &str, value: &Value) -> bool {
    use crate::model::{Edge, Node, Workflow};
    let mut probe = match model {
        Model::Workflow => serde_json::json!({"nodes": []}),
        Model::Node => serde_json::json!({"id": "", "name": "", "type": ""}),
        Model::Edge => serde_json::json!({"id": "", "src": "", "dst": ""}),
    };
    if let Some(o) = probe.as_object_mut() {
        if o.contains_key(key) {
            return true;
        }
        o.insert(key.to_string(), value.clone());
    }
    match model {
        Model::Workflow => {
            serde_json::from_value::<Workflow>(probe).map_or(true, |w| !w.extra.contains_key(key))
        }
        Model::Node => {
            serde_json::from_value::<Node>(probe).map_or(true, |n| !n.extra.contains_key(key))
        }
        Model::Edge => {
            serde_json::from_value::<Edge>(probe).map_or(true, |e| !e.extra.contains_key(key))
        }
    }
}

/// [`unknown_fields`] for an object of a model struct: keys the struct reads are known too.
pub fn unknown_model_fields<'a>(
    problems: &mut Vec<Problem>,
    obj: &Map<String, Value>,
    base: &str,
    known: impl Iterator<Item = &'a str> + Clone,
    what: &str,
    model: Model,
) {
    let mut unread = Map::new();
    for (k, v) in obj {
        if known.clone().any(|n| n == k) || !read_by_model(model, k, v) {
            unread.insert(k.clone(), v.clone());
        }
    }
    unknown_fields(problems, &unread, base, known, what);
}

/// Reports every key of `obj` that is not in `known`, with a "did you mean" suggestion.
pub fn unknown_fields<'a>(
    problems: &mut Vec<Problem>,
    obj: &Map<String, Value>,
    base: &str,
    known: impl Iterator<Item = &'a str> + Clone,
    what: &str,
) {
    for key in obj.keys() {
        if known.clone().any(|k| k == key) {
            continue;
        }
        let mut message = format!("unknown field `{key}` of {what}");
        match crate::suggest::closest(key, known.clone()) {
            Some(s) => message.push_str(&format!(", did you mean `{s}`?")),
            None => {
                let mut all: Vec<&str> = known.clone().collect();
                all.sort_unstable();
                message.push_str(&format!(" (known: {})", all.join(", ")));
            }
        }
        problems.push(Problem::new(field_path(base, key), message));
    }
}

/// `base.key`, or `base["key"]` when the key is not a plain identifier.
pub fn field_path(base: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        format!("{base}.{key}")
    } else {
        format!("{base}[{}]", Value::String(key.to_string()))
    }
}

/// The names of a field table.
pub fn names(fields: &'static [FieldSpec]) -> impl Iterator<Item = &'static str> + Clone {
    fields.iter().map(|f| f.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_schema_is_json() {
        for table in [
            WORKFLOW_FIELDS,
            NODE_FIELDS,
            EDGE_FIELDS,
            RETRY_FIELDS,
            ERROR_FIELDS,
            CREDENTIAL_FIELDS,
        ] {
            for f in table {
                assert!(
                    serde_json::from_str::<Value>(f.schema).is_ok_and(|v| v.is_object()),
                    "{}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn every_model_field_is_in_its_table() {
        // A definition using every table field deserializes with nothing left in `extra`
        // except the fields the model keeps there (Rune passthrough and documentation).
        let wf: crate::model::Workflow = serde_json::from_value(serde_json::json!({
            "name": "n", "version": 1, "on_failure": "a",
            "nodes": [{"id": "a", "name": "A", "type": "log", "trigger": false, "parameters": {},
                       "retry": {}, "timeout_ms": 5, "error": {"type": "halt", "error_edge": "e"},
                       "credentials": {"type": "t", "values": {}, "id": "c", "name": "C"}}],
            "edges": [{"id": "e", "src": "a", "dst": "a", "on": "error"}]
        }))
        .unwrap();
        assert!(wf.extra.is_empty());
        assert!(wf.nodes[0].extra.is_empty());
        assert!(wf.edges[0].extra.is_empty());
    }

    #[test]
    fn a_field_the_model_reads_is_known_even_before_its_table_lists_it() {
        assert!(read_by_model(
            Model::Node,
            "timeout_ms",
            &serde_json::json!(5)
        ));
        assert!(read_by_model(
            Model::Workflow,
            "on_failure",
            &serde_json::json!("a")
        ));
        assert!(!read_by_model(
            Model::Node,
            "timeout",
            &serde_json::json!(5)
        ));
        assert!(!read_by_model(
            Model::Edge,
            "source",
            &serde_json::json!("a")
        ));
    }

    #[test]
    fn unknown_fields_name_the_path_and_a_suggestion() {
        let mut p = Vec::new();
        let obj = serde_json::json!({"timeout": 500, "id": "a", "zzzz": 1});
        unknown_fields(
            &mut p,
            obj.as_object().unwrap(),
            "$.nodes[0]",
            names(NODE_FIELDS),
            "a node",
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].path, "$.nodes[0].timeout");
        assert!(p[0].message.contains("did you mean `timeout_ms`?"));
        assert!(p[1].message.contains("known: "));
    }
}
