//! Helpers for the distributed black-box tests: `baton worker` processes and `baton submit`
//! against the real RabbitMQ and Redis, each test isolated by its own queue prefix
//! (`t-<uuid>.`), Redis key prefix (`t-<uuid>`) and admin ports.
//!
//! A [`Cluster`] owns the test's worker processes. When it is dropped — also when the test
//! panics — it SIGKILLs the workers that are still running, prints the tail of their logs if
//! the test failed, deletes the test's queues and exchange and every Redis key under its
//! prefix.
//!
//! Services: `BATON_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`) and
//! `BATON_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/`); `scripts/services` starts them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, get, post};
use baton_amqp::{AmqpOptions, Broker, Deliveries, Headers, Topology};
use baton_testkit::{WorkerProcess, delete_keys, short_unique_id, unique_id, wait_until};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// The generous upper bound the tests give anything they wait for (a worker getting ready, a
/// completion arriving). Only a hang or a lost message takes this long.
pub const BOUND: Duration = Duration::from_secs(60);

pub fn amqp_url() -> String {
    std::env::var("BATON_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn redis_url() -> String {
    std::env::var("BATON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

// Each test crate uses a different subset.
#[allow(unused_imports)]
pub use baton_testkit::{free_port, http_get_status};

// ---------------------------------------------------------------------------------------------
// The cluster: worker processes and the CLI with the test's environment
// ---------------------------------------------------------------------------------------------

/// One `baton worker` process.
pub struct WorkerProc {
    pub name: String,
    process: WorkerProcess,
}

impl WorkerProc {
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The admin port (`/readyz`, `/metrics`).
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    pub fn log(&self) -> &Path {
        self.process.log()
    }
}

/// The processes and names of one test. See the module documentation.
pub struct Cluster {
    pub id: String,
    /// `BATON_QUEUE_PREFIX`: `t-<uuid>.`
    pub queue_prefix: String,
    /// `BATON_KEY_PREFIX`: `t-<uuid>`
    pub key_prefix: String,
    /// The exchange and queue names under `queue_prefix`.
    pub topology: Topology,
    pub amqp_url: String,
    pub redis_url: String,
    /// Worker logs and workflow files.
    pub dir: PathBuf,
    workers: Vec<WorkerProc>,
}

impl Cluster {
    /// A cluster on the shared RabbitMQ and Redis.
    pub fn new() -> Self {
        Self::with_amqp_url(amqp_url())
    }

    /// A cluster on the RabbitMQ at `amqp_url` (and the shared Redis).
    pub fn with_amqp_url(amqp_url: String) -> Self {
        let id = unique_id("");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("baton-distributed-{id}"));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        // Build (or find) the binary before any worker is started.
        let _ = super::baton_bin();
        let queue_prefix = format!("t-{id}.");
        Self {
            topology: Topology::new(&queue_prefix),
            queue_prefix,
            key_prefix: format!("t-{id}"),
            id,
            amqp_url,
            redis_url: redis_url(),
            dir,
            workers: Vec::new(),
        }
    }

    /// `baton` with the test's environment: every inherited `BATON_*` variable removed, then the
    /// services, prefixes and human logs set.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(super::baton_bin());
        cmd.current_dir(super::workspace());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BATON_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .env("BATON_AMQP_URL", &self.amqp_url)
            .env("BATON_REDIS_URL", &self.redis_url)
            .env("BATON_QUEUE_PREFIX", &self.queue_prefix)
            .env("BATON_KEY_PREFIX", &self.key_prefix)
            .env("BATON_LOG_FORMAT", "human")
            // The tests' HTTP servers listen on 127.0.0.1.
            .env("BATON_HTTP_ALLOW_PRIVATE_NETWORKS", "true");
        cmd
    }

    /// Starts a worker (with extra `BATON_*` settings) on a free admin port and waits until its
    /// `/readyz` answers 200. Returns its index.
    pub async fn spawn_worker(&mut self, extra_env: &[(&str, &str)]) -> usize {
        let mut last_log = None;
        // A port found free can be taken by someone else before the worker binds it: retry.
        for _ in 0..3 {
            let n = self.workers.len();
            let name = format!("worker-{n}");
            let port = free_port();
            let log = self.dir.join(format!("{name}-{port}.log"));
            let mut cmd = self.command();
            cmd.arg("worker");
            for (k, v) in extra_env {
                cmd.env(k, v);
            }
            let process = WorkerProcess::spawn(cmd, port, &log)
                .unwrap_or_else(|e| panic!("spawn baton worker: {e}"));
            self.workers.push(WorkerProc { name, process });
            if self.wait_ready(n, BOUND).await {
                return n;
            }
            self.kill(n);
            last_log = Some(log);
        }
        let log = last_log.expect("at least one attempt");
        panic!(
            "a worker did not get ready within {BOUND:?}; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    pub fn worker(&self, i: usize) -> &WorkerProc {
        &self.workers[i]
    }

    /// Indexes of the workers still running (not killed or exited).
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.workers.len())
            .filter(|&i| self.workers[i].process.exited().is_none())
            .collect()
    }

    /// Polls `/readyz` until it answers 200 (true), the process exits or `bound` passes (false).
    pub async fn wait_ready(&mut self, i: usize, bound: Duration) -> bool {
        self.workers[i]
            .process
            .wait_ready(Instant::now() + bound)
            .await
            .is_ok()
    }

    /// The sum over the running workers of the Prometheus sample `name` (exact series text,
    /// e.g. `baton_hop_message_bytes_bucket{le="4096"}`), read from their `/metrics`.
    pub async fn metric_sum(&self, name: &str) -> f64 {
        let mut sum = 0.0;
        for w in &self.workers {
            sum += w.process.metric(name).await.unwrap_or(0.0);
        }
        sum
    }

    /// The meta hash of an execution in Redis (status, `finished_by`, completion ledger): what
    /// a test prints about an execution that did not complete. Empty if it has none.
    pub async fn execution_meta(&self, execution_id: &str) -> BTreeMap<String, String> {
        let key = format!("{}:{{{execution_id}}}:meta", self.key_prefix);
        let read = async {
            let client = redis::Client::open(self.redis_url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await
        };
        read.await.unwrap_or_else(|e: redis::RedisError| {
            BTreeMap::from([("error".to_string(), e.to_string())])
        })
    }

    /// The HTTP status of the worker's `/readyz`, `None` when it does not answer.
    pub async fn readyz(&self, i: usize) -> Option<u16> {
        self.workers[i].process.readyz().await
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self, i: usize) {
        self.workers[i].process.kill();
    }

    /// SIGTERM (graceful drain).
    pub fn terminate(&self, i: usize) {
        if let Err(e) = self.workers[i].process.terminate() {
            panic!("kill -TERM failed: {e}");
        }
    }

    /// Waits for the worker to exit on its own; `None` after `bound`.
    pub async fn wait_exit(&mut self, i: usize, bound: Duration) -> Option<ExitStatus> {
        self.workers[i]
            .process
            .wait_exit(Instant::now() + bound)
            .await
    }

    /// The last `lines` lines of a worker's log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        self.workers[i].process.log_tail(lines)
    }

    /// The tails of every worker's log, for assertion messages.
    pub fn logs(&self) -> String {
        (0..self.workers.len())
            .map(|i| {
                format!(
                    "--- {} (pid {})\n{}",
                    self.workers[i].name,
                    self.workers[i].pid(),
                    self.log_tail(i, 30)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Writes a workflow file into the test's directory.
    pub fn workflow_file(&self, name: &str, workflow: &Value) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(workflow).unwrap())
            .expect("write the workflow");
        path
    }

    /// `baton submit FILE --input JSON ARGS…` with the test's environment.
    pub async fn submit(&self, workflow: &Path, input: &Value, args: &[&str]) -> Output {
        // Through a file: a large input does not fit in an argument.
        let input_file = self.dir.join(format!("{}.json", unique_id("input-")));
        std::fs::write(&input_file, input.to_string()).expect("write the input");
        let mut cmd = self.command();
        cmd.arg("submit")
            .arg(workflow)
            .arg("--input")
            .arg(format!("@{}", input_file.display()))
            .args(args);
        self.output(cmd).await
    }

    /// `baton cancel EXECUTION_ID` with the test's environment.
    pub async fn cancel(&self, execution_id: &str) -> Output {
        let mut cmd = self.command();
        cmd.arg("cancel").arg(execution_id);
        self.output(cmd).await
    }

    /// Runs a command from [`command`](Cluster::command) to its end (at most 300 s).
    pub async fn output(&self, cmd: Command) -> Output {
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true).stdin(Stdio::null());
        match tokio::time::timeout(Duration::from_secs(300), cmd.output()).await {
            Ok(out) => out.expect("run baton"),
            Err(_) => panic!("baton did not finish within 300 s\n{}", self.logs()),
        }
    }

    /// An observer connection with the test's names (declares the topology if needed).
    pub async fn broker(&self) -> Broker {
        self.broker_for(baton_amqp::QueueType::Classic).await
    }

    /// An observer's broker connection that declares the queues as workers of `queue_type` do
    /// (a declaration of another type is refused).
    pub async fn broker_for(&self, queue_type: baton_amqp::QueueType) -> Broker {
        Broker::connect(AmqpOptions {
            queue_type,
            ..amqp_options(&self.amqp_url, &self.queue_prefix, "baton-test-observer")
        })
        .await
        .expect("connect to RabbitMQ")
    }

    /// Consumes one of the test's durable queues (e.g. `self.topology.completion_queue`): nobody
    /// else reads them, so every message of the test is seen.
    pub async fn consume(&self, broker: &Broker, queue: &str) -> Observer {
        let deliveries = broker.consume(queue, "").await.expect("consume");
        Observer { deliveries }
    }

    /// A private subscription: copies of every message published with these routing keys
    /// (queue names of `self.topology`), without taking them from their queues.
    pub async fn subscribe(&self, broker: &Broker, queues: &[&str]) -> Observer {
        let keys: Vec<String> = queues.iter().map(|q| q.to_string()).collect();
        let deliveries = broker.subscribe(&keys).await.expect("subscribe");
        Observer { deliveries }
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.process.kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "worker logs (kept in {}):\n{}",
                self.dir.display(),
                self.logs()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        let (amqp, redis, queues, keys) = (
            self.amqp_url.clone(),
            self.redis_url.clone(),
            self.queue_prefix.clone(),
            self.key_prefix.clone(),
        );
        // Drop may run inside the test's runtime: clean up on a thread with its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let topology = async {
                    let mut opts = amqp_options(&amqp, &queues, "baton-test-cleanup");
                    opts.connect_timeout = Duration::from_secs(5);
                    match Broker::connect(opts).await {
                        Ok(b) => {
                            if let Err(e) = b.delete_topology().await {
                                eprintln!("cleanup: deleting the queues of {queues}: {e}");
                            }
                            b.close().await;
                        }
                        Err(e) => eprintln!("cleanup: RabbitMQ: {e}"),
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(20), topology).await;
                match tokio::time::timeout(Duration::from_secs(20), delete_keys(&redis, &keys))
                    .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => eprintln!("cleanup: Redis keys {keys}:*: {e}"),
                    Err(_) => eprintln!("cleanup: Redis keys {keys}:* timed out"),
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Broker options with the worker's queue names under `prefix`.
pub fn amqp_options(url: &str, prefix: &str, connection_name: &str) -> AmqpOptions {
    AmqpOptions {
        url: url.to_string(),
        topology: Topology::new(prefix),
        connection_name: Some(connection_name.to_string()),
        connect_timeout: Duration::from_secs(30),
        ..AmqpOptions::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Observing queues
// ---------------------------------------------------------------------------------------------

/// One message seen by an [`Observer`] (already acked).
#[derive(Debug, Clone)]
pub struct Seen {
    pub body: Vec<u8>,
    pub headers: Headers,
    pub routing_key: String,
}

impl Seen {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A consumer that acks and hands over every message.
pub struct Observer {
    deliveries: Deliveries,
}

impl Observer {
    /// The next message, or `None` after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Seen> {
        let d = tokio::time::timeout(wait, self.deliveries.next())
            .await
            .ok()??;
        let seen = Seen {
            body: d.body.clone(),
            headers: d.headers.clone(),
            routing_key: d.routing_key.clone(),
        };
        let _ = d.ack().await;
        Some(seen)
    }

    /// The next message whose JSON `execution_id` is `execution_id` (others are skipped);
    /// panics after `bound` with `context`.
    pub async fn next_for(
        &mut self,
        execution_id: &str,
        bound: Duration,
        context: &dyn Fn() -> String,
    ) -> Value {
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(seen) => {
                    let v = seen.json();
                    if v["execution_id"] == execution_id {
                        return v;
                    }
                }
                None => panic!(
                    "nothing for execution {execution_id} within {bound:?}\n{}",
                    context()
                ),
            }
        }
    }

    /// Waits until a message for `execution_id` matches `pred`; panics after `bound`.
    pub async fn wait_for(
        &mut self,
        execution_id: &str,
        bound: Duration,
        pred: impl Fn(&Value) -> bool,
        context: &dyn Fn() -> String,
    ) -> Value {
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.next_for(execution_id, left, context).await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// Every message that arrives until the queue has been quiet for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Seen> {
        let mut out = Vec::new();
        while let Some(seen) = self.next(quiet).await {
            out.push(seen);
        }
        out
    }
}

/// A Rune `NodeExecutionMessage` starting `workflow` at its start nodes (what `baton submit`
/// publishes).
pub fn rune_start(workflow: &Value, execution_id: &str, input: &Value) -> Value {
    json!({
        "workflow_id": workflow.get("name").cloned().unwrap_or(json!("workflow")),
        "execution_id": execution_id,
        "current_node": "$start",
        "workflow_definition": workflow,
        "accumulated_context": {"$input": input, "$trigger": input},
    })
}

pub fn new_execution_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The completion JSON printed by `baton submit --wait`; panics with both streams otherwise.
pub fn completion_of(out: &Output, cluster: &Cluster) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "baton submit printed no completion ({e}), exit {:?}\n--- stdout\n{}\n--- stderr\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            cluster.logs()
        )
    })
}

