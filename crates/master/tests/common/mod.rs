//! Test harness: a real master (HTTP on a free port) with real RabbitMQ and Redis and a real
//! in-process worker, isolated by a unique queue prefix and Redis key prefixes per test. The
//! environment is torn down (tasks stopped, queues and keys deleted) when it is dropped.
//!
//! Services: `BATON_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`) and
//! `BATON_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/`).

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_master::MasterSettings;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The bound on anything a test waits for; only a hang or a lost message takes this long.
pub const BOUND: Duration = Duration::from_secs(60);
pub const TOKEN: &str = "test-token-1";

pub fn amqp_url() -> String {
    std::env::var("BATON_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn redis_url() -> String {
    std::env::var("BATON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// The settings of a worker serving the master configured by `settings` (same services and
/// names).
pub fn worker_settings(settings: &MasterSettings) -> baton_worker::Settings {
    baton_worker::Settings {
        connection: settings.connection.clone(),
        log_format: settings.log_format.clone(),
        ..baton_worker::Settings::default()
    }
}

/// One test's services: a worker and any number of masters sharing its prefixes.
pub struct Env {
    pub id: String,
    pub settings: MasterSettings,
    pub masters: Vec<String>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    broker: Option<baton_amqp::Broker>,
}

impl Env {
    /// A worker and one master with auth on (token [`TOKEN`]) and a credentials key.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// As [`Env::start`], with settings changed by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut MasterSettings)) -> Self {
        Self::start_with_worker(adjust, |_| {}).await
    }

    /// As [`Env::start_with`], with the worker's settings changed by `adjust_worker`.
    pub async fn start_with_worker(
        adjust: impl FnOnce(&mut MasterSettings),
        adjust_worker: impl FnOnce(&mut baton_worker::Settings),
    ) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let settings = MasterSettings {
            master_listen: "127.0.0.1:0".into(),
            api_tokens: format!("{TOKEN},second-token"),
            master_key_prefix: format!("t-{id}:master:"),
            connection: baton_settings::ConnectionSettings {
                amqp_url: amqp_url(),
                redis_url: redis_url(),
                queue_prefix: format!("t-{id}."),
                key_prefix: format!("t-{id}"),
                ..baton_settings::ConnectionSettings::default()
            },
            log_format: "human".into(),
            credentials_key: Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
            ..MasterSettings::default()
        };
        let mut settings = settings;
        adjust(&mut settings);
        let shutdown = CancellationToken::new();
        let mut worker_settings = worker_settings(&settings);
        adjust_worker(&mut worker_settings);
        let worker = baton_worker::Worker::connect(worker_settings, baton_nodes::registry())
            .await
            .expect("worker connects to RabbitMQ and Redis");
        let broker = worker.broker.clone();
        tokio::spawn(worker.run(shutdown.clone()));
        let mut env = Self {
            id,
            settings,
            masters: Vec::new(),
            http: reqwest::Client::new(),
            shutdown,
            broker: Some(broker),
        };
        env.add_master().await;
        env
    }

    /// Starts one more master replica on the same queues and Redis prefix; returns its URL.
    pub async fn add_master(&mut self) -> String {
        let master = baton_master::distributed(&self.settings, self.shutdown.clone())
            .await
            .expect("master connects");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let limits = self.settings.http_limits();
        let shutdown = self.shutdown.clone();
        tokio::spawn(
            async move { baton_master::serve_with(master, listener, &limits, shutdown).await },
        );
        self.masters.push(url.clone());
        url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.masters[0])
    }

    /// The same request on master replica `i`.
    pub async fn call_on(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call_at(
            &self.http,
            &format!("{}{path}", self.masters[i]),
            method,
            body,
            Some(TOKEN),
        )
        .await
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call_at(&self.http, &self.url(path), method, body, Some(TOKEN)).await
    }

    /// Stores a workflow and returns its id.
    pub async fn put_workflow(&self, definition: Value) -> String {
        let (status, body) = self.call("POST", "/workflows", Some(definition)).await;
        assert!(status == 201 || status == 200, "{status} {body}");
        body["workflow_id"]
            .as_str()
            .expect("workflow_id")
            .to_string()
    }

    /// Starts an execution and returns its id.
    pub async fn run(&self, workflow: &str, input: Value) -> String {
        let (status, body) = self
            .call(
                "POST",
                &format!("/workflows/{workflow}/executions"),
                Some(json!({ "input": input })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["execution_id"]
            .as_str()
            .expect("execution_id")
            .to_string()
    }

    /// Polls the execution until `done` holds for its view.
    pub async fn wait_for(&self, execution_id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let path = format!("/executions/{execution_id}");
        until(|| async {
            let (status, body) = self.call("GET", &path, None).await;
            (status == 200 && done(&body)).then_some(body)
        })
        .await
    }

    pub async fn finished(&self, execution_id: &str) -> Value {
        self.wait_for(execution_id, |v| v["status"] != "running")
            .await
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let id = self.id.clone();
        // The test's broker connection lives on the test's runtime, which is shutting down:
        // the cleanup connects on its own.
        drop(self.broker.take());
        let opts = baton_amqp::AmqpOptions {
            connection_name: Some("baton-master-test-cleanup".into()),
            connect_timeout: Duration::from_secs(5),
            ..baton_amqp::AmqpOptions::from(&self.settings.connection)
        };
        // Clean up on a fresh thread: the test's runtime is shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Runtime::new() else {
                return;
            };
            rt.block_on(async move {
                let topology = async {
                    match baton_amqp::Broker::connect(opts).await {
                        Ok(b) => {
                            if let Err(e) = b.delete_topology().await {
                                eprintln!("cleanup: deleting the queues of t-{id}: {e}");
                            }
                            b.close().await;
                        }
                        Err(e) => eprintln!("cleanup: RabbitMQ: {e}"),
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(20), topology).await;
                if let Ok(client) = redis::Client::open(redis_url())
                    && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                {
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(format!("t-{id}*"))
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default();
                    for chunk in keys.chunks(500) {
                        let _: Result<i64, _> =
                            redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
                    }
                }
            });
        })
        .join();
    }
}

