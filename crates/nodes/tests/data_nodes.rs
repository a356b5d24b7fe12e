//! The data-shaping nodes: `edit`, `filter`, `sort` and `limit`, run directly (happy paths and
//! every error case) and end to end through the embedded runtime, chained via `$json`.

use baton_core::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

use baton_core::CompiledWorkflow;
use baton_core::message::ExecutionStatus;
use baton_engine::{Node, NodeError, NodeInput, NodeOutput};
use baton_memory::EmbeddedRuntime;
use baton_nodes::edit::EditNode;
use baton_nodes::listops::{FilterNode, LimitNode, SortNode};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

async fn run(node: &dyn Node, params: Value, context: Value) -> Result<Value, NodeError> {
    let ctx: Map<String, Value> = context.as_object().cloned().expect("context object");
    let cancel = CancellationToken::new();
    node.run(NodeInput {
        params: &params,
        context: &ctx,
        credentials: None,
        used_credential: None,
        execution_id: "exec-1",
        node_id: "node-1",
        node_name: "Node",
        attempt: 1,
        idempotency_key: "k",
        cancel: &cancel,
        clock: &baton_engine::SystemClock,
    })
    .await
    .map(NodeOutput::into_value)
}

async fn run_err(node: &dyn Node, params: Value, context: Value) -> String {
    match run(node, params, context).await {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidParameter);
            assert!(!e.retryable);
            e.message
        }
    }
}

fn people() -> Value {
    json!([
        {"name": "ada", "age": 36, "joined": "2021-03-01", "city": "London"},
        {"name": "Bob", "age": 17, "joined": "2023-01-15 08:00:00", "city": "Paris"},
        {"name": "carol", "age": "52", "joined": "2019-12-31T23:00:00Z", "city": "london"},
        {"name": "Dan", "joined": "2022-06-01"},
    ])
}

// ---------------------------------------------------------------------------------------------
// edit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn edit_sets_fields_on_json_with_expressions_and_casts() {
    let ctx = json!({"$json": {"first": "Ada", "last": "Lovelace", "qty": 3, "price": 2.5}, "$input": {"tag": "vip"}});
    let out = run(
        &EditNode::new(),
        json!({"assignments": [
            {"name": "full", "value": "{{ $json.first + ' ' + $json.last }}"},
            {"name": "total", "value": "{{ $json.qty * $json.price }}", "type": "number"},
            {"name": "big", "value": "{{ $json.qty > 2 }}", "type": "boolean"},
            {"name": "meta.tag", "value": "$input.tag"},
            {"name": "meta.note", "value": "tag=$input.tag, n={{ $json.qty + 1 }}"},
            {"name": "count", "value": "42", "type": "number"},
            {"name": "flags", "value": "{\"a\": [1, 2]}", "type": "json"},
            {"name": "literal", "value": "plain text"},
        ]}),
        ctx,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!({"$json": {
            "first": "Ada", "last": "Lovelace", "qty": 3, "price": 2.5,
            "full": "Ada Lovelace", "total": 7.5, "big": true,
            "meta": {"tag": "vip", "note": "tag=vip, n=4"},
            "count": 42, "flags": {"a": [1, 2]}, "literal": "plain text",
        }})
    );
}

#[tokio::test]
async fn edit_keep_only_maps_each_item_of_a_target_path() {
    let ctx = json!({"$Fetch": {"body": {"users": [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}]}}});
    let params = |path: &str| {
        json!({"mode": "keep_only", "target_path": path, "assignments": [
            {"name": "user_id", "value": "{{ $json.id * 10 }}", "type": "number"},
            {"name": "label", "value": "{{ 'user-' + $json.n }}"},
        ]})
    };
    let expected =
        json!({"$json": [{"user_id": 10, "label": "user-a"}, {"user_id": 20, "label": "user-b"}]});
    for path in [
        "$Fetch.body.users",
        "Fetch.body.users",
        "{{ $Fetch.body.users }}",
    ] {
        assert_eq!(
            run(&EditNode::new(), params(path), ctx.clone())
                .await
                .unwrap(),
            expected,
            "{path}"
        );
    }
    // `array_path` is an alias.
    let mut p = params("Fetch.body.users");
    let path = p.as_object_mut().unwrap().remove("target_path").unwrap();
    p["array_path"] = path;
    assert_eq!(run(&EditNode::new(), p, ctx).await.unwrap(), expected);
}

