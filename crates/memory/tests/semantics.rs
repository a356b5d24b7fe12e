//! Engine semantics, run end to end through the embedded runtime: routing (conditional,
//! switch), error policies (halt, ignore, branch), missing references, joins (merge, implicit
//! joins) and skip propagation. Splits, timers, retries and the execution lifecycle are in the
//! sibling `semantics_*.rs` files.

mod support;

use std::time::Duration;

use baton_core::message::NodeStatus;
use serde_json::{Value, json};
use support::*;

// ---------------------------------------------------------------------------------------------
// Conditional
// ---------------------------------------------------------------------------------------------

fn yes_no(n_edges: Vec<Value>, params: Value) -> Value {
    let mut check = conditional("Check", "$input.n > 10");
    if let Some(extra) = params.as_object() {
        for (k, v) in extra {
            check["parameters"][k] = v.clone();
        }
    }
    workflow(vec![check, log("Yes", "big"), log("No", "small")], n_edges)
}

fn on_edges() -> Value {
    yes_no(
        vec![
            edge_on("Check", "Yes", "true"),
            edge_on("Check", "No", "false"),
        ],
        json!({}),
    )
}

/// Rune's canvas shape: plain edges, chosen by the conditional's `true_edge_id`/`false_edge_id`.
fn rune_edges() -> Value {
    yes_no(
        vec![
            json!({"id": "to-yes", "src": "Check", "dst": "Yes"}),
            json!({"id": "to-no", "src": "Check", "dst": "No"}),
        ],
        json!({"true_edge_id": "to-yes", "false_edge_id": "to-no"}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_true_follows_only_the_true_edge() {
    let h = Harness::new();
    let c = h.run(&on_edges(), "x", json!({"n": 11})).await;
    assert_completed(&c);
    assert_eq!(out(&c, "Check")["result"], json!(true));
    assert!(h.ran("x", "Yes"));
    assert!(!h.ran("x", "No"));
    assert!(!c.final_context.contains_key("$No"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_false_follows_only_the_false_edge() {
    let h = Harness::new();
    let c = h.run(&on_edges(), "x", json!({"n": 3})).await;
    assert_completed(&c);
    assert_eq!(out(&c, "Check")["result"], json!(false));
    assert!(h.ran("x", "No"));
    assert!(!h.ran("x", "Yes"));
    assert!(!c.final_context.contains_key("$Yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_true_edge_id_param_selects_the_edge_when_true() {
    let h = Harness::new();
    let c = h.run(&rune_edges(), "x", json!({"n": 11})).await;
    assert_completed(&c);
    assert!(h.ran("x", "Yes"));
    assert!(!h.ran("x", "No"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_false_edge_id_param_selects_the_edge_when_false() {
    let h = Harness::new();
    let c = h.run(&rune_edges(), "x", json!({"n": 3})).await;
    assert_completed(&c);
    assert!(h.ran("x", "No"));
    assert!(!h.ran("x", "Yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_false_skips_the_true_branch_and_merge_still_releases() {
    let doc = workflow(
        vec![
            conditional("Check", "$input.n > 10"),
            log("A", "a"),
            log("B", "b"),
            log("C", "c"),
            merge("Join", "wait_for_all"),
            log("After", "after"),
        ],
        vec![
            edge_on("Check", "A", "true"),
            edge("A", "B"),
            edge("B", "Join"),
            edge_on("Check", "C", "false"),
            edge("C", "Join"),
            edge("Join", "After"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"n": 3})).await;
    assert_completed(&c);
    assert!(
        !h.ran("x", "A") && !h.ran("x", "B"),
        "the untaken branch must not run"
    );
    let join = out(&c, "Join");
    assert_eq!(join["arrived"], json!(["C"]));
    assert_eq!(join["skipped"], json!(["B"]));
    assert!(join["merged_context"].get("$C").is_some());
    assert_eq!(h.runs("x", "After"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_failing_under_ignore_takes_its_false_edge() {
    // `$input.n` is missing, so the condition cannot be evaluated: the conditional fails, and
    // under `ignore` it routes as false (Rune's behaviour).
    let check = with(
        conditional("Check", "$input.n > 1"),
        "error",
        json!({"type": "ignore"}),
    );
    let doc = workflow(
        vec![check, log("Yes", "y"), log("No", "n")],
        vec![
            edge_on("Check", "Yes", "true"),
            edge_on("Check", "No", "false"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({})).await;
    assert_completed(&c);
    assert_eq!(
        h.sequence("x", "Check"),
        vec![NodeStatus::Running, NodeStatus::Failed]
    );
    assert!(h.ran("x", "No"));
    assert!(!h.ran("x", "Yes"));
}

// ---------------------------------------------------------------------------------------------
// Switch
// ---------------------------------------------------------------------------------------------

fn tier_rules() -> Value {
    json!([
        {"name": "gold", "value": "$input.tier", "operator": "==", "compare": "gold"},
        {"name": "silver", "value": "$input.tier", "operator": "==", "compare": "silver"}
    ])
}

/// Rune's shape: `routes` lists one edge id per rule plus the fallback; edges are plain.
fn switch_by_routes() -> Value {
    workflow(
        vec![
            json!({"id": "Tier", "name": "Tier", "type": "switch",
                   "parameters": {"rules": tier_rules(), "routes": ["to-gold", "to-silver", "to-other"]}}),
            log("Gold", "g"),
            log("Silver", "s"),
            log("Other", "o"),
        ],
        vec![
            json!({"id": "to-gold", "src": "Tier", "dst": "Gold"}),
            json!({"id": "to-silver", "src": "Tier", "dst": "Silver"}),
            json!({"id": "to-other", "src": "Tier", "dst": "Other"}),
        ],
    )
}

/// Baton's shape: each edge names its case (`on: "<rule name>"` or `"fallback"`).
fn switch_by_edge_names() -> Value {
    workflow(
        vec![
            json!({"id": "Tier", "name": "Tier", "type": "switch", "parameters": {"rules": tier_rules()}}),
            log("Gold", "g"),
            log("Silver", "s"),
            log("Other", "o"),
            merge("Join", "wait_for_all"),
        ],
        vec![
            edge_on("Tier", "Gold", "gold"),
            edge_on("Tier", "Silver", "silver"),
            edge_on("Tier", "Other", "fallback"),
            edge("Gold", "Join"),
            edge("Silver", "Join"),
            edge("Other", "Join"),
        ],
    )
}

fn only_ran(h: &Harness, exec: &str, expected: &str, all: &[&str]) {
    for n in all {
        assert_eq!(
            h.ran(exec, n),
            *n == expected,
            "node `{n}`: expected only `{expected}` to run"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switch_routes_to_the_matching_case_by_the_routes_param() {
    let h = Harness::new();
    let c = h
        .run(&switch_by_routes(), "x", json!({"tier": "silver"}))
        .await;
    assert_completed(&c);
    assert_eq!(out(&c, "Tier")["output_index"], json!(1));
    only_ran(&h, "x", "Silver", &["Gold", "Silver", "Other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switch_routes_param_fallback_is_the_last_route() {
    let h = Harness::new();
    let c = h
        .run(&switch_by_routes(), "x", json!({"tier": "bronze"}))
        .await;
    assert_completed(&c);
    only_ran(&h, "x", "Other", &["Gold", "Silver", "Other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switch_routes_to_the_case_named_on_the_edge() {
    let h = Harness::new();
    let c = h
        .run(&switch_by_edge_names(), "x", json!({"tier": "gold"}))
        .await;
    assert_completed(&c);
    only_ran(&h, "x", "Gold", &["Gold", "Silver", "Other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switch_takes_the_fallback_when_no_rule_matches() {
    let h = Harness::new();
    let c = h
        .run(&switch_by_edge_names(), "x", json!({"tier": "bronze"}))
        .await;
    assert_completed(&c);
    assert_eq!(out(&c, "Tier")["fallback"], json!(true));
    only_ran(&h, "x", "Other", &["Gold", "Silver", "Other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switch_untaken_cases_count_as_skipped_so_the_merge_releases() {
    let h = Harness::new();
    let c = h
        .run(&switch_by_edge_names(), "x", json!({"tier": "silver"}))
        .await;
    assert_completed(&c);
    let join = out(&c, "Join");
    assert_eq!(join["arrived"], json!(["Silver"]));
    let mut skipped: Vec<String> = serde_json::from_value(join["skipped"].clone()).unwrap();
    skipped.sort();
    assert_eq!(skipped, vec!["Gold", "Other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switch_compares_numeric_strings_as_numbers() {
    // As text "10" < "9"; as numbers 10 > 9. Both sides are strings here.
    let doc = workflow(
        vec![
            json!({"id": "Size", "name": "Size", "type": "switch", "parameters": {
                "rules": [{"name": "big", "value": "$input.amount", "operator": ">", "compare": "9"}]}}),
            log("Big", "big"),
            log("Small", "small"),
        ],
        vec![
            edge_on("Size", "Big", "big"),
            edge_on("Size", "Small", "fallback"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "ten", json!({"amount": "10"})).await;
    assert_completed(&c);
    only_ran(&h, "ten", "Big", &["Big", "Small"]);
    let c = h.run(&doc, "two", json!({"amount": "2"})).await;
    assert_completed(&c);
    only_ran(&h, "two", "Small", &["Big", "Small"]);
}

// ---------------------------------------------------------------------------------------------
// Error policies
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn halt_is_the_default_and_the_reason_names_the_node_and_the_error() {
    let server = Server::start().await;
    let doc = workflow(
        vec![
            log("Start", "go"),
            http_raising("Boom", &server.url("/code/500")),
            log("Next", "never"),
        ],
        vec![edge("Start", "Boom"), edge("Boom", "Next")],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({})).await;
    let reason = assert_halted(&c);
    assert!(reason.contains("Boom"), "reason names the node: {reason}");
    assert!(
        reason.contains("HTTP_STATUS") && reason.contains("500"),
        "reason names the error: {reason}"
    );
    assert_eq!(
        h.sequence("x", "Boom"),
        vec![NodeStatus::Running, NodeStatus::Failed]
    );
    let failed = h.statuses_of("x", "Boom").pop().unwrap();
    assert_eq!(
        failed
            .error
            .expect("a failed status carries the error")
            .code,
        "HTTP_STATUS"
    );
    assert!(!h.ran("x", "Next"));
    assert!(
        c.final_context.contains_key("$Start"),
        "the halted completion keeps what ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn halt_cancels_an_in_flight_sibling_and_its_successor_never_runs() {
    let server = Server::start().await;
    // Boom fails only once Slow's request is in flight (the server sees it), so the halt has a
    // running sibling to cancel. Slow's endpoint would answer after 20 s.
    let doc = workflow(
        vec![
            log("Start", "go"),
            http("Slow", &server.url("/sleep/20000")),
            log("AfterSlow", "the sibling was not cancelled"),
            http_raising("Boom", &server.url("/after/sleep/500")),
        ],
        vec![
            edge("Start", "Slow"),
            edge("Slow", "AfterSlow"),
            edge("Start", "Boom"),
        ],
    );
    let h = Harness::new();
    let c = h
        .run_within(Duration::from_secs(15), compile(&doc), "x", json!({}))
        .await;
    let reason = assert_halted(&c);
    assert!(reason.contains("Boom"), "{reason}");
    assert_eq!(server.hits("sleep"), 1);
    tokio::time::sleep(GRACE).await;
    assert!(
        !h.ran("x", "AfterSlow"),
        "the cancelled sibling's successor ran"
    );
    assert!(!h.sequence("x", "Slow").contains(&NodeStatus::Success));
    assert_eq!(h.completions("x").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn halt_does_not_wait_for_a_sibling_timer() {
    let doc = workflow(
        vec![
            log("Start", "go"),
            json!({"id": "Timer", "name": "Timer", "type": "wait", "parameters": {"amount": 60, "unit": "seconds"}}),
            log("AfterTimer", "late"),
            log("Boom", "charging {{$input.card.number}}"),
        ],
        vec![
            edge("Start", "Timer"),
            edge("Timer", "AfterTimer"),
            edge("Start", "Boom"),
        ],
    );
    let h = Harness::new();
    // Far below the 60 s timer: the halt must not wait for it.
    let c = h
        .run_within(Duration::from_secs(20), compile(&doc), "x", json!({}))
        .await;
    assert_halted(&c);
    assert!(!h.ran("x", "AfterTimer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ignore_continues_on_the_success_edges() {
    let server = Server::start().await;
    let boom = with(
        http_raising("Boom", &server.url("/code/500")),
        "error",
        json!({"type": "ignore"}),
    );
    let doc = workflow(
        vec![boom, log("Next", "continued")],
        vec![edge("Boom", "Next")],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({})).await;
    assert_completed(&c);
    assert_eq!(
        h.sequence("x", "Boom"),
        vec![NodeStatus::Running, NodeStatus::Failed]
    );
    assert_eq!(out(&c, "Next")["message"], json!("continued"));
    assert!(
        !c.final_context.contains_key("$Boom"),
        "a failed node has no output"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ignore_at_a_leaf_still_completes() {
    let server = Server::start().await;
    let boom = with(
        http_raising("Boom", &server.url("/code/503")),
        "error",
        json!({"type": "ignore"}),
    );
    let doc = workflow(
        vec![log("Start", "go"), boom, log("Other", "o")],
        vec![edge("Start", "Boom"), edge("Start", "Other")],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({})).await;
    assert_completed(&c);
    assert!(h.ran("x", "Other"));
}

fn branching(server: &Server, path: &str, error_message: &str) -> Value {
    let boom = http_raising("Boom", &server.url(path));
    workflow(
        vec![
            boom,
            log("Next", "success path"),
            log("Handle", error_message),
        ],
        vec![edge("Boom", "Next"), edge_on("Boom", "Handle", "error")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn branch_follows_only_the_error_edge() {
    let server = Server::start().await;
    let h = Harness::new();
    let c = h
        .run(&branching(&server, "/code/500", "handled"), "x", json!({}))
        .await;
    assert_completed(&c);
    assert!(h.ran("x", "Handle"));
    assert!(
        !h.ran("x", "Next"),
        "a failed node must not follow its success edge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn branch_follows_the_rune_error_edge_param() {
    let server = Server::start().await;
    let boom = with(
        http_raising("Boom", &server.url("/code/500")),
        "error",
        json!({"type": "branch", "error_edge": "to-handle"}),
    );
    let doc = workflow(
        vec![boom, log("Next", "success path"), log("Handle", "handled")],
        vec![
            json!({"id": "to-next", "src": "Boom", "dst": "Next"}),
            json!({"id": "to-handle", "src": "Boom", "dst": "Handle"}),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({})).await;
    assert_completed(&c);
    assert!(h.ran("x", "Handle"));
    assert!(!h.ran("x", "Next"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn error_route_sees_error_with_node_id_name_message_and_code() {
    let server = Server::start().await;
    let mut doc = branching(
        &server,
        "/code/500",
        "{{$error.node_id}}|{{$error.node_name}}|{{$error.code}}|{{$error.message}}",
    );
    // Give the failing node an id different from its name, to tell them apart.
    doc["nodes"][0]["id"] = json!("boom-id");
    doc["edges"][0]["src"] = json!("boom-id");
    doc["edges"][1]["src"] = json!("boom-id");
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({})).await;
    assert_completed(&c);
    let message = out(&c, "Handle")["message"].as_str().unwrap().to_string();
    let parts: Vec<&str> = message.splitn(4, '|').collect();
    assert_eq!(parts[..3], ["boom-id", "Boom", "HTTP_STATUS"], "{message}");
    assert!(
        parts[3].contains("500"),
        "the message describes the failure: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn success_never_follows_an_error_edge() {
    let server = Server::start().await;
    let mut doc = branching(&server, "/ok/fine", "must not run");
    doc["nodes"]
        .as_array_mut()
        .unwrap()
        .push(merge("Join", "wait_for_all"));
    doc["edges"]
        .as_array_mut()
        .unwrap()
        .extend([edge("Next", "Join"), edge("Handle", "Join")]);
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({})).await;
    assert_completed(&c);
    assert!(h.ran("x", "Next"));
    assert!(!h.ran("x", "Handle"), "success followed the error edge");
    assert_eq!(out(&c, "Join")["arrived"], json!(["Next"]));
    assert_eq!(out(&c, "Join")["skipped"], json!(["Handle"]));
}

// ---------------------------------------------------------------------------------------------
// Missing references
// ---------------------------------------------------------------------------------------------

async fn missing_reference_reason(node: Value) -> String {
    let doc = workflow(
        vec![log("Start", "go"), node, log("Next", "never")],
        vec![edge("Start", "Charge"), edge("Charge", "Next")],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"card": {}})).await;
    let reason = assert_halted(&c);
    assert!(!h.ran("x", "Next"));
    assert!(
        reason.contains("Charge"),
        "the reason names the node: {reason}"
    );
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_handlebars_reference_halts_with_its_path_in_the_reason() {
    let reason = missing_reference_reason(log("Charge", "charging {{$input.card.number}}")).await;
    assert!(reason.contains("$input.card.number"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_bare_reference_halts_with_its_path_in_the_reason() {
    let reason = missing_reference_reason(log("Charge", "$input.card.number")).await;
    assert!(reason.contains("$input.card.number"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_reference_in_a_condition_halts_with_its_path_in_the_reason() {
    let mut check = conditional("Charge", "$input.card.number > 0");
    check["parameters"]["true_edge_id"] = json!("Charge->Next");
    let reason = missing_reference_reason(check).await;
    assert!(reason.contains("$input.card.number"), "{reason}");
}

// ---------------------------------------------------------------------------------------------
// Joins
// ---------------------------------------------------------------------------------------------

fn race(server: &Server, mode: &str) -> Value {
    workflow(
        vec![
            log("Start", "go"),
            log("Fast", "fast"),
            http("Slow", &server.url("/gate/slow")),
            merge("Join", mode),
            log("After", "after"),
        ],
        vec![
            edge("Start", "Fast"),
            edge("Start", "Slow"),
            edge("Fast", "Join"),
            edge("Slow", "Join"),
            edge("Join", "After"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merge_wait_for_all_waits_for_both_branches() {
    let server = Server::start().await;
    let h = Harness::new();
    let run = {
        let rt = h.runtime.clone();
        let wf = compile(&race(&server, "wait_for_all"));
        tokio::spawn(async move { rt.run(wf, "x", json!({})).await })
    };
    // Fast has arrived and Slow's request is in flight; only then let Slow finish.
    h.until_status("x", "Join", NodeStatus::Waiting).await;
    server.until_hits("slow", 1).await;
    assert!(
        !h.ran("x", "After"),
        "the merge released before its second branch arrived"
    );
    server.open("slow");
    let c = tokio::time::timeout(BOUND, run)
        .await
        .expect("bounded")
        .unwrap()
        .unwrap();
    h.completion_event("x").await;
    assert_completed(&c);
    let slow_done = h.status_position("x", "Slow", NodeStatus::Success).unwrap();
    let join_done = h.status_position("x", "Join", NodeStatus::Success).unwrap();
    assert!(
        slow_done < join_done,
        "the merge released before Slow finished"
    );
    let join = out(&c, "Join");
    assert!(
        join["merged_context"].get("$Fast").is_some()
            && join["merged_context"].get("$Slow").is_some()
    );
    assert_eq!(h.runs("x", "After"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merge_wait_for_any_releases_on_the_first_branch() {
    let server = Server::start().await;
    let h = Harness::new();
    let run = {
        let rt = h.runtime.clone();
        let wf = compile(&race(&server, "wait_for_any"));
        tokio::spawn(async move { rt.run(wf, "x", json!({})).await })
    };
    // After runs while Slow is still blocked on the server.
    h.until_status("x", "After", NodeStatus::Success).await;
    assert!(!h.sequence("x", "Slow").contains(&NodeStatus::Success));
    server.open("slow");
    let c = tokio::time::timeout(BOUND, run)
        .await
        .expect("bounded")
        .unwrap()
        .unwrap();
    h.completion_event("x").await;
    assert_completed(&c);
    assert_eq!(out(&c, "Join")["_merge_winner"], json!("Fast"));
    assert!(
        h.sequence("x", "Slow").contains(&NodeStatus::Success),
        "the losing branch still finishes"
    );
    assert_eq!(
        h.runs("x", "After"),
        1,
        "a late arrival must not release the merge again"
    );
    assert_eq!(h.runs("x", "Join"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merge_with_every_branch_skipped_skips_its_successors_and_the_execution_completes() {
    let doc = workflow(
        vec![
            conditional("Check", "$input.go == true"),
            log("A", "a"),
            log("B", "b"),
            merge("Join", "wait_for_all"),
            log("After", "after"),
            log("Else", "else"),
        ],
        vec![
            edge_on("Check", "A", "true"),
            edge_on("Check", "Else", "false"),
            edge("A", "Join"),
            edge("A", "B"),
            edge("B", "Join"),
            edge("Join", "After"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"go": false})).await;
    assert_completed(&c);
    assert!(h.ran("x", "Else"));
    for n in ["A", "B", "Join", "After"] {
        assert!(!h.ran("x", n), "`{n}` is on the untaken branch");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn implicit_join_after_a_conditional_runs_exactly_once() {
    let doc = workflow(
        vec![
            conditional("Check", "$input.n > 10"),
            log("Yes", "y"),
            log("No", "n"),
            log("Done", "done"),
        ],
        vec![
            edge_on("Check", "Yes", "true"),
            edge_on("Check", "No", "false"),
            edge("Yes", "Done"),
            edge("No", "Done"),
        ],
    );
    let h = Harness::new();
    for (exec, n) in [("big", 11), ("small", 3)] {
        let c = h.run(&doc, exec, json!({"n": n})).await;
        assert_completed(&c);
        assert_eq!(h.runs(exec, "Done"), 1, "{exec}");
        assert_eq!(h.sequence(exec, "Done").last(), Some(&NodeStatus::Success));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn implicit_join_of_two_parallel_branches_runs_once_after_both() {
    let server = Server::start().await;
    let doc = workflow(
        vec![
            log("Start", "go"),
            http("Left", &server.url("/gate/left")),
            log("Right", "right"),
            log("Done", "{{$Left.body.key}} and {{$Right.message}}"),
        ],
        vec![
            edge("Start", "Left"),
            edge("Start", "Right"),
            edge("Left", "Done"),
            edge("Right", "Done"),
        ],
    );
    let h = Harness::new();
    let run = {
        let rt = h.runtime.clone();
        let wf = compile(&doc);
        tokio::spawn(async move { rt.run(wf, "x", json!({})).await })
    };
    h.until_status("x", "Right", NodeStatus::Success).await;
    server.until_hits("left", 1).await;
    server.open("left");
    let c = tokio::time::timeout(BOUND, run)
        .await
        .expect("bounded")
        .unwrap()
        .unwrap();
    h.completion_event("x").await;
    assert_completed(&c);
    assert_eq!(h.runs("x", "Done"), 1);
    assert_eq!(out(&c, "Done")["message"], json!("left and right"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joined_node_never_reports_waiting_after_it_ran() {
    // Many concurrent diamonds make the two arrivals at each join race: whichever arrives
    // first reports `waiting`, and that report must never land after the join's own
    // `running`/`success` (a monitor keeping the latest status would show it stuck).
    let doc = workflow(
        vec![
            log("Start", "go"),
            log("A", "a"),
            log("B", "b"),
            log("Plain", "plain"),
            merge("Join", "wait_for_all"),
        ],
        vec![
            edge("Start", "A"),
            edge("Start", "B"),
            edge("A", "Plain"),
            edge("B", "Plain"),
            edge("A", "Join"),
            edge("B", "Join"),
        ],
    );
    let h = Harness::new();
    let wf = compile(&doc);
    let mut runs = Vec::new();
    for i in 0..60 {
        let rt = h.runtime.clone();
        let wf = wf.clone();
        runs.push(tokio::spawn(async move {
            rt.run(wf, &format!("x{i}"), json!({})).await
        }));
    }
    for r in runs {
        let c = tokio::time::timeout(BOUND, r)
            .await
            .expect("bounded")
            .unwrap()
            .unwrap();
        assert_completed(&c);
    }
    for i in 0..60 {
        let exec = format!("x{i}");
        h.completion_event(&exec).await;
        for node in ["Plain", "Join"] {
            let seq = h.sequence(&exec, node);
            assert_eq!(
                seq.last(),
                Some(&NodeStatus::Success),
                "{exec} `{node}`: {seq:?}"
            );
            assert_eq!(h.runs(&exec, node), 1, "{exec} `{node}`: {seq:?}");
        }
    }
}
