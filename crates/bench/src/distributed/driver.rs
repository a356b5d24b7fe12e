//! The bench's driver: publishes start messages on the run's execution queue (by reference to
//! a definition it stored once, as the master does by default, or Rune's inline shape) and hands
//! the run's statuses and completions to the phases as events stamped with their receipt time,
//! drained from the run's own queues (or from a private subscription with `--subscription`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use baton_amqp::{Broker, Deliveries, Outgoing};
use baton_core::message::{ExecutionStatus, NodeStatus};
use baton_redis::DefinitionStore;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

#[derive(Deserialize)]
struct StatusLite {
    execution_id: String,
    node_id: String,
    status: NodeStatus,
    executed_at: String,
}

#[derive(Deserialize)]
struct CompletionLite {
    execution_id: String,
    status: ExecutionStatus,
    #[serde(default)]
    failure_reason: Option<String>,
}

pub(super) enum Ev {
    Status {
        exec: String,
        node: String,
        status: NodeStatus,
        executed_ns: i64,
        recv: Instant,
        bytes: usize,
    },
    Completion {
        exec: String,
        status: ExecutionStatus,
        reason: Option<String>,
        recv: Instant,
    },
}

pub(super) struct Driver {
    pub(super) broker: Broker,
    pub(super) execution_queue: String,
    /// Events arrive in bursts (one send per burst of deliveries: fewer wake-ups of this task).
    pub(super) rx: mpsc::UnboundedReceiver<Vec<Ev>>,
    pub(super) ready: std::collections::VecDeque<Ev>,
    pub(super) seq: AtomicU64,
    pub(super) run_id: String,
    pub(super) publish_errors: Arc<AtomicU64>,
    /// Where the workers read definitions: set, starts name a stored definition by hash (RFC
    /// 0011); `None`, they carry the workflow inline.
    pub(super) definitions: Option<DefinitionStore>,
    /// The workflows stored so far and their hashes (a handful: compared, not hashed, per start).
    pub(super) stored: Mutex<Vec<(Value, String)>>,
}

impl Driver {
    pub(super) fn new_id(&self) -> String {
        format!(
            "{}-{}",
            self.run_id,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Stores `workflow` where the workers read definitions (once), so that its starts name it
    /// by hash; nothing when starting inline.
    pub(super) async fn store_definition(&self, workflow: &Value) -> anyhow::Result<()> {
        let Some(definitions) = &self.definitions else {
            return Ok(());
        };
        if self.reference_of(workflow).is_some() {
            return Ok(());
        }
        let reference = baton_core::graph::content_hash(workflow);
        definitions.put(&reference, &workflow.to_string()).await?;
        self.stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((workflow.clone(), reference));
        Ok(())
    }

    fn reference_of(&self, workflow: &Value) -> Option<String> {
        let stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        stored
            .iter()
            .find(|(w, _)| w == workflow)
            .map(|(_, r)| r.clone())
    }

    fn start_message(&self, execution_id: &str, workflow: &Value, input: &Value) -> Outgoing {
        let name = workflow.get("name").and_then(Value::as_str).unwrap_or("");
        let mut context = serde_json::Map::new();
        baton_core::wire::seed_input(&mut context, input.clone());
        let start = match self.reference_of(workflow) {
            Some(reference) => baton_core::wire::RuneStart::by_reference(
                name,
                execution_id,
                "$start",
                reference,
                context,
            ),
            None => baton_core::wire::RuneStart::new(
                name,
                execution_id,
                "$start",
                workflow.clone(),
                context,
            ),
        };
        Outgoing::new(
            self.execution_queue.clone(),
            serde_json::to_vec(&start).unwrap_or_default(),
        )
    }

    pub(super) async fn submit(
        &self,
        execution_id: &str,
        workflow: &Value,
        input: &Value,
    ) -> anyhow::Result<()> {
        self.broker
            .publish(vec![self.start_message(execution_id, workflow, input)])
            .await?;
        Ok(())
    }

    /// Publishes without waiting for the confirm (errors are counted).
    pub(super) fn submit_detached(&self, execution_id: &str, workflow: &Value, input: &Value) {
        let msg = self.start_message(execution_id, workflow, input);
        let (broker, errors) = (self.broker.clone(), self.publish_errors.clone());
        tokio::spawn(async move {
            if broker.publish(vec![msg]).await.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Drops events left over from an earlier phase.
    pub(super) fn drain(&mut self) {
        self.ready.clear();
        while self.rx.try_recv().is_ok() {}
    }

    /// The next event, or `None` once `until` passed. A burst may hold no event (deliveries
    /// that are not events this driver reads, such as `compact` status records): the wait
    /// goes on, it is not mistaken for the deadline.
    pub(super) async fn next(&mut self, until: Instant) -> anyhow::Result<Option<Ev>> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                return Ok(Some(ev));
            }
            match timeout(
                until.saturating_duration_since(Instant::now()),
                self.rx.recv(),
            )
            .await
            {
                Ok(Some(burst)) => self.ready.extend(burst),
                Ok(None) => anyhow::bail!("event consumers stopped (broker connection lost?)"),
                Err(_) => return Ok(None),
            }
        }
    }
}

fn parse_rfc3339_ns(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

fn parse_event(body: &[u8], is_completion: bool, recv: Instant) -> Option<Ev> {
    if is_completion {
        let c = serde_json::from_slice::<CompletionLite>(body).ok()?;
        Some(Ev::Completion {
            exec: c.execution_id,
            status: c.status,
            reason: c.failure_reason,
            recv,
        })
    } else {
        let s = serde_json::from_slice::<StatusLite>(body).ok()?;
        Some(Ev::Status {
            executed_ns: parse_rfc3339_ns(&s.executed_at),
            exec: s.execution_id,
            node: s.node_id,
            status: s.status,
            recv,
            bytes: body.len(),
        })
    }
}

/// Parses and acks deliveries of a private subscription (`--subscription`), forwarding them as
/// events stamped with their receipt time, until `stop` fires (then cancels the consumer).
pub(super) fn pump(
    mut deliveries: Deliveries,
    completion_key: String,
    tx: mpsc::UnboundedSender<Vec<Ev>>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let d = tokio::select! {
                d = deliveries.next() => match d { Some(d) => d, None => return },
                _ = stop.wait_for(|s| *s) => break,
            };
            let ev = parse_event(&d.body, d.routing_key == completion_key, Instant::now());
            let _ = d.ack().await;
            if let Some(ev) = ev {
                let _ = tx.send(vec![ev]);
            }
        }
        deliveries.cancel().await;
    })
}

