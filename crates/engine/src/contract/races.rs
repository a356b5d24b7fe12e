//! Store contract: what a race that cancels its losers needs of the store. The release's
//! commit writes a marker per losing node in the merge's scope; a loser's later hop of any
//! kind reads its marker through `begin_hop` from the same or a nested scope (never from a
//! sibling scope), and its drop commit (no successors) releases its token, so the execution's
//! pending count reaches zero. The node-cancel broadcast is accepted.

use std::sync::Arc;

use baton_core::wire::NodeCancel;
use serde_json::json;

use crate::ports::{CommitOutcome, StatePorts};

use super::support::*;

pub async fn race_markers_reach_the_losers_hops(store: Arc<dyn StatePorts>) {
    // Three tokens: the merge's releasing arrival and two losers' messages in flight.
    let id = started(&store, json!({}), 3).await;
    let marker = "$cancelled:slow";
    let release = commit(
        "first|s#1|Run|fast->first|1",
        &[
            ("s#1", "$First", json!({"_merge_winner": "Fast"})),
            ("s#1", marker, json!({"merge": "first", "winner": "Fast"})),
        ],
        0,
    );
    assert_eq!(
        store.commit(&id, release).await.unwrap(),
        CommitOutcome::Applied { pending: 2 },
        "the release ends its own token"
    );
    let keys = strings(&[marker]);
    for (hop, chain) in [
        ("slow|s#1|Resume|go->slow|1", strings(&["s#1", ""])),
        (
            "slow|s#1/t#0|Run|x->slow|1",
            strings(&["s#1/t#0", "s#1", ""]),
        ),
    ] {
        let begun = store
            .begin_hop(&id, hop, &chain, &keys, None)
            .await
            .unwrap();
        assert!(
            begun.context.contains_key(marker),
            "{hop}: a loser's hop of any kind reads its marker from its scope chain"
        );
    }
    let sibling = store
        .begin_hop(
            &id,
            "slow|s#2|Run|go->slow|1",
            &strings(&["s#2", ""]),
            &keys,
            None,
        )
        .await
        .unwrap();
    assert!(
        !sibling.context.contains_key(marker),
        "another item's race is not cancelled"
    );
    let drop1 = commit("slow|s#1|Resume|go->slow|1", &[], 0);
    assert_eq!(
        store.commit(&id, drop1.clone()).await.unwrap(),
        CommitOutcome::Applied { pending: 1 }
    );
    assert_eq!(
        store.commit(&id, drop1).await.unwrap(),
        CommitOutcome::Duplicate { pending: 1 },
        "the timer's own copy of a released resume changes nothing"
    );
    assert_eq!(
        store
            .commit(&id, commit("slow|s#1/t#0|Run|x->slow|1", &[], 0))
            .await
            .unwrap(),
        CommitOutcome::Applied { pending: 0 },
        "dropping the losers' messages lets the execution complete"
    );
    store
        .broadcast_node_cancel(&NodeCancel {
            execution_id: id.clone(),
            scope: "s#1".into(),
            node_ids: strings(&["slow"]),
        })
        .await
        .expect("the node-cancel broadcast is accepted");
    let ctx = store.final_context(&id).await.unwrap().context;
    assert!(
        ctx.keys().all(|k| k != marker),
        "markers in a split scope are not top-level context"
    );
}
