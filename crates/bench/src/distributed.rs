//! The distributed runtime under load: one `baton worker` child process (so its CPU and peak
//! RSS are its own) on RabbitMQ + Redis with queue and key prefixes of this run only, and a
//! driver in this process that publishes Rune start messages and follows statuses and
//! completions.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton_amqp::{AmqpOptions, Broker, Deliveries, Outgoing};
use baton_core::message::{ExecutionStatus, NodeStatus};
use baton_settings::ConnectionSettings;
use baton_testkit::{WorkerProcess, delete_keys, short_unique_id, try_free_port};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use crate::procfs::{self, CpuWindow, Snapshot, Watched};
use crate::stats::Summary;
use crate::workflows;

/// How the distributed phases run.
#[derive(Debug, Clone)]
pub struct DistributedOptions {
    /// The `baton` executable (started as `baton worker`).
    pub baton_exe: PathBuf,
    /// Passed to the worker as `--config`.
    pub worker_config: Option<PathBuf>,
    /// RabbitMQ, Redis and the queue type; each run uses queue and key prefixes of its own
    /// instead of the ones given here.
    pub connection: ConnectionSettings,
    pub secs: f64,
    pub warmup_secs: f64,
    pub chains: usize,
    pub chain_len: usize,
    pub sequential_runs: usize,
    pub fanout_width: usize,
    pub fanout_runs: usize,
    /// Follow events on a private subscription queue instead of draining the run's own
    /// status and completion queues (every event is then routed to two queues).
    pub subscription: bool,
    /// Wait at most this long for the box to be quiet (< 15 % busy) before each phase.
    pub quiet_wait_secs: f64,
    /// Which of the phases `a`, `b`, `c` to run.
    pub phases: String,
    /// The driver acks every status on its own (like hop-ceiling's drainer) instead of acking
    /// bursts at once.
    pub ack_each: bool,
    /// Rounds of (b); the median round is reported.
    pub rounds: usize,
    /// hop-ceiling, run at K=64 before each round of (b).
    pub ceiling_exe: Option<PathBuf>,
    pub ceiling_secs: f64,
}

/// One round of (b), with the ceiling measured just before it (when `ceiling_exe` is given).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    pub hops_per_s: f64,
    pub ceiling_hops_per_s: Option<f64>,
    pub ratio: Option<f64>,
}

/// (a) one execution at a time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SequentialReport {
    pub executions: usize,
    /// Node N `running` → node N+1 `running`, from the statuses' `executed_at` (the worker's
    /// clock), ms.
    pub hop_ms: Summary,
    /// The same, as the driver received the statuses (includes status batching), ms.
    pub hop_received_ms: Summary,
    /// Start message published → completion received, ms.
    pub execution_ms: Summary,
    /// `execution_ms / chain length`, ms.
    pub per_hop_ms: Summary,
    pub cpu: CpuWindow,
}

/// (b) many chains in flight.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ThroughputReport {
    pub chains: usize,
    pub window_s: f64,
    /// Node runs finished in the window (their `success` statuses received).
    pub hops: u64,
    pub hops_per_s: f64,
    pub executions_completed: u64,
    pub hop_ms: Summary,
    pub execution_ms: Summary,
    pub cpu: CpuWindow,
    pub cpu_us_per_hop_worker: f64,
    pub cpu_us_per_hop_broker: f64,
    pub cpu_us_per_hop_redis: f64,
    pub cpu_us_per_hop_driver: f64,
    /// Worker + broker + Redis + driver.
    pub cpu_us_per_hop_total: f64,
    /// Status messages received per hop in the window (2: `running` and `success`).
    pub statuses_per_hop: f64,
    /// Mean size of a status message body, bytes.
    pub status_bytes_mean: f64,
    pub errors: u64,
}

/// (c) fan-out → join, one at a time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FanoutReport {
    pub width: usize,
    pub executions: usize,
    pub hops_per_execution: u64,
    pub execution_ms: Summary,
    /// `hops_per_execution / mean execution time`.
    pub hops_per_s: f64,
    pub cpu: CpuWindow,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DistributedReport {
    pub queue_prefix: String,
    pub key_prefix: String,
    pub worker_log: String,
    pub sequential: SequentialReport,
    pub chains: ThroughputReport,
    pub fanout: FanoutReport,
    /// (b) once more with `compact` statuses, then with statuses `off` (hops counted from
    /// completions: chain length per execution completed in the window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chains_compact: Option<ThroughputReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chains_off: Option<ThroughputReport>,
    /// Every round of (b); `chains` is the median one.
    pub rounds: Vec<Round>,
    /// Median of the rounds' ratios to their ceilings (when measured).
    pub median_ratio: Option<f64>,
    /// (d) peak RSS (`VmHWM`) of the worker process after (b), MiB.
    pub worker_peak_rss_mb_after_chains: f64,
    /// Peak RSS at the end of all phases, MiB.
    pub worker_peak_rss_mb_end: f64,
    pub box_busy_before: f64,
}

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

