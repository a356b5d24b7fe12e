//! Scaling runs: the throughput phase (b) with 1, 2, … worker processes on the same queues
//! (`--scale-workers`), and the per-hop cost of each queue type (`--queue-types`: phases (a)
//! and (b) with one worker). Each is a fresh distributed run with queues, keys and workers of
//! its own; the report keeps them apart from the main run's figures.

use std::collections::BTreeMap;

use baton_amqp::QueueType;
use serde::Serialize;

use super::{DistributedOptions, DistributedReport};
use crate::stats::r3;

/// Which scaling runs to make.
#[derive(Debug, Clone, Default)]
pub struct ScalingOptions {
    /// Worker counts to run (b) with, e.g. `[1, 2, 3]`; empty: none.
    pub workers: Vec<usize>,
    /// Queue types to run (a) and (b) with, one worker each; empty: none.
    pub queue_types: Vec<QueueType>,
}

impl ScalingOptions {
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty() && self.queue_types.is_empty()
    }
}

/// One scaling run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScalingRun {
    pub workers: usize,
    pub queue_type: String,
    pub chains: usize,
    pub hops_per_s: f64,
    /// (a) hop latency, when (a) ran (the queue-type runs).
    pub hop_p50_ms: Option<f64>,
    pub hop_p99_ms: Option<f64>,
    /// (b) CPU per hop: all worker processes together, the broker, Redis, and all four
    /// with the driver.
    pub cpu_us_per_hop_workers: f64,
    pub cpu_us_per_hop_broker: f64,
    pub cpu_us_per_hop_redis: f64,
    pub cpu_us_per_hop_total: f64,
    /// Fraction of the box busy during (b), and CPU-s of other work (noise).
    pub box_busy: f64,
    pub other_cpu_s: f64,
    /// The largest worker peak RSS, MiB.
    pub worker_peak_rss_mb: f64,
    pub errors: u64,
}

impl ScalingRun {
    fn of(d: &DistributedReport, queue_type: QueueType) -> Self {
        let ch = &d.chains;
        let seq = (d.sequential.executions > 0).then_some(&d.sequential);
        Self {
            workers: d.workers,
            queue_type: queue_type.as_str().to_string(),
            chains: ch.chains,
            hops_per_s: r3(ch.hops_per_s),
            hop_p50_ms: seq.map(|s| r3(s.hop_ms.p50)),
            hop_p99_ms: seq.map(|s| r3(s.hop_ms.p99)),
            cpu_us_per_hop_workers: r3(ch.cpu_us_per_hop_worker),
            cpu_us_per_hop_broker: r3(ch.cpu_us_per_hop_broker),
            cpu_us_per_hop_redis: r3(ch.cpu_us_per_hop_redis),
            cpu_us_per_hop_total: r3(ch.cpu_us_per_hop_total),
            box_busy: r3(ch.cpu.box_busy),
            other_cpu_s: r3(ch.cpu.other_s),
            worker_peak_rss_mb: r3(d.worker_peak_rss_mb_after_chains),
            errors: ch.errors,
        }
    }
}

/// Every scaling run, in the order made.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScalingReport {
    pub by_workers: Vec<ScalingRun>,
    pub by_queue_type: Vec<ScalingRun>,
}

/// The scaling figures as flat keys of the JSON report (`null` when not measured).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScalingHeadline {
    /// (b) hops/s by worker processes: `{"1": …, "2": …, "3": …}`.
    pub hops_per_s_workers: Option<BTreeMap<String, f64>>,
    /// (b) hops/s by queue type, one worker: `{"classic": …, "quorum": …}`.
    pub hops_per_s_queue_type: Option<BTreeMap<String, f64>>,
    /// (b) CPU per hop of worker, broker, Redis and driver together, by queue type, µs.
    pub cpu_us_per_hop_queue_type: Option<BTreeMap<String, f64>>,
    /// (a) sequential hop p50 by queue type, ms.
    pub hop_p50_ms_queue_type: Option<BTreeMap<String, f64>>,
}

impl ScalingHeadline {
    pub fn of(report: Option<&ScalingReport>) -> Self {
        let Some(r) = report else {
            return Self::default();
        };
        let map = |runs: &[ScalingRun],
                   key: fn(&ScalingRun) -> String,
                   v: fn(&ScalingRun) -> Option<f64>| {
            let m: BTreeMap<String, f64> = runs
                .iter()
                .filter_map(|run| v(run).map(|x| (key(run), x)))
                .collect();
            (!m.is_empty()).then_some(m)
        };
        let by_workers = |run: &ScalingRun| run.workers.to_string();
        let by_type = |run: &ScalingRun| run.queue_type.clone();
        Self {
            hops_per_s_workers: map(&r.by_workers, by_workers, |run| Some(run.hops_per_s)),
            hops_per_s_queue_type: map(&r.by_queue_type, by_type, |run| Some(run.hops_per_s)),
            cpu_us_per_hop_queue_type: map(&r.by_queue_type, by_type, |run| {
                Some(run.cpu_us_per_hop_total)
            }),
            hop_p50_ms_queue_type: map(&r.by_queue_type, by_type, |run| run.hop_p50_ms),
        }
    }
}

