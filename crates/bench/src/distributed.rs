//! The distributed runtime under load: `baton worker` child processes (one by default, so its
//! CPU and peak RSS are its own) on RabbitMQ + Redis with queue and key prefixes of this run
//! only, and a driver in this process that publishes Rune start messages and follows statuses
//! and completions. Rooms: the driver (`driver.rs`), the measured phases (`measure.rs`), and
//! the scaling runs, 1..N workers and classic vs quorum queues (`scaling.rs`).

mod driver;
mod measure;
pub mod scaling;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use baton_amqp::{AmqpOptions, Broker};
use baton_core::message::ExecutionStatus;
use baton_settings::ConnectionSettings;
use baton_testkit::{WorkerProcess, delete_keys, short_unique_id, try_free_port};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::procfs::{self, CpuWindow, Watched};
use crate::stats::Summary;
use crate::workflows;
use driver::{Driver, Ev, drain, pump};
use measure::{fanout_phase, run_ceiling, sequential, throughput};

/// How the distributed phases run.
#[derive(Debug, Clone)]
pub struct DistributedOptions {
    /// The `baton` executable (started as `baton worker`).
    pub baton_exe: PathBuf,
    /// Worker processes sharing the run's queues (1: the worker's CPU and RSS are one
    /// process's; more: summed CPU, the largest peak RSS).
    pub workers: usize,
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
    /// Start executions by reference to a definition stored once where the workers read
    /// definitions, as the master does by default (RFC 0011); else with the workflow inline.
    pub starts_by_reference: bool,
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
    /// The first worker's log.
    pub worker_log: String,
    /// Worker processes of the run.
    pub workers: usize,
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
    /// hop-ceiling variant b (a hop without statuses) at the same number of chains, run once
    /// after the `compact` and `off` phases (with `ceiling_exe`): their bound on this box.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_b_hops_per_s: Option<f64>,
    /// (d) peak RSS (`VmHWM`) of the worker process after (b), MiB.
    pub worker_peak_rss_mb_after_chains: f64,
    /// Peak RSS at the end of all phases, MiB.
    pub worker_peak_rss_mb_end: f64,
    pub box_busy_before: f64,
}

/// Runs (a)–(d) against fresh worker children; always stops them and removes the run's queues
/// and keys.
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

    let mut workers = Vec::new();
    for i in 0..opts.workers.max(1) {
        let mut cmd = Command::new(&opts.baton_exe);
        cmd.arg("worker");
        if let Some(c) = &opts.worker_config {
            cmd.arg("--config").arg(c);
        }
        cmd.env("BATON_AMQP_URL", &connection.amqp_url)
            .env("BATON_REDIS_URL", &connection.redis_url)
            .env("BATON_REDIS_CLUSTER", connection.redis_cluster.to_string())
            .env("BATON_REDIS_BUCKETS", connection.redis_buckets.to_string())
            .env("BATON_REDIS_WAIT_MS", connection.redis_wait_ms.to_string())
            .env("BATON_QUEUE_TYPE", connection.queue_type.as_str())
            .env("BATON_QUEUE_PREFIX", queue_prefix)
            .env("BATON_KEY_PREFIX", key_prefix)
            .env("BATON_COMPLETED_TTL_SECS", "300")
            .env("BATON_DRAIN_TIMEOUT_SECS", "5")
            // The benchmark's HTTP target listens on 127.0.0.1.
            .env("BATON_HTTP_ALLOW_PRIVATE_NETWORKS", "true");
        let log = std::env::temp_dir().join(format!("{run_id}-worker-{i}.log"));
        let spawned = WorkerProcess::spawn(cmd, try_free_port()?, &log);
        let worker = match spawned {
            Ok(w) => w,
            Err(e) => {
                for w in &mut workers {
                    stop_worker(w).await;
                }
                anyhow::bail!("cannot start {} worker: {e}", opts.baton_exe.display());
            }
        };
        progress(&format!(
            "worker pid {} (log {}), queues {queue_prefix}*, keys {key_prefix}:*",
            worker.pid(),
            log.display()
        ));
        workers.push(worker);
    }

    let definitions = if opts.starts_by_reference {
        let target =
            baton_redis::RedisTarget::parse(&connection.redis_url, connection.redis_cluster)?;
        let conn = baton_redis::connect(&target, baton_redis::Timeouts::default()).await?;
        Some(baton_redis::DefinitionStore::new(conn, key_prefix))
    } else {
        None
    };
    let mut driver = Driver {
        broker: broker.clone(),
        execution_queue: topology.execution_queue.clone(),
        rx,
        ready: Default::default(),
        seq: AtomicU64::new(0),
        run_id: run_id.clone(),
        publish_errors: Arc::new(AtomicU64::new(0)),
        definitions,
        stored: Default::default(),
    };
    let result = phases(opts, &mut driver, &mut workers, progress).await;
    let worker_log = workers[0].log().display().to_string();
    for w in &mut workers {
        stop_worker(w).await;
    }
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
    report.workers = workers.len();
    Ok(report)
}

