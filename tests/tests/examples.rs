//! Every workflow in `examples/` validates and runs through the `baton` binary.
//!
//! `examples/<name>.json` runs with `--input` from `examples/<name>.input.json` when that file
//! exists, and must exit 0 unless [`EXPECTED_EXIT`] says otherwise. Examples that
//! call an HTTP API get a local one (the same API as `scripts/demo-api.py`): an input
//! `base_url` is pointed at it, so no network is needed. Every example runs with
//! `--workflows examples/workflows`, the catalog its `workflow` nodes start from, and with the
//! `--signal`s [`SIGNALS`] lists. (`baton test examples/` runs their test files:
//! `workflow_tests.rs`.)

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{baton, examples_dir, stderr, stdout, stdout_json};
use serde_json::{Value, json};

/// Examples that do not exit 0, by file stem (a workflow has no field for it: unknown fields
/// are validation errors).
const EXPECTED_EXIT: &[(&str, i64)] = &[("07-halt-with-cleanup", 1)];

/// `--signal` arguments of examples that wait for a signal, by file stem.
const SIGNALS: &[(&str, &str)] = &[("10-approval", r#"approve={"approved": true, "by": "ann"}"#)];

/// The workflow files in `examples/`, sorted, without their `.input.json` and `.test.json`
/// companions.
fn example_workflows() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".json")
                && !name.ends_with(".input.json")
                && !name.ends_with(".test.json")
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no examples in {}",
        examples_dir().display()
    );
    files
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The input an example runs with: its `.input.json` (if any), with `base_url` pointed at the
/// local demo API.
fn example_input(workflow: &std::path::Path) -> Option<Value> {
    let stem = workflow.file_stem().unwrap().to_string_lossy();
    let input_file = workflow.with_file_name(format!("{stem}.input.json"));
    let mut input = input_file.exists().then(|| read_json(&input_file))?;
    if let Some(url) = input.get_mut("base_url") {
        *url = Value::String(demo_api().to_string());
    }
    Some(input)
}

/// Runs one example; returns its output.
fn run_example(workflow: &std::path::Path) -> std::process::Output {
    let mut cmd = baton();
    cmd.arg("run").arg(workflow);
    // The workflows `workflow` (sub-workflow) nodes start.
    cmd.arg("--workflows").arg(examples_dir().join("workflows"));
    if let Some(input) = example_input(workflow) {
        cmd.arg("--input").arg(input.to_string());
    }
    let stem = workflow.file_stem().unwrap().to_string_lossy();
    for (_, signal) in SIGNALS.iter().filter(|(s, _)| *s == stem) {
        cmd.arg("--signal").arg(signal);
    }
    cmd.output().unwrap()
}

fn example(name: &str) -> PathBuf {
    examples_dir().join(name)
}

// ---------------------------------------------------------------------------------------------
// The demo API (scripts/demo-api.py in Rust)
// ---------------------------------------------------------------------------------------------

/// Base URL of a local demo API, started once per test process on a free port.
fn demo_api() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/users", get(list_users))
            .route("/notify/{id}", post(notify));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        url
    })
}

async fn list_users(headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer demo-secret") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized"})),
        );
    }
    let users =
        json!([{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}, {"id": 3, "name": "Linus"}]);
    (StatusCode::OK, Json(json!({ "users": users })))
}

async fn notify(UrlPath(id): UrlPath<String>, body: Option<Json<Value>>) -> Json<Value> {
    Json(json!({"notified": id, "received": body.map(|Json(b)| b)}))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_example_validates() {
    for workflow in example_workflows() {
        let out = baton().arg("validate").arg(&workflow).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} does not validate:\n{}{}",
            workflow.display(),
            stdout(&out),
            stderr(&out)
        );
    }
}

