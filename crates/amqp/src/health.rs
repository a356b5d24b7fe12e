//! What a process reads to judge its broker connection and its consumers without touching
//! lapin: atomics that the supervisor, the publishers and the consumers keep up to date.
//!
//! Why atomics: a health probe must answer in bounded time even when lapin is wedged (lapin
//! 4.12.3 was seen deadlocked on a channel's status lock, see RFC 0005), and every lapin status
//! read takes one of its locks. The readers here take none.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Milliseconds since `origin`, never 0 (0 means "unset" in the fields below).
fn stamp(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn since(origin: Instant, at: u64) -> Option<Duration> {
    (at != 0).then(|| Duration::from_millis(stamp(origin).saturating_sub(at)))
}

/// The broker connection's vital signs, written by the supervisor and the publishers.
pub(crate) struct Vitals {
    origin: Instant,
    ready: AtomicBool,
    blocked: AtomicBool,
    /// When the connection stopped being usable (0: it is usable).
    down_since: AtomicU64,
    /// The supervisor's last turn: it turns at least every
    /// [`HEALTH_TICK`](crate::session::HEALTH_TICK) while a session is up, and at least every
    /// few seconds while it reconnects, unless the runtime or lapin is wedged.
    beat: AtomicU64,
    /// Publishes that ran past their deadline on a connection that looked usable.
    wedged_publishes: AtomicU64,
    /// Liveness probes (a round trip through lapin's I/O loop) that did not answer in time.
    failed_probes: AtomicU64,
    /// The nodes' URIs, password redacted.
    nodes: Vec<String>,
    /// Index in `nodes` of the node the current session is connected to (`usize::MAX`: none).
    node: AtomicUsize,
}

impl Vitals {
    pub(crate) fn new(nodes: Vec<String>) -> Self {
        let origin = Instant::now();
        Self {
            nodes,
            node: AtomicUsize::new(usize::MAX),
            origin,
            ready: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            down_since: AtomicU64::new(stamp(origin)),
            beat: AtomicU64::new(stamp(origin)),
            wedged_publishes: AtomicU64::new(0),
            failed_probes: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        if ready {
            self.down_since.store(0, Ordering::SeqCst);
        } else {
            let _ = self.down_since.compare_exchange(
                0,
                stamp(self.origin),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    pub(crate) fn set_node(&self, node: Option<usize>) {
        self.node
            .store(node.unwrap_or(usize::MAX), Ordering::SeqCst);
    }

    pub(crate) fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::SeqCst);
    }

    pub(crate) fn beat(&self) {
        self.beat.store(stamp(self.origin), Ordering::SeqCst);
    }

    pub(crate) fn publish_wedged(&self) {
        self.wedged_publishes.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn probe_failed(&self) {
        self.failed_probes.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn snapshot(&self) -> BrokerHealth {
        BrokerHealth {
            ready: self.ready.load(Ordering::SeqCst),
            blocked: self.blocked.load(Ordering::SeqCst),
            down_for: since(self.origin, self.down_since.load(Ordering::SeqCst)),
            supervisor_silent_for: since(self.origin, self.beat.load(Ordering::SeqCst))
                .unwrap_or_default(),
            wedged_publishes: self.wedged_publishes.load(Ordering::SeqCst),
            failed_probes: self.failed_probes.load(Ordering::SeqCst),
            closed: false,
            node: self.nodes.get(self.node.load(Ordering::SeqCst)).cloned(),
        }
    }
}

/// The broker connection as its supervisor last saw it ([`Broker::health`](crate::Broker::health)).
/// Reading it takes no lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerHealth {
    /// Connected and the topology declared.
    pub ready: bool,
    /// The broker blocked the connection (`connection.blocked`: a memory or disk alarm):
    /// publishes wait until it unblocks.
    pub blocked: bool,
    /// How long the connection has not been usable (`None`: it is).
    pub down_for: Option<Duration>,
    /// How long since the supervisor task last turned. More than a few seconds means the
    /// runtime or lapin is wedged: nothing will repair the connection.
    pub supervisor_silent_for: Duration,
    /// Publishes that ran past their deadline while the connection looked usable (each asked
    /// for a rebuild).
    pub wedged_publishes: u64,
    /// Liveness probes that lapin did not answer in time (each asked for a rebuild).
    pub failed_probes: u64,
    /// [`Broker::close`](crate::Broker::close) was called (or the last handle dropped): the
    /// supervisor stopped on purpose.
    pub closed: bool,
    /// The node the connection is to (its URI, password redacted), `None` while there is no
    /// session. On a cluster it changes when the broker moves to another node.
    pub node: Option<String>,
}

impl BrokerHealth {
    /// Usable for publishing now: ready and not blocked.
    pub fn usable(&self) -> bool {
        self.ready && !self.blocked
    }
}

/// A consumer's vital signs, shared by its task, its [`Deliveries`](crate::Deliveries) and
/// the deliveries it handed out.
pub(crate) struct ConsumerVitals {
    origin: Instant,
    prefetch: usize,
    /// Consuming on a live channel (not re-creating, not recovering, not ended).
    active: AtomicBool,
    /// The consumer task ended (cancelled, broker closed, or the stream dropped).
    ended: AtomicBool,
    /// Which channel the consumer is on (bumped on each re-creation).
    pub(crate) channel_epoch: AtomicU64,
    /// Deliveries received and not settled yet.
    unsettled: AtomicUsize,
    /// Deliveries of the current channel dropped without being settled: each holds a prefetch
    /// slot until the channel closes.
    leaked: AtomicUsize,
    /// Last delivery received or settled.
    last_progress: AtomicU64,
}

impl ConsumerVitals {
    pub(crate) fn new(prefetch: u16) -> Self {
        let origin = Instant::now();
        Self {
            origin,
            prefetch: usize::from(prefetch.max(1)),
            active: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            channel_epoch: AtomicU64::new(0),
            unsettled: AtomicUsize::new(0),
            leaked: AtomicUsize::new(0),
            last_progress: AtomicU64::new(stamp(origin)),
        }
    }

    /// Now consuming on a new channel: what leaked on the old one is free again once it closes.
    pub(crate) fn on_new_channel(&self) -> u64 {
        self.leaked.store(0, Ordering::SeqCst);
        self.active.store(true, Ordering::SeqCst);
        self.channel_epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::SeqCst);
    }

    pub(crate) fn set_ended(&self) {
        self.active.store(false, Ordering::SeqCst);
        self.ended.store(true, Ordering::SeqCst);
    }

    pub(crate) fn received(&self) {
        self.unsettled.fetch_add(1, Ordering::SeqCst);
        self.progress();
    }

    /// A delivery was settled (`dropped`: dropped unsettled, on channel `epoch`).
    pub(crate) fn settled(&self, dropped: bool, epoch: u64) {
        let _ = self
            .unsettled
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(1))
            });
        if dropped {
            if epoch == self.channel_epoch.load(Ordering::SeqCst) {
                self.leaked.fetch_add(1, Ordering::SeqCst);
            }
        } else {
            self.progress();
        }
    }

    fn progress(&self) {
        self.last_progress
            .store(stamp(self.origin), Ordering::SeqCst);
    }

    pub(crate) fn snapshot(&self) -> ConsumerHealth {
        let leaked = self.leaked.load(Ordering::SeqCst);
        ConsumerHealth {
            active: self.active.load(Ordering::SeqCst),
            ended: self.ended.load(Ordering::SeqCst),
            unsettled: self.unsettled.load(Ordering::SeqCst),
            leaked,
            free_slots: self.prefetch.saturating_sub(leaked),
            idle_for: since(self.origin, self.last_progress.load(Ordering::SeqCst))
                .unwrap_or_default(),
        }
    }
}

