//! Black-box tests of the `baton` command: `validate`, `run` and `nodes`, their output and
//! their exit codes (0 ok, 1 invalid workflow / failed execution, 2 unusable input).

mod common;

use common::{baton, scratch_file, stderr, stdout, stdout_json};
use serde_json::{Value, json};

const HELLO: &str = "examples/01-hello.json";
const HELLO_INPUT: &str = r#"{"name": "Ada", "count": 3, "muted": false}"#;

/// Three problems: a duplicate name, an edge to a missing node and an unknown node type.
fn invalid_workflow() -> String {
    json!({
        "name": "broken",
        "nodes": [
            {"id": "a", "name": "Same", "type": "log", "parameters": {"message": "a"}},
            {"id": "b", "name": "Same", "type": "log", "parameters": {"message": "b"}},
            {"id": "c", "name": "Odd", "type": "frobnicate"}
        ],
        "edges": [
            {"id": "e0", "src": "a", "dst": "b"},
            {"id": "e1", "src": "b", "dst": "ghost"},
            {"id": "e2", "src": "b", "dst": "c"}
        ]
    })
    .to_string()
}

const INVALID_PROBLEMS: [(&str, &str); 3] = [
    (
        "$.nodes[1].name",
        "duplicate node name `Same` (also $.nodes[0]); names are context keys and must be unique",
    ),
    ("$.edges[1].dst", "edge `e1` points to missing node `ghost`"),
    (
        "$.nodes[2].type",
        "unknown node type `frobnicate` (see `baton nodes`)",
    ),
];

// ---------------------------------------------------------------------------------------------
// validate
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_accepts_the_hello_example_and_exits_0() {
    let out = baton().args(["validate", HELLO]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("{HELLO}: valid"));
}

#[test]
fn validate_prints_every_problem_with_its_path_and_exits_1() {
    let file = scratch_file("broken.json", &invalid_workflow());
    let out = baton().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{}: 3 problems", file.display()).as_str())
    );
    let rest: Vec<&str> = lines.collect();
    for (path, message) in INVALID_PROBLEMS {
        let line = format!("  {path}: {message}");
        assert!(
            rest.contains(&line.as_str()),
            "missing {line:?} in:\n{text}"
        );
    }
    assert_eq!(rest.len(), 3, "{text}");
}

#[test]
fn validate_json_reports_valid_false_and_each_problem_path() {
    let file = scratch_file("broken.json", &invalid_workflow());
    let out = baton()
        .arg("validate")
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = stdout_json(&out);
    assert_eq!(report["valid"], false);
    assert_eq!(report["file"], file.display().to_string());
    let problems: Vec<(String, String)> = report["problems"]
        .as_array()
        .expect("problems array")
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = INVALID_PROBLEMS
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    for e in &expected {
        assert!(problems.contains(e), "missing {e:?} in {problems:?}");
    }
    assert_eq!(problems.len(), expected.len());
}

