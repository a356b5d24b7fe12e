//! The workflow DSL as a JSON Schema (draft 2020-12), generated from the same tables the
//! validator reads: the fixed objects' fields (`crate::dsl`) and every node type's
//! [`ParamSpec`]s. `baton schema` prints it; `docs/workflow.schema.json` is its committed copy.
//!
//! A `{{ template }}` or `$reference` string is accepted wherever a parameter takes another
//! kind, as the validator does: its type is known only at run time.

use serde_json::{Map, Value, json};

use crate::dsl::{
    CREDENTIAL_FIELDS, EDGE_FIELDS, ERROR_FIELDS, FieldSpec, NODE_FIELDS, RETRY_FIELDS,
    WORKFLOW_FIELDS,
};
use crate::spec::{NodeCatalog, NodeSpec, ParamKind, ParamSpec, TRIGGER_TYPES};

/// The `$id` of the published schema.
pub const SCHEMA_ID: &str = "https://baton.dev/schemas/workflow.schema.json";

/// A string resolved at run time: a template or a reference.
const TEMPLATED: &str = r"\{\{|\$";

/// The workflow JSON Schema for the node types of `catalog`.
pub fn workflow_schema(catalog: &dyn NodeCatalog) -> Value {
    let specs = catalog.specs();
    let mut defs = Map::new();
    defs.insert("node".into(), node_schema(&specs));
    defs.insert(
        "edge".into(),
        object(EDGE_FIELDS, "An edge between two nodes."),
    );
    defs.insert(
        "retry".into(),
        object(RETRY_FIELDS, "Per-node retry with exponential backoff."),
    );
    defs.insert(
        "error".into(),
        object(ERROR_FIELDS, "Per-node error policy."),
    );
    defs.insert(
        "credentials".into(),
        object(CREDENTIAL_FIELDS, "A node's credentials."),
    );
    let mut types: Vec<&str> = Vec::new();
    for s in &specs {
        types.push(s.type_name);
        types.extend(s.aliases.iter().copied());
    }
    types.extend(TRIGGER_TYPES.iter().copied());
    defs.insert(
        "node_type".into(),
        json!({"description": "A node type (see `baton nodes`) or a trigger type.", "enum": types}),
    );
    defs.insert(
        "templated".into(),
        json!({"description": "A value resolved at run time: a `{{ template }}` or a `$reference`.",
               "type": "string", "pattern": TEMPLATED}),
    );
    for s in &specs {
        defs.insert(format!("parameters.{}", s.type_name), parameters_schema(s));
    }
    let mut root = object(WORKFLOW_FIELDS, "A Baton workflow definition.");
    let root_map = root.as_object_mut().expect("object() builds an object");
    let mut out = Map::new();
    out.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    out.insert("$id".into(), json!(SCHEMA_ID));
    out.insert("title".into(), json!("Baton workflow"));
    out.append(root_map);
    out.insert("$defs".into(), Value::Object(defs));
    Value::Object(out)
}

/// An object with exactly these fields.
fn object(fields: &[FieldSpec], description: &str) -> Value {
    let mut props = Map::new();
    for f in fields {
        let mut schema: Value = serde_json::from_str(f.schema).unwrap_or_else(|_| json!({}));
        if let Some(o) = schema.as_object_mut() {
            o.insert("description".into(), json!(f.doc));
        }
        props.insert(f.name.into(), schema);
    }
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut o = Map::new();
    o.insert("description".into(), json!(description));
    o.insert("type".into(), json!("object"));
    if !required.is_empty() {
        o.insert("required".into(), json!(required));
    }
    o.insert("properties".into(), Value::Object(props));
    o.insert("additionalProperties".into(), json!(false));
    Value::Object(o)
}

/// A node: its fixed fields, and its `parameters` chosen by its `type`.
fn node_schema(specs: &[&NodeSpec]) -> Value {
    let mut node = object(NODE_FIELDS, "One step of a workflow.");
    let cases: Vec<Value> = specs
        .iter()
        .map(|s| {
            let mut names = vec![s.type_name];
            names.extend(s.aliases.iter().copied());
            json!({
                "if": {
                    "required": ["type"],
                    "properties": {"type": {"enum": names}},
                    "not": {"required": ["trigger"], "properties": {"trigger": {"const": true}}}
                },
                "then": {"properties": {"parameters": {"$ref": format!("#/$defs/parameters.{}", s.type_name)}}}
            })
        })
        .collect();
    if let Some(o) = node.as_object_mut() {
        o.insert("allOf".into(), Value::Array(cases));
    }
    node
}

/// One node type's `parameters` object.
fn parameters_schema(spec: &NodeSpec) -> Value {
    let mut props = Map::new();
    for p in &spec.params {
        props.insert(p.name.into(), param_schema(p));
    }
    let required: Vec<&str> = spec
        .params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name)
        .collect();
    let mut o = Map::new();
    o.insert(
        "description".into(),
        json!(format!(
            "Parameters of `{}`: {}",
            spec.type_name, spec.summary
        )),
    );
    o.insert("type".into(), json!("object"));
    if !required.is_empty() {
        o.insert("required".into(), json!(required));
    }
    o.insert("properties".into(), Value::Object(props));
    o.insert("additionalProperties".into(), json!(false));
    Value::Object(o)
}

fn param_schema(p: &ParamSpec) -> Value {
    let mut literal = match &p.kind {
        ParamKind::String => json!({"type": "string"}),
        ParamKind::Number => json!({"type": "number"}),
        ParamKind::Integer => json!({"type": "integer"}),
        ParamKind::Boolean => json!({"type": "boolean"}),
        ParamKind::Object => json!({"type": "object"}),
        ParamKind::Array => json!({"type": "array"}),
        ParamKind::StringOrArray => {
            json!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
        }
        ParamKind::Enum(options) => json!({"enum": options}),
        ParamKind::Any => json!({}),
    };
    if let Some(o) = literal.as_object_mut() {
        if let Some(min) = p.min {
            o.insert("minimum".into(), number(min));
        }
        if let Some(max) = p.max {
            o.insert("maximum".into(), number(max));
        }
        if p.non_empty {
            match p.kind {
                ParamKind::String => {
                    o.insert("pattern".into(), json!(r"\S"));
                }
                ParamKind::Array => {
                    o.insert("minItems".into(), json!(1));
                }
                ParamKind::Object => {
                    o.insert("minProperties".into(), json!(1));
                }
                _ => {}
            }
        }
    }
    let templatable = !matches!(p.kind, ParamKind::String | ParamKind::Any);
    let mut schema = if templatable {
        json!({"anyOf": [literal, {"$ref": "#/$defs/templated"}]})
    } else {
        literal
    };
    if let Some(o) = schema.as_object_mut() {
        o.insert("description".into(), json!(p.doc));
        if let Some(d) = p
            .default
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
        {
            o.insert("default".into(), d);
        }
    }
    schema
}

/// A whole number as an integer, so the schema reads `0`, not `0.0`.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}
