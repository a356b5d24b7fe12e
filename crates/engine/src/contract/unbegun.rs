//! Store contract: `run_commit`, the one store call of a pure node's hop that ran without
//! `begin_hop` (RFC 0011, "one round trip"): `begin_hop`'s checks and the commit, atomically.

use std::sync::Arc;

use serde_json::{Value, json};

use baton_core::message::ExecutionStatus;

use crate::ports::{
    CommittedHop, HopClaim, HopClaimOutcome, Lifecycle, RunCommitOutcome, StatePorts,
};

use super::commits::handoff_to;
use super::support::*;

/// A running execution's first `run_commit` of a hop applies like `commit` (outputs, tokens,
/// handoff); a second one, or one of a hop `commit` applied, is a `Duplicate` with what the
/// hop handed on and writes nothing; an unknown execution is `Unknown`.
pub async fn run_commit_applies_once(store: Arc<dyn StatePorts>) {
    let top = strings(&[""]);
    assert_eq!(
        store
            .run_commit(&unique_id(), commit("h1", &[], 1))
            .await
            .unwrap(),
        RunCommitOutcome::Unknown,
        "an unknown execution"
    );
    let id = started(&store, json!({}), 1).await;
    let mut first = commit("h1", &[("", "a", json!(1)), ("s1", "b", json!(2))], 2);
    let handoff = handoff_to(&id, &["b", "c"]);
    first.handoff = Some(handoff.clone());
    assert_eq!(
        store.run_commit(&id, first.clone()).await.unwrap(),
        RunCommitOutcome::Applied { pending: 2 },
        "the first commit applies, tokens counted"
    );
    let got = store
        .read(&id, &strings(&["s1", ""]), &strings(&["a", "b"]))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"a": 1, "b": 2}),
        "outputs written"
    );
    assert_eq!(
        Value::Object(store.final_context(&id).await.unwrap().context),
        json!({"a": 1}),
        "a top-level output is in the final context"
    );

    let mut again = first.clone();
    again.outputs = vec![crate::ports::ContextWrite::new(
        "",
        "a",
        json!("overwritten?"),
    )];
    again.tokens_out = 10;
    match store.run_commit(&id, again).await.unwrap() {
        RunCommitOutcome::Duplicate(CommittedHop {
            handoff: h,
            pending,
        }) => {
            assert_eq!(pending, 2, "a duplicate reports the pending count");
            if store.replays_hops() {
                assert_eq!(
                    h,
                    Some(handoff),
                    "a duplicate carries what the hop handed on"
                );
            }
        }
        other => panic!("a second run_commit of a hop is a duplicate, got {other:?}"),
    }
    assert_eq!(
        store.read(&id, &top, &strings(&["a"])).await.unwrap()["a"],
        json!(1),
        "a duplicate writes nothing"
    );

    store.commit(&id, commit("h2", &[], 1)).await.unwrap();
    assert!(
        matches!(
            store.run_commit(&id, commit("h2", &[], 5)).await.unwrap(),
            RunCommitOutcome::Duplicate(CommittedHop { pending: 2, .. })
        ),
        "a hop `commit` applied is a duplicate too, and changes no token"
    );
    assert_eq!(
        store.run_commit(&id, commit("h3", &[], 0)).await.unwrap(),
        RunCommitOutcome::Applied { pending: 1 }
    );
}

/// `run_commit` takes no claim and needs none: a claim another worker holds on the hop does not
/// stop it, and it releases that claim (the hop is then committed).
pub async fn run_commit_ignores_and_releases_claims(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    let claim = HopClaim {
        owner: "w1",
        now_ms: 1_000,
        lease_ms: 10_000,
    };
    assert_eq!(
        store.claim_hop(&id, "h1", claim).await.unwrap(),
        HopClaimOutcome::Claimed
    );
    assert_eq!(
        store.run_commit(&id, commit("h1", &[], 1)).await.unwrap(),
        RunCommitOutcome::Applied { pending: 1 },
        "applied despite w1's live claim"
    );
    assert_eq!(
        store
            .claim_hop(
                &id,
                "h1",
                HopClaim {
                    owner: "w2",
                    ..claim
                }
            )
            .await
            .unwrap(),
        HopClaimOutcome::Committed,
        "the claim is gone with the commit"
    );
}

/// A finished execution's `run_commit` is `Ended` with its lifecycle and writes nothing (unlike
/// `commit`, which an `on_failure` node needs after the finish).
pub async fn run_commit_after_finish_writes_nothing(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 2).await;
    assert!(
        store
            .finish(
                &id,
                ExecutionStatus::Halted,
                Some("cancelled by the user".into())
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .run_commit(&id, commit("late", &[("", "late", json!(1))], 0))
            .await
            .unwrap(),
        RunCommitOutcome::Ended(Lifecycle::Finished {
            status: ExecutionStatus::Halted,
            reason: Some("cancelled by the user".into()),
            completion_sent: false,
        })
    );
    assert!(
        store
            .read(&id, &strings(&[""]), &strings(&["late"]))
            .await
            .unwrap()
            .is_empty(),
        "no output written"
    );
    assert_eq!(
        store.committed_hop(&id, "late").await.unwrap(),
        None,
        "the hop is not recorded committed"
    );
}

/// Many pure hops committing at once, each run twice: every hop applies once, exactly one
/// sees `pending: 0`, and the copies are duplicates.
pub async fn concurrent_run_commits(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), RACERS as i64).await;
    let answers = race_hops(&store, &id, |store, id, c| async move {
        store.run_commit(&id, c).await.unwrap()
    })
    .await;
    let (mut applied, mut zero, mut duplicates) = (0, 0, 0);
    for answer in answers {
        match answer {
            RunCommitOutcome::Applied { pending } => {
                applied += 1;
                zero += usize::from(pending == 0);
            }
            RunCommitOutcome::Duplicate(_) => duplicates += 1,
            other => panic!("a running execution's run_commit answered {other:?}"),
        }
    }
    assert_eq!(
        (applied, zero, duplicates),
        (RACERS, 1, RACERS),
        "each hop applies once; one commit reaches zero; the copies are duplicates"
    );
}
