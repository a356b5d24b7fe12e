//! Store contract: claims on running a hop (take, hold off, renew, expire, release at commit)
//! and handoffs marked published.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::ports::{CommittedHop, Handoff, HeldClaim, HopClaim, HopClaimOutcome, StatePorts};

use super::commits::handoff_to;
use super::support::*;

fn claim(owner: &str, now_ms: u64) -> HopClaim<'_> {
    HopClaim {
        owner,
        now_ms,
        lease_ms: 10_000,
    }
}

/// A claim holds the hop for its owner until it expires: another owner is told who holds it
/// and until when; the owner renews it by claiming again; once expired, another owner takes
/// it over (its holder died).
pub async fn hop_claims_hold_renew_and_expire(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    let take = |owner: &'static str, now: u64| {
        let store = store.clone();
        let id = id.clone();
        async move { store.claim_hop(&id, "h1", claim(owner, now)).await.unwrap() }
    };
    assert_eq!(take("w1", 1_000).await, HopClaimOutcome::Claimed);
    let held_by_w1 = |until| {
        HopClaimOutcome::Held(HeldClaim {
            owner: "w1".into(),
            expires_at_ms: until,
        })
    };
    assert_eq!(take("w2", 2_000).await, held_by_w1(11_000), "held by w1");
    assert_eq!(take("w1", 8_000).await, HopClaimOutcome::Claimed, "renewed");
    assert_eq!(
        take("w2", 12_000).await,
        held_by_w1(18_000),
        "the renewal moved the expiry"
    );
    assert_eq!(
        store
            .claim_hop(&id, "h2", claim("w2", 12_000))
            .await
            .unwrap(),
        HopClaimOutcome::Claimed,
        "claims are per hop"
    );
    assert_eq!(
        take("w2", 18_000).await,
        HopClaimOutcome::Claimed,
        "an expired claim is taken over"
    );
    assert_eq!(
        take("w1", 18_001).await,
        HopClaimOutcome::Held(HeldClaim {
            owner: "w2".into(),
            expires_at_ms: 28_000
        }),
        "the old holder has lost it"
    );
}

/// `begin_hop` with a claim takes it in the same call: a copy that meets another owner's live
/// claim reads nothing else; a committed hop is reported (and the commit released the claim).
pub async fn begin_hop_takes_the_claim(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({"a": 1}), 1).await;
    let chain = strings(&[""]);
    let keys = strings(&["a"]);
    let first = store
        .begin_hop(&id, "h1", &chain, &keys, Some(claim("w1", 1_000)))
        .await
        .unwrap();
    assert_eq!((first.held, first.committed), (None, None), "claimed");
    assert_eq!(Value::Object(first.context), json!({"a": 1}));
    let copy = store
        .begin_hop(&id, "h1", &chain, &keys, Some(claim("w2", 1_500)))
        .await
        .unwrap();
    assert_eq!(
        copy.held,
        Some(HeldClaim {
            owner: "w1".into(),
            expires_at_ms: 11_000
        }),
        "a copy meets the live claim"
    );
    assert!(copy.context.is_empty(), "and reads nothing");
    assert_eq!(copy.committed, None);

    let mut done = commit("h1", &[("", "b", json!(2))], 1);
    done.handoff = Some(handoff_to(&id, &["next"]));
    store.commit(&id, done).await.unwrap();
    let after = store
        .begin_hop(&id, "h1", &chain, &keys, Some(claim("w2", 2_000)))
        .await
        .unwrap();
    assert_eq!(after.held, None, "the commit released the claim");
    assert!(after.committed.is_some(), "the copy finds the commit");
    assert_eq!(
        store
            .claim_hop(&id, "h1", claim("w3", 2_000))
            .await
            .unwrap(),
        HopClaimOutcome::Committed,
        "a committed hop cannot be claimed"
    );
}

/// Once its successors are confirmed, a hop's handoff is marked published: a later replay
/// finds it empty (publishes nothing) but still finds the commit and the pending count.
pub async fn handoff_marked_published(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    let mut done = commit("h1", &[], 2);
    let handoff = handoff_to(&id, &["b", "c"]);
    done.handoff = Some(handoff.clone());
    store.commit(&id, done).await.unwrap();
    let before = store.committed_hop(&id, "h1").await.unwrap();
    assert_eq!(
        before,
        Some(CommittedHop {
            handoff: Some(handoff),
            pending: 2
        }),
        "not yet published: the whole handoff"
    );
    store.mark_handoff_published(&id, "h1").await.unwrap();
    store.mark_handoff_published(&id, "h1").await.unwrap();
    assert_eq!(
        store.committed_hop(&id, "h1").await.unwrap(),
        Some(CommittedHop {
            handoff: Some(Handoff::default()),
            pending: 2
        }),
        "published: nothing left to replay"
    );
    store.mark_handoff_published(&id, "nope").await.unwrap();
    assert_eq!(
        store.committed_hop(&id, "nope").await.unwrap(),
        None,
        "marking a hop that never committed records nothing"
    );
}