/// Drains the run's own status and completion queues like a monitor would, with the least
/// client work: its own connection, one channel per queue, prefetch 1000. With `ack_each`
/// every delivery is acked on its own (as hop-ceiling's status drainer does: the broker gets
/// one `basic.ack` per delivery), the acks of a burst of deliveries that are ready together
/// sent at once rather than each awaited before the next (lapin hands every ack to its I/O
/// thread and back: waiting on each costs two thread wake-ups per status). Otherwise each burst
/// is acked with one `multiple` ack. Stops when `stop` fires.
pub(super) async fn drain(
    url: &str,
    status_queue: String,
    completion_queue: String,
    ack_each: bool,
    tx: mpsc::UnboundedSender<Vec<Ev>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(lapin::Connection, Vec<JoinHandle<()>>)> {
    use futures_util::FutureExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    const MAX_BURST: usize = 256;
    // `url` may be a comma-separated list of cluster nodes: the first that answers.
    let mut conn = Err(anyhow::anyhow!("no AMQP URL given"));
    for node in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        match lapin::Connection::connect(node, lapin::ConnectionProperties::default()).await {
            Ok(c) => {
                conn = Ok(c);
                break;
            }
            Err(e) => conn = Err(e.into()),
        }
    }
    let conn = conn?;
    let mut tasks = Vec::new();
    for (queue, is_completion) in [(status_queue, false), (completion_queue, true)] {
        let ch = conn.create_channel().await?;
        ch.basic_qos(1000, BasicQosOptions::default()).await?;
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await?;
        let (tx, mut stop) = (tx.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            'outer: loop {
                let mut d = tokio::select! {
                    d = consumer.next() => match d { Some(Ok(d)) => d, _ => return },
                    _ = stop.wait_for(|s| *s) => break,
                };
                let mut burst = Vec::new();
                let mut tags = Vec::new();
                let mut ended = false;
                loop {
                    if let Some(ev) = parse_event(&d.data, is_completion, Instant::now()) {
                        burst.push(ev);
                    }
                    tags.push(d.delivery_tag);
                    let next = if tags.len() >= MAX_BURST {
                        None
                    } else {
                        consumer.next().now_or_never()
                    };
                    match next {
                        Some(Some(Ok(n))) => d = n,
                        Some(_) => {
                            ended = true;
                            break;
                        }
                        None => break,
                    }
                }
                if ack_each {
                    let acks = tags
                        .iter()
                        .map(|&tag| ch.basic_ack(tag, BasicAckOptions::default()));
                    futures_util::future::join_all(acks).await;
                } else if let Some(&last) = tags.last() {
                    let _ = ch.basic_ack(last, BasicAckOptions { multiple: true }).await;
                }
                if tx.send(burst).is_err() || ended {
                    break 'outer;
                }
            }
            let _ = ch.close(200, "done".into()).await;
        }));
    }
    Ok((conn, tasks))
}
