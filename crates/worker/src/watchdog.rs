//! Readiness and the watchdog: what `/readyz` answers, from atomics only, and a plain OS
//! thread that ends the process when the broker connection cannot repair itself.
//!
//! Why an OS thread: the failures it is for (lapin's I/O loop deadlocked, a tokio worker
//! thread blocked on one of lapin's locks, a runtime that stopped turning) also stop every
//! tokio task that could notice them. Why exit: unacknowledged deliveries return to the queue
//! when the connection dies with the process, and the orchestrator starts a fresh one; a
//! worker that stays up answering "ready" while doing nothing loses hours (issue 13).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use baton_amqp::{Broker, BrokerHealth, ConsumerHealth, ConsumerProbe};

use crate::events_guard::EventsVitals;

/// The exit code of a process the watchdog ends (`EX_SOFTWARE`).
pub const WATCHDOG_EXIT_CODE: i32 = 70;

/// How often the watchdog thread looks.
const WATCH_TICK: Duration = Duration::from_secs(1);

/// What readiness and the watchdog read. Cheap to share; every read is an atomic load.
pub struct Watch {
    broker: Broker,
    consumer: OnceLock<ConsumerProbe>,
    events: Arc<EventsVitals>,
    /// No progress for this long with deliveries in flight: not ready.
    stall_after: Duration,
    /// Supervisor silent for this long: exit.
    silent_exit_after: Duration,
    /// Broker unusable for this long: exit (`None`: never).
    down_exit_after: Option<Duration>,
    /// Set when the worker starts draining: the watchdog then stands down (closing the broker
    /// stops its supervisor on purpose).
    stopped: AtomicBool,
}

/// Why the worker is not ready (the `/readyz` body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    BrokerDown,
    BrokerBlocked,
    NotConsuming,
    ConsumerGone,
    ConsumerRecovering,
    NoFreeSlot { leaked: usize },
    Stalled { unsettled: usize, idle: Duration },
    EventPublisher(&'static str),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::BrokerDown => write!(f, "RabbitMQ connection not usable"),
            NotReady::BrokerBlocked => write!(f, "RabbitMQ blocked the connection (alarm)"),
            NotReady::NotConsuming => write!(f, "not consuming yet"),
            NotReady::ConsumerGone => write!(f, "the execution queue consumer is gone"),
            NotReady::ConsumerRecovering => {
                write!(f, "the execution queue consumer is being re-created")
            }
            NotReady::NoFreeSlot { leaked } => write!(
                f,
                "no free prefetch slot ({leaked} deliveries dropped unsettled)"
            ),
            NotReady::Stalled { unsettled, idle } => write!(
                f,
                "{unsettled} deliveries in flight and none settled or received for {}s",
                idle.as_secs()
            ),
            NotReady::EventPublisher(why) => write!(f, "status/completion publisher {why}"),
        }
    }
}

/// The readiness rules, on plain values (tested without a broker).
pub fn judge(
    broker: &BrokerHealth,
    consumer: Option<&ConsumerHealth>,
    events: Option<&'static str>,
    stall_after: Duration,
) -> Result<(), NotReady> {
    if !broker.ready {
        return Err(NotReady::BrokerDown);
    }
    if broker.blocked {
        return Err(NotReady::BrokerBlocked);
    }
    let Some(consumer) = consumer else {
        return Err(NotReady::NotConsuming);
    };
    if consumer.ended {
        return Err(NotReady::ConsumerGone);
    }
    if !consumer.active {
        return Err(NotReady::ConsumerRecovering);
    }
    if consumer.free_slots == 0 {
        return Err(NotReady::NoFreeSlot {
            leaked: consumer.leaked,
        });
    }
    // "Nothing at all settles": a long node (an HTTP call of 30 s) keeps one delivery unsettled,
    // but with any traffic others settle around it; with none, it trips only after
    // `stall_after`, which must exceed the longest node timeout (RFC 0005).
    if consumer.unsettled > 0 && consumer.idle_for >= stall_after {
        return Err(NotReady::Stalled {
            unsettled: consumer.unsettled,
            idle: consumer.idle_for,
        });
    }
    if let Some(why) = events {
        return Err(NotReady::EventPublisher(why));
    }
    Ok(())
}

/// Why the watchdog would end the process now, if it would.
pub fn fatal(
    broker: &BrokerHealth,
    silent_exit_after: Duration,
    down_exit_after: Option<Duration>,
) -> Option<String> {
    if broker.supervisor_silent_for >= silent_exit_after {
        return Some(format!(
            "the RabbitMQ connection's supervisor has not turned for {}s: the runtime or lapin is wedged",
            broker.supervisor_silent_for.as_secs()
        ));
    }
    match (broker.down_for, down_exit_after) {
        (Some(down), Some(limit)) if down >= limit => Some(format!(
            "the RabbitMQ connection has not been usable for {}s and could not be rebuilt",
            down.as_secs()
        )),
        _ => None,
    }
}

impl Watch {
    pub fn new(
        broker: Broker,
        events: Arc<EventsVitals>,
        watchdog_secs: u64,
        broker_down_exit_secs: u64,
    ) -> Self {
        Self {
            broker,
            consumer: OnceLock::new(),
            events,
            stall_after: Duration::from_secs(watchdog_secs),
            silent_exit_after: Duration::from_secs(watchdog_secs),
            down_exit_after: (broker_down_exit_secs > 0)
                .then(|| Duration::from_secs(broker_down_exit_secs)),
            stopped: AtomicBool::new(false),
        }
    }

