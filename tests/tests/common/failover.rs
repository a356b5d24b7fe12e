//! The failover suite's instruments: the topology it runs on (chosen by `BATON_TEST_CLUSTER`),
//! the faults it injects (a RabbitMQ node stopped and restarted, a Redis primary SIGKILLed),
//! an HTTP API that records the `Idempotency-Key` of every call per (execution, node), the four
//! workflow shapes it mixes, and the check that no Redis key of the run is left without a TTL.
//!
//! `BATON_TEST_CLUSTER`:
//! - unset or empty: the shared RabbitMQ and Redis (`BATON_TEST_AMQP_URL`, `BATON_TEST_REDIS_URL`),
//!   no failover;
//! - `rabbitmq`: a 3-node RabbitMQ cluster of the test's own (`scripts/cluster-rabbitmq`),
//!   quorum queues, one node stopped and restarted; the shared Redis;
//! - `redis` or `all`: the clusters `scripts/cluster up` starts (Redis Cluster 3 primaries + 3
//!   replicas, and the RabbitMQ cluster for `all`); a Redis primary is SIGKILLed through the pid
//!   file the script leaves (`$BATON_CLUSTER_DIR/<port>/redis.pid`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::any;
use baton_testkit::{ClusterLayout, RabbitCluster};
use serde_json::{Value, json};

use super::distributed::{amqp_url, redis_url};

// ---------------------------------------------------------------------------------------------
// The topology
// ---------------------------------------------------------------------------------------------

/// What the suite runs on, and the handles that inject its faults.
pub struct Topology {
    pub amqp_url: String,
    pub redis_url: String,
    /// The RabbitMQ cluster whose node 1 is stopped and restarted.
    pub rabbit: Option<RabbitCluster>,
    /// The Redis Cluster whose primary is SIGKILLed.
    pub redis: Option<RedisCluster>,
}

impl Topology {
    /// From `BATON_TEST_CLUSTER` (see the module documentation). Blocking: starting clusters
    /// takes tens of seconds.
    pub fn from_env() -> Self {
        let wanted = std::env::var("BATON_TEST_CLUSTER").unwrap_or_default();
        match wanted.trim() {
            "" => Self {
                amqp_url: amqp_url(),
                redis_url: redis_url(),
                rabbit: None,
                redis: None,
            },
            "rabbitmq" => {
                let rabbit = RabbitCluster::up()
                    .unwrap_or_else(|e| panic!("BATON_TEST_CLUSTER=rabbitmq: {e}"));
                Self {
                    amqp_url: rabbit.amqp_url().to_owned(),
                    redis_url: redis_url(),
                    rabbit: Some(rabbit),
                    redis: None,
                }
            }
            mode @ ("redis" | "all") => {
                let (redis, amqp) = RedisCluster::up();
                let rabbit = (mode == "all").then(|| {
                    RabbitCluster::adopt(
                        redis.layout.clone(),
                        amqp.expect("scripts/cluster up printed no BATON_AMQP_URL line"),
                    )
                });
                Self {
                    amqp_url: rabbit
                        .as_ref()
                        .map_or_else(amqp_url, |r| r.amqp_url().to_owned()),
                    redis_url: redis.url.clone(),
                    rabbit,
                    redis: Some(redis),
                }
            }
            other => panic!(
                "BATON_TEST_CLUSTER must be empty, `rabbitmq`, `redis` or `all`, got `{other}`"
            ),
        }
    }

    /// What the run's summary line calls it.
    pub fn describe(&self) -> String {
        match (&self.rabbit, &self.redis) {
            (None, None) => "single RabbitMQ + single Redis (no failover)".into(),
            (Some(_), None) => "RabbitMQ cluster (node stop/restart) + single Redis".into(),
            (None, Some(_)) => "single RabbitMQ + Redis Cluster (primary SIGKILL)".into(),
            (Some(_), Some(_)) => "RabbitMQ cluster + Redis Cluster (both failovers)".into(),
        }
    }

    /// `BATON_QUEUE_TYPE` for the workers: quorum on a cluster (the documented default there).
    pub fn queue_type(&self) -> &'static str {
        if self.rabbit.is_some() {
            "quorum"
        } else {
            "classic"
        }
    }
}