/// SIGTERM (graceful drain), then SIGKILL if it does not exit within 10 s.
async fn stop_worker(worker: &mut WorkerProcess) {
    worker.stop(Duration::from_secs(10)).await;
}

/// The first worker that exited, with its status and log.
fn exited(workers: &mut [WorkerProcess]) -> Option<String> {
    workers.iter_mut().find_map(|w| {
        w.exited()
            .map(|status| format!("{status}; see {}", w.log().display()))
    })
}

/// The largest peak RSS (`VmHWM`) of the workers, MiB.
fn peak_rss_mb(workers: &[WorkerProcess]) -> f64 {
    workers
        .iter()
        .filter_map(|w| procfs::status_kb(w.pid(), "VmHWM"))
        .max()
        .unwrap_or(0) as f64
        / 1024.0
}
async fn phases(
    opts: &DistributedOptions,
    driver: &mut Driver,
    workers: &mut [WorkerProcess],
    progress: &dyn Fn(&str),
) -> anyhow::Result<DistributedReport> {
    let chain = workflows::chain(opts.chain_len);
    let fanout = workflows::fanout();
    let empty = json!({});
    let fan_input = workflows::fanout_input(opts.fanout_width);
    let pids: Vec<u32> = workers.iter().map(WorkerProcess::pid).collect();
    let watched = Watched::find(&pids);

    // Every worker answers `/readyz` (connected, consuming), then a first execution completes.
    progress("waiting for the workers (ready, then a first execution)");
    let ready_by = Instant::now() + Duration::from_secs(60);
    for w in workers.iter_mut() {
        w.wait_ready(ready_by)
            .await
            .map_err(|e| anyhow::anyhow!("{e}; see {}", w.log().display()))?;
    }
    for workflow in [&chain, &fanout] {
        driver.store_definition(workflow).await?;
    }
    let first = driver.new_id();
    driver.submit(&first, &chain, &empty).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(how) = exited(workers) {
            anyhow::bail!("a worker exited ({how})");
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
                "no completion from the workers within 60 s; see {}",
                workers[0].log().display()
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
                    let c = run_ceiling(exe, "c", opts.chains, opts.ceiling_secs).await?;
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
            driver.store_definition(&chain).await?;
            let r = throughput(opts, driver, &chain, &watched).await?;
            progress(&format!("(b) statuses {mode}: {:.0} hops/s", r.hops_per_s));
            if mode == "compact" {
                report.chains_compact = Some(r);
            } else {
                report.chains_off = Some(r);
            }
            procfs::quiet_gate(15.0, opts.quiet_wait_secs).await;
        }
        if let Some(exe) = &opts.ceiling_exe {
            progress(&format!(
                "(b) hop-ceiling variant b K={}: the bound of a hop without statuses",
                opts.chains
            ));
            let b = run_ceiling(exe, "b", opts.chains, opts.ceiling_secs).await?;
            progress(&format!("(b) hop-ceiling variant b: {b:.0} hops/s"));
            report.ceiling_b_hops_per_s = Some(b);
            procfs::quiet_gate(15.0, opts.quiet_wait_secs).await;
        }
    }
    report.worker_peak_rss_mb_after_chains = peak_rss_mb(workers);
    if opts.phases.contains('c') {
        progress(&format!(
            "(c) fan-out {} → join: {} executions, one at a time",
            opts.fanout_width, opts.fanout_runs
        ));
        report.fanout = fanout_phase(opts, driver, &fanout, &fan_input, &watched).await?;
    }
    report.worker_peak_rss_mb_end = peak_rss_mb(workers);
    if let Some(how) = exited(workers) {
        anyhow::bail!("a worker exited during the run ({how})");
    }
    Ok(report)
}
