//! Supervision of the status/completion publisher task (`AmqpEvents`): it is restarted when it
//! stops, panics, or stays inside one publish attempt past a deadline, and readiness drops while
//! it is stuck or being restarted.
//!
//! Why: after a 28 s broker outage one worker stopped publishing statuses and completions
//! while answering ready and logging nothing (issue 13, item 10). Every publish attempt is
//! bounded (`AmqpOptions::publish_timeout`, 30 s), so an attempt still running after
//! [`EVENTS_DEADLINE`] means the task is wedged, whatever the cause.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use baton_amqp::{Broker, Outgoing};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

/// How long one publish attempt may run before the publisher task is restarted: the broker's
/// own publish bound (30 s) plus a margin.
pub const EVENTS_DEADLINE: Duration = Duration::from_secs(45);

/// Where the publisher task sends its batches (the broker; a fake in tests).
#[async_trait]
pub trait BatchPublisher: Send + Sync + 'static {
    async fn publish(&self, batch: &[Outgoing]) -> Result<(), baton_amqp::Error>;
    /// Whether publishing can succeed now (the connection is usable).
    fn usable(&self) -> bool;
}

#[async_trait]
impl BatchPublisher for Broker {
    async fn publish(&self, batch: &[Outgoing]) -> Result<(), baton_amqp::Error> {
        Broker::publish_all(self, batch).await
    }

    fn usable(&self) -> bool {
        self.health().usable()
    }
}

fn stamp(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The publisher task's vital signs (atomics: read by `/readyz` and the watchdog).
pub struct EventsVitals {
    origin: Instant,
    deadline: Duration,
    /// Events handed to the task and not yet published or given up.
    pending: AtomicUsize,
    /// Events the current attempt holds (lost if the task is aborted).
    in_hand: AtomicUsize,
    /// When the current attempt started (0: none running).
    attempt_started: AtomicU64,
    restarting: AtomicBool,
    restarts: AtomicU64,
}

impl EventsVitals {
    pub fn new(deadline: Duration) -> Self {
        Self {
            origin: Instant::now(),
            deadline,
            pending: AtomicUsize::new(0),
            in_hand: AtomicUsize::new(0),
            attempt_started: AtomicU64::new(0),
            restarting: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
        }
    }

    /// Why readiness should be false because of the publisher, if it should.
    pub fn problem(&self) -> Option<&'static str> {
        if self.restarting.load(Ordering::SeqCst) {
            Some("is being restarted")
        } else if self.stuck() {
            Some("is stuck in a publish past its deadline")
        } else {
            None
        }
    }

    /// How many times the task was restarted.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Events queued or being published.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    fn stuck(&self) -> bool {
        let started = self.attempt_started.load(Ordering::SeqCst);
        started != 0
            && self.pending.load(Ordering::SeqCst) > 0
            && Duration::from_millis(stamp(self.origin).saturating_sub(started)) >= self.deadline
    }

    pub(crate) fn queued(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
    }

    /// The task took `n` events and starts publishing them.
    pub(crate) fn attempt(&self, n: usize) {
        self.in_hand.store(n, Ordering::SeqCst);
        self.attempt_started
            .store(stamp(self.origin).max(1), Ordering::SeqCst);
    }

    /// One attempt returned (the task is alive), whatever its outcome.
    pub(crate) fn attempt_returned(&self) {
        self.attempt_started
            .store(stamp(self.origin).max(1), Ordering::SeqCst);
    }

    /// The task is done with its `n` events (published or given up).
    pub(crate) fn done(&self, n: usize) {
        self.in_hand.store(0, Ordering::SeqCst);
        self.attempt_started.store(0, Ordering::SeqCst);
        self.sub_pending(n);
    }

    /// The task was aborted: the events it held are lost (completions' waiters get an error,
    /// and their hops are handed back and retried).
    fn lost(&self) -> usize {
        let n = self.in_hand.swap(0, Ordering::SeqCst);
        self.attempt_started.store(0, Ordering::SeqCst);
        self.sub_pending(n);
        n
    }

    fn sub_pending(&self, n: usize) {
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                Some(p.saturating_sub(n))
            });
    }
}

