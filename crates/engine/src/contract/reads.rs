//! Store contract: Reading the context: scope chains, value round trips, `begin_hop`.

use std::sync::Arc;

use baton_core::message::ExecutionStatus;
use serde_json::{Map, Value, json};

use crate::ports::{HopStart, Lifecycle, StatePorts};

use super::support::*;

/// `read` takes each key from the innermost scope of the chain that has it; `read_exact`
/// reads exact `(scope, key)` entries.
pub async fn read_scope_chain(store: Arc<dyn StatePorts>) {
    let id = started(
        &store,
        json!({"$input": {"items": [1, 2]}, "shared": "top"}),
        1,
    )
    .await;
    let outer = "split-a#1";
    let inner = "split-a#1/split-b#0";
    let outputs = [
        (outer, "$item", json!({"i": 1})),
        (outer, "shared", json!("outer")),
        (inner, "$item", json!({"j": 0})),
        (inner, "only_inner", json!(true)),
        ("split-a#0", "$item", json!("other item")),
    ];
    store
        .commit(&id, commit("seed-scopes", &outputs, 1))
        .await
        .unwrap();

    let chain = strings(&[inner, outer, ""]);
    let got = store
        .read(
            &id,
            &chain,
            &strings(&["$item", "shared", "only_inner", "$input", "missing"]),
        )
        .await
        .unwrap();
    let want = json!({
        "$item": {"j": 0}, "shared": "outer", "only_inner": true, "$input": {"items": [1, 2]}
    });
    assert_eq!(
        Value::Object(got),
        want,
        "innermost scope wins; missing keys are absent"
    );

    let got = store
        .read(
            &id,
            &strings(&[outer, ""]),
            &strings(&["$item", "shared", "only_inner"]),
        )
        .await
        .unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"$item": {"i": 1}, "shared": "outer"}),
        "outer chain"
    );
    let got = store
        .read(&id, &strings(&[""]), &strings(&["$item", "shared"]))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"shared": "top"}),
        "top-level chain"
    );
    assert!(
        store.read(&id, &chain, &[]).await.unwrap().is_empty(),
        "no keys, nothing read"
    );

    let exact = store
        .read_exact(
            &id,
            &[
                at(outer, "$item"),
                at(inner, "shared"),
                at("", "shared"),
                at("split-a#0", "$item"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        exact,
        vec![
            Some(json!({"i": 1})),
            None,
            Some(json!("top")),
            Some(json!("other item"))
        ]
    );
    assert!(store.read_exact(&id, &[]).await.unwrap().is_empty());
}
/// JSON values come back as they went in: every type, object key order, unicode, odd keys.
pub async fn values_round_trip(store: Arc<dyn StatePorts>) {
    let odd_keys = ["a:b", "{tag}", "sp ace", "ünï", "$", "x\u{1f}y", ""];
    let values = vec![
        json!(null),
        json!(true),
        json!(-17),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5e-7),
        json!("text with \"quotes\", \n newline, \u{1f} unit separator and emoji 🦀"),
        json!([]),
        json!({}),
        json!({"z": 1, "a": 2, "m": {"y": [1, {"b": 2, "a": 1}], "x": null}}),
    ];
    let mut seed = Map::new();
    for (i, v) in values.iter().enumerate() {
        seed.insert(format!("seed{i}"), v.clone());
    }
    let id = started(&store, Value::Object(seed), 1).await;
    let outputs: Vec<(&str, &str, Value)> = odd_keys
        .iter()
        .zip(values.iter().cycle())
        .map(|(k, v)| ("s\u{1f}x#0", *k, v.clone()))
        .collect();
    store.commit(&id, commit("odd", &outputs, 1)).await.unwrap();

    let keys: Vec<String> = (0..values.len()).map(|i| format!("seed{i}")).collect();
    let got = store.read(&id, &strings(&[""]), &keys).await.unwrap();
    for (i, v) in values.iter().enumerate() {
        let g = &got[&format!("seed{i}")];
        assert_eq!(g, v, "value {i}");
        assert_eq!(
            g.to_string(),
            v.to_string(),
            "value {i} keeps its object key order"
        );
    }
    let got = store
        .read(&id, &strings(&["s\u{1f}x#0"]), &strings(&odd_keys))
        .await
        .unwrap();
    assert_eq!(
        got.len(),
        odd_keys.len(),
        "odd context keys and scopes: {got:?}"
    );
    for (k, v) in odd_keys.iter().zip(values.iter().cycle()) {
        assert_eq!(&got[*k], v, "key {k:?}");
    }
}
/// `begin_hop`: the lifecycle and only the requested keys (nothing once finished).
pub async fn begin_hop_reads(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({"a": 1, "b": "x".repeat(10_000)}), 1).await;
    store
        .commit(
            &id,
            commit("h1", &[("s#0", "a", json!(2)), ("", "c", json!(3))], 1),
        )
        .await
        .unwrap();
    let chain = strings(&["s#0", ""]);
    let HopStart {
        lifecycle: life,
        context: ctx,
        ..
    } = store
        .begin_hop(&id, "next", &chain, &strings(&["a", "c", "nope"]), None)
        .await
        .unwrap();
    assert_eq!(life, Lifecycle::Running);
    assert_eq!(
        Value::Object(ctx),
        json!({"a": 2, "c": 3}),
        "only the requested keys, innermost first"
    );
    let ctx = store
        .begin_hop(&id, "next", &chain, &[], None)
        .await
        .unwrap()
        .context;
    assert!(ctx.is_empty(), "no keys requested, none read");

    store
        .finish(&id, ExecutionStatus::Halted, Some("stop".into()))
        .await
        .unwrap();
    let HopStart {
        lifecycle: life,
        context: ctx,
        ..
    } = store
        .begin_hop(&id, "next", &chain, &strings(&["a"]), None)
        .await
        .unwrap();
    assert_eq!(
        life,
        Lifecycle::Finished {
            status: ExecutionStatus::Halted,
            reason: Some("stop".into()),
            completion_sent: false
        }
    );
    assert!(
        ctx.is_empty(),
        "a finished execution reads nothing in begin_hop"
    );
}
