//! The targets a bench run is checked against (issue 18, "Targets": medians of
//! `ROUNDS=5 scripts/bench --with-ceiling --json`), and the checks of one report.

use crate::stats::r3;
use crate::{Check, DistributedReport, EmbeddedReport};

/// Sequential hop latency (phase a), ms.
pub const TARGET_HOP_P50_MS: f64 = 0.7;
pub const TARGET_HOP_P99_MS: f64 = 1.5;
/// `full` statuses, 64 chains (phase b): this fraction of the broker's ceiling (variant c).
pub const TARGET_CEILING_FRACTION: f64 = 0.8;
/// `compact` and `off` statuses, 64 chains, hops/s.
pub const TARGET_COMPACT_HOPS_PER_S: f64 = 10_000.0;
pub const TARGET_OFF_HOPS_PER_S: f64 = 12_000.0;
/// Fan-out 100 → join (phase c), one execution, ms.
pub const TARGET_FANOUT_JOIN_MS: f64 = 30.0;
pub const TARGET_WORKER_RSS_MB: f64 = 64.0;
/// Embedded, one chain at a time.
pub const TARGET_EMBEDDED_ONE_CHAIN_HOPS_PER_S: f64 = 200_000.0;
/// Embedded, the other phases (chains in flight, fan-out): the target before issue 18.
pub const TARGET_EMBEDDED_HOPS_PER_S: f64 = 100_000.0;

/// How the run did against every target whose phase ran. `ceiling_hops`: the ceiling the
/// chains' ratio is taken against.
pub fn checks(
    distributed: Option<&DistributedReport>,
    embedded: &EmbeddedReport,
    ceiling_hops: f64,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut check = |name: &str, measured: f64, target: String, pass: bool| {
        checks.push(Check {
            name: name.into(),
            measured: r3(measured),
            target,
            pass,
        })
    };
    if let Some(d) = distributed {
        if d.sequential.executions > 0 {
            let (p50, p99) = (d.sequential.hop_ms.p50, d.sequential.hop_ms.p99);
            check(
                "sequential hop p50 (ms)",
                p50,
                format!("<= {TARGET_HOP_P50_MS}"),
                p50 <= TARGET_HOP_P50_MS,
            );
            check(
                "sequential hop p99 (ms)",
                p99,
                format!("<= {TARGET_HOP_P99_MS}"),
                p99 <= TARGET_HOP_P99_MS,
            );
        }
        if d.chains.chains > 0 {
            let need = TARGET_CEILING_FRACTION * ceiling_hops;
            let ratio = d.median_ratio.unwrap_or(d.chains.hops_per_s / ceiling_hops);
            check(
                &format!("{} chains (hops/s)", d.chains.chains),
                d.chains.hops_per_s,
                format!(">= {need:.0} ({TARGET_CEILING_FRACTION} x {ceiling_hops:.0})"),
                ratio >= TARGET_CEILING_FRACTION,
            );
            for (name, run, target) in [
                (
                    "statuses compact (hops/s)",
                    &d.chains_compact,
                    TARGET_COMPACT_HOPS_PER_S,
                ),
                (
                    "statuses off (hops/s)",
                    &d.chains_off,
                    TARGET_OFF_HOPS_PER_S,
                ),
            ] {
                if let Some(r) = run {
                    check(
                        name,
                        r.hops_per_s,
                        format!(">= {target:.0}"),
                        r.hops_per_s >= target,
                    );
                }
            }
            check(
                "worker peak RSS (MiB)",
                d.worker_peak_rss_mb_after_chains,
                format!("<= {TARGET_WORKER_RSS_MB}"),
                d.worker_peak_rss_mb_after_chains <= TARGET_WORKER_RSS_MB,
            );
        }
        if d.fanout.executions > 0 {
            let p50 = d.fanout.execution_ms.p50;
            check(
                "fan-out join p50 (ms)",
                p50,
                format!("<= {TARGET_FANOUT_JOIN_MS}"),
                p50 <= TARGET_FANOUT_JOIN_MS,
            );
        }
    }
    for (name, phase, target) in [
        (
            "embedded sequential (hops/s)",
            &embedded.sequential,
            TARGET_EMBEDDED_ONE_CHAIN_HOPS_PER_S,
        ),
        (
            "embedded chains (hops/s)",
            &embedded.chains,
            TARGET_EMBEDDED_HOPS_PER_S,
        ),
        (
            "embedded fan-out (hops/s)",
            &embedded.fanout,
            TARGET_EMBEDDED_HOPS_PER_S,
        ),
    ] {
        if phase.executions > 0 {
            check(
                name,
                phase.hops_per_s,
                format!(">= {target:.0}"),
                phase.hops_per_s >= target,
            );
        }
    }
    checks
}