    /// The execution queue's consumer, once it exists.
    pub fn set_consumer(&self, probe: ConsumerProbe) {
        let _ = self.consumer.set(probe);
    }

    /// Readiness from atomics: never waits, never takes a lapin lock.
    pub fn readiness(&self) -> Result<(), NotReady> {
        let consumer = self.consumer.get().map(ConsumerProbe::health);
        judge(
            &self.broker.health(),
            consumer.as_ref(),
            self.events.problem(),
            self.stall_after,
        )
    }

    /// The watchdog stands down (draining: the broker is closed on purpose).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Starts the watchdog thread: it logs readiness changes and ends the process with
    /// [`WATCHDOG_EXIT_CODE`] on a [`fatal`] condition.
    /// The thread holds the `Watch` weakly: it ends with the worker that owns it (tests run
    /// workers in-process and drop them), when stopped, or when the broker is closed.
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<()> {
        let watch = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("baton-watchdog".into())
            .spawn(move || {
                let mut last = Ok(());
                loop {
                    std::thread::sleep(WATCH_TICK);
                    let Some(watch) = watch.upgrade() else { return };
                    if !watch.turn(&mut last) {
                        return;
                    }
                }
            })
            .map(|_| ())
    }

    /// One look; `false` when the watchdog stands down.
    fn turn(&self, last: &mut Result<(), NotReady>) -> bool {
        if self.stopped.load(Ordering::SeqCst) {
            return false;
        }
        let health = self.broker.health();
        if health.closed {
            return false;
        }
        if let Some(why) = fatal(&health, self.silent_exit_after, self.down_exit_after) {
            tracing::error!(reason = %why, ?health, "watchdog: exiting so that the orchestrator restarts the worker (unacknowledged deliveries return to the queue)");
            // Logs are written synchronously; nothing else is worth waiting for.
            std::process::exit(WATCHDOG_EXIT_CODE);
        }
        let now = self.readiness();
        if now != *last {
            match &now {
                Ok(()) => tracing::info!("ready again"),
                Err(why) => tracing::warn!(reason = %why, "not ready"),
            }
            *last = now;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> BrokerHealth {
        BrokerHealth {
            ready: true,
            ..BrokerHealth::default()
        }
    }

    fn consuming() -> ConsumerHealth {
        ConsumerHealth {
            active: true,
            free_slots: 4,
            ..ConsumerHealth::default()
        }
    }

    const STALL: Duration = Duration::from_secs(60);

    #[test]
    fn ready_needs_a_usable_broker_a_live_consumer_and_a_free_slot() {
        assert_eq!(judge(&up(), Some(&consuming()), None, STALL), Ok(()));
        let down = BrokerHealth::default();
        assert_eq!(
            judge(&down, Some(&consuming()), None, STALL),
            Err(NotReady::BrokerDown)
        );
        let blocked = BrokerHealth {
            blocked: true,
            ..up()
        };
        assert_eq!(
            judge(&blocked, Some(&consuming()), None, STALL),
            Err(NotReady::BrokerBlocked)
        );
        assert_eq!(judge(&up(), None, None, STALL), Err(NotReady::NotConsuming));
        let gone = ConsumerHealth {
            ended: true,
            active: false,
            ..consuming()
        };
        assert_eq!(
            judge(&up(), Some(&gone), None, STALL),
            Err(NotReady::ConsumerGone)
        );
        let full = ConsumerHealth {
            leaked: 4,
            free_slots: 0,
            ..consuming()
        };
        assert_eq!(
            judge(&up(), Some(&full), None, STALL),
            Err(NotReady::NoFreeSlot { leaked: 4 })
        );
        assert_eq!(
            judge(&up(), Some(&consuming()), Some("stuck"), STALL),
            Err(NotReady::EventPublisher("stuck"))
        );
    }

    #[test]
    fn a_long_node_is_not_a_stall_until_nothing_settles_for_the_watchdog_period() {
        let long_node = ConsumerHealth {
            unsettled: 1,
            idle_for: Duration::from_secs(30),
            ..consuming()
        };
        assert_eq!(judge(&up(), Some(&long_node), None, STALL), Ok(()));
        let stuck = ConsumerHealth {
            idle_for: STALL,
            ..long_node
        };
        assert!(matches!(
            judge(&up(), Some(&stuck), None, STALL),
            Err(NotReady::Stalled { unsettled: 1, .. })
        ));
        let idle = ConsumerHealth {
            unsettled: 0,
            idle_for: Duration::from_secs(3600),
            ..consuming()
        };
        assert_eq!(
            judge(&up(), Some(&idle), None, STALL),
            Ok(()),
            "an idle queue is fine"
        );
    }

    #[test]
    fn the_watchdog_exits_on_a_silent_supervisor_or_a_long_outage_only() {
        let limit = Duration::from_secs(60);
        let outage = Some(Duration::from_secs(300));
        assert_eq!(fatal(&up(), limit, outage), None);
        let short = BrokerHealth {
            down_for: Some(Duration::from_secs(28)),
            ..BrokerHealth::default()
        };
        assert_eq!(
            fatal(&short, limit, outage),
            None,
            "a 28 s outage is survived"
        );
        let long = BrokerHealth {
            down_for: Some(Duration::from_secs(301)),
            ..BrokerHealth::default()
        };
        assert!(fatal(&long, limit, outage).is_some());
        assert_eq!(fatal(&long, limit, None), None, "0 = never");
        let wedged = BrokerHealth {
            supervisor_silent_for: Duration::from_secs(61),
            ..up()
        };
        assert!(fatal(&wedged, limit, outage).is_some());
    }
}
