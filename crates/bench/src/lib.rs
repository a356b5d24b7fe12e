//! `baton bench`: how fast a hop is, distributed (RabbitMQ + Redis, one `baton worker` child
//! process, queues and keys of this run only) and embedded — against the targets, and against
//! the broker's physical ceiling when its figures are given (`--ceiling`, from
//! `bench/hop-ceiling` run on the same box, same time).
//!
//! Workloads: (a) a 20-node chain of no-op nodes, one execution at a time (hop latency);
//! (b) 64 such chains in flight, resubmitted as they complete (hops/s); (c) a fan-out over 100
//! items into an aggregator (time per execution, hops/s); (d) the worker's peak RSS under (b);
//! (e) (a)–(c) on the embedded runtime. Scaling runs (`distributed::scaling`): (b) again with
//! 1, 2, … worker processes, and (a) + (b) on each queue type.

pub mod distributed;
pub mod embedded;
mod headline;
pub mod procfs;
pub mod starts;
pub mod stats;
pub mod targets;
pub mod workflows;

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

pub use distributed::scaling::{ScalingHeadline, ScalingOptions, ScalingReport};
pub use distributed::{DistributedOptions, DistributedReport};
pub use embedded::{EmbeddedOptions, EmbeddedReport};

pub use headline::Headline;
use targets::{
    TARGET_CEILING_FRACTION, TARGET_COMPACT_HOPS_PER_S, TARGET_EMBEDDED_HOPS_PER_S,
    TARGET_EMBEDDED_ONE_CHAIN_HOPS_PER_S, TARGET_FANOUT_JOIN_MS, TARGET_HOP_P50_MS,
    TARGET_HOP_P99_MS, TARGET_OFF_HOPS_PER_S, TARGET_WORKER_RSS_MB,
};

/// The broker ceiling used when no `--ceiling` measurement is given: hop-ceiling variant (c),
/// K=64, on this box (`bench/RESULTS.md`, 2026-11-22).
pub const REFERENCE_CEILING_HOPS_PER_S: f64 = 6202.0;

/// A `hop-ceiling` measurement (one JSON line of its output).
#[derive(Debug, Clone, Serialize)]
pub struct CeilingRun {
    pub variant: String,
    pub chains: u64,
    pub hops_per_s: f64,
    pub hop_p50_ms: f64,
    pub hop_p99_ms: f64,
    pub other_cpu_s: f64,
}

/// Ceiling figures measured in this run (`--ceiling FILE`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ceiling {
    pub source: String,
    pub k1: Option<CeilingRun>,
    pub k64: Option<CeilingRun>,
}

impl Ceiling {
    /// Reads `hop-ceiling` JSON lines; keeps the variant (c) runs at K=1 and K=64 (the last
    /// of each).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut out = Ceiling {
            source: path.display().to_string(),
            ..Ceiling::default()
        };
        for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
            let v: Value = serde_json::from_str(line)?;
            let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let run = CeilingRun {
                variant: v
                    .get("variant")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                chains: v.get("chains").and_then(Value::as_u64).unwrap_or(0),
                hops_per_s: f("hops_per_s"),
                hop_p50_ms: f("hop_p50_us") / 1e3,
                hop_p99_ms: f("hop_p99_us") / 1e3,
                other_cpu_s: f("other_cpu_s"),
            };
            if run.variant != "c" {
                continue;
            }
            match run.chains {
                1 => out.k1 = Some(run),
                64 => out.k64 = Some(run),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// One target and how the run did against it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub measured: f64,
    pub target: String,
    pub pass: bool,
}

