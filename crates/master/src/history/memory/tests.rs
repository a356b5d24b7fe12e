//! Unit tests of the in-memory history that need its private state or a controlled clock.

use super::*;
use baton_engine::ManualClock;
use std::time::Duration;

#[tokio::test]
async fn a_webhook_message_id_is_refused_until_its_window_has_passed_on_the_clock() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let history = MemoryHistory::new(10, 60).with_clock(clock.clone());
    assert!(
        history
            .claim_webhook_message("wf", "m1", 600)
            .await
            .unwrap()
    );
    assert!(
        !history
            .claim_webhook_message("wf", "m1", 600)
            .await
            .unwrap()
    );
    assert!(
        history
            .claim_webhook_message("other", "m1", 600)
            .await
            .unwrap(),
        "ids are per workflow"
    );
    clock.advance(Duration::from_secs(599));
    assert!(
        !history
            .claim_webhook_message("wf", "m1", 600)
            .await
            .unwrap()
    );
    clock.advance(Duration::from_secs(1));
    assert!(
        history
            .claim_webhook_message("wf", "m1", 600)
            .await
            .unwrap()
    );
    history.release_webhook_message("wf", "m1").await.unwrap();
    assert!(
        history
            .claim_webhook_message("wf", "m1", 600)
            .await
            .unwrap(),
        "a released id may be delivered again"
    );
}