#[test]
fn every_example_runs_to_its_expected_exit_code() {
    let mut failures = Vec::new();
    for workflow in example_workflows() {
        let stem = workflow.file_stem().unwrap().to_string_lossy().to_string();
        let expected = EXPECTED_EXIT
            .iter()
            .find(|(s, _)| *s == stem)
            .map_or(0, |(_, code)| *code);
        let out = run_example(&workflow);
        let code = out.status.code().map(i64::from);
        let context_printed =
            serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|v| v.is_object());
        if code != Some(expected) || !context_printed {
            let stem = workflow.file_stem().unwrap().to_string_lossy();
            let hint = if workflow
                .with_file_name(format!("{stem}.input.json"))
                .exists()
            {
                String::new()
            } else {
                format!(
                    " (ran without input: add examples/{stem}.input.json, or list it in EXPECTED_EXIT)"
                )
            };
            failures.push(format!(
                "{}: exit {code:?} (expected {expected}){hint}, context printed: {context_printed}\n--- stderr\n{}",
                workflow.display(),
                stderr(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_http_pipeline_example_calls_the_api_for_every_user() {
    let out = run_example(&example("06-http-pipeline.json"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ctx = stdout_json(&out);
    assert_eq!(
        ctx["$Fetch users"]["status"], 200,
        "the bearer token was sent: {ctx:#}"
    );
    assert_eq!(ctx["$Collect"]["count"], 3, "{ctx:#}");
    let notified: Vec<&Value> = ctx["$Collect"]["aggregated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["body"]["notified"])
        .collect();
    assert_eq!(notified, [&json!("1"), &json!("2"), &json!("3")]);
    assert_eq!(
        ctx["$Collect"]["aggregated"][0]["body"]["received"]["note"],
        "hello Ada"
    );
    assert_eq!(ctx["$Done"]["message"], "notified 3 users");
    assert!(ctx.get("$API down").is_none(), "{ctx:#}");
}

#[test]
fn the_halt_example_exits_1_after_running_its_on_failure_node() {
    let out = run_example(&example("07-halt-with-cleanup.json"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ctx = stdout_json(&out);
    assert!(
        ctx.get("$Never").is_none(),
        "the timer branch was cancelled: {ctx:#}"
    );
    assert_eq!(
        ctx["$Cleanup"]["message"],
        "cleaning up after a failure",
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_sub_workflow_example_prices_each_order_in_a_child_execution() {
    let out = run_example(&example("09-sub-workflow.json"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ctx = stdout_json(&out);
    let priced = ctx["$Priced"]["aggregated"].as_array().expect("aggregated");
    let totals: Vec<(&Value, &Value)> = priced
        .iter()
        .map(|child| (&child["$json"]["order"], &child["$json"]["total"]))
        .collect();
    assert_eq!(
        totals,
        [
            (&json!("A-1"), &json!(30)),
            (&json!("A-2"), &json!(125)),
            (&json!("A-3"), &json!(99))
        ],
        "{ctx:#}"
    );
    assert_eq!(priced[1]["$json"]["large"], json!(true), "{ctx:#}");
    assert_eq!(
        priced[1]["$input"]["id"],
        json!("A-2"),
        "the item was the child's input"
    );
    assert!(ctx.get("$Pricing failed").is_none(), "{ctx:#}");
}

#[test]
fn a_sub_workflow_example_without_its_catalog_takes_the_error_route() {
    let workflow = example("09-sub-workflow.json");
    let out = baton()
        .arg("run")
        .arg(&workflow)
        .arg("--input")
        .arg(example_input(&workflow).expect("input").to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("workflow `price-order` is not in the workflow catalog"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout_json(&out)["$Priced"]["count"], 3);
}

#[test]
fn the_approval_example_pays_on_the_signal_given_with_run_signal() {
    let out = run_example(&example("10-approval.json"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ctx = stdout_json(&out);
    assert_eq!(ctx["$Approval"]["data"]["by"], "ann", "{ctx:#}");
    assert_eq!(ctx["$Pay"]["message"], "paying 1200 EUR, approved by ann");
    assert!(ctx.get("$Expired").is_none(), "{ctx:#}");
}

#[test]
fn run_rejects_a_signal_that_is_not_name_equals_json() {
    for bad in ["approve", "=1", "approve={not json"] {
        let out = baton()
            .args(["run", "examples/10-approval.json", "--signal", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--signal"), "{bad}: {}", stderr(&out));
    }
}
