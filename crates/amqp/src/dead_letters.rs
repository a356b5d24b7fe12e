//! Reading the dead-letter queue without losing a message: a [`DeadLetterBatch`] holds up to a
//! bound of dead letters unacknowledged, in queue order, on a channel of its own; each one it
//! removes is acked, every other one goes back to its place when the batch is released.

use lapin::Acker;
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::error::Error;
use crate::message::{
    DEAD_LETTERED_AT_HEADER, DELIVERY_COUNT_HEADER, Headers, Outgoing, REASON_HEADER,
    headers_from_table,
};

/// Header a replayed message carries: the id of the dead letter it was replayed from.
pub const REPLAYED_FROM_HEADER: &str = "x-baton-replayed-from";

/// One message of the dead-letter queue.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// Stable id: the first 16 hex digits of SHA-256 over the body, the reason and the time it
    /// was dead-lettered (the same message reads with the same id every time).
    pub id: String,
    /// The body, as the worker received it.
    pub body: Vec<u8>,
    /// The original headers plus `x-baton-reason` and `x-baton-dead-lettered-at`.
    pub headers: Headers,
    /// How many times the dead-letter queue delivered it before (quorum queues only).
    pub delivery_count: Option<u64>,
}

impl DeadLetter {
    fn new(body: Vec<u8>, headers: Headers, delivery_count: Option<u64>) -> Self {
        let mut hash = Sha256::new();
        for part in [
            body.as_slice(),
            headers.get(REASON_HEADER).map_or(&[][..], |s| s.as_bytes()),
            headers
                .get(DEAD_LETTERED_AT_HEADER)
                .map_or(&[][..], |s| s.as_bytes()),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        let id = hash.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            id,
            body,
            headers,
            delivery_count,
        }
    }

    /// Why it was dead-lettered (`x-baton-reason`), empty if a foreign publisher left none.
    pub fn reason(&self) -> &str {
        self.headers.get(REASON_HEADER).map_or("", String::as_str)
    }

    /// When it was dead-lettered (`x-baton-dead-lettered-at`, RFC 3339 UTC).
    pub fn dead_lettered_at(&self) -> &str {
        self.headers
            .get(DEAD_LETTERED_AT_HEADER)
            .map_or("", String::as_str)
    }

    /// A string field of the JSON body (`execution_id`, `node_id`, `current_node`,
    /// `workflow_id`), at its top level or inside an envelope (`{"signal": {…}}`,
    /// `{"cancel": {…}}`), if the body is a JSON object that has it.
    pub fn body_field(&self, name: &str) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        let object = value.as_object()?;
        let field = object.get(name).or_else(|| {
            object
                .values()
                .filter_map(serde_json::Value::as_object)
                .find_map(|inner| inner.get(name))
        })?;
        field.as_str().map(str::to_owned)
    }

    /// The message to publish to `execution_queue` to replay it: the same body and original
    /// headers, without the dead-letter ones, plus [`REPLAYED_FROM_HEADER`].
    pub fn replay_message(&self, execution_queue: &str) -> Outgoing {
        let mut headers = self.headers.clone();
        headers.remove(REASON_HEADER);
        headers.remove(DEAD_LETTERED_AT_HEADER);
        headers.remove(DELIVERY_COUNT_HEADER);
        headers.insert(REPLAYED_FROM_HEADER.to_owned(), self.id.clone());
        Outgoing {
            headers,
            ..Outgoing::to_queue(execution_queue.to_owned(), self.body.clone())
        }
    }
}

/// Which dead letters an operation takes. Empty fields match everything.
#[derive(Clone, Debug, Default)]
pub struct DeadLetterFilter {
    /// Ids to take (exact).
    pub ids: Vec<String>,
    /// A piece of the reason (case-insensitive).
    pub reason: Option<String>,
    /// The execution id the body names (exact).
    pub execution: Option<String>,
}

impl DeadLetterFilter {
    /// Whether `letter` passes every filter given.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        (self.ids.is_empty() || self.ids.contains(&letter.id))
            && self.reason.as_ref().is_none_or(|piece| {
                letter
                    .reason()
                    .to_lowercase()
                    .contains(&piece.to_lowercase())
            })
            && self
                .execution
                .as_ref()
                .is_none_or(|id| letter.body_field("execution_id").as_deref() == Some(id))
    }
}

/// Up to a bound of dead letters, held unacknowledged in queue order. Release it with
/// [`release`](Self::release): what was not removed goes back to the queue, in its place
/// (dropping it does the same when the channel closes, later).
pub struct DeadLetterBatch {
    channel: Channel,
    held: Vec<(DeadLetter, Option<Acker>)>,
    broker: Broker,
}

