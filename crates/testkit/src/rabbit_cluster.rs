//! A 3-node RabbitMQ cluster of a test's own, started and stopped by `scripts/cluster-rabbitmq`
//! with a unique directory, node-name prefix and ports, so that it can run next to the shared
//! broker, another test's cluster, and a user's `scripts/cluster-rabbitmq up`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::ids::short_unique_id;

/// Why a cluster could not be started or changed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The script could not be run at all.
    #[error("cannot run {script}: {source}")]
    Spawn {
        script: String,
        #[source]
        source: std::io::Error,
    },
    /// The script ran and failed; its stderr says why.
    #[error("scripts/cluster-rabbitmq {command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    /// `up` printed no `BATON_AMQP_URL=` line.
    #[error("scripts/cluster-rabbitmq up printed no BATON_AMQP_URL line: {stdout}")]
    NoUrl { stdout: String },
    /// No block of three free ports (and their distribution ports) was found.
    #[error("no free ports for the cluster's nodes")]
    NoPorts,
}

/// Where a cluster lives: its directory (`BATON_CLUSTER_DIR`), node-name prefix
/// (`BATON_CLUSTER_NODE_PREFIX`) and first AMQP port (`BATON_CLUSTER_AMQP_PORT`).
#[derive(Clone, Debug)]
pub struct ClusterLayout {
    pub dir: PathBuf,
    pub prefix: String,
    pub base_port: u16,
}

impl ClusterLayout {
    /// A layout no other cluster uses: a new directory, a random prefix, free ports.
    pub fn fresh() -> Result<Self, ClusterError> {
        let id = short_unique_id("", 8);
        Ok(Self {
            dir: std::env::temp_dir().join(format!("baton-cluster-{id}")),
            prefix: format!("bt{id}n"),
            base_port: free_block().ok_or(ClusterError::NoPorts)?,
        })
    }

    /// The variables that tell `scripts/cluster-rabbitmq` (and `scripts/cluster`) this layout.
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("BATON_CLUSTER_DIR", self.dir.display().to_string()),
            ("BATON_CLUSTER_NODE_PREFIX", self.prefix.clone()),
            ("BATON_CLUSTER_AMQP_PORT", self.base_port.to_string()),
        ]
    }
}

/// A running 3-node cluster (`<prefix>1@localhost` … `<prefix>3@localhost`). One this handle
/// started ([`RabbitCluster::up`]) is stopped, and its data removed, on drop.
pub struct RabbitCluster {
    layout: ClusterLayout,
    url: String,
    owned: bool,
}

impl RabbitCluster {
    /// The script (in the workspace's `scripts/`).
    pub fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster-rabbitmq")
    }

    /// Whether RabbitMQ is installed here (the script would otherwise install it).
    pub fn available() -> bool {
        std::path::Path::new("/usr/lib/rabbitmq/bin/rabbitmqctl").is_file()
    }

    /// Starts a new cluster and waits until its three nodes run and are joined (tens of
    /// seconds).
    pub fn up() -> Result<Self, ClusterError> {
        let mut cluster = Self {
            layout: ClusterLayout::fresh()?,
            url: String::new(),
            owned: true,
        };
        let out = cluster.run(&["up"])?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        cluster.url = stdout
            .lines()
            .find_map(|line| line.strip_prefix("BATON_AMQP_URL="))
            .ok_or(ClusterError::NoUrl {
                stdout: stdout.clone(),
            })?
            .to_owned();
        Ok(cluster)
    }

    /// A handle on a cluster someone else started with `layout` (e.g. `scripts/cluster`) and
    /// stops: it controls the nodes, and leaves them running on drop.
    pub fn adopt(layout: ClusterLayout, url: String) -> Self {
        Self {
            layout,
            url,
            owned: false,
        }
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f,…`, one URI per node.
    pub fn amqp_url(&self) -> &str {
        &self.url
    }

    /// The AMQP port of node `n` (1, 2 or 3).
    pub fn port(&self, n: u16) -> u16 {
        self.layout.base_port + n - 1
    }

    /// The Erlang node name of node `n`.
    pub fn node_name(&self, n: u16) -> String {
        format!("{}{n}@localhost", self.layout.prefix)
    }

    /// Stops the RabbitMQ application of node `n` (`rabbitmqctl stop_app`): its clients lose
    /// their connections, the Erlang node stays.
    pub fn stop_node(&self, n: u16) -> Result<(), ClusterError> {
        self.run(&["stop-node", &n.to_string()]).map(|_| ())
    }

    /// Starts node `n`'s application again and waits until it runs.
    pub fn start_node(&self, n: u16) -> Result<(), ClusterError> {
        self.run(&["start-node", &n.to_string()]).map(|_| ())
    }

    /// `rabbitmqctl -n <node n> ARGS…` with the cluster's cookie.
    pub fn ctl(&self, n: u16, args: &[&str]) -> Result<String, ClusterError> {
        let mut all = vec!["ctl".to_owned(), n.to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = self.run(&all)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn run(&self, args: &[&str]) -> Result<Output, ClusterError> {
        let script = Self::script();
        let out = Command::new("bash")
            .arg(&script)
            .args(args)
            .envs(self.layout.env())
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ClusterError::Spawn {
                script: script.display().to_string(),
                source,
            })?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(ClusterError::Failed {
                command: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        if self.owned {
            let _ = self.run(&["down"]);
        }
    }
}

/// A first port `p` in 10000..12765 with `p..p+3` and their distribution ports (`+20000`)
/// free: all six below Linux's ephemeral range (32768 and up by default). A port in that range
/// that is free when checked can be handed to an outgoing connection before the node binds it,
/// and a node whose distribution port is taken dies before it logs a line: the likely cause of
/// a CI run (2026-12-06) where one node of three never came up and left no log.
fn free_block() -> Option<u16> {
    const FIRST: u16 = 10_000;
    const SPAN: u16 = 32_768 - 20_000 - 3 - FIRST;
    for _ in 0..50 {
        let seed = u16::from_str_radix(&short_unique_id("", 4), 16).unwrap_or(0);
        let base = FIRST + seed % SPAN;
        let all_free = (0..3).all(|i| {
            let port = base + i;
            port_free(port) && port_free(port + 20_000)
        });
        if all_free {
            return Some(base);
        }
    }
    None
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}