#[tokio::test]
async fn edit_without_target_or_json_starts_from_an_empty_object() {
    let out = run(
        &EditNode::new(),
        json!({"assignments": [{"name": "a.b", "value": 5}]}),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(out, json!({"$json": {"a": {"b": "5"}}}));
}

#[tokio::test]
async fn edit_errors() {
    let node = EditNode::new();
    let ctx = json!({"$json": {"x": "abc"}, "$list": [1, 2], "$n": 3});
    let cases = [
        (json!({}), "parameter `assignments` is required"),
        (
            json!({"assignments": []}),
            "parameter `assignments` must not be empty",
        ),
        (
            json!({"assignments": "x"}),
            "parameter `assignments`: expected an array",
        ),
        (
            json!({"assignments": [{"value": 1}]}),
            "parameter `assignments[0].name` is required",
        ),
        (
            json!({"assignments": [{"name": "a..b", "value": 1}]}),
            "has an empty segment",
        ),
        (
            json!({"assignments": [{"name": "a", "value": 1, "type": "date"}]}),
            "parameter `assignments[0].type`: expected string, number, boolean or json",
        ),
        (
            json!({"assignments": [{"name": "a", "value": "$json.x", "type": "number"}]}),
            "cannot convert `abc` to a number",
        ),
        (
            json!({"assignments": [{"name": "a", "value": "maybe", "type": "boolean"}]}),
            "to a boolean",
        ),
        (
            json!({"assignments": [{"name": "a", "value": "{nope", "type": "json"}]}),
            "is not valid JSON",
        ),
        (
            json!({"assignments": [{"name": "a", "value": "{{ $json.x + }}"}]}),
            "does not parse",
        ),
        (
            json!({"assignments": [{"name": "a", "value": "{{ $json.missing.deep }}"}]}),
            "missing reference `$json.missing.deep`",
        ),
        (
            json!({"mode": "replace", "assignments": [{"name": "a", "value": 1}]}),
            "parameter `mode`: expected assignments or keep_only",
        ),
        (
            json!({"target_path": "$nope.x", "assignments": [{"name": "a", "value": 1}]}),
            "parameter `target_path`: `$nope.x` does not resolve",
        ),
        (
            json!({"target_path": "$list", "assignments": [{"name": "a", "value": 1}]}),
            "every item of an edited array must be an object",
        ),
        (
            json!({"target_path": "$n", "assignments": [{"name": "a", "value": 1}]}),
            "the target must be an object or an array of objects",
        ),
    ];
    for (params, want) in cases {
        let msg = run_err(&node, params.clone(), ctx.clone()).await;
        assert!(msg.contains(want), "{params}: `{msg}` lacks `{want}`");
    }
}

// ---------------------------------------------------------------------------------------------
// filter
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn filter_keeps_matching_items_with_all_and_any() {
    let ctx = json!({"$json": people(), "$input": {"min": 18}});
    let all = run(
        &FilterNode::default(),
        json!({"rules": [
            {"field": "$item.age", "operator": ">=", "value": "$input.min"},
            {"field": "city", "operator": "is equal to", "value": "London"},
        ]}),
        ctx.clone(),
    )
    .await
    .unwrap();
    assert_eq!(all["count"], json!(1));
    assert_eq!(all["original_count"], json!(4));
    assert_eq!(all["$json"][0]["name"], json!("ada"));

    let any = run(
        &FilterNode::default(),
        json!({"match_mode": "any", "rules": [
            {"field": "age", "operator": "<", "value": "{{ $input.min }}"},
            {"field": "$item.city", "operator": "contains", "value": "lond"},
        ]}),
        ctx,
    )
    .await
    .unwrap();
    let names: Vec<&str> = any["$json"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bob", "carol"]);
}

#[tokio::test]
async fn filter_compares_numbers_then_dates_then_text() {
    let ctx = json!({"$Fetch": {"body": {"users": people()}}});
    let keep = |rules: Value| {
        let ctx = ctx.clone();
        async move {
            let out = run(
                &FilterNode::default(),
                json!({"input_array": "$Fetch.body.users", "rules": rules}),
                ctx,
            )
            .await
            .unwrap();
            out["$json"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    // "52" is numeric text; Dan has no age (never matches an ordering).
    assert_eq!(
        keep(json!([{"field": "age", "operator": "gt", "value": 30}])).await,
        ["ada", "carol"]
    );
    // Mixed date layouts compare as dates.
    assert_eq!(
        keep(json!([{"field": "joined", "operator": "<", "value": "2021-06-01T00:00:00Z"}])).await,
        ["ada", "carol"]
    );
    // Case-insensitive text ordering.
    assert_eq!(
        keep(json!([{"field": "name", "operator": ">=", "value": "C"}])).await,
        ["carol", "Dan"]
    );
    // The input path repeated as a field prefix is stripped (Rune's canvas writes it).
    assert_eq!(
        keep(json!([{"field": "Fetch.body.users[0].name", "operator": "==", "value": "Bob"}]))
            .await,
        ["Bob"]
    );
    // Missing field equals null only.
    assert_eq!(
        keep(json!([{"field": "age", "operator": "==", "value": null}])).await,
        ["Dan"]
    );
}

#[tokio::test]
async fn filter_errors() {
    let node = FilterNode::default();
    let ctx = json!({"$json": people(), "$n": 5});
    let rule = json!({"field": "age", "operator": ">", "value": 1});
    let cases = [
        (json!({}), "parameter `rules` is required"),
        (json!({"rules": []}), "parameter `rules` must not be empty"),
        (
            json!({"rules": [rule], "match_mode": "most"}),
            "parameter `match_mode`: expected all or any",
        ),
        (
            json!({"rules": ["age > 1"]}),
            "parameter `rules[0]`: expected an object",
        ),
        (
            json!({"rules": [{"operator": "=="}]}),
            "parameter `rules[0].field` is required",
        ),
        (
            json!({"rules": [{"field": "age", "operator": "~="}]}),
            "parameter `rules[0].operator`: unknown operator `~=`",
        ),
        (
            json!({"rules": [{"field": "age", "value": "$json.nope"}]}),
            "parameter `rules[0].value`: missing reference",
        ),
        (
            json!({"input_array": "$missing.list", "rules": [rule]}),
            "parameter `input_array`: `$missing.list` does not resolve",
        ),
        (
            json!({"input_array": "$n", "rules": [rule]}),
            "parameter `input_array`: expected an array, found `5`",
        ),
        (
            json!({"input_array": 7, "rules": [rule]}),
            "expected an array",
        ),
    ];
    for (params, want) in cases {
        let msg = run_err(&node, params.clone(), ctx.clone()).await;
        assert!(msg.contains(want), "{params}: `{msg}` lacks `{want}`");
    }
    let msg = run_err(&node, json!({"rules": [rule]}), json!({})).await;
    assert!(msg.contains("no earlier node set `$json`"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// sort
// ---------------------------------------------------------------------------------------------

async fn sorted_names(rules: Value, items: Value) -> Vec<String> {
    let out = run(
        &SortNode::default(),
        json!({"input_array": items, "rules": rules}),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(out["count"], json!(out["$json"].as_array().unwrap().len()));
    out["$json"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn sort_orders_by_type_direction_and_keeps_missing_last() {
    // auto → numeric (the string "52" counts); Dan (missing) last in both directions.
    assert_eq!(
        sorted_names(json!([{"field": "age"}]), people()).await,
        ["Bob", "ada", "carol", "Dan"]
    );
    assert_eq!(
        sorted_names(
            json!([{"field": "$item.age", "direction": "descending"}]),
            people()
        )
        .await,
        ["carol", "ada", "Bob", "Dan"]
    );
    // auto → dates across layouts.
    assert_eq!(
        sorted_names(json!([{"field": "joined", "direction": "asc"}]), people()).await,
        ["carol", "ada", "Dan", "Bob"]
    );
    // text is case-insensitive.
    assert_eq!(
        sorted_names(
            json!([{"field": "name", "type": "text", "direction": "desc"}]),
            people()
        )
        .await,
        ["Dan", "carol", "Bob", "ada"]
    );
    // Multiple keys, stable for ties.
    let items = json!([
        {"name": "a", "g": 2, "v": 1}, {"name": "b", "g": 1, "v": 1}, {"name": "c", "g": 2, "v": 0},
        {"name": "d", "g": 1, "v": 1}, {"name": "e", "g": 2, "v": 1},
    ]);
    assert_eq!(
        sorted_names(
            json!([{"field": "g", "type": "number"}, {"field": "v", "direction": "desc"}]),
            items
        )
        .await,
        ["b", "d", "a", "e", "c"]
    );
}

#[tokio::test]
async fn sort_errors() {
    let node = SortNode::default();
    let ctx = json!({"$json": people()});
    let cases = [
        (json!({}), "parameter `rules` is required"),
        (json!({"rules": []}), "parameter `rules` must not be empty"),
        (
            json!({"rules": [{"direction": "asc"}]}),
            "parameter `rules[0].field` is required",
        ),
        (
            json!({"rules": [{"field": "age", "direction": "up"}]}),
            "parameter `rules[0].direction`: expected asc, desc",
        ),
        (
            json!({"rules": [{"field": "age", "type": "color"}]}),
            "parameter `rules[0].type`: expected auto, text, number or date",
        ),
        (
            json!({"rules": [{"field": "name", "type": "number"}]}),
            "parameter `rules[0]`: item 0 has `ada`, which is not a number",
        ),
        (
            json!({"rules": [{"field": "city", "type": "date"}]}),
            "parameter `rules[0]`: item 0 has `London`, which is not a date",
        ),
        (
            json!({"rules": [{"field": 3}]}),
            "parameter `rules[0].field`: expected a string",
        ),
        (
            json!({"input_array": "{{ $json.nope }}", "rules": [{"field": "a"}]}),
            "does not resolve",
        ),
    ];
    for (params, want) in cases {
        let msg = run_err(&node, params.clone(), ctx.clone()).await;
        assert!(msg.contains(want), "{params}: `{msg}` lacks `{want}`");
    }
}

// ---------------------------------------------------------------------------------------------
// limit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn limit_keeps_the_first_items() {
    let ctx = json!({"$json": [1, 2, 3, 4], "$Prev": {"$json": ["a", "b", "c"], "count": 3}});
    let node = LimitNode::default();
    assert_eq!(
        run(&node, json!({"count": 2}), ctx.clone()).await.unwrap(),
        json!({"$json": [1, 2], "count": 2, "original_count": 4})
    );
    assert_eq!(
        run(&node, json!({"count": "3"}), ctx.clone())
            .await
            .unwrap()["$json"],
        json!([1, 2, 3])
    );
    assert_eq!(
        run(&node, json!({"count": 10.0}), ctx.clone())
            .await
            .unwrap()["count"],
        json!(4)
    );
    assert_eq!(
        run(&node, json!({"count": 0}), ctx.clone()).await.unwrap()["$json"],
        json!([])
    );
    // A list node's whole output works as input (its `$json`).
    assert_eq!(
        run(&node, json!({"count": 1, "input_array": "$Prev"}), ctx)
            .await
            .unwrap()["$json"],
        json!(["a"])
    );
}

#[tokio::test]
async fn limit_errors() {
    let node = LimitNode::default();
    let ctx = json!({"$json": [1, 2, 3]});
    let cases = [
        (json!({}), "parameter `count` is required"),
        (
            json!({"count": -1}),
            "parameter `count`: expected an integer >= 0, found `-1`",
        ),
        (json!({"count": 1.5}), "found `1.5`"),
        (json!({"count": "lots"}), "found `lots`"),
        (json!({"count": true}), "found `true`"),
        (
            json!({"count": 1, "input_array": {"a": 1}}),
            "parameter `input_array`: expected an array",
        ),
    ];
    for (params, want) in cases {
        let msg = run_err(&node, params.clone(), ctx.clone()).await;
        assert!(msg.contains(want), "{params}: `{msg}` lacks `{want}`");
    }
}

// ---------------------------------------------------------------------------------------------
// End to end: filter → sort → limit → edit through the embedded runtime
// ---------------------------------------------------------------------------------------------

fn pipeline() -> Value {
    json!({
        "name": "data-shaping",
        "nodes": [
            {"id": "start", "name": "Start", "type": "ManualTrigger", "trigger": true, "parameters": {}},
            {"id": "adults", "name": "Adults", "type": "filter", "parameters": {
                "input_array": "$input.people",
                "rules": [{"field": "$item.age", "operator": ">=", "value": "$input.min_age"}]
            }},
            {"id": "oldest", "name": "Oldest", "type": "sort", "parameters": {
                "rules": [{"field": "$item.age", "direction": "desc", "type": "number"}]
            }},
            {"id": "top", "name": "Top", "type": "limit", "parameters": {"count": "{{ $input.top }}"}},
            {"id": "label", "name": "Label", "type": "set", "parameters": {
                "mode": "keep_only",
                "assignments": [
                    {"name": "who", "value": "{{ $json.name + ' (' + $json.age + ')' }}"},
                    {"name": "senior", "value": "{{ $json.age >= 50 }}", "type": "boolean"},
                    {"name": "of", "value": "{{ $Adults.count }}", "type": "number"}
                ]
            }},
            {"id": "say", "name": "Say", "type": "log", "parameters": {"message": "{{json $json}}"}}
        ],
        "edges": [
            {"id": "e0", "src": "start", "dst": "adults"},
            {"id": "e1", "src": "adults", "dst": "oldest"},
            {"id": "e2", "src": "oldest", "dst": "top"},
            {"id": "e3", "src": "top", "dst": "label"},
            {"id": "e4", "src": "label", "dst": "say"}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_sort_limit_edit_chain_via_json_in_the_embedded_runtime() {
    let wf = Arc::new(
        CompiledWorkflow::compile(&pipeline(), &baton_nodes::registry()).expect("valid workflow"),
    );
    let rt = EmbeddedRuntime::start(baton_nodes::registry(), 4);
    let input = json!({"min_age": 18, "top": 2, "people": people()});
    let c = tokio::time::timeout(Duration::from_secs(30), rt.run(wf, "data-1", input))
        .await
        .expect("bounded")
        .expect("runs");
    assert_eq!(
        c.status,
        ExecutionStatus::Completed,
        "{:?}",
        c.failure_reason
    );
    let ctx = &c.final_context;
    assert_eq!(ctx["$Adults"]["count"], json!(2));
    assert_eq!(ctx["$Adults"]["original_count"], json!(4));
    assert_eq!(ctx["$Oldest"]["$json"][0]["name"], json!("carol"));
    assert_eq!(ctx["$Top"]["count"], json!(2));
    let expected = json!([
        {"who": "carol (52)", "senior": true, "of": 2},
        {"who": "ada (36)", "senior": false, "of": 2},
    ]);
    assert_eq!(ctx["$Label"]["$json"], expected);
    assert_eq!(ctx["$json"], expected);
    assert_eq!(ctx["$Say"]["message"], json!(expected.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_data_node_fails_the_execution_with_its_message() {
    let mut doc = pipeline();
    // A literal -2 is rejected at submit time; a template resolving to it fails at run time.
    doc["nodes"][3]["parameters"]["count"] = json!(-2);
    let invalid = CompiledWorkflow::compile(&doc, &baton_nodes::registry()).unwrap_err();
    assert_eq!(invalid.0[0].path, "$.nodes[3].parameters.count");
    doc["nodes"][3]["parameters"]["count"] = json!("{{ $input.top }}");
    let wf = Arc::new(
        CompiledWorkflow::compile(&doc, &baton_nodes::registry()).expect("valid workflow"),
    );
    let rt = EmbeddedRuntime::start(baton_nodes::registry(), 4);
    let input = json!({"min_age": 18, "top": -2, "people": people()});
    let c = tokio::time::timeout(Duration::from_secs(30), rt.run(wf, "data-2", input))
        .await
        .expect("bounded")
        .expect("runs");
    assert_ne!(c.status, ExecutionStatus::Completed);
    let reason = c.failure_reason.unwrap_or_default();
    assert!(reason.contains("parameter `count`"), "{reason}");
}

#[test]
fn validation_reports_missing_required_parameters_and_references_to_non_ancestors() {
    let mut doc = pipeline();
    doc["nodes"][1]["parameters"]
        .as_object_mut()
        .unwrap()
        .remove("rules");
    doc["nodes"][2]["parameters"]["rules"][0]["field"] = json!("$Label.x");
    let err = CompiledWorkflow::compile(&doc, &baton_nodes::registry())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("parameters.rules") && err.contains("is required by `filter`"),
        "{err}"
    );
    assert!(err.contains("references `$Label`"), "{err}");
}