/// A consumer as its task last saw it ([`Deliveries::health`](crate::Deliveries::health)).
/// Reading it takes no lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerHealth {
    /// Consuming on a live channel.
    pub active: bool,
    /// The consumer is gone for good (cancelled, closed, or its stream dropped).
    pub ended: bool,
    /// Deliveries handed out and not settled yet.
    pub unsettled: usize,
    /// Deliveries of the current channel dropped without being settled (a panic in a handler):
    /// each holds one of the prefetch slots until the channel closes.
    pub leaked: usize,
    /// Prefetch slots the broker can still fill (prefetch − leaked).
    pub free_slots: usize,
    /// How long since a delivery was last received or settled.
    pub idle_for: Duration,
}

/// What a delivery tells its consumer when it is settled or dropped.
pub(crate) struct SettleGauge {
    pub(crate) vitals: Arc<ConsumerVitals>,
    pub(crate) epoch: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_dropped_unsettled_holds_a_slot_until_the_channel_is_replaced() {
        let v = ConsumerVitals::new(2);
        let epoch = v.on_new_channel();
        v.received();
        v.received();
        v.settled(false, epoch);
        v.settled(true, epoch);
        let h = v.snapshot();
        assert_eq!((h.unsettled, h.leaked, h.free_slots), (0, 1, 1));
        v.on_new_channel();
        assert_eq!(v.snapshot().free_slots, 2);
        // A drop of a delivery of the old channel costs the new one nothing.
        v.received();
        v.settled(true, epoch);
        assert_eq!(v.snapshot().leaked, 0);
    }

    #[test]
    fn the_broker_is_down_from_creation_until_ready() {
        let v = Vitals::new(vec!["amqp://h1".into(), "amqp://h2".into()]);
        assert!(v.snapshot().down_for.is_some());
        assert_eq!(v.snapshot().node, None);
        v.set_node(Some(1));
        assert_eq!(v.snapshot().node.as_deref(), Some("amqp://h2"));
        v.set_ready(true);
        assert_eq!(v.snapshot().down_for, None);
        v.set_ready(false);
        assert!(v.snapshot().down_for.is_some());
        v.set_blocked(true);
        v.set_ready(true);
        assert!(!v.snapshot().usable());
    }
}
