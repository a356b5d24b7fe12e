//! The broken-workflow corpus: every `tests/invalid/<case>.json` is rejected with exactly the
//! problems its `<case>.expect.json` lists, as `[path, message fragment]` pairs: each expected
//! problem is reported at that path with a message containing the fragment, and nothing else
//! is reported. `"schema": "invalid"` marks shape errors the JSON Schema rejects too (checked
//! in `crates/cli`).

use std::path::{Path, PathBuf};

use baton_core::CompiledWorkflow;
use serde_json::Value;

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/invalid exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".json") && !name.ends_with(".expect.json")
        })
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_broken_workflow_reports_exactly_its_expected_problems() {
    let registry = baton_nodes::registry();
    let files = corpus();
    assert!(files.len() >= 40, "the corpus has {} cases", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let expect = read(&file.with_extension("expect.json"));
        let expected: Vec<(String, String)> = expect["problems"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}.expect.json has no `problems` array"))
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap_or_default().to_string(),
                    pair[1].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert!(!expected.is_empty(), "{name}: no expected problem");
        let reported = match CompiledWorkflow::compile(&read(file), &registry) {
            Ok(_) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(invalid) => invalid.0,
        };
        for (path, fragment) in &expected {
            if !reported
                .iter()
                .any(|p| &p.path == path && p.message.contains(fragment.as_str()))
            {
                failures.push(format!(
                    "{name}: expected `{path}: …{fragment}…`, got {reported:#?}"
                ));
            }
        }
        for p in &reported {
            if !expected
                .iter()
                .any(|(path, fragment)| &p.path == path && p.message.contains(fragment.as_str()))
            {
                failures.push(format!("{name}: unexpected problem `{p}`"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