/// Makes the scaling runs of `scaling`, each a fresh [`super::run`] of `base` with (b) once
/// (no ceiling rounds): with each worker count, then with each queue type (and (a)).
pub async fn run(
    base: &DistributedOptions,
    scaling: &ScalingOptions,
    progress: &dyn Fn(&str),
) -> anyhow::Result<ScalingReport> {
    let mut report = ScalingReport::default();
    let once = |workers: usize, phases: &str| DistributedOptions {
        workers,
        phases: phases.to_string(),
        rounds: 1,
        ceiling_exe: None,
        ..base.clone()
    };
    for &n in &scaling.workers {
        progress(&format!("scaling: (b) with {n} worker process(es)"));
        let opts = once(n, "b");
        let d = super::run(&opts, progress).await?;
        let run = ScalingRun::of(&d, opts.connection.queue_type);
        progress(&format!(
            "scaling: {n} worker(s): {:.0} hops/s",
            run.hops_per_s
        ));
        report.by_workers.push(run);
    }
    for &queue_type in &scaling.queue_types {
        progress(&format!(
            "scaling: (a) and (b) on {queue_type} queues, 1 worker"
        ));
        let mut opts = once(1, "ab");
        opts.connection.queue_type = queue_type;
        let d = super::run(&opts, progress).await?;
        let run = ScalingRun::of(&d, queue_type);
        progress(&format!(
            "scaling: {queue_type}: {:.0} hops/s, {:.0} µs CPU per hop",
            run.hops_per_s, run.cpu_us_per_hop_total
        ));
        report.by_queue_type.push(run);
    }
    Ok(report)
}

/// The human table of the scaling runs.
pub fn render(report: &ScalingReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nscaling (fresh runs of (b), {} chains; workers, broker, Redis and driver share this box)",
        report
            .by_workers
            .iter()
            .chain(&report.by_queue_type)
            .map(|r| r.chains)
            .next()
            .unwrap_or(0)
    );
    let _ = writeln!(
        s,
        "  {:<28} {:>10} {:>12} {:>26} {:>9}",
        "run", "hops/s", "hop p50 ms", "CPU us/hop wkr/brk/redis/all", "box busy"
    );
    for r in report.by_workers.iter().chain(&report.by_queue_type) {
        let _ = writeln!(
            s,
            "  {:<28} {:>10.0} {:>12} {:>26} {:>8.0}%",
            format!("{} worker(s), {}", r.workers, r.queue_type),
            r.hops_per_s,
            r.hop_p50_ms.map(|p| format!("{p:.3}")).unwrap_or_default(),
            format!(
                "{:.0}/{:.0}/{:.0}/{:.0}",
                r.cpu_us_per_hop_workers,
                r.cpu_us_per_hop_broker,
                r.cpu_us_per_hop_redis,
                r.cpu_us_per_hop_total
            ),
            r.box_busy * 100.0
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(workers: usize, queue_type: &str, hops: f64, p50: Option<f64>) -> ScalingRun {
        ScalingRun {
            workers,
            queue_type: queue_type.into(),
            hops_per_s: hops,
            hop_p50_ms: p50,
            cpu_us_per_hop_total: hops / 10.0,
            ..ScalingRun::default()
        }
    }

    #[test]
    fn the_headline_keys_name_each_worker_count_and_queue_type() {
        let report = ScalingReport {
            by_workers: vec![
                run(1, "classic", 3000.0, None),
                run(2, "classic", 3300.0, None),
                run(3, "classic", 3100.0, None),
            ],
            by_queue_type: vec![
                run(1, "classic", 3000.0, Some(0.7)),
                run(1, "quorum", 2400.0, Some(0.9)),
            ],
        };
        let json = serde_json::to_value(ScalingHeadline::of(Some(&report))).unwrap();
        assert_eq!(
            json["hops_per_s_workers"],
            serde_json::json!({"1": 3000.0, "2": 3300.0, "3": 3100.0})
        );
        assert_eq!(
            json["hops_per_s_queue_type"],
            serde_json::json!({"classic": 3000.0, "quorum": 2400.0})
        );
        assert_eq!(json["hop_p50_ms_queue_type"]["quorum"], 0.9);
        assert_eq!(json["cpu_us_per_hop_queue_type"]["quorum"], 240.0);
    }

    #[test]
    fn without_scaling_runs_the_keys_are_null() {
        let json = serde_json::to_value(ScalingHeadline::of(None)).unwrap();
        assert!(json["hops_per_s_workers"].is_null());
        assert!(json["hops_per_s_queue_type"].is_null());
        let only_workers = ScalingReport {
            by_workers: vec![run(1, "classic", 10.0, None)],
            by_queue_type: vec![],
        };
        let json = serde_json::to_value(ScalingHeadline::of(Some(&only_workers))).unwrap();
        assert_eq!(json["hops_per_s_workers"]["1"], 10.0);
        assert!(json["hops_per_s_queue_type"].is_null());
    }
}
