//! What a delivery says about the pool's health as it arrives: redeliveries, and the queue lag
//! (how long the message waited between its publish and this consume).

use baton_amqp::Delivery;

use crate::metrics_names as m;

/// Counts a redelivery and records the delivery's queue lag (whole seconds: the AMQP
/// `timestamp` it was published with, on the system clock as the publisher's). A publisher
/// without a timestamp, or a clock behind the publisher's, records no lag.
pub(crate) fn record(delivery: &Delivery) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if delivery.redelivered {
        metrics::counter!(m::REDELIVERIES).increment(1);
    }
    if let Some(lag) = queue_lag_seconds(delivery.timestamp, now_ms) {
        metrics::histogram!(m::QUEUE_LAG).record(lag);
    }
}

/// Seconds between a publish `timestamp` (Unix seconds) and `now_ms`; `None` without a
/// timestamp or when `now` is before it by more than the timestamp's rounding.
pub(crate) fn queue_lag_seconds(timestamp: Option<u64>, now_ms: u64) -> Option<f64> {
    let published_ms = timestamp?.checked_mul(1000)?;
    if now_ms + 1000 < published_ms {
        return None;
    }
    Some(now_ms.saturating_sub(published_ms) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lag_is_the_time_since_the_publish_timestamp_and_none_without_one() {
        assert_eq!(queue_lag_seconds(Some(100), 102_500), Some(2.5));
        assert_eq!(queue_lag_seconds(Some(100), 100_000), Some(0.0));
        // Same second, our clock a little behind the publisher's: no negative lag.
        assert_eq!(queue_lag_seconds(Some(100), 99_800), Some(0.0));
        assert_eq!(queue_lag_seconds(Some(100), 50_000), None);
        assert_eq!(queue_lag_seconds(None, 50_000), None);
    }
}
