//! What the timer-lag metric reads: a claimed timer's due time, known for a timer claimed when
//! due, unknown for one re-claimed after its lease expired.

mod support;

use baton_redis::{ClaimedTimer, RedisOptions};

#[tokio::test]
async fn a_claimed_timer_tells_when_it_was_due_and_a_reclaimed_one_does_not() {
    let (store, _cleanup) = support::store("timer-lag", RedisOptions::default()).await;
    let timers = store.timers();
    let due = 1_800_000_000_000u64;
    assert!(timers.schedule("t1", b"p1", due).await.unwrap());
    let claimed = timers
        .claim_due_timed(due + 2_500, 10, 1_000)
        .await
        .unwrap();
    assert_eq!(
        claimed,
        vec![ClaimedTimer {
            id: "t1".into(),
            payload: b"p1".to_vec(),
            due_ms: Some(due),
        }]
    );
    // Its claimer dies: re-claimed after the lease, the due time is no longer known.
    let again = timers
        .claim_due_timed(due + 3_500, 10, 1_000)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].due_ms, None);
    assert!(timers.complete("t1").await.unwrap());
}
