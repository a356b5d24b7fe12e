//! Semantic validation (`CompiledWorkflow::compile`) against the real node catalog: one test per
//! check, asserting the JSON path and the message, and that every problem is reported at once.

use baton_core::CompiledWorkflow;
use baton_core::validate::{Invalid, Problem};
use serde_json::{Value, json};

fn compile(doc: &Value) -> Result<CompiledWorkflow, Invalid> {
    CompiledWorkflow::compile(doc, &baton_nodes::registry())
}

/// Every problem the document has (none when it is valid).
fn problems(doc: Value) -> Vec<Problem> {
    match compile(&doc) {
        Ok(_) => Vec::new(),
        Err(Invalid(problems)) => problems,
    }
}

fn p(path: &str, message: &str) -> Problem {
    Problem::new(path, message)
}

#[track_caller]
fn assert_only_problem(doc: Value, path: &str, message: &str) {
    assert_eq!(problems(doc), vec![p(path, message)]);
}

#[track_caller]
fn assert_valid(doc: Value) {
    let found = problems(doc);
    assert!(
        found.is_empty(),
        "expected a valid workflow, got {found:#?}"
    );
}

fn log(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "type": "log", "parameters": {"message": format!("at {name}")}})
}

fn edge(id: &str, src: &str, dst: &str) -> Value {
    json!({"id": id, "src": src, "dst": dst})
}

fn edge_on(id: &str, src: &str, dst: &str, on: &str) -> Value {
    json!({"id": id, "src": src, "dst": dst, "on": on})
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

#[test]
fn duplicate_node_ids_are_reported_at_the_second_id() {
    let doc = json!({"nodes": [log("a", "First"), log("a", "Second")], "edges": []});
    assert_only_problem(
        doc,
        "$.nodes[1].id",
        "duplicate node id `a` (also $.nodes[0])",
    );
}

#[test]
fn duplicate_node_names_are_reported_because_names_are_context_keys() {
    let doc =
        json!({"nodes": [log("a", "Same"), log("b", "Same")], "edges": [edge("e", "a", "b")]});
    assert_only_problem(
        doc,
        "$.nodes[1].name",
        "duplicate node name `Same` (also $.nodes[0]); names are context keys and must be unique",
    );
}

#[test]
fn duplicate_edge_ids_are_reported() {
    let doc = json!({"nodes": [log("a", "A"), log("b", "B"), log("c", "C")],
                     "edges": [edge("e", "a", "b"), edge("e", "b", "c")]});
    assert_only_problem(
        doc,
        "$.edges[1].id",
        "duplicate edge id `e` (also $.edges[0])",
    );
}

// ---------------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------------

#[test]
fn an_edge_to_a_missing_node_is_reported_at_its_dst() {
    let doc = json!({"nodes": [log("a", "A")], "edges": [edge("e1", "a", "ghost")]});
    assert_only_problem(
        doc,
        "$.edges[0].dst",
        "edge `e1` points to missing node `ghost`",
    );
}

#[test]
fn an_edge_from_a_missing_node_is_reported_at_its_src() {
    let doc = json!({"nodes": [log("a", "A")], "edges": [edge("e1", "ghost", "a")]});
    assert_only_problem(
        doc,
        "$.edges[0].src",
        "edge `e1` starts at missing node `ghost`",
    );
}

#[test]
fn a_cycle_is_reported_with_the_nodes_it_goes_through() {
    let doc = json!({
        "nodes": [log("s", "Start"), log("a", "A"), log("b", "B"), log("c", "C")],
        "edges": [edge("e0", "s", "a"), edge("e1", "a", "b"), edge("e2", "b", "c"), edge("e3", "c", "a")]
    });
    assert_only_problem(doc, "$.edges", "cycle: A -> B -> C -> A");
}

#[test]
fn a_self_loop_is_a_cycle() {
    let doc = json!({"nodes": [log("s", "Start"), log("a", "A")], "edges": [edge("e0", "s", "a"), edge("e1", "a", "a")]});
    assert_only_problem(doc, "$.edges", "cycle: A -> A");
}

/// With triggers, an execution starts at their successors only, so a node nothing leads to is
/// unreachable (RFC 0001).
#[test]
fn a_node_nothing_leads_to_beside_a_trigger_is_unreachable() {
    let doc = json!({
        "nodes": [{"id": "t", "name": "Trigger", "type": "ManualTrigger"}, log("a", "A"), log("orphan", "Orphan"), log("next", "Next")],
        "edges": [edge("e0", "t", "a"), edge("e1", "orphan", "next")]
    });
    let problems = compile(&doc).expect_err("invalid").0;
    let found: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.path.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "$.nodes[2]",
                "node `Orphan` is unreachable from the start nodes"
            ),
            (
                "$.nodes[3]",
                "node `Next` is unreachable from the start nodes"
            ),
        ]
    );
}

