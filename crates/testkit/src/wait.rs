//! Waiting for a condition by polling it until a deadline, instead of sleeping a fixed time
//! that is either too short on a busy machine or wasted on an idle one.

use std::time::Duration;

use tokio::time::Instant;

/// Calls `check` until it returns `Some` (returned) or `deadline` passes (`None`), sleeping
/// `poll` between calls. `check` runs at least once, also when the deadline has passed.
pub async fn wait_until<T>(
    deadline: impl Into<Instant>,
    poll: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = deadline.into();
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep(poll.min(deadline - now)).await;
    }
}

/// Whether `condition` holds within `bound`, polled every `poll`.
pub async fn eventually(
    bound: Duration,
    poll: Duration,
    mut condition: impl AsyncFnMut() -> bool,
) -> bool {
    wait_until(Instant::now() + bound, poll, async || {
        condition().await.then_some(())
    })
    .await
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_what_the_check_found() {
        let mut calls = 0;
        let found = wait_until(
            Instant::now() + Duration::from_secs(10),
            Duration::from_millis(100),
            async || {
                calls += 1;
                (calls == 3).then_some(calls)
            },
        )
        .await;
        assert_eq!(found, Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline() {
        let start = Instant::now();
        let found: Option<()> = wait_until(
            start + Duration::from_secs(1),
            Duration::from_millis(300),
            async || None,
        )
        .await;
        assert_eq!(found, None);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "no sleep past the deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn checks_once_even_after_the_deadline() {
        let past = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        let found = wait_until(past, Duration::from_millis(10), async || Some(7)).await;
        assert_eq!(found, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn eventually_reports_whether_the_condition_held() {
        let mut n = 0;
        assert!(
            eventually(
                Duration::from_secs(1),
                Duration::from_millis(10),
                async || {
                    n += 1;
                    n > 5
                }
            )
            .await
        );
        assert!(
            !eventually(
                Duration::from_secs(1),
                Duration::from_millis(10),
                async || false
            )
            .await
        );
    }

    #[tokio::test]
    async fn takes_a_std_instant_as_the_deadline() {
        let deadline = std::time::Instant::now() + Duration::from_millis(50);
        let found: Option<()> =
            wait_until(deadline, Duration::from_millis(10), async || None).await;
        assert_eq!(found, None);
    }
}