enum Ev {
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

struct Driver {
    broker: Broker,
    execution_queue: String,
    /// Events arrive in bursts (one send per burst of deliveries: fewer wake-ups of this task).
    rx: mpsc::UnboundedReceiver<Vec<Ev>>,
    ready: std::collections::VecDeque<Ev>,
    seq: AtomicU64,
    run_id: String,
    publish_errors: Arc<AtomicU64>,
}

impl Driver {
    fn new_id(&self) -> String {
        format!(
            "{}-{}",
            self.run_id,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn start_message(&self, execution_id: &str, workflow: &Value, input: &Value) -> Outgoing {
        let name = workflow.get("name").and_then(Value::as_str).unwrap_or("");
        let mut context = serde_json::Map::new();
        baton_core::wire::seed_input(&mut context, input.clone());
        let start = baton_core::wire::RuneStart::new(
            name,
            execution_id,
            "$start",
            workflow.clone(),
            context,
        );
        Outgoing::new(
            self.execution_queue.clone(),
            serde_json::to_vec(&start).unwrap_or_default(),
        )
    }

    async fn submit(
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
    fn submit_detached(&self, execution_id: &str, workflow: &Value, input: &Value) {
        let msg = self.start_message(execution_id, workflow, input);
        let (broker, errors) = (self.broker.clone(), self.publish_errors.clone());
        tokio::spawn(async move {
            if broker.publish(vec![msg]).await.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Drops events left over from an earlier phase.
    fn drain(&mut self) {
        self.ready.clear();
        while self.rx.try_recv().is_ok() {}
    }

    async fn next(&mut self, until: Instant) -> anyhow::Result<Option<Ev>> {
        if let Some(ev) = self.ready.pop_front() {
            return Ok(Some(ev));
        }
        match timeout(
            until.saturating_duration_since(Instant::now()),
            self.rx.recv(),
        )
        .await
        {
            Ok(Some(burst)) => {
                self.ready.extend(burst);
                Ok(self.ready.pop_front())
            }
            Ok(None) => anyhow::bail!("event consumers stopped (broker connection lost?)"),
            Err(_) => Ok(None),
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
fn pump(
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
async fn drain(
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
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
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

/// Runs hop-ceiling (variant c, `chains` chains) and returns its hops/s.
async fn run_ceiling(exe: &std::path::Path, chains: usize, secs: f64) -> anyhow::Result<f64> {
    let mut cmd = Command::new(exe);
    cmd.args(["--variant", "c", "--warmup", "2", "--tag", "baton-bench"])
        .args(["--chains", &chains.to_string(), "--secs", &secs.to_string()])
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("hops_per_s").and_then(Value::as_f64))
        .filter(|h| *h > 0.0)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} printed no hops_per_s ({}): {}",
                exe.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs (a)–(d) against a fresh worker child; always stops it and removes the run's queues and
/// keys.
pub async fn run(
    opts: &DistributedOptions,
    progress: &dyn Fn(&str),
) -> anyhow::Result<DistributedReport> {
    let run_id = short_unique_id("bench-", 10);
    // Joined with `-`, not `.`: the routing keys keep the production count of words
    // (`workflow.node.status`), and a topic exchange's cost per publish grows with it.
    let connection = ConnectionSettings {
        queue_prefix: format!("{run_id}-"),
        key_prefix: run_id.clone(),
        ..opts.connection.clone()
    };
    let (queue_prefix, key_prefix) = (&connection.queue_prefix, &connection.key_prefix);
    let topology = connection.topology();
    let log = std::env::temp_dir().join(format!("{run_id}-worker.log"));

    // The driver connects first: it declares the run's topology (idempotently, as the worker
    // will) so no start message is unroutable.
    let amqp = AmqpOptions {
        prefetch: 1000,
        connection_name: Some(format!("baton-bench-driver-{run_id}")),
        connect_timeout: Duration::from_secs(10),
        ..AmqpOptions::from(&connection)
    };
    let broker = Broker::connect(amqp)
        .await
        .map_err(|e| anyhow::anyhow!("RabbitMQ at {}: {e}", connection.amqp_url))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_pumps, stop) = watch::channel(false);
    let completion_key = topology.completion_queue.clone();
    let (drain_conn, pumps) = if opts.subscription {
        let sub = broker
            .subscribe(&[topology.status_queue.clone(), completion_key.clone()])
            .await?;
        (None, vec![pump(sub, completion_key.clone(), tx, stop)])
    } else {
        let (conn, tasks) = drain(
            &connection.amqp_url,
            topology.status_queue.clone(),
            completion_key.clone(),
            opts.ack_each,
            tx,
            stop,
        )
        .await?;
        (Some(conn), tasks)
    };

    let mut cmd = Command::new(&opts.baton_exe);
    cmd.arg("worker");
    if let Some(c) = &opts.worker_config {
        cmd.arg("--config").arg(c);
    }
    cmd.env("BATON_AMQP_URL", &connection.amqp_url)
        .env("BATON_REDIS_URL", &connection.redis_url)
        .env("BATON_QUEUE_TYPE", connection.queue_type.as_str())
        .env("BATON_QUEUE_PREFIX", queue_prefix)
        .env("BATON_KEY_PREFIX", key_prefix)
        .env("BATON_COMPLETED_TTL_SECS", "300")
        .env("BATON_DRAIN_TIMEOUT_SECS", "5")
        // The benchmark's HTTP target listens on 127.0.0.1.
        .env("BATON_HTTP_ALLOW_PRIVATE_NETWORKS", "true");
    let mut worker = WorkerProcess::spawn(cmd, try_free_port()?, &log)
        .map_err(|e| anyhow::anyhow!("cannot start {} worker: {e}", opts.baton_exe.display()))?;
    progress(&format!(
        "worker pid {} (log {}), queues {queue_prefix}*, keys {key_prefix}:*",
        worker.pid(),
        log.display()
    ));

    let mut driver = Driver {
        broker: broker.clone(),
        execution_queue: topology.execution_queue.clone(),
        rx,
        ready: Default::default(),
        seq: AtomicU64::new(0),
        run_id: run_id.clone(),
        publish_errors: Arc::new(AtomicU64::new(0)),
    };
    let result = phases(opts, &mut driver, &mut worker, progress).await;
    let worker_log = worker.log().display().to_string();
    // SIGTERM (graceful drain), then SIGKILL if it does not exit within 10 s.
    worker.stop(Duration::from_secs(10)).await;
    let _ = stop_pumps.send(true);
    for p in pumps {
        let _ = p.await;
    }
    if let Some(c) = drain_conn {
        let _ = c.close(200, "done".into()).await;
    }
    // Clean up: the run's queues and exchange, and its Redis keys.
    if let Err(e) = broker.delete_topology().await {
        progress(&format!("warning: could not delete the run's queues: {e}"));
    }
    broker.close().await;
    if let Err(e) = delete_keys(&connection.redis_url, key_prefix).await {
        progress(&format!(
            "warning: could not delete the run's Redis keys: {e}"
        ));
    }
    let mut report = result?;
    report.queue_prefix = queue_prefix.clone();
    report.key_prefix = key_prefix.clone();
    report.worker_log = worker_log;
    Ok(report)
}

async fn phases(
    opts: &DistributedOptions,
    driver: &mut Driver,
    worker: &mut WorkerProcess,
    progress: &dyn Fn(&str),
) -> anyhow::Result<DistributedReport> {
    let chain = workflows::chain(opts.chain_len);
    let fanout = workflows::fanout();
    let empty = json!({});
    let fan_input = workflows::fanout_input(opts.fanout_width);
    let watched = Watched::find(Some(worker.pid()));

    // Ready when a first execution completes (the worker connects, declares, consumes).
    progress("waiting for the worker (first execution)");
    let first = driver.new_id();
    driver.submit(&first, &chain, &empty).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = worker.exited() {
            anyhow::bail!(
                "the worker exited ({status}); see {}",
                worker.log().display()
            );
        }
        match driver
            .next((Instant::now() + Duration::from_millis(200)).min(deadline))
            .await?
        {
            Some(Ev::Completion {
                exec,
                status,
                reason,
                ..
            }) if exec == first => {
                if status != ExecutionStatus::Completed {
                    anyhow::bail!("warm-up execution ended {}: {reason:?}", status.as_str());
                }
                break;
            }
            _ if Instant::now() >= deadline => anyhow::bail!(
                "no completion from the worker within 60 s; see {}",
                worker.log().display()
            ),
            _ => {}
        }
    }

    let box_busy_before = procfs::quiet_gate(15.0, opts.quiet_wait_secs).await;
    let mut report = DistributedReport {
        box_busy_before,
        ..DistributedReport::default()
    };
    if opts.phases.contains('a') {
        progress(&format!(
            "(a) sequential: {} executions of a {}-node chain, one at a time",
            opts.sequential_runs, opts.chain_len
        ));
        report.sequential = sequential(opts, driver, &chain, &watched).await?;
        procfs::quiet_gate(15.0, opts.quiet_wait_secs).await;
    }
    if opts.phases.contains('b') {
        progress(&format!(
            "(b) {} chains in flight: {:.0} s warm-up + {:.0} s window",
            opts.chains, opts.warmup_secs, opts.secs
        ));
        let mut runs = Vec::new();
        for round in 0..opts.rounds {
            let ceiling = match &opts.ceiling_exe {
                Some(exe) => {
                    progress(&format!(
                        "(b) round {}/{}: hop-ceiling K={}",
                        round + 1,
                        opts.rounds,
                        opts.chains
                    ));
                    let c = run_ceiling(exe, opts.chains, opts.ceiling_secs).await?;
                    procfs::quiet_gate(15.0, opts.quiet_wait_secs).await;
                    Some(c)
                }
                None => None,
            };
            let r = throughput(opts, driver, &chain, &watched).await?;
            if opts.rounds > 1 {
                progress(&format!(
                    "(b) round {}/{}: {:.0} hops/s{}",
                    round + 1,
                    opts.rounds,
                    r.hops_per_s,
                    ceiling
                        .map(|c| format!(" = {:.2} x the ceiling's {c:.0}", r.hops_per_s / c))
                        .unwrap_or_default()
                ));
            }
            report.rounds.push(Round {
                hops_per_s: r.hops_per_s,
                ceiling_hops_per_s: ceiling,
                ratio: ceiling.map(|c| r.hops_per_s / c),
            });
            runs.push(r);
            procfs::quiet_gate(15.0, opts.quiet_wait_secs).await;
        }
        runs.sort_by(|a, b| a.hops_per_s.total_cmp(&b.hops_per_s));
        report.chains = runs.swap_remove(runs.len() / 2);
        report.median_ratio =
            crate::stats::median(report.rounds.iter().filter_map(|r| r.ratio).collect());
        for mode in ["compact", "off"] {
            progress(&format!(
                "(b) {} chains in flight, statuses {mode}",
                opts.chains
            ));
            let chain = workflows::chain_with_status_mode(opts.chain_len, mode);
            let r = throughput(opts, driver, &chain, &watched).await?;
            progress(&format!("(b) statuses {mode}: {:.0} hops/s", r.hops_per_s));
            if mode == "compact" {
                report.chains_compact = Some(r);
            } else {
                report.chains_off = Some(r);
            }
            procfs::quiet_gate(15.0, opts.quiet_wait_secs).await;
        }
    }
    report.worker_peak_rss_mb_after_chains =
        procfs::status_kb(worker.pid(), "VmHWM").unwrap_or(0) as f64 / 1024.0;
    if opts.phases.contains('c') {
        progress(&format!(
            "(c) fan-out {} → join: {} executions, one at a time",
            opts.fanout_width, opts.fanout_runs
        ));
        report.fanout = fanout_phase(opts, driver, &fanout, &fan_input, &watched).await?;
    }
    report.worker_peak_rss_mb_end =
        procfs::status_kb(worker.pid(), "VmHWM").unwrap_or(0) as f64 / 1024.0;
    if let Some(status) = worker.exited() {
        anyhow::bail!(
            "the worker exited during the run ({status}); see {}",
            worker.log().display()
        );
    }
    Ok(report)
}

/// Waits for `exec`'s completion; returns its receipt time and the `running` statuses seen
/// (per node: executed_at ns, receipt time). After the completion, waits briefly for statuses
/// still on their way (statuses and completions travel on different queues).
async fn follow(
    driver: &mut Driver,
    exec: &str,
    nodes_expected: usize,
    limit: Duration,
) -> anyhow::Result<(Instant, HashMap<String, (i64, Instant)>)> {
    let deadline = Instant::now() + limit;
    let mut running = HashMap::new();
    let mut done: Option<Instant> = None;
    loop {
        let until = match done {
            Some(t) => (t + Duration::from_millis(500)).min(deadline),
            None => deadline,
        };
        let Some(ev) = driver.next(until).await? else {
            return match done {
                Some(t) => Ok((t, running)),
                None => anyhow::bail!("execution {exec} did not complete within {limit:?}"),
            };
        };
        match ev {
            Ev::Status {
                exec: e,
                node,
                status: NodeStatus::Running,
                executed_ns,
                recv,
                ..
            } if e == exec => {
                running.insert(node, (executed_ns, recv));
            }
            Ev::Completion {
                exec: e,
                status,
                reason,
                recv,
            } if e == exec => {
                if status != ExecutionStatus::Completed {
                    anyhow::bail!("execution {exec} ended {}: {reason:?}", status.as_str());
                }
                done = Some(recv);
            }
            _ => {}
        }
        if let Some(t) = done
            && running.len() >= nodes_expected
        {
            return Ok((t, running));
        }
    }
}

async fn sequential(
    opts: &DistributedOptions,
    driver: &mut Driver,
    chain: &Value,
    watched: &Watched,
) -> anyhow::Result<SequentialReport> {
    const WARMUP_RUNS: usize = 3;
    let (mut hop, mut hop_recv, mut exec_ms, mut per_hop) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let empty = json!({});
    driver.drain();
    let mut a = Snapshot::take(watched);
    for i in 0..WARMUP_RUNS + opts.sequential_runs {
        if i == WARMUP_RUNS {
            a = Snapshot::take(watched);
        }
        let id = driver.new_id();
        let t0 = Instant::now();
        driver.submit(&id, chain, &empty).await?;
        let (done, running) = follow(driver, &id, opts.chain_len, Duration::from_secs(60)).await?;
        if i < WARMUP_RUNS {
            continue;
        }
        let total = ms(done - t0);
        exec_ms.push(total);
        per_hop.push(total / opts.chain_len as f64);
        for n in 1..opts.chain_len {
            let prev = running.get(&workflows::chain_node_id(n - 1));
            let next = running.get(&workflows::chain_node_id(n));
            if let (Some((e1, r1)), Some((e2, r2))) = (prev, next) {
                if *e1 > 0 && *e2 > 0 {
                    hop.push((e2 - e1) as f64 / 1e6);
                }
                hop_recv.push(ms(r2.saturating_duration_since(*r1)));
            }
        }
    }
    let cpu = CpuWindow::between(&a, &Snapshot::take(watched));
    Ok(SequentialReport {
        executions: opts.sequential_runs,
        hop_ms: Summary::of(hop),
        hop_received_ms: Summary::of(hop_recv),
        execution_ms: Summary::of(exec_ms),
        per_hop_ms: Summary::of(per_hop),
        cpu,
    })
}

async fn throughput(
    opts: &DistributedOptions,
    driver: &mut Driver,
    chain: &Value,
    watched: &Watched,
) -> anyhow::Result<ThroughputReport> {
    let empty = json!({});
    // With `compact` or `off` statuses there is no `success` event per hop to count: each
    // execution completed in the window counts its chain's hops.
    let by_completion = chain.get("status_mode").is_some();
    driver.drain();
    let t_start = Instant::now();
    let warm_end = t_start + Duration::from_secs_f64(opts.warmup_secs);
    let end = warm_end + Duration::from_secs_f64(opts.secs);
    // execution → (published at, executed_at of each node's `running`)
    let mut inflight: HashMap<String, (Instant, Vec<i64>)> = HashMap::new();
    let mut published_in_window: HashSet<String> = HashSet::new();
    for _ in 0..opts.chains {
        let id = driver.new_id();
        driver.submit_detached(&id, chain, &empty);
        inflight.insert(id, (Instant::now(), vec![0; opts.chain_len]));
    }
    let (mut hops, mut completed, mut failures, mut statuses, mut status_bytes) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut hop_ms, mut exec_ms) = (Vec::new(), Vec::new());
    let mut a: Option<Snapshot> = None;
    let mut b: Option<Snapshot> = None;
    let drain_deadline = end + Duration::from_secs(60);
    loop {
        let now = Instant::now();
        if a.is_none() && now >= warm_end {
            a = Some(Snapshot::take(watched));
        }
        if b.is_none() && now >= end {
            b = Some(Snapshot::take(watched));
        }
        if b.is_some() && inflight.is_empty() {
            break;
        }
        if now >= drain_deadline {
            anyhow::bail!(
                "{} executions still running 60 s after the window",
                inflight.len()
            );
        }
        let wake = if a.is_none() {
            warm_end
        } else if b.is_none() {
            end
        } else {
            drain_deadline
        };
        let Some(ev) = driver.next(wake).await? else {
            continue;
        };
        match ev {
            Ev::Status {
                exec,
                node,
                status,
                executed_ns,
                recv,
                bytes,
            } => {
                if recv >= warm_end && recv < end {
                    statuses += 1;
                    status_bytes += bytes as u64;
                    if status == NodeStatus::Success {
                        hops += 1;
                    }
                }
                if status == NodeStatus::Running
                    && let (Some((_, times)), Some(i)) =
                        (inflight.get_mut(&exec), workflows::chain_node_index(&node))
                    && let Some(slot) = times.get_mut(i)
                {
                    *slot = executed_ns;
                }
            }
            Ev::Completion {
                exec, status, recv, ..
            } => {
                let Some((t0, times)) = inflight.remove(&exec) else {
                    continue;
                };
                if status != ExecutionStatus::Completed {
                    failures += 1;
                }
                if by_completion && recv >= warm_end && recv < end {
                    hops += workflows::chain_hops(opts.chain_len);
                }
                // Latencies of executions that ran entirely inside the window.
                if published_in_window.remove(&exec) && recv < end {
                    completed += 1;
                    exec_ms.push(ms(recv - t0));
                    for w in times.windows(2) {
                        if w[0] > 0 && w[1] > 0 {
                            hop_ms.push((w[1] - w[0]) as f64 / 1e6);
                        }
                    }
                }
                if recv < end {
                    let id = driver.new_id();
                    driver.submit_detached(&id, chain, &empty);
                    let now = Instant::now();
                    if now >= warm_end {
                        published_in_window.insert(id.clone());
                    }
                    inflight.insert(id, (now, vec![0; opts.chain_len]));
                }
            }
        }
    }
    let (Some(a), Some(b)) = (a, b) else {
        anyhow::bail!("measurement window not reached")
    };
    let cpu = CpuWindow::between(&a, &b);
    let per = |s: f64| if hops > 0 { s * 1e6 / hops as f64 } else { 0.0 };
    let window = opts.secs;
    Ok(ThroughputReport {
        chains: opts.chains,
        window_s: window,
        hops,
        hops_per_s: hops as f64 / window,
        executions_completed: completed,
        hop_ms: Summary::of(hop_ms),
        execution_ms: Summary::of(exec_ms),
        cpu_us_per_hop_worker: per(cpu.worker_s),
        cpu_us_per_hop_broker: per(cpu.broker_s),
        cpu_us_per_hop_redis: per(cpu.redis_s),
        cpu_us_per_hop_driver: per(cpu.bench_s),
        cpu_us_per_hop_total: per(cpu.worker_s + cpu.broker_s + cpu.redis_s + cpu.bench_s),
        status_bytes_mean: if statuses > 0 {
            status_bytes as f64 / statuses as f64
        } else {
            0.0
        },
        statuses_per_hop: if hops > 0 {
            statuses as f64 / hops as f64
        } else {
            0.0
        },
        cpu,
        errors: failures + driver.publish_errors.load(Ordering::Relaxed),
    })
}

async fn fanout_phase(
    opts: &DistributedOptions,
    driver: &mut Driver,
    wf: &Value,
    input: &Value,
    watched: &Watched,
) -> anyhow::Result<FanoutReport> {
    driver.drain();
    let mut times = Vec::new();
    let mut a = Snapshot::take(watched);
    for i in 0..1 + opts.fanout_runs {
        if i == 1 {
            a = Snapshot::take(watched);
        }
        let id = driver.new_id();
        let t0 = Instant::now();
        driver.submit(&id, wf, input).await?;
        // No `running` statuses awaited: the completion is what counts here.
        let (done, _) = follow(driver, &id, 0, Duration::from_secs(120)).await?;
        if i > 0 {
            times.push(ms(done - t0));
        }
    }
    let cpu = CpuWindow::between(&a, &Snapshot::take(watched));
    let hops_each = workflows::fanout_hops(opts.fanout_width);
    let summary = Summary::of(times);
    Ok(FanoutReport {
        width: opts.fanout_width,
        executions: opts.fanout_runs,
        hops_per_execution: hops_each,
        hops_per_s: if summary.mean > 0.0 {
            hops_each as f64 * 1e3 / summary.mean
        } else {
            0.0
        },
        execution_ms: summary,
        cpu,
    })
}