#[test]
fn nodes_reached_only_from_the_on_failure_node_are_not_unreachable() {
    let doc = json!({
        "on_failure": "cleanup",
        "nodes": [log("a", "A"), log("cleanup", "Cleanup"), log("notify", "Notify")],
        "edges": [edge("e0", "cleanup", "notify")]
    });
    let wf = compile(&doc).expect("valid");
    let starts: Vec<&str> = wf.start.iter().map(|i| wf.nodes[*i].id.as_str()).collect();
    assert_eq!(starts, ["a"], "the on_failure node is not a start node");
    assert_eq!(
        wf.on_failure.map(|i| wf.nodes[i].id.as_str()),
        Some("cleanup")
    );
}

#[test]
fn on_failure_naming_a_missing_node_is_reported() {
    let doc = json!({"on_failure": "nope", "nodes": [log("a", "A")]});
    assert_only_problem(doc, "$.on_failure", "names missing node `nope`");
}

// ---------------------------------------------------------------------------------------------
// Node types and parameters
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unknown_node_type_is_reported_at_its_type() {
    let doc = json!({"nodes": [log("a", "A"), {"id": "b", "name": "B", "type": "frobnicate"}], "edges": [edge("e", "a", "b")]});
    assert_only_problem(
        doc,
        "$.nodes[1].type",
        "unknown node type `frobnicate` (see `baton nodes`)",
    );
}

#[test]
fn node_type_aliases_are_accepted() {
    let doc = json!({
        "nodes": [{"id": "c", "name": "Check", "type": "if", "parameters": {"expression": "true"}}, log("y", "Yes"), log("n", "No")],
        "edges": [edge_on("t", "c", "y", "true"), edge_on("f", "c", "n", "false")]
    });
    assert_valid(doc);
}

#[test]
fn a_missing_required_parameter_is_reported_with_the_expected_type() {
    let doc = json!({"nodes": [{"id": "s", "name": "Split", "type": "split", "parameters": {}}]});
    assert_only_problem(
        doc,
        "$.nodes[0].parameters.input_array",
        "is required by `split`: expected an array",
    );
}

#[test]
fn a_null_required_parameter_counts_as_missing() {
    let doc = json!({"nodes": [{"id": "l", "name": "Log", "type": "log", "parameters": {"message": null}}]});
    assert_only_problem(
        doc,
        "$.nodes[0].parameters.message",
        "is required by `log`: expected any value",
    );
}

#[test]
fn an_ill_typed_literal_parameter_is_reported_with_the_value_found() {
    let doc = json!({"nodes": [{"id": "w", "name": "Wait", "type": "wait", "parameters": {"amount": "abc"}}]});
    assert_only_problem(
        doc,
        "$.nodes[0].parameters.amount",
        "expected a number, found `\"abc\"`",
    );
    let doc = json!({"nodes": [{"id": "w", "name": "Wait", "type": "wait", "parameters": {"amount": 2, "unit": "fortnights"}}]});
    assert_only_problem(
        doc,
        "$.nodes[0].parameters.unit",
        "expected one of milliseconds, seconds, minutes, hours, days, found `\"fortnights\"`",
    );
    let doc = json!({"nodes": [{"id": "s", "name": "Split", "type": "split", "parameters": {"input_array": {"a": 1}}}]});
    assert_only_problem(
        doc,
        "$.nodes[0].parameters.input_array",
        "expected an array, found `{\"a\":1}`",
    );
}

#[test]
fn templated_parameters_are_type_checked_when_they_resolve_not_before() {
    for amount in ["{{$input.delay}}", "$input.delay", "{{ $input.delay }}"] {
        assert_valid(
            json!({"nodes": [{"id": "w", "name": "Wait", "type": "wait", "parameters": {"amount": amount}}]}),
        );
    }
    assert_valid(
        json!({"nodes": [{"id": "s", "name": "Split", "type": "split", "parameters": {"input_array": "$input.items"}}]}),
    );
}

