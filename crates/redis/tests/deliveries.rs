//! The crash budget's durable counts on the real Redis: redeliveries and hand-backs of one
//! body, counted under the test's own prefix, with a one-day expiry.

mod support;

use baton_redis::{DeliveryTally, RedisOptions};
use redis::AsyncCommands;

#[tokio::test]
async fn redeliveries_nobody_handed_back_count_as_crashes_and_survive_the_counting_process() {
    let (store, _cleanup) = support::store("deliveries", RedisOptions::default()).await;
    let counts = store.deliveries();
    let body = br#"{"execution_id":"e1","node_id":"boom"}"#;
    // The first delivery fails transiently and is handed back alive: not a crash.
    assert_eq!(counts.handed_back(body).await.unwrap(), 1);
    let tally = counts.redelivered(body).await.unwrap();
    assert_eq!(
        tally,
        DeliveryTally {
            redeliveries: 1,
            handed_back: 1
        }
    );
    assert_eq!(tally.crashes(), 0);
    // Its next two holders die: two crashes, seen by a fresh handle (another process).
    let other = store.deliveries();
    other.redelivered(body).await.unwrap();
    let tally = other.redelivered(body).await.unwrap();
    assert_eq!(tally.crashes(), 2);
    assert_eq!(other.tally(body).await.unwrap(), tally);
    // Another body has counts of its own.
    assert_eq!(
        counts.tally(b"another body").await.unwrap(),
        DeliveryTally::default()
    );
    let mut raw = support::raw().await;
    let ttl: i64 = raw.ttl(counts.key(body)).await.unwrap();
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
    assert!(counts.key(body).starts_with(store.prefix()));
}

#[tokio::test]
async fn a_forgotten_body_starts_again_with_no_crashes() {
    let (store, _cleanup) = support::store("deliveries-forget", RedisOptions::default()).await;
    let counts = store.deliveries();
    let body = br#"{"execution_id":"e2","node_id":"boom"}"#;
    for _ in 0..3 {
        counts.redelivered(body).await.unwrap();
    }
    assert_eq!(counts.tally(body).await.unwrap().crashes(), 3);
    assert!(counts.forget(body).await.unwrap());
    assert_eq!(counts.tally(body).await.unwrap(), DeliveryTally::default());
    assert!(
        !counts.forget(body).await.unwrap(),
        "nothing left to forget"
    );
}