/// Everything `baton bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The headline figures, flat (what scripts read): `null` when their phase did not run.
    #[serde(flatten)]
    pub headline: Headline,
    pub version: u32,
    pub started_at: String,
    pub profile: &'static str,
    pub settings: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distributed: Option<DistributedReport>,
    pub embedded: EmbeddedReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<Ceiling>,
    /// The ceiling the 64-chain target is derived from (measured, or the reference figure).
    pub ceiling_hops_per_s: f64,
    pub checks: Vec<Check>,
    /// Start messages inline and by reference (RFC 0011).
    pub starts: starts::StartSizes,
    /// The scaling runs' figures, flat (`hops_per_s_workers`, `hops_per_s_queue_type`, …).
    #[serde(flatten)]
    pub scaling_headline: ScalingHeadline,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingReport>,
}

impl Report {
    pub fn new(
        settings: Value,
        distributed: Option<DistributedReport>,
        embedded: EmbeddedReport,
        ceiling: Option<Ceiling>,
        started_at: String,
    ) -> Self {
        // Ceilings measured round by round (`--ceiling-exe`) win over a `--ceiling` file.
        let round_ceilings = distributed
            .iter()
            .flat_map(|d| d.rounds.iter().filter_map(|r| r.ceiling_hops_per_s))
            .collect();
        let ceiling_hops = stats::median(round_ceilings)
            .or_else(|| {
                ceiling
                    .as_ref()
                    .and_then(|c| c.k64.as_ref())
                    .map(|r| r.hops_per_s)
            })
            .filter(|h| *h > 0.0)
            .unwrap_or(REFERENCE_CEILING_HOPS_PER_S);
        let checks = targets::checks(distributed.as_ref(), &embedded, ceiling_hops);
        Self {
            headline: Headline::of(distributed.as_ref(), &embedded, ceiling_hops),
            version: 1,
            started_at,
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            settings,
            distributed,
            embedded,
            ceiling,
            ceiling_hops_per_s: ceiling_hops,
            checks,
            starts: starts::StartSizes::default(),
            scaling_headline: ScalingHeadline::default(),
            scaling: None,
        }
    }

    /// Adds the start message figures (`starts::StartSizes::measure`).
    pub fn with_starts(mut self, starts: starts::StartSizes) -> Self {
        self.headline.start_bytes_inline = Some(starts.chain.inline_bytes);
        self.headline.start_bytes_by_reference = Some(starts.chain.by_reference_bytes);
        self.starts = starts;
        self
    }

    /// Adds the scaling runs (`--scale-workers`, `--queue-types`); they have no targets.
    pub fn with_scaling(mut self, scaling: Option<ScalingReport>) -> Self {
        self.scaling_headline = ScalingHeadline::of(scaling.as_ref());
        self.scaling = scaling;
        self
    }

    /// All targets met.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }

