//! A node's `"credentials": {"$credential": "<id>"}` names a vault credential: it validates, it
//! compiles to the bare reference (no secret in the definition), and a malformed one is
//! reported at its path.

use baton_core::CompiledWorkflow;
use baton_core::validate::{Invalid, Problem};
use serde_json::{Value, json};

fn workflow(credentials: Value) -> Value {
    json!({
        "nodes": [{"id": "fetch", "name": "Fetch", "type": "http",
                   "parameters": {"method": "GET", "url": "http://127.0.0.1:1/"},
                   "credentials": credentials}],
        "edges": []
    })
}

fn compile(doc: &Value) -> Result<CompiledWorkflow, Invalid> {
    CompiledWorkflow::compile(doc, &baton_nodes::registry())
}

#[test]
fn a_credential_reference_validates_and_compiles_to_the_reference_alone() {
    let wf = compile(&workflow(json!({"$credential": "cred_123"}))).unwrap();
    let node = wf.node("fetch").unwrap();
    assert_eq!(
        node.credentials.as_ref().map(|c| Value::Object(c.clone())),
        Some(json!({"$credential": "cred_123"}))
    );
}

#[test]
fn inline_credentials_still_compile_to_their_values_and_type() {
    let wf = compile(&workflow(
        json!({"type": "token", "values": {"token": "t"}}),
    ))
    .unwrap();
    let node = wf.node("fetch").unwrap();
    assert_eq!(
        node.credentials.as_ref().map(|c| Value::Object(c.clone())),
        Some(json!({"token": "t", "type": "token"}))
    );
}

#[test]
fn a_malformed_credential_reference_is_reported_at_its_path() {
    let Err(Invalid(problems)) = compile(&workflow(json!({"$credential": 7}))) else {
        panic!("a numeric credential id must be refused");
    };
    assert_eq!(
        problems,
        vec![Problem::new(
            "$.nodes[0].credentials.$credential",
            "expected a credential id (a non-empty string), found a number"
        )]
    );
    let Err(Invalid(problems)) = compile(&workflow(
        json!({"$credential": "cred_1", "values": {"token": "inline"}}),
    )) else {
        panic!("a reference with inline values must be refused");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "$.nodes[0].credentials.values");
}
