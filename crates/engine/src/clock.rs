//! The clock port: where the engine, nodes, timers and the scheduler read the time and wait for
//! it. `SystemClock` in production; `ManualClock` in tests, so time-based behaviour (timers,
//! signal timeouts, cron, `datetime.now`) is tested by moving time, not by sleeping.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

/// Wall-clock time and waiting for it. Object safe: shared as `Arc<dyn Clock>`.
#[async_trait]
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now_utc(&self) -> DateTime<Utc>;

    /// Waits until the clock reads at least `deadline_ms` (milliseconds since the epoch).
    async fn sleep_until(&self, deadline_ms: u64);

    /// Milliseconds since the epoch (timers, leases, durations); 0 before the epoch.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.now_utc().timestamp_millis()).unwrap_or(0)
    }

    /// The current time as an RFC 3339 timestamp with nanoseconds (status events, completions).
    fn rfc3339_now(&self) -> String {
        self.now_utc().to_rfc3339_opts(SecondsFormat::Nanos, true)
    }

    /// Waits for `duration` of this clock's time to pass.
    async fn sleep(&self, duration: Duration) {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.sleep_until(self.now_ms().saturating_add(millis)).await;
    }
}

/// The real time; sleeps on tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now_utc(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, deadline_ms: u64) {
        let left = deadline_ms.saturating_sub(self.now_ms());
        if left > 0 {
            tokio::time::sleep(Duration::from_millis(left)).await;
        }
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A clock that moves only when told to (`set`, `advance`). Sleepers wake as soon as the time
/// reaches their deadline.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: watch::Sender::new(start),
        }
    }

    /// Sets the time (also backwards; sleepers wake only once it reaches their deadline).
    pub fn set(&self, now: DateTime<Utc>) {
        self.now.send_replace(now);
    }

    /// Moves the time forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let step = chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        self.now.send_modify(|now| {
            *now = now
                .checked_add_signed(step)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
        });
    }
}

impl ManualClock {
    /// How many sleepers are waiting: a test moves time only once the timer it means to fire
    /// is registered.
    pub fn sleepers(&self) -> usize {
        self.now.receiver_count()
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now_utc(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    async fn sleep_until(&self, deadline_ms: u64) {
        let deadline = i64::try_from(deadline_ms).unwrap_or(i64::MAX);
        let mut now = self.now.subscribe();
        // The sender lives in `self`, which outlives this wait: `wait_for` cannot fail.
        let _ = now.wait_for(|t| t.timestamp_millis() >= deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn manual_clock_reads_the_time_it_was_set_to() {
        let clock = ManualClock::new(start());
        assert_eq!(clock.now_utc(), start());
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now_ms(), start().timestamp_millis() as u64 + 90_000);
        assert_eq!(clock.rfc3339_now(), "2026-01-01T00:01:30.000000000Z");
    }

    #[tokio::test]
    async fn manual_sleeper_wakes_only_once_time_passes_its_deadline() {
        let clock = Arc::new(ManualClock::new(start()));
        let sleeper = {
            let clock = clock.clone();
            let deadline = clock.now_ms() + 3_600_000;
            tokio::spawn(async move { clock.sleep_until(deadline).await })
        };
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(3599));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .expect("sleeper ran");
    }
}
