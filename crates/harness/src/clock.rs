//! `VirtualClock`: the time a workflow test runs on. It moves only when the harness moves it,
//! and it knows the deadline of every sleeper, so the harness can jump straight to the next
//! pending timer once the execution is idle.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use baton_engine::Clock;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A manual clock that also tracks its sleepers' deadlines.
#[derive(Debug)]
pub struct VirtualClock {
    now: watch::Sender<i64>,
    /// Deadline (ms since the epoch) → sleepers waiting for it.
    sleepers: Arc<Mutex<BTreeMap<i64, usize>>>,
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: watch::Sender::new(start.timestamp_millis()),
            sleepers: Arc::default(),
        }
    }

    /// The time in milliseconds since the epoch (may be negative before 1970).
    pub fn now_millis(&self) -> i64 {
        *self.now.borrow()
    }

    /// Moves the time to `millis` (never backwards), waking the sleepers it passes.
    pub fn advance_to(&self, millis: i64) {
        self.now.send_if_modified(|now| {
            let moved = millis > *now;
            if moved {
                *now = millis;
            }
            moved
        });
    }

    /// The earliest deadline still waited for, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        lock(&self.sleepers).keys().next().copied()
    }

    /// True when a sleeper's deadline has passed but it has not woken yet: the runtime still
    /// has work to do.
    pub fn has_due_sleepers(&self) -> bool {
        self.next_deadline().is_some_and(|d| d <= self.now_millis())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A sleeper's registration, removed when its wait ends or is dropped (an aborted timer).
struct Registered {
    sleepers: Arc<Mutex<BTreeMap<i64, usize>>>,
    deadline: i64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut sleepers = lock(&self.sleepers);
        if let Some(n) = sleepers.get_mut(&self.deadline) {
            *n -= 1;
            if *n == 0 {
                sleepers.remove(&self.deadline);
            }
        }
    }
}

#[async_trait]
impl Clock for VirtualClock {
    fn now_utc(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_millis()).unwrap_or_default()
    }

    async fn sleep_until(&self, deadline_ms: u64) {
        let deadline = i64::try_from(deadline_ms).unwrap_or(i64::MAX);
        if self.now_millis() >= deadline {
            return;
        }
        *lock(&self.sleepers).entry(deadline).or_insert(0) += 1;
        let _registered = Registered {
            sleepers: self.sleepers.clone(),
            deadline,
        };
        let mut now = self.now.subscribe();
        // The sender lives in `self`, which outlives this wait: `wait_for` cannot fail.
        let _ = now.wait_for(|t| *t >= deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sleeper_is_listed_by_deadline_until_the_clock_reaches_it() {
        let clock = Arc::new(VirtualClock::new(DateTime::UNIX_EPOCH));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(5_000).await })
        };
        while clock.next_deadline().is_none() {
            tokio::task::yield_now().await;
        }
        assert_eq!(clock.next_deadline(), Some(5_000));
        assert!(!clock.has_due_sleepers());
        clock.advance_to(5_000);
        assert!(clock.has_due_sleepers());
        sleeper.await.unwrap_or_default();
        assert_eq!(clock.next_deadline(), None);
        assert_eq!(clock.now_ms(), 5_000);
    }
}