    /// The human table.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let ok = |b: bool| if b { "ok" } else { "MISS" };
        let _ = writeln!(
            s,
            "baton bench ({} build, {})",
            self.profile, self.started_at
        );
        if self.profile == "debug" {
            let _ = writeln!(
                s,
                "  warning: debug build; run `cargo run --release -p baton -- bench` for real figures"
            );
        }
        if let Some(d) = &self.distributed {
            let seq = &d.sequential;
            let ch = &d.chains;
            let fan = &d.fanout;
            let k64 = self.ceiling.as_ref().and_then(|c| c.k64.as_ref());
            let k1 = self.ceiling.as_ref().and_then(|c| c.k1.as_ref());
            let _ = writeln!(
                s,
                "\ndistributed: 1 worker process, RabbitMQ + Redis (queues {}*, keys {}:*)",
                d.queue_prefix, d.key_prefix
            );
            let _ = writeln!(
                s,
                "  {:<44} {:>12} {:>22} {:>5}",
                "figure", "measured", "target", ""
            );
            let row = |s: &mut String, name: &str, v: String, t: String, pass: Option<bool>| {
                let _ = writeln!(
                    s,
                    "  {:<44} {:>12} {:>22} {:>5}",
                    name,
                    v,
                    t,
                    pass.map(ok).unwrap_or("")
                );
            };
            if seq.executions > 0 {
                row(
                    &mut s,
                    &format!(
                        "(a) hop p50, ms ({} x {} hops)",
                        seq.executions,
                        seq.hop_ms.n / seq.executions.max(1) + 1
                    ),
                    format!("{:.3}", seq.hop_ms.p50),
                    format!("<= {TARGET_HOP_P50_MS}"),
                    Some(seq.hop_ms.p50 <= TARGET_HOP_P50_MS),
                );
                row(
                    &mut s,
                    "(a) hop p99, ms",
                    format!("{:.3}", seq.hop_ms.p99),
                    format!("<= {TARGET_HOP_P99_MS}"),
                    Some(seq.hop_ms.p99 <= TARGET_HOP_P99_MS),
                );
                if let Some(c) = k1 {
                    row(
                        &mut s,
                        "    ceiling (c) K=1 hop p50 / p99, ms",
                        format!("{:.3}/{:.3}", c.hop_p50_ms, c.hop_p99_ms),
                        String::new(),
                        None,
                    );
                }
                row(
                    &mut s,
                    "(a) hop p50 / p99 as received, ms",
                    format!(
                        "{:.3}/{:.3}",
                        seq.hop_received_ms.p50, seq.hop_received_ms.p99
                    ),
                    String::new(),
                    None,
                );
                row(
                    &mut s,
                    "(a) execution p50 / p99, ms",
                    format!("{:.2}/{:.2}", seq.execution_ms.p50, seq.execution_ms.p99),
                    String::new(),
                    None,
                );
                row(
                    &mut s,
                    "(a) execution / hops, p50 ms",
                    format!("{:.3}", seq.per_hop_ms.p50),
                    String::new(),
                    None,
                );
            }
            if ch.chains > 0 {
                let need = TARGET_CEILING_FRACTION * self.ceiling_hops_per_s;
                let ratio = self
                    .headline
                    .ceiling_ratio
                    .unwrap_or(ch.hops_per_s / self.ceiling_hops_per_s);
                let rounds = self.distributed.as_ref().map_or(0, |d| d.rounds.len());
                let measured_rounds = self
                    .distributed
                    .as_ref()
                    .is_some_and(|d| d.median_ratio.is_some());
                row(
                    &mut s,
                    &format!(
                        "(b) {} chains, hops/s ({:.0} s{})",
                        ch.chains,
                        ch.window_s,
                        if rounds > 1 {
                            format!(", median of {rounds}")
                        } else {
                            String::new()
                        }
                    ),
                    format!("{:.0}", ch.hops_per_s),
                    // With rounds, the target is on the median of the rounds' ratios (below).
                    if measured_rounds {
                        String::new()
                    } else {
                        format!(">= {need:.0}")
                    },
                    (!measured_rounds).then_some(ratio >= TARGET_CEILING_FRACTION),
                );
                let src = if measured_rounds {
                    "median, measured before each round"
                } else if k64.is_some() {
                    "measured now"
                } else {
                    "RESULTS.md reference"
                };
                row(
                    &mut s,
                    &format!("    broker ceiling (c) K=64 ({src})"),
                    format!("{:.0}", self.ceiling_hops_per_s),
                    String::new(),
                    None,
                );
                for (mode, hops, target) in [
                    (
                        "compact",
                        self.headline.hops_per_s_compact,
                        TARGET_COMPACT_HOPS_PER_S,
                    ),
                    ("off", self.headline.hops_per_s_off, TARGET_OFF_HOPS_PER_S),
                ] {
                    if let Some(hops) = hops {
                        row(
                            &mut s,
                            &format!("    statuses {mode}, hops/s"),
                            format!("{hops:.0}"),
                            format!(">= {target:.0}"),
                            Some(hops >= target),
                        );
                    }
                }
                if let (Some(b), Some(off), Some(compact)) = (
                    self.headline.ceiling_b_hops_per_s,
                    self.headline.off_ceiling_b_ratio,
                    self.headline.compact_ceiling_b_ratio,
                ) {
                    row(
                        &mut s,
                        "    ceiling (b) K=64 (no statuses); off, compact share",
                        format!("{b:.0}; {off:.2} / {compact:.2}"),
                        String::new(),
                        None,
                    );
                }
                row(
                    &mut s,
                    if measured_rounds {
                        "    ratio to ceiling (median of the rounds')"
                    } else {
                        "    ratio to ceiling"
                    },
                    format!("{ratio:.2}"),
                    format!(">= {TARGET_CEILING_FRACTION}"),
                    Some(ratio >= TARGET_CEILING_FRACTION),
                );
                row(
                    &mut s,
                    "(b) hop p50 / p99 under load, ms",
                    format!("{:.2}/{:.2}", ch.hop_ms.p50, ch.hop_ms.p99),
                    String::new(),
                    None,
                );
                row(
                    &mut s,
                    "(b) CPU us/hop worker/broker/redis/driver",
                    format!(
                        "{:.0}/{:.0}/{:.0}/{:.0}",
                        ch.cpu_us_per_hop_worker,
                        ch.cpu_us_per_hop_broker,
                        ch.cpu_us_per_hop_redis,
                        ch.cpu_us_per_hop_driver
                    ),
                    String::new(),
                    None,
                );
                row(
                    &mut s,
                    "(b) CPU us/hop, all four",
                    format!("{:.0}", ch.cpu_us_per_hop_total),
                    String::new(),
                    None,
                );
                row(
                    &mut s,
                    "(b) box busy, other work CPU-s",
                    format!("{:.0}% {:.1}", ch.cpu.box_busy * 100.0, ch.cpu.other_s),
                    String::new(),
                    None,
                );
                if ch.errors > 0 {
                    row(
                        &mut s,
                        "(b) errors",
                        ch.errors.to_string(),
                        "0".into(),
                        Some(false),
                    );
                }
            }
            if fan.executions > 0 {
                row(
                    &mut s,
                    &format!("(c) fan-out {} -> join, ms per execution p50", fan.width),
                    format!("{:.1}", fan.execution_ms.p50),
                    format!("<= {TARGET_FANOUT_JOIN_MS}"),
                    Some(fan.execution_ms.p50 <= TARGET_FANOUT_JOIN_MS),
                );
                row(
                    &mut s,
                    &format!("(c) hops/s ({} hops per execution)", fan.hops_per_execution),
                    format!("{:.0}", fan.hops_per_s),
                    String::new(),
                    None,
                );
            }
            row(
                &mut s,
                "(d) worker peak RSS (VmHWM) after (b), MiB",
                format!("{:.1}", d.worker_peak_rss_mb_after_chains),
                format!("<= {TARGET_WORKER_RSS_MB}"),
                Some(d.worker_peak_rss_mb_after_chains <= TARGET_WORKER_RSS_MB),
            );
            row(
                &mut s,
                "    at the end, MiB",
                format!("{:.1}", d.worker_peak_rss_mb_end),
                String::new(),
                None,
            );
        }
        if self.starts.chain.inline_bytes > 0 {
            self.starts.render(&mut s);
        }
        let e = &self.embedded;
        let observed = if e.observed {
            "status events observed"
        } else {
            "no status subscriber: statuses not built"
        };
        let _ = writeln!(
            s,
            "\nembedded (this process, in-memory queue and store; {observed})"
        );
        let _ = writeln!(
            s,
            "  {:<44} {:>12} {:>22} {:>5}",
            "figure", "measured", "target", ""
        );
        for (name, p, target) in [
            (
                "(a) one chain at a time",
                &e.sequential,
                TARGET_EMBEDDED_ONE_CHAIN_HOPS_PER_S,
            ),
            (
                "(b) chains in flight",
                &e.chains,
                TARGET_EMBEDDED_HOPS_PER_S,
            ),
            ("(c) fan-out -> join", &e.fanout, TARGET_EMBEDDED_HOPS_PER_S),
        ] {
            if p.executions == 0 {
                continue;
            }
            let _ = writeln!(
                s,
                "  {:<44} {:>12} {:>22} {:>5}",
                format!("{name}, hops/s"),
                format!("{:.0}", p.hops_per_s),
                format!(">= {target:.0}"),
                ok(p.hops_per_s >= target)
            );
            let _ = writeln!(
                s,
                "  {:<44} {:>12}",
                "    execution p50 ms, CPU us/hop",
                format!("{:.3} {:.1}", p.execution_ms.p50, p.cpu_us_per_hop)
            );
        }
        if let Some(scaling) = &self.scaling {
            s.push_str(&distributed::scaling::render(scaling));
        }
        let misses: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.name.as_str())
            .collect();
        let _ = writeln!(
            s,
            "\n{}",
            if misses.is_empty() {
                "all targets met".to_string()
            } else {
                format!("targets missed: {}", misses.join(", "))
            }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_keeps_variant_c_at_k1_and_k64() {
        let path =
            std::env::temp_dir().join(format!("baton-bench-ceiling-{}.jsonl", std::process::id()));
        std::fs::write(
            &path,
            concat!(
                r#"{"variant":"a","chains":64,"hops_per_s":18000.0,"hop_p50_us":2000.0,"hop_p99_us":9000.0}"#, "\n",
                "not json, e.g. a cargo line\n",
                r#"{"variant":"c","chains":1,"hops_per_s":1500.0,"hop_p50_us":620.0,"hop_p99_us":1400.0,"other_cpu_s":0.1}"#, "\n",
                r#"{"variant":"c","chains":64,"hops_per_s":6200.0,"hop_p50_us":7300.0,"hop_p99_us":56000.0}"#, "\n",
            ),
        )
        .unwrap();
        let c = Ceiling::load(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(c.k1.as_ref().map(|r| r.hop_p50_ms), Some(0.62));
        assert_eq!(c.k64.as_ref().map(|r| r.hops_per_s), Some(6200.0));
        let report = Report::new(
            Value::Null,
            None,
            EmbeddedReport::default(),
            Some(c),
            String::new(),
        );
        assert_eq!(report.ceiling_hops_per_s, 6200.0);
        assert!(report.checks.is_empty(), "no phase ran, nothing to check");
    }

    #[test]
    fn the_json_report_carries_the_headline_figures_flat() {
        let mut embedded = EmbeddedReport::default();
        embedded.chains.executions = 10;
        embedded.chains.hops_per_s = 250_000.0;
        embedded.fanout.executions = 2;
        embedded.fanout.hops_per_s = 120_000.0;
        let mut distributed = DistributedReport::default();
        distributed.sequential.executions = 5;
        distributed.sequential.hop_ms.p50 = 1.1;
        distributed.sequential.hop_ms.p99 = 3.0;
        distributed.chains.chains = 64;
        distributed.chains.hops_per_s = 3100.0;
        distributed.fanout.executions = 3;
        distributed.fanout.execution_ms.p50 = 80.0;
        distributed.worker_peak_rss_mb_after_chains = 35.0;
        distributed.chains_compact = Some(distributed::ThroughputReport {
            hops_per_s: 9000.0,
            ..Default::default()
        });
        let report = Report::new(
            Value::Null,
            Some(distributed),
            embedded,
            None,
            String::new(),
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["hop_p50_ms"], 1.1);
        assert_eq!(json["hop_p99_ms"], 3.0);
        assert_eq!(json["hops_per_s"], 3100.0);
        assert_eq!(json["ceiling_ratio"], 0.5);
        assert_eq!(json["fanout_join_s"], 0.08);
        assert_eq!(json["worker_rss_mb"], 35.0);
        assert_eq!(json["hops_per_s_compact"], 9000.0);
        assert_eq!(json["hops_per_s_off"], Value::Null, "not measured");
        assert_eq!(
            json["embedded_hops_per_s"], 120_000.0,
            "the lowest embedded phase that ran"
        );
    }
}