#[test]
fn validate_json_of_a_valid_file_has_no_problems() {
    let out = baton()
        .args(["validate", HELLO, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report = stdout_json(&out);
    assert_eq!(report["valid"], true);
    assert_eq!(report["problems"], json!([]));
    assert_eq!(report["error"], Value::Null);
}

#[test]
fn validate_reports_shape_problems_with_paths() {
    let file = scratch_file(
        "shape.json",
        r#"{"nodes": [{"id": 7, "type": "log"}], "edges": {}}"#,
    );
    let out = baton()
        .arg("validate")
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let paths: Vec<String> = stdout_json(&out)["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    // The shape errors hide nothing else: the log node still lacks its `message`.
    assert_eq!(
        paths,
        [
            "$.nodes[0].id",
            "$.nodes[0].name",
            "$.edges",
            "$.nodes[0].parameters.message"
        ]
    );
}

#[test]
fn validate_of_a_missing_file_exits_2() {
    let out = baton()
        .args(["validate", "examples/does-not-exist.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read examples/does-not-exist.json"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn validate_of_a_file_that_is_not_json_exits_2() {
    let file = scratch_file("nope.json", "nodes: [this is yaml, not json]\n");
    let out = baton().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not JSON"), "{}", stderr(&out));

    let out = baton()
        .arg("validate")
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report = stdout_json(&out);
    assert_eq!(report["valid"], false);
    assert!(
        report["error"].as_str().unwrap().contains("is not JSON"),
        "{report}"
    );
}

#[test]
fn validate_accepts_a_rune_execution_message() {
    let workflow: Value =
        serde_json::from_str(&std::fs::read_to_string(common::workspace().join(HELLO)).unwrap())
            .unwrap();
    let message = json!({"execution_id": "x-1", "current_node": "greet", "workflow_definition": workflow, "context": {}});
    let file = scratch_file("message.json", &message.to_string());
    let out = baton().arg("validate").arg(&file).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------------------------

#[test]
fn run_prints_the_final_context_on_stdout_and_exits_0() {
    let out = baton()
        .args(["run", HELLO, "--input", HELLO_INPUT])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ctx = stdout_json(&out);
    assert_eq!(
        ctx["$input"],
        serde_json::from_str::<Value>(HELLO_INPUT).unwrap()
    );
    assert_eq!(
        ctx["$Greet"]["message"],
        "Hello, Ada! You have 3 new messages."
    );
    assert_eq!(ctx["$Many"]["result"], false);
    assert_eq!(
        ctx["$Calm"]["message"],
        "All quiet. ($5 off coupons still apply.)"
    );
    assert_eq!(
        ctx["$Done"]["message"],
        "Summary: Hello, Ada! You have 3 new messages."
    );
    assert!(ctx.get("$Loud").is_none(), "the false branch only: {ctx}");
}

#[test]
fn run_writes_plain_progress_lines_on_stderr() {
    let out = baton()
        .args(["run", HELLO, "--input", HELLO_INPUT])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        !err.contains('\u{1b}'),
        "no terminal escapes when stderr is not a terminal: {err:?}"
    );
    let lines: Vec<&str> = err.lines().collect();
    for node in ["Greet", "Many", "Calm", "Done"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("ok ") && l.contains(&format!(" {node} ("))),
            "no line for {node}:\n{err}"
        );
    }
    assert!(!lines.iter().any(|l| l.contains("Loud")), "{err}");
    assert!(
        lines.last().is_some_and(|l| l.starts_with("completed in ")),
        "{err}"
    );
}

#[test]
fn run_reads_input_from_a_file_with_at() {
    let file = scratch_file(
        "input.json",
        r#"{"name": "Grace", "count": 42, "muted": false}"#,
    );
    let out = baton()
        .args(["run", HELLO, "--input"])
        .arg(format!("@{}", file.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ctx = stdout_json(&out);
    assert_eq!(
        ctx["$Greet"]["message"],
        "Hello, Grace! You have 42 new messages."
    );
    assert_eq!(ctx["$Loud"]["message"], "That is a lot, Grace.");
    assert!(ctx.get("$Calm").is_none(), "{ctx}");
}

#[test]
fn run_with_invalid_input_json_exits_2() {
    let out = baton()
        .args(["run", HELLO, "--input", "{name: Ada}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--input is not valid JSON"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn run_with_a_missing_input_file_exits_2() {
    let out = baton()
        .args(["run", HELLO, "--input", "@does-not-exist.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read input file does-not-exist.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_of_an_invalid_workflow_exits_2_listing_the_problems() {
    let file = scratch_file("broken.json", &invalid_workflow());
    let out = baton().arg("run").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for (path, message) in INVALID_PROBLEMS {
        assert!(
            err.contains(&format!("  {path}: {message}")),
            "missing {path} in:\n{err}"
        );
    }
    assert!(stdout(&out).is_empty());
}

#[test]
fn run_of_an_unreadable_workflow_exits_2() {
    let out = baton()
        .args(["run", "examples/does-not-exist.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}

#[test]
fn run_of_a_workflow_that_halts_exits_1_and_still_prints_the_context() {
    let workflow = json!({
        "name": "halts",
        "nodes": [
            {"id": "a", "name": "First", "type": "log", "parameters": {"message": "first"}},
            {"id": "b", "name": "Needs card", "type": "log", "parameters": {"message": "card {{$input.card.number}}"}},
            {"id": "c", "name": "Never", "type": "log", "parameters": {"message": "unreachable at run time"}}
        ],
        "edges": [{"id": "e0", "src": "a", "dst": "b"}, {"id": "e1", "src": "b", "dst": "c"}]
    });
    let file = scratch_file("halts.json", &workflow.to_string());
    let out = baton()
        .arg("run")
        .arg(&file)
        .args(["--input", "{}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ctx = stdout_json(&out);
    assert_eq!(ctx["$First"]["message"], "first");
    assert!(ctx.get("$Never").is_none(), "{ctx}");
    let err = stderr(&out);
    assert!(
        err.lines().any(
            |l| l.starts_with("FAILED  Needs card: missing reference `{{$input.card.number}}`")
        ),
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("halted in ")),
        "{err}"
    );
}

#[test]
fn run_with_completion_prints_the_completion_message() {
    let out = baton()
        .args(["run", HELLO, "--input", HELLO_INPUT, "--completion"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let completion = stdout_json(&out);
    assert_eq!(completion["status"], "completed");
    assert_eq!(
        completion["final_context"]["$Done"]["message"],
        "Summary: Hello, Ada! You have 3 new messages."
    );
}

// ---------------------------------------------------------------------------------------------
// nodes
// ---------------------------------------------------------------------------------------------

const NODE_TYPES: [&str; 8] = [
    "log",
    "http",
    "conditional",
    "switch",
    "merge",
    "split",
    "aggregator",
    "wait",
];

#[test]
fn nodes_lists_every_node_type() {
    let out = baton().arg("nodes").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    // Each type starts an unindented line: `log`, or `conditional (also: if)`.
    let headings: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' '))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    for t in NODE_TYPES {
        assert!(headings.contains(&t), "`{t}` not listed in:\n{text}");
    }
    assert!(
        text.contains("input_array"),
        "parameters are listed:\n{text}"
    );
}

#[test]
fn nodes_json_parses_and_declares_every_node_type() {
    let out = baton().args(["nodes", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let specs = stdout_json(&out);
    let specs = specs.as_array().expect("an array of node specs");
    let names: Vec<&str> = specs
        .iter()
        .map(|s| s["type_name"].as_str().expect("type_name"))
        .collect();
    for t in NODE_TYPES {
        assert!(names.contains(&t), "`{t}` missing from {names:?}");
    }
    let split = specs.iter().find(|s| s["type_name"] == "split").unwrap();
    assert_eq!(split["class"], "split");
    let input_array = split["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "input_array")
        .unwrap();
    assert_eq!(input_array["required"], true);
    assert_eq!(input_array["kind"], "array");
}

#[test]
fn an_unknown_subcommand_is_a_usage_error() {
    let out = baton().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage"), "{}", stderr(&out));
}

#[test]
fn run_with_an_unusable_workflows_directory_exits_2_naming_the_problem() {
    let out = baton()
        .args(["run", HELLO, "--workflows", "/nonexistent/baton-workflows"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("--workflows /nonexistent/baton-workflows: cannot read the directory"),
        "{}",
        stderr(&out)
    );

    let dir = catalog_dir(&[("child.json", r#"{"nodes": [{"id": "a", "type": "log"}]}"#)]);
    let out = baton()
        .arg("run")
        .arg(HELLO)
        .arg("--workflows")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("child.json is not a valid workflow")
            && stderr(&out).contains("$.nodes[0].name"),
        "{}",
        stderr(&out)
    );
}

/// A fresh directory holding `files` (name, contents).
fn catalog_dir(files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("baton-catalog-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create the catalog directory");
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents).expect("write a catalog file");
    }
    dir
}

#[test]
fn run_workflows_are_stored_under_their_id_or_file_name() {
    let dir = catalog_dir(&[
        (
            "by-file-name.json",
            r#"{"nodes": [{"id": "a", "name": "A", "type": "log", "parameters": {"message": "from the file name"}}], "edges": []}"#,
        ),
        (
            "other.json",
            r#"{"id": "by-id", "nodes": [{"id": "a", "name": "A", "type": "log", "parameters": {"message": "from the id"}}], "edges": []}"#,
        ),
        ("notes.txt", "not a workflow, ignored"),
    ]);
    let parent = scratch_file(
        "catalog-parent.json",
        &json!({
            "nodes": [
                {"id": "one", "name": "One", "type": "workflow", "parameters": {"workflow_id": "by-file-name"}},
                {"id": "two", "name": "Two", "type": "workflow", "parameters": {"workflow_id": "by-id"}}
            ],
            "edges": [{"id": "e", "src": "one", "dst": "two"}]
        })
        .to_string(),
    );
    let out = baton()
        .arg("run")
        .arg(&parent)
        .arg("--workflows")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ctx = stdout_json(&out);
    assert_eq!(
        ctx["$One"]["$A"]["message"], "from the file name",
        "{ctx:#}"
    );
    assert_eq!(ctx["$Two"]["$A"]["message"], "from the id", "{ctx:#}");
}

/// One definition with six problems of different kinds (an unknown field, a range, an HTTP
/// method, a time zone, a script syntax error, an unknown template root): all six are reported
/// in one pass, the shape error hiding none of the others.
#[test]
fn validate_reports_all_six_problems_of_a_definition_at_once() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/core/tests/invalid/six-problems-at-once.json"
    );
    let out = baton().args(["validate", file, "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout_json(&out);
    let paths: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "$.nodes[0].timeout",
            "$.nodes[1].parameters.amount",
            "$.nodes[2].parameters.method",
            "$.nodes[3].parameters.timezone",
            "$.nodes[4].parameters.script",
            "$.nodes[5].parameters.message",
        ],
        "{report}"
    );
    assert!(
        report["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `timeout_ms`?"),
        "{report}"
    );
}

#[test]
fn schema_prints_the_committed_json_schema() {
    let out = baton().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/workflow.schema.json"
    ))
    .unwrap();
    assert_eq!(stdout(&out), committed);
    let schema: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}
