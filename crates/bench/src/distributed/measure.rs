//! The measured phases of a distributed run: (a) one chain at a time, (b) chains in flight,
//! (c) fan-out → join, and the broker ceiling (hop-ceiling) run before a round of (b).

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_core::message::{ExecutionStatus, NodeStatus};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::driver::{Driver, Ev};
use super::{FanoutReport, SequentialReport, ThroughputReport};
use crate::distributed::DistributedOptions;
use crate::procfs::{CpuWindow, Snapshot, Watched};
use crate::stats::Summary;
use crate::workflows;

/// Runs hop-ceiling (`variant` `c`: a hop with two statuses, the bound of `full`; `b`: a hop
/// without statuses, the bound of `off`) with `chains` chains and returns its hops/s.
pub(super) async fn run_ceiling(
    exe: &std::path::Path,
    variant: &str,
    chains: usize,
    secs: f64,
) -> anyhow::Result<f64> {
    let mut cmd = Command::new(exe);
    cmd.args([
        "--variant",
        variant,
        "--warmup",
        "2",
        "--tag",
        "baton-bench",
    ])
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

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Waits for `exec`'s completion; returns its receipt time and the `running` statuses seen
/// (per node: executed_at ns, receipt time). After the completion, waits briefly for statuses
/// still on their way (statuses and completions travel on different queues).
pub(super) async fn follow(
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

pub(super) async fn sequential(
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

pub(super) async fn throughput(
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

pub(super) async fn fanout_phase(
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