pub async fn call_at(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = http.request(method.parse().expect("method"), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the master answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Retries `probe` every 50 ms until it returns `Some`, or panics after [`BOUND`].
pub async fn until<T, F, Fut>(probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads an SSE response until a `completion` event; returns `(event, data)` pairs.
pub async fn read_sse(resp: reqwest::Response) -> Vec<(String, Value)> {
    use futures_util::StreamExt;
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut events = Vec::new();
    let read = async {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if name.is_empty() {
                    continue;
                }
                let done = name == "completion";
                events.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
                if done {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("the stream ends with a completion");
    events
}

/// trigger → greet (log) → done (log).
pub fn hello(id: &str) -> Value {
    json!({
        "id": id,
        "name": "Hello",
        "nodes": [
            {"id": "start", "name": "Start", "type": "ManualTrigger", "trigger": true, "parameters": {}},
            {"id": "greet", "name": "Greet", "type": "log", "parameters": {"message": "Hello {{$input.name}}"}},
            {"id": "done", "name": "Done", "type": "log", "parameters": {"message": "bye {{$Greet.message}}"}}
        ],
        "edges": [
            {"id": "e1", "src": "start", "dst": "greet"},
            {"id": "e2", "src": "greet", "dst": "done"}
        ]
    })
}

/// A wait for signal `approve`, then a log of its data.
pub fn approval(id: &str) -> Value {
    json!({
        "id": id,
        "name": "Approval",
        "nodes": [
            {"id": "w", "name": "Wait", "type": "wait", "parameters": {"mode": "signal", "signal": "approve"}},
            {"id": "ok", "name": "Approved", "type": "log", "parameters": {"message": "approved by {{$Wait.data.by}}"}}
        ],
        "edges": [{"id": "e1", "src": "w", "dst": "ok"}]
    })
}

pub type Shared<T> = Arc<T>;