/// A context with the fields that differ from run to run removed (timestamps, durations,
/// response headers), recursively.
pub fn normalise(v: &Value) -> Value {
    const VOLATILE: &[&str] = &[
        "logged_at",
        "resume_at",
        "duration_ms",
        "headers",
        "executed_at",
        "completed_at",
        "total_duration_ms",
    ];
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), normalise(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// A local HTTP API
// ---------------------------------------------------------------------------------------------

/// One request to `/step/{n}`.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub idempotency_key: Option<String>,
    pub peer: SocketAddr,
    pub finished: bool,
}

struct ApiState {
    calls: Mutex<Vec<Call>>,
    delay: Duration,
    /// Requests to this path wait until the gate opens.
    held: Mutex<Option<String>>,
    gate: tokio::sync::watch::Sender<bool>,
}

/// A local API on its own thread: the demo API of `scripts/demo-api.py` (`GET /users` with a
/// bearer token, `POST /notify/{id}`) and `/step/{n}`, which records each call (path,
/// `Idempotency-Key`, the caller's address), sleeps `delay` and answers `{"step": n}`. Calls to
/// a [`hold`](TestApi::hold)-en path wait until [`release`](TestApi::release).
pub struct TestApi {
    pub url: String,
    pub port: u16,
    state: Arc<ApiState>,
}

