//! The headline of a report: one figure per issue-18 target, and the ratios that say how far
//! `full` and `off` are from their bounds (hop-ceiling variants c and b) measured in the same
//! run; what `baton bench --json` prints at its top level.

use serde::Serialize;

use crate::distributed::{DistributedReport, ThroughputReport};
use crate::embedded::EmbeddedReport;
use crate::stats::r3;

/// The headline figures of a run, one per target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Headline {
    /// (a) sequential hop latency, ms.
    pub hop_p50_ms: Option<f64>,
    pub hop_p99_ms: Option<f64>,
    /// (b) hops/s with the chains in flight, and its ratio to the ceiling.
    pub hops_per_s: Option<f64>,
    pub ceiling_ratio: Option<f64>,
    /// (b) with `compact` statuses, and with statuses `off` (RFC 0011), hops/s.
    pub hops_per_s_compact: Option<f64>,
    pub hops_per_s_off: Option<f64>,
    /// hop-ceiling variant b (a persistent hop message and a Redis read and write per hop, no
    /// status) at as many chains, run in the same session: the bound of `off` on this box, and
    /// `off` and `compact` as shares of it.
    pub ceiling_b_hops_per_s: Option<f64>,
    pub off_ceiling_b_ratio: Option<f64>,
    pub compact_ceiling_b_ratio: Option<f64>,
    /// (c) one fan-out → join execution, seconds (p50).
    pub fanout_join_s: Option<f64>,
    /// (d) worker peak RSS after (b), MiB.
    pub worker_rss_mb: Option<f64>,
    /// (e) embedded hops/s: the lowest of its phases that ran.
    pub embedded_hops_per_s: Option<f64>,
    /// The chain's start message with the workflow inline, and by reference (RFC 0011), bytes.
    pub start_bytes_inline: Option<usize>,
    pub start_bytes_by_reference: Option<usize>,
}

impl Headline {
    pub(crate) fn of(
        distributed: Option<&DistributedReport>,
        embedded: &EmbeddedReport,
        ceiling_hops: f64,
    ) -> Self {
        let ran = |n: usize| n > 0;
        let seq = distributed.filter(|d| ran(d.sequential.executions));
        let chains = distributed.filter(|d| ran(d.chains.chains));
        let fanout = distributed.filter(|d| ran(d.fanout.executions));
        let embedded_min = [&embedded.sequential, &embedded.chains, &embedded.fanout]
            .iter()
            .filter(|p| p.executions > 0)
            .map(|p| p.hops_per_s)
            .reduce(f64::min);
        let ceiling_b = chains.and_then(|d| d.ceiling_b_hops_per_s);
        let d_off = chains.and_then(|d| d.chains_off.as_ref());
        let d_compact = chains.and_then(|d| d.chains_compact.as_ref());
        let share_of_b = |run: Option<&ThroughputReport>| {
            ceiling_b
                .zip(run)
                .filter(|(b, _)| *b > 0.0)
                .map(|(b, r)| r3(r.hops_per_s / b))
        };
        Self {
            hop_p50_ms: seq.map(|d| r3(d.sequential.hop_ms.p50)),
            hop_p99_ms: seq.map(|d| r3(d.sequential.hop_ms.p99)),
            hops_per_s: chains.map(|d| r3(d.chains.hops_per_s)),
            ceiling_ratio: chains
                .filter(|_| ceiling_hops > 0.0)
                .map(|d| r3(d.median_ratio.unwrap_or(d.chains.hops_per_s / ceiling_hops))),
            hops_per_s_compact: d_compact.map(|r| r3(r.hops_per_s)),
            hops_per_s_off: d_off.map(|r| r3(r.hops_per_s)),
            ceiling_b_hops_per_s: ceiling_b.map(r3),
            off_ceiling_b_ratio: share_of_b(d_off),
            compact_ceiling_b_ratio: share_of_b(d_compact),
            fanout_join_s: fanout.map(|d| r3(d.fanout.execution_ms.p50 / 1e3)),
            worker_rss_mb: chains.map(|d| r3(d.worker_peak_rss_mb_after_chains)),
            embedded_hops_per_s: embedded_min.map(r3),
            start_bytes_inline: None,
            start_bytes_by_reference: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chains_at(hops_per_s: f64) -> Option<ThroughputReport> {
        Some(ThroughputReport {
            hops_per_s,
            ..Default::default()
        })
    }

    #[test]
    fn off_and_compact_are_shares_of_the_ceiling_without_statuses_measured_in_the_run() {
        let mut distributed = DistributedReport::default();
        distributed.chains.chains = 64;
        distributed.chains.hops_per_s = 5000.0;
        distributed.chains_compact = chains_at(8000.0);
        distributed.chains_off = chains_at(9000.0);
        let without_b = Headline::of(Some(&distributed), &EmbeddedReport::default(), 7000.0);
        assert_eq!(without_b.off_ceiling_b_ratio, None, "variant b not run");
        distributed.ceiling_b_hops_per_s = Some(15_000.0);
        let h = Headline::of(Some(&distributed), &EmbeddedReport::default(), 7000.0);
        assert_eq!(h.ceiling_b_hops_per_s, Some(15_000.0));
        assert_eq!(h.off_ceiling_b_ratio, Some(0.6));
        assert_eq!(h.compact_ceiling_b_ratio, Some(0.533));
    }
}
