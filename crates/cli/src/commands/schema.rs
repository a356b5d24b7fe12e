//! `baton schema`: prints the workflow DSL's JSON Schema (draft 2020-12), generated from the
//! same field tables and node specs the validator reads. `docs/workflow.schema.json` is its
//! committed copy, which a test keeps identical.

use clap::Args;

#[derive(Args, Debug)]
pub struct SchemaArgs {}

/// The schema text, as committed in `docs/workflow.schema.json`.
pub fn schema_text() -> anyhow::Result<String> {
    let schema = baton_core::schema::workflow_schema(&baton_nodes::registry());
    Ok(format!("{}\n", serde_json::to_string_pretty(&schema)?))
}

pub fn run(_args: SchemaArgs) -> anyhow::Result<u8> {
    print!("{}", schema_text()?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn read_json(path: &Path) -> Value {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn validator() -> jsonschema::Validator {
        let schema: Value = serde_json::from_str(&schema_text().unwrap()).unwrap();
        jsonschema::draft202012::new(&schema).expect("the generated schema is a valid schema")
    }

    /// Workflow files (not inputs, not expectations) in `dir`, sorted.
    fn workflows_in(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                name.ends_with(".json")
                    && !name.ends_with(".input.json")
                    && !name.ends_with(".test.json")
                    && !name.ends_with(".expect.json")
            })
            .collect();
        files.sort();
        files
    }

    /// `docs/workflow.schema.json` is generated; this keeps it from drifting from the specs.
    #[test]
    fn docs_workflow_schema_json_matches_the_generated_schema() {
        let path = repo().join("docs/workflow.schema.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == schema_text().unwrap(),
            "{} is out of date: run `cargo run -q -p baton -- schema > docs/workflow.schema.json`",
            path.display()
        );
    }

    #[test]
    fn every_example_validates_against_the_schema() {
        let validator = validator();
        let mut checked = 0;
        for dir in ["examples", "examples/workflows"] {
            for file in workflows_in(&repo().join(dir)) {
                let doc = read_json(&file);
                let errors: Vec<String> = validator
                    .iter_errors(&doc)
                    .map(|e| format!("{}: {e}", e.instance_path()))
                    .collect();
                assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} examples found");
    }

    /// The broken-workflow corpus entries marked `"schema": "invalid"` (shape errors) are
    /// rejected by the schema too; a sanity check that the schema is not too lax.
    #[test]
    fn shape_errors_of_the_invalid_corpus_fail_the_schema_too() {
        let validator = validator();
        let dir = repo().join("crates/core/tests/invalid");
        let mut checked = 0;
        for file in workflows_in(&dir) {
            let expect = read_json(&file.with_extension("expect.json"));
            if expect.get("schema").and_then(Value::as_str) != Some("invalid") {
                continue;
            }
            assert!(
                !validator.is_valid(&read_json(&file)),
                "{} passes the JSON Schema",
                file.display()
            );
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} shape-error entries");
    }

    #[test]
    fn a_workflow_may_name_its_schema() {
        let doc = serde_json::json!({
            "$schema": "./docs/workflow.schema.json",
            "nodes": [{"id": "a", "name": "A", "type": "log", "parameters": {"message": "hi"}}]
        });
        assert!(validator().is_valid(&doc));
        let registry = baton_nodes::registry();
        assert!(baton_core::CompiledWorkflow::compile(&doc, &registry).is_ok());
    }
}
