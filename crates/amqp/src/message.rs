//! Outgoing messages, deliveries and header conversion.

use crate::error::{Error, lapin_transient};
use crate::health::SettleGauge;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Acker, BasicProperties, Channel};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Bound on settling a delivery: an ack waits for lapin's I/O loop, which may be wedged.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// String message headers (e.g. `traceparent`). Sent as AMQP long strings; on receipt every
/// scalar header is rendered as a string (numbers in decimal, booleans as `true`/`false`);
/// arrays and tables (such as the broker's `x-death`) are left out.
pub type Headers = BTreeMap<String, String>;

/// Header carrying the reason a message was dead-lettered by [`Broker::dead_letter`](crate::Broker::dead_letter).
pub const REASON_HEADER: &str = "x-baton-reason";
/// Header carrying when a message was dead-lettered (RFC 3339, UTC, milliseconds).
pub const DEAD_LETTERED_AT_HEADER: &str = "x-baton-dead-lettered-at";
/// Header quorum queues add on redelivery (absent on the first delivery).
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// A message to publish through the exchange (or, [`to_queue`](Outgoing::to_queue), straight
/// to one queue).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outgoing {
    /// Routing key; Baton binds each queue with its own name, so this is the queue name.
    pub routing_key: String,
    /// The body (JSON; published with content-type `application/json`).
    pub body: Vec<u8>,
    /// String headers.
    pub headers: Headers,
    /// Published through the default exchange to the queue named `routing_key`, skipping the
    /// topic exchange and whatever else is bound to it there.
    pub direct: bool,
}

