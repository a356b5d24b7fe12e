//! The delivery budget: a message that crashed or stalled `BATON_MAX_DELIVERIES` workers is
//! dead-lettered on its next delivery instead of killing one more (issue 13: crash loops).
//!
//! The count must survive the crash it counts, so it lives outside the process: in Redis
//! ([`baton_redis::DeliveryCounts`], keyed by the body), and also the broker's
//! `x-delivery-count` where the queue has one (quorum queues; the larger count wins). A first delivery costs nothing. Deliveries a
//! worker handed back alive after a transient failure are recorded as such and never count as
//! crashes. When Redis cannot be asked, the message is processed anyway: losing a message is
//! worse than one more delivery.

use baton_amqp::Delivery;
use baton_redis::{DeliveryCounts, DeliveryTally};

/// The budget's verdict on one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Run,
    /// It crashed or stalled this many workers, the budget or more: dead-letter it unprocessed.
    Spent { crashes: u64 },
}

/// What the broker says about a delivery, as far as the budget cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub redelivered: bool,
    /// Quorum queues: deliveries before this one (`x-delivery-count`).
    pub delivery_count: Option<u64>,
}

impl From<&Delivery> for Seen {
    fn from(d: &Delivery) -> Self {
        Self {
            redelivered: d.redelivered,
            delivery_count: d.delivery_count,
        }
    }
}

/// Where the count comes from for a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A first delivery: nothing to count.
    Free,
    /// The broker counted it (quorum queues); Redis counts it too (see `judge`).
    Broker(u64),
    /// Count it in Redis (classic queues).
    Redis,
}

/// Where a delivery's count comes from.
pub fn source(seen: Seen) -> Source {
    match seen.delivery_count {
        Some(n) if n > 0 => Source::Broker(n),
        Some(_) => Source::Free,
        None if seen.redelivered => Source::Redis,
        None => Source::Free,
    }
}

/// The verdict for `crashes` against a budget of `max_deliveries` deliveries: the delivery
/// after the `max_deliveries`-th crash is dead-lettered.
pub fn verdict(crashes: u64, max_deliveries: u64) -> Verdict {
    if crashes >= max_deliveries {
        Verdict::Spent { crashes }
    } else {
        Verdict::Run
    }
}

/// Counts `delivery` (if it is a redelivery) and judges it. Runs before anything else looks
/// at the message: the crash being counted may be in parsing it.
pub async fn judge(counts: &DeliveryCounts, delivery: &Delivery, max_deliveries: u64) -> Verdict {
    let source = source(Seen::from(delivery));
    // A quorum queue's count starts again for a copy published anew (a hop re-checked after
    // a dead worker's claim, RFC 0004 "Duplicates"), so its redeliveries are counted in Redis
    // too, and the larger count wins.
    let tally = match source {
        Source::Free => return Verdict::Run,
        Source::Broker(n) => counts.redelivered(&delivery.body).await.map(|t| {
            let by_broker = n > t.redeliveries;
            (
                DeliveryTally {
                    redeliveries: n.max(t.redeliveries),
                    handed_back: t.handed_back,
                },
                if by_broker {
                    "x-delivery-count"
                } else {
                    "redis"
                },
            )
        }),
        Source::Redis => counts
            .redelivered(&delivery.body)
            .await
            .map(|t| (t, "redis")),
    };
    match tally {
        Ok((tally, counted_by)) => {
            let verdict = verdict(tally.crashes(), max_deliveries);
            if let Verdict::Spent { crashes } = verdict {
                tracing::error!(crashes, counted_by = %counted_by, "delivery budget spent");
            }
            verdict
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot count a redelivery (Redis); processing it anyway");
            Verdict::Run
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_delivery_is_never_counted() {
        let first = Seen {
            redelivered: false,
            delivery_count: None,
        };
        assert_eq!(source(first), Source::Free);
        let quorum_first = Seen {
            redelivered: false,
            delivery_count: Some(0),
        };
        assert_eq!(source(quorum_first), Source::Free);
    }

    #[test]
    fn a_classic_redelivery_is_counted_in_redis_and_a_quorum_one_by_the_broker() {
        let classic = Seen {
            redelivered: true,
            delivery_count: None,
        };
        assert_eq!(source(classic), Source::Redis);
        let quorum = Seen {
            redelivered: true,
            delivery_count: Some(2),
        };
        assert_eq!(source(quorum), Source::Broker(2));
    }

    #[test]
    fn the_delivery_after_the_budgets_last_crash_is_dead_lettered() {
        assert_eq!(verdict(0, 3), Verdict::Run);
        assert_eq!(verdict(2, 3), Verdict::Run);
        assert_eq!(verdict(3, 3), Verdict::Spent { crashes: 3 });
        assert_eq!(verdict(7, 3), Verdict::Spent { crashes: 7 });
    }

    #[test]
    fn deliveries_handed_back_alive_are_not_crashes() {
        let tally = DeliveryTally {
            redeliveries: 5,
            handed_back: 4,
        };
        assert_eq!(tally.crashes(), 1);
        assert_eq!(verdict(tally.crashes(), 3), Verdict::Run);
        let more_handed_back_than_seen = DeliveryTally {
            redeliveries: 1,
            handed_back: 3,
        };
        assert_eq!(more_handed_back_than_seen.crashes(), 0);
    }
}