impl TestApi {
    pub fn start(delay: Duration) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ApiState {
            calls: Mutex::new(Vec::new()),
            delay,
            held: Mutex::new(None),
            gate: tokio::sync::watch::Sender::new(false),
        });
        let app = Router::new()
            .route("/users", get(list_users))
            .route("/notify/{id}", post(notify))
            .route("/step/{n}", any(step))
            .with_state(state.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
                .unwrap();
            });
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
        }
    }

    /// Requests to `path` wait until [`release`](TestApi::release).
    pub fn hold(&self, path: &str) {
        *self.state.held.lock().unwrap() = Some(path.to_string());
    }

    pub fn release(&self) {
        self.state.gate.send_replace(true);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Waits for a call to `path` (the first one), panics after `bound`.
    pub async fn wait_call(
        &self,
        path: &str,
        bound: Duration,
        context: &dyn Fn() -> String,
    ) -> Call {
        let first = wait_until(
            Instant::now() + bound,
            Duration::from_millis(10),
            async || self.calls().into_iter().find(|c| c.path == path),
        )
        .await;
        first.unwrap_or_else(|| panic!("no call to {path} within {bound:?}\n{}", context()))
    }

    /// Calls per path.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in self.calls() {
            *m.entry(c.path).or_default() += 1;
        }
        m
    }
}