impl Outgoing {
    /// A message without headers.
    pub fn new(routing_key: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            routing_key: routing_key.into(),
            body: body.into(),
            headers: Headers::new(),
            direct: false,
        }
    }

    /// A message for the queue `queue` only, through the default exchange. Topic routing is a
    /// measurable part of the broker's cost per publish (RabbitMQ matches the key word by word
    /// against every binding); messages no one else may watch, such as hop messages between
    /// workers, do without it.
    pub fn to_queue(queue: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            direct: true,
            ..Self::new(queue, body)
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// A message received by a consumer. Settle it exactly once with [`ack`](Delivery::ack),
/// [`nack_requeue`](Delivery::nack_requeue) or [`reject`](Delivery::reject); dropping it unsettled
/// leaves it unacknowledged until its channel closes (then the broker redelivers it).
pub struct Delivery {
    /// The body.
    pub body: Vec<u8>,
    /// String headers (see [`Headers`]).
    pub headers: Headers,
    /// Whether the broker delivered this message before (to this or another consumer).
    pub redelivered: bool,
    /// Delivery tag on its channel.
    pub delivery_tag: u64,
    /// The routing key it was published with.
    pub routing_key: String,
    /// The exchange it was published to (empty: the default exchange).
    pub exchange: String,
    /// Quorum queues: how many times it was delivered before (`x-delivery-count`).
    pub delivery_count: Option<u64>,
    /// When it was published (the AMQP `timestamp` property, Unix seconds), if the publisher
    /// set it ([`Broker::publish`](crate::Broker::publish) does).
    pub timestamp: Option<u64>,
    acker: Acker,
    gauge: GaugeGuard,
    // Keeps the consumer's channel open while this delivery is unsettled, even after the
    // consumer was cancelled: closing the channel would requeue it and make the ack fail.
    // `acked` sends its ack on it.
    channel: Arc<Channel>,
}

impl Delivery {
    pub(crate) fn from_lapin(
        delivery: lapin::message::Delivery,
        channel: Arc<Channel>,
        gauge: Option<SettleGauge>,
    ) -> Self {
        let lapin::message::Delivery {
            delivery_tag,
            exchange,
            routing_key,
            redelivered,
            properties,
            data,
            acker,
        } = delivery;
        let (headers, delivery_count) = match properties.headers() {
            Some(table) => {
                let count = table
                    .inner()
                    .get(DELIVERY_COUNT_HEADER)
                    .and_then(value_as_u64);
                (headers_from_table(table), count)
            }
            None => (Headers::new(), None),
        };
        let timestamp = *properties.timestamp();
        Self {
            body: data,
            headers,
            redelivered,
            delivery_tag,
            routing_key: routing_key.to_string(),
            exchange: exchange.to_string(),
            delivery_count,
            timestamp,
            acker,
            gauge: GaugeGuard(gauge),
            channel,
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Acknowledges the message: the broker forgets it. A delivery whose channel or connection
    /// died meanwhile is acknowledged as a no-op: the broker redelivers it.
    pub async fn ack(self) -> Result<(), Error> {
        self.acked().await.map(drop)
    }

    /// [`ack`](Self::ack), telling whether the ack left on a live channel: `false` when the
    /// channel or connection died first (the broker redelivers the message, `redelivered`, as
    /// it would after a crash, though this consumer is alive and did its work).
    pub async fn acked(mut self) -> Result<bool, Error> {
        self.gauge.settle();
        // Every hop ends here, so the ack goes straight to the channel: lapin's `Acker` hands
        // it to its internal RPC task, which spawns one more task to send it (a thread
        // crossing and an aligned allocation per hop, RFC 0011). What the `Acker` adds is kept:
        // a delivery of a channel that failed since (poisoned: after lapin's recovery its tag
        // would name another message) is not acked, the broker redelivers it.
        if !self.acker.usable() {
            return self.settled("basic.ack", Ok(Ok(false)));
        }
        let (channel, tag) = (self.channel.clone(), self.delivery_tag);
        let result = within_settle_deadline(async move {
            channel
                .basic_ack(tag, BasicAckOptions::default())
                .await
                .map(|()| true)
        })
        .await;
        self.settled("basic.ack", result)
    }

    /// Negatively acknowledges the message and requeues it; it is redelivered with
    /// `redelivered = true`. A no-op when the channel died (the broker redelivers it anyway).
    pub async fn nack_requeue(mut self) -> Result<(), Error> {
        self.gauge.settle();
        let options = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        let result = within_settle_deadline(self.acker.nack(options)).await;
        self.settled("basic.nack", result).map(drop)
    }

    /// Rejects the message without requeueing it: the broker drops it (or dead-letters it if
    /// the queue has a dead-letter exchange). Use [`Broker::dead_letter`](crate::Broker::dead_letter)
    /// first to keep it. A no-op when the channel died (the broker then redelivers it).
    pub async fn reject(mut self) -> Result<(), Error> {
        self.gauge.settle();
        let result =
            within_settle_deadline(self.acker.reject(BasicRejectOptions { requeue: false })).await;
        self.settled("basic.reject", result).map(drop)
    }

    fn settled(
        &self,
        op: &'static str,
        result: Result<lapin::Result<bool>, tokio::time::error::Elapsed>,
    ) -> Result<bool, Error> {
        let Ok(result) = result else {
            // lapin did not send it in time: the broker redelivers the message if it never
            // arrives, and the watchdog sees the connection make no progress.
            return Err(Error::Timeout {
                waited: SETTLE_TIMEOUT,
                last_error: None,
            });
        };
        match result {
            Ok(true) => Ok(true),
            Ok(false) => {
                tracing::debug!(
                    op,
                    delivery_tag = self.delivery_tag,
                    "delivery from a closed channel: not settled, the broker redelivers it"
                );
                Ok(false)
            }
            Err(e) if self.acker.poisoned() || lapin_transient(&e) => {
                tracing::debug!(
                    op,
                    delivery_tag = self.delivery_tag,
                    error = %e,
                    "channel lost while settling: the broker redelivers the message"
                );
                Ok(false)
            }
            Err(e) => Err(Error::amqp(op, e)),
        }
    }
}

async fn within_settle_deadline<F: std::future::Future>(
    settle: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(SETTLE_TIMEOUT, settle).await
}

/// Tells the consumer's vitals when its delivery is settled, or dropped unsettled (then it
/// holds a prefetch slot until its channel closes).
struct GaugeGuard(Option<SettleGauge>);

impl GaugeGuard {
    fn settle(&mut self) {
        if let Some(gauge) = self.0.take() {
            gauge.vitals.settled(false, gauge.epoch);
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        if let Some(gauge) = self.0.take() {
            gauge.vitals.settled(true, gauge.epoch);
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("delivery_tag", &self.delivery_tag)
            .field("routing_key", &self.routing_key)
            .field("redelivered", &self.redelivered)
            .field("delivery_count", &self.delivery_count)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

pub(crate) fn short_string(what: &str, value: &str) -> Result<ShortString, Error> {
    ShortString::try_new(value)
        .map_err(|_| Error::Config(format!("{what} longer than 255 bytes: {value:.40}…")))
}

pub(crate) fn headers_to_table(headers: &Headers) -> Result<FieldTable, Error> {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        table.insert(
            short_string("header name", name)?,
            AMQPValue::LongString(LongString::from(value.as_bytes())),
        );
    }
    Ok(table)
}

/// Properties of every publish: persistent, JSON, string headers.
/// The most bytes a dead-lettered message's header value (the reason included) keeps.
pub const MAX_HEADER_BYTES: usize = 1024;
/// The most headers a dead-lettered message keeps (besides the reason and the time).
pub const MAX_HEADERS: usize = 32;

/// `text` cut to at most `max` bytes on a char boundary, ending with a marker that says how
/// long it was.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let marker = format!("… [{} bytes cut]", text.len());
    let mut end = max.saturating_sub(marker.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

/// At most [`MAX_HEADERS`] headers, names and values cut to [`MAX_HEADER_BYTES`].
pub(crate) fn bounded_headers(headers: Headers) -> Headers {
    headers
        .into_iter()
        .take(MAX_HEADERS)
        .map(|(k, v)| (bounded(&k, 255), bounded(&v, MAX_HEADER_BYTES)))
        .collect()
}

pub(crate) fn publish_properties(headers: &Headers) -> Result<BasicProperties, Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from("application/json"))
        .with_timestamp(now);
    Ok(if headers.is_empty() {
        properties
    } else {
        properties.with_headers(headers_to_table(headers)?)
    })
}

pub(crate) fn headers_from_table(table: &FieldTable) -> Headers {
    table
        .inner()
        .iter()
        .filter_map(|(k, v)| value_as_string(v).map(|s| (k.to_string(), s)))
        .collect()
}

fn value_as_string(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned(),
        _ => return None,
    })
}

pub(crate) fn value_as_u64(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::Timestamp(n) => Some(*n),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_scalars_render_as_strings() {
        let mut headers = Headers::new();
        headers.insert("traceparent".into(), "00-abc-def-01".into());
        headers.insert("empty".into(), String::new());
        let mut table = headers_to_table(&headers).unwrap();
        assert_eq!(headers_from_table(&table), headers);
        table.insert("x-delivery-count".into(), AMQPValue::LongLongInt(2));
        table.insert("flag".into(), AMQPValue::Boolean(true));
        table.insert("x-death".into(), AMQPValue::FieldArray(Vec::new().into()));
        let back = headers_from_table(&table);
        assert_eq!(back["x-delivery-count"], "2");
        assert_eq!(back["flag"], "true");
        assert!(!back.contains_key("x-death"));
        assert_eq!(
            value_as_u64(&AMQPValue::LongLongInt(3)),
            Some(3),
            "delivery count"
        );
    }

    #[test]
    fn overlong_header_name_is_a_config_error() {
        let mut headers = Headers::new();
        headers.insert("h".repeat(256), "v".into());
        let err = headers_to_table(&headers).unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(!err.is_transient());
    }

    #[test]
    fn a_200_kb_reason_or_header_is_cut_to_a_kilobyte_on_a_char_boundary() {
        let field = "ü".repeat(100_000);
        let reason = bounded(
            &format!("invalid value: string \"{field}\""),
            MAX_HEADER_BYTES,
        );
        assert!(reason.len() <= MAX_HEADER_BYTES, "{}", reason.len());
        assert!(reason.ends_with("bytes cut]"), "{reason}");
        let mut headers = Headers::new();
        headers.insert("big".into(), field.clone());
        for i in 0..100 {
            headers.insert(format!("h{i}"), "v".into());
        }
        let kept = bounded_headers(headers);
        assert!(kept.len() <= MAX_HEADERS);
        assert!(kept.values().all(|v| v.len() <= MAX_HEADER_BYTES));
        assert!(publish_properties(&kept).is_ok());
        assert_eq!(bounded("short", MAX_HEADER_BYTES), "short");
    }

    #[test]
    fn publish_properties_are_persistent_json() {
        let p = publish_properties(&Headers::new()).unwrap();
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert!(p.headers().is_none());
    }
}