/// Runs the publisher `run` (a loop over the shared receiver that returns when every sender
/// is gone) and restarts it when it ends early, panics, or stays stuck past the deadline.
pub(crate) fn supervise<T, F, Fut>(
    rx: mpsc::UnboundedReceiver<T>,
    vitals: Arc<EventsVitals>,
    run: F,
) -> JoinHandle<()>
where
    T: Send + 'static,
    F: Fn(Arc<Mutex<mpsc::UnboundedReceiver<T>>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rx = Arc::new(Mutex::new(rx));
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(50);
        loop {
            let mut task = tokio::spawn(run(rx.clone()));
            vitals.restarting.store(false, Ordering::SeqCst);
            let why = tokio::select! {
                ended = &mut task => match ended {
                    Ok(()) => {
                        let rx = rx.lock().await;
                        if rx.is_closed() && rx.is_empty() {
                            return;
                        }
                        "ended while events can still arrive".to_string()
                    }
                    Err(e) if e.is_panic() => "panicked".to_string(),
                    Err(_) => "was cancelled".to_string(),
                },
                () = stuck(&vitals) => {
                    task.abort();
                    let _ = task.await;
                    format!("was stuck in one publish for more than {:?}", vitals.deadline)
                }
            };
            vitals.restarting.store(true, Ordering::SeqCst);
            vitals.restarts.fetch_add(1, Ordering::SeqCst);
            let lost = vitals.lost();
            tracing::error!(
                reason = %why,
                lost_events = lost,
                pending = vitals.pending(),
                "the status/completion publisher {why}; restarting it"
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    })
}

async fn stuck(vitals: &EventsVitals) {
    let tick = (vitals.deadline / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        if vitals.stuck() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::AmqpEvents;
    use baton_amqp::Topology;
    use baton_core::message::{Completion, ExecutionStatus};
    use baton_engine::ports::EventSink;
    use std::sync::Mutex as StdMutex;

    /// Hangs on its first publish (as lapin did in issue 13, item 10), then publishes.
    struct HangsOnce {
        calls: AtomicUsize,
        published: StdMutex<Vec<String>>,
    }

    #[async_trait]
    impl BatchPublisher for HangsOnce {
        async fn publish(&self, batch: &[Outgoing]) -> Result<(), baton_amqp::Error> {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                std::future::pending::<()>().await;
            }
            let mut published = self.published.lock().unwrap();
            for m in batch {
                published.push(String::from_utf8_lossy(&m.body).into_owned());
            }
            Ok(())
        }

        fn usable(&self) -> bool {
            true
        }
    }

    fn completion(id: &str) -> Completion {
        Completion {
            workflow_id: "wf".into(),
            execution_id: id.into(),
            status: ExecutionStatus::Completed,
            final_context: Default::default(),
            completed_at: "2026-01-01T00:00:00Z".into(),
            total_duration_ms: 1,
            failure_reason: None,
        }
    }

    async fn within(bound: Duration, mut check: impl FnMut() -> bool) -> bool {
        let until = tokio::time::Instant::now() + bound;
        while tokio::time::Instant::now() < until {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        check()
    }

    #[tokio::test]
    async fn a_publisher_stuck_past_its_deadline_is_restarted_and_readiness_drops_meanwhile() {
        let fake = Arc::new(HangsOnce {
            calls: AtomicUsize::new(0),
            published: StdMutex::new(Vec::new()),
        });
        let deadline = Duration::from_millis(300);
        let (events, _task) = AmqpEvents::start_with(
            fake.clone(),
            Arc::new(Topology::default()),
            crate::settings::StatusRoute::Exchange,
            deadline,
        );
        let vitals = events.vitals().clone();
        assert_eq!(vitals.problem(), None);

        // The first completion's publish hangs: readiness drops once the deadline passes.
        let first = tokio::spawn({
            let events = events.clone();
            async move { events.completion(completion("e1")).await }
        });
        assert!(
            within(Duration::from_secs(20), || vitals.problem().is_some()).await,
            "readiness never dropped"
        );
        // The task is restarted; the stuck completion's waiter is told (its hop is retried).
        let outcome = tokio::time::timeout(Duration::from_secs(20), first)
            .await
            .expect("the waiter is answered")
            .expect("no panic");
        assert!(
            outcome.is_err(),
            "a lost completion is an error, not a success"
        );
        assert!(vitals.restarts() >= 1);

        // The restarted task publishes, and readiness comes back.
        tokio::time::timeout(Duration::from_secs(20), events.completion(completion("e2")))
            .await
            .expect("published in time")
            .expect("published");
        assert!(
            fake.published
                .lock()
                .unwrap()
                .iter()
                .any(|b| b.contains("\"e2\""))
        );
        assert!(within(Duration::from_secs(20), || vitals.problem().is_none()).await);
        assert_eq!(vitals.pending(), 0);
    }
}
