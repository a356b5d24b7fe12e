//! Split and aggregator semantics through the embedded runtime: item order, output objects,
//! nesting, branches that end early or fail, empty splits, lineage in statuses.

mod support;

use baton_core::message::NodeStatus;
use serde_json::{Value, json};
use support::*;

fn aggregated(c: &baton_core::message::Completion, name: &str) -> Vec<Value> {
    out(c, name)["aggregated"]
        .as_array()
        .unwrap_or_else(|| panic!("`${name}.aggregated` is not an array"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aggregator_keeps_item_order_when_items_finish_out_of_order() {
    let server = Server::start().await;
    let doc = workflow(
        vec![
            split("Items", "{{ $input.items }}"),
            http("Fetch", &format!("{}/gate/{{{{$item}}}}", server.base)),
            aggregator("Collect"),
        ],
        vec![edge("Items", "Fetch"), edge("Fetch", "Collect")],
    );
    let h = Harness::new();
    let run = {
        let rt = h.runtime.clone();
        let wf = compile(&doc);
        tokio::spawn(async move { rt.run(wf, "x", json!({"items": ["a", "b", "c"]})).await })
    };
    for key in ["a", "b", "c"] {
        server.until_hits(key, 1).await;
    }
    // Finish the items in reverse order, each one only after the previous has been recorded.
    for (key, index) in [("c", 2), ("b", 1), ("a", 0)] {
        server.open(key);
        h.until(|e| {
            matches!(e, baton_memory::Event::Status(s)
                if s.node_id == "Fetch" && s.status == NodeStatus::Success && s.item_index == Some(index))
        })
        .await;
    }
    let c = tokio::time::timeout(BOUND, run)
        .await
        .expect("bounded")
        .unwrap()
        .unwrap();
    h.completion_event("x").await;
    assert_completed(&c);
    let items = aggregated(&c, "Collect");
    assert_eq!(items.len(), 3);
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        assert!(
            items[i].is_object(),
            "aggregated[{i}] is the output object, not a string: {}",
            items[i]
        );
        assert_eq!(items[i]["status"], json!(200));
        assert_eq!(items[i]["body"]["key"], json!(key), "aggregated[{i}]");
    }
    assert_eq!(out(&c, "Collect")["count"], json!(3));
    assert_eq!(out(&c, "Collect")["skipped"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aggregator_keeps_item_order_with_waits_of_different_lengths() {
    let doc = workflow(
        vec![
            split("Items", "$input.items"),
            wait_ms("Pause", json!("$item.ms")),
            log("Tag", "item $item.name"),
            aggregator("Collect"),
        ],
        vec![
            edge("Items", "Pause"),
            edge("Pause", "Tag"),
            edge("Tag", "Collect"),
        ],
    );
    let items = json!([{"name": "slow", "ms": 400}, {"name": "instant", "ms": 0}, {"name": "middle", "ms": 150}]);
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"items": items})).await;
    assert_completed(&c);
    let got: Vec<Value> = aggregated(&c, "Collect")
        .iter()
        .map(|v| v["message"].clone())
        .collect();
    assert_eq!(
        got,
        vec![
            json!("item slow"),
            json!("item instant"),
            json!("item middle")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aggregated_entries_are_the_output_of_the_last_node_before_the_aggregator() {
    let doc = workflow(
        vec![
            split("Items", "$input.items"),
            log("First", "first $item"),
            log("Last", "last $item"),
            aggregator("Collect"),
        ],
        vec![
            edge("Items", "First"),
            edge("First", "Last"),
            edge("Last", "Collect"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"items": [1, 2]})).await;
    assert_completed(&c);
    let items = aggregated(&c, "Collect");
    assert_eq!(items.len(), 2);
    for (i, v) in items.iter().enumerate() {
        assert!(v.is_object(), "{v}");
        assert_eq!(v["message"], json!(format!("last {}", i + 1)));
        assert_eq!(v["level"], json!("info"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nested_split_aggregates_inner_results_into_the_outer_in_order() {
    let doc = workflow(
        vec![
            split("Groups", "{{ $input.groups }}"),
            split("Members", "$item"),
            log("Each", "v=$item"),
            aggregator("PerGroup"),
            aggregator("All"),
            log("Report", "{{$All.count}} groups"),
        ],
        vec![
            edge("Groups", "Members"),
            edge("Members", "Each"),
            edge("Each", "PerGroup"),
            edge("PerGroup", "All"),
            edge("All", "Report"),
        ],
    );
    let h = Harness::new();
    let c = h
        .run(&doc, "x", json!({"groups": [[1, 2], [3], [4, 5, 6]]}))
        .await;
    assert_completed(&c);
    let groups = aggregated(&c, "All");
    let messages: Vec<Vec<Value>> = groups
        .iter()
        .map(|g| {
            assert!(
                g.is_object(),
                "outer entries are the inner aggregator's output object: {g}"
            );
            g["aggregated"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["message"].clone())
                .collect()
        })
        .collect();
    assert_eq!(
        messages,
        vec![
            vec![json!("v=1"), json!("v=2")],
            vec![json!("v=3")],
            vec![json!("v=4"), json!("v=5"), json!("v=6")],
        ]
    );
    assert_eq!(groups[2]["count"], json!(3));
    assert_eq!(out(&c, "Report")["message"], json!("3 groups"));
    assert_eq!(h.runs("x", "Report"), 1);
    assert_eq!(h.runs("x", "Each"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn branch_ending_early_inside_a_split_is_null_and_listed_in_skipped() {
    let doc = workflow(
        vec![
            split("Items", "$input.items"),
            conditional("Keep", "$item.keep == true"),
            log("Kept", "kept $item.n"),
            log("Dropped", "dropped $item.n"),
            aggregator("Collect"),
            log("Report", "done"),
        ],
        vec![
            edge("Items", "Keep"),
            edge_on("Keep", "Kept", "true"),
            edge_on("Keep", "Dropped", "false"),
            edge("Kept", "Collect"),
            edge("Collect", "Report"),
        ],
    );
    let items = json!([{"n": 1, "keep": true}, {"n": 2, "keep": false}, {"n": 3, "keep": true}]);
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"items": items})).await;
    assert_completed(&c);
    let got = aggregated(&c, "Collect");
    assert_eq!(got[0]["message"], json!("kept 1"));
    assert_eq!(got[1], Value::Null);
    assert_eq!(got[2]["message"], json!("kept 3"));
    assert_eq!(out(&c, "Collect")["skipped"], json!([1]));
    assert_eq!(out(&c, "Collect")["count"], json!(3));
    assert_eq!(h.runs("x", "Dropped"), 1);
    assert_eq!(h.runs("x", "Report"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn item_failing_onto_an_error_branch_is_null_and_listed_in_skipped() {
    let server = Server::start().await;
    let doc = workflow(
        vec![
            split("Codes", "$input.codes"),
            http_raising("Call", &format!("{}/code/$item", server.base)),
            log("OnError", "item failed: {{$error.code}}"),
            aggregator("Collect"),
        ],
        vec![
            edge("Codes", "Call"),
            edge("Call", "Collect"),
            edge_on("Call", "OnError", "error"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"codes": [200, 500, 201]})).await;
    assert_completed(&c);
    let got = aggregated(&c, "Collect");
    assert_eq!(got[0]["status"], json!(200));
    assert_eq!(got[1], Value::Null);
    assert_eq!(got[2]["status"], json!(201));
    assert_eq!(out(&c, "Collect")["skipped"], json!([1]));
    let handled: Vec<_> = h
        .statuses_of("x", "OnError")
        .into_iter()
        .filter(|s| s.status == NodeStatus::Success)
        .collect();
    assert_eq!(handled.len(), 1);
    assert_eq!(handled[0].item_index, Some(1));
    assert_eq!(
        handled[0].output.as_ref().unwrap()["message"],
        json!("item failed: HTTP_STATUS")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn empty_split_aggregates_to_an_empty_list() {
    let doc = workflow(
        vec![
            split("Items", "$input.items"),
            log("Each", "$item"),
            aggregator("Collect"),
            log("Report", "{{$Collect.count}} items"),
        ],
        vec![
            edge("Items", "Each"),
            edge("Each", "Collect"),
            edge("Collect", "Report"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"items": []})).await;
    assert_completed(&c);
    assert_eq!(out(&c, "Collect")["aggregated"], json!([]));
    assert_eq!(out(&c, "Collect")["count"], json!(0));
    assert!(!h.ran("x", "Each"));
    assert_eq!(out(&c, "Report")["message"], json!("0 items"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn empty_inner_split_inside_an_outer_split_aggregates_to_an_empty_list() {
    let doc = workflow(
        vec![
            split("Groups", "$input.groups"),
            split("Members", "$item"),
            log("Each", "v=$item"),
            aggregator("PerGroup"),
            aggregator("All"),
        ],
        vec![
            edge("Groups", "Members"),
            edge("Members", "Each"),
            edge("Each", "PerGroup"),
            edge("PerGroup", "All"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"groups": [[1], [], [2]]})).await;
    assert_completed(&c);
    let groups = aggregated(&c, "All");
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[0]["aggregated"][0]["message"], json!("v=1"));
    assert_eq!(groups[1]["aggregated"], json!([]));
    assert_eq!(groups[2]["aggregated"][0]["message"], json!("v=2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_on_an_untaken_branch_skips_its_whole_scope_and_a_later_merge_releases() {
    let doc = workflow(
        vec![
            conditional("Check", "$input.go == true"),
            split("Items", "$input.items"),
            log("Each", "$item"),
            aggregator("Collect"),
            log("Else", "else"),
            merge("Join", "wait_for_all"),
            log("After", "after"),
        ],
        vec![
            edge_on("Check", "Items", "true"),
            edge("Items", "Each"),
            edge("Each", "Collect"),
            edge("Collect", "Join"),
            edge_on("Check", "Else", "false"),
            edge("Else", "Join"),
            edge("Join", "After"),
        ],
    );
    let h = Harness::new();
    let c = h
        .run(&doc, "x", json!({"go": false, "items": [1, 2]}))
        .await;
    assert_completed(&c);
    for n in ["Items", "Each", "Collect"] {
        assert!(!h.ran("x", n), "`{n}` is on the untaken branch");
    }
    assert_eq!(out(&c, "Join")["arrived"], json!(["Else"]));
    assert_eq!(h.runs("x", "After"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_statuses_carry_rune_lineage_fields() {
    let doc = workflow(
        vec![
            split("Items", "$input.items"),
            log("Each", "$item"),
            aggregator("Collect"),
        ],
        vec![edge("Items", "Each"), edge("Each", "Collect")],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"items": ["p", "q"]})).await;
    assert_completed(&c);
    let each = h.statuses_of("x", "Each");
    assert_eq!(each.len(), 4, "running + success per item");
    let mut branches = Vec::new();
    for s in &each {
        assert_eq!(s.split_node_id.as_deref(), Some("Items"));
        assert_eq!(s.total_items, Some(2));
        let i = s.item_index.expect("item_index inside a split");
        let b = s.branch_id.clone().expect("branch_id inside a split");
        assert!(!b.is_empty());
        assert_eq!(s.lineage_stack.len(), 1);
        assert_eq!(s.lineage_stack[0].item_index, i);
        assert_eq!(s.lineage_stack[0].branch_id, b);
        branches.push((i, b));
    }
    branches.sort();
    branches.dedup();
    assert_eq!(branches.len(), 2, "one branch id per item: {branches:?}");
    assert_ne!(branches[0].1, branches[1].1);
    // Outside the split, no lineage.
    for s in h.statuses_of("x", "Items") {
        assert!(s.split_node_id.is_none() && s.lineage_stack.is_empty());
    }
    let released = h
        .statuses_of("x", "Collect")
        .into_iter()
        .find(|s| s.status == NodeStatus::Success)
        .unwrap();
    assert!(
        released.split_node_id.is_none(),
        "the released aggregator runs at the split's parent level"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nested_split_statuses_carry_the_full_lineage_stack() {
    let doc = workflow(
        vec![
            split("Outer", "$input.groups"),
            split("Inner", "$item"),
            log("Each", "v=$item"),
            aggregator("PerGroup"),
            aggregator("All"),
        ],
        vec![
            edge("Outer", "Inner"),
            edge("Inner", "Each"),
            edge("Each", "PerGroup"),
            edge("PerGroup", "All"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"groups": [[1, 2], [3]]})).await;
    assert_completed(&c);
    let each: Vec<_> = h
        .statuses_of("x", "Each")
        .into_iter()
        .filter(|s| s.status == NodeStatus::Success)
        .collect();
    assert_eq!(each.len(), 3);
    for s in &each {
        assert_eq!(s.lineage_stack.len(), 2);
        assert_eq!(s.lineage_stack[0].split_node_id, "Outer");
        assert_eq!(s.lineage_stack[1].split_node_id, "Inner");
        assert_eq!(
            s.split_node_id.as_deref(),
            Some("Inner"),
            "top-level fields come from the innermost frame"
        );
        let outer = s.lineage_stack[0].item_index;
        let inner = s.item_index.unwrap();
        let expected = [[1, 2].as_slice(), [3].as_slice()][outer][inner];
        assert_eq!(
            s.output.as_ref().unwrap()["message"],
            json!(format!("v={expected}"))
        );
        assert_eq!(s.total_items, Some([2, 1][outer]));
    }
    for s in h
        .statuses_of("x", "PerGroup")
        .into_iter()
        .filter(|s| s.status == NodeStatus::Success)
    {
        assert_eq!(
            s.split_node_id.as_deref(),
            Some("Outer"),
            "the inner aggregator releases in the outer item's scope"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skipped_inner_split_counts_its_outer_item_as_skipped() {
    let doc = workflow(
        vec![
            split("Groups", "$input.groups"),
            conditional("NonEmpty", "$item.active == true"),
            split("Members", "$item.members"),
            log("Each", "v=$item"),
            aggregator("PerGroup"),
            aggregator("All"),
        ],
        vec![
            edge("Groups", "NonEmpty"),
            edge_on("NonEmpty", "Members", "true"),
            edge("Members", "Each"),
            edge("Each", "PerGroup"),
            edge("PerGroup", "All"),
        ],
    );
    let groups = json!([
        {"active": true, "members": [1, 2]},
        {"active": false, "members": [3]},
        {"active": true, "members": [4]}
    ]);
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"groups": groups})).await;
    assert_completed(&c);
    let all = aggregated(&c, "All");
    assert_eq!(all[0]["aggregated"][1]["message"], json!("v=2"));
    assert_eq!(all[1], Value::Null);
    assert_eq!(all[2]["aggregated"][0]["message"], json!("v=4"));
    assert_eq!(out(&c, "All")["skipped"], json!([1]));
    assert_eq!(h.runs("x", "Each"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_failing_under_ignore_still_releases_its_aggregator() {
    // `input_array` resolves to a string that is not an array: the split fails. Under `ignore`
    // no item ran, so the aggregator closing the split must still release (with nothing).
    let items = with(
        split("Items", "$input.items"),
        "error",
        json!({"type": "ignore"}),
    );
    let doc = workflow(
        vec![
            items,
            log("Each", "$item"),
            aggregator("Collect"),
            log("Report", "{{$Collect.count}} items"),
        ],
        vec![
            edge("Items", "Each"),
            edge("Each", "Collect"),
            edge("Collect", "Report"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"items": "not an array"})).await;
    assert_completed(&c);
    assert_eq!(
        h.sequence("x", "Items"),
        vec![NodeStatus::Running, NodeStatus::Failed]
    );
    assert!(
        !h.ran("x", "Each"),
        "no item exists, so the per-item node must not run"
    );
    assert_eq!(out(&c, "Collect")["aggregated"], json!([]));
    assert_eq!(h.runs("x", "Report"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_failing_onto_an_error_branch_skips_its_scope() {
    let items = split("Items", "$input.items");
    let doc = workflow(
        vec![
            items,
            log("Each", "$item"),
            aggregator("Collect"),
            log("Report", "report"),
            log("Handle", "{{$error.code}}"),
        ],
        vec![
            edge("Items", "Each"),
            edge("Each", "Collect"),
            edge("Collect", "Report"),
            edge_on("Items", "Handle", "error"),
        ],
    );
    let h = Harness::new();
    let c = h.run(&doc, "x", json!({"items": "not an array"})).await;
    assert_completed(&c);
    assert_eq!(out(&c, "Handle")["message"], json!("INVALID_PARAMETER"));
    for n in ["Each", "Collect", "Report"] {
        assert!(!h.ran("x", n), "`{n}` is inside or after the failed split");
    }
}

/// A split on the branch a conditional does not take is skipped as a whole. Its error edge
/// leads out of the split's scope (to a node that never reaches the split's aggregator): that
/// edge must carry the skip too, or every join after it waits forever for an arrival that never
/// comes, and the merge where the taken branch rejoins never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_skipped_split_skips_its_edges_that_leave_the_scope_so_later_joins_release() {
    let doc = workflow(
        vec![
            conditional("Check", "$input.go"),
            split("Items", "$input.items"),
            log("Work", "item $item"),
            aggregator("Collect"),
            log("Handle", "split failed"),
            log("After", "after the split"),
            log("Other", "not taken: the split"),
            merge("Done", "wait_for_all"),
        ],
        vec![
            edge_on("Check", "Items", "true"),
            edge_on("Check", "Other", "false"),
            edge("Items", "Work"),
            edge("Work", "Collect"),
            edge_on("Items", "Handle", "error"),
            edge("Collect", "After"),
            edge("Handle", "After"),
            edge("After", "Done"),
            edge("Other", "Done"),
        ],
    );
    let h = Harness::new();
    let c = h
        .run(&doc, "x", json!({"go": false, "items": [1, 2]}))
        .await;
    assert_completed(&c);
    for skipped in ["Items", "Work", "Collect", "Handle", "After"] {
        assert!(!h.ran("x", skipped), "`{skipped}` is on the untaken branch");
    }
    assert!(
        h.ran("x", "Done"),
        "the merge after the skipped split must release with the taken branch's arrival"
    );
    assert_eq!(out(&c, "Done")["arrived"], json!(["Other"]));
    assert_eq!(out(&c, "Done")["skipped"], json!(["After"]));
}

/// Issue 14, item 7: an aggregator straight after its split (a branch with no node) gives each
/// item, in order, not `null`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aggregator_straight_after_a_split_aggregates_the_items_themselves() {
    let doc = workflow(
        vec![split("Items", "$input.items"), aggregator("Collect")],
        vec![edge("Items", "Collect")],
    );
    let h = Harness::new();
    let c = h
        .run(
            &doc,
            "agg-direct",
            json!({"items": ["item1", "item2", "item3"]}),
        )
        .await;
    assert_completed(&c);
    assert_eq!(
        aggregated(&c, "Collect"),
        vec![json!("item1"), json!("item2"), json!("item3")]
    );
    assert_eq!(out(&c, "Collect")["skipped"], json!([]));
}