#[test]
fn a_template_that_does_not_parse_is_reported_at_its_parameter() {
    let doc = json!({"nodes": [{"id": "l", "name": "Log", "type": "log", "parameters": {"message": "{{#if $input.x}}unclosed"}}]});
    let found = problems(doc);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].path, "$.nodes[0].parameters.message");
    assert!(
        found[0].message.starts_with("template does not parse"),
        "{}",
        found[0].message
    );
}

#[test]
fn an_expression_that_does_not_parse_is_reported_at_the_expression() {
    let doc = json!({
        "nodes": [{"id": "c", "name": "Check", "type": "conditional", "parameters": {"expression": "$input.x == "}}, log("y", "Yes")],
        "edges": [edge_on("t", "c", "y", "true")]
    });
    let found = problems(doc);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].path, "$.nodes[0].parameters.expression");
    assert!(
        found[0]
            .message
            .starts_with("expression `$input.x == ` does not parse"),
        "{}",
        found[0].message
    );
}

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

#[test]
fn a_reference_to_a_node_that_is_not_an_ancestor_is_reported() {
    let mut b = log("b", "B");
    b["parameters"]["message"] = json!("A said {{$A.message}}");
    let doc = json!({"nodes": [log("s", "Start"), log("a", "A"), b], "edges": [edge("e0", "s", "a"), edge("e1", "s", "b")]});
    assert_only_problem(
        doc,
        "$.nodes[2].parameters",
        "references `$A`: node `A`, which is not an ancestor of `B`, so its output cannot exist yet",
    );
}

#[test]
fn a_reference_to_a_later_node_in_a_conditional_expression_is_reported() {
    let doc = json!({
        "nodes": [
            {"id": "c", "name": "Check", "type": "conditional", "parameters": {"expression": "$Later.message == 'x'"}},
            log("l", "Later"),
            log("n", "No"),
        ],
        "edges": [edge_on("t", "c", "l", "true"), edge_on("f", "c", "n", "false")]
    });
    assert_only_problem(
        doc,
        "$.nodes[0].parameters",
        "references `$Later`: node `Later`, which is not an ancestor of `Check`, so its output cannot exist yet",
    );
}

#[test]
fn a_reference_to_a_nodes_own_output_is_reported() {
    let mut a = log("a", "A");
    a["parameters"]["message"] = json!("$A.message");
    assert_only_problem(
        json!({"nodes": [a]}),
        "$.nodes[0].parameters",
        "references `$A`: its own output, so its output cannot exist yet",
    );
}

