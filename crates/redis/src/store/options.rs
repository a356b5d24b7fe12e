//! `RedisOptions`: how the store connects and names its keys (the `BATON_REDIS_*` settings).

/// Connection and key options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// First segment of every key and of the cancellation channel (default `baton`). Must not
    /// contain `{` or `}`.
    pub key_prefix: String,
    /// TTL put on every key of an execution when it finishes (default one day; 0 = no TTL).
    pub completed_ttl_secs: u64,
    /// How long one command may wait for its reply (default 5 s).
    pub response_timeout_ms: u64,
    /// How long one connection attempt may take (default 2 s).
    pub connect_timeout_ms: u64,
    /// Treat even a single URL as a Redis Cluster seed (`BATON_REDIS_CLUSTER`; a list of
    /// several URLs is always a cluster).
    pub cluster: bool,
    /// Hash-tagged buckets the durable timers are spread over (`BATON_REDIS_BUCKETS`, default
    /// 16, at least 1), so that no cluster slot holds them all. Every process of a deployment
    /// must use the same number.
    pub buckets: u32,
    /// Cluster only: how long a write a hop relies on may wait for a replica's acknowledgement
    /// (`BATON_REDIS_WAIT_MS`, default 200; 0 = never wait). Ignored on a single node.
    pub replication_wait_ms: u64,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            key_prefix: "baton".into(),
            completed_ttl_secs: 86_400,
            response_timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
            cluster: false,
            buckets: crate::buckets::DEFAULT_BUCKETS,
            replication_wait_ms: 200,
        }
    }
}