async fn step(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    UrlPath(n): UrlPath<String>,
    headers: HeaderMap,
) -> axum::Json<Value> {
    let path = format!("/step/{n}");
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let index = {
        let mut calls = state.calls.lock().unwrap();
        calls.push(Call {
            path: path.clone(),
            idempotency_key,
            peer,
            finished: false,
        });
        calls.len() - 1
    };
    let held = state.held.lock().unwrap().as_deref() == Some(path.as_str());
    if held {
        let mut rx = state.gate.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
    tokio::time::sleep(state.delay).await;
    state.calls.lock().unwrap()[index].finished = true;
    axum::Json(json!({"step": n}))
}

async fn list_users(headers: HeaderMap) -> (StatusCode, axum::Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer demo-secret") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "unauthorized"})),
        );
    }
    let users =
        json!([{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}, {"id": 3, "name": "Linus"}]);
    (StatusCode::OK, axum::Json(json!({ "users": users })))
}

async fn notify(
    UrlPath(id): UrlPath<String>,
    body: Option<axum::Json<Value>>,
) -> axum::Json<Value> {
    axum::Json(json!({"notified": id, "received": body.map(|axum::Json(b)| b)}))
}

/// A workflow of `n` sequential `http` nodes `Step 1` … `Step n`, each POSTing to
/// `{{$input.base_url}}/step/<i>`.
pub fn sequential_http_workflow(name: &str, n: usize) -> Value {
    let nodes: Vec<Value> = (1..=n)
        .map(|i| {
            json!({"id": format!("s{i}"), "name": format!("Step {i}"), "type": "http",
                   "parameters": {"method": "POST", "url": format!("{{{{$input.base_url}}}}/step/{i}"),
                                  "body": {"step": i}, "timeout": 300}})
        })
        .collect();
    let edges: Vec<Value> =
        (1..n).map(|i| json!({"id": format!("e{i}"), "src": format!("s{i}"), "dst": format!("s{}", i + 1)})).collect();
    json!({"name": name, "version": 1, "nodes": nodes, "edges": edges})
}

