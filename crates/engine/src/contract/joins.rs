//! Store contract: Joins: wait_for_all, release on the first real arrival, concurrency.

use std::sync::Arc;

use serde_json::json;

use crate::ports::{JoinOutcome, StatePorts};

use super::support::*;

/// A `wait_for_all` join waits for `expected` distinct arrivals, releases exactly once (arrivals
/// in arrival order), re-releases only to a redelivery of the releasing arrival.
pub async fn join_wait_for_all(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    let j = "join|merge|";
    let a = json!({"real": true, "from": "a", "z": 1, "y": 2});
    let b = json!({"real": false, "from": "b"});
    let c = json!({"real": true, "from": "c"});
    assert_eq!(
        store
            .join(&id, j, "e-a", a.clone(), 3, false)
            .await
            .unwrap(),
        JoinOutcome::Waiting {
            arrived: 1,
            expected: 3
        }
    );
    assert_eq!(
        store
            .join(&id, j, "e-a", json!({"dup": true}), 3, false)
            .await
            .unwrap(),
        JoinOutcome::Waiting {
            arrived: 1,
            expected: 3
        },
        "a duplicate arrival is ignored"
    );
    assert_eq!(
        store
            .join(&id, j, "e-b", b.clone(), 3, false)
            .await
            .unwrap(),
        JoinOutcome::Waiting {
            arrived: 2,
            expected: 3
        }
    );
    // Another join of the same execution is independent.
    assert_eq!(
        store
            .join(&id, "join|merge|s#1", "e-a", a.clone(), 2, false)
            .await
            .unwrap(),
        JoinOutcome::Waiting {
            arrived: 1,
            expected: 2
        }
    );

    let released = JoinOutcome::Released {
        arrivals: vec![arrival("e-a", &a), arrival("e-b", &b), arrival("e-c", &c)],
    };
    let got = store
        .join(&id, j, "e-c", c.clone(), 3, false)
        .await
        .unwrap();
    assert_eq!(got, released, "the last expected arrival releases");
    if let JoinOutcome::Released { arrivals } = &got {
        assert_eq!(
            arrivals[0].value.to_string(),
            a.to_string(),
            "arrival JSON keeps its key order"
        );
    }
    assert_eq!(
        store
            .join(&id, j, "e-c", c.clone(), 3, false)
            .await
            .unwrap(),
        released,
        "the releaser's redelivery releases again"
    );
    assert_eq!(
        store
            .join(&id, j, "e-a", a.clone(), 3, false)
            .await
            .unwrap(),
        JoinOutcome::AlreadyReleased,
        "an earlier arrival's redelivery"
    );
    assert_eq!(
        store
            .join(&id, j, "e-late", json!({"real": true}), 3, false)
            .await
            .unwrap(),
        JoinOutcome::AlreadyReleased,
        "a late arrival"
    );
    let again = store.join(&id, j, "e-c", c, 3, false).await.unwrap();
    assert_released_with_prefix(
        &again,
        &released,
        "the releaser's redelivery after a late arrival",
    );
}
/// `release_on_first_real` (`wait_for_any`): the first real arrival releases; skips wait; a
/// join of only skips releases when all `expected` arrived.
pub async fn join_release_on_first_real(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    let j = "join|race|";
    let skip = json!({"real": false});
    let run = json!({"real": true, "winner": "b"});
    assert_eq!(
        store
            .join(&id, j, "e-a", skip.clone(), 3, true)
            .await
            .unwrap(),
        JoinOutcome::Waiting {
            arrived: 1,
            expected: 3
        }
    );
    let released = JoinOutcome::Released {
        arrivals: vec![arrival("e-a", &skip), arrival("e-b", &run)],
    };
    assert_eq!(
        store
            .join(&id, j, "e-b", run.clone(), 3, true)
            .await
            .unwrap(),
        released,
        "first real arrival releases"
    );
    assert_eq!(
        store
            .join(&id, j, "e-c", json!({"real": true}), 3, true)
            .await
            .unwrap(),
        JoinOutcome::AlreadyReleased
    );
    let again = store.join(&id, j, "e-b", run, 3, true).await.unwrap();
    assert_released_with_prefix(&again, &released, "redelivered winner");

    let j2 = "join|race|all-skipped";
    assert!(matches!(
        store
            .join(&id, j2, "e-a", skip.clone(), 2, true)
            .await
            .unwrap(),
        JoinOutcome::Waiting { .. }
    ));
    assert_eq!(
        store
            .join(&id, j2, "e-b", skip.clone(), 2, true)
            .await
            .unwrap(),
        JoinOutcome::Released {
            arrivals: vec![arrival("e-a", &skip), arrival("e-b", &skip)]
        },
        "only skips: released when all arrived"
    );
    // `real` must be a JSON true; without release_on_first_real a real arrival just counts.
    let j3 = "join|plain|";
    assert!(matches!(
        store
            .join(&id, j3, "e-a", json!({"real": "yes"}), 2, true)
            .await
            .unwrap(),
        JoinOutcome::Waiting { .. }
    ));
    assert!(matches!(
        store
            .join(&id, "join|all|", "e-a", json!({"real": true}), 2, false)
            .await
            .unwrap(),
        JoinOutcome::Waiting { .. }
    ));
}
/// A redelivered releaser is released again with the original arrivals first (arrivals that
/// came after the release may follow).
pub(super) fn assert_released_with_prefix(got: &JoinOutcome, original: &JoinOutcome, what: &str) {
    let (JoinOutcome::Released { arrivals }, JoinOutcome::Released { arrivals: first }) =
        (got, original)
    else {
        panic!("{what}: expected a release, got {got:?}");
    };
    assert!(
        arrivals.len() >= first.len() && arrivals[..first.len()] == first[..],
        "{what}: {arrivals:?} does not start with {first:?}"
    );
}
/// Many tasks arriving at one join at once (each arrival also redelivered): exactly one
/// distinct arrival releases it, and it sees every arrival.
pub async fn concurrent_joins(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    for (j, any) in [("join|all|", false), ("join|any|", true)] {
        let mut tasks = Vec::new();
        for i in 0..RACERS * 2 {
            let (store, id) = (store.clone(), id.clone());
            let edge = format!("e-{}", i % RACERS);
            tasks.push(tokio::spawn(async move {
                let out = store
                    .join(
                        &id,
                        j,
                        &edge,
                        json!({"real": true, "edge": edge}),
                        RACERS,
                        any,
                    )
                    .await
                    .unwrap();
                (edge, out)
            }));
        }
        let mut releasers = std::collections::HashSet::new();
        for t in tasks {
            let (edge, out) = t.await.unwrap();
            match out {
                JoinOutcome::Released { arrivals } => {
                    releasers.insert(edge);
                    if !any {
                        assert_eq!(
                            arrivals.len(),
                            RACERS,
                            "{j}: the releaser sees every arrival"
                        );
                    }
                    let mut keys: Vec<_> = arrivals.iter().map(|a| a.key.clone()).collect();
                    keys.sort();
                    keys.dedup();
                    assert_eq!(keys.len(), arrivals.len(), "{j}: arrivals are distinct");
                }
                JoinOutcome::Waiting { arrived, expected } => {
                    assert!(
                        !any,
                        "{j}: a real arrival never waits under release_on_first_real"
                    );
                    assert!(arrived < expected && expected == RACERS);
                }
                JoinOutcome::AlreadyReleased => {}
            }
        }
        assert_eq!(
            releasers.len(),
            1,
            "{j}: exactly one arrival releases, got {releasers:?}"
        );
    }
}
