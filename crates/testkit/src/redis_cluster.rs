//! A Redis Cluster of its own for one test (3 primaries + 3 replicas on free ports), started by
//! `scripts/cluster up` and stopped by `scripts/cluster down` when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Failures starting a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no run of 6 free ports (and their bus ports, +10000) found")]
    NoPorts,
    #[error("scripts/cluster: {0}")]
    Script(String),
    #[error("scripts/cluster: {0}")]
    Io(#[from] std::io::Error),
}

/// A running Redis Cluster; stopped (only its own processes) and its directory removed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    /// The node URLs, comma-separated (a `BATON_REDIS_URL` value).
    pub url: String,
    /// The first node's port (the six nodes use it and the next five).
    pub base_port: u16,
    dir: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster")
}

/// Whether `port` and its cluster bus port can both be bound now.
fn free_pair(port: u16) -> bool {
    let bind = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    bind(port) && port.checked_add(10_000).is_some_and(bind)
}

/// A base port whose six ports and bus ports are free: pseudo-random (per process and time)
/// so that parallel tests rarely collide; a collision makes `scripts/cluster` fail loudly.
fn free_base() -> Result<u16, ClusterError> {
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..200u32 {
        let base = 20_000 + (seed.wrapping_add(attempt.wrapping_mul(7919)) % 3_000) * 10;
        let base = u16::try_from(base).map_err(|_| ClusterError::NoPorts)?;
        if (0..6).all(|i| free_pair(base + i)) {
            return Ok(base);
        }
    }
    Err(ClusterError::NoPorts)
}

impl RedisCluster {
    /// Starts a cluster on free ports (a few seconds) and waits for `cluster_state:ok`.
    pub fn start() -> Result<Self, ClusterError> {
        let base_port = free_base()?;
        let dir = std::env::temp_dir().join(format!("baton-cluster-{base_port}"));
        let out = Command::new(script())
            .arg("up")
            .env("BATON_CLUSTER_REDIS_PORT", base_port.to_string())
            .env("BATON_CLUSTER_DIR", &dir)
            .env("BATON_CLUSTER_SKIP_RABBITMQ", "1")
            .output()?;
        let mut cluster = Self {
            url: String::new(),
            base_port,
            dir,
        };
        if !out.status.success() {
            return Err(ClusterError::Script(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout
            .lines()
            .find_map(|l| l.strip_prefix("BATON_REDIS_URL="))
            .ok_or_else(|| ClusterError::Script(format!("no URL line in `{stdout}`")))?;
        cluster.url = url.to_string();
        Ok(cluster)
    }

    /// The pid of the node on `port` (from the script's pid file), e.g. to SIGKILL it.
    pub fn pid_of(&self, port: u16) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(port.to_string()).join("redis.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("down")
            .env("BATON_CLUSTER_REDIS_PORT", self.base_port.to_string())
            .env("BATON_CLUSTER_DIR", &self.dir)
            .env("BATON_CLUSTER_SKIP_RABBITMQ", "1")
            .output();
    }
}
