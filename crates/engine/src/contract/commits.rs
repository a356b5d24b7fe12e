//! Store contract: Committing hops: once per hop id, token counts, replays, concurrency.

use std::sync::Arc;

use serde_json::{Value, json};

use baton_core::message::HopMessage;

use crate::ports::{CommitOutcome, CommittedHop, ContextWrite, Handoff, Lifecycle, StatePorts};

use super::support::*;

/// A hop that committed is recognised by `begin_hop` (a redelivery), with the messages it
/// handed on when the store records them, so the node is not run again.
pub async fn committed_hop_replays(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    let chain = strings(&[""]);
    let before = store.begin_hop(&id, "h1", &chain, &[], None).await.unwrap();
    assert_eq!(before.committed, None, "not committed yet");
    let mut first = commit("h1", &[("", "a", json!(1))], 2);
    let handoff = handoff_to(&id, &["b", "c"]);
    first.handoff = Some(handoff.clone());
    store.commit(&id, first).await.unwrap();
    let again = store
        .begin_hop(&id, "h1", &chain, &strings(&["a"]), None)
        .await
        .unwrap();
    assert_eq!(again.lifecycle, Lifecycle::Running);
    if store.replays_hops() {
        assert_eq!(
            again.committed,
            Some(CommittedHop {
                handoff: Some(handoff),
                pending: 2
            }),
            "a committed hop is recognised with what it handed on"
        );
    } else {
        assert_eq!(
            again.committed, None,
            "a store that never replays says nothing"
        );
    }
    let other = store
        .begin_hop(&id, "h2", &chain, &strings(&["a"]), None)
        .await
        .unwrap();
    assert_eq!(other.committed, None, "another hop is not committed");
    assert_eq!(Value::Object(other.context), json!({"a": 1}));
}
/// `commit` applies once per hop id (a replay is `Duplicate` and changes nothing) and keeps the
/// token count: `pending += tokens_out − 1`.
pub async fn commit_once_and_tokens(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    let top = strings(&[""]);
    let first = commit("trigger", &[("", "trigger", json!({"ok": 1}))], 3);
    assert_eq!(
        store.commit(&id, first.clone()).await.unwrap(),
        CommitOutcome::Applied { pending: 3 }
    );

    let mut replay = first.clone();
    replay.outputs = vec![ContextWrite::new("", "trigger", json!("overwritten?"))];
    replay.tokens_out = 10;
    assert!(
        matches!(
            store.commit(&id, replay).await.unwrap(),
            CommitOutcome::Duplicate { .. }
        ),
        "replay"
    );
    assert!(
        matches!(
            store.commit(&id, first).await.unwrap(),
            CommitOutcome::Duplicate { .. }
        ),
        "identical replay"
    );
    let got = store.read(&id, &top, &strings(&["trigger"])).await.unwrap();
    assert_eq!(got["trigger"], json!({"ok": 1}), "a replay writes nothing");

    // A later hop overwrites a key (last writer wins within a scope).
    assert_eq!(
        store
            .commit(&id, commit("b1", &[("", "trigger", json!(2))], 1))
            .await
            .unwrap(),
        CommitOutcome::Applied { pending: 3 }
    );
    assert_eq!(
        store.read(&id, &top, &strings(&["trigger"])).await.unwrap()["trigger"],
        json!(2)
    );
    assert_eq!(
        store.commit(&id, commit("b2", &[], 0)).await.unwrap(),
        CommitOutcome::Applied { pending: 2 }
    );
    assert_eq!(
        store.commit(&id, commit("b3", &[], 0)).await.unwrap(),
        CommitOutcome::Applied { pending: 1 }
    );
    assert!(matches!(
        store.commit(&id, commit("b2", &[], 0)).await.unwrap(),
        CommitOutcome::Duplicate { .. }
    ));
    assert_eq!(
        store.commit(&id, commit("b4", &[], 0)).await.unwrap(),
        CommitOutcome::Applied { pending: 0 }
    );
    assert_eq!(
        store.commit(&id, commit("b4", &[], 0)).await.unwrap(),
        CommitOutcome::Duplicate { pending: 0 },
        "a replay reports the pending count so a redelivery can finish the execution"
    );
}
/// Many hops committing at once (each also redelivered): every hop applies once, and exactly
/// one sees `pending: 0`.
pub async fn concurrent_commits(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), RACERS as i64).await;
    let answers = race_hops(&store, &id, |store, id, c| async move {
        store.commit(&id, c).await.unwrap()
    })
    .await;
    let mut applied = 0;
    let mut zero = 0;
    for answer in answers {
        match answer {
            CommitOutcome::Applied { pending } => {
                applied += 1;
                assert!((0..RACERS as i64).contains(&pending), "pending {pending}");
                zero += usize::from(pending == 0);
            }
            CommitOutcome::Duplicate { .. } => {}
        }
    }
    assert_eq!(
        (applied, zero),
        (RACERS, 1),
        "each hop applies once; one commit reaches zero"
    );
    let ctx = store.final_context(&id).await.unwrap().context;
    assert_eq!(ctx.len(), RACERS, "every hop's output is stored");
}

/// A handoff of one message to each of `nodes` now and one to the first of them later.
pub(super) fn handoff_to(execution_id: &str, nodes: &[&str]) -> Handoff {
    let message = |node: &str| -> HopMessage {
        serde_json::from_value(json!({
            "execution_id": execution_id, "workflow_id": "w", "workflow_ref": "r",
            "node_id": node, "kind": "run"
        }))
        .expect("hop message")
    };
    Handoff {
        now: nodes.iter().map(|n| message(n)).collect(),
        later: nodes.iter().take(1).map(|n| (1_000, message(n))).collect(),
    }
}