#[test]
fn references_to_ancestors_and_execution_input_are_accepted() {
    let mut c = log("c", "C");
    c["parameters"]["message"] =
        json!("{{$A.message}} / $[Node B].message / $input.x / $item.y / costs $5");
    let doc = json!({
        "nodes": [log("a", "A"), log("b", "Node B"), c],
        "edges": [edge("e0", "a", "b"), edge("e1", "b", "c")]
    });
    assert_valid(doc);
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

#[test]
fn a_conditional_true_edge_id_naming_a_missing_edge_is_reported() {
    let doc = json!({
        "nodes": [
            {"id": "c", "name": "Check", "type": "conditional", "parameters": {"expression": "$input.ok", "true_edge_id": "nope"}},
            log("y", "Yes"),
            log("n", "No"),
        ],
        "edges": [edge_on("t", "c", "y", "true"), edge_on("f", "c", "n", "false")]
    });
    assert_only_problem(
        doc,
        "$.nodes[0].parameters.true_edge_id",
        "names edge `nope`, which is not an edge leaving `Check`",
    );
}

#[test]
fn a_conditional_edge_id_naming_someone_elses_edge_is_reported() {
    let doc = json!({
        "nodes": [
            log("s", "Start"),
            {"id": "c", "name": "Check", "type": "conditional", "parameters": {"expression": "$input.ok", "false_edge_id": "e0"}},
            log("y", "Yes"),
            log("n", "No"),
        ],
        "edges": [edge("e0", "s", "c"), edge_on("t", "c", "y", "true"), edge_on("f", "c", "n", "false")]
    });
    assert_only_problem(
        doc,
        "$.nodes[1].parameters.false_edge_id",
        "names edge `e0`, which is not an edge leaving `Check`",
    );
}

#[test]
fn rune_conditional_edge_ids_type_the_edges() {
    let doc = json!({
        "nodes": [
            {"id": "c", "name": "Check", "type": "conditional",
             "parameters": {"expression": "$input.ok", "true_edge_id": "t", "false_edge_id": "f"}},
            log("y", "Yes"),
            log("n", "No"),
        ],
        "edges": [edge("t", "c", "y"), edge("f", "c", "n")]
    });
    assert_valid(doc);
}

#[test]
fn an_untyped_edge_leaving_a_conditional_is_reported() {
    let doc = json!({
        "nodes": [{"id": "c", "name": "Check", "type": "conditional", "parameters": {"expression": "$input.ok"}}, log("y", "Yes")],
        "edges": [edge("e", "c", "y")]
    });
    assert_only_problem(
        doc,
        "$.edges[0]",
        "edge `e` leaves conditional `Check` but is neither its true nor its false edge (set `on`, or `true_edge_id`/`false_edge_id`)",
    );
}

#[test]
fn a_true_edge_leaving_a_non_conditional_is_reported() {
    let doc =
        json!({"nodes": [log("a", "A"), log("b", "B")], "edges": [edge_on("e", "a", "b", "true")]});
    assert_only_problem(
        doc,
        "$.edges[0].on",
        "`true` edges only leave conditional nodes; `A` is a log",
    );
}

fn switch_doc(case_on: &str) -> Value {
    json!({
        "nodes": [
            {"id": "sw", "name": "Route", "type": "switch",
             "parameters": {"rules": [{"name": "gold", "value": "$input.tier", "operator": "==", "compare": "gold"}]}},
            log("g", "Gold"),
            log("o", "Other"),
            log("x", "Extra"),
        ],
        "edges": [edge_on("e0", "sw", "g", "gold"), edge_on("e1", "sw", "o", "fallback"), edge_on("e2", "sw", "x", case_on)]
    })
}

#[test]
fn a_switch_edge_on_naming_no_case_is_reported_once() {
    assert_only_problem(
        switch_doc("platinum"),
        "$.edges[2].on",
        "switch `Route` has no case `platinum` (cases: rule `name`, rule index, or `fallback`)",
    );
}

#[test]
fn switch_cases_can_be_named_by_rule_name_index_or_fallback() {
    for on in ["gold", "0", "1", "fallback", "default"] {
        assert_valid(switch_doc(on));
    }
    assert_only_problem(
        switch_doc("2"),
        "$.edges[2].on",
        "switch `Route` has no case `2` (cases: rule `name`, rule index, or `fallback`)",
    );
}

#[test]
fn an_untyped_edge_leaving_a_switch_is_reported() {
    let mut doc = switch_doc("gold");
    doc["edges"][2] = edge("e2", "sw", "x");
    assert_only_problem(
        doc,
        "$.edges[2]",
        "edge `e2` leaves switch `Route` but is not one of its routes",
    );
}

#[test]
fn a_branch_policy_without_an_error_edge_is_reported() {
    let mut a = log("a", "Risky");
    a["error"] = json!({"type": "branch"});
    assert_only_problem(
        json!({"nodes": [a]}),
        "$.nodes[0].error",
        "policy `branch` needs an error edge leaving `Risky` (`on: \"error\"` or `error_edge`)",
    );
}

#[test]
fn an_error_edge_implies_the_branch_policy() {
    let doc = json!({"nodes": [log("a", "Risky"), log("h", "Handler")], "edges": [edge_on("e", "a", "h", "error")]});
    let wf = compile(&doc).expect("valid");
    assert_eq!(
        wf.node("a").unwrap().error_policy,
        baton_core::ErrorKind::Branch
    );
}

#[test]
fn an_error_edge_naming_another_nodes_edge_is_reported() {
    let mut a = log("a", "Risky");
    a["error"] = json!({"type": "branch", "error_edge": "e1"});
    let doc = json!({"nodes": [a, log("b", "B"), log("c", "C")], "edges": [edge("e0", "a", "b"), edge("e1", "b", "c")]});
    let found = problems(doc);
    assert!(
        found.contains(&p(
            "$.nodes[0].error.error_edge",
            "names edge `e1`, which is not an edge leaving `Risky`"
        )),
        "{found:#?}"
    );
}

#[test]
fn an_aggregator_outside_any_split_is_reported() {
    let doc = json!({"nodes": [log("a", "A"), {"id": "g", "name": "Gather", "type": "aggregator"}], "edges": [edge("e", "a", "g")]});
    assert_only_problem(
        doc,
        "$.nodes[1]",
        "aggregator `Gather` is not downstream of a split",
    );
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

#[test]
fn every_problem_is_reported_at_once() {
    let mut risky = log("risky", "Risky");
    risky["error"] = json!({"type": "branch"});
    let doc = json!({
        "nodes": [
            log("start", "Start"),
            log("dup", "Start"),
            {"id": "weird", "name": "Weird", "type": "frobnicate"},
            {"id": "split", "name": "Split", "type": "split", "parameters": {}},
            risky,
        ],
        "edges": [edge("e0", "start", "weird"), edge("e1", "start", "split"), edge("e2", "start", "risky"), edge("e3", "start", "ghost")]
    });
    let mut paths: Vec<String> = problems(doc).into_iter().map(|p| p.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "$.edges[3].dst",
            "$.nodes[1].name",
            "$.nodes[2].type",
            "$.nodes[3].parameters.input_array",
            "$.nodes[4].error",
        ]
    );
}

#[test]
fn shape_problems_are_all_reported_and_hide_only_what_could_not_be_read() {
    let doc = json!({
        "nodes": [{"id": 1, "type": "frobnicate"}, {"id": "b", "name": "B", "type": "log", "parameters": [], "timeout_ms": 0}],
        "edges": [{"id": "e", "src": "a"}]
    });
    let found = problems(doc);
    let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "$.nodes[0].id",
            "$.nodes[0].name",
            "$.nodes[1].parameters",
            "$.nodes[1].timeout_ms",
            "$.edges[0].dst",
            "$.nodes[0].type"
        ]
    );
    assert_eq!(
        found[0].message,
        "expected a non-empty string, found a number"
    );
    assert_eq!(found[1].message, "is required: expected a non-empty string");
}