// ---------------------------------------------------------------------------------------------
// Which process owns a TCP connection (Linux)
// ---------------------------------------------------------------------------------------------

/// The index of the running worker that made `call` (its TCP connection to `api`, read from
/// `/proc`), if it can be told within a few seconds.
pub async fn owner_of(cluster: &mut Cluster, call: &Call, api: &TestApi) -> Option<usize> {
    for _ in 0..50 {
        let running = cluster.running();
        let pids: Vec<u32> = running.iter().map(|&i| cluster.worker(i).pid()).collect();
        if let Some(pid) = connection_owner(call.peer, api.port, &pids) {
            return running
                .into_iter()
                .find(|&i| cluster.worker(i).pid() == pid);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Among `pids`, the process holding the client end of the connection from `peer` to local
/// `server_port` (read from `/proc/net/tcp*` and `/proc/<pid>/fd`).
pub fn connection_owner(peer: SocketAddr, server_port: u16, pids: &[u32]) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let port = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port(f[1]) == Some(peer.port()) && port(f[2]) == Some(server_port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    pids.iter().copied().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
            })
    })
}

// ---------------------------------------------------------------------------------------------
// A private RabbitMQ node
// ---------------------------------------------------------------------------------------------

/// A RabbitMQ node of the test's own (`baton-test-<rand>@localhost`, free AMQP and
/// distribution ports, data and logs in a temporary directory), so that it can be restarted
/// without disturbing the shared broker. Stopped and removed on drop.
pub struct RabbitNode {
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
}

