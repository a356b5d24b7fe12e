//! The key names of the Redis history (RFC 0006 lists the keys, RFC 0009 the cluster layout).
//!
//! - Unsharded (a single node, as before clusters): every key is `<M><rest>`, one "bucket".
//! - Buckets (a Redis Cluster): an execution's keys (`x:<id>`, `x:<id>:rank`, `x:<id>:ev`) and
//!   its entries in the list indexes (`idx`, `idx:<wf>`) live under the hash tag `{<M>:<b>}`,
//!   `b` = FNV-1a(execution id) mod `BATON_REDIS_BUCKETS`, so each script still touches one
//!   slot and no slot takes every write; each bucket has its own indexes, merged when listing.
//!   A definition `def:<hash>` lives in the bucket of its hash. The rest (schedules, webhooks,
//!   idempotency keys, cron ticks: single-key commands, or scripts over the schedule keys,
//!   written per start at most) stays under the master's own tag `{<M>}`.

/// Where the history's keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One prefix for everything (a single node).
    Unsharded { prefix: String },
    /// Per-execution keys and indexes over `buckets` hash-tagged buckets (a cluster).
    Buckets { prefix: String, buckets: u32 },
}

impl Layout {
    /// The bucketed layout with at least one bucket.
    pub fn buckets(prefix: &str, buckets: u32) -> Self {
        Self::Buckets {
            prefix: prefix.to_string(),
            buckets: buckets.max(1),
        }
    }

    /// The master's key prefix (`BATON_MASTER_KEY_PREFIX`).
    pub fn prefix(&self) -> &str {
        match self {
            Self::Unsharded { prefix } | Self::Buckets { prefix, .. } => prefix,
        }
    }

    /// How many buckets there are (1 when unsharded).
    pub fn count(&self) -> u32 {
        match self {
            Self::Unsharded { .. } => 1,
            Self::Buckets { buckets, .. } => *buckets,
        }
    }

    /// The prefix of the master's unsharded keys (schedules, webhooks, idempotency, ticks).
    pub fn shared(&self) -> String {
        match self {
            Self::Unsharded { prefix } => prefix.clone(),
            Self::Buckets { prefix, .. } => format!("{{{prefix}}}"),
        }
    }

    /// The prefix of bucket `b`'s keys.
    fn bucket_prefix(&self, b: u32) -> String {
        match self {
            Self::Unsharded { prefix } => prefix.clone(),
            Self::Buckets { prefix, .. } => {
                // `baton:master:` → `{baton:master:3}`; a prefix without a trailing `:` gets one.
                let sep = if prefix.ends_with(':') { "" } else { ":" };
                format!("{{{prefix}{sep}{b}}}")
            }
        }
    }

    /// The bucket of an execution (or of a definition's hash).
    pub fn bucket_of(&self, id: &str) -> u32 {
        match self {
            Self::Unsharded { .. } => 0,
            Self::Buckets { buckets, .. } => baton_redis::buckets::bucket_of(id, *buckets),
        }
    }

    /// An execution's record, run ranks and run events.
    pub fn record(&self, id: &str) -> [String; 3] {
        let p = self.bucket_prefix(self.bucket_of(id));
        [
            format!("{p}x:{id}"),
            format!("{p}x:{id}:rank"),
            format!("{p}x:{id}:ev"),
        ]
    }

    /// Bucket `b`'s list index, of every execution or of one workflow's.
    pub fn index(&self, b: u32, workflow: Option<&str>) -> String {
        let p = self.bucket_prefix(b);
        match workflow {
            Some(w) => format!("{p}idx:{w}"),
            None => format!("{p}idx"),
        }
    }

    /// The keys one execution's writes touch: its record, ranks, events, and the two indexes
    /// of its bucket (`idx`, `idx:<wf>`), in the order the event scripts take them.
    pub fn execution_keys(&self, id: &str, workflow: &str) -> [String; 5] {
        let b = self.bucket_of(id);
        let [x, rank, ev] = self.record(id);
        [
            x,
            rank,
            ev,
            self.index(b, None),
            self.index(b, Some(workflow)),
        ]
    }