#[test]
fn a_document_that_is_not_an_object_is_one_problem_at_the_root() {
    assert_eq!(
        problems(json!([1, 2])),
        vec![p("$", "expected a workflow object, found an array")]
    );
    assert_eq!(
        problems(json!({"edges": []})),
        vec![p(
            "$.nodes",
            "is required: expected a non-empty array of nodes"
        )]
    );
}

#[test]
fn the_invalid_error_lists_every_problem() {
    let err = compile(&json!({"nodes": [log("a", "A"), log("a", "A")]})).unwrap_err();
    assert_eq!(err.0.len(), 2);
    assert_eq!(
        err.to_string(),
        "workflow is invalid (2 problems): $.nodes[1].id: duplicate node id `a` (also $.nodes[0]); \
         $.nodes[1].name: duplicate node name `A` (also $.nodes[0]); names are context keys and must be unique"
    );
}

// ---------------------------------------------------------------------------------------------
// Rune compatibility
// ---------------------------------------------------------------------------------------------

#[test]
fn rune_shaped_definitions_with_triggers_and_rune_fields_are_accepted() {
    let doc = json!({
        "workflow_id": "wf-42",
        "execution_id": "",
        "name": "rune export",
        "notes": [{"id": "n1", "content": "exported from the Rune editor", "x": 0, "y": 0}],
        "nodes": [
            {"id": "hook", "name": "Webhook", "type": "webhook", "trigger": true, "parameters": {},
             "position": {"x": 0, "y": 0}, "webhook_guid": "0d9a-guid", "output": {}},
            {"id": "manual", "name": "Manual", "type": "ManualTrigger", "position": [10, 20]},
            {"id": "fetch", "name": "Fetch", "type": "http",
             "parameters": {"method": "GET", "url": "https://api.example.org/users/$input.id", "retry": 2, "retry_delay": "1s"},
             "credentials": {"id": "c1", "name": "token", "type": "token", "values": {"token": "s3cret"}},
             "error": {"type": "continue"},
             "position": {"x": 200, "y": 0}},
            {"id": "ok", "name": "Ok?", "type": "conditional",
             "parameters": {"expression": "{{ $Fetch.status == 200 }}", "true_edge_id": "e2", "false_edge_id": "e3"},
             "position": {"x": 400, "y": 0}},
            {"id": "yes", "name": "Yes", "type": "log", "parameters": {"message": "got {{$Fetch.body.name}}"}},
            {"id": "no", "name": "No", "type": "log", "parameters": {"message": "status $Fetch.status"}}
        ],
        "edges": [
            {"id": "e0", "src": "hook", "dst": "fetch", "label": "go"},
            {"id": "e1", "src": "manual", "dst": "fetch"},
            {"id": "e4", "src": "fetch", "dst": "ok"},
            {"id": "e2", "src": "ok", "dst": "yes"},
            {"id": "e3", "src": "ok", "dst": "no"}
        ]
    });
    let wf = match compile(&doc) {
        Ok(wf) => wf,
        Err(e) => panic!("{e}"),
    };
    let starts: Vec<&str> = wf.start.iter().map(|i| wf.nodes[*i].id.as_str()).collect();
    assert_eq!(
        starts,
        ["fetch"],
        "an execution starts at the triggers' successors"
    );
    assert!(wf.node("hook").unwrap().trigger && wf.node("manual").unwrap().trigger);
    assert!(!wf.node("fetch").unwrap().trigger);
    assert!(
        wf.node("fetch").unwrap().in_edges.is_empty(),
        "edges from triggers deliver nothing"
    );
    assert_eq!(
        wf.node("fetch").unwrap().error_policy,
        baton_core::ErrorKind::Ignore
    );
    // Rune's passthrough fields are kept, so the definition round-trips without loss.
    assert_eq!(wf.definition.extra["workflow_id"], "wf-42");
    let hook = &wf.definition.nodes[0];
    assert_eq!(hook.extra["position"], json!({"x": 0, "y": 0}));
    assert_eq!(hook.extra["webhook_guid"], "0d9a-guid");
    assert_eq!(wf.definition.edges[0].extra["label"], "go");
    let round_trip = serde_json::to_value(&wf.definition).unwrap();
    assert_eq!(
        round_trip["nodes"][2]["position"],
        json!({"x": 200, "y": 0})
    );
    assert_eq!(round_trip["notes"][0]["id"], "n1");
}