impl RabbitNode {
    /// The `rabbitmq-server`/`rabbitmqctl` scripts, called directly rather than through the
    /// Debian wrapper (which would switch to the `rabbitmq` user and its directories).
    fn script(name: &str) -> PathBuf {
        let direct = Path::new("/usr/lib/rabbitmq/bin").join(name);
        if direct.is_file() {
            direct
        } else {
            PathBuf::from(name)
        }
    }

    /// Whether RabbitMQ's scripts are installed here.
    pub fn available() -> bool {
        Command::new(Self::script("rabbitmqctl"))
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts a new node and waits until it boots (panics after two minutes).
    pub fn start() -> Self {
        let rand = short_unique_id("", 12);
        let name = format!("baton-test-{rand}@localhost");
        let dir = std::env::temp_dir().join(format!("baton-rabbit-{rand}"));
        std::fs::create_dir_all(&dir).expect("create the node's directory");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        let (port, dist) = loop {
            let (a, b) = (free_port(), free_port());
            if a != b {
                break (a, b);
            }
        };
        let d = dir.display().to_string();
        let env = vec![
            // The Erlang cookie lives in $HOME: the node's own, shared with rabbitmqctl.
            ("HOME".to_string(), d.clone()),
            ("RABBITMQ_NODENAME".into(), name.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS".into(), "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT".into(), port.to_string()),
            ("RABBITMQ_DIST_PORT".into(), dist.to_string()),
            ("RABBITMQ_MNESIA_BASE".into(), format!("{d}/mnesia")),
            ("RABBITMQ_LOG_BASE".into(), format!("{d}/log")),
            ("RABBITMQ_PID_FILE".into(), format!("{d}/rabbit.pid")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE".into(),
                format!("{d}/enabled_plugins"),
            ),
            ("RABBITMQ_CONFIG_FILE".into(), format!("{d}/rabbitmq")),
            (
                "RABBITMQ_ADVANCED_CONFIG_FILE".into(),
                format!("{d}/advanced.config"),
            ),
        ];
        let node = Self {
            name,
            port,
            dir,
            env,
        };
        node.boot();
        node
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn cmd(&self, script: &str) -> Command {
        let mut cmd = Command::new(Self::script(script));
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.dir);
        cmd
    }

    /// `rabbitmqctl -n <node> ARGS…` with the node's environment.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.cmd("rabbitmqctl")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run rabbitmqctl")
    }

    /// `rabbitmq-server -detached`, then `await_startup` until it succeeds.
    pub fn boot(&self) {
        let status = self
            .cmd("rabbitmq-server")
            .arg("-detached")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run rabbitmq-server");
        assert!(status.success(), "rabbitmq-server -detached failed");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            // Fails at once until the node registered with epmd: retry.
            let out = self.ctl(&["-q", "await_startup", "--timeout", "10"]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "RabbitMQ node {} did not start:\n{}\n{}",
                self.name,
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `rabbitmqctl stop <pid file>`: returns once the node's process has ended.
    pub fn stop(&self) {
        let pid_file = self.dir.join("rabbit.pid").display().to_string();
        let out = self.ctl(&["stop", &pid_file]);
        assert!(
            out.status.success(),
            "rabbitmqctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn log_tail(&self) -> String {
        let log = self.dir.join("log").join(format!("{}.log", self.name));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        let pid_file = self.dir.join("rabbit.pid").display().to_string();
        let stopped = self.ctl(&["stop", &pid_file]).status.success();
        if !stopped {
            // Down already, or not answering: end the node's process (found by its pid file,
            // and only if that process is still this node).
            if let Ok(pid) = std::fs::read_to_string(&pid_file) {
                let pid = pid.trim();
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&self.name) {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
