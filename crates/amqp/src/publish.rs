//! Confirmed publishing: a batch is spread over the confirm-mode channels, its confirms awaited
//! together, and what a reconnect interrupted is sent again.

use crate::error::{Error, lapin_transient};
use crate::message::Outgoing;
use crate::session::{Session, Shared, channel_dead, is_not_found, open_confirm_channel};
use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::MutexGuard;
use tokio::time::{Instant, sleep, sleep_until};

/// Messages of a batch sent together (see [`Session::send`]).
const SEND_CHUNK: usize = 16;

impl Session {
    /// A publishing channel, preferring one nobody holds.
    async fn publisher(&self) -> (usize, MutexGuard<'_, Channel>) {
        let n = self.publishers.len();
        let start = self.next_publisher.fetch_add(1, Ordering::Relaxed) % n;
        for k in 0..n {
            let slot = (start + k) % n;
            if let Ok(guard) = self.publishers[slot].try_lock() {
                return (slot, guard);
            }
        }
        (start, self.publishers[start].lock().await)
    }

    /// Sends the `pending` messages on one channel under its lock (the lock keeps the confirm
    /// sequence numbers in the order of the frames); confirms are awaited by the caller. Returns
    /// the confirms, the messages not sent, and the error that stopped sending.
    async fn send(
        &self,
        exchange: &ShortString,
        batch: &[Outgoing],
        prepared: &[(ShortString, BasicProperties)],
        pending: &[usize],
    ) -> (
        usize,
        Vec<(usize, PublisherConfirm)>,
        Vec<usize>,
        Option<lapin::Error>,
    ) {
        let mut confirms = Vec::with_capacity(pending.len());
        let (slot, mut channel) = self.publisher().await;
        if let Err(e) = self.ensure_publisher(&mut channel).await {
            return (slot, confirms, pending.to_vec(), Some(e));
        }
        // Each `basic_publish` registers its confirm sequence number and queues its frames in
        // the same synchronous step (its first poll), and the channel lock keeps other tasks out,
        // so polling a chunk of them together keeps numbers and frames aligned while waiting for
        // the I/O loop once per chunk instead of once per message.
        let mut error = None;
        let mut unsent = Vec::new();
        let default_exchange = ShortString::from("");
        for chunk in pending.chunks(SEND_CHUNK) {
            if error.is_some() {
                unsent.extend_from_slice(chunk);
                continue;
            }
            let sends = chunk.iter().map(|&i| {
                let (routing_key, properties) = &prepared[i];
                let exchange = if batch[i].direct {
                    &default_exchange
                } else {
                    exchange
                };
                channel.basic_publish(
                    exchange.clone(),
                    routing_key.clone(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &batch[i].body,
                    properties.clone(),
                )
            });
            for (&i, sent) in chunk.iter().zip(join_all(sends).await) {
                match sent {
                    Ok(confirm) => confirms.push((i, confirm)),
                    Err(e) => {
                        unsent.push(i);
                        error.get_or_insert(e);
                    }
                }
            }
        }
        (slot, confirms, unsent, error)
    }

    /// Replaces a publishing channel that died (e.g. closed by a channel error) and makes sure
    /// it is in confirm mode. A recovering channel is left alone: publishing on it fails with an
    /// error that waits for its recovery.
    async fn ensure_publisher(&self, channel: &mut Channel) -> lapin::Result<()> {
        if channel_dead(channel) && self.connection.status().connected() {
            tracing::debug!("replacing a closed publishing channel");
            *channel = open_confirm_channel(&self.connection).await?;
        } else if channel.status().connected() && !channel.status().confirm() {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        Ok(())
    }
}

impl Shared {
    /// Waits until the publishing channel recovered, the session was replaced, or a short pause
    /// passed (the caller then looks for a ready session again).
    async fn wait_recovery(
        &self,
        session: &Session,
        slot: usize,
        error: Option<lapin::Error>,
        deadline: Instant,
    ) -> Result<(), Error> {
        // The lock is held by a sender, itself bounded by its deadline.
        let Ok(channel) = tokio::time::timeout_at(deadline, session.publishers[slot].lock()).await
        else {
            return Ok(());
        };
        let channel = channel.clone();
        let recovered = async {
            match error {
                Some(error) => {
                    if channel.wait_for_recovery(error).await.is_err() {
                        sleep(Duration::from_millis(50)).await;
                    }
                }
                None => sleep(Duration::from_millis(20)).await,
            }
        };
        let mut rx = self.state.subscribe();
        let generation = session.generation;
        let replaced = async {
            loop {
                if rx.changed().await.is_err() {
                    return;
                }
                let current = rx
                    .borrow_and_update()
                    .session
                    .as_ref()
                    .map(|s| s.generation);
                if current != Some(generation) {
                    return;
                }
            }
        };
        tokio::select! {
            () = recovered => Ok(()),
            () = replaced => Ok(()),
            () = self.closed.cancelled() => Err(Error::Closed),
            () = sleep_until(deadline) => Ok(()),
        }
    }

    pub(crate) async fn publish_prepared(
        &self,
        batch: &[Outgoing],
        prepared: &[(ShortString, BasicProperties)],
    ) -> Result<(), Error> {
        let started = Instant::now();
        let deadline = started + self.opts.publish_timeout;
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        let mut failure: Option<Error> = None;
        let mut last_error: Option<lapin::Error> = None;
        loop {
            let session = match self.ready_session(Some(deadline)).await {
                Ok(session) => session,
                Err(Error::Timeout { waited, .. }) => {
                    return Err(failure.unwrap_or(Error::Timeout { waited, last_error }));
                }
                Err(e) => return Err(e),
            };
            // Sending waits for the channel's lock and for lapin: bounded like the confirms.
            let sent = tokio::time::timeout_at(
                deadline,
                session.send(&self.exchange, batch, prepared, &pending),
            )
            .await;
            let Ok((slot, confirms, mut retry, mut recover_from)) = sent else {
                self.publish_stuck(session.generation, started.elapsed());
                return Err(failure.unwrap_or(Error::Timeout {
                    waited: started.elapsed(),
                    last_error,
                }));
            };
            let confirmed = join_all(
                confirms
                    .into_iter()
                    .map(|(i, confirm)| async move { (i, confirm.await) }),
            );
            // A silently dead connection is only detected by missed heartbeats: bound the wait.
            let Ok(outcomes) = tokio::time::timeout_at(deadline, confirmed).await else {
                self.publish_stuck(session.generation, started.elapsed());
                return Err(failure.unwrap_or(Error::Timeout {
                    waited: started.elapsed(),
                    last_error: recover_from,
                }));
            };
            for (i, outcome) in outcomes {
                match outcome {
                    Ok(Confirmation::Ack(None)) => {}
                    Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => {
                        // The broker's return names the message (lapin attaches it to the
                        // next confirm, which with multiple-acks may be another one's).
                        failure.get_or_insert(Error::Unroutable {
                            routing_key: returned.delivery.routing_key.to_string(),
                            reply_code: returned.reply_code,
                            reply_text: returned.reply_text.to_string(),
                        });
                    }
                    Ok(Confirmation::Nack(None)) => {
                        failure.get_or_insert(Error::Nacked {
                            routing_key: batch[i].routing_key.clone(),
                        });
                    }
                    // The channel lost confirm mode: `ensure_publisher` restores it.
                    Ok(Confirmation::NotRequested) => retry.push(i),
                    Err(e) if lapin_transient(&e) => {
                        retry.push(i);
                        recover_from.get_or_insert(e);
                    }
                    Err(e) => {
                        if is_not_found(&e) {
                            // The exchange is gone: declare it again for the next publish.
                            self.request_redeclare();
                        }
                        failure.get_or_insert(Error::amqp("basic.publish", e));
                    }
                }
            }
            if retry.is_empty() {
                return failure.map_or(Ok(()), Err);
            }
            if let Some(e) = &recover_from
                && !lapin_transient(e)
            {
                return Err(failure.unwrap_or_else(|| Error::amqp("basic.publish", e.clone())));
            }
            if Instant::now() >= deadline {
                return Err(failure.unwrap_or(Error::Timeout {
                    waited: started.elapsed(),
                    last_error: recover_from,
                }));
            }
            tracing::debug!(
                unconfirmed = retry.len(),
                error = ?recover_from.as_ref().map(ToString::to_string),
                "publish interrupted; waiting for the connection to recover"
            );
            retry.sort_unstable();
            pending = retry;
            last_error.clone_from(&recover_from);
            self.wait_recovery(&session, slot, recover_from, deadline)
                .await?;
        }
    }
}