#[test]
fn fields_that_are_neither_baton_nor_rune_are_reported_with_their_path() {
    let doc = json!({
        "name": "w", "webhook_guid": "g",
        "nodes": [{"id": "a", "name": "A", "type": "log", "parameters": {"message": "m"},
                   "notes": "n", "disabled": false,
                   "credentials": {"type": "token", "values": {}, "created_at": "2024"},
                   "error": {"type": "halt", "notes": "x"}}]
    });
    let mut paths: Vec<String> = problems(doc).into_iter().map(|p| p.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "$.nodes[0].credentials.created_at",
            "$.nodes[0].disabled",
            "$.nodes[0].error.notes",
            "$.nodes[0].notes",
            "$.webhook_guid"
        ]
    );
}

#[test]
fn the_example_workflows_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") || name.ends_with(".input.json") || name.ends_with(".test.json")
        {
            continue;
        }
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Err(e) = compile(&doc) {
            panic!("{name}: {e}");
        }
        checked += 1;
    }
    assert!(checked > 0, "no examples found in {}", dir.display());
}

#[test]
fn braced_templates_may_name_nodes_with_spaces_and_builtin_roots_but_no_unknown_root() {
    assert_valid(json!({"nodes": [
        {"id": "a", "name": "Branch A", "type": "log", "parameters": {"message": "a"}},
        {"id": "b", "name": "B", "type": "log",
         "parameters": {"message": "{{[$Branch A].message}} {{$[Branch A].level}} {{$input.x}} {{$trigger.y}}"}}
    ], "edges": [{"id": "e", "src": "a", "dst": "b"}]}));
    let found = problems(json!({"nodes": [
        {"id": "a", "name": "Fetch", "type": "log", "parameters": {"message": "{{$Fecth.x}} and $5 off"}}
    ]}));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].path, "$.nodes[0].parameters.message");
    assert!(
        found[0].message.contains("did you mean `$Fetch`?"),
        "{}",
        found[0].message
    );
}