/// A Redis Cluster started by `scripts/cluster up` (which also starts the RabbitMQ cluster);
/// `scripts/cluster down` on drop.
pub struct RedisCluster {
    pub url: String,
    pub layout: ClusterLayout,
}

impl RedisCluster {
    fn script() -> PathBuf {
        super::workspace().join("scripts/cluster")
    }

    /// Runs `scripts/cluster up`; returns the cluster and the RabbitMQ URL list it printed.
    fn up() -> (Self, Option<String>) {
        let script = Self::script();
        assert!(
            script.is_file(),
            "BATON_TEST_CLUSTER asks for a Redis Cluster but {} is not in this tree",
            script.display()
        );
        let layout = ClusterLayout::fresh().expect("a layout for the clusters");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg("up")
            .envs(layout.env())
            .output()
            .expect("run scripts/cluster up");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            // What did start (the Redis nodes, the first RabbitMQ nodes) is stopped, so that a
            // failed start leaves no process holding the next run's ports.
            let _ = std::process::Command::new("bash")
                .arg(&script)
                .arg("down")
                .envs(layout.env())
                .output();
            panic!(
                "scripts/cluster up failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        };
        let url = line("BATON_REDIS_URL").expect("scripts/cluster up printed BATON_REDIS_URL");
        (Self { url, layout }, line("BATON_AMQP_URL"))
    }

    /// SIGKILLs one primary (found with `ROLE`), through the pid file the script left. Returns
    /// its port.
    pub fn kill_a_primary(&self) -> u16 {
        for node in self.url.split(',') {
            let Some(port) = port_of(node) else { continue };
            if role(node).as_deref() != Some("master") {
                continue;
            }
            // `scripts/cluster` keeps each node in a directory named by its port.
            let pid_file = self.layout.dir.join(port.to_string()).join("redis.pid");
            let pid = std::fs::read_to_string(&pid_file)
                .unwrap_or_else(|e| panic!("read {}: {e}", pid_file.display()));
            let status = std::process::Command::new("kill")
                .args(["-KILL", pid.trim()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -KILL {}", pid.trim());
            return port;
        }
        panic!("no Redis primary answered ROLE in {}", self.url);
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Self::script())
            .arg("down")
            .envs(self.layout.env())
            .output();
    }
}

pub fn port_of(node_url: &str) -> Option<u16> {
    let rest = node_url.trim().split("://").nth(1)?;
    let authority = rest.split('/').next()?;
    authority.rsplit(':').next()?.parse().ok()
}

pub fn role(node_url: &str) -> Option<String> {
    let client = redis::Client::open(node_url.trim()).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    let reply: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).ok()?;
    match reply.first() {
        Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(redis::Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    }
}

/// How many keys there are under `<prefix>:`, and those with no TTL, on every primary of
/// `redis_url` (one URL, or a cluster's comma-separated list). Blocking.
pub fn keys_without_ttl(redis_url: &str, prefix: &str) -> (usize, Vec<String>) {
    let mut scanned = 0;
    let mut found = Vec::new();
    for node in redis_url.split(',').map(str::trim) {
        let many = redis_url.contains(',');
        if many && role(node).as_deref() != Some("master") {
            continue;
        }
        let client = redis::Client::open(node).expect("a Redis URL");
        let mut conn = client.get_connection().expect("connect to Redis");
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}:*"))
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
                .expect("SCAN");
            scanned += keys.len();
            for key in keys {
                let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).expect("PTTL");
                if ttl == -1 {
                    found.push(key);
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    (scanned, found)
}

// ---------------------------------------------------------------------------------------------
// The side-effect API
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct KeyState {
    /// Every call's `Idempotency-Key`, per (execution, node).
    keys: Mutex<HashMap<(String, String), Vec<String>>>,
    total: AtomicUsize,
    tick: AtomicU64,
}

/// A local API on its own thread: `/fx/{execution}/{node}` (any method) records one side
/// effect and its `Idempotency-Key`, waits 20–120 ms (an external call) and answers
/// `{"node": node}`.
pub struct KeyApi {
    pub url: String,
    state: Arc<KeyState>,
}

impl KeyApi {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(KeyState::default());
        let app = Router::new()
            .route("/fx/{execution}/{node}", any(record))
            .with_state(state.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the API's runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
                .expect("serve the API");
            });
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// Calls so far.
    pub fn total(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// Every call's key per (execution, node).
    pub fn keys(&self) -> HashMap<(String, String), Vec<String>> {
        self.state.keys.lock().expect("keys lock").clone()
    }
}

async fn record(
    State(state): State<Arc<KeyState>>,
    UrlPath((execution, node)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> axum::Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state
        .keys
        .lock()
        .expect("keys lock")
        .entry((execution, node.clone()))
        .or_default()
        .push(key);
    state.total.fetch_add(1, Ordering::SeqCst);
    let n = state.tick.fetch_add(1, Ordering::Relaxed);
    let delay = 20 + n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 101;
    tokio::time::sleep(Duration::from_millis(delay)).await;
    axum::Json(json!({ "node": node }))
}

// ---------------------------------------------------------------------------------------------
// The workflows
// ---------------------------------------------------------------------------------------------

/// The signal the `signal` shape waits for.
pub const SIGNAL: &str = "go";

/// The four shapes, and the `http` nodes each calls (every one exactly once per execution).
pub const SHAPES: [(&str, &[&str]); 4] = [
    ("chain", &["c1", "c2", "c3", "c4"]),
    ("fanout", &["f0", "fa", "fb", "fc", "f9"]),
    ("timer", &["t1", "t2"]),
    ("signal", &["s1", "s2"]),
];

fn call(id: &str) -> Value {
    json!({"id": id, "name": id, "type": "http",
           "parameters": {"method": "POST",
                          "url": format!("{{{{$input.base_url}}}}/fx/{{{{$input.run}}}}/{id}"),
                          "body": {"node": id}, "timeout": 60}})
}

fn edges(pairs: &[(&str, &str)]) -> Vec<Value> {
    pairs
        .iter()
        .enumerate()
        .map(|(i, (src, dst))| json!({"id": format!("e{i}"), "src": src, "dst": dst}))
        .collect()
}

/// The workflow of a shape of [`SHAPES`].
pub fn workflow(shape: &str) -> Value {
    let (nodes, pairs): (Vec<Value>, Vec<(&str, &str)>) = match shape {
        "chain" => (
            ["c1", "c2", "c3", "c4"].map(call).to_vec(),
            vec![("c1", "c2"), ("c2", "c3"), ("c3", "c4")],
        ),
        "fanout" => {
            let mut nodes = ["f0", "fa", "fb", "fc", "f9"].map(call).to_vec();
            nodes.push(json!({"id": "fj", "name": "join", "type": "merge",
                              "parameters": {"wait_mode": "wait_for_all"}}));
            let pairs = vec![
                ("f0", "fa"),
                ("f0", "fb"),
                ("f0", "fc"),
                ("fa", "fj"),
                ("fb", "fj"),
                ("fc", "fj"),
                ("fj", "f9"),
            ];
            (nodes, pairs)
        }
        "timer" => {
            let mut nodes = ["t1", "t2"].map(call).to_vec();
            nodes.push(json!({"id": "tw", "name": "pause", "type": "wait",
                              "parameters": {"amount": 2, "unit": "seconds"}}));
            (nodes, vec![("t1", "tw"), ("tw", "t2")])
        }
        "signal" => {
            let mut nodes = ["s1", "s2"].map(call).to_vec();
            nodes.push(json!({"id": "sw", "name": "approval", "type": "wait",
                              "parameters": {"mode": "signal", "signal": SIGNAL}}));
            (nodes, vec![("s1", "sw"), ("sw", "s2")])
        }
        other => panic!("unknown shape {other}"),
    };
    json!({"name": format!("failover-{shape}"), "version": 1, "nodes": nodes, "edges": edges(&pairs)})
}

/// The signal message for `execution_id` (what `baton signal` publishes).
pub fn signal_message(execution_id: &str) -> Value {
    json!({"signal": {"execution_id": execution_id, "name": SIGNAL, "data": {"ok": true}}})
}