    /// A definition by content hash.
    pub fn definition(&self, hash: &str) -> String {
        format!("{}def:{hash}", self.bucket_prefix(self.bucket_of(hash)))
    }

    /// The records kept per bucket so that about `max` are kept in all: `max` when unsharded,
    /// else `max / buckets` rounded up (executions spread evenly over the buckets).
    pub fn kept_per_bucket(&self, max: u64) -> u64 {
        max.div_ceil(u64::from(self.count())).max(1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use baton_redis::buckets::cluster_slot;

    use super::*;

    fn one_slot(what: &str, keys: &[String]) {
        let slots: HashSet<u16> = keys.iter().map(|k| cluster_slot(k)).collect();
        assert_eq!(slots.len(), 1, "{what}: keys {keys:?} span slots {slots:?}");
    }

    const IDS: [&str; 4] = [
        "exec-1",
        "0193a7c2-5b1e-7c3d-9f00-123456789abc",
        "e|with|bars",
        "odd{tag}",
    ];

    #[test]
    fn a_single_node_keeps_the_unsharded_key_names() {
        let l = Layout::Unsharded {
            prefix: "baton:master:".into(),
        };
        assert_eq!(
            l.execution_keys("e1", "wf"),
            [
                "baton:master:x:e1",
                "baton:master:x:e1:rank",
                "baton:master:x:e1:ev",
                "baton:master:idx",
                "baton:master:idx:wf",
            ]
        );
        assert_eq!(l.definition("h"), "baton:master:def:h");
        assert_eq!(l.shared(), "baton:master:");
        assert_eq!(l.count(), 1);
        assert_eq!(l.kept_per_bucket(10), 10);
    }

    #[test]
    fn every_script_and_pipeline_of_the_bucketed_history_keeps_its_keys_in_one_slot() {
        let l = Layout::buckets("baton:master:", 16);
        for id in IDS {
            for wf in ["wf", "wf-{odd}", ""] {
                // apply_status, apply_completion (scripts), create and trim (pipelines).
                one_slot("execution scripts", &l.execution_keys(id, wf));
            }
            // get (pipeline of the record and its events).
            one_slot("get", &l.record(id));
            let b = l.bucket_of(id);
            assert!(l.execution_keys(id, "wf")[3].starts_with(&format!("{{baton:master:{b}}}")));
        }
        // The create pipeline carries the definition only when it shares the record's slot.
        for hash in ["sha256:ab", "sha256:cd"] {
            let slot = cluster_slot(&l.definition(hash));
            assert_eq!(slot, cluster_slot(&l.index(l.bucket_of(hash), None)));
        }
        // The schedule script's two keys.
        let s = super::super::redis_schedules::Keys::new(&l.shared());
        one_slot("schedule advance", &[s.defs, s.due]);
    }

    #[test]
    fn executions_spread_over_every_bucket_and_several_slots() {
        let l = Layout::buckets("baton:master:", 16);
        let buckets: HashSet<u32> = (0..400)
            .map(|i| l.bucket_of(&format!("exec-{i}")))
            .collect();
        assert_eq!(buckets.len(), 16);
        let slots: HashSet<u16> = (0..16).map(|b| cluster_slot(&l.index(b, None))).collect();
        assert!(
            slots.len() > 8,
            "bucket tags hash to distinct slots: {slots:?}"
        );
        assert_eq!(l.kept_per_bucket(10_000), 625);
        assert_eq!(l.kept_per_bucket(3), 1);
    }

    #[test]
    fn a_prefix_without_a_trailing_colon_gets_one_before_the_bucket() {
        let l = Layout::buckets("t-abc", 4);
        assert!(l.index(2, None).starts_with("{t-abc:2}"));
        assert_eq!(l.shared(), "{t-abc}");
    }
}