impl DeadLetterBatch {
    /// The dead letters read, in queue order (the removed ones included).
    pub fn letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.held.iter().map(|(letter, _)| letter)
    }

    /// Removes the dead letter `id` from the queue for good (acks it). False if it is not in
    /// this batch or was removed already.
    pub async fn remove(&mut self, id: &str) -> Result<bool, Error> {
        let Some((_, acker)) = self
            .held
            .iter_mut()
            .find(|(l, a)| l.id == id && a.is_some())
        else {
            return Ok(false);
        };
        if let Some(acker) = acker.take() {
            acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(|e| Error::amqp("basic.ack", e))?;
        }
        Ok(true)
    }

    /// Replays the dead letter `id` once: publishes it to the execution queue, waits for the
    /// broker's confirm, and only then removes it from the dead-letter queue. A failure before
    /// the confirm leaves it in the dead-letter queue; one between the confirm and the ack can
    /// leave it in both (the engine deduplicates a hop by its hop id).
    pub async fn replay(&mut self, id: &str) -> Result<bool, Error> {
        let Some((letter, _)) = self.held.iter().find(|(l, a)| l.id == id && a.is_some()) else {
            return Ok(false);
        };
        let queue = &self.broker.options().topology.execution_queue;
        let message = letter.replay_message(queue);
        self.broker.publish(vec![message]).await?;
        self.remove(id).await
    }

    /// Puts every dead letter not removed back in the queue, in its place, and closes the
    /// channel.
    pub async fn release(mut self) -> Result<(), Error> {
        for (_, acker) in self.held.iter_mut().rev() {
            if let Some(acker) = acker.take() {
                acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await
                    .map_err(|e| Error::amqp("basic.nack", e))?;
            }
        }
        let _ = self.channel.close(200, "OK".into()).await;
        Ok(())
    }
}

impl Broker {
    /// Reads up to `limit` messages from the head of the dead-letter queue (`basic.get`, manual
    /// acknowledgement) and holds them: nothing leaves the queue unless the batch removes or
    /// replays it. Nobody consumes the dead-letter queue, so the batch is the whole head.
    pub async fn dead_letters(&self, limit: usize) -> Result<DeadLetterBatch, Error> {
        let shared = self.shared();
        let session = shared
            .ready_session(Some(Instant::now() + shared.opts.connect_timeout))
            .await?;
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(|e| Error::amqp("channel.open", e))?;
        let queue = shared.opts.topology.dead_letter_queue.clone();
        let mut held = Vec::new();
        while held.len() < limit {
            let got = channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(|e| Error::amqp("basic.get", e))?;
            let Some(got) = got else { break };
            let delivery = got.delivery;
            let (headers, count) = match delivery.properties.headers() {
                Some(table) => (
                    headers_from_table(table),
                    table
                        .inner()
                        .get(DELIVERY_COUNT_HEADER)
                        .and_then(crate::message::value_as_u64),
                ),
                None => (Headers::new(), None),
            };
            held.push((
                DeadLetter::new(delivery.data, headers, count),
                Some(delivery.acker),
            ));
        }
        Ok(DeadLetterBatch {
            channel,
            held,
            broker: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(body: &str, reason: &str, at: &str) -> DeadLetter {
        let headers = Headers::from([
            (REASON_HEADER.to_owned(), reason.to_owned()),
            (DEAD_LETTERED_AT_HEADER.to_owned(), at.to_owned()),
            ("traceparent".to_owned(), "00-x".to_owned()),
        ]);
        DeadLetter::new(body.as_bytes().to_vec(), headers, None)
    }

    #[test]
    fn a_dead_letter_has_the_same_id_every_time_it_is_read_and_another_letter_another() {
        let a = letter(
            r#"{"execution_id":"e1"}"#,
            "boom",
            "2026-01-01T00:00:00.000Z",
        );
        let again = letter(
            r#"{"execution_id":"e1"}"#,
            "boom",
            "2026-01-01T00:00:00.000Z",
        );
        let later = letter(
            r#"{"execution_id":"e1"}"#,
            "boom",
            "2026-01-01T00:00:01.000Z",
        );
        assert_eq!(a.id, again.id);
        assert_ne!(a.id, later.id);
        assert_eq!(a.id.len(), 16);
    }

    #[test]
    fn the_execution_is_read_from_a_hop_or_from_a_signal_envelope() {
        let hop = letter(r#"{"execution_id":"e1","node_id":"n"}"#, "r", "t");
        assert_eq!(hop.body_field("execution_id").as_deref(), Some("e1"));
        let signal = letter(
            r#"{"signal":{"execution_id":"e2","name":"go","data":null}}"#,
            "r",
            "t",
        );
        assert_eq!(signal.body_field("execution_id").as_deref(), Some("e2"));
        let garbage = letter("not json", "r", "t");
        assert_eq!(garbage.body_field("execution_id"), None);
    }

    #[test]
    fn filters_match_on_id_reason_piece_and_execution() {
        let a = letter(
            r#"{"execution_id":"e1","node_id":"n"}"#,
            "Crashed or stalled 3 workers",
            "t",
        );
        assert!(DeadLetterFilter::default().matches(&a));
        let by_reason = DeadLetterFilter {
            reason: Some("crashed".into()),
            ..Default::default()
        };
        assert!(by_reason.matches(&a));
        let other_execution = DeadLetterFilter {
            execution: Some("e2".into()),
            ..Default::default()
        };
        assert!(!other_execution.matches(&a));
        let by_id = DeadLetterFilter {
            ids: vec![a.id.clone()],
            execution: Some("e1".into()),
            ..Default::default()
        };
        assert!(by_id.matches(&a));
    }

    #[test]
    fn a_replay_goes_straight_to_the_execution_queue_without_the_dead_letter_headers() {
        let a = letter(r#"{"execution_id":"e1"}"#, "boom", "t");
        let out = a.replay_message("p.workflow.execution");
        assert!(out.direct);
        assert_eq!(out.routing_key, "p.workflow.execution");
        assert_eq!(out.body, a.body);
        assert!(!out.headers.contains_key(REASON_HEADER));
        assert!(!out.headers.contains_key(DEAD_LETTERED_AT_HEADER));
        assert_eq!(
            out.headers.get("traceparent").map(String::as_str),
            Some("00-x")
        );
        assert_eq!(out.headers.get(REPLAYED_FROM_HEADER), Some(&a.id));
    }
}
