//! Store contract: Finishing executions: first writer wins, the finishing hop, completion claims, the final context.

use std::sync::Arc;

use baton_core::message::ExecutionStatus;
use serde_json::{Value, json};

use crate::ports::{
    CommitOutcome, CompletionAdoption, CompletionClaim, FinalContext, JoinOutcome, Lifecycle,
    StatePorts,
};

use super::support::*;

/// `finish` sets the final status once: the first caller wins, under contention too.
pub async fn finish_first_writer_wins(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    assert!(
        store
            .finish(&id, ExecutionStatus::Halted, Some("node `x` failed".into()))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish(&id, ExecutionStatus::Completed, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish(&id, ExecutionStatus::Halted, Some("other".into()))
            .await
            .unwrap()
    );
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status: ExecutionStatus::Halted,
            reason: Some("node `x` failed".into()),
            completion_sent: false
        }
    );

    let id = started(&store, json!({}), 1).await;
    assert!(
        store
            .finish(&id, ExecutionStatus::Completed, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status: ExecutionStatus::Completed,
            reason: None,
            completion_sent: false
        },
        "no reason stays None"
    );
    let id = started(&store, json!({}), 1).await;
    assert!(
        store
            .finish(&id, ExecutionStatus::Failed, Some(String::new()))
            .await
            .unwrap()
    );
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status: ExecutionStatus::Failed,
            reason: Some(String::new()),
            completion_sent: false
        },
        "an empty reason stays Some"
    );

    // A finished execution still takes commits and joins (an on_failure node runs after it).
    assert_eq!(
        store
            .commit(&id, commit("after", &[("", "k", json!(1))], 0))
            .await
            .unwrap(),
        CommitOutcome::Applied { pending: 0 }
    );
    assert!(matches!(
        store
            .join(&id, "join|late|", "e", json!({"real": true}), 1, false)
            .await
            .unwrap(),
        JoinOutcome::Released { .. }
    ));

    let id = started(&store, json!({}), 1).await;
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let (store, id) = (store.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let status = if i % 2 == 0 {
                ExecutionStatus::Completed
            } else {
                ExecutionStatus::Halted
            };
            let won = store
                .finish(&id, status, Some(format!("racer {i}")))
                .await
                .unwrap();
            (won, status, i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (won, status, i) = t.await.unwrap();
        if won {
            winners.push((status, i));
        }
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent finish wins");
    let (status, i) = winners[0];
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status,
            reason: Some(format!("racer {i}")),
            completion_sent: false
        },
        "the winner's status and reason stick"
    );
}
/// `finish_by` remembers which hop finished the execution (the first finisher only);
/// `finish` and an unfinished execution name none.
pub async fn finish_remembers_the_finishing_hop(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    assert_eq!(store.finished_by(&id).await.unwrap(), None, "running");
    assert!(
        store
            .finish_by(
                &id,
                ExecutionStatus::Halted,
                Some("a failed".into()),
                "a|||Run||1"
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_by(
                &id,
                ExecutionStatus::Halted,
                Some("b failed".into()),
                "b|||Run||1"
            )
            .await
            .unwrap(),
        "the second finisher loses"
    );
    assert_eq!(
        store.finished_by(&id).await.unwrap().as_deref(),
        Some("a|||Run||1")
    );
    assert!(matches!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished { status: ExecutionStatus::Halted, reason: Some(r), .. } if r == "a failed"
    ));

    let plain = started(&store, json!({}), 1).await;
    assert!(
        store
            .finish(&plain, ExecutionStatus::Completed, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.finished_by(&plain).await.unwrap(),
        None,
        "finish names no hop"
    );
}
/// `mark_completion_sent`: true once, visible in the lifecycle.
/// One claimer at a time sends a completion; a claim older than its lease can be taken over
/// (its holder died); once marked sent, nobody claims it again.
pub async fn completion_claim_lease(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    store
        .finish(&id, ExecutionStatus::Halted, Some("stop".into()))
        .await
        .unwrap();
    let claim = |now: u64| {
        let (store, id) = (store.clone(), id.clone());
        async move { store.claim_completion(&id, now, 1_000).await.unwrap() }
    };
    let mut racers = Vec::new();
    for _ in 0..RACERS {
        racers.push(tokio::spawn(claim(10_000)));
    }
    let mut claimed = 0;
    for r in racers {
        match r.await.unwrap() {
            CompletionClaim::Claimed => claimed += 1,
            other => assert_eq!(other, CompletionClaim::Held),
        }
    }
    assert_eq!(claimed, 1, "one claimer within the lease");
    assert_eq!(
        claim(10_999).await,
        CompletionClaim::Held,
        "still within the lease"
    );
    assert_eq!(
        claim(11_000).await,
        CompletionClaim::Claimed,
        "an expired claim is taken over"
    );
    assert!(store.mark_completion_sent(&id).await.unwrap());
    assert_eq!(claim(50_000).await, CompletionClaim::Sent);
    assert_eq!(
        store
            .claim_completion(&unique_id(), 1, 1_000)
            .await
            .unwrap(),
        CompletionClaim::Unknown
    );
}
/// The first sender to ask adopts a completion for good (no lease); it may ask again, every
/// other sender is told another has it; once marked sent, everybody is told so. An unknown or
/// unfinished execution has nothing to adopt.
pub async fn completion_adopted_once(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    assert_eq!(
        store.adopt_completion(&id, "s-early").await.unwrap(),
        CompletionAdoption::Unknown,
        "not finished yet"
    );
    store
        .finish(&id, ExecutionStatus::Completed, None)
        .await
        .unwrap();
    let mut racers = Vec::new();
    for n in 0..RACERS {
        let (store, id) = (store.clone(), id.clone());
        racers.push(tokio::spawn(async move {
            let sender = format!("s-{n}");
            (
                sender.clone(),
                store.adopt_completion(&id, &sender).await.unwrap(),
            )
        }));
    }
    let mut adopter = None;
    for r in racers {
        match r.await.unwrap() {
            (sender, CompletionAdoption::Adopted) => {
                assert!(adopter.replace(sender).is_none(), "one adopter");
            }
            (_, other) => assert_eq!(other, CompletionAdoption::Another),
        }
    }
    let adopter = adopter.expect("one sender adopted it");
    assert_eq!(
        store.adopt_completion(&id, &adopter).await.unwrap(),
        CompletionAdoption::Again,
        "the adopter asks again"
    );
    assert_eq!(
        store.adopt_completion(&id, "s-late").await.unwrap(),
        CompletionAdoption::Another,
        "no lease: it stays adopted"
    );
    assert!(store.mark_completion_sent(&id).await.unwrap());
    assert_eq!(
        store.adopt_completion(&id, &adopter).await.unwrap(),
        CompletionAdoption::Sent
    );
    assert_eq!(
        store.adopt_completion(&unique_id(), "s").await.unwrap(),
        CompletionAdoption::Unknown
    );
}

pub async fn completion_sent_once(store: Arc<dyn StatePorts>) {
    let id = started(&store, json!({}), 1).await;
    store
        .finish(&id, ExecutionStatus::Completed, None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let (store, id) = (store.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            store.mark_completion_sent(&id).await.unwrap()
        }));
    }
    let mut firsts = 0;
    for t in tasks {
        firsts += usize::from(t.await.unwrap());
    }
    assert_eq!(firsts, 1, "exactly one caller marks the completion sent");
    assert!(!store.mark_completion_sent(&id).await.unwrap());
    assert_eq!(
        store.lifecycle(&id).await.unwrap(),
        Lifecycle::Finished {
            status: ExecutionStatus::Completed,
            reason: None,
            completion_sent: true
        }
    );
}
/// `final_context`: the top-level scope only (seed, then outputs in first-write order; a
/// rewrite keeps its place) and the start time.
pub async fn final_context_top_level(store: Arc<dyn StatePorts>) {
    let start = start_of(json!({"$input": {"x": 1}, "$trigger": "t"}), 1);
    let id = start.execution_id.clone();
    assert!(store.start(&start).await.unwrap());
    store
        .commit(
            &id,
            commit(
                "h1",
                &[
                    ("", "node_b", json!({"b": 1})),
                    ("split#0", "inner", json!(0)),
                    ("", "node_a", json!("a")),
                ],
                1,
            ),
        )
        .await
        .unwrap();
    store
        .commit(
            &id,
            commit(
                "h2",
                &[
                    ("", "$input", json!({"x": 2})),
                    ("split#1/deep#0", "node_b", json!("scoped")),
                ],
                1,
            ),
        )
        .await
        .unwrap();
    store
        .finish(&id, ExecutionStatus::Completed, None)
        .await
        .unwrap();

    let FinalContext {
        context: ctx,
        started_at_ms: started_at,
    } = store.final_context(&id).await.unwrap();
    assert_eq!(started_at, start.started_at_ms);
    let want = json!({"$input": {"x": 2}, "$trigger": "t", "node_b": {"b": 1}, "node_a": "a"});
    assert_eq!(Value::Object(ctx.clone()), want, "top-level keys only");
    let order: Vec<&str> = ctx.keys().map(String::as_str).collect();
    assert_eq!(
        order,
        ["$input", "$trigger", "node_b", "node_a"],
        "insertion order"
    );
}
